"""A real node beside the real control plane: containerd, the kubelet, kube-proxy and the
scheduler, running our images built from their Dockerfiles, and CoreDNS as the cluster's DNS
add-on (``dns.py``: a pod in kube-system behind the ``kube-dns`` Service, the kubelet's
``clusterDNS``; it knows the cluster's names only, the node reaching no other resolver).

The node lives in a network namespace of its own, joined to the host by one veth pair with a
private /30 (host end ``host_ip``, node end ``node_ip``), and without a default route: a pod
reaches its own pod network (a CNI bridge), Service IPs (kube-proxy's iptables rules, in the
node's namespace only) and the host's end of the veth, nothing else. The test servers listen on
the host's loopback, so the node forwards ``host_ip:PORT`` to ``127.0.0.1:PORT`` for each one a
pod needs (``expose``); the API server advertises ``host_ip`` as the ``kubernetes`` Service's
endpoint. The node's processes also share a mount namespace of their own (volumes, container
root filesystems, pod network namespaces stay out of the host's mount table and vanish with it)
and one cgroup tree, ``/vidconv-node-<id>``, so that stopping the node ends every process it
started, container and shim included.

What the sandbox needs, and why (see README):
- containerd with ``restrict_oom_score_adj``: no CAP_SYS_RESOURCE here, so runc can't lower an
  OOM score below its own.
- the kubelet with the cgroupfs driver (no systemd), ``failCgroupV1: false`` (cgroup v1 here),
  ``failSwapOn: false``; and in its mount namespace, the kernel tunables it would otherwise set
  machine-wide (vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1) read as already
  set, so a test run never changes the shared machine's kernel settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.kubernetes import dns, isolation
from tests.kubernetes.controlplane import ControlPlane, Process, control_plane
from tests.kubernetes.isolation import CgroupTree, Network, run
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]
PAUSE = REPO / "hack" / "images" / "pause.sh"
BUILDAH = REPO / "hack" / "images" / "buildah"
NODE_NAME = "vidconv-node"
POD_CIDR = "10.244.0.0/24"  # inside the node's namespace only: every node may use the same
CNI_BIN = Path("/usr/lib/cni")
TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "unshare", "ip",
         "iptables", "conntrack")

def missing() -> str | None:
    """Why a node can't run here, or None."""
    if os.geteuid() != 0:
        return "a node needs root (network namespaces, cgroups, containerd)"
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if not (CNI_BIN / "bridge").exists():
        absent.append("containernetworking-plugins")
    if absent:
        return (f"{', '.join(absent)} not found (apt-get install containerd runc "
                "containernetworking-plugins iptables conntrack)")
    return None


def _kubeconfig(path: Path, cp: ControlPlane, server: str, cert: tuple[Path, Path]) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "node",
        "clusters": [{"name": "node", "cluster": {
            "server": server, "certificate-authority": str(cp.pki.ca_file)}}],
        "users": [{"name": "node", "user": {
            "client-certificate": str(cert[0]), "client-key": str(cert[1])}}],
        "contexts": [{"name": "node", "context": {"cluster": "node", "user": "node"}}],
    }))
    path.chmod(0o600)
    return path


