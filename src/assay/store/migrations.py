"""Schema migrations as named, ordered, decorated functions (applied once each).

A database records the names it has applied in ``assay_migrations``; a newer assay
applies only the ones it is missing. Never edit a released migration: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Migration = Callable[[Any], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration, named after the function."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_spans(con: Any) -> None:
    con.execute(
        """
        CREATE TABLE spans (
            project VARCHAR NOT NULL,
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            parent_span_id VARCHAR,
            service VARCHAR,
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            otel_kind VARCHAR NOT NULL,
            start_time TIMESTAMP NOT NULL,
            end_time TIMESTAMP NOT NULL,
            duration_ms DOUBLE NOT NULL,
            status VARCHAR NOT NULL,
            status_message VARCHAR,
            operation VARCHAR,
            provider VARCHAR,
            model VARCHAR,
            request_model VARCHAR,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cached_input_tokens BIGINT,
            total_tokens BIGINT,
            cost DOUBLE,
            input_text VARCHAR,
            output_text VARCHAR,
            input_messages JSON,
            output_messages JSON,
            finish_reason VARCHAR,
            session_id VARCHAR,
            user_id VARCHAR,
            release VARCHAR,
            route VARCHAR,
            environment VARCHAR,
            scope VARCHAR,
            attributes JSON,
            resource_attributes JSON,
            events JSON,
            ingested_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (project, trace_id, span_id)
        )
        """
    )


@migration
def m002_projects_and_keys(con: Any) -> None:
    con.execute(
        """
        CREATE TABLE projects (
            name VARCHAR PRIMARY KEY,
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE api_keys (
            key_id VARCHAR PRIMARY KEY,
            project VARCHAR NOT NULL,
            prefix VARCHAR NOT NULL,
            key_hash VARCHAR NOT NULL UNIQUE,
            created_at TIMESTAMP NOT NULL,
            revoked BOOLEAN NOT NULL DEFAULT false
        )
        """
    )


@migration
def m003_evals(con: Any) -> None:
    # Golden-set versions are immutable and named by the hash of their cases.
    con.execute(
        """
        CREATE TABLE golden_sets (
            project VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            description VARCHAR,
            case_count INTEGER NOT NULL,
            source VARCHAR,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (project, name, version)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE golden_cases (
            project VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            position INTEGER NOT NULL,
            case_id VARCHAR NOT NULL,
            body JSON NOT NULL,
            PRIMARY KEY (project, name, version, case_id)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE eval_runs (
            project VARCHAR NOT NULL,
            run_id VARCHAR NOT NULL,
            name VARCHAR,
            golden VARCHAR NOT NULL,
            golden_version VARCHAR NOT NULL,
            target JSON NOT NULL,
            scorers JSON NOT NULL,
            trials INTEGER NOT NULL,
            status VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            metadata JSON,
            PRIMARY KEY (project, run_id)
        )
        """
    )
    # Keyed by (run, case, trial): a resumed run repeats nothing that finished.
    con.execute(
        """
        CREATE TABLE eval_trials (
            project VARCHAR NOT NULL,
            run_id VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,
            trial INTEGER NOT NULL,
            output JSON,
            error VARCHAR,
            latency_ms DOUBLE,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cost DOUBLE,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP NOT NULL,
            PRIMARY KEY (project, run_id, case_id, trial)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE eval_scores (
            project VARCHAR NOT NULL,
            run_id VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,
            trial INTEGER NOT NULL,
            scorer VARCHAR NOT NULL,
            value DOUBLE,
            passed BOOLEAN,
            label VARCHAR,
            explanation VARCHAR,
            metadata JSON,
            error VARCHAR,
            PRIMARY KEY (project, run_id, case_id, trial, scorer)
        )
        """
    )


@migration
def m004_embeddings(con: Any) -> None:
    # One vector per (span, field, embedder): drift checks embed a span once and reuse it.
    # Golden-set cases are cached too, under trace_id 'golden:NAME@VERSION' and their case id.
    con.execute(
        """
        CREATE TABLE embeddings (
            project VARCHAR NOT NULL,
            embedder VARCHAR NOT NULL,
            field VARCHAR NOT NULL,
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            vector FLOAT[] NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (project, embedder, field, trace_id, span_id)
        )
        """
    )


@migration
def m005_monitors(con: Any) -> None:
    # A saved drift check run on a schedule. lease_owner/lease_expires_at let several
    # schedulers share one database: a run is claimed by a conditional UPDATE first.
    con.execute(
        """
        CREATE TABLE monitors (
            project VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            spec JSON NOT NULL,
            every_seconds INTEGER NOT NULL,
            webhooks JSON NOT NULL,
            enabled BOOLEAN NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            next_run_at TIMESTAMP,
            state VARCHAR,
            state_since TIMESTAMP,
            last_run_at TIMESTAMP,
            last_result_id VARCHAR,
            lease_owner VARCHAR,
            lease_expires_at TIMESTAMP,
            PRIMARY KEY (project, name)
        )
        """
    )
    # One row per run: the time series a chart of drift over time reads.
    con.execute(
        """
        CREATE TABLE monitor_results (
            project VARCHAR NOT NULL,
            monitor VARCHAR NOT NULL,
            result_id VARCHAR NOT NULL,
            ran_at TIMESTAMP NOT NULL,
            trigger VARCHAR NOT NULL,
            verdict VARCHAR,
            state VARCHAR,
            previous_state VARCHAR,
            window_start TIMESTAMP,
            window_end TIMESTAMP,
            reference VARCHAR,
            reference_start TIMESTAMP,
            reference_end TIMESTAMP,
            drifted JSON NOT NULL,
            features JSON NOT NULL,
            error VARCHAR,
            elapsed_ms DOUBLE NOT NULL,
            report JSON,
            PRIMARY KEY (project, monitor, result_id)
        )
        """
    )
    # One row per (state change, webhook URL), with its delivery status.
    con.execute(
        """
        CREATE TABLE monitor_alerts (
            alert_id VARCHAR PRIMARY KEY,
            project VARCHAR NOT NULL,
            monitor VARCHAR NOT NULL,
            result_id VARCHAR NOT NULL,
            url VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            previous_state VARCHAR,
            payload JSON NOT NULL,
            created_at TIMESTAMP NOT NULL,
            status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL,
            last_status INTEGER,
            error VARCHAR,
            delivered_at TIMESTAMP,
            next_attempt_at TIMESTAMP,
            lease_owner VARCHAR,
            lease_expires_at TIMESTAMP
        )
        """
    )


@migration
def m006_feedback(con: Any) -> None:
    # Keyed by the client's id: a resent record is not stored twice.
    con.execute(
        """
        CREATE TABLE feedback (
            project VARCHAR NOT NULL,
            feedback_id VARCHAR NOT NULL,
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR,
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            number DOUBLE,
            category VARCHAR,
            comment VARCHAR,
            source VARCHAR NOT NULL,
            author VARCHAR,
            created_at TIMESTAMP NOT NULL,
            metadata JSON,
            PRIMARY KEY (project, feedback_id)
        )
        """
    )
    con.execute("CREATE INDEX feedback_trace ON feedback (project, trace_id)")


@migration
def m007_queues(con: Any) -> None:
    # An annotation queue: what was selected, how (strategy, parameters, seed) and the
    # label people give. Items snapshot the span's text so a later change cannot move it.
    con.execute(
        """
        CREATE TABLE queues (
            project VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            queue_id VARCHAR NOT NULL,
            strategy VARCHAR NOT NULL,
            params JSON NOT NULL,
            seed BIGINT NOT NULL,
            label JSON NOT NULL,
            instructions VARCHAR,
            size INTEGER NOT NULL,
            item_count INTEGER NOT NULL,
            population BIGINT NOT NULL,
            lease_seconds INTEGER NOT NULL,
            notes JSON NOT NULL,
            created_by VARCHAR,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (project, name)
        )
        """
    )
    # A claim is a lease (claimed_by until lease_expires_at) taken by a conditional UPDATE,
    # so two labellers never hold one item.
    con.execute(
        """
        CREATE TABLE queue_items (
            project VARCHAR NOT NULL,
            queue VARCHAR NOT NULL,
            item_id INTEGER NOT NULL,
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            stratum VARCHAR,
            inclusion_probability DOUBLE,
            score DOUBLE,
            input_text VARCHAR,
            output_text VARCHAR,
            input_messages JSON,
            output_messages JSON,
            context JSON NOT NULL,
            status VARCHAR NOT NULL,
            claimed_by VARCHAR,
            claimed_at TIMESTAMP,
            lease_expires_at TIMESTAMP,
            done_by VARCHAR,
            done_at TIMESTAMP,
            feedback_id VARCHAR,
            skip_reason VARCHAR,
            PRIMARY KEY (project, queue, item_id)
        )
        """
    )


@migration
def m008_calibrators(con: Any) -> None:
    # One recalibration per judge: applied on read to the judge's raw scores, so a refit
    # replaces the row and every later read sees it.
    con.execute(
        """
        CREATE TABLE judge_calibrators (
            project VARCHAR NOT NULL,
            judge VARCHAR NOT NULL,
            labels VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            params JSON NOT NULL,
            fitted_at TIMESTAMP NOT NULL,
            n INTEGER NOT NULL,
            n_fit INTEGER NOT NULL,
            n_holdout INTEGER NOT NULL,
            ece_before DOUBLE,
            ece_after DOUBLE NOT NULL,
            brier_before DOUBLE,
            brier_after DOUBLE NOT NULL,
            window_text VARCHAR NOT NULL,
            PRIMARY KEY (project, judge)
        )
        """
    )


@migration
def m009_online(con: Any) -> None:
    # Online-evaluation rules with their progress. The watermark is the last span, in
    # commit order (ingested_at, trace_id, span_id), that the rule has fully handled; it
    # survives restarts and moves with the lease from one worker to the next.
    con.execute(
        """
        CREATE TABLE online_rules (
            project VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            scorer JSON NOT NULL,
            score_name VARCHAR NOT NULL,
            sample_rate DOUBLE NOT NULL,
            filters JSON NOT NULL,
            budget_usd DOUBLE,
            budget_period VARCHAR NOT NULL,
            concurrency INTEGER NOT NULL,
            retries INTEGER NOT NULL,
            enabled BOOLEAN NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            watermark_at TIMESTAMP NOT NULL,
            watermark_trace VARCHAR NOT NULL,
            watermark_span VARCHAR NOT NULL,
            processed BIGINT NOT NULL,
            sampled BIGINT NOT NULL,
            scored BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            skipped BIGINT NOT NULL,
            unpriced BIGINT NOT NULL,
            spend_period VARCHAR,
            spend_usd DOUBLE NOT NULL,
            spend_total_usd DOUBLE NOT NULL,
            last_scored_at TIMESTAMP,
            last_error VARCHAR,
            last_error_at TIMESTAMP,
            lease_owner VARCHAR,
            lease_expires_at TIMESTAMP,
            PRIMARY KEY (project, name)
        )
        """
    )


@migration
def m010_meta(con: Any) -> None:
    # Small facts about the database itself, such as the marker `assay demo` leaves so the
    # pages can say the data is generated.
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")


@migration
def m011_retention(con: Any) -> None:
    # Per-project retention: spans older than `days` are deleted by the server's
    # retention task (assay.retention).
    con.execute(
        "CREATE TABLE retention (project VARCHAR PRIMARY KEY, days DOUBLE NOT NULL, "
        "updated_at TIMESTAMP NOT NULL)"
    )


@migration
def m012_text_index(con: Any) -> None:
    # Trigram sketches for text search (assay.store.text_index). Spans stored before this
    # migration keep a NULL block and are always read by a search.
    # INTEGER, not BIGINT: with a BIGINT column DuckDB's checkpoints of spans stalled ~50 ms
    # longer (p95 of a 1,000-span insert 75 -> 125 ms, measured); 2^31 blocks is ~2e12 spans.
    con.execute("ALTER TABLE spans ADD COLUMN text_block INTEGER")
    con.execute(
        "CREATE TABLE span_text_blocks (block_id INTEGER PRIMARY KEY, project VARCHAR NOT NULL, "
        "min_start TIMESTAMP NOT NULL, max_start TIMESTAMP NOT NULL, spans INTEGER NOT NULL, "
        "sketch BIT NOT NULL)"
    )
