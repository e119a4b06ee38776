"""Submit-to-SUCCESS through the Helm-installed release against the transcoder image run
directly by the container runtime, same clip, same run: what the cluster costs per conversion.

The cluster is the tests' (``tests/kubernetes/kubelet.py``: the real control plane and a real
node, kubelet on containerd) with the images ``make images CONTAINER_TOOL=buildah`` built and the
release installed by the Helm library (``tests/e2e/local.py``: PostgreSQL and MinIO external).
A generated 1280x720 30 fps clip (default 20 s, H.264 + AAC) goes to mp4:

- direct: runc runs the transcoder image with the argv and environment a Job's pod gets
  (``--input s3://... --output s3://...`` against the same MinIO, a tmpfs scratch, read-only
  root, its user), from the start of runc to its exit;
- cluster: from the start of the upload (POST /api/tasks through the API Service's NodePort)
  until a poll of GET /api/tasks/{id} (every 50 ms) sees SUCCESS: upload to S3, the
  ConversionTask, the operator's Job, scheduling, the kubelet's pod and container start, the same
  transcoder, the status back through the CR into the row.

Runs interleave (alternating which goes first); medians, the ratio and the seconds the cluster
adds are printed. Needs root (buildah, runc, containerd); about 4 minutes on 2 cores with warm
caches.

    .venv/bin/python bench/cluster.py [--runs 3] [--seconds 20] [--format mp4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
from clips import make_clip

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402
from tests.chart.fixtures import CHART  # noqa: E402
from tests.e2e.local import installed  # noqa: E402
from tests.images import oci  # noqa: E402
from tests.kubernetes import kubelet  # noqa: E402
from tests.kubernetes.realnode import CRD  # noqa: E402


def time_direct(runtime: oci.Runtime, image: oci.Image, s3: servers.S3Server, bucket: str,
                key: str, fmt: str) -> float:
    container = runtime.container(
        image, ["--input", f"s3://{bucket}/{key}", "--output",
                f"s3://{bucket}/direct-{uuid.uuid4().hex[:8]}.{fmt}", "--format", fmt],
        env=s3.env(bucket), mounts=[oci.Mount("/scratch")])
    start = time.monotonic()
    done = runtime.run(container, timeout=600)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    return elapsed


def time_cluster(http: httpx.Client, clip: Path, fmt: str) -> tuple[float, float, float]:
    """(submit-to-SUCCESS, of which the upload, of which the task ran: finished - started)."""
    start = time.monotonic()
    with clip.open("rb") as f:
        r = http.post("/api/tasks", files={"file": (clip.name, f)}, data={"conversion_type": fmt})
    r.raise_for_status()
    uploaded = time.monotonic() - start
    task_id = r.json()["task_id"]
    while True:
        task = http.get(f"/api/tasks/{task_id}").json()
        if task["state"] == "SUCCESS":
            total = time.monotonic() - start
            ran = (datetime.fromisoformat(task["finished_at"])
                   - datetime.fromisoformat(task["started_at"])).total_seconds()
            return total, uploaded, ran
        if task["state"] in ("FAILURE", "REVOKED"):
            raise RuntimeError(task)
        time.sleep(0.05)


def login(url: str) -> dict[str, str]:
    name = "bench" + uuid.uuid4().hex[:8]
    with httpx.Client(base_url=url, timeout=60) as http:
        http.post("/api/auth/signup", json={
            "username": name, "email": f"{name}@example.com", "password1": "bench-Passw0rd!",
            "password2": "bench-Passw0rd!"}).raise_for_status()
        token = http.post("/api/auth/login", json={
            "username": name, "password": "bench-Passw0rd!"}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--format", default="mp4")
    args = parser.parse_args()
    reason = oci.missing() or kubelet.missing()
    if reason:
        sys.exit(f"bench/cluster.py: {reason}")
    import helm_python

    helm_python.disable_logging()
    with tempfile.TemporaryDirectory(prefix="vidconv-bench-cluster-") as tmp_name:
        tmp = Path(tmp_name)
        clip = tmp / "clip.mp4"
        make_clip(clip, args.seconds)
        started = time.monotonic()
        images = oci.build(tmp / "images.log")
        built = time.monotonic() - started
        direct: list[float] = []
        cluster: list[float] = []
        uploads: list[float] = []
        ran: list[float] = []
        runtime = oci.Runtime()
        with servers.postgres_server() as postgres, servers.minio_server() as s3, \
                kubelet.cluster(list(images.values()), CRD) as node, \
                helm_python.Chart.load(CHART) as chart, \
                installed(node, helm_python, chart, postgres, s3, images, tmp) as release, \
                oci.mounted(images["transcoder"]) as transcoder:
            up = time.monotonic() - started - built
            bucket = release.values["s3"]["bucket"]
            s3.client().fput_object(bucket, "bench-input.mp4", str(clip))
            with httpx.Client(base_url=release.url, headers=login(release.url),
                              timeout=120) as http:
                for i in range(args.runs):
                    # Alternate which goes first: load from elsewhere drifts within a pair.
                    if i % 2 == 0:
                        direct.append(time_direct(runtime, transcoder, s3, bucket,
                                                  "bench-input.mp4", args.format))
                    total, upload, run = time_cluster(http, clip, args.format)
                    cluster.append(total)
                    uploads.append(upload)
                    ran.append(run)
                    if i % 2 == 1:
                        direct.append(time_direct(runtime, transcoder, s3, bucket,
                                                  "bench-input.mp4", args.format))
        runtime.close()
    d, c = statistics.median(direct), statistics.median(cluster)
    print(f"{args.seconds:g} s 1280x720 clip -> {args.format}, {args.runs} runs interleaved, "
          f"{os.cpu_count()} cores (images {built:.0f} s, cluster and release up {up:.0f} s)")
    for name, median, runs in (("direct (runc)", d, direct), ("cluster (Helm)", c, cluster)):
        print(f"  {name:15s} median {median:6.2f} s  runs {', '.join(f'{t:.2f}' for t in runs)}")
    print(f"  ratio cluster/direct = {c / d:.3f}; median of the paired ratios "
          f"{statistics.median(x / y for x, y in zip(cluster, direct, strict=True)):.3f}")
    print(f"  the cluster's cost per conversion (median) {c - d:+.2f} s, of which the upload "
          f"{statistics.median(uploads):.2f} s; submit to STARTED (the Job has a pod) "
          f"{statistics.median(t - r for t, r in zip(cluster, ran, strict=True)):.2f} s, "
          f"STARTED to SUCCESS {statistics.median(ran):.2f} s")


if __name__ == "__main__":
    main()
