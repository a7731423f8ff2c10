"""``assay projects`` and ``assay keys``: tenants and their API keys."""

from __future__ import annotations

import click

from assay.cli.common import (
    check,
    connect,
    console,
    output_options,
    print_json,
    print_table,
    settings_from_env,
)


@click.group()
def projects() -> None:
    """Projects own spans and keys."""


@projects.command("create")
@click.argument("name")
def create_project(name: str) -> None:
    """Create a project (idempotent)."""
    with connect(settings_from_env()) as client:
        project = check(client.post("/api/v1/projects", json={"name": name}))
    console.print(f"project {project['name']} ready")


@projects.command("retention")
@click.argument("name")
@click.option("--days", type=float, default=None, help="Keep spans this many days.")
@click.option("--off", is_flag=True, help="Keep spans forever.")
@click.option("--apply", "apply_now", is_flag=True, help="Delete what is past it now.")
def retention(name: str, days: float | None, off: bool, apply_now: bool) -> None:
    """Show or set how long a project's spans are kept; the server deletes older spans
    every ASSAY_RETENTION_INTERVAL_SECONDS."""
    if days is not None and off:
        raise click.UsageError("give --days N or --off, not both")
    with connect(settings_from_env(), create=days is not None or off) as client:
        if days is not None or off:
            wanted = {"days": None if off else days}
            body = check(client.put(f"/api/v1/projects/{name}/retention", json=wanted))
        else:
            body = check(client.get(f"/api/v1/projects/{name}/retention"))
        kept = "forever" if body["days"] is None else f"for {body['days']:g} days"
        console.print(f"project {name} keeps spans {kept}")
        if apply_now:
            deleted = check(client.post("/api/v1/retention/apply"))
            console.print(f"deleted {deleted.get(name, 0):,} spans past retention")


@projects.command("list")
@output_options
def list_projects(as_json: bool) -> None:
    """Every project."""
    with connect(settings_from_env()) as client:
        rows = check(client.get("/api/v1/projects"))
    if as_json:
        print_json(rows)
        return
    print_table(
        "projects", ["name", "created (UTC)"], [[r["name"], r["created_at"][:19]] for r in rows]
    )


@click.group()
def keys() -> None:
    """API keys: a key writes and reads only its own project."""


@keys.command("create")
@click.argument("project")
def create_key(project: str) -> None:
    """Create a key for PROJECT (created if missing). The secret is shown once."""
    with connect(settings_from_env()) as client:
        key = check(client.post(f"/api/v1/projects/{project}/keys"))
    console.print(
        f"key {key['key_id']} for project {key['project']} (shown once, store it):", highlight=False
    )
    click.echo(key["secret"])


@keys.command("list")
@click.option("--project")
@output_options
def list_keys(project: str | None, as_json: bool) -> None:
    """Keys (ids and prefixes; secrets are never stored)."""
    with connect(settings_from_env()) as client:
        rows = check(client.get("/api/v1/keys", params={"project": project} if project else {}))
    if as_json:
        print_json(rows)
        return
    print_table(
        "keys",
        ["key_id", "project", "prefix", "created (UTC)", "revoked"],
        [
            [
                r["key_id"],
                r["project"],
                r["prefix"] + "…",
                r["created_at"][:19],
                "yes" if r["revoked"] else "",
            ]
            for r in rows
        ],
    )


@keys.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke a key; requests with it get 401 from now on."""
    with connect(settings_from_env()) as client:
        check(client.delete(f"/api/v1/keys/{key_id}"))
    console.print(f"key {key_id} revoked")
