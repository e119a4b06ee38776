"""A real Kubernetes control plane as local processes: etcd, kube-apiserver and the controllers.

The binaries come from ``hack/k8s/build.sh`` (built once from the Go modules into a cache outside
the repository). The API server runs as a cluster's does: TLS with its own CA, client certificates
and ServiceAccount tokens for authentication, ``Node,RBAC`` authorization, the default admission
plugins (PodSecurity, ServiceAccount, NamespaceLifecycle, ...) plus NodeRestriction. The controller
manager runs the controllers a conversion's life needs, each with its own ServiceAccount's
credentials as kubeadm sets it up.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import dies_with_us, free_port

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "k8s" / "build.sh"
SERVICE_CIDR = "10.0.0.0/24"
# What the Job path needs, deployment/replicaset for the chart's workloads, and the EndpointSlices
# kube-proxy routes a Service's traffic by (on a node that runs one).
CONTROLLERS = [
    "job-controller", "garbage-collector-controller", "ttl-after-finished-controller",
    "serviceaccount-controller", "serviceaccount-token-controller", "namespace-controller",
    "root-ca-certificate-publisher-controller", "deployment-controller", "replicaset-controller",
    "endpointslice-controller",
]


def binaries() -> Path:
    """The directory holding etcd, kube-apiserver, kube-controller-manager and kubectl."""
    given = os.environ.get("VIDCONV_K8S_BIN")
    if given:
        return Path(given)
    if shutil.which("go") is None:
        raise RuntimeError("Go is not installed: the control plane is built from Go modules "
                           "(install Go 1.25+, then `make control-plane`)")
    done = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"hack/k8s/build.sh failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class Pki:
    """A cluster CA and what is signed by it, as PEM files in ``root``."""

    root: Path

    def __post_init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ser, self._ec, self._oid = (
            x509, hashes, serialization, ec, NameOID)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vidconv-test-ca")])
        now = datetime.datetime.now(datetime.UTC)
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_file = self._write("ca.crt", self.ca_cert.public_bytes(serialization.Encoding.PEM))
        # ServiceAccount tokens are signed with an RSA key (RS256, what every client expects).
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key = self._write("sa.key", sa.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.sa_pub = self._write("sa.pub", sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def issue(self, name: str, cn: str, orgs: tuple[str, ...] = (), server: bool = False,
              sans: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """A key and a certificate (client, or serving for ``sans``) signed by the CA."""
        x509, ser = self._x509, self._ser
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(self._oid.COMMON_NAME, cn)]
            + [x509.NameAttribute(self._oid.ORGANIZATION_NAME, o) for o in orgs])
        now = datetime.datetime.now(datetime.UTC)
        usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else (
            x509.ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            alt: list[x509.GeneralName] = []
            for san in sans:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(san)))
                except ValueError:
                    alt.append(x509.DNSName(san))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.ca_key, self._hashes.SHA256())
        key_file = self._write(f"{name}.key", key.private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
        return self._write(f"{name}.crt", cert.public_bytes(ser.Encoding.PEM)), key_file


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([*dies_with_us(), *self.argv], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class ControlPlane:
    root: Path
    bin: Path
    pki: Pki
    port: int
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubectl_path(self) -> Path:
        return self.bin / "kubectl"

    def kubeconfig(self, path: Path, user: str, *, token: str | None = None,
                   cert: tuple[Path, Path] | None = None, namespace: str = "default") -> Path:
        """A kubeconfig for this cluster that authenticates with a token or a client cert."""
        import yaml

        creds: dict[str, str] = {"token": token} if token else {}
        if cert:
            creds = {"client-certificate": str(cert[0]), "client-key": str(cert[1])}
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {
                "server": self.url, "certificate-authority": str(self.pki.ca_file)}}],
            "users": [{"name": user, "user": creds}],
            "contexts": [{"name": "test", "context": {
                "cluster": "test", "user": user, "namespace": namespace}}],
        }))
        path.chmod(0o600)
        return path

    def ready(self, timeout: float = 90) -> None:
        """Wait until /readyz says yes (every post-start hook done, RBAC bootstrapped)."""
        context = self.admin_tls()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for p in self.processes.values():
                p.check()
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=context,
                                            timeout=5) as r:
                    if r.status == 200:
                        return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = str(exc)
            time.sleep(0.2)
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s: {last}")

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    def audit(self, offset: int = 0) -> list[dict[str, Any]]:
        """The audit log's events from byte ``offset`` on (ServiceAccounts' requests)."""
        if not self.audit_log.exists():
            return []
        with self.audit_log.open("rb") as f:
            f.seek(offset)
            return [json.loads(line) for line in f.read().splitlines() if line]

    def audit_offset(self) -> int:
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def admin_tls(self) -> ssl.SSLContext:
        """TLS that trusts the cluster's CA and presents the admin's client certificate."""
        cert, key = self.admin_cert
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        context.load_cert_chain(str(cert), str(key))
        return context

    @property
    def admin_cert(self) -> tuple[Path, Path]:
        return self.root / "admin.crt", self.root / "admin.key"

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port and data (its watch cache starts anew)."""
        api = self.processes["kube-apiserver"]
        api.stop()
        api.start()
        self.ready()

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            if name in self.processes:
                self.processes[name].stop()


