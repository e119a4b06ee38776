"""Quality per bit and speed of every profile and of the settings next to it, in one run.

A 20 s 1280x720 30 fps source with real detail and motion (a zooming Mandelbrot blended 30:70 with
testsrc2's moving pattern, a little temporal noise, x264 CRF 8: near-lossless) is converted by
every candidate; each output is compared with the source by VMAF (v0.6.1), SSIM and PSNR (luma),
and its video bitrate and speed are printed. Candidates are the profiles as the transcoder runs
them (``python -m vidconv.transcoder``, every ``preset``) and alternatives at neighbouring
speeds (plain ffmpeg, the same input and audio settings, only the video encoder's arguments
differ), measured interleaved so each sees the same load.

Speed is measured on the same content as a camera or phone uploads it (H.264 ~8 Mb/s + AAC;
decoding the near-lossless reference costs four times as much and would understate it), the
quality on the outputs made from the reference. Speed is given twice: ``x rt`` is wall-clock
real-time speed under whatever load the machine had (see the load average printed), ``x rt 2c``
is the speed two otherwise idle cores would give, from the CPU time the conversion used (media
seconds / (CPU seconds / 2)): on a shared machine the wall time swings with the neighbours, the
CPU time much less. The speed rule (>= 1.5x real time for 720p on 2 cores) is checked on
``x rt 2c``.

Metrics need libvmaf, which Debian's ffmpeg lacks: they are computed with the pip imageio-ffmpeg
static build; the encodes run with the ffmpeg the transcoder uses. Both sides are re-stamped by
frame number (``settb=1/30,setpts=N``) before comparing: Matroska, WebM and ASF outputs carry
millisecond timestamps and would otherwise pair the wrong frames.

    .venv/bin/python bench/quality.py [--seconds 20] [--runs 3] [--only x264,vp9]
                                      [--no-profiles] [--json results.json]
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
from dataclasses import dataclass, field
from pathlib import Path

from clips import ffmpeg_exe

FPS = 30
SIZE = "1280x720"


@dataclass
class Candidate:
    family: str  # x264, vp9, av1, mpeg4, mpeg2, wmv2
    label: str
    video: tuple[str, ...] = ()  # encoder arguments (alternatives)
    fmt: str = ""  # transcoder format (profiles); empty: an alternative
    preset: str = ""  # the profile's preset option
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    output: Path | None = None


# family -> (muxer, extension, audio arguments as the profile has them)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "x264": ("mp4", "mp4", ("-c:a", "aac", "-b:a", "128k")),
    "vp9": ("webm", "webm", ("-c:a", "libopus", "-b:a", "96k")),
    "av1": ("mp4", "mp4", ("-c:a", "aac", "-b:a", "128k")),
    "mpeg4": ("avi", "avi", ("-c:a", "libmp3lame", "-q:a", "2")),
    "mpeg2": ("mpeg", "mpeg", ("-c:a", "mp2", "-b:a", "192k")),
    "wmv2": ("asf", "wmv", ("-c:a", "wmav2", "-b:a", "128k")),
}
PROFILE_FAMILY = {"mp4": "x264", "mov": "x264", "mkv": "x264", "webm": "vp9", "avi": "mpeg4",
                  "mpeg": "mpeg2", "wmv": "wmv2", "av1": "av1"}


def x264(preset: str, crf: int) -> Candidate:
    return Candidate("x264", f"x264 {preset} crf {crf}",
                     ("-c:v", "libx264", "-preset", preset, "-crf", str(crf)))


def vp9(deadline: str, cpu: int, crf: int) -> Candidate:
    return Candidate("vp9", f"vp9 {deadline} cpu-used {cpu} crf {crf}",
                     ("-c:v", "libvpx-vp9", "-deadline", deadline, "-cpu-used", str(cpu),
                      "-row-mt", "1", "-tile-columns", "2", "-b:v", "0", "-crf", str(crf)))


def svt(preset: int, crf: int) -> Candidate:
    return Candidate("av1", f"svt-av1 preset {preset} crf {crf}",
                     ("-c:v", "libsvtav1", "-preset", str(preset), "-crf", str(crf)))


def quantiser(family: str, encoder: str, q: int, *extra: str) -> Candidate:
    tail = " " + " ".join(extra) if extra else ""
    return Candidate(family, f"{encoder} q {q}{tail}", ("-c:v", encoder, "-q:v", str(q), *extra))


# The settings next to each profile's points (the profiles themselves are measured as the
# transcoder runs them): other CRFs, presets and speeds, and the settings used before.
ALTERNATIVES = [
    x264("veryfast", 26), x264("faster", 23), x264("faster", 26), x264("fast", 23),
    x264("fast", 26), x264("medium", 26),
    vp9("realtime", 8, 33), vp9("realtime", 8, 40), vp9("realtime", 6, 37), vp9("good", 5, 40),
    svt(12, 40), svt(11, 40), svt(10, 38), svt(10, 42), svt(8, 40),
    quantiser("mpeg4", "mpeg4", 3, "-vtag", "xvid"),
    quantiser("mpeg4", "mpeg4", 4, "-vtag", "xvid"),
    quantiser("mpeg4", "mpeg4", 6, "-vtag", "xvid"),
    quantiser("mpeg2", "mpeg2video", 3), quantiser("mpeg2", "mpeg2video", 4),
    quantiser("mpeg2", "mpeg2video", 6),
    quantiser("wmv2", "wmv2", 3), quantiser("wmv2", "wmv2", 4), quantiser("wmv2", "wmv2", 6),
]


def profiles() -> list[Candidate]:
    from vidconv.formats import FORMATS
    from vidconv.options import OPTIONS

    presets = list(OPTIONS["preset"].choices) if "preset" in OPTIONS else [""]
    found = []
    for fmt, profile in FORMATS.items():
        if profile.video is None or fmt in ("mov", "mkv"):  # mov, mkv: mp4's video settings
            continue
        for preset in presets:
            found.append(Candidate(PROFILE_FAMILY[fmt], f"**{fmt}** {preset or 'default'}",
                                   fmt=fmt, preset=preset))
    return found


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_source(path: Path, seconds: float) -> None:
    """The reference: near-lossless (x264 CRF 8, PCM) in QuickTime, whose timestamps are exact
    (Matroska's millisecond ones would make constant-rate outputs repeat frames)."""
    video = (f"mandelbrot=size={SIZE}:rate={FPS}:end_pts={seconds * 20:g}:start_scale=3"
             f":end_scale=0.02,format=yuv420p")
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", video,
         "-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate={FPS},format=yuv420p",
         "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000",
         "-filter_complex", "[0:v][1:v]blend=all_expr='A*0.3+B*0.7',noise=alls=2:allf=t,"
                            "format=yuv420p[v]",
         "-map", "[v]", "-map", "2:a", "-t", f"{seconds:g}",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "8", "-c:a", "pcm_s16le",
         str(path)],
        check=True)


