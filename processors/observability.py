"""Powertools Logger and Metrics shared by the handlers.

Module level holds only these two objects (configuration), never data of a request.
Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
when set (the SAM template sets them per function).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "alleycat"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Alleycat"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# Correlation id of a stream batch: the id of its first record (shard + sequence number).
RECORDS_CORRELATION_PATH = "Records[0].eventID"


def count(name: str, value: int | float) -> None:
    """Add a Count metric (EMF), flushed by ``@metrics.log_metrics`` at the end of the invocation."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)


__all__ = ("RECORDS_CORRELATION_PATH", "count", "logger", "metrics", "milliseconds")
