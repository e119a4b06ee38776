"""Bytes through the API against baselines run side by side: uploads against a trivial Python
sink, downloads against `python -m http.server`, server memory while they run.

One machine, loopback, curl as the client (C, streams from and to files: the client is not
what is measured). Each round, interleaved:

- upload of one file (--mib, 1024) to: the sink (a bare ASGI app under uvicorn with the flags
  `vidconv serve` uses, writing the body to a file, chunk by chunk); vidconv's tus PATCH (one
  request with the whole file); vidconv's seed multipart POST /api/tasks;
- the same with 8 uploads of 256 MiB at once (--concurrent, --concurrent-mib), sink and tus;
- download of the file: vidconv GET /api/download (local storage) and `python -m http.server`.

vidconv runs with SQLite and local storage. The download's task is a real conversion of a
small clip whose output file the bench then replaces with the big file (the download reads
the object, whatever wrote it). Server memory: VmHWM reset before each transfer, peak minus
the RSS before it. Prints medians of the rounds and the ratios to the baselines.

    .venv/bin/python bench/transfer.py [--mib 1024] [--rounds 3] [--concurrent 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
from apiserver import Server, _status_kib, free_port, stop, vidconv_server

MiB = 1024 * 1024

SINK_APP = textwrap.dedent('''
    import sys, uvicorn

    TARGET = sys.argv[2]

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        with open(f"{TARGET}.{id(scope)}", "wb") as out:
            while True:
                message = await receive()
                out.write(message.get("body", b""))
                if not message.get("more_body"):
                    break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                proxy_headers=True, server_header=False)
''')


@contextmanager
def process(args: list[str], port: int, cwd: Path | None = None) -> Iterator[int]:
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"{args} did not start"
                time.sleep(0.1)
        yield proc.pid
    finally:
        stop(proc)


def curl(*args: str) -> float:
    """Seconds curl took (curl's own clock), after checking the answer."""
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", "Expect:", "-w",
                          "%{http_code} %{time_total}", *args],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] in ("200", "201", "204"), (out, args)
    return float(out[1])


