"""Annotation queues: choose which spans people should label, hand the items out one at a
time under a lease, and store every label as reviewer feedback.

A queue is made once, from span filters and a strategy (see docs/queues.md):

- ``random``: a simple random sample without replacement (seeded);
- ``stratified``: a random sample within each value of a field, with proportional or
  equal allocation;
- ``drift``: the examples a drift report found most unlike its reference;
- ``low-confidence``: judge scores closest to the decision threshold;
- ``disagreement``: spans whose several judge scores of one name disagree.

The strategy, its resolved parameters and the seed are stored with the queue, and each
item of a probability sample (random, stratified) carries its inclusion probability, so
an estimate from the labels can weight them (inverse-probability weights).
"""

from assay.queues.selection import (
    MAX_STRATA,
    QueueSpec,
    allocate,
    build_queue,
    create_queue,
    disagreement,
    latest_drift_report,
    seeded_rank,
)
from assay.queues.values import (
    ALLOCATIONS,
    DEFAULT_LEASE_SECONDS,
    LABEL_KINDS,
    LABELLED,
    MAX_SIZE,
    OPEN,
    PROBABILITY_SAMPLES,
    SKIPPED,
    STATUSES,
    STRATA_FIELDS,
    STRATEGIES,
    UNITS,
    LabelSpec,
    Queue,
    QueueConflictError,
    QueueError,
    QueueItem,
    QueueNotFoundError,
    QueueProgress,
    check_labeller,
    check_queue_name,
    item_json,
    label_spec,
    queue_json,
)
from assay.queues.work import (
    claim_next,
    feedback_id,
    get_item,
    get_queue,
    label_item,
    release_item,
    skip_item,
)

__all__ = [
    "ALLOCATIONS",
    "DEFAULT_LEASE_SECONDS",
    "LABELLED",
    "LABEL_KINDS",
    "MAX_SIZE",
    "MAX_STRATA",
    "OPEN",
    "PROBABILITY_SAMPLES",
    "SKIPPED",
    "STATUSES",
    "STRATA_FIELDS",
    "STRATEGIES",
    "UNITS",
    "LabelSpec",
    "Queue",
    "QueueConflictError",
    "QueueError",
    "QueueItem",
    "QueueNotFoundError",
    "QueueProgress",
    "QueueSpec",
    "allocate",
    "build_queue",
    "check_labeller",
    "check_queue_name",
    "claim_next",
    "create_queue",
    "disagreement",
    "feedback_id",
    "get_item",
    "get_queue",
    "item_json",
    "label_item",
    "label_spec",
    "latest_drift_report",
    "queue_json",
    "release_item",
    "seeded_rank",
    "skip_item",
]
