"""What a task leaves in storage: the main output and the files beside it, by name.

A task's outputs all live under ``outputs/<task>/`` (vidconv.storage). The main one is the
row's ``output_key`` (the converted file, a poster, or an adaptive stream's master playlist);
options add pictures next to it under fixed names, so every reader (the API's task detail and
zip, the webhooks, the transcoder that writes them) knows a file's role from its name alone,
and no list of hundreds of names has to travel through a 4 KiB termination message: readers
list the prefix.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vidconv.formats import FORMATS
from vidconv.storage import OUTPUTS, ObjectNotFound, Storage

THUMBNAIL_FORMATS = ("jpg", "webp")
PREVIEW_FORMATS = ("webp", "gif")
THUMBNAIL, PREVIEW, SPRITES, SPRITES_INDEX = "thumbnail", "preview", "sprites.jpg", "sprites.vtt"
PICTURE_OPTIONS = ("thumbnail", "thumbnail_at", "preview", "sprites")

# Types that mimetypes does not know everywhere (it reads the system's tables).
_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "mpd": "application/dash+xml",
          "m4s": "video/iso.segment", "vtt": "text/vtt", "webp": "image/webp",
          "opus": "audio/ogg", "flac": "audio/flac", "m4a": "audio/mp4", "mkv": "video/x-matroska"}


def main_stem(fmt: str, filename: str) -> str:
    """The main output's name before its extension: the input's, or a package's fixed one
    (an adaptive stream's master playlist is ``master.m3u8``, whatever the input was)."""
    profile = FORMATS.get(fmt)
    return "master" if profile is not None and profile.package else filename


def thumbnail_format(options: Mapping[str, Any]) -> str | None:
    """The poster's format a video task asked for (thumbnail_at alone means a JPEG)."""
    if options.get("thumbnail"):
        return str(options["thumbnail"])
    return "jpg" if options.get("thumbnail_at") is not None else None


def extra_names(options: Mapping[str, Any]) -> list[str]:
    """The pictures a video task's options add beside its main output."""
    names = []
    if poster := thumbnail_format(options):
        names.append(f"{THUMBNAIL}.{poster}")
    if options.get("preview"):
        names.append(f"{PREVIEW}.{options['preview']}")
    if options.get("sprites"):
        names += [SPRITES, SPRITES_INDEX]
    return names


def role(name: str, main: str) -> str:
    """What a file of a task's outputs is, from its name."""
    if name == main:
        return "main"
    stem, _, ext = name.rpartition(".")
    if stem in (THUMBNAIL, PREVIEW):
        return stem
    if name == SPRITES:
        return "sprites"
    if name == SPRITES_INDEX:
        return "sprites_index"
    if ext in ("m3u8", "mpd"):
        return "playlist"
    return "media"


def media_type(name: str) -> str:
    ext = name.rpartition(".")[2].lower()
    return _TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def prefix(task_id: str) -> str:
    return f"{OUTPUTS}{task_id}/"


@dataclass(frozen=True)
class OutputFile:
    name: str  # relative to the task's output prefix
    size: int
    role: str
    type: str  # its media type


def several(fmt: str, options: Mapping[str, Any]) -> bool:
    """Whether a task of this format and options leaves more than its main file."""
    profile = FORMATS.get(fmt)
    return bool(extra_names(options)) or bool(profile and profile.package)


def main_file(name: str, size: int | None, fmt: str) -> OutputFile:
    """The main output as the task's row describes it, without a listing of the storage."""
    profile = FORMATS.get(fmt)
    return OutputFile(name, size or 0, "main", profile.mime_type if profile else media_type(name))


def list_files(storage: Storage, task_id: str, main: str) -> list[OutputFile]:
    """Every file a task's conversion left, main first, then by name."""
    base = prefix(task_id)
    found = [OutputFile(key.removeprefix(base), size, role(key.removeprefix(base), main),
                        media_type(key))
             for key, size in storage.entries(base) if not key.endswith(".part")]
    return sorted(found, key=lambda f: (f.role != "main", f.name))


def delete_all(storage: Storage, task_id: str) -> None:
    """Every object under the task's output prefix: its main output and whatever is beside it,
    half-written ones too."""
    for key in list(storage.keys(prefix(task_id))):
        try:
            storage.delete(key)
        except ObjectNotFound:
            pass
