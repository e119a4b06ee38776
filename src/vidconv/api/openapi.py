"""The OpenAPI 3.1 document, generated: from the operations each route module declares beside
its handlers, and from the pydantic models (``vidconv.api.schemas``) those handlers decode
requests and encode responses with. Nothing here is written twice.

tests/api holds the running app to the result: every route is described, every response a
test sees validates against its schema, and schemathesis finds no disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from vidconv import __version__, formats
from vidconv.api import schemas
from vidconv.api.security import STREAM_COOKIE_NAME
from vidconv.settings import Settings

REF = "#/components/schemas/{model}"
ERROR, UNAVAILABLE, THROTTLED = "Error", "Unavailable", "Throttled"
BINARY, HTML, JSON, TEXT, EMPTY = "binary", "html", "json", "text", "empty"
EVENTS, ENDED, STREAM_COOKIE = "events", "ended", "stream-cookie"
EVENT_ID_PATTERN = r"^(-1|\d+)-[A-Z]+$"  # <revision>-<state>: what the client has been told
REDIRECT = "redirect"


@dataclass(frozen=True)
class Header:
    """A request or response header, with its JSON Schema."""

    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One method on one path, as the route module that serves it declares it."""

    method: str
    path: str
    summary: str
    operation_id: str
    responses: dict[int, type[BaseModel] | str]
    body: dict[str, type[BaseModel] | str] = field(default_factory=dict)  # media type -> model
    query: type[BaseModel] | None = None
    auth: bool = False
    cookie: bool = False  # a task's stream cookie may stand in for the bearer token
    headers: dict[str, str | Header] = field(default_factory=dict)  # request header -> doc
    response_headers: dict[int, dict[str, Header]] = field(default_factory=dict)
    body_required: bool = True  # body media BINARY: raw bytes (no model)
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> its schema


def _operations(settings: Settings) -> list[Operation]:
    from vidconv.api.routes import (
        auth,
        docs,
        events,
        files,
        formats,
        health,
        metrics,
        page,
        tasks,
        uploads,
        webhooks,
    )

    return [*auth.OPERATIONS, *tasks.OPERATIONS, *files.OPERATIONS, *events.OPERATIONS,
            *formats.OPERATIONS, *uploads.operations(settings), *webhooks.OPERATIONS,
            *health.OPERATIONS, *metrics.OPERATIONS, *docs.OPERATIONS, *page.OPERATIONS]


def _models(ops: list[Operation]) -> list[type[BaseModel]]:
    # The event stream's data are no response body of their own: named here.
    found: list[type[BaseModel]] = [schemas.Message, schemas.Options, schemas.ProgressEvent,
                                    schemas.StateEvent]
    for op in ops:
        for model in [*op.responses.values(), *op.body.values()]:
            if isinstance(model, type) and model not in found:
                found.append(model)
    return found


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "description")}
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "schema": prop}
        if description := model.model_fields[name].description:
            param["description"] = description
        params.append(param)
    return params


def _file_reference(settings: Settings) -> dict[str, Any]:
    """What the JSON ``file`` may be on this server: a name of yours, or (unless URL inputs are
    off) an http(s) URL."""
    name = {"type": "string", "pattern": schemas.FILE_NAME_PATTERN, "maxLength": 255}
    if settings.url_inputs == "off":
        return name
    return {"anyOf": [name, {"type": "string", "pattern": schemas.URL_PATTERN,
                             "maxLength": 2048}]}


def _multipart_form(components: dict[str, Any]) -> dict[str, Any]:
    """The multipart body: the form fields of TaskForm, the file, and each option as a field."""
    options = components["Options"]
    option_fields = {k: dict(v) for k, v in options["properties"].items()}
    binary = {"type": "string", "format": "binary", "minLength": 1}
    fmt = {"type": "string", "enum": formats.format_names()}
    return {
        "type": "object",
        "description": "Each option may come as a field of its own (max_height=480), or all "
                       "of them as one JSON object in the field options, not both.",
        "properties": {
            "file": {**binary, "description": "the video"},
            "callback_url": {"type": "string", "pattern": schemas.CALLBACK_URL_PATTERN,
                             "maxLength": schemas.MAX_URL,
                             "description": "where the task's end is POSTed as a signed event"},
            "fileName": {**binary, "description": "alias of file"},
            "conversion_type": fmt,
            "newFormat": {**fmt, "description": "alias of conversion_type"},
            "options": {"$ref": REF.format(model="Options")},
            **option_fields,
        },
        "additionalProperties": False,
        "allOf": [
            {"oneOf": [{"required": ["file"]}, {"required": ["fileName"]}]},
            {"oneOf": [{"required": ["conversion_type"]}, {"required": ["newFormat"]}]},
            *schemas.option_rules(),
            {"dependentSchemas": {"options": {"properties": {k: False for k in option_fields}}}},
            schemas.format_rules("", "options"),
        ],
    }


