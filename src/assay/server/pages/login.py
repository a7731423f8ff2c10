"""Sign in with an API key, sign out, and (admins) switch the project shown."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from assay.server.pages import PageError, check_csrf, redirect, render
from assay.server.pages.session import Sessions

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would make the login page a phishing aid."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _login_page(request: Request, next_url: str, error: str | None, status: int = 200) -> Response:
    sessions: Sessions = request.app.state.sessions
    # The sign-in form is shown without a session; render with an anonymous one.
    anonymous = sessions.new(request.app.state.settings.default_project, False, None)
    request.scope["assay.session"] = anonymous
    request.scope["assay.session.anonymous"] = True
    return render(
        request, "login.html", title="Sign in", status=status, next_url=next_url, error=error
    )


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (an API key, or the admin key)."""
    return _login_page(request, _safe_next(next), None)


@router.post("/login")
def login(
    request: Request,
    key: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Trade a key for a session cookie."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.url.netloc:
        raise PageError(403, f"sign-in posted from another site ({origin}); open /login here")
    sessions: Sessions = request.app.state.sessions
    session = sessions.login(key.strip()) if key.strip() else None
    if session is None:
        return _login_page(
            request,
            _safe_next(next),
            "That key is unknown or revoked. Create one with `assay keys create PROJECT` "
            "and paste the secret it prints (it starts with assay_).",
            status=401,
        )
    response = redirect(request, _safe_next(next))
    sessions.attach(request, response, session)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    form = await request.form()
    check_csrf(request, form)
    response = redirect(request, "/login" if request.app.state.settings.require_keys else "/")
    request.app.state.sessions.logout(response)
    return response


@router.post("/project")
async def switch_project(request: Request) -> Response:
    """Show another project (admins only; a project key sees only its own)."""
    form = await request.form()
    ctx = check_csrf(request, form)
    name = str(form.get("project") or "")
    if not ctx.session.admin:
        raise PageError(403, "this sign-in is limited to its key's project")
    if name not in {p.name for p in ctx.store.list_projects()}:
        raise PageError(400, f"no project named {name!r}; pick one from the list")
    sessions: Sessions = request.app.state.sessions
    # Same sign-in, same CSRF nonce: forms open in other tabs keep working.
    session = replace(ctx.session, project=name)
    response = redirect(request, _safe_next(str(form.get("next") or "/")))
    sessions.attach(request, response, session)
    return response