def make_upload(source: Path, path: Path) -> None:
    """The same content as a camera or phone writes it (H.264 at ~8 Mb/s, AAC): what the
    speeds are measured on. Decoding the near-lossless reference alone costs 0.5 CPU
    seconds per second of 720p, four times a typical upload's, and would understate them."""
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-maxrate", "10M",
         "-bufsize", "20M", "-c:a", "aac", "-b:a", "160k", str(path)], check=True)


def encode(c: Candidate, source: Path, work: Path, env: dict[str, str],
           timed: bool = True) -> None:
    """One encode of ``source``: timed (speed), or the one whose output is measured."""
    if c.fmt:
        out = work / f"{c.fmt}-{c.preset}-{int(timed)}.{c.fmt}"
        argv = [sys.executable, "-m", "vidconv.transcoder", "--input", str(source),
                "--output", str(out), "--format", c.fmt]
        if c.preset:
            argv += ["--option", f"preset={c.preset}"]
    else:
        muxer, ext, audio = FAMILIES[c.family]
        out = work / f"{abs(hash(c.label))}-{int(timed)}.{ext}"
        argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-i", str(source), "-map", "0:v:0", "-map", "0:a:0", *c.video,
                "-pix_fmt", "yuv420p", *audio, "-f", muxer, str(out)]
    cpu, start = children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{c.label} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if timed:
        c.walls.append(wall)
        c.cpus.append(cpu)
        out.unlink()
    else:
        c.output = out


def vmaf_ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def measure(c: Candidate, source: Path, work: Path) -> None:
    assert c.output is not None
    log = work / "vmaf.json"
    # Frame number as the timestamp, in a time base of one frame: setpts=N/(30*TB) alone
    # still leaves the two time bases (1/90000 vs 1/15360) to framesync, which pairs MPEG-PS
    # frames one off.
    restamp = f"settb=1/{FPS},setpts=N,format=yuv420p"
    graph = (f"[0:v]{restamp},scale={SIZE.replace('x', ':')}:flags=bicubic[d];"
             f"[1:v]{restamp}[r];[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads=2"
             ":feature=name=psnr|name=float_ssim")
    subprocess.run([vmaf_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error",
                    "-i", str(c.output), "-i", str(source), "-lavfi", graph, "-f", "null", "-"],
                   check=True)
    data = json.loads(log.read_text())
    pooled = data["pooled_metrics"]
    frames = len(data["frames"])
    expected = int(len(data["frames"]) and round(duration(source) * FPS))
    if frames != expected:
        print(f"warning: {c.label} has {frames} frames, the source {expected}: the pairing "
              "is off", file=sys.stderr)
    c.metrics = {"vmaf": pooled["vmaf"]["mean"], "ssim": pooled["float_ssim"]["mean"],
                 "psnr": pooled["psnr_y"]["mean"], "frames": frames,
                 "video_kbps": video_kbps(c.output)}


