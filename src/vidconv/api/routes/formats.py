"""GET /api/formats: the target formats and their options, generated from vidconv.formats and
vidconv.options (the same tables the API validates with and the transcoder converts with), for
clients that build a form from it (the web page)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vidconv import formats, options
from vidconv.api.deps import get_ctx, render
from vidconv.api.openapi import Operation
from vidconv.api.schemas import FormatInfo, FormatList

# Generated once per process: it changes only with the code.
_FORMATS = [FormatInfo(**options.describe(name)) for name in formats.FORMATS]


async def list_formats(request: Request) -> Response:
    response = render(FormatList(formats=_FORMATS,
                                 max_upload_bytes=get_ctx(request).settings.max_upload_bytes))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


routes = [Route("/api/formats", list_formats, methods=["GET"])]

OPERATIONS = [
    Operation("GET", "/api/formats", "Target formats and their options", "listFormats",
              {200: FormatList}),
]
