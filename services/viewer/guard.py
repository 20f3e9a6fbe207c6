"""What the viewer does to every request and response, whatever the page: the security
headers, and the refusal of a state-changing request that did not come from the viewer's own
pages.

Headers on every response:
- `Content-Security-Policy`: scripts, styles and images only from the viewer itself (no inline
  script or style anywhere: they live in /statisk/), no framing, no `<base>`, forms post only
  here; `X-Frame-Options: DENY` for browsers without `frame-ancestors`;
- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`;
- `Cache-Control: no-store` on everything but the static files: pages, fragments, event
  streams, redirects and errors may all carry patient data;
- `Strict-Transport-Security` when the request came over TLS: the request's own scheme, which
  uvicorn sets from `X-Forwarded-Proto` only for the proxies named in VIEWER_TRUSTED_PROXIES.

A POST (any method but GET, HEAD, OPTIONS) must come from the viewer's own origin by its
`Origin`, `Sec-Fetch-Site` and `Referer` headers (see `same_origin`); anything else is refused
with 403 before any page sees it. Each form checks its CSRF token (services/viewer/web.py) on
top of this.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.viewer.web import Web, forged

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HSTS = "max-age=31536000"
STATIC = "/statisk/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower case; empty for anything else."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, own: str) -> bool:
    """Whether a state-changing request comes from the viewer's own pages.

    Refused when any sign names another site: `Sec-Fetch-Site` other than `same-origin`, an
    `Origin` other than ours, a `Referer` of another origin. Accepted only with a positive
    sign: our `Origin`, `Sec-Fetch-Site: same-origin`, or our `Referer`. Because every page is
    served with `Referrer-Policy: no-referrer`, browsers post our own forms with
    `Origin: null` and no Referer (Fetch standard); the Fetch Metadata header then speaks.
    """
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin", "null").lower()
    referer = origin_of(request.headers.get("referer", ""))
    if site is not None and site != "same-origin":
        return False
    if origin != "null" and origin != own:
        return False
    if referer and referer != own:
        return False
    return origin == own or site == "same-origin" or referer == own


class Guard:
    """ASGI middleware around the whole viewer."""

    def __init__(self, app: ASGIApp, web: Web) -> None:
        self.app = app
        self.web = web

    def own_origin(self, request: Request) -> str:
        return (self.web.settings.public_origin or origin_of(str(request.base_url))).lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        over_tls = request.url.scheme == "https"
        static = request.url.path.startswith(STATIC)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if not static:
                    headers["Cache-Control"] = "no-store"
                if over_tls:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        if request.method not in SAFE_METHODS and not same_origin(
            request, self.own_origin(request)
        ):
            problem = forged()
            response = self.web.render(
                "error.html", problem.status, title=problem.title, detail=problem.detail
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
