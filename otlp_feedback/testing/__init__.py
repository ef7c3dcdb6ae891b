"""Test doubles and helpers shipped with the package, so tests (ours and users') need no network.

- ``otlp``: build OTLP log/trace export requests from plain Python values.
- ``InMemorySink`` (``otlp_feedback.sinks.memory``) and ``InMemoryRegistry``
  (``otlp_feedback.registry.client``): the sink and registry twins.
- ``registry.DownRegistry``: the registry twin that is down until brought up (start-up).
- ``kafka.FakeKafka``: a scripted ``confluent_kafka.Producer`` stand-in for the Kafka sink.
- ``run_receiver``: a receiver on a free loopback port with those twins; ``receiver.await_health``
  waits (on the health Watch stream) for its gRPC health status; ``receiver.http_test_client``
  drives the OTLP/HTTP port's ASGI app in-process (Starlette's ``TestClient``), behind the guard
  its settings build with ``receiver.guarded_test_client``.
- ``cli.run_cli``: the ``otlp-feedback`` command in-process under pytest, its output captured.
- ``waiting.wait_until``: poll a condition nothing signals, within a bound (prefer an event).
- ``observe``: what a pipeline did with one export, as values two runs compare by (the native
  fast path's equivalence tests).
"""

from otlp_feedback.testing.otlp import logs_request, make_log_record, make_span, traces_request
from otlp_feedback.testing.receiver import run_receiver

__all__ = ["logs_request", "make_log_record", "make_span", "run_receiver", "traces_request"]
