"""The local event-source runner: invokes the real handlers as Lambda would, on one machine.

``python -m processors.local.runner`` reads ``infra/template.yaml`` (through
:mod:`processors.local.template`), makes sure the stream, table, buckets and queue exist
(:mod:`processors.local.bootstrap`, idempotent), starts each handler in its own process on first
use (:mod:`processors.local.sandbox`, like a Lambda execution environment) and then runs these
event sources, each in its own thread:

- every Kinesis and DynamoDB-stream mapping of the template (aggregator ← bike stream;
  finals and publisher ← the table's stream): every shard, including shards created by
  resharding (children after their parents), polled about once a second, batches of up to
  BatchSize, a durable checkpoint per shard after success, tumbling windows (state carried
  between invokes, a final invoke per window with ``isFinalInvokeForWindow``), retries with
  bisection on function error, partial batch responses, record age limits, and the failed
  batch's metadata to the on-failure destination (SQS) once the retries are used up;
- Firehose: its own reader of the bike stream with its own checkpoint, buffering by size and
  interval, the transformer with the Firehose event shape, GZIP newline-delimited objects under
  ``raw/YYYY/MM/DD/HH/<name>-1-<YYYY-MM-DD-HH-MM-SS>-<uuid>.gz`` and ProcessingFailed records
  under ``processing-failed/``;
- S3 notifications of the delivery bucket (new objects under the trigger's prefix) → history.

The rooms: ``sources/`` (one module per event-source kind: ``kinesis``, ``dynamodb``, ``firehose``,
``s3``; the stream kinds and Firehose share one shard-polling loop, ``sources/base.py``, over the
shard reader of ``sources/shards.py``), ``windows`` (tumbling windows), ``delivery`` (the one retry
policy, retry/bisect/partial failures, the on-failure destination), ``invoke`` (a handler called in
this process), ``stats`` (figures and status file), ``core`` (the runner), ``__main__`` (the CLI).

Every few seconds it logs one line per source and writes ``$ALLEYCAT_PIPELINE_STATUS_FILE``
(default ``var/pipeline-status.json``): iterator age (lag), records/s, errors, dead letters.
SIGTERM or SIGINT stop it after the batch in progress; a restart resumes from the checkpoints
(at least once: a batch cut short by a kill is processed again, which the handlers tolerate).

Environment (besides the names of docs/contracts.md, which override the template's defaults):
``ALLEYCAT_VAR_DIR`` (checkpoints, default ``var``), ``ALLEYCAT_FIREHOSE_BUFFER_SECONDS`` (a shorter
buffer interval than the template's, for demos and tests), ``ALLEYCAT_RUNNER_POLL_SECONDS`` (1),
``ALLEYCAT_RUNNER_REPORT_SECONDS`` (5), ``ALLEYCAT_TUMBLING_WINDOW_SECONDS`` (template parameter),
``ALLEYCAT_HANDLER_LOG_LEVEL`` (WARNING: every function logs to the same console, so per-invocation
INFO summaries are left out unless asked for), ``ALLEYCAT_HANDLER_EMF=1`` (keep the EMF metric blobs).
More in docs/local-pipeline.md.
"""

from processors.local.runner.config import PARAMETER_ENV, template_parameters_from_env
from processors.local.runner.core import Runner, configure_environment

__all__ = ["PARAMETER_ENV", "Runner", "configure_environment", "template_parameters_from_env"]
