"""The web page in a real browser (Debian's Chromium, headless, through Playwright) against a
real `vidconv serve`: what a person sees and does, from signing up to deleting a download."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import PASSWORD
from tests.browser.conftest import OpenTab, Tab
from tests.live import LiveServer, StartServer
from tests.media import ffprobe, streams

pytestmark = pytest.mark.browser
Clip = Callable[..., Path]
FINISHED = "#job-result.ok, #job-result.error"


def _sign_up(tab: Tab, server: LiveServer) -> str:
    page = tab.page
    page.goto(server.url)
    page.wait_for_selector("#auth:not([hidden])")
    name = "u" + uuid.uuid4().hex[:8]
    page.fill("#signup-name", name)
    page.fill("#signup-email", f"{name}@example.com")
    page.fill("#signup-password", PASSWORD)
    page.fill("#signup-password2", PASSWORD)
    page.click("#signup-form button")
    page.wait_for_selector("#convert:not([hidden])")
    return name


def _drop(tab: Tab, path: Path, mime: str = "video/mp4") -> None:
    """Drop a file on the drop zone, as dragging it from the desktop does."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = tab.page.evaluate_handle(
        """([data, name, mime]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""", [data, path.name, mime])
    tab.page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def _watch_bar(tab: Tab) -> None:
    """Record every value the page gives the conversion bar (its value attribute)."""
    tab.page.evaluate("""() => {
        const bar = document.getElementById("convert-bar");
        window.__bar = [];
        new MutationObserver(() => window.__bar.push(bar.value))
            .observe(bar, {attributes: true, attributeFilter: ["value"]});
    }""")


def _bar_until_finished(tab: Tab, timeout: float = 120) -> list[float]:
    """The conversion bar's values from _watch_bar on, once the page shows the end."""
    tab.page.wait_for_selector(FINISHED, timeout=timeout * 1000)
    values: list[float] = tab.page.evaluate("() => window.__bar")
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def _text(tab: Tab, selector: str) -> str:
    return str(tab.page.inner_text(selector)).strip()


def _in_words(text: str) -> None:
    assert text and "{" not in text and '"message"' not in text, text


