""":class:`ClickHouseStore`: every part of the Store protocol on ClickHouse or chDB."""

from __future__ import annotations

from typing import Any

from assay.store import clickhouse_calibration as calibration
from assay.store import clickhouse_drift as drift
from assay.store import clickhouse_evals as evals
from assay.store import clickhouse_feedback as feedback
from assay.store import clickhouse_monitors as monitors
from assay.store import clickhouse_online as online
from assay.store import clickhouse_queues as queues
from assay.store.clickhouse_monitors_transfer import MonitorsTransfer
from assay.store.clickhouse_spans import SpanTables


class ClickHouseStore(
    SpanTables,
    evals.EvalsTables,
    drift.DriftTables,
    MonitorsTransfer,
    online.OnlineTables,
    feedback.FeedbackTables,
    calibration.CalibrationTables,
    queues.QueuesTables,
):
    """:class:`assay.store.Store` on ClickHouse (``clickhouse://``) or chDB (``chdb://``)."""

    MIXIN_MIGRATIONS: tuple[tuple[str, Any], ...] = (
        *evals.MIGRATIONS,
        *drift.MIGRATIONS,
        *monitors.MIGRATIONS,
        *online.MIGRATIONS,
        *feedback.MIGRATIONS,
        *calibration.MIGRATIONS,
        *queues.MIGRATIONS,
    )
    TRANSFER_PARTS = monitors.TRANSFER_PARTS | online.TRANSFER_PARTS


__all__ = ["ClickHouseStore"]
