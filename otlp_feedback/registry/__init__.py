"""The Schema Registry side of otlp-feedback: the bundled Confluent-compatible registry server.

``store`` keeps subjects, versions and ids in SQLite, ``compat`` parses Avro and checks
compatibility, ``server`` exposes both over the Confluent REST API, and ``runner`` runs that
app with uvicorn in a background thread or in the foreground for ``otlp-feedback registry``.
"""