def _apiserver_argv(bin_dir: Path, root: Path, pki: Pki, port: int, etcd: str,
                    advertise: str) -> list[str]:
    serving = pki.issue("apiserver", "kube-apiserver", server=True, sans=tuple(dict.fromkeys((
        "127.0.0.1", advertise, "localhost", "10.0.0.1", "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"))))
    kubelet_client = pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                               ("system:masters",))
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={etcd}",
        # The `kubernetes` Service's endpoint: where pods reach this server (loopback without a
        # pod network; a kubelet's pods need an address of the host they can route to).
        "--bind-address=127.0.0.1", f"--secure-port={port}", f"--advertise-address={advertise}",
        f"--cert-dir={root / 'apiserver-certs'}",
        f"--tls-cert-file={serving[0]}", f"--tls-private-key-file={serving[1]}",
        f"--client-ca-file={pki.ca_file}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--authorization-mode=Node,RBAC",
        # The default plugins (PodSecurity, ServiceAccount, NamespaceLifecycle, ...) stay on.
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=false",
        "--profiling=false",
        # Who called what, and what it was answered: the tests read the RBAC outcome from here.
        f"--audit-policy-file={_audit_policy(root)}", f"--audit-log-path={root / 'audit.log'}",
        "--audit-log-mode=blocking", "--audit-log-maxsize=0",
        # kubectl logs/exec/port-forward go to the kubelet at its Node's InternalIP, authenticated
        # by a client certificate the kubelet checks against the cluster's CA.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={kubelet_client[0]}",
        f"--kubelet-client-key={kubelet_client[1]}",
    ]


def _audit_policy(root: Path) -> Path:
    """Metadata (user, verb, resource, code) of the requests of every ServiceAccount outside
    kube-system (the controllers' own are left out); nothing else."""
    path = root / "audit-policy.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n"
        "- level: None\n  userGroups: ['system:serviceaccounts:kube-system']\n"
        "- level: Metadata\n  userGroups: ['system:serviceaccounts']\n- level: None\n")
    return path


def _controller_manager_argv(bin_dir: Path, kubeconfig: Path, pki: Pki,
                             more: Sequence[str]) -> list[str]:
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
        "--leader-elect=false",
        "--authentication-skip-lookup=true",  # no front proxy: no request-header CA to read
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_file}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--controllers={','.join([*CONTROLLERS, *more])}",
        # Deleted pods and finished Jobs are acted on at once, as the tests need.
        "--concurrent-gc-syncs=5",
    ]


@contextmanager
def control_plane(controllers: bool = True, advertise: str = "127.0.0.1",
                  more_controllers: Sequence[str] = ()) -> Iterator[ControlPlane]:
    """etcd and kube-apiserver, and kube-controller-manager unless ``controllers`` is False (a
    bare API server: no pods for Jobs, no garbage collection, namespaces never finish deleting).
    ``advertise`` is the address the `kubernetes` Service sends pods to (the server listens on
    loopback only: something must carry that address's traffic there). ``more_controllers``
    run beside ``CONTROLLERS`` (a real kubelet's node needs the node-lifecycle controller to lift
    its not-ready taint)."""
    bin_dir = binaries()
    root = Path(tempfile.mkdtemp(prefix="vidconv-k8s-"))
    pki = Pki(root)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    cp = ControlPlane(root, bin_dir, pki, api_port)
    admin = pki.issue("admin", "kubernetes-admin", ("system:masters",))
    kcm = pki.issue("kcm", "system:kube-controller-manager")
    kcm_config = cp.kubeconfig(root / "kcm.kubeconfig", "kcm", cert=kcm)
    cp.kubeconfig(root / "admin.kubeconfig", "admin", cert=admin)
    cp.processes = {
        "etcd": Process("etcd", [
            str(bin_dir / "etcd"), f"--data-dir={root / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",  # a throwaway cluster: durability buys nothing here
            "--log-level=warn",
        ], root / "etcd.log"),
        "kube-apiserver": Process("kube-apiserver", _apiserver_argv(
            bin_dir, root, pki, api_port, etcd_url, advertise), root / "kube-apiserver.log"),
    }
    if controllers:
        cp.processes["kube-controller-manager"] = Process(
            "kube-controller-manager", _controller_manager_argv(bin_dir, kcm_config, pki,
                                                                more_controllers),
            root / "kube-controller-manager.log")
    try:
        cp.processes["etcd"].start()
        cp.processes["kube-apiserver"].start()
        cp.ready()
        if controllers:
            cp.processes["kube-controller-manager"].start()
        yield cp
    finally:
        cp.stop()
        if os.environ.get("VIDCONV_KEEP_CONTROL_PLANE_LOGS"):
            print(f"control plane logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
