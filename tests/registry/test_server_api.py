"""The REST API in-process (Starlette TestClient): shapes, status codes and error codes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
from starlette.testclient import TestClient

from otlp_feedback.registry import compat, server, store
from otlp_feedback.registry.server import ERROR_STATUS, MEDIA_TYPE, create_app, error_status

V1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})
V2 = json.dumps(
    {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0}],
    }
)
V3_BREAKING = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})


class Response(Protocol):
    """What these tests read of a TestClient response (httpx or httpx2, whichever is installed)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tmp_path / "registry.db")) as c:
        yield c


def register(client: TestClient, subject: str, schema: str) -> Response:
    return client.post(f"/subjects/{subject}/versions", json={"schema": schema})


def assert_error(response: Response, status: int, code: int, text: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    body = response.json()
    assert body["error_code"] == code
    assert text in body["message"]


def test_root_is_an_empty_object_in_the_registry_media_type(client: TestClient) -> None:
    response = client.get("/")
    assert response.json() == {}
    assert response.headers["content-type"] == MEDIA_TYPE


def test_register_returns_the_id_and_is_idempotent(client: TestClient) -> None:
    first = register(client, "s", V1)
    assert first.status_code == 200
    assert first.json() == {"id": 1, "version": 1, "subject": "s"}
    reformatted = json.dumps(json.loads(V1), indent=2)
    assert register(client, "s", reformatted).json() == first.json()
    assert client.get("/subjects/s/versions").json() == [1]


def test_same_schema_under_two_subjects_gets_the_same_id(client: TestClient) -> None:
    assert register(client, "a", V1).json()["id"] == register(client, "b", V1).json()["id"]
    assert client.get("/subjects").json() == ["a", "b"]
    assert client.get("/schemas/ids/1/subjects").json() == ["a", "b"]
    assert client.get("/schemas/ids/1/versions").json() == [
        {"subject": "a", "version": 1},
        {"subject": "b", "version": 1},
    ]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.schemaregistry.v1+json",
        "application/json",
        "application/json; charset=utf-8",
    ],
)
def test_both_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/subjects/s/versions",
        content=json.dumps({"schema": V1}),
        headers={"content-type": content_type},
    )
    assert response.status_code == 200


def test_other_media_types_and_malformed_bodies_are_refused(client: TestClient) -> None:
    plain = client.post("/subjects/s/versions", content=V1, headers={"content-type": "text/plain"})
    assert_error(plain, 415, 415)
    broken = client.post("/subjects/s/versions", content="{", headers={"content-type": MEDIA_TYPE})
    assert_error(broken, 400, 400, "not valid JSON")
    assert_error(client.post("/subjects/s/versions", json=[V1]), 400, 400, "JSON object")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"schema": "{not avro"}, "Invalid schema"),
        ({"schema": '{"type": "record", "name": "R"}'}, "non-empty fields"),
        ({}, "Empty schema"),
        ({"schema": '{"type": "object"}', "schemaType": "JSON"}, "only stores AVRO"),
        ({"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"}, "only stores AVRO"),
    ],
)
def test_invalid_or_non_avro_schemas_get_42201(
    client: TestClient, body: dict[str, Any], text: str
) -> None:
    assert_error(client.post("/subjects/s/versions", json=body), 422, 42201, text)


def test_incompatible_registration_gets_409_with_the_reason(client: TestClient) -> None:
    register(client, "s", V1)
    response = register(client, "s", V3_BREAKING)
    assert_error(response, 409, 409, "incompatible with an earlier schema")
    assert "TYPE_MISMATCH at 'R.a' (/fields/0/type)" in response.json()["message"]
    assert register(client, "s", V2).json()["version"] == 2


def test_subject_level_none_allows_anything(client: TestClient) -> None:
    register(client, "s", V1)
    assert client.put("/config/s", json={"compatibility": "NONE"}).json() == {
        "compatibility": "NONE"
    }
    assert register(client, "s", V3_BREAKING).json()["version"] == 2