def test_sign_up_drop_a_clip_watch_it_convert_download_and_delete_it(
    live_server: StartServer, open_tab: OpenTab, make_clip: Clip, tmp_path: Path
) -> None:
    server = live_server()
    tab = open_tab()
    page = tab.page
    urls: list[str] = []
    page.on("request", lambda r: urls.append(f"{r.resource_type} {r.method} {r.url}"))
    page.goto(server.url)
    tab.shot("start")
    name = _sign_up(tab, server)
    assert _text(tab, "#who") == f"Logged in as {name}"
    assert _text(tab, "#tasks-empty") == "None yet."
    tab.shot("signed-up")

    # 40 s at VP9's slower preset: the bar moves even on an idle machine (the transcoder
    # reports about once a second).
    clip = make_clip(40.0, 640, 360)
    _drop(tab, clip)
    assert _text(tab, "#file-chosen").startswith(f"Chosen: {clip.name} (")
    page.select_option("#format", "webm")
    assert _text(tab, "#format-about") == "VP9 (realtime settings) + Opus"
    page.fill("#opt-max_height", "240")
    page.select_option("#opt-preset", "quality")
    tab.shot("form")
    _watch_bar(tab)
    page.click("#start")
    page.wait_for_selector("#upload-text:text('Uploaded')")
    assert page.evaluate("() => document.getElementById('upload-bar').value") == 100
    page.wait_for_selector("#convert-text:has-text('frames/s')")
    page.wait_for_selector("#task-list li .state:has-text('Converting, ')")  # the list follows
    tab.shot("converting")
    bar = _bar_until_finished(tab)
    tab.shot("done")

    # The bar moved while ffmpeg ran and reached 100, from the event stream.
    assert bar[-1] == 100 and any(0 < v < 100 for v in bar), bar
    assert bar[1:] == sorted(bar[1:]), bar  # after the reset to 0 at the start
    result = _text(tab, "#job-result")
    assert result == f"Done: {clip.with_suffix('.webm').name} is ready."
    streams_opened = [u for u in urls if u.startswith("eventsource GET")]
    assert len(streams_opened) == 1 and streams_opened[0].endswith("/events"), urls
    token = page.evaluate("() => sessionStorage.getItem('vidconv.token')")
    assert token and not [u for u in urls if token in u or "token" in u.lower()]

    with page.expect_download() as download:
        page.click("#job-actions button:text('Download')")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == clip.with_suffix(".webm").name
    info = ffprobe(saved)
    assert "webm" in info["format"]["format_name"]
    [video] = streams(info, "video")
    assert (video["codec_name"], video["height"]) == ("vp9", 240)
    assert [a["codec_name"] for a in streams(info, "audio")] == ["opus"]

    # The task asked for what was filled in, and no default besides.
    with httpx.Client(base_url=server.url) as http:
        tasks = http.get("/api/tasks", headers={"Authorization": f"Bearer {token}"}).json()
        [task_id] = [t["task_id"] for t in tasks["tasks"]]
        detail = http.get(f"/api/tasks/{task_id}",
                          headers={"Authorization": f"Bearer {token}"}).json()
    assert detail["options"] == {"max_height": 240, "preset": "quality"}

    item = page.locator("#task-list li", has_text=clip.name)
    assert "Done" in item.inner_text()
    tab.shot("listed")
    item.get_by_role("button", name="Delete").click()
    page.wait_for_selector("#tasks-empty:not([hidden])")
    assert page.is_hidden("#job")
    tab.shot("deleted")
    with httpx.Client(base_url=server.url) as http:
        r = http.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
        assert r.json() == {"tasks": []}
    assert tab.violations() == []
    assert not [m for m in tab.console if m.startswith(("error", "pageerror"))], tab.console


def test_refusals_are_told_in_words(
    live_server: StartServer, open_tab: OpenTab, make_clip: Clip, tmp_path: Path
) -> None:
    server = live_server({"VIDCONV_MAX_UPLOAD_BYTES": str(300_000)})
    tab = open_tab()
    page = tab.page
    name = _sign_up(tab, server)

    # Too large for this server: said before a byte is sent.
    big = make_clip(20.0, 640, 360)
    assert big.stat().st_size > 300_000
    page.set_input_files("#file", str(big))
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.click("#start")
    error = _text(tab, "#convert-error")
    assert error.startswith(f"{big.name} is too large (") and error.endswith(
        " MB): this server takes files up to 293 KB."), error
    assert posts == []
    tab.shot("too-large")

    # Options the API refuses together (422): its sentence, not its JSON.
    small = make_clip(1.0)
    page.set_input_files("#file", str(small))
    page.select_option("#format", "mp4")
    page.fill("#opt-quality", "80")
    page.click("details summary")
    page.fill("#opt-video_bitrate", "800")
    page.click("#start")
    page.wait_for_selector("#convert-error:has-text('check the form')")
    error = _text(tab, "#convert-error")
    assert error == "Please check the form: Give either video_bitrate or quality, not both."
    _in_words(error)
    tab.shot("invalid-options")

    # Not a video: the upload is taken, the conversion fails, and the page says why.
    notes = tmp_path / "notes.mp4"
    notes.write_bytes(b"these are my notes, not a film\n" * 40)
    page.fill("#opt-video_bitrate", "")
    page.fill("#opt-quality", "")
    page.set_input_files("#file", str(notes))
    page.click("#start")
    page.wait_for_selector(FINISHED, timeout=60_000)
    failed = _text(tab, "#job-result")
    assert failed.startswith("The conversion failed: The input is not a video"), failed
    _in_words(failed)
    assert page.get_attribute("#job-result", "role") == "alert"
    tab.shot("not-a-video")

    # Log-ins: a wrong password, and after five of them the throttle's wait (429).
    page.click("#logout")
    page.wait_for_selector("#auth:not([hidden])")
    assert _text(tab, "#auth-error") == "You have logged out."
    page.fill("#login-name", name)
    for attempt in range(6):
        page.fill("#login-password", "not the password")
        with page.expect_response("**/api/auth/login") as answer:
            page.click("#login-form button")
        assert answer.value.status == (401 if attempt < 5 else 429)
        if attempt < 5:
            page.wait_for_selector("#auth-error:text('The user name or the password is wrong.')")
    page.wait_for_selector("#auth-error:has-text('Too many attempts')")
    throttled = _text(tab, "#auth-error")
    assert throttled.startswith("Too many attempts. Try again in ") and throttled.endswith("."), \
        throttled
    tab.shot("throttled")
    # A taken name.
    page.fill("#signup-name", name)
    page.fill("#signup-email", f"other-{name}@example.com")
    page.fill("#signup-password", PASSWORD)
    page.fill("#signup-password2", PASSWORD)
    page.click("#signup-form button")
    page.wait_for_selector("#auth-error:text('That user name or email is already taken.')")
    assert tab.violations() == []


