"""/api/uploads/: tus 1.0 resumable uploads (core, creation, creation-with-upload, termination,
expiration, checksum), thin handlers over vidconv.api.services.uploads.

Every request but OPTIONS carries ``Tus-Resumable: 1.0.0`` and a bearer token; every answer
carries ``Tus-Resumable``. OPTIONS tells what the server supports and needs no token, like the
OpenAPI document. Another user's upload is a 404, exactly like a missing or expired one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vidconv.api.deps import get_ctx, read_json_object, require_user
from vidconv.api.errors import ApiError, api_error, service_error
from vidconv.api.openapi import BINARY, EMPTY, ERROR, UNAVAILABLE, Header, Operation
from vidconv.api.schemas import decode
from vidconv.api.services import direct_uploads, uploads
from vidconv.api.services.errors import ServiceError, Unsupported
from vidconv.api.tus import protocol, rows
from vidconv.api.tus.protocol import OFFSET_OCTET_STREAM, VERSION, Body, Checksum, http_date
from vidconv.api.tus.schemas import (
    DirectParts,
    DirectUploadRequest,
    PartUrl,
    UploadCreated,
    direct_request,
    dump,
)
from vidconv.db.models import Upload
from vidconv.settings import Settings

BASE = "/api/uploads/"
JSON_TYPE = "application/json"
MAX_INT = 2**63 - 1

Handler = Callable[[Request], Awaitable[Response]]


def _tus(handler: Handler) -> Handler:
    """Tus-Resumable on every answer, errors included."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = await api_error(request, exc)
        except ServiceError as exc:
            response = await service_error(request, exc)
        response.headers["Tus-Resumable"] = VERSION
        return response

    return wrapped


def _require_version(request: Request) -> None:
    given = request.headers.get("tus-resumable")
    if given is None:
        raise ApiError(400, f"send Tus-Resumable: {VERSION}")
    if given.strip() != VERSION:
        raise ApiError(412, f"this server speaks tus {VERSION} only", {"Tus-Version": VERSION})


def _number(request: Request, name: str, required: bool = True) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_INT:
        raise ApiError(400, f"{name} must be a whole number of bytes")
    return int(raw)


