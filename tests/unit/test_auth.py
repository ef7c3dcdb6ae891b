"""Authentication: bearer API keys (stored hashed) and JWTs (HS256, RS256) in gRPC metadata."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import jwt
import pytest

from otlp_feedback.cli import main
from otlp_feedback.config import AuthConfig, load_config
from otlp_feedback.errors import ConfigError, PermissionDenied, Unauthenticated
from otlp_feedback.receiver.auth import Authenticator, Principal, bearer_token, hash_api_key
from otlp_feedback.testing.security import make_jwt, make_rsa_key_pair

API_KEY = "ofk_live_0123456789abcdef"
SECRET = "a-shared-secret-of-at-least-32-bytes!"
ISSUER = "https://idp.test"
AUDIENCE = "otlp-feedback"


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def auth_config(**values: Any) -> AuthConfig:
    return load_config(auth=values).auth


def api_key_auth() -> Authenticator:
    return Authenticator(
        auth_config(
            mode="api_key",
            api_keys=[{"client_id": "checkout-web", "key_sha256": hash_api_key(API_KEY)}],
        )
    )


def hs256_auth(mode: str = "jwt", **jwt_settings: Any) -> Authenticator:
    jwt_config = {"secret": SECRET, "issuer": ISSUER, "audience": AUDIENCE, **jwt_settings}
    extra: dict[str, Any] = {}
    if mode == "any":
        extra["api_keys"] = [{"client_id": "checkout-web", "key_sha256": hash_api_key(API_KEY)}]
    return Authenticator(auth_config(mode=mode, jwt=jwt_config, **extra))


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    return make_rsa_key_pair(tmp_path_factory.mktemp("jwt"))


@pytest.fixture
def rs256_auth(rsa_keys: tuple[bytes, Path]) -> Authenticator:
    _, public_key = rsa_keys
    return Authenticator(
        auth_config(
            mode="jwt",
            jwt={"public_key_file": str(public_key), "issuer": ISSUER, "audience": AUDIENCE},
        )
    )


# --- the Authorization metadata ---------------------------------------------------------------


def test_bearer_token_is_read_from_the_authorization_metadata() -> None:
    metadata = [("user-agent", "OTel-OTLP-Exporter-Python"), ("authorization", "Bearer abc.d")]
    assert bearer_token(metadata) == "abc.d"


def test_the_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token([("authorization", "bearer abc")]) == "abc"


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ([], "missing credentials"),
        ([("authorization", "Basic dXNlcjpwYXNz")], "scheme must be Bearer"),
        ([("authorization", "Bearer ")], "empty bearer token"),
        ([("authorization", "Bearer a"), ("authorization", "Bearer b")], "more than one"),
    ],
    ids=["missing", "basic", "empty", "twice"],
)
def test_unusable_authorization_metadata_is_unauthenticated(
    metadata: list[tuple[str, str]], problem: str
) -> None:
    with pytest.raises(Unauthenticated, match=problem):
        bearer_token(metadata)


# --- static API keys --------------------------------------------------------------------------


def test_a_known_api_key_authenticates_as_its_client() -> None:
    assert api_key_auth().authenticate(bearer(API_KEY)) == Principal("checkout-web", "api_key")


def test_an_unknown_api_key_is_unauthenticated_and_not_repeated() -> None:
    with pytest.raises(Unauthenticated, match="unknown API key") as caught:
        api_key_auth().authenticate(bearer("ofk_live_guess"))
    assert "ofk_live_guess" not in str(caught.value)


def test_a_request_without_credentials_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated, match="missing credentials"):
        api_key_auth().authenticate([])


def test_mode_none_lets_everyone_in_without_a_principal() -> None:
    assert Authenticator(AuthConfig()).authenticate([]) is None


def test_hash_key_command_prints_the_sha256_of_the_key_on_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(API_KEY + "\n"))
    assert main(["auth", "hash-key"]) == 0
    assert capsys.readouterr().out.strip() == hash_api_key(API_KEY)
    assert len(hash_api_key(API_KEY)) == 64


def test_hash_key_command_refuses_an_empty_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["auth", "hash-key"]) == 2


# --- JWTs -------------------------------------------------------------------------------------


def test_a_valid_hs256_token_authenticates_as_its_subject() -> None:
    token = make_jwt(SECRET, subject="mobile-app")
    assert hs256_auth().authenticate(bearer(token)) == Principal("mobile-app", "jwt")


def test_a_valid_rs256_token_authenticates_as_its_subject(
    rs256_auth: Authenticator, rsa_keys: tuple[bytes, Path]
) -> None:
    private_key, _ = rsa_keys
    token = make_jwt(private_key, algorithm="RS256", subject="batch-evals")
    assert rs256_auth.authenticate(bearer(token)) == Principal("batch-evals", "jwt")


def test_the_scope_may_be_an_scp_list() -> None:
    token = make_jwt(SECRET, scope=None, scp=["openid", "feedback:write"])
    assert hs256_auth().authenticate(bearer(token)) is not None


@pytest.mark.parametrize(
    ("token_args", "problem"),
    [
        ({"expires_in": -3600}, "expired"),
        ({"issuer": "https://evil.test"}, "issuer"),
        ({"audience": "someone-else"}, "[Aa]udience"),
        ({"key": "another-secret-that-is-32-bytes-long!"}, "[Ss]ignature verification failed"),
    ],
    ids=["expired", "wrong-issuer", "wrong-audience", "bad-signature"],
)
def test_an_invalid_hs256_token_is_unauthenticated(
    token_args: dict[str, Any], problem: str
) -> None:
    key = token_args.pop("key", SECRET)
    token = make_jwt(key, **token_args)
    with pytest.raises(Unauthenticated, match=problem):
        hs256_auth().authenticate(bearer(token))


@pytest.mark.parametrize(
    ("token_args", "problem"),
    [
        ({"expires_in": -3600}, "expired"),
        ({"issuer": "https://evil.test"}, "issuer"),
        ({"audience": "someone-else"}, "[Aa]udience"),
    ],
    ids=["expired", "wrong-issuer", "wrong-audience"],
)
def test_an_invalid_rs256_token_is_unauthenticated(
    rs256_auth: Authenticator,
    rsa_keys: tuple[bytes, Path],
    token_args: dict[str, Any],
    problem: str,
) -> None:
    private_key, _ = rsa_keys
    token = make_jwt(private_key, algorithm="RS256", **token_args)
    with pytest.raises(Unauthenticated, match=problem):
        rs256_auth.authenticate(bearer(token))


def test_an_rs256_token_signed_by_another_key_is_unauthenticated(
    rs256_auth: Authenticator, tmp_path: Path
) -> None:
    other_key, _ = make_rsa_key_pair(tmp_path)
    token = make_jwt(other_key, algorithm="RS256")
    with pytest.raises(Unauthenticated, match=r"[Ss]ignature verification failed"):
        rs256_auth.authenticate(bearer(token))


def test_an_hs256_token_is_refused_where_rs256_is_configured(rs256_auth: Authenticator) -> None:
    # The algorithm is pinned by the config, never taken from the token's header.
    token = make_jwt(SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated, match="alg value is not allowed"):
        rs256_auth.authenticate(bearer(token))


def test_an_unsigned_token_is_unauthenticated() -> None:
    token = jwt.encode(
        {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": 4_000_000_000},
        key="",
        algorithm="none",
    )
    with pytest.raises(Unauthenticated):
        hs256_auth().authenticate(bearer(token))


def test_a_token_without_exp_is_unauthenticated() -> None:
    token = jwt.encode(
        {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "scope": "feedback:write"}, SECRET
    )
    with pytest.raises(Unauthenticated, match='"exp"'):
        hs256_auth().authenticate(bearer(token))


def test_a_valid_token_without_the_scope_is_permission_denied() -> None:
    token = make_jwt(SECRET, subject="read-only-dashboard", scope="feedback:read")
    with pytest.raises(PermissionDenied, match="feedback:write"):
        hs256_auth().authenticate(bearer(token))


def test_the_required_scope_is_configurable() -> None:
    token = make_jwt(SECRET, scope="otlp.write")
    assert hs256_auth(required_scope="otlp.write").authenticate(bearer(token)) is not None


# --- mode any ---------------------------------------------------------------------------------


def test_mode_any_takes_an_api_key_or_a_token() -> None:
    auth = hs256_auth(mode="any")
    assert auth.authenticate(bearer(API_KEY)) == Principal("checkout-web", "api_key")
    assert auth.authenticate(bearer(make_jwt(SECRET))) == Principal("test-client", "jwt")


def test_mode_any_reports_an_unknown_key_as_such() -> None:
    with pytest.raises(Unauthenticated, match="unknown API key"):
        hs256_auth(mode="any").authenticate(bearer("not-a-key"))


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        ({"mode": "api_key"}, "at least one auth.api_keys"),
        ({"mode": "jwt"}, "needs auth.jwt.secret or public_key_file"),
        ({"mode": "jwt", "jwt": {"secret": "short", "issuer": "i", "audience": "a"}}, "32 bytes"),
        ({"mode": "jwt", "jwt": {"secret": SECRET}}, "needs issuer and audience"),
        (
            {"api_keys": [{"client_id": "a", "key_sha256": "not-hex"}]},
            "key_sha256",
        ),
        (
            {
                "jwt": {
                    "secret": SECRET,
                    "public_key_file": "k.pem",
                    "issuer": "i",
                    "audience": "a",
                }
            },
            "not both",
        ),
    ],
    ids=["no-keys", "no-jwt", "short-secret", "no-issuer", "bad-hash", "both-keys"],
)
def test_inconsistent_auth_settings_fail_at_start_up_naming_the_key(
    auth: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(auth=auth)


def test_a_short_jwt_secret_is_not_echoed_in_the_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(auth={"mode": "jwt", "jwt": {"secret": "hunter2-topsecret"}})
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None  # pydantic's message would quote the input


def test_an_unreadable_public_key_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    config = auth_config(
        mode="jwt", jwt={"public_key_file": str(missing), "issuer": "i", "audience": "a"}
    )
    with pytest.raises(ConfigError, match=r"auth\.jwt\.public_key_file"):
        Authenticator(config)
