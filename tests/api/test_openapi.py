"""The OpenAPI document is valid 3.1, describes every route the app has, and Swagger UI works
offline. (Every response in tests/api is also checked against it: see helpers.py.)"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import Mount, Route
from starlette.testclient import TestClient


def test_document_is_valid_openapi_3_1(client: TestClient) -> None:
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_route_is_documented_and_nothing_else(client: TestClient) -> None:
    doc = client.get("/api/openapi.json").json()
    served: set[tuple[str, str]] = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            assert route.path in ("/docs/static", "/web")  # Swagger UI's and the page's files
            continue
        assert isinstance(route, Route)
        methods = route.methods or set()
        # Starlette answers HEAD wherever there is a GET; a HEAD of its own is documented.
        served |= {(route.path, m.lower()) for m in methods if m != "HEAD" or "GET" not in methods}
    documented = {(path, method) for path, item in doc["paths"].items()
                  for method in item if method != "parameters"}
    assert served == documented


def test_format_enum_is_the_transcoders(client: TestClient) -> None:
    from vidconv import formats, options

    doc = client.get("/api/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for body in ("TaskFromUpload", "TaskFromReference"):
        for alias in ("conversion_type", "newFormat"):
            assert schemas[body]["properties"][alias]["enum"] == formats.format_names()
    assert set(schemas["Options"]["properties"]) == set(options.OPTIONS)
    assert schemas["Options"]["additionalProperties"] is False


@pytest.mark.parametrize(("fmt", "options"), [
    ("opus", {"sample_rate": 48000, "channels": 6, "audio_bitrate": 200}),
    ("flac", {"audio_bitrate": 320}),
    ("wav", {"audio_bitrate": 320}),
    ("flac", {"sample_rate": 192000, "channels": 8}),
    ("flac", {"sample_rate": 192001}),
    ("m4a", {"max_height": 480}),
    ("m4a", {"audio_bitrate": 513}),
    ("mpeg", {"audio_bitrate": 100, "channels": 6}),
    ("mp4", {"video_bitrate": 1000, "quality": 50}),
    ("mp3", {"audio": False}),
])
def test_the_document_allows_exactly_the_options_the_server_takes(
        client: TestClient, fmt: str, options: dict[str, Any]) -> None:
    """Per format: what the JSON body's schema says about options is what validate_options
    does (so schemathesis's valid requests are never refused)."""
    from vidconv.formats import FormatError
    from vidconv.options import validate_options

    doc = client.get("/api/openapi.json").json()
    schema = {**doc["components"]["schemas"]["TaskFromReference"],
              "components": doc["components"]}
    body = {"file": "clip.mp4", "conversion_type": fmt, "options": options}
    documented = jsonschema.Draft202012Validator(schema).is_valid(body)
    try:
        validate_options(fmt, options)
        accepted = True
    except FormatError:
        accepted = False
    assert documented == accepted


def test_swagger_ui_is_served_from_local_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/api/openapi.json" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        r = client.get(f"/docs/static/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000
    assert client.get("/docs/static/nope.js").status_code == 404


def test_a_405_names_every_method_the_path_has(client: TestClient) -> None:
    doc = client.get("/api/openapi.json").json()
    for path, item in doc["paths"].items():
        documented = {m.upper() for m in item if m != "parameters"}
        url = re.sub(r"\{[^}]+\}", "0" * 32, path)
        method = next(m for m in ("PATCH", "PUT") if m not in documented)
        r = client.request(method, url)
        assert r.status_code == 405, (path, r.status_code)
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        # HEAD comes with GET (Starlette serves it from the GET handler).
        assert allowed - {"HEAD"} == documented - {"HEAD"}, (path, r.headers["allow"])
        assert "HEAD" not in documented or "HEAD" in allowed
