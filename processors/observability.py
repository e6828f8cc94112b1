"""Powertools Logger, Metrics and Tracer shared by the handlers.

Module level holds only these objects (configuration), never data of a request. The Tracer sends
X-Ray segments on AWS (the template sets ``Tracing: Active``) and patches boto3, so every DynamoDB,
S3 and SQS call is a subsegment; outside Lambda (tests, the local runner) Powertools disables it.
Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
when set (the SAM template sets them per function).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "alleycat"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Alleycat"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)
# For ``@tracer.capture_lambda_handler(capture_response=False)``: responses (the aggregator's window
# state) can be far larger than an X-Ray segment may be.

# Correlation id of a stream batch: the id of its first record (shard + sequence number).
RECORDS_CORRELATION_PATH = "Records[0].eventID"


def count(name: str, value: int | float) -> None:
    """Add a Count metric (EMF), flushed by ``@metrics.log_metrics`` at the end of the invocation."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)


__all__ = ("RECORDS_CORRELATION_PATH", "count", "logger", "metrics", "milliseconds", "tracer")
