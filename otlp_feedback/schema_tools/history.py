"""Local schema history against itself and against a registry: ``schemas check|register|list``.

The local history (``schemas/avro/<event_type>/v1..vN.avsc``) is the source of truth.
``check_local`` proves every version may follow the local versions before it under a
compatibility mode. ``check_registry`` does that too and checks each version the registry does
not hold yet against what it does hold, simulating in order the registrations ``register``
would make (so a version the registry would refuse fails here first). A registered version that
matches no local file is a problem too: released versions are kept forever.

Who calls this: ``cli`` (``otlp-feedback schemas ...``) and tests. Functions return reports;
rendering them is the caller's business (each report has ``lines()``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from otlp_feedback.encoding.schemas import LocalSchema, SchemaSet
from otlp_feedback.errors import SchemaError
from otlp_feedback.events import EventType
from otlp_feedback.registry.client import RegisteredVersion, SchemaRegistryAdmin
from otlp_feedback.registry.compat import (
    CompatibilityLevel,
    InvalidCompatibilityLevelError,
    parse_level,
)
from otlp_feedback.schema_tools.explain import (
    Finding,
    VersionedSchema,
    compare,
    merge,
    rename_hints,
)


@dataclass(frozen=True)
class VersionCheck:
    """The verdict on one local version."""

    label: str  # "v2"
    state: str  # e.g. "registered as version 2 (id 6)", "compatible with v1"
    findings: tuple[Finding, ...] = ()
    hints: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class SubjectCheck:
    """Every local version of one event type, checked under one compatibility mode."""

    event_type: EventType
    subject: str
    mode: CompatibilityLevel
    mode_source: str
    versions: tuple[VersionCheck, ...]
    problems: tuple[str, ...] = ()  # about the history as a whole (gaps, lost versions)
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems and all(v.ok for v in self.versions)

    def lines(self) -> list[str]:
        out = [f"{self.event_type} ({self.subject}, {self.mode.value} from {self.mode_source})"]
        for version in self.versions:
            verdict = "ok" if version.ok else "INCOMPATIBLE"
            out.append(f"  {version.label:<4} {verdict}: {version.state}")
            out += [f"       - {f.describe(version.label)}" for f in version.findings]
            out += [f"       hint: {hint}" for hint in version.hints]
        out += [f"  problem: {problem}" for problem in self.problems]
        out += [f"  note: {note}" for note in self.notes]
        return out


@dataclass(frozen=True)
class CheckReport:
    subjects: tuple[SubjectCheck, ...]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.subjects)

    def lines(self) -> list[str]:
        out = [line for subject in self.subjects for line in subject.lines()]
        versions = sum(len(s.versions) for s in self.subjects)
        bad = sum(not v.ok for s in self.subjects for v in s.versions)
        problems = sum(len(s.problems) for s in self.subjects)
        if self.ok:
            out.append(f"OK: {versions} schema versions of {len(self.subjects)} event types")
        else:
            out.append(
                f"FAILED: {bad} incompatible schema version(s), {problems} history problem(s)"
            )
        return out


def level_of(value: str) -> CompatibilityLevel:
    """The level named ``value``. Raises ``SchemaError`` for a name that is not one."""
    try:
        return parse_level(value)
    except InvalidCompatibilityLevelError as exc:
        raise SchemaError(str(exc)) from exc


def _labelled(schemas: Sequence[LocalSchema]) -> list[VersionedSchema]:
    return [VersionedSchema(f"v{s.version}", s.text) for s in schemas]


def _numbering_problems(schemas: Sequence[LocalSchema]) -> list[str]:
    numbers = [s.version for s in schemas]
    if numbers == list(range(1, len(numbers) + 1)):
        return []
    found = ", ".join(f"v{n}" for n in numbers)
    return [f"versions must be numbered v1..v{len(numbers)} without gaps; found {found}"]


def _chain(history: Sequence[VersionedSchema], level: CompatibilityLevel) -> list[list[Finding]]:
    """Per version: what stops it from following the local versions before it."""
    return [compare(schema, history[:k], level) for k, schema in enumerate(history)]


def _verdict(label: str, findings: list[Finding], state: str, *hints: str) -> VersionCheck:
    return VersionCheck(label, state, tuple(findings), tuple(hints))


def _followed(older: Sequence[VersionedSchema], level: CompatibilityLevel, ok: bool) -> str:
    """What a version was checked against, for its verdict line."""
    if not older:
        return "first version"
    if level is CompatibilityLevel.NONE:
        return "not checked (mode NONE)"
    targets = ", ".join(s.label for s in (older if level.transitive else older[-1:]))
    return f"compatible with {targets}" if ok else f"checked against {targets}"


def check_local(
    schemas: SchemaSet, subjects: Mapping[EventType, str], level: CompatibilityLevel
) -> CheckReport:
    """Each local version against the local versions before it, under ``level``."""
    reports = []
    for event_type, subject in subjects.items():
        local = schemas.versions[event_type]
        history = _labelled(local)
        checks = []
        for k, (schema, findings) in enumerate(zip(history, _chain(history, level), strict=True)):
            hints = rename_hints(findings, schema, history[:k], level)
            state = _followed(history[:k], level, not findings)
            checks.append(_verdict(schema.label, findings, state, *hints))
        reports.append(
            SubjectCheck(
                event_type,
                subject,
                level,
                "registry.compatibility",
                tuple(checks),
                tuple(_numbering_problems(local)),
            )
        )
    return CheckReport(tuple(reports))


def check_registry(
    schemas: SchemaSet,
    subjects: Mapping[EventType, str],
    registry: SchemaRegistryAdmin,
    configured: CompatibilityLevel,
    *,
    use_configured_mode: bool = False,
) -> CheckReport:
    """Each local version against the previous local ones and the registry's history.

    The mode is the subject's own in the registry, else ``configured`` (what ``register``
    sets); ``use_configured_mode`` forces ``configured``. Raises ``RegistryUnavailable``.
    """
    return CheckReport(
        tuple(
            _check_subject(event_type, subject, schemas, registry, configured, use_configured_mode)
            for event_type, subject in subjects.items()
        )
    )


def _check_subject(
    event_type: EventType,
    subject: str,
    schemas: SchemaSet,
    registry: SchemaRegistryAdmin,
    configured: CompatibilityLevel,
    use_configured_mode: bool,
) -> SubjectCheck:
    local = schemas.versions[event_type]
    history = _labelled(local)
    registered = registry.subject_versions(subject)
    subject_mode = registry.subject_compatibility(subject)
    notes = []
    if subject_mode is None or use_configured_mode:
        level, source = configured, "registry.compatibility"
    else:
        level, source = level_of(subject_mode), "the registry"
        if level is not configured:
            notes.append(
                f"registry.compatibility is {configured.value}; `schemas register` would set it"
            )

    local_label = {schema.canonical: schema.label for schema in history}
    problems = list(_numbering_problems(local))
    # The subject's history as the registry will hold it, in registration order.
    simulated: list[VersionedSchema] = []
    where: dict[str, RegisteredVersion] = {}
    for entry in registered:
        stored = VersionedSchema(
            f"registry version {entry.version} (id {entry.schema_id})", entry.schema_text
        )
        label = local_label.get(stored.canonical)
        if label is None:
            problems.append(
                f"{stored.label} matches no local version: released versions are kept forever "
                "(was a local file edited or deleted?)"
            )
            simulated.append(stored)
        else:
            where[label] = entry
            simulated.append(VersionedSchema(label, entry.schema_text))

    checks = []
    for k, (schema, chain) in enumerate(zip(history, _chain(history, level), strict=True)):
        known = where.get(schema.label)
        if known is not None:
            findings = chain
            state = f"registered as version {known.version} (id {known.schema_id})"
        else:
            findings = merge(chain, compare(schema, simulated, level))
            state = f"not registered; {_followed(simulated, level, not findings)}"
            simulated.append(schema)
        hints = rename_hints(findings, schema, history[:k], level)
        checks.append(_verdict(schema.label, findings, state, *hints))
    return SubjectCheck(
        event_type, subject, level, source, tuple(checks), tuple(problems), tuple(notes)
    )


# -- register ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """What ``register`` did to one subject."""

    subject: str
    mode: CompatibilityLevel
    previous_mode: str | None
    # (local label, registry version, schema id, newly registered?)
    versions: tuple[tuple[str, int, int, bool], ...]

    def lines(self) -> list[str]:
        was = self.previous_mode or "unset"
        mode = self.mode.value if was == self.mode.value else f"{was} -> {self.mode.value}"
        out = [f"{self.subject}: compatibility {mode}"]
        for label, version, schema_id, new in self.versions:
            what = "registered" if new else "already registered"
            out.append(f"  {label:<4} {what} as version {version} (id {schema_id})")
        return out


@dataclass(frozen=True)
class RegisterReport:
    check: CheckReport
    registrations: tuple[Registration, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.check.ok

    def lines(self) -> list[str]:
        if not self.check.ok:
            return [*self.check.lines(), "nothing registered"]
        return [line for r in self.registrations for line in r.lines()]


def register(
    schemas: SchemaSet,
    subjects: Mapping[EventType, str],
    registry: SchemaRegistryAdmin,
    level: CompatibilityLevel,
) -> RegisterReport:
    """Set each subject's mode to ``level`` and register its local history, oldest first.

    Idempotent. Checks first (under ``level``, the mode being set) and changes nothing at all
    if any version would be refused. Raises ``RegistryUnavailable``, or ``SchemaError`` if the
    registry refuses anyway.
    """
    check = check_registry(schemas, subjects, registry, level, use_configured_mode=True)
    if not check.ok:
        return RegisterReport(check)
    done = []
    for event_type, subject in subjects.items():
        previous_mode = registry.subject_compatibility(subject)
        before = {v.schema_id for v in registry.subject_versions(subject)}
        registry.set_compatibility(subject, level.value)
        ids = [
            (f"v{s.version}", registry.register(subject, s.text))
            for s in schemas.versions[event_type]
        ]
        number = {v.schema_id: v.version for v in registry.subject_versions(subject)}
        done.append(
            Registration(
                subject,
                level,
                previous_mode,
                tuple(
                    (label, number.get(schema_id, 0), schema_id, schema_id not in before)
                    for label, schema_id in ids
                ),
            )
        )
    return RegisterReport(check, tuple(done))


# -- list --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectListing:
    """One subject: local versions next to what the registry holds."""

    event_type: EventType
    subject: str
    local: tuple[str, ...]  # "v1", "v2"
    registered: tuple[tuple[RegisteredVersion, str | None], ...]  # with the matching local label
    compatibility: str | None  # the subject's own mode; None: the global one applies
    global_compatibility: str

    @property
    def status(self) -> str:
        if not self.registered:
            return "not registered"
        matched = {label for _, label in self.registered if label}
        stray = [f"version {v.version}" for v, label in self.registered if label is None]
        missing = [label for label in self.local if label not in matched]
        parts = []
        if missing:
            parts.append(f"{', '.join(missing)} not registered")
        if stray:
            parts.append(f"registry {', '.join(stray)} not in local history")
        return "; ".join(parts) or "in sync"

    def row(self) -> tuple[str, str, str, str, str]:
        registered = ", ".join(
            f"{v.version} (id {v.schema_id}{', ' + label if label else ''})"
            for v, label in self.registered
        )
        mode = self.compatibility or f"unset (global {self.global_compatibility})"
        return (self.subject, " ".join(self.local), registered or "-", mode, self.status)


def list_subjects(
    schemas: SchemaSet, subjects: Mapping[EventType, str], registry: SchemaRegistryAdmin
) -> list[SubjectListing]:
    """Per subject: local versions, registered versions and ids, compatibility mode."""
    global_mode = registry.global_compatibility()
    listings = []
    for event_type, subject in subjects.items():
        history = _labelled(schemas.versions[event_type])
        by_canonical = {s.canonical: s.label for s in history}
        registered = tuple(
            (v, by_canonical.get(VersionedSchema(str(v.version), v.schema_text).canonical))
            for v in registry.subject_versions(subject)
        )
        listings.append(
            SubjectListing(
                event_type,
                subject,
                tuple(s.label for s in history),
                registered,
                registry.subject_compatibility(subject),
                global_mode,
            )
        )
    return listings


def listing_lines(listings: Sequence[SubjectListing]) -> list[str]:
    """A plain-text table, one row per subject."""
    header = ("SUBJECT", "LOCAL", "REGISTERED (version, id, local)", "COMPATIBILITY", "STATUS")
    rows = [header, *(listing.row() for listing in listings)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    ]
