"""Services bundled for ``otlp-feedback dev`` and the tests: the Tansu broker runner.

Not used by ``serve``, which talks to an existing Kafka cluster and schema registry.
"""
