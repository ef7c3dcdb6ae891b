"""Per-client token buckets in events/s, on an injected clock (no sleeping, no timing); and
who the guard limits by default (authenticated clients; unauthenticated peers only when asked)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from otlp_feedback.config import ClientRateLimit, load_config
from otlp_feedback.errors import ConfigError, RateLimited
from otlp_feedback.observability.metrics import Telemetry
from otlp_feedback.receiver.auth import hash_api_key
from otlp_feedback.receiver.guard import RequestGuard, describe_limits
from otlp_feedback.receiver.ratelimit import RateLimiter, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(
    events_per_s: float = 10.0,
    burst: int = 20,
    clients: dict[str, ClientRateLimit] | None = None,
    max_clients: int = 100,
) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    default = ClientRateLimit(events_per_s=events_per_s, burst=burst)
    return RateLimiter(default, clients, max_clients, clock), clock


def retry_after(limit: RateLimiter, client: str, events: int) -> float:
    with pytest.raises(RateLimited) as caught:
        limit.acquire(client, events)
    assert caught.value.retry_after is not None
    return caught.value.retry_after


def test_a_new_client_may_send_a_full_burst_at_once() -> None:
    limit, _ = limiter(burst=20)
    limit.acquire("a", 20)


def test_beyond_the_burst_the_request_is_refused_with_the_time_until_it_fits() -> None:
    limit, _ = limiter(events_per_s=10, burst=20)
    limit.acquire("a", 15)
    # 5 tokens left; 10 more needed at 10 events/s.
    assert retry_after(limit, "a", 15) == pytest.approx(1.0)


def test_a_refused_request_takes_no_tokens() -> None:
    limit, clock = limiter(events_per_s=10, burst=20)
    limit.acquire("a", 20)
    retry_after(limit, "a", 10)
    clock.advance(1.0)
    limit.acquire("a", 10)  # exactly the refill: nothing was taken by the refusal


def test_tokens_refill_at_the_rate_up_to_the_burst() -> None:
    limit, clock = limiter(events_per_s=10, burst=20)
    limit.acquire("a", 20)
    clock.advance(3600)
    limit.acquire("a", 20)
    assert retry_after(limit, "a", 1) == pytest.approx(0.1)


def test_clients_have_separate_buckets() -> None:
    limit, _ = limiter(burst=20)
    limit.acquire("flooder", 20)
    retry_after(limit, "flooder", 1)
    limit.acquire("polite", 20)


def test_a_client_override_replaces_the_default_limit() -> None:
    limit, _ = limiter(burst=20, clients={"batch": ClientRateLimit(events_per_s=100, burst=500)})
    limit.acquire("batch", 500)
    limit.acquire("other", 20)
    retry_after(limit, "other", 1)


def test_a_request_larger_than_the_burst_passes_a_full_bucket_and_leaves_it_in_debt() -> None:
    limit, clock = limiter(events_per_s=10, burst=20)
    limit.acquire("a", 50)  # would otherwise never fit
    # The bucket is 30 in debt: it takes 3 s to reach 0 and 1 s more for 10 events.
    assert retry_after(limit, "a", 10) == pytest.approx(4.0)
    clock.advance(4.0)
    limit.acquire("a", 10)


def test_a_large_request_waits_for_a_full_bucket_not_for_its_own_size() -> None:
    limit, _ = limiter(events_per_s=10, burst=20)
    limit.acquire("a", 20)
    assert retry_after(limit, "a", 1000) == pytest.approx(2.0)


def test_a_request_without_feedback_is_never_limited() -> None:
    limit, _ = limiter(burst=1)
    limit.acquire("a", 1)
    limit.acquire("a", 0)


def test_the_number_of_buckets_is_capped_least_recently_used_first() -> None:
    limit, _ = limiter(burst=20, max_clients=2)
    limit.acquire("a", 20)
    limit.acquire("b", 20)
    limit.acquire("a", 0)  # events=0 does not touch the buckets: "a" stays the oldest
    limit.acquire("c", 20)
    assert len(limit) == 2
    limit.acquire("a", 20)  # "a" was forgotten and starts again with a full bucket
    retry_after(limit, "c", 1)  # "c" was kept (used more recently than "b")


def test_the_refusal_message_names_the_client_and_its_limit() -> None:
    limit, _ = limiter(events_per_s=10, burst=20)
    limit.acquire("mobile", 20)
    with pytest.raises(RateLimited, match=r"10 events/s \(burst 20\) of client 'mobile'"):
        limit.acquire("mobile", 1)


def test_token_bucket_take_returns_zero_when_admitted() -> None:
    bucket = TokenBucket(rate=2.0, burst=4, now=0.0)
    assert bucket.take(4, now=0.0) == 0.0
    assert bucket.take(1, now=0.0) == pytest.approx(0.5)


# --- configuration ----------------------------------------------------------------------------

KEY_HASH = "0" * 64


def test_per_client_limits_come_from_rate_limit_clients_and_api_keys() -> None:
    settings = load_config(
        rate_limit={"clients": {"mobile": {"events_per_s": 5, "burst": 10}}},
        auth={
            "api_keys": [
                {
                    "client_id": "batch",
                    "key_sha256": KEY_HASH,
                    "rate_limit": {"events_per_s": 50, "burst": 100},
                }
            ]
        },
    )
    assert settings.client_rate_limits() == {
        "mobile": ClientRateLimit(events_per_s=5, burst=10),
        "batch": ClientRateLimit(events_per_s=50, burst=100),
    }


def test_two_different_limits_for_one_client_fail_at_start_up() -> None:
    with pytest.raises(ConfigError, match="two different rate limits"):
        load_config(
            rate_limit={"clients": {"batch": {"events_per_s": 5, "burst": 10}}},
            auth={
                "api_keys": [
                    {
                        "client_id": "batch",
                        "key_sha256": KEY_HASH,
                        "rate_limit": {"events_per_s": 50, "burst": 100},
                    }
                ]
            },
        )


def test_the_default_limit_is_1000_events_per_second_with_a_burst_of_2000() -> None:
    cfg = load_config().rate_limit
    assert (cfg.enabled, cfg.events_per_s, cfg.burst) == (True, 1000.0, 2000)
    assert cfg.anonymous is None  # unauthenticated peers: not limited unless configured


# --- the guard: who is limited by default (issue 14 item 1) --------------------------------

API_KEY = "k" * 32
PEER = "ipv4:10.0.0.7:51234"


def guard_for(**sections: Any) -> RequestGuard:
    return RequestGuard.from_settings(load_config(**sections), Telemetry())


def keyed(**rate_limit: Any) -> RequestGuard:
    keys = [{"client_id": "collector", "key_sha256": hash_api_key(API_KEY)}]
    return guard_for(auth={"mode": "api_key", "api_keys": keys}, rate_limit=rate_limit)


def test_by_default_an_unauthenticated_gateway_is_never_throttled() -> None:
    # A collector gateway or sidecar (auth.mode none): every event arrives from one address.
    caller = guard_for().check([], PEER, "Export")
    for _ in range(10):
        caller.admit(2000)  # 20,000 events at once: over the old 1000/s, burst 2000 per IP


def test_by_default_an_authenticated_client_over_its_limit_is_refused() -> None:
    caller = keyed().check([("authorization", f"Bearer {API_KEY}")], PEER, "Export")
    caller.admit(2000)
    with pytest.raises(RateLimited, match=r"1000 events/s \(burst 2000\) of client 'collector'"):
        caller.admit(2000)


def test_an_anonymous_limit_throttles_each_unauthenticated_peer_address() -> None:
    guard = guard_for(rate_limit={"anonymous": {"events_per_s": 10, "burst": 20}})
    caller = guard.check([], PEER, "Export")
    caller.admit(20)
    with pytest.raises(RateLimited, match=r"of client 'peer:10\.0\.0\.7'"):
        caller.admit(1)
    guard.check([], "ipv4:10.0.0.8:1", "Export").admit(20)  # another address: its own bucket


def test_rate_limit_enabled_false_turns_the_anonymous_limit_off_too() -> None:
    guard = guard_for(rate_limit={"enabled": False, "anonymous": {"events_per_s": 1, "burst": 1}})
    caller = guard.check([], PEER, "Export")
    caller.admit(5)
    caller.admit(5)


def test_an_anonymous_limit_must_name_a_rate_and_a_burst() -> None:
    with pytest.raises(ConfigError, match="anonymous"):
        load_config(rate_limit={"anonymous": {"events_per_s": 0, "burst": 1}})


def test_start_up_logs_one_line_saying_what_is_limited(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="otlp_feedback.receiver.guard"):
        guard_for()
        keyed(
            anonymous={"events_per_s": 5, "burst": 10},
            clients={"b": {"events_per_s": 1, "burst": 1}},
        )
        guard_for(rate_limit={"enabled": False})
    assert [r.getMessage() for r in caplog.records] == [
        "rate limits: authenticated clients: 1000 events/s (burst 2000) each; "
        "unauthenticated peers: not limited (set rate_limit.anonymous to limit them); "
        "feedback tokens: 1 events/s (burst 10) each",
        "rate limits: authenticated clients: 1000 events/s (burst 2000) each, 1 with their own; "
        "unauthenticated peers: 5 events/s (burst 10) per address; "
        "feedback tokens: 1 events/s (burst 10) each",
        "rate limits: off (rate_limit.enabled: false); feedback tokens: 1 events/s (burst 10) each",
    ]
    assert describe_limits(load_config()) == caplog.records[0].getMessage()
