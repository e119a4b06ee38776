"""An adaptive stream through the real server (`vidconv serve` under uvicorn): the package a
player reads over plain GETs with the signed links of the task's detail, ffmpeg playing it end
to end through them, links refused once expired or for another task, and the package as a zip.
"""

from __future__ import annotations

import io
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from tests.api.helpers import PASSWORD
from tests.conftest import ffmpeg_path
from tests.live import LiveServer, running
from tests.media import ffprobe, streams
from vidconv.api.security import sign_files
from vidconv.settings import Settings

Clip = Callable[..., Path]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with running(tmp_path / "var", {"VIDCONV_MAX_UPLOAD_BYTES": str(50 * 1024 * 1024)}) as s:
        yield s


def _login(http: httpx.Client, name: str) -> dict[str, str]:
    body = {"username": name, "email": f"{name}@example.com", "password1": PASSWORD,
            "password2": PASSWORD}
    assert http.post("/api/auth/signup", json=body).status_code == 201
    token = http.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['token']}"}


def _convert(http: httpx.Client, auth: dict[str, str], clip: Path, **fields: str
             ) -> dict[str, Any]:
    with clip.open("rb") as f:
        r = http.post("/api/tasks", headers=auth, files={"file": (clip.name, f)},
                      data={"conversion_type": "hls", **fields})
    assert r.status_code == 201, r.text
    task_id = r.json()["task_id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        task: dict[str, Any] = http.get(f"/api/tasks/{task_id}", headers=auth).json()
        if task["state"] in ("SUCCESS", "FAILURE"):
            return task
        time.sleep(0.2)
    raise AssertionError(f"stuck: {task}")


def test_an_hls_task_plays_through_its_signed_links_and_only_through_them(
        server: LiveServer, make_clip: Clip, tmp_path: Path) -> None:
    clip = make_clip(seconds=9.0, width=854, height=480, fps=24)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        auth = _login(http, "ana")
        task = _convert(http, auth, clip, thumbnail="jpg")
        assert task["state"] == "SUCCESS", task
        assert task["result"] == "master.m3u8" and task["conversion_type"] == "hls"
        names = {f["name"]: f for f in task["files"]}
        assert set(names) == {"master.m3u8", "480p.m3u8", "480p.mp4", "360p.m3u8", "360p.mp4",
                              "audio.m3u8", "audio.mp4", "thumbnail.jpg"}
        assert task["files"][0]["role"] == "main" and task["url"] == names["master.m3u8"]["url"]
        assert task["output_size"] == sum(f["size"] for f in task["files"])
        master_url = server.url + task["url"]

        # A player: plain GETs, no token anywhere.
        plain = httpx.Client(timeout=60)
        r = plain.get(master_url)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert r.headers["access-control-allow-origin"] == "*"
        assert "content-security-policy" not in r.headers  # Safari may open it as a document
        master = m3u8.loads(r.text, uri=master_url)
        assert master.is_variant
        variants = {p.stream_info.resolution: p for p in master.playlists}
        assert set(variants) == {(854, 480), (640, 360)}
        for (_, height), variant in variants.items():
            info = variant.stream_info
            assert info.bandwidth > 0 and info.codecs.startswith("avc1.")
            assert "mp4a.40.2" in info.codecs
            playlist_url = variant.absolute_uri
            media = m3u8.loads(plain.get(playlist_url).text, uri=playlist_url)
            assert media.is_endlist and media.playlist_type == "vod"
            durations = [s.duration for s in media.segments]
            assert all(3.9 <= d <= 4.1 for d in durations[:-1]), durations  # 4 s segments
            assert sum(durations) == pytest.approx(9.0, abs=0.2)
            # One fMP4 per rendition, its segments byte ranges of it: a byte range of the
            # signed link answers 206 with exactly those bytes.
            segment = media.segments[1]
            length, offset = (int(x) for x in segment.byterange.split("@"))
            part = plain.get(segment.absolute_uri,
                             headers={"Range": f"bytes={offset}-{offset + length - 1}"})
            assert part.status_code == 206 and len(part.content) == length
            assert part.content[4:8] in (b"styp", b"moof", b"sidx")  # a fragment starts here
            rendition = tmp_path / f"{height}.mp4"
            rendition.write_bytes(plain.get(segment.absolute_uri).content)
            [video] = streams(ffprobe(rendition), "video")
            assert (video["codec_name"], video["height"]) == ("h264", height)
        assert [m.type for m in master.media] == ["AUDIO"]

        # ffmpeg plays the whole stream through the server by the master's signed link.
        played = subprocess.run(
            [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", master_url,
             "-map", "0:v:0", "-map", "0:a:0", "-f", "framemd5", "-"],
            capture_output=True, text=True, timeout=120)
        assert played.returncode == 0, played.stderr[-3000:]
        frames = [line for line in played.stdout.splitlines() if line.startswith("0,")]
        assert len(frames) == pytest.approx(9 * 24, abs=3)  # every video frame, end to end
        assert "error" not in played.stderr.lower()

        # The same file through a link that expired, was altered, or is another task's.
        secret = (server.data / "jwt-secret").read_text().strip()
        settings = replace(Settings(), jwt_secret=secret)
        task_id = task["task_id"]
        expired = sign_files(settings, task_id, int(time.time()) - 1)
        r = plain.get(f"{server.url}/api/files/{task_id}/{expired}/master.m3u8")
        assert r.status_code == 403 and "expired" in r.json()["message"]
        token = task["url"].split("/")[4]
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        assert plain.get(f"{server.url}/api/files/{task_id}/{forged}/master.m3u8"
                         ).status_code == 403
        other = _convert(http, auth, make_clip(seconds=2.0, width=320, height=240))
        assert other["state"] == "SUCCESS"
        r = plain.get(f"{server.url}/api/files/{other['task_id']}/{token}/master.m3u8")
        assert r.status_code == 403 and "does not match" in r.json()["message"]
        assert plain.get(server.url + other["url"]).status_code == 200
        missing = plain.get(master_url.replace("master.m3u8", "nope.m3u8"))
        assert missing.status_code == 404

        # /api/download of the package: one zip of every file, byte for byte.
        r = http.get("/api/download", params={"task_id": task_id}, headers=auth)
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            assert sorted(archive.namelist()) == sorted(names)
            assert archive.read("master.m3u8") == plain.get(master_url).content
            for name, listed in names.items():
                assert archive.getinfo(name).file_size == listed["size"]
        plain.close()

        # Another user sees neither the task nor its package.
        bob = _login(http, "bob")
        assert http.get(f"/api/tasks/{task_id}", headers=bob).status_code == 404
        assert http.get("/api/download", params={"task_id": task_id},
                        headers=bob).status_code == 404
