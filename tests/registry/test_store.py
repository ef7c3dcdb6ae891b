"""The SQLite store: ids, versions, deletion rules, config, durability, thread-safety."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from otlp_feedback.registry.store import (
    DEFAULT_COMPATIBILITY,
    SchemaNotFoundError,
    Store,
    StoreError,
    SubjectConfigNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionRecord,
    VersionSoftDeletedError,
)

A, B, C = '"string"', '"int"', '"long"'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "registry.db")
    yield s
    s.close()


def test_same_schema_under_two_subjects_shares_one_id(store: Store) -> None:
    first, _ = store.register("a-value", A, "AVRO")
    second, created = store.register("b-value", A, "AVRO")
    assert created
    assert second.schema_id == first.schema_id
    assert (first.version, second.version) == (1, 1)


def test_registering_the_same_schema_twice_returns_the_existing_version(store: Store) -> None:
    first, created_first = store.register("s", A, "AVRO")
    again, created_again = store.register("s", A, "AVRO")
    assert (created_first, created_again) == (True, False)
    assert again == first
    assert [r.version for r in store.versions("s")] == [1]


def test_versions_count_up_per_subject_and_ids_are_global(store: Store) -> None:
    v1, _ = store.register("s", A, "AVRO")
    v2, _ = store.register("s", B, "AVRO")
    other, _ = store.register("t", C, "AVRO")
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    assert len({v1.schema_id, v2.schema_id, other.schema_id}) == 3
    assert store.get_version("s", None) == v2
    assert store.get_version("s", 1) == v1


def test_guard_sees_live_versions_and_can_veto_the_registration(store: Store) -> None:
    store.register("s", A, "AVRO")
    seen: list[Sequence[VersionRecord]] = []

    def veto(live: Sequence[VersionRecord]) -> None:
        seen.append(live)
        raise ValueError("incompatible")

    with pytest.raises(ValueError, match="incompatible"):
        store.register("s", B, "AVRO", guard=veto)
    assert [r.schema for r in seen[0]] == [A]
    assert [r.schema for r in store.versions("s")] == [A]
    # The veto rolled back the new schema row too: the next schema gets the next id.
    assert store.register("t", C, "AVRO")[0].schema_id == 2


def test_guard_is_not_called_for_an_already_registered_schema(store: Store) -> None:
    store.register("s", A, "AVRO")

    def fail(live: Sequence[VersionRecord]) -> None:
        raise AssertionError("guard called")

    assert store.register("s", A, "AVRO", guard=fail)[1] is False


def test_soft_deleted_version_is_hidden_but_its_id_still_resolves(store: Store) -> None:
    v1, _ = store.register("s", A, "AVRO")
    store.register("s", B, "AVRO")
    assert store.delete_version("s", 1) == 1
    assert [r.version for r in store.versions("s")] == [2]
    assert [r.version for r in store.versions("s", include_deleted=True)] == [1, 2]
    assert [r.version for r in store.versions("s", deleted_only=True)] == [1]
    with pytest.raises(VersionNotFoundError):
        store.get_version("s", 1)
    assert store.get_version("s", 1, include_deleted=True).deleted
    assert store.schema_by_id(v1.schema_id) == (A, "AVRO")
    with pytest.raises(SchemaNotFoundError):
        store.lookup("s", A, "AVRO")
    assert store.lookup("s", A, "AVRO", include_deleted=True).version == 1


def test_soft_deleted_subject_is_not_found_unless_deleted_ones_are_asked_for(store: Store) -> None:
    store.register("s", A, "AVRO")
    store.register("t", A, "AVRO")
    assert store.delete_subject("s") == [1]
    assert store.subjects() == ["t"]
    assert store.subjects(include_deleted=True) == ["s", "t"]
    assert store.subjects(deleted_only=True) == ["s"]
    with pytest.raises(SubjectNotFoundError):
        store.versions("s")
    with pytest.raises(SubjectNotFoundError):
        store.get_version("s", None)


def test_deleting_twice_softly_is_refused(store: Store) -> None:
    store.register("s", A, "AVRO")
    store.register("s", B, "AVRO")
    store.delete_version("s", 1)
    with pytest.raises(VersionSoftDeletedError):
        store.delete_version("s", 1)
    store.delete_subject("s")
    with pytest.raises(SubjectSoftDeletedError):
        store.delete_subject("s")


def test_hard_delete_requires_a_soft_delete_first(store: Store) -> None:
    store.register("s", A, "AVRO")
    store.register("s", B, "AVRO")
    with pytest.raises(VersionNotSoftDeletedError):
        store.delete_version("s", 2, permanent=True)
    with pytest.raises(SubjectNotSoftDeletedError):
        store.delete_subject("s", permanent=True)
    store.delete_version("s", 2)
    assert store.delete_version("s", 2, permanent=True) == 2
    assert [r.version for r in store.versions("s", include_deleted=True)] == [1]
    store.delete_subject("s")
    assert store.delete_subject("s", permanent=True) == [1]
    assert store.subjects(include_deleted=True) == []
    with pytest.raises(SubjectNotFoundError):
        store.delete_subject("s")


def test_hard_deleted_id_stops_resolving_but_is_never_given_to_other_text(store: Store) -> None:
    v1, _ = store.register("s", A, "AVRO")
    store.delete_subject("s")
    store.delete_subject("s", permanent=True)
    with pytest.raises(SchemaNotFoundError):
        store.schema_by_id(v1.schema_id)
    assert store.register("t", B, "AVRO")[0].schema_id != v1.schema_id
    # The same text comes back with its old id.
    assert store.register("u", A, "AVRO")[0].schema_id == v1.schema_id


def test_reregistering_a_soft_deleted_schema_adds_a_version_with_the_same_id(store: Store) -> None:
    v1, _ = store.register("s", A, "AVRO")
    store.delete_subject("s")
    again, created = store.register("s", A, "AVRO")
    assert created
    assert (again.version, again.schema_id) == (2, v1.schema_id)


def test_versions_by_id_lists_every_subject_using_the_schema(store: Store) -> None:
    v, _ = store.register("s", A, "AVRO")
    store.register("t", A, "AVRO")
    store.delete_subject("t")
    assert [(r.subject, r.version) for r in store.versions_by_id(v.schema_id)] == [("s", 1)]
    assert len(store.versions_by_id(v.schema_id, include_deleted=True)) == 2


def test_compatibility_is_global_by_default_and_subjects_can_override(store: Store) -> None:
    assert store.global_compatibility() == DEFAULT_COMPATIBILITY == "BACKWARD"
    store.set_global_compatibility("FULL")
    store.set_subject_compatibility("s", "NONE")
    assert store.effective_compatibility("s") == "NONE"
    assert store.effective_compatibility("t") == "FULL"
    assert store.delete_subject_compatibility("s") == "NONE"
    with pytest.raises(SubjectConfigNotFoundError):
        store.delete_subject_compatibility("s")
    assert store.reset_global_compatibility() == "FULL"
    assert store.global_compatibility() == "BACKWARD"


def test_hard_deleting_a_subject_drops_its_compatibility(store: Store) -> None:
    store.register("s", A, "AVRO")
    store.set_subject_compatibility("s", "FULL")
    store.delete_subject("s")
    assert store.subject_compatibility("s") == "FULL"
    store.delete_subject("s", permanent=True)
    assert store.subject_compatibility("s") is None


def test_state_survives_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    first = Store(path)
    a, _ = first.register("s", A, "AVRO")
    b, _ = first.register("s", B, "AVRO")
    first.delete_version("s", 1)
    first.set_subject_compatibility("s", "FULL_TRANSITIVE")
    first.close()

    second = Store(path)
    try:
        assert store_state(second) == [(2, b.schema_id, False)]
        assert second.get_version("s", 1, include_deleted=True).schema_id == a.schema_id
        assert second.subject_compatibility("s") == "FULL_TRANSITIVE"
        assert second.register("s", C, "AVRO")[0].version == 3
    finally:
        second.close()


def store_state(store: Store) -> list[tuple[int, int, bool]]:
    return [(r.version, r.schema_id, r.deleted) for r in store.versions("s")]


def test_concurrent_registrations_get_distinct_versions(store: Store) -> None:
    barrier = threading.Barrier(8)
    results: list[VersionRecord] = []
    lock = threading.Lock()

    def register(n: int) -> None:
        barrier.wait()
        record, _ = store.register("s", f'{{"type":"fixed","name":"F{n}","size":{n + 1}}}', "AVRO")
        with lock:
            results.append(record)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.version for r in results) == list(range(1, 9))
    assert len({r.schema_id for r in results}) == 8


def test_closed_store_and_unopenable_path_raise_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError):
        store.subjects()
    with pytest.raises(StoreError):
        Store(tmp_path / "missing-dir" / "r.db")