def _json_reference(components: dict[str, Any], settings: Settings) -> dict[str, Any]:
    schema: dict[str, Any] = components["TaskFromReference"]
    schema["properties"]["file"] = {**_file_reference(settings),
                                    "description": schema["properties"]["file"]["description"]}
    schema.setdefault("allOf", []).extend([
        {"oneOf": [{"required": ["conversion_type"]}, {"required": ["newFormat"]}]},
        {"oneOf": [{"required": ["file"]}, {"required": ["upload"]}]},
        schemas.format_rules("options"),
    ])
    for alias in ("conversion_type", "newFormat", "upload"):  # given, never null
        prop = schema["properties"][alias]
        prop.update(next(s for s in prop.pop("anyOf") if s.get("type") != "null"))
        prop.pop("default", None)
    schema["properties"]["options"] = {"$ref": REF.format(model="Options")}
    return schema


def _response(spec: type[BaseModel] | str, status: int) -> dict[str, Any]:
    if isinstance(spec, type):
        return {"description": (spec.__doc__ or spec.__name__).strip().splitlines()[0],
                "content": {"application/json": {
                    "schema": {"$ref": REF.format(model=spec.__name__)}}}}
    if spec in (ERROR, UNAVAILABLE, THROTTLED):
        return {"$ref": f"#/components/responses/{spec}"}
    if spec == BINARY:
        return {"description": "the file (Content-Disposition: attachment)" if status == 200
                else "the requested range",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
    if spec == HTML:
        return {"description": "HTML page", "content": {"text/html": {}}}
    if spec == JSON:
        return {"description": "a JSON document", "content": {"application/json": {}}}
    if spec == TEXT:
        return {"description": "plain text", "content": {"text/plain": {
            "schema": {"type": "string"}}}}
    if spec == EVENTS:
        return {"description": (
            "Server-Sent Events until the task ends: `event: state` (data: a StateEvent) "
            "first and on every change of state, `event: progress` (data: a ProgressEvent) "
            "while it converts; each with an `id:` to resume from with Last-Event-ID. "
            "Comment lines every 15 s keep proxies from closing it. The stream ends after "
            "SUCCESS, FAILURE or REVOKED (a deleted task: REVOKED, result deleted), or after "
            "VIDCONV_EVENT_STREAM_SECONDS: reconnect with Last-Event-ID."),
            "content": {"text/event-stream": {"schema": _event_schema()}}}
    if spec == STREAM_COOKIE:
        return {"description": "the cookie is set: open the EventSource of this task within "
                               "five minutes", "headers": {"Set-Cookie": {
                                   "description": "HttpOnly, SameSite=Strict, Path=the task's "
                                                  "events", "schema": {"type": "string"}}}}
    if spec == ENDED:
        return {"description": "nothing more to tell: the Last-Event-ID given is the task's "
                               "end (an EventSource stops reconnecting)"}
    if spec == REDIRECT:
        return {"description": "fetch it from Location: a short-lived URL of the file storage "
                "(direct transfers)", "headers": {"Location": {
                    "required": True, "schema": {"type": "string", "format": "uri"}}}}
    return {"description": "no content"}


def _event_schema() -> dict[str, Any]:
    """One event of the stream, as OpenAPI 3.2's itemSchema models it (a 3.1 document puts it
    in ``schema``, and tools such as schemathesis check every event against it): the fields of
    the SSE framing, ``data`` being JSON of the model its ``event`` names."""
    def one(name: str, model: str) -> dict[str, Any]:
        return {"type": "object", "required": ["event", "id", "data"], "properties": {
            "event": {"const": name},
            "id": {"type": "string", "pattern": EVENT_ID_PATTERN},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "contentSchema": {"$ref": REF.format(model=model)}},
            "retry": {"type": "integer", "minimum": 0}}}

    return {"oneOf": [one("progress", "ProgressEvent"), one("state", "StateEvent")]}


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "operationId": op.operation_id,
                           "responses": {str(s): _response(m, s) for s, m in op.responses.items()}}
    if op.auth:
        out["security"] = [{"bearer": []}, *([{"streamCookie": []}] if op.cookie else [])]
    params: list[dict[str, Any]] = []
    if op.query is not None:
        params += _query_parameters(op.query)
    for name, spec in op.headers.items():
        header = spec if isinstance(spec, Header) else Header(spec)
        params.append({"name": name, "in": "header", "required": header.required,
                       "schema": header.schema, "description": header.description})
    if params:
        out["parameters"] = params
    for status, headers in op.response_headers.items():
        out["responses"][str(status)]["headers"] = {
            name: {"description": h.description, "required": h.required, "schema": h.schema}
            for name, h in headers.items()}
    if op.body:
        out["requestBody"] = {"required": op.body_required, "content": {
            media: _body_content(model) for media, model in op.body.items()}}
        if "multipart/form-data" in op.body:
            out["requestBody"]["content"]["multipart/form-data"]["encoding"] = {
                "options": {"contentType": "application/json"}}
    return out


