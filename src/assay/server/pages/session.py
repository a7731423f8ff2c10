"""Dashboard sign-in: a signed session cookie, CSRF tokens and the caller it stands for.

The JSON API authenticates every request with an API key. A browser cannot hold one,
so the dashboard trades a key for a session cookie (HttpOnly, SameSite=Lax, signed with
HMAC-SHA256) once, at ``/login``. On a loopback bind without keys every visitor gets an
anonymous admin session, which still carries a nonce so forms have CSRF tokens: a page on
another site must not be able to post to a dashboard on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from assay.keys import KeyRing
from assay.server.auth import Caller, presented_key
from assay.settings import Settings

COOKIE = "assay_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """No valid session on a server that requires one; the page redirects to /login."""


class CsrfError(Exception):
    """A state-changing request without a valid CSRF token (answered 403)."""


@dataclass(frozen=True)
class Session:
    """What the cookie says: who signed in, the project shown, and the CSRF nonce."""

    project: str
    admin: bool
    key_id: str | None
    nonce: str
    expires: float

    @property
    def caller(self) -> Caller:
        """The caller the pages act as."""
        return Caller(self.project, self.admin)


class Sessions:
    """Issues and checks session cookies and CSRF tokens for one server."""

    def __init__(self, settings: Settings, keys: KeyRing) -> None:
        self.settings = settings
        self.keys = keys
        secret = settings.session_secret or secrets.token_urlsafe(32)
        self._secret = hashlib.sha256(b"assay-session:" + secret.encode()).digest()

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._secret, payload, "sha256").digest())[
            :32
        ].decode()

    def encode(self, session: Session) -> str:
        """The cookie value for ``session``."""
        body = json.dumps(
            [session.project, session.admin, session.key_id, session.nonce, session.expires],
            separators=(",", ":"),
        ).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._sign(payload.encode())}"

    def decode(self, value: str) -> Session | None:
        """The session in a cookie, or None when it is forged, malformed or expired."""
        payload, _, sig = value.partition(".")
        if not sig or not hmac.compare_digest(sig, self._sign(payload.encode())):
            return None
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            project, admin, key_id, nonce, expires = json.loads(raw)
        except (ValueError, TypeError):
            return None
        if float(expires) < time.time():
            return None
        return Session(str(project), bool(admin), key_id, str(nonce), float(expires))

    def new(self, project: str, admin: bool, key_id: str | None) -> Session:
        """A fresh session lasting ``session_hours``."""
        return Session(
            project,
            admin,
            key_id,
            secrets.token_urlsafe(16),
            time.time() + self.settings.session_hours * 3600,
        )

    def current(self, request: Request) -> Session:
        """The request's session; raises :class:`LoginRequired` when it needs one.

        A loopback server without keys gives a cookie-less visitor an anonymous admin
        session; the page that renders it sets the cookie (see :meth:`attach`)."""
        cached = request.scope.get("assay.session")
        if isinstance(cached, Session):
            return cached
        raw = request.cookies.get(COOKIE)
        session = self.decode(raw) if raw else None
        if session is not None and session.key_id is not None and not self._key_alive(session):
            session = None
        if session is None:
            secret = presented_key(request)
            if secret is not None:
                session = self.login(secret)
        if session is None:
            if self.settings.require_keys:
                raise LoginRequired()
            session = self.new(self.settings.default_project, True, None)
            request.scope["assay.session.new"] = True
        request.scope["assay.session"] = session
        return session

    def _key_alive(self, session: Session) -> bool:
        return self.keys.alive(session.key_id or "", session.project)

    def login(self, secret: str) -> Session | None:
        """A session for an API key or the admin key, or None when it is not valid."""
        admin_key = self.settings.admin_key
        if admin_key and hmac.compare_digest(secret.encode(), admin_key.encode()):
            return self.new(self.settings.default_project, True, None)
        key = self.keys.lookup(secret)
        if key is None:
            return None
        return self.new(key.project, False, key.key_id)

    def attach(self, request: Request, response: Response, session: Session | None = None) -> None:
        """Set the session cookie on ``response`` when it is new or changed."""
        session = session or request.scope.get("assay.session")
        if not isinstance(session, Session):
            return
        if session is not request.scope.get("assay.session") or request.scope.get(
            "assay.session.new"
        ):
            response.set_cookie(
                COOKIE,
                self.encode(session),
                max_age=max(1, int(session.expires - time.time())),
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
                path="/",
            )

    def csrf_token(self, session: Session) -> str:
        """The CSRF token forms of this session must echo."""
        return self._sign(b"csrf:" + session.nonce.encode())

    def check_csrf(self, request: Request, form: Any | None = None) -> Session:
        """The session, if the request carries its CSRF token (form field or header)."""
        session = self.current(request)
        token = request.headers.get(CSRF_HEADER)
        if token is None and form is not None:
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
        if token is None or not hmac.compare_digest(token, self.csrf_token(session)):
            raise CsrfError(
                "this form's CSRF token is missing or stale (the page was opened before a "
                "sign-in or restart): reload the page and submit again"
            )
        return session

    def logout(self, response: Response) -> None:
        """Drop the cookie."""
        response.delete_cookie(COOKIE, path="/")