def _focused(tab: Tab) -> dict[str, Any]:
    """The focused element: its id, and whether its focus ring shows."""
    return tab.page.evaluate("""() => {
        const el = document.activeElement;
        const style = getComputedStyle(el);
        return {id: el.id, tag: el.tagName, text: el.textContent.trim().slice(0, 40),
                ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2};
    }""")


def _tab_to(tab: Tab, want: Callable[[dict[str, Any]], bool], limit: int = 40) -> None:
    for _ in range(limit):
        tab.page.keyboard.press("Tab")
        now = _focused(tab)
        if want(now):
            assert now["ring"], f"no visible focus on {now}"
            return
    raise AssertionError("Tab never reached it")


def _type(tab: Tab, text: str) -> None:
    tab.page.keyboard.type(text)


def test_the_whole_flow_works_with_the_keyboard_alone(
    live_server: StartServer, open_tab: OpenTab, make_clip: Clip, tmp_path: Path
) -> None:
    server = live_server()
    tab = open_tab()
    page = tab.page
    page.goto(server.url)
    page.wait_for_selector("#auth:not([hidden])")
    name = "k" + uuid.uuid4().hex[:8]
    _tab_to(tab, lambda f: f["id"] == "signup-name")
    _type(tab, name)
    page.keyboard.press("Tab")
    _type(tab, f"{name}@example.com")
    page.keyboard.press("Tab")
    _type(tab, PASSWORD)
    page.keyboard.press("Tab")
    _type(tab, PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#convert:not([hidden])")
    assert _focused(tab)["id"] == "convert-title"  # the page takes you to the next step
    tab.shot("keyboard-signed-up")

    _tab_to(tab, lambda f: f["id"] == "file")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(make_clip(6.0, 640, 360)))
    _tab_to(tab, lambda f: f["id"] == "format")
    while page.input_value("#format") != "mkv":
        page.keyboard.press("ArrowDown")
    _tab_to(tab, lambda f: f["id"] == "opt-max_height")
    _type(tab, "180")
    _tab_to(tab, lambda f: f["id"] == "start")
    tab.shot("keyboard-form")
    page.keyboard.press("Enter")
    page.wait_for_selector(FINISHED, timeout=120_000)
    assert _text(tab, "#job-result").startswith("Done: ")
    tab.shot("keyboard-done")

    _tab_to(tab, lambda f: f["tag"] == "BUTTON" and f["text"] == "Download")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    [video] = streams(ffprobe(saved), "video")
    assert video["height"] == 180 and saved.suffix == ".mkv"

    _tab_to(tab, lambda f: f["tag"] == "BUTTON" and f["text"] == "Delete")
    page.keyboard.press("Enter")
    page.wait_for_selector("#tasks-empty:not([hidden])")
    assert _focused(tab)["id"] == "tasks-title"
    assert tab.violations() == []


