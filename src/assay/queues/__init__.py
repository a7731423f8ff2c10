"""Annotation queues: choose which spans people should label, hand the items out one at a
time under a lease, and store every label as reviewer feedback.

A queue is made once, from span filters and a strategy (see docs/queues.md):

- ``random``: a simple random sample without replacement (seeded);
- ``stratified``: a random sample within each value of a field, with proportional or
  equal allocation;
- ``drift``: the examples a drift report found most unlike its reference;
- ``low-confidence``: judge scores closest to the decision threshold;
- ``disagreement``: spans whose several judge scores of one name disagree;
- ``hand-picked``: items chosen by a person, added after creation (``add_items``) from
  the trace page, ``assay queues add`` or the API. It has no inclusion probabilities, so
  estimates never treat its labels as a random sample; it is the only strategy whose
  queues take items after creation.

The strategy, its resolved parameters and the seed are stored with the queue, and each
item of a probability sample (random, stratified) carries its inclusion probability, so
an estimate from the labels can weight them (inverse-probability weights).
"""

from assay.queues.picking import (
    MAX_ADD,
    Added,
    add_items,
    check_keys,
    create_with_items,
    label_flags,
)
from assay.queues.selection import (
    HAND_PICKED_NOTE,
    MAX_STRATA,
    QueueSpec,
    allocate,
    build_queue,
    create_queue,
    disagreement,
    latest_drift_report,
    seeded_rank,
    snapshot_item,
)
from assay.queues.values import (
    ACCEPTS_ITEMS,
    ALLOCATIONS,
    DEFAULT_LEASE_SECONDS,
    HAND_PICKED,
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
    "ACCEPTS_ITEMS",
    "ALLOCATIONS",
    "DEFAULT_LEASE_SECONDS",
    "HAND_PICKED",
    "HAND_PICKED_NOTE",
    "LABELLED",
    "LABEL_KINDS",
    "MAX_ADD",
    "MAX_SIZE",
    "MAX_STRATA",
    "OPEN",
    "PROBABILITY_SAMPLES",
    "SKIPPED",
    "STATUSES",
    "STRATA_FIELDS",
    "STRATEGIES",
    "UNITS",
    "Added",
    "LabelSpec",
    "Queue",
    "QueueConflictError",
    "QueueError",
    "QueueItem",
    "QueueNotFoundError",
    "QueueProgress",
    "QueueSpec",
    "add_items",
    "allocate",
    "build_queue",
    "check_keys",
    "check_labeller",
    "check_queue_name",
    "claim_next",
    "create_queue",
    "create_with_items",
    "disagreement",
    "feedback_id",
    "get_item",
    "get_queue",
    "item_json",
    "label_flags",
    "label_item",
    "label_spec",
    "latest_drift_report",
    "queue_json",
    "release_item",
    "seeded_rank",
    "skip_item",
    "snapshot_item",
]