class Peak:
    """Peak RSS of a process while a block runs, minus its RSS before (KiB)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.delta = pid, 0

    def __enter__(self) -> Peak:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.before = _status_kib(self.pid, "VmRSS")
        return self

    def __exit__(self, *_: object) -> None:
        self.delta = _status_kib(self.pid, "VmHWM") - self.before


def make_file(path: Path, size: int) -> None:
    block = os.urandom(8 * MiB)
    with path.open("wb") as out:
        left = size
        while left:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def tus_create(server: Server, auth: dict[str, str], size: int) -> str:
    r = httpx.post(server.url + "/api/uploads/", headers={
        **auth, "Tus-Resumable": "1.0.0", "Upload-Length": str(size),
        "Upload-Metadata": "filename YmlnLmJpbg=="}, timeout=30)
    r.raise_for_status()
    return server.url + r.headers["location"]


def tus_args(url: str, auth: dict[str, str], path: Path) -> list[str]:
    return ["-X", "PATCH", "-T", str(path), "-H", f"Authorization: {auth['Authorization']}",
            "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
            "-H", "Content-Type: application/offset+octet-stream", url]


def delete(url: str, auth: dict[str, str]) -> None:
    httpx.delete(url, headers={**auth, "Tus-Resumable": "1.0.0"}, timeout=60)


def parallel(runs: list[Callable[[], float]]) -> float:
    """Wall-clock seconds for all of ``runs`` at once."""
    threads = [threading.Thread(target=run) for run in runs]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def settle(tmp: Path) -> None:
    """Before each transfer: no file of an earlier one left, nothing of it left to write back
    (else its disk writes slow down the next, whichever that is)."""
    for f in (tmp / "sink").iterdir():
        f.unlink()
    os.sync()


def clean_tasks(server: Server, auth: dict[str, str], keep: str) -> None:
    """The multipart uploads made tasks (that fail: random bytes); their files go."""
    for task in httpx.get(server.url + "/api/tasks", headers=auth).json()["tasks"]:
        if task["task_id"] != keep:
            httpx.delete(f"{server.url}/api/tasks/{task['task_id']}", headers=auth, timeout=60)


def download_task(server: Server, auth: dict[str, str], big: Path, tmp: Path) -> str:
    """A finished task whose output file is ``big``."""
    clip = tmp / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=10:duration=1", "-pix_fmt", "yuv420p",
                    str(clip)], check=True)
    with clip.open("rb") as f:
        r = httpx.post(server.url + "/api/tasks", headers=auth, timeout=60,
                       files={"file": ("clip.mp4", f)}, data={"conversion_type": "mp4"})
    task_id = r.json()["task_id"]
    for _ in range(600):
        task = httpx.get(f"{server.url}/api/tasks/{task_id}", headers=auth).json()
        if task["state"] == "SUCCESS":
            break
        time.sleep(0.1)
    output = server.data_dir / "objects" / "outputs" / task_id / task["result"]
    output.unlink()
    os.link(big, output)  # same disk: the big file itself, no copy
    return str(task_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--concurrent-mib", type=int, default=256)
    args = parser.parse_args()
    size, small = args.mib * MiB, args.concurrent_mib * MiB
    results: dict[str, list[tuple[float, int]]] = {}

    def record(name: str, seconds: float, nbytes: int, memory_kib: int) -> None:
        results.setdefault(name, []).append((nbytes / MiB / seconds, memory_kib))

    with tempfile.TemporaryDirectory(prefix="vidconv-bench-") as tmpdir, \
            vidconv_server(VIDCONV_WORKERS="1",
                           VIDCONV_MAX_UPLOAD_BYTES=str(2 * size)) as server:
        tmp = Path(tmpdir).resolve()
        big, part = tmp / "big.bin", tmp / "part.bin"
        make_file(big, size)
        make_file(part, small)
        (tmp / "sink").mkdir()
        auth = server.login()
        task_id = download_task(server, auth, big, tmp)
        sink_port, static_port = free_port(), free_port()
        script = tmp / "sink.py"
        script.write_text(SINK_APP)
        with process([sys.executable, str(script), str(sink_port), str(tmp / "sink" / "body")],
                     sink_port) as sink_pid, \
                process([sys.executable, "-m", "http.server", str(static_port), "--bind",
                         "127.0.0.1"], static_port, cwd=tmp) as static_pid:
            sink = f"http://127.0.0.1:{sink_port}/"
            token = f"Authorization: {auth['Authorization']}"
            n = args.concurrent

            def sink_one() -> float:
                return curl("-X", "POST", "-T", str(big), sink)

            def tus_one() -> float:
                url = tus_create(server, auth, size)
                try:
                    with Peak(server.pid) as mem:
                        return curl(*tus_args(url, auth, big))
                finally:
                    inner["tus"] = mem.delta
                    delete(url, auth)

            def multipart_one() -> float:
                return curl("-H", token, "-F", "conversion_type=mp4", "-F", f"file=@{big}",
                            server.url + "/api/tasks")

            def sink_many() -> float:
                return parallel([partial(curl, "-X", "POST", "-T", str(part), sink)] * n)

            def tus_many() -> float:
                urls = [tus_create(server, auth, small) for _ in range(n)]
                try:
                    with Peak(server.pid) as mem:
                        return parallel([partial(curl, *tus_args(u, auth, part)) for u in urls])
                finally:
                    inner["tus"] = mem.delta
                    for u in urls:
                        delete(u, auth)

            def static_get() -> float:
                return curl(f"http://127.0.0.1:{static_port}/big.bin")

            def vidconv_get() -> float:
                return curl("-H", token, f"{server.url}/api/download?task_id={task_id}")

            inner: dict[str, int] = {}
            # (name, run, bytes, process whose memory counts); each pair: baseline, vidconv.
            pairs: list[list[tuple[str, Callable[[], float] | None, int, int]]] = [
                [("upload: sink", sink_one, size, sink_pid),
                 ("upload: vidconv tus PATCH", tus_one, size, 0)],
                [("upload: sink", None, size, sink_pid),
                 ("upload: vidconv multipart POST", multipart_one, size, server.pid)],
                [(f"{n} x upload: sink", sink_many, n * small, sink_pid),
                 (f"{n} x upload: vidconv tus PATCH", tus_many, n * small, 0)],
                [("download: python -m http.server", static_get, size, static_pid),
                 ("download: vidconv GET /api/download", vidconv_get, size, server.pid)],
            ]
            for round_ in range(args.rounds):
                for pair in pairs:
                    # Baseline first in even rounds, vidconv first in odd ones.
                    for name, run, nbytes, pid in pair[:: -1 if round_ % 2 else 1]:
                        if run is None:
                            continue  # the sink's run of the pair above is its baseline
                        settle(tmp)
                        if pid:
                            with Peak(pid) as mem:
                                seconds = run()
                            used = mem.delta
                        else:  # measured inside run() (around the transfer only)
                            seconds = run()
                            used = inner["tus"]
                        record(name, seconds, nbytes, used)
                clean_tasks(server, auth, keep=task_id)

    n = args.concurrent
    baselines = {"upload: vidconv tus PATCH": "upload: sink",
                 "upload: vidconv multipart POST": "upload: sink",
                 f"{n} x upload: vidconv tus PATCH": f"{n} x upload: sink",
                 "download: vidconv GET /api/download": "download: python -m http.server"}
    print(f"{args.mib} MiB file, {args.concurrent} x {args.concurrent_mib} MiB at once, "
          f"{args.rounds} rounds, {os.cpu_count()} cores, loopback, curl as the client")
    summary = {}
    for name, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        memory = max(m for _, m in runs) / 1024
        line = f"  {name:40s} median {rate:7.0f} MiB/s   peak RSS +{memory:5.1f} MiB"
        entry: dict[str, object] = {"MiB/s": round(rate), "rounds": [round(r) for r, _ in runs],
                                    "peak_rss_mib": round(memory, 1)}
        if name in baselines:
            base_runs = [r for r, _ in results[baselines[name]]]
            # Each round's ratio to the baseline measured next to it, then their median: the
            # load of a shared machine drifts between rounds more than within one.
            paired = statistics.median(r / b for (r, _), b in zip(runs, base_runs, strict=True))
            line += (f"   x{rate / statistics.median(base_runs):.2f} of the baseline's median,"
                     f" x{paired:.2f} paired")
            entry["ratio"], entry["paired_ratio"] = (round(rate / statistics.median(base_runs), 2),
                                                     round(paired, 2))
        print(line)
        summary[name] = entry
    print(json.dumps(summary))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