def test_at_phone_width_nothing_overflows(
    live_server: StartServer, open_tab: OpenTab, make_clip: Clip
) -> None:
    server = live_server()
    tab = open_tab(width=360, height=740)
    page = tab.page
    page.goto(server.url)
    page.wait_for_selector("#auth:not([hidden])")
    assert _overflowing(tab) == []
    tab.shot("phone-auth")
    _sign_up(tab, server)
    page.set_input_files("#file", str(make_clip(2.0)))
    page.click("details summary")  # every option shown
    page.click("#start")
    page.wait_for_selector(FINISHED, timeout=120_000)
    assert _overflowing(tab) == []
    tab.shot("phone-done")
    assert tab.violations() == []


def _overflowing(tab: Tab) -> list[str]:
    """Elements that reach past the viewport's right edge, or a page wider than it."""
    found: list[str] = tab.page.evaluate("""() => {
        const root = document.documentElement;
        const width = root.clientWidth;
        const out = [];
        if (root.scrollWidth > width) out.push(`page ${root.scrollWidth}`);
        for (const el of document.body.querySelectorAll("*")) {
            const box = el.getBoundingClientRect();
            if (box.width && box.right > width + 0.5 && !el.closest(".visually-hidden, .skip"))
                out.push(`${el.tagName}#${el.id} ${Math.round(box.right)}`);
        }
        return out;
    }""")
    return found


def test_the_policy_refuses_inline_script_and_the_headers_are_set(
    live_server: StartServer, open_tab: OpenTab
) -> None:
    server = live_server()
    tab = open_tab()
    response = tab.page.goto(server.url)
    assert response is not None
    headers = response.headers
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    tab.page.wait_for_selector("#auth:not([hidden])")
    assert tab.violations() == []  # the page itself needs nothing the policy refuses
    # What an injection would try: an inline script and an inline style do nothing.
    ran = tab.page.evaluate("""() => {
        window.__ran = false;
        const script = document.createElement("script");
        script.textContent = "window.__ran = true";
        document.body.append(script);
        const el = document.createElement("p");
        el.setAttribute("style", "color: rgb(255, 0, 0)");
        document.body.append(el);
        return {ran: window.__ran, color: getComputedStyle(el).color};
    }""")
    assert ran == {"ran": False, "color": "rgb(29, 29, 31)"}
    # The browser reports each refusal as an event, queued behind this evaluation.
    deadline = time.monotonic() + 10
    while {v.split(":")[0] for v in tab.violations()} < {"script-src-elem", "style-src-attr"}:
        assert time.monotonic() < deadline, tab.violations()
        time.sleep(0.05)


@pytest.mark.s3
def test_with_direct_transfers_the_download_comes_from_s3(
    live_server: StartServer, open_tab: OpenTab, make_clip: Clip, s3_env: dict[str, str],
    tmp_path: Path,
) -> None:
    server = live_server({**s3_env, "VIDCONV_DIRECT_TRANSFERS": "on"})
    tab = open_tab()
    page = tab.page
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    _sign_up(tab, server)
    page.set_input_files("#file", str(make_clip(2.0)))
    page.select_option("#format", "mp3")
    page.click("#start")
    page.wait_for_selector(FINISHED, timeout=120_000)
    with page.expect_download() as download:
        page.click("#job-actions button:text('Download')")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".mp3"
    assert [a["codec_name"] for a in streams(ffprobe(saved), "audio")] == ["mp3"]
    # The bytes came from S3 (the API answered 307 to a presigned URL), and the policy let
    # the page fetch them from there and nowhere else.
    endpoint = s3_env["VIDCONV_S3_ENDPOINT"]
    assert [u for u in urls if u.startswith(endpoint) and "X-Amz-Signature" in u], urls
    assert tab.violations() == []