def _body_kind(request: Request) -> str:
    """"" for no body, "tus" for a chunk; Unsupported for anything else."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    length = request.headers.get("content-length")
    if kind == OFFSET_OCTET_STREAM:
        return "tus"
    if not kind and (length is None or length.strip() == "0") and "transfer-encoding" not in \
            request.headers:
        return ""
    raise Unsupported(f"send the bytes as {OFFSET_OCTET_STREAM}")


def _checksum(request: Request) -> Checksum | None:
    header = request.headers.get("upload-checksum")
    return Checksum(header) if header is not None else None


def _progress_headers(done: uploads.Progress) -> dict[str, str]:
    return {"Upload-Offset": str(done.offset), "Upload-Expires": http_date(done.expires_at)}


async def options(request: Request) -> Response:
    max_size = get_ctx(request).settings.max_upload_bytes
    return Response(status_code=204, headers={
        "Tus-Version": VERSION, "Tus-Extension": protocol.EXTENSIONS,
        "Tus-Max-Size": str(max_size), "Tus-Checksum-Algorithm": ",".join(protocol.CHECKSUMS)})


def _direct_answer(row: Upload, plan: direct_uploads.Plan, expires: datetime,
                   status: int) -> Response:
    location = BASE + row.id
    parts = DirectParts(part_size=plan.part_size, complete=location + "/complete",
                        parts=[PartUrl(part=p.part, size=p.size, url=p.url) for p in plan.parts],
                        urls_expire_at=plan.urls_expire_at.isoformat())
    answer = UploadCreated(upload=row.id, location=location, length=row.length,
                           offset=row.upload_offset, expires_at=expires.isoformat(),
                           direct=parts)
    return JSONResponse(dump(answer), status, headers={"Location": location})


async def create_direct(request: Request, owner: str) -> Response:
    """Direct transfers: presigned URLs for each part; the bytes go to S3, not through us."""
    ctx = get_ctx(request)
    wanted = decode(DirectUploadRequest, await read_json_object(request))
    row, plan = await direct_uploads.create(ctx, owner, wanted.length, wanted.filename)
    return _direct_answer(row, plan, uploads.progress(row).expires_at, 201)


async def direct_parts(request: Request) -> Response:
    owner = require_user(request)
    row, plan = await direct_uploads.refresh(get_ctx(request), owner,
                                             request.path_params["upload_id"])
    return _direct_answer(row, plan, uploads.progress(row).expires_at, 200)


async def direct_complete(request: Request) -> Response:
    owner = require_user(request)
    upload_id = request.path_params["upload_id"]
    done = await direct_uploads.complete(get_ctx(request), owner, upload_id)
    answer = UploadCreated(upload=upload_id, location=BASE + upload_id, length=done.length,
                           offset=done.offset, expires_at=done.expires_at.isoformat())
    return JSONResponse(dump(answer), 200)


async def create(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == JSON_TYPE:
        return await create_direct(request, owner)
    _require_version(request)
    kind = _body_kind(request)
    if "upload-defer-length" in request.headers:
        raise ApiError(400, "give Upload-Length: this server needs the length up front")
    length = _number(request, "upload-length")
    assert length is not None
    checksum = _checksum(request) if kind else None
    row = await uploads.create(ctx, owner, length, request.headers.get("upload-metadata", ""))
    done = uploads.progress(row)
    if kind:  # creation-with-upload: the body is the first chunk
        try:
            done = await uploads.write(ctx, owner, row.id, 0, Body(request.stream()), checksum,
                                       _number(request, "content-length", required=False))
        except ServiceError:  # the upload exists all the same: the client resumes it
            done = uploads.progress(await _current(request, row.id, owner))
    location = BASE + row.id
    created = UploadCreated(upload=row.id, location=location, length=row.length,
                            offset=done.offset, expires_at=done.expires_at.isoformat())
    return JSONResponse(dump(created), 201,
                        headers={"Location": location, **_progress_headers(done)})


async def _current(request: Request, upload_id: str, owner: str) -> Upload:
    return await anyio.to_thread.run_sync(rows.get_owned, get_ctx(request).sessions, owner,
                                          upload_id)


async def head(request: Request) -> Response:
    owner = require_user(request)
    _require_version(request)
    row = await _current(request, request.path_params["upload_id"], owner)
    done = uploads.progress(row)
    headers = {**_progress_headers(done), "Upload-Length": str(row.length),
               "Cache-Control": "no-store"}
    if row.metadata_header:
        headers["Upload-Metadata"] = row.metadata_header
    return Response(status_code=200, headers=headers)


async def patch(request: Request) -> Response:
    owner = require_user(request)
    ctx = get_ctx(request)
    _require_version(request)
    if _body_kind(request) != "tus":
        raise Unsupported(f"send the bytes as {OFFSET_OCTET_STREAM}")
    offset = _number(request, "upload-offset")
    assert offset is not None
    done = await uploads.write(ctx, owner, request.path_params["upload_id"], offset,
                               Body(request.stream()), _checksum(request),
                               _number(request, "content-length", required=False))
    return Response(status_code=204, headers=_progress_headers(done))


async def terminate(request: Request) -> Response:
    owner = require_user(request)
    _require_version(request)
    await uploads.terminate(get_ctx(request), owner, request.path_params["upload_id"])
    return Response(status_code=204)


async def collection(request: Request) -> Response:
    return await (options if request.method == "OPTIONS" else create)(request)


async def item(request: Request) -> Response:
    handler = {"HEAD": head, "PATCH": patch}.get(request.method, terminate)
    return await handler(request)


routes = [
    Route(BASE, _tus(collection), methods=["OPTIONS", "POST"]),
    Route(BASE + "{upload_id}", _tus(item), methods=["HEAD", "PATCH", "DELETE"]),
    Route(BASE + "{upload_id}/parts", direct_parts, methods=["POST"]),
    Route(BASE + "{upload_id}/complete", direct_complete, methods=["POST"]),
]


# -- the OpenAPI document ----------------------------------------------------------------------

_VERSION = Header(f"the protocol version: {VERSION}", {"type": "string", "const": VERSION},
                  required=True)
_OFFSET = Header("bytes stored so far", {"type": "string", "pattern": r"^\d+$"}, required=True)
_EXPIRES = Header("when the upload is removed unless written to or made a task (HTTP date)",
                  required=True)
_TUS = {"Tus-Resumable": Header("the protocol version", {"type": "string", "const": VERSION},
                                required=True)}


def operations(settings: Settings) -> list[Operation]:
    """The upload operations as this server's settings make them (its size limit)."""
    length = Header("the upload's size in bytes",
                    {"type": "integer", "minimum": 1, "maximum": settings.max_upload_bytes},
                    required=True)
    metadata = Header("comma-separated 'key base64(value)' pairs; filename names the file",
                      {"type": "string", "pattern": protocol.METADATA_PATTERN,
                       "maxLength": protocol.MAX_METADATA})
    checksum = Header("the chunk's digest: '<sha1|md5|sha256> <base64>'; a mismatch is 460 and "
                      "keeps nothing of it",
                      {"type": "string", "pattern": protocol.CHECKSUM_PATTERN})
    chunk = {"Tus-Resumable": _VERSION, "Upload-Checksum": checksum}
    creation: dict[str, str | Header] = {
        "Tus-Resumable": _VERSION, "Upload-Length": length, "Upload-Metadata": metadata,
        "Upload-Checksum": checksum}
    direct = settings.direct_transfers == "on"
    if direct:  # a JSON creation has neither: required for tus only
        creation = {k: replace(h, required=False, description=h.description + " (tus)")
                    if isinstance(h, Header) else h for k, h in creation.items()}
    progress = {"Upload-Offset": _OFFSET, "Upload-Expires": _EXPIRES, **_TUS}
    common = {400: ERROR, 401: ERROR, 404: ERROR, 412: ERROR, 503: UNAVAILABLE}
    return [
        Operation("OPTIONS", BASE, "What the upload server supports (tus discovery)",
                  "uploadOptions", {204: EMPTY},
                  response_headers={204: {
                      "Tus-Version": Header("protocol versions", required=True),
                      "Tus-Extension": Header("supported extensions", required=True),
                      "Tus-Max-Size": Header("largest upload in bytes",
                                             {"type": "string", "pattern": r"^\d+$"},
                                             required=True),
                      "Tus-Checksum-Algorithm": Header("checksum algorithms", required=True)}}),
        Operation("POST", BASE, "Create a resumable upload (tus creation, with an optional "
                  "first chunk)" + ("; or, as JSON, a direct one (presigned part URLs)"
                                    if direct else ""), "createUpload",
                  {201: UploadCreated, 400: ERROR, 401: ERROR, 412: ERROR, 413: ERROR,
                   415: ERROR, 422: ERROR, 429: ERROR, 503: UNAVAILABLE},
                  body={OFFSET_OCTET_STREAM: BINARY,
                        **({JSON_TYPE: direct_request(settings.max_upload_bytes)}
                           if direct else {})},
                  body_required=direct, auth=True, headers=creation,
                  response_headers={201: {"Location": Header("the upload's URL", required=True),
                                          **({} if direct else progress)}}),
        Operation("HEAD", BASE + "{upload_id}", "Where an upload stands (its offset)",
                  "getUploadOffset", {200: EMPTY, **common}, auth=True,
                  headers={"Tus-Resumable": _VERSION},
                  response_headers={200: {
                      **progress, "Upload-Length": Header("the upload's size", required=True)}}),
        Operation("PATCH", BASE + "{upload_id}", "Send the next chunk (at Upload-Offset)",
                  "writeUpload",
                  {204: EMPTY, 409: ERROR, 413: ERROR, 415: ERROR, 460: ERROR, **common},
                  body={OFFSET_OCTET_STREAM: BINARY}, auth=True,
                  headers={**chunk, "Upload-Offset": Header(
                      "where this chunk starts: the offset HEAD answered",
                      {"type": "integer", "minimum": 0}, required=True)},
                  response_headers={204: progress}),
        Operation("DELETE", BASE + "{upload_id}", "Delete an upload and its bytes (tus "
                  "termination)", "deleteUpload", {204: EMPTY, 409: ERROR, **common}, auth=True,
                  headers={"Tus-Resumable": _VERSION}, response_headers={204: _TUS}),
        Operation("POST", BASE + "{upload_id}/parts", "Direct transfers: fresh URLs for the "
                  "parts storage does not hold yet", "refreshUploadParts",
                  {200: UploadCreated, 401: ERROR, 404: ERROR, 409: ERROR, 415: ERROR,
                   503: UNAVAILABLE}, auth=True),
        Operation("POST", BASE + "{upload_id}/complete", "Direct transfers: join the uploaded "
                  "parts into the file", "completeUpload",
                  {200: UploadCreated, 400: ERROR, 401: ERROR, 404: ERROR, 409: ERROR,
                   503: UNAVAILABLE}, auth=True),
    ]