def _webhooks(components: dict[str, Any]) -> dict[str, Any]:
    """What vidconv POSTs to a task's callback_url (OpenAPI 3.1 webhooks)."""
    from vidconv.api.webhooks.schemas import EVENT
    from vidconv.api.webhooks.signing import HEADER

    schema = EVENT.json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components["TaskEvent"] = schema
    return {"taskEnded": {"post": {
        "summary": "A task ended (SUCCESS, FAILURE or REVOKED)",
        "description": "Sent once per end state, retried on timeouts, connection errors, 5xx "
                       "and 429 for up to VIDCONV_WEBHOOK_RETRY_HOURS; any 2xx acknowledges.",
        "parameters": [
            {"name": HEADER, "in": "header", "required": True, "schema": {"type": "string"},
             "description": "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>' keyed with your "
                            "signing secret> (a second v1 during a rotation)"},
            {"name": "vidconv-event-id", "in": "header", "required": True,
             "schema": {"type": "string"}, "description": "the event's id, as in the body"},
        ],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF.format(model="TaskEvent")}}}},
        "responses": {"2XX": {"description": "received"}},
    }}}


def _body_content(model: type[BaseModel] | str) -> dict[str, Any]:
    if model == BINARY:  # raw bytes, any: OpenAPI 3.1 says so with no schema
        return {}
    return {"schema": {"$ref": REF.format(model=model if isinstance(model, str)
                                          else model.__name__)}}


def _path_parameters(op: Operation) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in op.path.split("/") if part.startswith("{")]
    generic = {"type": "string", "minLength": 1, "maxLength": schemas.MAX_ID}
    return [{"name": n, "in": "path", "required": True,
             "schema": op.path_params.get(n, generic)} for n in names]


def build_openapi(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings()
    ops = _operations(settings)
    _, defs = models_json_schema([(m, "validation") for m in _models(ops)], ref_template=REF)
    components: dict[str, Any] = defs["$defs"]
    components["TaskFromUpload"] = _multipart_form(components)
    components["TaskFromReference"] = _json_reference(components, settings)
    webhooks = _webhooks(components)
    paths: dict[str, Any] = {}
    for op in ops:
        item = paths.setdefault(op.path, {})
        if op.path.count("{") and "parameters" not in item:
            item["parameters"] = _path_parameters(op)
        item[op.method.lower()] = _operation(op)
    error = {"description": "an error, in one sentence", "content": {
        "application/json": {"schema": {"$ref": REF.format(model="Message")}}}}
    retry = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "vidconv", "version": __version__,
                 "description": "Upload a video, convert it with ffmpeg, download the result."},
        "paths": paths,
        "webhooks": webhooks,
        "components": {
            "schemas": components,
            "responses": {
                ERROR: error,
                UNAVAILABLE: {**error, "description": "the database or the file storage is "
                              "unavailable; retry the same request later", "headers": retry},
                THROTTLED: {**error, "description": "too many failed log-ins; retry later",
                            "headers": retry},
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "streamCookie": {"type": "apiKey", "in": "cookie", "name": STREAM_COOKIE_NAME,
                                 "description": "set by POST /api/tasks/{task_id}/events/"
                                                "session: that task's events only"},
            },
        },
    }
