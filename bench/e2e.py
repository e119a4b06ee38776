"""Submit-to-SUCCESS through the running service against raw ffmpeg, same clip, same run.

A generated 1280x720 30 fps clip (default 20 s, H.264 + AAC) goes to mp4. Raw ffmpeg runs the
exact argv the transcoder ran (its result's ``command``, paths rewritten to local files). The
service time runs from the start of the upload (POST /api/tasks, multipart) until a poll of
GET /api/tasks/{id} (every 50 ms) sees SUCCESS: upload, queueing, the transcoder's probe and
verify, progress writes, the result into the row. Runs interleave (alternating which goes
first); medians, the ratio (goal <= 1.15) and the part spent outside the transcoder are printed.

    .venv/bin/python bench/e2e.py [--runs 3] [--seconds 20] [--format mp4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from apiserver import vidconv_server
from clips import make_clip


def transcoder_command(clip: Path, fmt: str, tmp: Path) -> list[str]:
    """The argv the transcoder runs for this clip, rewritten to read and write local files."""
    out = tmp / f"probe-run.{fmt}"
    proc = subprocess.run(
        [sys.executable, "-m", "vidconv.transcoder", "--input", str(clip), "--output", str(out),
         "--format", fmt], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    cmd: list[str] = result["command"]
    # The transcoder reads scratch/input and writes scratch/output.<ext>: point them here.
    cmd = [f"file:{clip}" if a.startswith("file:") and a.endswith("/input") else a for a in cmd]
    cmd[-1] = f"file:{tmp / ('raw.' + fmt)}"
    return cmd


def time_raw(cmd: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def time_service(url: str, auth: dict[str, str], clip: Path, fmt: str) -> tuple[float, float]:
    """(submit-to-SUCCESS seconds, of which the transcoder ran: finished_at - started_at)."""
    with httpx.Client(base_url=url, headers=auth, timeout=120) as http:
        start = time.monotonic()
        with clip.open("rb") as f:
            r = http.post("/api/tasks", files={"file": (clip.name, f)},
                          data={"conversion_type": fmt})
        r.raise_for_status()
        task_id = r.json()["task_id"]
        while True:
            state = http.get(f"/api/tasks/{task_id}").json()
            if state["state"] == "SUCCESS":
                total = time.monotonic() - start
                ran = (datetime.fromisoformat(state["finished_at"])
                       - datetime.fromisoformat(state["started_at"])).total_seconds()
                return total, ran
            if state["state"] in ("FAILURE", "REVOKED"):
                raise RuntimeError(state)
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--format", default="mp4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidconv-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        clip = tmp / "clip.mp4"
        make_clip(clip, args.seconds)
        cmd = transcoder_command(clip, args.format, tmp)
        raw: list[float] = []
        service: list[float] = []
        ran: list[float] = []
        with vidconv_server(VIDCONV_WORKERS="1") as server:
            auth = server.login()
            for i in range(args.runs):
                # Alternate which goes first: load from elsewhere drifts within a pair.
                if i % 2 == 0:
                    raw.append(time_raw(cmd))
                total, run = time_service(server.url, auth, clip, args.format)
                service.append(total)
                ran.append(run)
                if i % 2 == 1:
                    raw.append(time_raw(cmd))
    raw_m, svc_m = statistics.median(raw), statistics.median(service)
    print(f"{args.seconds:g} s 1280x720 clip -> {args.format}, {args.runs} runs interleaved, "
          f"{os.cpu_count()} cores")
    for name, median, runs in (("raw ffmpeg", raw_m, raw), ("vidconv service", svc_m, service)):
        print(f"  {name:16s} median {median:6.2f} s  runs {', '.join(f'{t:.2f}' for t in runs)}")
    print(f"  ratio service/raw = {svc_m / raw_m:.3f} (goal <= 1.15); median of the paired "
          f"ratios {statistics.median(s / r for s, r in zip(service, raw, strict=True)):.3f}")
    outside = statistics.median(t - r for t, r in zip(service, ran, strict=True))
    print(f"  absolute overhead (median) {svc_m - raw_m:+.2f} s, of which outside the transcoder "
          f"(upload, queue, row writes, polling) {outside:+.2f} s")


if __name__ == "__main__":
    main()
