"""GET /: the web page (plain HTML, CSS and JavaScript modules, no build step), and its files
under /web/, shipped as package data in vidconv/api/web."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vidconv.api.openapi import HTML, Operation

WEB = Path(__file__).resolve().parent.parent / "web"


async def page(_request: Request) -> Response:
    # no-cache: a new version of the page is picked up at once (its files are revalidated too).
    return FileResponse(WEB / "index.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


routes = [
    Route("/", page, methods=["GET"]),
    Mount("/web", StaticFiles(directory=str(WEB)), name="web"),
]

OPERATIONS = [Operation("GET", "/", "The web page", "page", {200: HTML})]
