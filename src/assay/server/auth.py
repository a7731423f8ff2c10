"""Who is calling: a project from an API key, or the default project on loopback."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import Request

from assay.keys import KeyRing
from assay.settings import Settings


class AuthError(Exception):
    """The request may not proceed; ``status`` is 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Caller:
    """The project a request acts on, and whether it may administer projects and keys."""

    project: str
    admin: bool


def presented_key(request: Request) -> str | None:
    """The key from ``Authorization: Bearer …`` or ``X-API-Key``, if any."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


class Authenticator:
    """Applies the key rules: keys see only their own project; loopback needs none."""

    def __init__(self, settings: Settings, keys: KeyRing) -> None:
        self.settings = settings
        self.keys = keys

    def caller(self, request: Request) -> Caller:
        """Resolve the caller or raise :class:`AuthError`."""
        secret = presented_key(request)
        admin_key = self.settings.admin_key
        if secret is not None:
            if admin_key and hmac.compare_digest(secret.encode(), admin_key.encode()):
                return Caller(self.settings.default_project, admin=True)
            key = self.keys.lookup(secret)
            if key is None:
                raise AuthError(
                    401,
                    "API key is unknown or revoked; create one with `assay keys create PROJECT`",
                )
            return Caller(key.project, admin=False)
        if self.anonymous_project() is None:
            raise AuthError(
                401,
                "this server listens beyond loopback and requires an API key: "
                "send `Authorization: Bearer <key>` (create one with "
                "`assay keys create PROJECT`)",
            )
        return Caller(self.settings.default_project, admin=True)

    def anonymous_project(self) -> str | None:
        """The project a caller without a key gets, or None when keys are required."""
        return None if self.settings.require_keys else self.settings.default_project

    def project_for(self, request: Request, requested: str | None) -> str:
        """The project a read acts on: the key's own, or (admins only) the one asked for."""
        caller = self.caller(request)
        if requested is None or requested == caller.project:
            return caller.project
        if not caller.admin:
            raise AuthError(
                403,
                f"this API key belongs to project {caller.project!r} and "
                f"cannot read project {requested!r}",
            )
        return requested

    def require_admin(self, request: Request) -> Caller:
        """The caller, if it may manage projects and keys."""
        caller = self.caller(request)
        if not caller.admin:
            raise AuthError(
                403,
                "managing projects and keys needs the admin key "
                "(ASSAY_ADMIN_KEY) or a loopback request without a key",
            )
        return caller
