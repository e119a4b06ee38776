"""Server memory while a 1 GiB upload streams in: peak RSS minus idle RSS (goal < 64 MiB).

Starts `vidconv serve` (SQLite, local storage), warms it up with one small upload, then sends a
multipart POST /api/tasks whose file part is 1 GiB, generated on the fly (never held in memory
on the client either). The server's VmHWM is reset just before the upload (/proc/PID/clear_refs)
and read after it; RSS is also sampled every 20 ms. With local storage the finished temp file is
renamed into place (S3 storage would add minio's 16 MiB multipart part buffer).

    .venv/bin/python bench/upload_memory.py [--gib 1]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import httpx
from apiserver import vidconv_server

MiB = 1024 * 1024
CHUNK = 1 * MiB
BOUNDARY = "vidconvbenchboundary"


def multipart_body(size: int):  # type: ignore[no-untyped-def]
    yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"conversion_type\"\r\n\r\n"
           f"mp4\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
           f"filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    block = os.urandom(CHUNK)
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        yield block[:n]
        sent += n
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    size = int(args.gib * 1024 * MiB)
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    with vidconv_server(VIDCONV_WORKERS="1", VIDCONV_MAX_UPLOAD_BYTES=str(2 * size)) as server:
        auth = server.login()
        with httpx.Client(base_url=server.url, timeout=600) as http:
            warm = http.post("/api/tasks", headers={**auth, **headers},
                             content=multipart_body(4 * MiB))
            warm.raise_for_status()
            time.sleep(1.0)
            idle = server.rss_kib()
            server.reset_peak()
            samples: list[int] = []
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    samples.append(server.rss_kib())
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            start = time.monotonic()
            r = http.post("/api/tasks", headers={**auth, **headers}, content=multipart_body(size))
            elapsed = time.monotonic() - start
            done.set()
            sampler.join()
            peak = max(server.hwm_kib(), *samples)
        print(f"upload status {r.status_code}: {r.text.strip()}")
        rate = size / MiB / elapsed
        print(f"uploaded {size / MiB:.0f} MiB in {elapsed:.1f} s ({rate:.0f} MiB/s)")
        print(f"idle RSS {idle / 1024:.1f} MiB, peak RSS during upload {peak / 1024:.1f} MiB")
        delta = (peak - idle) / 1024
        print(f"peak - idle = {delta:.1f} MiB (goal < 64 MiB): {'OK' if delta < 64 else 'OVER'}")


if __name__ == "__main__":
    main()
