"""Stage 3 of the pipeline: ``RawFeedback`` -> a typed event, or a ``Rejection`` with a reason."""

from otlp_feedback.validation.validator import Rejection, Validator

__all__ = ["Rejection", "Validator"]