@dataclass
class Node:
    cp: ControlPlane
    net: Network
    root: Path
    cgroups: CgroupTree
    processes: dict[str, Process] = field(default_factory=dict)
    forwarders: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    name: str = NODE_NAME

    @property
    def socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def server(self) -> str:
        """The API server as the node and its pods reach it."""
        return f"https://{self.net.host_ip}:{self.cp.port}"

    def expose(self, port: int) -> str:
        """``host_ip:port`` carried to ``127.0.0.1:port`` (a server of the tests) for pods."""
        if port not in self.forwarders:
            proc = subprocess.Popen(self.cgroups.wrap(
                [sys.executable, "-m", "tests.kubernetes.forward",
                 f"{self.net.host_ip}:{port}", f"127.0.0.1:{port}"]),
                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"listening":
                raise RuntimeError(f"the forwarder of port {port} did not start")
            self.forwarders[port] = proc
        return f"{self.net.host_ip}:{port}"

    # --- containerd ---

    def _containerd_config(self, sandbox: str) -> Path:
        c = self.root / "containerd"
        cni = self.root / "cni"
        cni.mkdir()
        (cni / "10-vidconv.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "vidconv", "plugins": [
                {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                          "routes": [{"dst": "0.0.0.0/0"}],
                          "dataDir": str(self.root / "cni-ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ]}))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = c / "config.toml"
        config.write_text(f"""version = 2
root = "{c / 'root'}"
state = "{c / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / 'opt'}"
[{cri}]
  sandbox_image = "{sandbox}"
  # No CAP_SYS_RESOURCE here: runc may only raise an OOM score, never lower it below its own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni}"
""")
        return config

    def ctr(self, *args: str) -> str:
        return run("ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args).stdout

    def load(self, image: str, as_name: str | None = None) -> None:
        """Copy an image from the buildah store into containerd's (``k8s.io``) under the name a
        pod spec's ``image`` resolves to (``vidconv-api:dev`` is docker.io/library/...)."""
        target = as_name or image
        archive = self.root / "image.tar"
        try:
            run(str(BUILDAH), "push", "--quiet", image, f"docker-archive:{archive}:{target}")
            self.ctr("images", "import", str(archive))
        finally:
            archive.unlink(missing_ok=True)

    # --- what a test does to the node, as an operator of a cluster would ---

    def cordon(self, unschedulable: bool = True) -> None:
        """``kubectl cordon`` (or ``uncordon``): new pods wait, unscheduled, until uncordoned."""
        cp = self.cp
        run(str(cp.kubectl_path), "--kubeconfig", str(cp.root / "admin.kubeconfig"),
            "cordon" if unschedulable else "uncordon", self.name)

    def tasks(self) -> dict[str, tuple[int, str]]:
        """containerd's tasks (running containers, sandboxes included): id -> (pid, status)."""
        rows = [line.split() for line in self.ctr("tasks", "ls").splitlines()[1:]]
        return {row[0]: (int(row[1]), row[2]) for row in rows if len(row) >= 3}

    def pause(self, container_id: str) -> None:
        """Freeze a container's processes (runc pause: the cgroup freezer)."""
        self.ctr("tasks", "pause", container_id)

    def resume(self, container_id: str) -> None:
        self.ctr("tasks", "resume", container_id)

    # --- the node's processes ---

    def _process(self, name: str, argv: list[str]) -> Process:
        p = Process(name, self.cgroups.wrap(self.net.enter(argv)), self.root / f"{name}.log")
        self.processes[name] = p
        p.start()
        return p

    def _wait(self, what: str, check: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            for p in self.processes.values():
                p.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready after {timeout}s")
            time.sleep(0.2)

    def start(self) -> Node:
        self.root.joinpath("containerd").mkdir(parents=True)
        isolation.claim(self.net.id, self.net.root)
        self.net.up()
        self.cgroups.create()
        self.expose(self.cp.port)
        sandbox = run(str(PAUSE)).stdout.strip().splitlines()[-1]
        config = self._containerd_config(sandbox)
        self._process("containerd", ["containerd", "--config", str(config)])
        self._wait("containerd", lambda: run("ctr", "--address", str(self.socket), "version",
                                             check=False).returncode == 0)
        self.load(sandbox)
        self._kubelet()
        self._proxy()
        self._scheduler()
        return self

    def _kubelet(self) -> None:
        cp, k = self.cp, self.root / "kubelet"
        k.mkdir()
        cert = cp.pki.issue("kubelet", f"system:node:{self.name}", ("system:nodes",))
        serving = cp.pki.issue("kubelet-serving", f"system:node:{self.name}", server=True,
                               sans=(self.net.node_ip, self.name))
        resolv_conf = k / "resolv.conf"
        resolv_conf.write_text(dns.NODE_RESOLV_CONF)
        config = k / "config.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": self.net.node_ip, "port": 10250, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
            "tlsCertFile": str(serving[0]), "tlsPrivateKeyFile": str(serving[1]),
            # The API server's kubelet client certificate, checked by the cluster's CA; what it
            # may do, the API server decides (SubjectAccessReview).
            "authentication": {"x509": {"clientCAFile": str(cp.pki.ca_file)},
                               "webhook": {"enabled": True},
                               "anonymous": {"enabled": False}},
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",  # no systemd here
            "cgroupRoot": f"/{self.cgroups.name}",
            "failCgroupV1": False,  # cgroup v1 here; 1.35 refuses it by default
            "failSwapOn": False,
            "podLogsDir": str(self.root / "pod-logs"),
            # Pods of dnsPolicy ClusterFirst ask CoreDNS (dns.py), the others no resolver at all.
            "clusterDNS": [dns.CLUSTER_IP], "clusterDomain": dns.DOMAIN,
            "resolvConf": str(resolv_conf),
            "registerNode": True,
            "serializeImagePulls": False,
            "shutdownGracePeriod": "0s",
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
        }))
        kubeconfig = _kubeconfig(k / "kubeconfig", cp, self.server, cert)
        self._process("kubelet", [
            str(cp.bin / "kubelet"), f"--config={config}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={k / 'root'}", f"--hostname-override={self.name}",
            f"--node-ip={self.net.node_ip}", "--v=1"])

    def _proxy(self) -> None:
        cp, d = self.cp, self.root / "kube-proxy"
        d.mkdir()
        cert = cp.pki.issue("kube-proxy", "system:kube-proxy")
        config = d / "config.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(_kubeconfig(d / "kubeconfig", cp,
                                                               self.server, cert))},
            "hostnameOverride": self.name, "mode": "iptables", "clusterCIDR": POD_CIDR,
            "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
            "nodePortAddresses": [f"{self.net.node_ip}/32"],
            # Conntrack limits are machine-wide: leave them as they are.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        }))
        self._process("kube-proxy", [str(cp.bin / "kube-proxy"), f"--config={config}", "--v=1"])

    def _scheduler(self) -> None:
        cp = self.cp
        cert = cp.pki.issue("kube-scheduler", "system:kube-scheduler")
        kubeconfig = cp.kubeconfig(self.root / "scheduler.kubeconfig", "scheduler", cert=cert)
        p = Process("kube-scheduler", [
            str(cp.bin / "kube-scheduler"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--authentication-skip-lookup=true", "--leader-elect=false",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}"],
            self.root / "kube-scheduler.log")
        self.processes["kube-scheduler"] = p
        p.start()

    def stop(self) -> None:
        for name in ("kube-scheduler", "kube-proxy", "kubelet"):
            if name in self.processes:
                self.processes[name].stop()
        for proc in self.forwarders.values():
            proc.terminate()
            proc.wait(10)
        # containerd, its shims and every container
        self.cgroups.kill(lambda: [p.proc.poll() for p in self.processes.values() if p.proc])
        self.net.down()
        self.cgroups.remove()
        isolation.release(self.net.id)


    def wait_ready(self, timeout: float = 90) -> None:
        """Until the Node is Ready and the node-lifecycle controller has lifted its taints."""
        import httpx

        with httpx.Client(base_url=self.cp.url, verify=self.cp.admin_tls(), timeout=10) as http:
            def ready() -> bool:
                r = http.get(f"/api/v1/nodes/{self.name}")
                if r.status_code != 200:
                    return False
                node = r.json()
                return not node["spec"].get("taints") and any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in node["status"].get("conditions") or [])

            self._wait(f"node {self.name}", ready, timeout)


