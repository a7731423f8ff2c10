"""The web dashboard: server-rendered pages from the same app as the API.

Each page module defines a ``router``; this package assembles them, renders templates
(``server/templates``) and serves static files (``server/static``, plus the plotly.js
bundle that ships inside the ``plotly`` wheel, so no page needs the network).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import jinja2
from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from assay import __version__
from assay.server.pages.session import CsrfError, LoginRequired, Session, Sessions
from assay.settings import Settings
from assay.store import Store

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
FLASH = "assay_flash"

#: Pages in the navigation bar: (path, label).
NAV: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/traces", "Traces"),
    ("/evals", "Evaluations"),
    ("/goldens", "Golden sets"),
    ("/drift", "Drift"),
    ("/annotate", "Annotate"),
    ("/calibration", "Calibration"),
)

#: Served with every page: scripts only from this origin, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class PageError(Exception):
    """A page cannot be shown; rendered as an error page with ``status`` (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PageContext:
    """What a page handler needs: the store, settings and the signed-in session."""

    request: Request
    store: Store
    settings: Settings
    session: Session

    @property
    def project(self) -> str:
        """The project every query of this page is limited to."""
        return self.session.project


def context(request: Request) -> PageContext:
    """The page context; raises LoginRequired when the server needs a sign-in."""
    sessions: Sessions = request.app.state.sessions
    return PageContext(
        request, request.app.state.store, request.app.state.settings, sessions.current(request)
    )


def check_csrf(request: Request, form: Mapping[str, Any] | None = None) -> PageContext:
    """The page context of a state-changing request, after checking its CSRF token."""
    sessions: Sessions = request.app.state.sessions
    sessions.check_csrf(request, form)
    return context(request)


# -- formatting filters --------------------------------------------------------------


def fmt_int(value: float | int | None) -> str:
    """1234567 -> '1,234,567'; None -> '–'."""
    return "–" if value is None else f"{int(value):,}"


def fmt_num(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    """Milliseconds, switching to seconds above 10 s."""
    if value is None:
        return "–"
    return f"{value / 1000:.1f} s" if value >= 10_000 else f"{value:,.0f} ms"


def fmt_cost(value: float | None) -> str:
    """US dollars with precision that suits small per-call costs."""
    if value is None:
        return "–"
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.5f}"
    return f"${value:,.2f}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """0.0312 -> '3.1%'."""
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def fmt_time(value: datetime | None) -> str:
    """UTC time to the second, as '2026-11-24 02:13:42'."""
    if value is None:
        return "–"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_ago(value: datetime | None) -> str:
    """How long ago, coarsely: '5 min ago', '3 d ago'."""
    if value is None:
        return "–"
    s = (datetime.now(UTC) - value).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(s) >= size:
            return f"{s / size:.0f} {unit} ago"
    return "just now"


def truncate(value: str | None, length: int = 120) -> str:
    """Text cut to ``length`` characters on one line."""
    if not value:
        return ""
    one = " ".join(value.split())
    return one if len(one) <= length else one[: length - 1] + "…"


def query(
    base: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), **more: Any
) -> str:
    """``base`` with a query string of the parameters that are not None or empty."""
    items = list(params.items() if isinstance(params, Mapping) else params) + list(more.items())
    kept = [(k, v) for k, v in items if v is not None and v != ""]
    return f"{base}?{urlencode(kept, doseq=True)}" if kept else base


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        int=fmt_int,
        num=fmt_num,
        ms=fmt_ms,
        cost=fmt_cost,
        pct=fmt_pct,
        time=fmt_time,
        ago=fmt_ago,
        truncate_line=truncate,
    )
    env.tests["finite_number"] = lambda v: isinstance(v, int | float) and math.isfinite(v)
    env.globals.update(query=query, nav=NAV, version=__version__)
    return env


def _compress(request: Request, body: bytes, headers: dict[str, str]) -> bytes:
    if len(body) > 1400 and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
        return gzip.compress(body, compresslevel=5)
    return body


def _demo_note(marker: str | None) -> str | None:
    """The demo marker as a short phrase ('generated 2026-11-24 02:27 UTC, seed 7')."""
    if marker is None:
        return None
    try:
        info = json.loads(marker)
        when = datetime.fromisoformat(info["generated_at"]).astimezone(UTC)
        return f"generated {when:%Y-%m-%d %H:%M} UTC, seed {info.get('seed')}"
    except (ValueError, KeyError, TypeError):
        return marker[:100]


def render(
    request: Request, template: str, *, title: str, status: int = 200, **values: Any
) -> Response:
    """Render ``template`` inside the site layout for the request's session."""
    sessions: Sessions = request.app.state.sessions
    session = sessions.current(request)
    store: Store = request.app.state.store
    flash = unquote(request.cookies.get(FLASH) or "") or None
    demo = _demo_note(store.get_meta("demo"))
    path = request.url.path
    active = "/"
    for nav_path, _ in NAV:
        if nav_path != "/" and (path == nav_path or path.startswith(nav_path + "/")):
            active = nav_path
    html = (
        _environment()
        .get_template(template)
        .render(
            request=request,
            title=title,
            session=session,
            project=session.project,
            projects=[p.name for p in store.list_projects()]
            if session.admin
            else [session.project],
            csrf_token=sessions.csrf_token(session),
            active=active,
            flash=flash,
            demo=demo,
            signed_in=session.key_id is not None or request.app.state.settings.require_keys,
            **values,
        )
    )
    headers = dict(SECURITY_HEADERS)
    body = _compress(request, html.encode(), headers)
    response = Response(body, status_code=status, media_type="text/html", headers=headers)
    if flash:
        response.delete_cookie(FLASH, path="/")
    sessions.attach(request, response)
    return response


def redirect(request: Request, url: str, flash: str | None = None) -> RedirectResponse:
    """A 303 after a form post, with an optional one-time message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        # A cookie holds ASCII only; percent-encoding keeps any text (✓, ü, 漢) intact.
        response.set_cookie(
            FLASH, quote(flash[:300]), max_age=60, httponly=True, samesite="lax", path="/"
        )
    request.app.state.sessions.attach(request, response)
    return response


def _plotly_path() -> Path | None:
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


@lru_cache(maxsize=1)
def _plotly_bundle() -> tuple[bytes, bytes] | None:
    path = _plotly_path()
    if path is None:
        return None
    raw = path.read_bytes()
    return raw, gzip.compress(raw, compresslevel=9)


def install(app: FastAPI) -> None:
    """Add the pages, static files and their error handling to ``app``."""
    from assay.server.pages import (
        annotate,
        calibration,
        drift,
        evals,
        goldens,
        login,
        overview,
        traces,
    )

    for module in (login, overview, traces, evals, goldens, drift, annotate, calibration):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js(request: Request) -> Response:
        bundle = _plotly_bundle()
        if bundle is None:
            return Response(
                "// plotly is not installed: pip install plotly (charts are disabled)\n",
                media_type="text/javascript",
                status_code=404,
            )
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
            return Response(bundle[1], media_type="text/javascript", headers=headers)
        return Response(bundle[0], media_type="text/javascript", headers=headers)

    # The vendor route must win over the static mount, which was added first.
    app.router.routes.insert(0, app.router.routes.pop())

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        if request.method != "GET":
            return HTMLResponse("Sign in first: open /login", status_code=401)
        return RedirectResponse(query("/login", next=request.url.path), status_code=303)

    @app.exception_handler(CsrfError)
    async def _csrf(request: Request, exc: CsrfError) -> Response:
        return render(request, "error.html", title="Form expired", status=403, message=str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # The API keeps FastAPI's JSON 422; a page answers with a page that names the field.
        if request.url.path.startswith(("/api/", "/v1/", "/docs", "/openapi")):
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors()
        )
        return render(
            request,
            "error.html",
            title="Not available",
            status=400,
            message=f"this address has a value the page cannot use ({problems}); fix it in "
            "the address bar or start again from the navigation",
        )

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return render(
            request, "error.html", title="Not available", status=exc.status, message=str(exc)
        )


__all__ = [
    "PageContext",
    "PageError",
    "check_csrf",
    "context",
    "install",
    "query",
    "redirect",
    "render",
]
