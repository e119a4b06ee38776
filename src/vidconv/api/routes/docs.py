"""/api/openapi.json and Swagger UI at /docs, from pip-packaged assets (works offline)."""

from __future__ import annotations

from openapi_ui_bundles import swagger_ui
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vidconv.api.openapi import HTML, JSON, Operation, build_openapi

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>vidconv API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#swagger-ui",
                                 deepLinking: true, persistAuthorization: true});
  </script>
</body>
</html>
"""


async def openapi_json(request: Request) -> Response:
    ctx = request.app.state.ctx
    if ctx.openapi is None:  # built once per app: it describes this server's settings
        ctx.openapi = build_openapi(ctx.settings)
    return JSONResponse(ctx.openapi)


async def docs(_request: Request) -> Response:
    return HTMLResponse(_PAGE)


routes = [
    Route("/api/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Mount("/docs/static", StaticFiles(directory=str(swagger_ui.static_path)), name="swagger-ui"),
]

OPERATIONS = [
    Operation("GET", "/api/openapi.json", "This document", "openapi", {200: JSON}),
    Operation("GET", "/docs", "Swagger UI", "docs", {200: HTML}),
]
