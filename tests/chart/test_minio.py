"""The bundled MinIO as the chart runs it: the real server with the rendered args, environment
and Secret, as the pod's user with a read-only root filesystem and only the pod's volumes
writable, answers its probes and takes the keys the API and the Jobs are given."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.chart.fixtures import RELEASE, Rendered, env_of, one

pytestmark = [pytest.mark.chart, pytest.mark.s3]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return int(r.status)
    except OSError:
        return 0


def _secret_values(docs: list[dict[str, Any]], env: dict[str, Any]) -> dict[str, str]:
    """A container's plain env, each secretKeyRef resolved from the rendered Secrets."""
    resolved = {}
    for name, value in env.items():
        if isinstance(value, str):
            resolved[name] = value
        elif "secretKeyRef" in value:
            ref = value["secretKeyRef"]
            data = one(docs, "Secret", ref["name"])["data"]
            resolved[name] = base64.b64decode(data[ref["key"]]).decode()
    return resolved


@pytest.fixture
def root() -> Iterator[Path]:
    """A dir the pod's user may walk through (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="vidconv-chart-minio-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_bundled_minio_runs_as_the_chart_starts_it(rendered: Rendered, root: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("running MinIO with a read-only root filesystem needs root (mount namespace)")
    docs = rendered["defaults"]
    pod = one(docs, "StatefulSet", f"{RELEASE}-vidconv-minio")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    uid, gid = pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
    assert uid != 0

    # Each volume mount becomes a fresh tmpfs owned by the pod's user (fsGroup's effect), at a
    # path of ours; the container's paths in args and env point there instead.
    mounts = {m["mountPath"]: root / m["name"] for m in container["volumeMounts"]}

    def local(value: str) -> str:
        for path, here in mounts.items():
            if value == path or value.startswith(path + "/"):
                return str(here) + value[len(path):]
        return value

    port = servers.free_port()
    args = [local(a) for a in container["args"]]
    args[args.index("--address") + 1] = f"127.0.0.1:{port}"  # the Service's port, on loopback
    env = {k: local(v) for k, v in _secret_values(docs, env_of(container)).items()}
    minio = servers.minio_binary()
    bin_dir = root / "bin"
    steps = [f"mount -t tmpfs -o mode=0755 bin {bin_dir}", f"cp {minio} {bin_dir}/minio"]
    for here in mounts.values():
        here.mkdir()
        steps.append(f"mount -t tmpfs -o mode=0770,uid={uid},gid={gid} {here.name} {here}")
    bin_dir.mkdir()
    steps += ["mount -o remount,bind,ro /",  # this namespace's view only: bind, never the fs
              f"exec setpriv --reuid {uid} --regid {gid} --clear-groups {bin_dir}/minio "
              + shlex.join(args)]
    log = root / "minio.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-ec", "; ".join(steps)],
            env={"PATH": os.environ["PATH"], **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        probes = {k: container[k]["httpGet"] for k in ("readinessProbe", "livenessProbe")}
        assert {p["port"] for p in probes.values()} == {container["ports"][0]["name"]}
        ready = f"http://127.0.0.1:{port}{probes['readinessProbe']['path']}"
        deadline = time.monotonic() + 30
        while _status(ready) != 200 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _status(ready) == 200, log.read_text(errors="replace")
        live = f"http://127.0.0.1:{port}{probes['livenessProbe']['path']}"
        assert _status(live) == 200

        # The API gets its keys from the same Secret: with them it can make its bucket and
        # write to it, so the root credentials reached MinIO under the names it reads.
        api = one(docs, "Deployment", f"{RELEASE}-vidconv-api")["spec"]["template"]["spec"]
        api_env = _secret_values(docs, env_of(api["containers"][0]))
        s3 = servers.S3Server(f"http://127.0.0.1:{port}", api_env["VIDCONV_S3_ACCESS_KEY"],
                              api_env["VIDCONV_S3_SECRET_KEY"], api_env["VIDCONV_S3_REGION"])
        client = s3.client()
        client.make_bucket(api_env["VIDCONV_S3_BUCKET"])
        client.fput_object(api_env["VIDCONV_S3_BUCKET"], "probe", str(log))
        assert client.stat_object(api_env["VIDCONV_S3_BUCKET"], "probe").size > 0
    finally:
        proc.terminate()
        proc.wait(10)
