"""schemathesis hooks for tests/api/test_schemathesis.py (loaded via SCHEMATHESIS_HOOKS).

Rules of the API that JSON Schema cannot state: signup's password2 repeats password1, and the
first chunk sent with a tus creation (POST /api/uploads/) is no longer than its Upload-Length
(which is made to fit the chunk).
A schema-valid request the generator makes is made to follow them, so that "valid request
refused" means what it says; invalid ones are left as generated.

And one mistake of schemathesis' own: a body it meant to make invalid by breaking one branch of
an ``anyOf`` may satisfy another (``newFormat=mp3`` breaks "a format with video" and is exactly
"an audio-only format without video options"). A "schema-violating request accepted" whose body
the document's schema accepts is dropped; every other failure stands.

And a slip of its generator: the coverage phase may call a case valid whose optional tus
header misses the header's pattern (``Upload-Checksum: 0``); such a header is dropped from a
case called valid, which then is.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.transport.serialization import serialize_binary

from vidconv.api.tus.protocol import CHECKSUM_PATTERN, METADATA_PATTERN

PATTERNS = {"Upload-Checksum": CHECKSUM_PATTERN, "Upload-Metadata": METADATA_PATTERN}


# tus chunks are raw bytes, sent as generated.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    positive = case.meta is None or case.meta.generation.mode.is_positive
    body = case.body
    if (positive and case.operation.path == "/api/auth/signup" and isinstance(body, dict)
            and isinstance(body.get("password1"), str) and "password2" in body):
        body["password2"] = body["password1"]
    if positive and case.headers:
        for name, pattern in PATTERNS.items():
            value = case.headers.get(name)
            if isinstance(value, str) and not re.fullmatch(pattern, value):
                del case.headers[name]
    if positive and case.operation.path == "/api/uploads/" and case.method == "POST":
        length = str((case.headers or {}).get("Upload-Length", ""))
        if body is not None and length.isdigit():  # the length grows to the chunk's
            size = len(serialize_binary(body))
            case.headers["Upload-Length"] = str(max(int(length), size))
    return case


def _text(value: Any) -> Any:
    """A file part as the string JSON Schema sees (schemathesis wraps bytes as Binary)."""
    data = getattr(value, "data", value)
    return data.decode("latin-1") if isinstance(data, bytes) else value


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if not isinstance(failure, AcceptedNegativeData) or "in body" not in failure.message:
        return True
    doc = case.operation.schema.raw_schema
    body_spec = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    schema = (body_spec.get(case.media_type) or {}).get("schema")
    if schema is None or not isinstance(case.body, dict):
        return True
    body = {k: _text(v) for k, v in case.body.items()}
    validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]})
    return not validator.is_valid(body)  # valid after all: schemathesis' false positive
