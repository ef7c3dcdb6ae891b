"""The schema evolution workflow behind ``otlp-feedback schemas list|check|register|diff``.

- ``explain``: the registry's compatibility verdicts (``registry.compat``) rephrased per field.
- ``history``: local versions against each other and against a registry; register; list.
- ``diff``: fields added, removed and changed between two versions.

The local files ``schemas/avro/<event_type>/vN.avsc`` are the source of truth; see the README,
"Schema evolution".
"""

from otlp_feedback.schema_tools.diff import SchemaDiff, diff, resolve
from otlp_feedback.schema_tools.explain import Finding, VersionedSchema, compare
from otlp_feedback.schema_tools.history import (
    CheckReport,
    RegisterReport,
    SubjectCheck,
    SubjectListing,
    check_local,
    check_registry,
    level_of,
    list_subjects,
    listing_lines,
    register,
)

__all__ = [
    "CheckReport",
    "Finding",
    "RegisterReport",
    "SchemaDiff",
    "SubjectCheck",
    "SubjectListing",
    "VersionedSchema",
    "check_local",
    "check_registry",
    "compare",
    "diff",
    "level_of",
    "list_subjects",
    "listing_lines",
    "register",
    "resolve",
]
