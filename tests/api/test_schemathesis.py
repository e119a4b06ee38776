"""schemathesis 4 against a real `vidconv serve`, from its own generated OpenAPI document,
with every check on: no 5xx, every response as documented, no valid request refused and no
invalid one accepted, and the right Allow on a 405.

Bounded (a fixed number of examples per operation, a fixed seed) so that it takes a minute or
two on two cores. The report (cases, failures, the curl to reproduce each) is printed and kept
in the test's temp dir. Uploaded bytes make tasks that fail fast in the transcoder; the HTTP
contract is what this tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import PASSWORD
from tests.receiver import Receiver, Reply
from tests.servers import free_port, wait_for_port

EXAMPLES = "40"


def test_schemathesis_finds_no_disagreement_with_the_document(
    tmp_path: Path, receiver: Receiver
) -> None:
    st = Path(sys.executable).with_name("st")
    if not st.exists() and shutil.which("st") is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    port = free_port()
    env = {**os.environ, "VIDCONV_PORT": str(port), "VIDCONV_DATA_DIR": str(tmp_path / "var"),
           "VIDCONV_WORKERS": "1", "VIDCONV_LOG_LEVEL": "warning",
           # The document then says no URLs, and no generated URL is ever fetched.
           "VIDCONV_URL_INPUTS": "off", "VIDCONV_MAX_UPLOAD_BYTES": str(1024 * 1024),
           # Generated callback URLs name any host: every delivery goes through an egress
           # proxy on loopback that refuses it, so none leaves this machine (and with "any"
           # no generated host name is even looked up).
           "VIDCONV_WEBHOOK_URLS": "any", "VIDCONV_WEBHOOK_PROXY": receiver.url(""),
           # An event stream of a task that waits behind the others ends after this (the
           # client would resume), so that no generated request waits for the whole queue.
           "VIDCONV_EVENT_STREAM_SECONDS": "3"}
    receiver.default = Reply(403)
    for name in ("VIDCONV_JWT_SECRET", "VIDCONV_DATABASE_URL", "VIDCONV_STORAGE"):
        env.pop(name, None)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "vidconv.cli", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            body = {"username": "fuzz", "email": "fuzz@example.com", "password1": PASSWORD,
                    "password2": PASSWORD}
            assert http.post("/api/auth/signup", json=body).status_code == 201
            token = http.post("/api/auth/login", json={"username": "fuzz",
                                                       "password": PASSWORD}).json()["token"]
        run = subprocess.run(
            [str(st) if st.exists() else "st", "--config-file",
             str(Path(__file__).with_name("schemathesis.toml")), "run", f"{base}/api/openapi.json",
             "--checks", "all", "--max-examples", EXAMPLES, "--seed", "1", "--workers", "1",
             "--header", f"Authorization: Bearer {token}", "--no-color",
             "--report", "junit", "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false",
                 "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
                 "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    server_log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-4000:]
    # What reached the proxy was asked of it as a proxy (absolute-form), never sent direct.
    print(f"{len(receiver.requests)} deliveries reached the egress proxy")
    assert all(r.path.startswith(("http://", "https://")) for r in receiver.requests)
