"""The JSON the upload routes answer (tus itself speaks in headers; these are for people)."""

from __future__ import annotations

from pydantic import Field

from vidconv.api.schemas import Out


class UploadCreated(Out):
    """A new upload: its id, where to send its bytes, and where it stands."""

    upload: str = Field(description="its id (the last segment of location): start a task "
                                    "from it with POST /api/tasks {\"upload\": id}")
    location: str = Field(description="where its chunks go (tus PATCH), HEAD tells its offset")
    length: int = Field(ge=1)
    offset: int = Field(ge=0, description="bytes stored so far")
    expires_at: str = Field(json_schema_extra={"format": "date-time"},
                            description="removed, with its bytes, unless written to or made a "
                                        "task by then")
