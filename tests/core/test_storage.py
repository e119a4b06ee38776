"""Both storage backends behave the same: local folder and a real S3 server (MinIO, over HTTP)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from tests import servers
from vidconv.settings import Settings
from vidconv.storage import (
    PART_SIZE,
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageError,
    parse_s3_url,
    validate_key,
)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "objects")
    env = request.getfixturevalue("s3_env")
    return S3Storage(Settings.from_env(env))


def test_put_stream_then_read_back_whole_and_by_range(storage: Storage) -> None:
    data = bytes(range(256)) * 40_000  # ~10 MiB: more than one chunk and one S3 part
    assert storage.put_stream("inputs/t1/clip.mp4", io.BytesIO(data)) == len(data)
    assert storage.size("inputs/t1/clip.mp4") == len(data)
    assert b"".join(storage.iter_range("inputs/t1/clip.mp4")) == data
    assert b"".join(storage.iter_range("inputs/t1/clip.mp4", 100, 199)) == data[100:200]


def test_put_file_get_file_and_delete(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 1000)
    storage.put_file("outputs/t2/out.webm", src)
    dst = tmp_path / "dst.bin"
    assert storage.get_file("outputs/t2/out.webm", dst) == 1000
    assert dst.read_bytes() == src.read_bytes()
    storage.delete("outputs/t2/out.webm")
    with pytest.raises(ObjectNotFound):
        storage.size("outputs/t2/out.webm")
    storage.delete("outputs/t2/out.webm")  # deleting twice is fine


@pytest.mark.s3
def test_a_large_file_goes_up_in_parts_and_lands_whole(
    s3: servers.S3Server, s3_env: dict[str, str], tmp_path: Path
) -> None:
    storage = S3Storage(Settings.from_env(s3_env))
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(2 * PART_SIZE + 12345))  # three parts, the last one short
    assert storage.put_file("outputs/t3/big.bin", src) == src.stat().st_size
    stat = s3.client().stat_object(s3_env["VIDCONV_S3_BUCKET"], "outputs/t3/big.bin")
    assert stat.size == src.stat().st_size
    assert stat.etag == servers.multipart_etag(src, PART_SIZE)  # ends "-3": three parts
    back = tmp_path / "back.bin"
    storage.get_file("outputs/t3/big.bin", back)
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_missing_object_is_not_found(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        storage.get_file("inputs/none/x.mp4", tmp_path / "x")
    storage.check()


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "a/../../b", "a//b", "a\\b", "a/./b"])
def test_keys_that_could_escape_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        validate_key(key)
    with pytest.raises(ValueError):
        LocalStorage(tmp_path).put_stream(key, io.BytesIO(b"x"))


def test_unreachable_s3_is_a_storage_error() -> None:
    settings = Settings(s3_endpoint="http://127.0.0.1:9", s3_access_key="a", s3_secret_key="b")
    dead = S3Storage(settings)
    with pytest.raises(StorageError):
        dead.check()


def test_s3_locator_round_trips() -> None:
    storage = S3Storage(Settings(s3_bucket="media"))
    assert parse_s3_url(storage.locator("outputs/t/x.mp4")) == ("media", "outputs/t/x.mp4")


def test_keys_lists_every_object_under_a_prefix_and_the_layout_names_its_task(
    storage: Storage,
) -> None:
    from vidconv.storage import input_key, output_key, task_id_of

    made = [input_key("t1", "a.mp4"), output_key("t1", "a.mp4", "webm"),
            input_key("t2", "b.mov")]
    for key in made:
        storage.put_stream(key, io.BytesIO(b"x"))
    assert sorted(storage.keys("inputs/")) == sorted([made[0], made[2]])
    assert list(storage.keys("outputs/")) == ["outputs/t1/a.webm"]
    assert list(storage.keys("nothing/")) == []
    assert [task_id_of(k) for k in made] == ["t1", "t1", "t2"]
    assert task_id_of("other/t1/a") is None and task_id_of("inputs/loose") is None
