"""Transcoder overhead and speed per format, against raw ffmpeg running the same argv.

For a generated 1280x720 30 fps clip (default 20 s, H.264 + AAC), and each format: the wall time of
``python -m vidconv.transcoder`` (download to scratch, probe, ffmpeg, verify, deliver) and of plain
ffmpeg running exactly the ``command`` from the transcoder's result (paths rewritten),
interleaved in the same run. Prints medians, the ratio transcoder/ffmpeg (median of the ratios of
back-to-back pairs; goal <= 1.10) and the x real-time speed.

    .venv/bin/python bench/transcode.py [--runs 3] [--seconds 20] [--formats mp4,webm]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clips import make_clip

from vidconv.formats import format_names


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_transcoder(clip: Path, out: Path, fmt: str, env: dict[str, str]
                   ) -> tuple[float, float, dict]:
    """(wall s, CPU s of the transcoder and its ffmpeg/ffprobe children, result)."""
    cmd = [sys.executable, "-m", "vidconv.transcoder", "--input", str(clip), "--output",
           str(out), "--format", fmt]
    cpu, start = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - start, children_cpu() - cpu
    result = json.loads(proc.stdout.splitlines()[-1])
    if proc.returncode != 0:
        raise SystemExit(f"transcoder failed for {fmt}: {result}\n{proc.stderr[-2000:]}")
    return elapsed, cpu, result


def rewrite(command: list[str], clip: Path, out: Path) -> list[str]:
    """The transcoder's argv, reading our clip and writing next to it (scratch is gone)."""
    argv = list(command)
    i = argv.index("-i")
    argv[i + 1] = f"file:{clip}"
    argv[-1] = f"file:{out}"
    return argv


def run_raw(argv: list[str]) -> tuple[float, float]:
    cpu, start = children_cpu(), time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, children_cpu() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--formats", default=",".join(format_names()))
    args = parser.parse_args()
    formats = args.formats.split(",")

    work = Path(tempfile.mkdtemp(prefix="vidconv-bench-"))
    try:
        clip = work / "clip.mp4"
        make_clip(clip, args.seconds)
        scratch = work / "scratch"
        scratch.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCONV_")}
        env.update({"VIDCONV_SCRATCH_DIR": str(scratch), "VIDCONV_LOG_LEVEL": "warning"})
        if os.environ.get("VIDCONV_FFMPEG"):
            env["VIDCONV_FFMPEG"] = os.environ["VIDCONV_FFMPEG"]
        # per format: transcoder wall, ffmpeg wall, transcoder CPU, ffmpeg CPU
        times: dict[str, tuple[list[float], ...]] = {f: ([], [], [], []) for f in formats}
        # A first transcoder run per format warms the caches and gives the argv to replay.
        commands = {f: run_transcoder(clip, work / f"t.{f}", f, env)[2]["command"]
                    for f in formats}
        source = commands[formats[0]][0]
        for run in range(args.runs):
            for fmt in formats:  # interleaved, in alternating order: same load on both sides
                raw_argv = rewrite(commands[fmt], clip, work / f"r.{fmt}")
                if run % 2:
                    raw, raw_cpu = run_raw(raw_argv)
                t, t_cpu, _ = run_transcoder(clip, work / f"t.{fmt}", fmt, env)
                if not run % 2:
                    raw, raw_cpu = run_raw(raw_argv)
                for series, value in zip(times[fmt], (t, raw, t_cpu, raw_cpu), strict=True):
                    series.append(value)
                print(f"run {run + 1}/{args.runs} {fmt:5s} transcoder {t:6.2f} s "
                      f"({t_cpu:.2f} CPU)  ffmpeg {raw:6.2f} s ({raw_cpu:.2f} CPU)",
                      file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.seconds:g} s 1280x720 30 fps H.264+AAC input, {os.cpu_count()} CPUs, "
          f"medians of {args.runs} runs, ffmpeg {source}\n")
    print("| format | ffmpeg wall (s) | transcoder wall (s) | ratio | x real time | "
          "CPU s ffmpeg / transcoder | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for fmt in formats:
        t, raw, t_cpu, raw_cpu = (statistics.median(v) for v in times[fmt])
        # Ratios pair each transcoder run with the ffmpeg run next to it (same load).
        walls, cpus = zip(*times[fmt][:2], strict=True), zip(*times[fmt][2:], strict=True)
        ratio = statistics.median(a / b for a, b in walls)
        cpu_ratio = statistics.median(a / b for a, b in cpus)
        worst = max(worst, ratio)
        print(f"| {fmt} | {raw:.2f} | {t:.2f} | {ratio:.3f} | {args.seconds / t:.1f}x "
              f"| {raw_cpu:.2f} / {t_cpu:.2f} | {cpu_ratio:.3f} |")
    print(f"\nworst wall-time ratio {worst:.3f} (goal <= 1.10); load average now "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
