"""``assay store``: move a whole database between backends (DuckDB <-> ClickHouse)."""

from __future__ import annotations

import click

from assay.cli.common import (
    EXIT_USAGE,
    console,
    err_console,
    output_options,
    print_json,
    print_table,
)


@click.group()
def store() -> None:
    """The database itself: copy it to another backend."""


@store.command("migrate")
@click.option("--from", "source", required=True, help="Source: a DuckDB file or store URL.")
@click.option("--to", "destination", required=True, help="Destination: a DuckDB file or URL.")
@click.option("--batch", default=50_000, show_default=True, help="Rows per write.")
@output_options
def migrate(source: str, destination: str, batch: int, as_json: bool) -> None:
    """Copy every table from one store to another (e.g. ./assay.duckdb to
    clickhouse://user:pass@host:8123/assay), resumably, and verify the row counts.

    Stop the server that owns the source first (a DuckDB file has one writer). Run the
    same command again after an interruption: finished tables (and months of spans) are
    skipped, and rows written twice are deduplicated. Exit code 1 when a count does not
    match, 2 on a usage or connection error."""
    from rich.progress import Progress, TaskID

    from assay.store import StoreError, open_store, redact
    from assay.store.transfer import copy_store, describe

    if source == destination:
        raise click.UsageError("--from and --to are the same store")
    try:
        src = open_store(source, read_only=True)
    except StoreError as exc:
        err_console.print(f"cannot open the source: {exc}")
        raise SystemExit(EXIT_USAGE) from None
    try:
        dst = open_store(destination)
    except StoreError as exc:
        src.close()
        err_console.print(f"cannot open the destination: {exc}")
        raise SystemExit(EXIT_USAGE) from None
    try:
        with Progress(console=err_console, transient=True, disable=as_json) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(table: str, rows: int) -> None:
                if table not in tasks:
                    tasks[table] = bar.add_task(f"copying {table}", total=None)
                bar.advance(tasks[table], rows)

            report = copy_store(src, dst, source, destination, batch, progress)
    except StoreError as exc:
        err_console.print(f"copy stopped: {exc}\nrun the same command again to resume")
        raise SystemExit(EXIT_USAGE) from None
    finally:
        src.close()
        dst.close()
    rows = describe(report)
    if as_json:
        print_json({"source": report.source, "destination": report.destination,
                    "verified": report.ok, "tables": rows})  # fmt: skip
    else:
        print_table(
            "store migrate",
            ["table", "source rows", "destination rows", "copied", "verified"],
            [
                [
                    r["table"],
                    f"{r['source_rows']:,}",
                    f"{r['destination_rows']:,}",
                    f"{r['copied_rows']:,}" + (" (resumed)" if r["resumed"] else ""),
                    "yes" if r["verified"] else "NO",
                ]
                for r in rows
            ],
        )
        console.print(
            f"{'copied' if report.ok else 'INCOMPLETE copy'}: {redact(source)} -> "
            f"{redact(destination)}"
        )
    if not report.ok:
        raise SystemExit(1)
