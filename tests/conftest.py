"""Shared fixtures: the real Kafka-protocol broker (Tansu) and the bundled schema registry.

``.ci/run`` starts both once and passes them in through ``OFB_TEST_BOOTSTRAP`` and
``OFB_TEST_REGISTRY_URL``; without those (a developer running ``pytest`` alone) the session
starts its own on free loopback ports.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning, module="authlib.*")
# Receivers started by tests (in-process or as subprocesses) must not fight over the default
# metrics port 9464; the config test that checks defaults clears this.
os.environ.setdefault("OTLP_FEEDBACK_OBSERVABILITY__ENDPOINT", "127.0.0.1:0")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("OFB_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    from otlp_feedback.embedded.tansu import TansuBroker, free_port

    log_file = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with TansuBroker("127.0.0.1", free_port(), log_file=log_file) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("OFB_TEST_REGISTRY_URL")
    if given:
        yield given
        return
    from otlp_feedback.registry.runner import RegistryServer

    db = tmp_path_factory.mktemp("registry") / "registry.db"
    server = RegistryServer(host="127.0.0.1", port=0, db_path=db)
    server.start()
    try:
        yield server.url
    finally:
        server.shutdown()


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic namespace per test, so tests sharing one broker cannot see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"
