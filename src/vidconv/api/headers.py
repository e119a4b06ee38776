"""Security headers on every answer (a pure ASGI middleware: streams pass through untouched).

Every response: no MIME sniffing, no Referer sent anywhere, and no framing by other sites. The
web page and its assets also get a Content-Security-Policy that allows scripts, styles and
connections from this origin only, with no inline script or style: the page ships none, so an
injected one would not run. Swagger UI (/docs) is left without it: it starts from an inline
script; so are a task's files by their signed links (media a player opens). With direct
transfers on, a download answers 307 to S3: the page's fetch follows it, so the policy also
lets the page connect to the S3 endpoint clients reach.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidconv.settings import Settings

PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'{connect}; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
_COMMON = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY")]


def page_policy(settings: Settings) -> str:
    connect = ""
    if settings.direct_transfers == "on":
        endpoint = urlsplit(settings.s3_public_endpoint or settings.s3_endpoint)
        connect = f" {endpoint.scheme}://{endpoint.netloc}"
    return PAGE_POLICY.format(connect=connect)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.page = page_policy(settings)

    def policy_for(self, path: str) -> str | None:
        if path == "/" or path.startswith("/web/"):
            return self.page
        if path == "/docs" or path.startswith("/docs/"):
            return None
        if path.startswith("/api/files/"):
            # A task's media by its signed link: a playlist opened as a document (Safari plays
            # it natively) must load its renditions; default-src 'none' would forbid that.
            return None
        return API_POLICY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy_for(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in _COMMON if k not in present]
                if policy is not None and b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", policy.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
