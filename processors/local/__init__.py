"""The local runtime: the pipeline of ``infra/template.yaml`` on one machine.

- :mod:`processors.local.template` reads the SAM template as the SAM transform deploys it and
  exposes the settings the local runtime needs (names, event-source settings, handler paths,
  environment per function), so that local and cloud cannot drift.
- :mod:`processors.local.bootstrap` creates the stream, table, buckets and dead-letter queue from
  those settings against whatever ``AWS_ENDPOINT_URL`` points at (``python -m processors.local.bootstrap``).
"""