def test_versions_are_read_by_number_or_latest(client: TestClient) -> None:
    register(client, "s", V1)
    register(client, "s", V2)
    latest = client.get("/subjects/s/versions/latest").json()
    assert latest == {
        "subject": "s",
        "version": 2,
        "id": 2,
        "schema": compat.parse_schema(V2).canonical,
    }
    assert client.get("/subjects/s/versions/-1").json() == latest
    assert client.get("/subjects/s/versions/1").json()["id"] == 1
    raw = client.get("/subjects/s/versions/1/schema")
    assert raw.headers["content-type"] == MEDIA_TYPE
    assert raw.json() == json.loads(compat.parse_schema(V1).canonical)
    assert client.get("/subjects/s/versions/1/referencedby").json() == []


@pytest.mark.parametrize("version", ["0", "abc", "2147483648", "-2"])
def test_bad_version_ids_get_42202(client: TestClient, version: str) -> None:
    register(client, "s", V1)
    assert_error(client.get(f"/subjects/s/versions/{version}"), 422, 42202, version)


def test_missing_subject_version_and_schema_have_their_own_codes(client: TestClient) -> None:
    register(client, "s", V1)
    assert_error(client.get("/subjects/nope/versions"), 404, 40401, "nope")
    assert_error(client.get("/subjects/nope/versions/1"), 404, 40401)
    assert_error(client.get("/subjects/s/versions/9"), 404, 40402)
    assert_error(client.get("/schemas/ids/99"), 404, 40403)
    assert_error(client.get("/schemas/ids/99/versions"), 404, 40403)


def test_lookup_finds_a_registered_schema_or_says_which_part_is_missing(
    client: TestClient,
) -> None:
    register(client, "s", V1)
    found = client.post("/subjects/s", json={"schema": V1, "schemaType": "AVRO"})
    assert found.json() == {
        "subject": "s",
        "version": 1,
        "id": 1,
        "schema": compat.parse_schema(V1).canonical,
    }
    assert_error(client.post("/subjects/s", json={"schema": V2}), 404, 40403)
    assert_error(client.post("/subjects/nope", json={"schema": V1}), 404, 40401)


def test_schema_by_id_accepts_a_subject_and_has_a_raw_form(client: TestClient) -> None:
    register(client, "s", V1)
    expected = {"schema": compat.parse_schema(V1).canonical}
    assert client.get("/schemas/ids/1").json() == expected
    assert client.get("/schemas/ids/1", params={"subject": "s"}).json() == expected
    assert client.get("/schemas/ids/1/schema").json() == json.loads(expected["schema"])
    assert client.get("/schemas/types").json() == ["AVRO"]


def test_soft_delete_then_hard_delete_a_subject(client: TestClient) -> None:
    register(client, "s", V1)
    register(client, "s", V2)
    assert_error(client.delete("/subjects/s", params={"permanent": "true"}), 404, 40405)
    assert client.delete("/subjects/s").json() == [1, 2]
    assert_error(client.delete("/subjects/s"), 404, 40404, "soft deleted")
    assert client.get("/subjects").json() == []
    assert client.get("/subjects", params={"deleted": "true"}).json() == ["s"]
    assert_error(client.get("/subjects/s/versions"), 404, 40401)
    assert client.get("/subjects/s/versions", params={"deleted": "true"}).json() == [1, 2]
    assert client.get("/subjects/s/versions/1", params={"deleted": "true"}).json()["id"] == 1
    # Soft-deleted schemas stay readable by id, so old messages still deserialize.
    assert client.get("/schemas/ids/1").status_code == 200
    assert client.delete("/subjects/s", params={"permanent": "true"}).json() == [1, 2]
    assert_error(client.get("/schemas/ids/1"), 404, 40403)
    assert client.get("/subjects", params={"deleted": "true"}).json() == []


def test_soft_delete_then_hard_delete_a_version(client: TestClient) -> None:
    register(client, "s", V1)
    register(client, "s", V2)
    assert_error(client.delete("/subjects/s/versions/1", params={"permanent": "true"}), 404, 40407)
    assert client.delete("/subjects/s/versions/1").json() == 1
    assert_error(client.delete("/subjects/s/versions/1"), 404, 40406)
    assert client.get("/subjects/s/versions").json() == [2]
    lookup = client.post("/subjects/s", params={"deleted": "true"}, json={"schema": V1})
    assert lookup.json()["version"] == 1
    assert client.delete("/subjects/s/versions/1", params={"permanent": "true"}).json() == 1
    assert client.get("/subjects/s/versions", params={"deleted": "true"}).json() == [2]
    assert client.delete("/subjects/s/versions/latest").json() == 2
    assert_error(client.delete("/subjects/s/versions/7"), 404, 40402)


