"""What keeps a test node off the shared machine: its network namespace (a veth pair with a free
/30 to the host, no default route), its mount namespace (kernel tunables the kubelet would set
read as already set there), and its cgroup tree (every process it starts, ended together)."""

from __future__ import annotations

import ipaddress
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# What the kubelet sets at start unless already so (pkg/kubelet/cm: setupKernelTunables).
KERNEL_TUNABLES = {"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
                   "kernel/panic_on_oops": "1", "kernel/keys/root_maxkeys": "1000000",
                   "kernel/keys/root_maxbytes": "25000000"}
CGROUP = Path("/sys/fs/cgroup")


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def free_subnet() -> ipaddress.IPv4Network:
    """A /30 in 10.213.0.0/16 no address of this machine is in (other nodes may run)."""
    used = run("ip", "-4", "-o", "addr").stdout
    candidates = list(ipaddress.IPv4Network("10.213.0.0/16").subnets(new_prefix=30))
    random.shuffle(candidates)
    for net in candidates:
        if f" {net[1]}/" not in used and f" {net[2]}/" not in used:
            return net
    raise RuntimeError("no free /30 in 10.213.0.0/16")


@dataclass
class Network:
    """The node's network and mount namespaces and its veth pair."""

    id: str
    root: Path
    subnet: ipaddress.IPv4Network = field(default_factory=free_subnet)

    @property
    def host_ip(self) -> str:
        return str(self.subnet[1])

    @property
    def node_ip(self) -> str:
        return str(self.subnet[2])

    @property
    def netns(self) -> Path:
        return Path("/run/netns") / f"vidconv-{self.id}"

    @property
    def mntns(self) -> Path:
        return self.root / "mnt.ns"

    @property
    def host_link(self) -> str:
        return f"vc{self.id}"[:15]

    def up(self) -> None:
        name = self.netns.name
        run("ip", "netns", "add", name)
        run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", "eth0",
             "netns", name)
        run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_link)
        run("ip", "link", "set", self.host_link, "up")
        for argv in (["ip", "addr", "add", f"{self.node_ip}/30", "dev", "eth0"],
                     ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"],
                     # Pods' traffic is routed through the node: to Services and the host.
                     ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
                     ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"]):
            run("nsenter", f"--net={self.netns}", *argv)
        # A mount namespace of the node's own, kept by a bind mount of its nsfs file.
        self.mntns.touch()
        run("unshare", f"--mount={self.mntns}", "--propagation", "private", "true")
        # The kubelet's kernel tunables, read as already set (never written to the machine).
        for path, value in KERNEL_TUNABLES.items():
            fake = self.root / "sysctl" / path.replace("/", ".")
            fake.parent.mkdir(exist_ok=True)
            fake.write_text(value + "\n")
            run("nsenter", f"--mount={self.mntns}", "mount", "--bind", str(fake),
                 f"/proc/sys/{path}")

    def enter(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.netns}", f"--mount={self.mntns}", *argv]

    def down(self) -> None:
        run("ip", "link", "del", self.host_link, check=False)
        run("ip", "netns", "del", self.netns.name, check=False)
        run("umount", str(self.mntns), check=False)


class CgroupTree:
    """``/vidconv-node-<id>`` in every cgroup v1 hierarchy: the kubelet's cgroupRoot, and where
    containerd (so its shims and containers) and the kubelet run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hierarchies = [p for p in CGROUP.iterdir()
                            if p.is_dir() and (p / "cgroup.procs").exists()
                            and p.name != "unified"]

    def create(self) -> None:
        for h in self.hierarchies:
            (h / self.name / "node").mkdir(parents=True, exist_ok=True)
            if h.name == "cpuset":  # a new cpuset has no CPUs or memory nodes until given some
                for d in (h / self.name, h / self.name / "node"):
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        (d / f).write_text((d.parent / f).read_text())

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run inside ``<tree>/node`` of every hierarchy."""
        procs = " ".join(str(h / self.name / "node" / "cgroup.procs") for h in self.hierarchies)
        return ["sh", "-c", f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"', "sh", *argv]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for h in self.hierarchies:
            for procs in (h / self.name).rglob("cgroup.procs"):
                try:
                    found |= {int(p) for p in procs.read_text().split()}
                except OSError:
                    pass
        return found

    def kill(self, reap: Callable[[], object], timeout: float = 20) -> None:
        """SIGKILL everything in the tree (thawing a frozen cgroup first) until it is empty;
        ``reap`` waits for the ones that are our own children (a zombie stays listed)."""
        deadline = time.monotonic() + timeout
        freezer = CGROUP / "freezer" / self.name
        while (pids := self.pids()) and time.monotonic() < deadline:
            for state in freezer.rglob("freezer.state") if freezer.exists() else ():
                try:
                    state.write_text("THAWED")
                except OSError:
                    pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
            reap()

    def remove(self) -> None:
        for h in self.hierarchies:
            top = h / self.name
            if not top.exists():
                continue
            for d in sorted((p for p in top.rglob("*") if p.is_dir()),
                            key=lambda p: len(p.parts), reverse=True):
                try:
                    d.rmdir()
                except OSError:
                    pass
            try:
                top.rmdir()
            except OSError:
                pass


# Which test process owns each node, so that a run killed before its teardown (SIGKILL, a lost
# CI job) leaves nothing behind for long: the next node start reaps what such a run left.
OWNERS = Path("/run/vidconv-nodes")


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def claim(id: str, root: Path) -> None:
    OWNERS.mkdir(exist_ok=True)
    (OWNERS / id).write_text(f"{os.getpid()} {_start_time(os.getpid())} {root}\n")


def release(id: str) -> None:
    (OWNERS / id).unlink(missing_ok=True)


def reap_orphans() -> list[str]:
    """End and remove every node whose owning process is gone; their ids."""
    reaped = []
    for owner in OWNERS.glob("*") if OWNERS.exists() else ():
        try:
            pid, started, root = owner.read_text().split()
        except (OSError, ValueError):
            continue
        if _start_time(int(pid)) == started:
            continue  # its test run is alive
        tree = CgroupTree(f"vidconv-node-{owner.name}")
        tree.kill(lambda: None)
        tree.remove()
        Network(owner.name, Path(root), ipaddress.IPv4Network("10.213.0.0/30")).down()
        subprocess.run(["rm", "-rf", root], capture_output=True)
        owner.unlink(missing_ok=True)
        reaped.append(owner.name)
    return reaped
