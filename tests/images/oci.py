"""Our three images, built by ``make images CONTAINER_TOOL=buildah`` and run by runc the way a
container runtime runs a pod's container: the image's user, entrypoint, command, env and working
directory, a read-only root filesystem, no capabilities, no new privileges, its own PID, IPC,
UTS and mount namespaces (and the host's network, for a loopback port), tmpfs or bind mounts as
the pod's volumes would be.

Images live in the buildah store of ``hack/images/buildah`` (under ``~/.cache/vidconv``); where no
registry is reachable ``hack/images/base.sh`` puts a local stand-in for the Dockerfiles' base
image there first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUILDAH = REPO / "hack" / "images" / "buildah"
# Not `make images`' default "dev": a tag of this checkout's own, so that test runs of two
# checkouts on one machine (sharing the store and its cached layers) never swap images.
TAG = "test-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
IMAGES = {"api": "vidconv-api", "operator": "vidconv-operator",
          "transcoder": "vidconv-transcoder"}
TOOLS = ("buildah", "runc", "debootstrap", "make")


def missing() -> str | None:
    """Why images can't be built and run here, or None."""
    if os.geteuid() != 0:
        return "building and running images needs root (buildah --isolation chroot, runc)"
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        return (f"{', '.join(absent)} not installed (apt-get install buildah runc debootstrap "
                "containerd containernetworking-plugins)")
    return None


def buildah(*args: str) -> str:
    done = subprocess.run([str(BUILDAH), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def build(log: Path) -> dict[str, str]:
    """``make images CONTAINER_TOOL=buildah`` (cached layers make a rebuild quick); component ->
    image name. The build's output goes to ``log``."""
    with log.open("wb") as out:
        done = subprocess.run(["nice", "-n", "10", "make", "-C", str(REPO), "images",
                               "CONTAINER_TOOL=buildah", f"IMAGE_TAG={TAG}"],
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"make images failed ({done.returncode}):\n{tail}")
    return {c: f"localhost/{name}:{TAG}" for c, name in IMAGES.items()}


@dataclass
class Image:
    """An image's root filesystem (a buildah working container, mounted) and its config."""

    name: str
    container: str
    rootfs: Path
    config: dict[str, Any]

    @property
    def user(self) -> tuple[int, int]:
        uid, _, gid = str(self.config.get("User") or "0").partition(":")
        return int(uid), int(gid or uid)

    @property
    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.config.get("Env") or [])


@contextmanager
def mounted(name: str) -> Iterator[Image]:
    container = buildah("from", "--pull=never", "--name", f"vidconv-test-{uuid.uuid4().hex[:8]}",
                        name).splitlines()[-1]
    try:
        rootfs = Path(buildah("mount", container))
        config = json.loads(buildah("inspect", "--type", "image", name))["OCIv1"]["config"]
        yield Image(name, container, rootfs, config)
    finally:
        subprocess.run([str(BUILDAH), "rm", container], capture_output=True)


@dataclass
class Mount:
    """A bind mount of a host path, or a tmpfs (``source`` None) owned by the container's user."""

    destination: str
    source: Path | None = None
    readonly: bool = False


@dataclass
class Container:
    image: Image
    args: list[str]
    env: dict[str, str]
    mounts: list[Mount] = field(default_factory=list)
    network: bool = False  # a network namespace of its own (no interfaces but lo)
    id: str = field(default_factory=lambda: "vidconv-" + uuid.uuid4().hex[:12])

    def spec(self) -> dict[str, Any]:
        uid, gid = self.image.user
        mounts: list[dict[str, Any]] = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ]
        for m in self.mounts:
            if m.source is None:
                mounts.append({"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "mode=0700", f"uid={uid}",
                                           f"gid={gid}", "size=512m"]})
            else:
                mounts.append({"destination": m.destination, "type": "bind",
                               "source": str(m.source),
                               "options": ["rbind", "nosuid", "nodev", "ro" if m.readonly
                                           else "rw"]})
        none: dict[str, list[str]] = {k: [] for k in (
            "bounding", "effective", "permitted", "inheritable", "ambient")}
        namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
        if self.network:
            namespaces.append({"type": "network"})
        return {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False, "user": {"uid": uid, "gid": gid}, "args": self.args,
                "env": [f"{k}={v}" for k, v in self.env.items()],
                "cwd": self.image.config.get("WorkingDir") or "/",
                "capabilities": none, "noNewPrivileges": True,  # rlimits: the runtime's own
            },
            "root": {"path": str(self.image.rootfs), "readonly": True},
            "hostname": "vidconv",
            "mounts": mounts,
            "linux": {
                "namespaces": namespaces,
                "cgroupsPath": f"/vidconv-images/{self.id}",
                "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                                "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                                  "/proc/sys", "/proc/sysrq-trigger"],
            },
        }


class Runtime:
    """runc with a state directory of its own."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vidconv-runc-"))
        self.state = self.root / "state"  # runc's own; bundles beside it

    def container(self, image: Image, args: Sequence[str] | None = None, *,
                  command: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                  mounts: Sequence[Mount] = (), network: bool = False) -> Container:
        """As a pod's container: ``command`` replaces the image's entrypoint, ``args`` its
        command (and a ``command`` alone drops the image's command too)."""
        if command is not None:
            entry, cmd = list(command), list(args or [])
        else:
            entry = list(image.config.get("Entrypoint") or [])
            cmd = list(args) if args is not None else list(image.config.get("Cmd") or [])
        return Container(image, entry + cmd, {**image.env, **(env or {})}, list(mounts), network)

    def _bundle(self, c: Container) -> Path:
        bundle = self.root / c.id
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(c.spec()))
        return bundle

    def run(self, c: Container, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run to the end; stdout, stderr and the exit code as the process left them."""
        bundle = self._bundle(c)
        try:
            return subprocess.run(["runc", "--root", str(self.state), "run", "--bundle",
                                   str(bundle), c.id], capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        finally:
            self.delete(c)

    @contextmanager
    def started(self, c: Container, log: Path) -> Iterator[subprocess.Popen[bytes]]:
        """Run in the background for the ``with`` block, then SIGKILL and delete it."""
        bundle = self._bundle(c)
        with log.open("wb") as out:
            proc = subprocess.Popen(["runc", "--root", str(self.state), "run", "--bundle",
                                     str(bundle), c.id], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            subprocess.run(["runc", "--root", str(self.state), "kill", c.id, "KILL"],
                           capture_output=True)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            self.delete(c)

    def delete(self, c: Container) -> None:
        subprocess.run(["runc", "--root", str(self.state), "delete", "--force", c.id],
                       capture_output=True)
        shutil.rmtree(self.root / c.id, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        # runc removes each container's cgroup, not their parent (another run may still use it).
        for parent in Path("/sys/fs/cgroup").glob("*/vidconv-images"):
            try:
                parent.rmdir()
            except OSError:
                pass
