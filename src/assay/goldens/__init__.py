"""Golden sets: load and validate YAML, JSONL or CSV files, version them by content, diff them.

A golden set is a named collection of :class:`assay.model.Case`. Its version is the sha256 of
a canonical JSON form of its cases, so the same cases have the same version whatever file
format, key order or case order they were written in. See docs/goldens.md.

The package splits into ``versions`` (the values, content hashes and diffs), ``validation``
(pydantic models at the file boundary and their errors) and ``formats`` (reading and writing
files); everything public is importable from here.
"""

from assay.goldens.formats import (
    GoldenFormat,
    dump_golden_set,
    format_of,
    load_golden_set,
    parse_golden_set,
    write_golden_set,
)
from assay.goldens.validation import (
    CASE_FIELDS,
    FORMAT_VERSION,
    ROLES,
    GoldenIssue,
    GoldenSetError,
    Json,
    Path_,
    case_from_dict,
    golden_set_from_cases,
)
from assay.goldens.versions import (
    SHORT_VERSION,
    CaseChange,
    FieldChange,
    GoldenDiff,
    GoldenSet,
    canonical_json,
    case_to_dict,
    diff_golden_sets,
    version_of,
)

__all__ = [
    "CASE_FIELDS",
    "FORMAT_VERSION",
    "ROLES",
    "SHORT_VERSION",
    "CaseChange",
    "FieldChange",
    "GoldenDiff",
    "GoldenFormat",
    "GoldenIssue",
    "GoldenSet",
    "GoldenSetError",
    "Json",
    "Path_",
    "canonical_json",
    "case_from_dict",
    "case_to_dict",
    "diff_golden_sets",
    "dump_golden_set",
    "format_of",
    "golden_set_from_cases",
    "load_golden_set",
    "parse_golden_set",
    "version_of",
    "write_golden_set",
]
