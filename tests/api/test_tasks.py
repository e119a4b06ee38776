"""The task routes on SQLite and local files: shapes, validation, limits, ownership."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from tests.api.conftest import MakeSettings, open_client
from tests.api.helpers import Api
from tests.media import wreck_mp4
from vidconv.db.models import Task
from vidconv.transcoder.diagnose import MESSAGES

Clip = Callable[..., Path]


def _objects(api: Api) -> list[Path]:
    root = api.client.app.state.ctx.settings.objects_dir  # type: ignore[attr-defined]
    return sorted(p for p in root.rglob("*") if p.is_file())


def _row_count(api: Api) -> int:
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Task)) or 0)


def test_create_answers_the_seed_shape_and_lists_it(api: Api, make_clip: Clip) -> None:
    r = api.upload(make_clip(1.0))
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"message", "task_id"} and body["message"] == "Conversion started"
    listed = api.client.get("/api/tasks", headers=api.auth).json()
    assert listed["tasks"] == [{"task_id": body["task_id"], "conversion_type": "mp4",
                                "status": listed["tasks"][0]["status"]}]
    assert listed["tasks"][0]["status"] in ("PENDING", "STARTED", "SUCCESS")


def test_seed_aliases_filename_and_newformat(api: Api, make_clip: Clip) -> None:
    clip = make_clip(1.0)
    with clip.open("rb") as f:
        r = api.client.post("/api/tasks", headers=api.auth,
                            files={"fileName": (clip.name, f)}, data={"newFormat": "webm"})
    assert r.status_code == 201, r.text
    assert api.task(r.json()["task_id"])["conversion_type"] == "webm"


def test_get_one_task_has_every_field(api: Api, make_clip: Clip) -> None:
    task_id = api.submit(make_clip(1.0), "mkv", max_height="120")
    task = api.wait(task_id)
    assert task["state"] == "SUCCESS", task
    assert task["result"] == task["file_name"].rsplit(".", 1)[0] + ".mkv"
    assert task["options"] == {"max_height": 120}
    assert task["progress"] == 100
    assert task["input_size"] == make_clip(1.0).stat().st_size
    assert task["output_size"] > 0 and task["output_duration"] == pytest.approx(1.0, abs=0.2)
    assert task["input_duration"] == pytest.approx(1.0, abs=0.1)
    assert task["created_at"] <= task["started_at"] <= task["finished_at"]
    assert task["error"] is None


def test_list_honours_max_and_order(api: Api, make_clip: Clip) -> None:
    ids = [api.submit(make_clip(1.0), fmt) for fmt in ("mp3", "mp3", "mp3")]
    asc = api.client.get("/api/tasks?order=0", headers=api.auth).json()["tasks"]
    desc = api.client.get("/api/tasks?order=1&max=2", headers=api.auth).json()["tasks"]
    assert [t["task_id"] for t in asc] == ids
    assert [t["task_id"] for t in desc] == ids[::-1][:2]
    for bad in ("max=0", "max=x", "order=2", "max=-1"):
        assert api.client.get(f"/api/tasks?{bad}", headers=api.auth).status_code == 422
    huge = api.client.get("/api/tasks?max=100000", headers=api.auth)
    assert huge.status_code == 200 and len(huge.json()["tasks"]) == 3


@pytest.mark.parametrize(("fields", "status", "words"), [
    ({"conversion_type": "flv2"}, 422, "not supported"),
    ({"conversion_type": ""}, 422, "conversion_type is required"),
    ({"conversion_type": "mp4", "max_height": "9"}, 422, "max_height"),
    ({"conversion_type": "mp4", "colour": "red"}, 422, "Unknown option"),
    ({"conversion_type": "mp4", "options": "{nope"}, 422, "options"),
    ({"conversion_type": "flac", "audio_bitrate": "320"}, 422, "does not apply to flac"),
    ({"conversion_type": "m4a", "max_height": "480"}, 422, "audio-only format m4a"),
])
def test_bad_format_or_options_are_refused_and_nothing_kept(
    api: Api, make_clip: Clip, fields: dict[str, str], status: int, words: str
) -> None:
    clip = make_clip(1.0)
    with clip.open("rb") as f:
        r = api.client.post("/api/tasks", headers=api.auth, files={"file": (clip.name, f)},
                            data=fields)
    assert r.status_code == status
    assert words in r.json()["message"]
    assert _objects(api) == [] and _row_count(api) == 0


def test_empty_file_and_missing_file_are_400(api: Api) -> None:
    r = api.client.post("/api/tasks", headers=api.auth, files={"file": ("a.mp4", b"")},
                        data={"conversion_type": "mp4"})
    assert r.status_code == 400 and "empty" in r.json()["message"]
    r = api.client.post("/api/tasks", headers=api.auth, files={"other": ("a.mp4", b"x")},
                        data={"conversion_type": "mp4"})
    assert r.status_code == 400 and "send the video as file" in r.json()["message"]
    r = api.client.post("/api/tasks", headers=api.auth, data={"conversion_type": "mp4"},
                        files={"x": (None, "y")})  # multipart without any file part
    assert r.status_code == 422 and "Unknown option" in r.json()["message"]
    r = api.client.post("/api/tasks", headers=api.auth, files={"conversion_type": (None, "mp4")})
    assert r.status_code == 400 and "file is required" in r.json()["message"]
    assert _objects(api) == [] and _row_count(api) == 0


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b.mp4", "..\\x.mp4", "..", "x/../y"])
def test_file_names_that_could_traverse_are_refused(api: Api, name: str) -> None:
    r = api.client.post("/api/tasks", headers=api.auth, files={"file": (name, b"data")},
                        data={"conversion_type": "mp4"})
    assert r.status_code == 400
    assert "plain name" in r.json()["message"]
    assert _objects(api) == []


def test_odd_but_harmless_names_are_kept_safe(api: Api, make_clip: Clip) -> None:
    clip = make_clip(1.0)
    r = api.client.post("/api/tasks", headers=api.auth,
                        files={"file": ("mi vídeo (1).MP4", clip.read_bytes())},
                        data={"conversion_type": "mp3"})
    assert r.status_code == 201
    [stored] = _objects(api)
    assert stored.name == "mi_vídeo_1.MP4"  # the letters a user typed stay
    assert api.wait(r.json()["task_id"])["result"].endswith(".mp3")


def test_over_size_upload_is_413_and_leaves_nothing(
    make_settings: MakeSettings, make_clip: Clip
) -> None:
    clip = make_clip(1.0)
    limit = clip.stat().st_size // 2
    with open_client(make_settings(max_upload_bytes=limit)) as client:
        api = Api(client)
        api.signup()
        # Chunked (no Content-Length): the limit is enforced while streaming.
        def body():  # type: ignore[no-untyped-def]
            boundary = b"xyzzy"
            yield b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"conversion_type\""
            yield b"\r\n\r\nmp4\r\n--" + boundary + b"\r\n"
            yield b"Content-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n\r\n"
            yield from (clip.read_bytes()[i:i + 4096] for i in range(0, clip.stat().st_size, 4096))
            yield b"\r\n--" + boundary + b"--\r\n"
        r = client.post("/api/tasks", headers={**api.auth,
                        "Content-Type": "multipart/form-data; boundary=xyzzy"}, content=body())
        assert r.status_code == 413
        assert str(limit) in r.json()["message"]
        # With a Content-Length far over the limit the server refuses before reading.
        big = clip.read_bytes() * 40
        r = client.post("/api/tasks", headers=api.auth, files={"file": ("b.mp4", big)},
                        data={"conversion_type": "mp4"})
        assert r.status_code == 413
        assert _objects(api) == [] and _row_count(api) == 0
        tmp = client.app.state.ctx.upload_dir  # type: ignore[attr-defined]
        assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("body", [
    b"garbage",
    b"--x\r\nbad header line\r\n\r\nabc\r\n--x--\r\n",
    b"--x\r\nContent-Disposition: form-data; name=\"conversion_type\"\r\n\r\nmp4\r\n"
    b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\ncut",
])
def test_malformed_or_truncated_multipart_is_400(api: Api, body: bytes) -> None:
    r = api.client.post("/api/tasks", content=body,
                        headers={**api.auth, "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400
    assert "malformed" in r.json()["message"]
    assert _objects(api) == [] and _row_count(api) == 0


def test_other_content_types_are_415(api: Api) -> None:
    r = api.client.post("/api/tasks", headers={**api.auth, "Content-Type": "text/plain"},
                        content=b"hello")
    assert r.status_code == 415


def test_non_video_upload_ends_in_failure_with_a_clear_error(api: Api) -> None:
    r = api.client.post("/api/tasks", headers=api.auth,
                        files={"file": ("notes.mp4", b"these are not frames\n" * 50)},
                        data={"conversion_type": "mp4"})
    task = api.wait(r.json()["task_id"])
    assert task["state"] == "FAILURE"
    assert task["error"] and "not a video" in task["error"]
    assert task["result"] == task["error"]
    r = api.client.get(f"/api/download?task_id={task['task_id']}", headers=api.auth)
    assert r.status_code == 409


def test_a_damaged_video_fails_with_a_sentence_and_keeps_ffmpegs_words_for_operators(
        api: Api, make_clip: Clip, tmp_path: Path) -> None:
    clip = make_clip(3.0, 160, 120, extra=("-g", "12", "-movflags", "+faststart"))
    wreck = wreck_mp4(clip, tmp_path / "holiday.mp4")
    task = api.wait(api.submit(wreck, "webm"))
    assert (task["state"], task["error_code"]) == ("FAILURE", "corrupt_input")
    assert task["error"] == MESSAGES["corrupt_input"] and "@ 0x" not in task["error"]
    assert "Invalid data found" in task["error_detail"]


def test_another_users_task_is_404_everywhere(client: TestClient, make_clip: Clip) -> None:
    alice, bob = Api(client), Api(client)
    alice.signup()
    bob.signup()
    task_id = alice.submit(make_clip(1.0), "mp3")
    alice.wait(task_id)
    missing = "0" * 32
    for tid in (task_id, missing):
        answers = [
            bob.client.get(f"/api/tasks/{tid}", headers=bob.auth),
            bob.client.get(f"/api/download?task_id={tid}", headers=bob.auth),
            bob.client.delete(f"/api/tasks/{tid}", headers=bob.auth),
        ]
        assert [a.status_code for a in answers] == [404, 404, 404]
        assert all(a.json() == {"message": "task not found"} for a in answers)
    assert bob.client.get("/api/tasks", headers=bob.auth).json() == {"tasks": []}
    # Bob cannot start from Alice's upload by naming it either: for him it does not exist.
    r = bob.client.post("/api/tasks", headers=bob.auth,
                        json={"file": alice.task(task_id)["file_name"], "conversion_type": "mp4"})
    assert r.status_code == 404 and "no uploaded file of yours" in r.json()["message"]
    assert alice.task(task_id)["state"] == "SUCCESS"  # untouched


def test_json_task_from_a_previous_upload(api: Api, make_clip: Clip) -> None:
    first = api.submit(make_clip(1.0), "mp3")
    name = api.task(first)["file_name"]
    for ref in (name, first):
        r = api.client.post("/api/tasks", headers=api.auth,
                            json={"file": ref, "conversion_type": "wmv"})
        assert r.status_code == 201, r.text
        assert api.wait(r.json()["task_id"])["state"] == "SUCCESS"
    # Deleting the first task does not take the copies' inputs away.
    assert api.client.delete(f"/api/tasks/{first}", headers=api.auth).status_code == 204


@pytest.mark.parametrize("ref", ["/etc/passwd", "../var/vidconv.db", "file:///etc/passwd",
                                 "s3://bucket/key", "ftp://example.com/a.mp4"])
def test_json_task_never_reads_a_server_path(api: Api, ref: str) -> None:
    body = {"file": ref, "conversion_type": "mp4"}
    r = api.client.post("/api/tasks", headers=api.auth, json=body)
    assert r.status_code == 400
    assert _row_count(api) == 0


@pytest.mark.parametrize(("ref", "status"), [("\u0085", 404), ("\x1c", 404), ("a\u0085b.mp4", 404),
                                             ("\ufeff", 400), ("\u3000", 400)])
def test_json_task_file_white_space_is_what_the_document_says(
    api: Api, ref: str, status: int
) -> None:
    """JSON Schema's white space (ECMA-262 \\s) is not Python's; the server's check follows the
    document: a name it allows is looked up (none of yours), one of only white space is refused."""
    body = {"file": ref, "conversion_type": "mp4"}
    r = api.client.post("/api/tasks", headers=api.auth, json=body)
    assert r.status_code == status, r.text
    assert _row_count(api) == 0


def test_delete_removes_objects_and_row(api: Api, make_clip: Clip) -> None:
    task_id = api.submit(make_clip(1.0), "mp3")
    api.wait(task_id)
    assert len(_objects(api)) == 2  # input and output
    assert api.client.delete(f"/api/tasks/{task_id}", headers=api.auth).status_code == 204
    assert _objects(api) == [] and _row_count(api) == 0
    assert api.client.get(f"/api/tasks/{task_id}", headers=api.auth).status_code == 404


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    r = client.get("/nothing/here")
    assert r.status_code == 404 and r.json() == {"message": "Not Found"}
    r = client.put("/api/tasks")
    assert r.status_code == 405 and r.json() == {"message": "Method Not Allowed"}


@pytest.mark.parametrize("length", [300, 5000])
def test_an_over_long_file_name_is_refused_saying_so(api: Api, length: int) -> None:
    r = api.client.post("/api/tasks", headers=api.auth,
                        files={"file": ("a" * length + ".mp4", b"data")},
                        data={"conversion_type": "mp4"})
    assert r.status_code == 400
    assert "file name" in r.json()["message"] and "at most 255" in r.json()["message"]
    assert _objects(api) == []


def test_non_ascii_file_names_keep_their_letters(api: Api, make_clip: Clip) -> None:
    clip = make_clip(1.0)
    r = api.client.post("/api/tasks", headers=api.auth,
                        files={"file": ("ünï.mp4", clip.read_bytes())},
                        data={"conversion_type": "mp3"})
    assert r.status_code == 201
    task_id = r.json()["task_id"]
    assert api.task(task_id)["file_name"] == "ünï.mp4"
    assert api.wait(task_id)["result"] == "ünï.mp3"
    r = api.client.get(f"/api/download?task_id={task_id}", headers=api.auth)
    assert r.headers["content-disposition"].endswith("filename*=UTF-8''%C3%BCn%C3%AF.mp3")