def duration(path: Path) -> float:
    exe = shutil.which("ffprobe") or "ffprobe"
    return float(subprocess.run([exe, "-v", "error", "-show_entries", "format=duration", "-of",
                                 "csv=p=0", str(path)], capture_output=True, text=True,
                                check=True).stdout)


def video_kbps(path: Path) -> float:
    """Bitrate of the video stream alone: its packets' bytes over its duration."""
    exe = shutil.which("ffprobe")
    if exe is None:
        raise SystemExit("ffprobe is needed (Debian's ffmpeg package has it)")
    out = subprocess.run([exe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=size,pts_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split(",") for line in out.split() if line]
    size = sum(int(r[1]) for r in rows if len(r) > 1 and r[1].isdigit())
    times = [float(r[0]) for r in rows if r[0] not in ("", "N/A")]
    span = (max(times) - min(times) + 1 / FPS) if times else 1.0
    return size * 8 / span / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3, help="encodes per candidate (speed)")
    parser.add_argument("--only", default="", help="families, e.g. x264,vp9")
    parser.add_argument("--no-profiles", action="store_true", help="alternatives only")
    parser.add_argument("--no-alternatives", action="store_true", help="profiles only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    candidates = ([] if args.no_profiles else profiles()) + \
        ([] if args.no_alternatives else list(ALTERNATIVES))
    if args.only:
        wanted = set(args.only.split(","))
        candidates = [c for c in candidates if c.family in wanted]
    work = Path(tempfile.mkdtemp(prefix="vidconv-quality-"))
    loads = [os.getloadavg()[0]]
    try:
        source = work / "source.mov"
        make_source(source, args.seconds)
        upload = work / "upload.mp4"
        make_upload(source, upload)
        scratch = work / "scratch"
        scratch.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDCONV_")}
        env.update({"VIDCONV_SCRATCH_DIR": str(scratch), "VIDCONV_LOG_LEVEL": "warning"})
        if os.environ.get("VIDCONV_FFMPEG"):
            env["VIDCONV_FFMPEG"] = os.environ["VIDCONV_FFMPEG"]
        for run in range(args.runs):  # interleaved: every candidate sees the same load
            order = candidates if run % 2 == 0 else candidates[::-1]
            for c in order:
                encode(c, upload, work, env)
                print(f"run {run + 1}/{args.runs} {c.label}: {c.walls[-1]:.1f} s "
                      f"({c.cpus[-1]:.1f} CPU s)", file=sys.stderr)
            loads.append(os.getloadavg()[0])
        for c in candidates:
            encode(c, source, work, env, timed=False)
            measure(c, source, work)
            c.output.unlink()
            print(f"{c.label}: VMAF {c.metrics['vmaf']:.2f}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.seconds:g} s {SIZE} {FPS} fps source, {os.cpu_count()} CPUs, "
          f"medians of {args.runs} encodes, load average {min(loads):.1f}..{max(loads):.1f}, "
          f"encodes with {ffmpeg_exe()}, metrics with {vmaf_ffmpeg()}\n")
    print("| family | settings | VMAF | SSIM | PSNR-Y dB | video Mb/s | x rt | x rt 2c |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for c in sorted(candidates, key=lambda c: (c.family, -statistics.median(
            [args.seconds / w for w in c.walls]))):
        m = c.metrics
        wall = statistics.median(c.walls)
        cpu = statistics.median(c.cpus)
        two = args.seconds / max(cpu / 2, 1e-9)
        mark = "" if two >= 1.5 else " (slow)"
        print(f"| {c.family} | {c.label} | {m['vmaf']:.1f} | {m['ssim']:.4f} | {m['psnr']:.1f} "
              f"| {m['video_kbps'] / 1000:.2f} | {args.seconds / wall:.2f}x | {two:.2f}x{mark} |")
        rows.append({"family": c.family, "label": c.label, **m, "wall": wall, "cpu": cpu,
                     "x_rt": args.seconds / wall, "x_rt_2c": two})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
