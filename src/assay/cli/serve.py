"""``assay serve``: the collector, API and (later) pages in one process."""

from __future__ import annotations

import click

from assay.cli.common import err_console, settings_from_env


@click.command()
@click.option(
    "--host",
    envvar="ASSAY_HOST",
    default=None,
    help="Address to bind [default: 127.0.0.1]. Anything but loopback requires API keys.",
)
@click.option("--port", envvar="ASSAY_PORT", type=int, default=None, help="Port [default: 7800].")
@click.option(
    "--db",
    "--store",
    "db",
    envvar="ASSAY_DB",
    default=None,
    help="Where data lives: a DuckDB file [default: ./assay.duckdb], or a ClickHouse URL "
    "(clickhouse://user:pass@host:8123/db, clickhouses://…, chdb:///dir; the "
    "assay[clickhouse] extra).",
)
@click.option(
    "--prices",
    envvar="ASSAY_PRICES",
    default=None,
    help="JSON price file that extends/overrides the shipped table.",
)
@click.option(
    "--log-level",
    envvar="ASSAY_LOG_LEVEL",
    default=None,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(
    host: str | None, port: int | None, db: str | None, prices: str | None, log_level: str | None
) -> None:
    """Run the OTLP collector (POST /v1/traces) and the query API (/api/v1, /docs)."""
    import uvicorn

    from assay.server import create_app
    from assay.store import StoreError

    settings = settings_from_env(host=host, port=port, db=db, prices=prices, log_level=log_level)
    try:
        from assay.pricing import PriceTableError, load_prices

        table = load_prices(settings.prices)
    except PriceTableError as exc:
        raise click.ClickException(str(exc)) from None
    from assay.store import open_store, redact

    try:
        store = open_store(
            settings.db,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
            checkpoint_threshold=settings.duckdb_checkpoint_threshold,
            row_group_size=settings.duckdb_row_group_size,
        )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    # The lifespan closes the store: uvicorn re-raises SIGTERM after shutdown, so code
    # after uvicorn.run() would not run.
    app = create_app(settings, store=store, prices=table, close_store=True)
    where = f"http://{settings.host}:{settings.port}"
    err_console.print(
        f"assay: store {redact(settings.db)}; OTLP at {where}/v1/traces; API docs "
        f"at {where}/docs"
        + (
            ""
            if not settings.require_keys
            else " (API keys required: non-loopback bind)"
            if not settings.loopback
            else " (API keys required: ASSAY_KEYS_REQUIRED)"
        )
    )
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
        )
    finally:
        store.close()
