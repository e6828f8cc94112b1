"""Pure domain functions (no I/O, no boto3): being split into message, scoring, window and standings."""

from processors.domain.message import *  # noqa: F403 - interim: the split follows in the next commit
from processors.domain.message import MAX_ID, _check_json, _decode_fields  # noqa: F401
