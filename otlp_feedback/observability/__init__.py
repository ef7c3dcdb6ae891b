"""Seeing the pipeline: Prometheus metrics and the HTTP health endpoints (port 9464)."""
