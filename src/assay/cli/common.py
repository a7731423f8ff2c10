"""What CLI commands share: settings, the connection to assay, output and filters."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import click
import httpx
from rich.console import Console
from rich.table import Table

from assay.settings import Settings, SettingsError

F = TypeVar("F", bound=Callable[..., Any])
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def settings_from_env(**overrides: Any) -> Settings:
    """Settings from the environment, or a clean CLI error."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _server_up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def connect(settings: Settings, create: bool = False) -> Iterator[httpx.Client]:
    """An HTTP client for the API: the running server at ``settings.url`` when one
    answers, otherwise the same app in-process on the database file (one writer:
    the file is opened only when no server holds it). Commands that add data pass
    ``create=True`` so a first use creates the file; readers get a clear error instead."""
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    remote = httpx.Client(base_url=settings.url, headers=headers, timeout=60.0)
    if _server_up(remote):
        try:
            yield remote
        finally:
            remote.close()
        return
    remote.close()
    from assay.store import is_url

    if not create and not is_url(settings.db) and not os.path.exists(settings.db):
        raise click.ClickException(
            f"no assay server answers at {settings.url} and there is no database at "
            f"{settings.db!r}. Start one with `assay serve`, or set ASSAY_URL / ASSAY_DB."
        )
    from fastapi.testclient import TestClient

    from assay.server import create_app
    from assay.store import StoreError

    try:
        with TestClient(
            # A one-off command must not run the server's scheduled background work.
            create_app(settings.with_(host="127.0.0.1", monitors=False, online=False)),
            base_url="http://local",
            headers=headers,
        ) as local:
            yield cast(httpx.Client, local)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


#: Exit code of a command that could not do what was asked (bad input, refused request).
EXIT_USAGE = 2


class UsageFailure(click.ClickException):
    """The command could not do what was asked: exit code 2."""

    exit_code = EXIT_USAGE


def error_detail(response: httpx.Response) -> str:
    """The server's reason for a refused request; request-validation errors name the fields."""
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
        )
    return f"{response.status_code}: {detail}"


def _body(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def check(response: httpx.Response) -> Any:
    """The JSON body of a successful response, or a ClickException with the server's reason."""
    if response.status_code >= 400:
        raise click.ClickException(error_detail(response))
    return _body(response)


def answer(response: httpx.Response) -> Any:
    """Like :func:`check`, but a refused request exits 2 (:class:`UsageFailure`)."""
    if response.status_code >= 400:
        raise UsageFailure(error_detail(response))
    return _body(response)


def output_options(fn: F) -> F:
    """``--json`` on every listing command."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def print_json(data: Any) -> None:
    """JSON to stdout, for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A rich table to stdout."""
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*["" if v is None else str(v) for v in r])
    console.print(table)


def filter_options(fn: F) -> F:
    """The query API's span filters as options."""
    options = [
        click.option("--project", help="Project to read (admin / loopback only)."),
        click.option(
            "--since", "start", help="Start: ISO-8601, Unix seconds or a duration ago such as 24h."
        ),
        click.option("--until", "end", help="End (same forms as --since)."),
        click.option("--model"),
        click.option("--provider"),
        click.option("--service"),
        click.option("--route"),
        click.option("--release"),
        click.option("--environment"),
        click.option("--kind", help="llm, chain, tool, retriever, embedding, agent …"),
        click.option("--status", type=click.Choice(["ok", "error", "unset"])),
        click.option("--session-id"),
        click.option("--user-id"),
        click.option("--min-duration-ms", type=float),
        click.option("--min-cost", type=float, help="USD."),
        click.option("--search", "q", help="Case-insensitive text in input or output."),
        click.option("--attr", multiple=True, help="Attribute equality key=value (repeatable)."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def filter_params(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Query parameters from the filter options that were given."""
    names = (
        "project",
        "start",
        "end",
        "model",
        "provider",
        "service",
        "route",
        "release",
        "environment",
        "kind",
        "status",
        "session_id",
        "user_id",
        "min_duration_ms",
        "min_cost",
        "q",
    )
    params: dict[str, Any] = {n: kwargs.pop(n) for n in names if kwargs.get(n) is not None}
    for n in names:
        kwargs.pop(n, None)
    attrs = kwargs.pop("attr", ())
    if attrs:
        params["attr"] = list(attrs)
    return params


def fmt_ms(value: float | None) -> str:
    """Milliseconds for a table."""
    return "" if value is None else f"{value:,.0f}"


def fmt_usd(value: float | None) -> str:
    """Dollars for a table."""
    if value is None:
        return ""
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"