@contextmanager
def node(cp: ControlPlane, network: Network) -> Iterator[Node]:
    """A node registered with ``cp``, whose API server advertises ``network.host_ip``."""
    isolation.reap_orphans()
    n = Node(cp, network, network.root / "node", CgroupTree(f"vidconv-node-{network.id}"))
    try:
        yield n.start()
    finally:
        n.stop()
        if os.environ.get("VIDCONV_KEEP_CONTROL_PLANE_LOGS"):
            print(f"node logs kept in {n.root}")
        else:
            shutil.rmtree(network.root, ignore_errors=True)


def network() -> Network:
    """The node's network, chosen before the control plane starts (it advertises ``host_ip``)."""
    return Network(os.urandom(4).hex(), Path(tempfile.mkdtemp(prefix="vidconv-node-")))


def pod_image(image: str) -> str:
    """The name a pod spec gives an image of the buildah store: ``localhost/vidconv-api:dev`` is
    ``vidconv-api:dev``, which the CRI resolves to ``docker.io/library/vidconv-api:dev``."""
    return image.removeprefix("localhost/")


@contextmanager
def cluster(images: Sequence[str], crd: Path) -> Iterator[Node]:
    """A control plane with a real node that has ``images`` (from the buildah store) and the
    ConversionTask CRD applied: a cluster as a user's, on this machine."""
    net = network()
    with control_plane(advertise=net.host_ip,
                       more_controllers=("node-lifecycle-controller",)) as cp:
        kubectl = [str(cp.kubectl_path), "--kubeconfig", str(cp.root / "admin.kubeconfig")]
        run(*kubectl, "apply", "--server-side", "-f", str(crd))
        with node(cp, net) as n:
            # The cluster's DNS first: its pod starts while the other images load.
            coredns = dns.image()
            n.load(coredns, f"docker.io/library/{pod_image(coredns)}")
            dns.apply(kubectl, pod_image(coredns))
            for image in images:
                n.load(image, f"docker.io/library/{pod_image(image)}")
            run(*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                 f"-f={crd}")
            n.wait_ready()
            dns.wait_available(kubectl)
            yield n