def test_compatibility_endpoints_report_verbose_messages(client: TestClient) -> None:
    register(client, "s", V1)
    url = "/compatibility/subjects/s/versions"
    ok = client.post(f"{url}/latest", params={"verbose": "True"}, json={"schema": V2})
    assert ok.json() == {"is_compatible": True, "messages": []}
    bad = client.post(f"{url}/1", params={"verbose": "true"}, json={"schema": V3_BREAKING})
    assert bad.json()["is_compatible"] is False
    [message] = bad.json()["messages"]
    assert message.startswith("TYPE_MISMATCH at 'R.a' (/fields/0/type)")
    terse = client.post(url, json={"schema": V3_BREAKING})
    assert terse.json() == {"is_compatible": False}


def test_compatibility_of_an_unknown_subject(client: TestClient) -> None:
    url = "/compatibility/subjects/nope/versions"
    assert client.post(url, json={"schema": V1}).json() == {"is_compatible": True}
    assert_error(client.post(f"{url}/latest", json={"schema": V1}), 404, 40401)
    assert_error(client.post(f"{url}/x", json={"schema": V1}), 422, 42202)


def test_global_config_defaults_to_backward_and_can_be_changed(client: TestClient) -> None:
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert client.put("/config", json={"compatibility": "full"}).json() == {"compatibility": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.delete("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert_error(client.put("/config", json={"compatibility": "SIDEWAYS"}), 422, 42203)
    assert_error(client.put("/config", json={}), 422, 42203)


def test_subject_config_falls_back_to_global_only_when_asked(client: TestClient) -> None:
    assert_error(client.get("/config/s"), 404, 40408)
    fallback = client.get("/config/s", params={"defaultToGlobal": "true"})
    assert fallback.json() == {"compatibilityLevel": "BACKWARD"}
    client.put("/config/s", json={"compatibilityLevel": "FORWARD_TRANSITIVE"})
    assert client.get("/config/s").json() == {"compatibilityLevel": "FORWARD_TRANSITIVE"}
    assert client.delete("/config/s").json() == {"compatibilityLevel": "FORWARD_TRANSITIVE"}
    assert_error(client.delete("/config/s"), 404, 40408)


def test_mode_is_always_readwrite(client: TestClient) -> None:
    assert client.get("/mode").json() == {"mode": "READWRITE"}
    assert client.get("/mode/s").json() == {"mode": "READWRITE"}
    assert client.put("/mode", json={"mode": "READWRITE"}).json() == {"mode": "READWRITE"}
    assert_error(client.put("/mode", json={"mode": "READONLY"}), 422, 42204)


def test_subject_names_may_contain_an_encoded_slash(client: TestClient) -> None:
    assert register(client, "team%2Ffeedback-value", V1).status_code == 200
    assert client.get("/subjects").json() == ["team/feedback-value"]
    assert client.get("/subjects/team%2Ffeedback-value/versions/1").json()["version"] == 1


def test_pagination_parameters_are_honoured(client: TestClient) -> None:
    for subject in "abc":
        register(client, subject, V1)
    assert client.get("/subjects", params={"offset": 1, "limit": 1}).json() == ["b"]
    assert client.get("/subjects", params={"offset": 0, "limit": -1}).json() == ["a", "b", "c"]


def test_unknown_routes_and_methods_get_json_errors(client: TestClient) -> None:
    assert_error(client.get("/nothing/here"), 404, 404)
    assert_error(client.patch("/config"), 405, 405)


def test_every_error_the_registry_raises_has_a_confluent_code() -> None:
    raised = [
        cls
        for module in (store, compat, server)
        for cls in vars(module).values()
        if isinstance(cls, type)
        and issubclass(cls, Exception)
        and cls.__module__ == module.__name__
        and cls is not store.RegistryStoreError
    ]
    assert raised, "found the error classes"
    missing = [cls.__name__ for cls in raised if cls not in ERROR_STATUS]
    assert missing == []
    assert error_status(store.StoreError("disk full")) == (500, 50001)
    assert error_status(RuntimeError("bug")) == (500, 500)
