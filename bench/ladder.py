"""The hls ladder: one ffmpeg run for every rendition, against one run per rendition, against a
single mp4 of the same input, interleaved in the same rounds.

For a detailed 1280x720 30 fps source (bench/quality.py's mandelbrot + testsrc2 + noise,
uploaded as a phone would, H.264 ~8 Mb/s + AAC): the wall and CPU time of

- ``mp4``: ``python -m vidconv.transcoder --format mp4`` (one 720p rendition, the baseline);
- ``hls``: ``--format hls`` (720p, 480p, 360p and the audio, one ffmpeg run, packaged);
- ``several``: the same renditions, one plain ffmpeg run each, one after the other (the
  arguments the hls run gives each rendition; ``--ladder-preset``), and one for the audio;

medians, the ratios hls/mp4 and several/hls, and x real time. Then, from one hls run, each
rendition's size, measured video bitrate, and VMAF against the source (imageio-ffmpeg's build
has libvmaf; a lower rendition is scaled back up to 720p to be compared, as a player shows it).

    .venv/bin/python bench/ladder.py [--runs 3] [--seconds 20] [--no-vmaf]
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
from pathlib import Path

from clips import ffmpeg_exe
from quality import children_cpu, make_source, make_upload, video_kbps, vmaf_ffmpeg

from vidconv.ladder import SEGMENT_SECONDS, rungs

SIZE = (1280, 720)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    cpu, start = children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - start, children_cpu() - cpu


def transcoder(source: Path, out: Path, fmt: str) -> list[str]:
    return [sys.executable, "-m", "vidconv.transcoder", "--input", str(source), "--output",
            str(out), "--format", fmt]


def separate_runs(source: Path, folder: Path, preset: str, crf: int) -> list[list[str]]:
    """One plain ffmpeg per rendition (as a naive packager would run them), and the audio."""
    runs = []
    for rung in rungs(SIZE[1]):
        runs.append([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                     "-i", str(source), "-map", "0:v:0", "-vf",
                     f"scale=-2:{rung.height},format=yuv420p", "-c:v", "libx264",
                     "-preset", preset, "-crf", str(crf), "-maxrate", f"{rung.maxrate}k",
                     "-bufsize", f"{2 * rung.maxrate}k", "-force_key_frames",
                     f"expr:gte(t,n_forced*{SEGMENT_SECONDS})", "-an",
                     "-movflags", "+frag_keyframe+empty_moov", str(folder / f"{rung.name}.mp4")])
    runs.append([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                 "-i", str(source), "-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-vn",
                 str(folder / "audio.m4a")])
    return runs


def vmaf(distorted: Path, source: Path, work: Path) -> float:
    log = work / "vmaf.json"
    restamp = "settb=1/30,setpts=N,format=yuv420p"
    graph = (f"[0:v]{restamp},scale={SIZE[0]}:{SIZE[1]}:flags=bicubic[d];[1:v]{restamp}[r];"
             f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads=2")
    subprocess.run([vmaf_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error",
                    "-i", str(distorted), "-i", str(source), "-lavfi", graph, "-f", "null", "-"],
                   check=True)
    return float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ladder-preset", default="veryfast")
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--no-vmaf", action="store_true")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCONV_")}
    with tempfile.TemporaryDirectory(prefix="vidconv-ladder-") as tmp:
        work = Path(tmp)
        reference, source = work / "reference.mov", work / "upload.mp4"
        make_source(reference, args.seconds)
        make_upload(reference, source)
        env["VIDCONV_SCRATCH_DIR"] = str(work / "scratch")
        walls: dict[str, list[float]] = {"mp4": [], "hls": [], "several": []}
        cpus: dict[str, list[float]] = {k: [] for k in walls}
        for n in range(args.runs):
            order = ["mp4", "hls", "several"] if n % 2 == 0 else ["several", "hls", "mp4"]
            for kind in order:
                out = work / f"{kind}-{n}"
                out.mkdir()
                if kind == "several":
                    wall = cpu = 0.0
                    for argv in separate_runs(source, out, args.ladder_preset, args.crf):
                        w, c = timed(argv, env)
                        wall, cpu = wall + w, cpu + c
                else:
                    name = "clip.mp4" if kind == "mp4" else "master.m3u8"
                    wall, cpu = timed(transcoder(source, out / name, kind), env)
                walls[kind].append(wall)
                cpus[kind].append(cpu)
        med = {k: statistics.median(v) for k, v in walls.items()}
        cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
        print(f"{args.seconds:g} s of 1280x720 30 fps, {args.runs} rounds, load "
              f"{os.getloadavg()[0]:.1f}")
        for kind in walls:
            print(f"  {kind:8s} wall median {med[kind]:6.2f} s ({args.seconds / med[kind]:.2f}x "
                  f"real time), CPU {cpu_med[kind]:6.2f} s, runs "
                  f"{', '.join(f'{w:.2f}' for w in walls[kind])}")
        print(f"  hls / mp4: wall {med['hls'] / med['mp4']:.2f}, CPU "
              f"{cpu_med['hls'] / cpu_med['mp4']:.2f}")
        print(f"  several / hls: wall {med['several'] / med['hls']:.2f}, CPU "
              f"{cpu_med['several'] / cpu_med['hls']:.2f}")

        package = work / "hls-0"
        mp4 = work / "mp4-0" / "clip.mp4"
        rows = [("mp4 720p", mp4)] + [(f"hls {r.name}", package / f"{r.name}.mp4")
                                      for r in rungs(SIZE[1])]
        print("  rendition      bytes     video kbit/s   cap kbit/s   VMAF")
        caps = {f"hls {r.name}": r.maxrate for r in rungs(SIZE[1])}
        for label, path in rows:
            score = "" if args.no_vmaf else f"{vmaf(path, reference, work):6.2f}"
            print(f"  {label:12s} {path.stat().st_size:9d}   {video_kbps(path):10.0f}   "
                  f"{caps.get(label, '–')!s:>10}   {score}")
        total = sum(p.stat().st_size for p in package.iterdir())
        print(f"  hls package {total} bytes in {len(list(package.iterdir()))} files "
              f"({total / mp4.stat().st_size:.2f}x the mp4)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
