"""The JSON the upload routes take and answer (tus itself speaks in headers; these are for
people, and for direct transfers)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model

from vidconv.api.schemas import MAX_ID, Model, Out


class DirectUploadRequest(Model):
    """POST /api/uploads/ as JSON: a multipart upload whose parts go to S3 directly."""

    direct: Literal[True] = Field(description="true: give me presigned part URLs")
    length: int = Field(ge=1, description="the file's size in bytes")
    filename: str | None = Field(None, max_length=255, description="the file's name")


def direct_request(max_bytes: int) -> type[Model]:
    """DirectUploadRequest as this server documents it: its size limit as the maximum."""
    model: type[Model] = create_model(
        "DirectUploadRequest", __base__=DirectUploadRequest,
        length=(int, Field(ge=1, le=max_bytes, description="the file's size in bytes")))
    model.__doc__ = DirectUploadRequest.__doc__
    return model


class PartUrl(Out):
    part: int = Field(ge=1)
    size: int = Field(ge=1, description="the bytes this part must hold")
    url: str = Field(description="PUT the part's bytes here (no other header needed)")


class DirectParts(Out):
    """Direct transfers: where each part not yet in storage goes."""

    part_size: int
    parts: list[PartUrl]
    urls_expire_at: str = Field(json_schema_extra={"format": "date-time"}, description=(
        "then ask for fresh ones: POST /api/uploads/{id}/parts"))
    complete: str = Field(description="POST here once every part is uploaded")


class UploadCreated(Out):
    """An upload: its id, where to send its bytes, and where it stands."""

    upload: str = Field(max_length=MAX_ID, description=(
        "its id (the last segment of location): start a task from it with POST /api/tasks "
        "{\"upload\": id}"))
    location: str = Field(description="where its chunks go (tus PATCH), HEAD tells its offset")
    length: int = Field(ge=1)
    offset: int = Field(ge=0, description="bytes stored so far")
    expires_at: str = Field(json_schema_extra={"format": "date-time"},
                            description="removed, with its bytes, unless written to or made a "
                                        "task by then")
    direct: DirectParts | None = Field(default=None, description="direct transfers only")


def dump(model: Out) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)
