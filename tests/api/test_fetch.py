"""JSON tasks whose input is an http(s) URL: fetched with a size cap, SSRF refused by default."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests import servers
from tests.api.conftest import MakeSettings, open_client
from tests.api.helpers import Api

Clip = Callable[..., Path]


@pytest.fixture
def web(make_clip: Clip) -> Iterator[str]:
    """A loopback web server: /clip.mp4, /big.bin, /moved (to file:///etc/passwd), /404."""
    clip = make_clip(1.0).read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/clip.mp4":
                self._send(200, clip)
            elif self.path == "/big.bin":
                self._send(200, b"x" * 300_000)
            elif self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/hop":
                self.send_response(301)
                self.send_header("Location", "/clip.mp4")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(404, b"no")

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _post(api: Api, url: str) -> tuple[int, str]:
    r = api.client.post("/api/tasks", headers=api.auth, json={"file": url,
                                                            "conversion_type": "mp3"})
    return r.status_code, r.json().get("message", "")


def test_public_policy_refuses_loopback_and_metadata_addresses(api: Api, web: str) -> None:
    for url in (f"{web}/clip.mp4", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/x.mp4", "http://10.0.0.1/x.mp4"):
        status, message = _post(api, url)
        assert status == 400, url
        assert "private or local address" in message


def test_any_policy_fetches_follows_redirects_and_caps_size(
    make_settings: MakeSettings, web: str, make_clip: Clip
) -> None:
    with open_client(make_settings(url_inputs="any", max_upload_bytes=200_000)) as client:
        api = Api(client)
        api.signup()
        for path in ("/clip.mp4", "/hop"):
            r = client.post("/api/tasks", headers=api.auth,
                            json={"file": web + path, "conversion_type": "mp3"})
            assert r.status_code == 201, r.text
            task = api.wait(r.json()["task_id"])
            assert task["state"] == "SUCCESS", task
            assert task["file_name"] == "clip.mp4"
            assert task["input_size"] == make_clip(1.0).stat().st_size
        assert _post(api, f"{web}/big.bin")[0] == 413
        status, message = _post(api, f"{web}/moved")
        assert status == 400 and "only http and https" in message
        status, message = _post(api, f"{web}/missing")
        assert status == 400 and "HTTP 404" in message
        assert [t["status"] for t in client.get("/api/tasks", headers=api.auth).json()["tasks"]
                ] == ["SUCCESS", "SUCCESS"]
        assert list(client.app.state.ctx.upload_dir.iterdir()) == []  # type: ignore[attr-defined]


def test_off_policy_refuses_urls(make_settings: MakeSettings, web: str) -> None:
    with open_client(make_settings(url_inputs="off")) as client:
        api = Api(client)
        api.signup()
        status, message = _post(api, f"{web}/clip.mp4")
        assert status == 400 and "turned off" in message


@pytest.mark.s3
def test_a_presigned_s3_url_works_until_it_expires(
    make_settings: MakeSettings, s3: servers.S3Server, s3_env: dict[str, str], make_clip: Clip
) -> None:
    """A user hands over a presigned GET of their own bucket: the real server checks the
    signature and the expiry, so the URL converts while it is valid and is refused after."""
    clip = make_clip(1.0)
    bucket = s3_env["VIDCONV_S3_BUCKET"]
    minio = s3.client()
    minio.fput_object(bucket, "shared/clip.mp4", str(clip))
    with open_client(make_settings(url_inputs="any")) as client:
        api = Api(client)
        api.signup()
        signed_at = datetime.now(UTC).replace(microsecond=0)
        lifetime = timedelta(seconds=3)
        url = minio.presigned_get_object(bucket, "shared/clip.mp4", expires=lifetime,
                                         request_date=signed_at)
        r = client.post("/api/tasks", headers=api.auth,
                        json={"file": url, "conversion_type": "mp3"})
        assert r.status_code == 201, r.text
        task = api.wait(r.json()["task_id"])
        assert task["state"] == "SUCCESS", task
        assert task["file_name"] == "clip.mp4" and task["input_size"] == clip.stat().st_size

        # The signature covers the key: the same URL pointed at another object is refused.
        status, message = _post(api, url.replace("/shared/clip.mp4?", "/shared/other.mp4?"))
        assert status == 400 and "HTTP 403" in message

        while datetime.now(UTC) <= signed_at + lifetime + timedelta(seconds=1):
            time.sleep(0.2)
        status, message = _post(api, url)
        assert status == 400 and "HTTP 403" in message
        assert [t["status"] for t in client.get("/api/tasks", headers=api.auth).json()["tasks"]
                ] == ["SUCCESS"]  # the refused URLs made no task
