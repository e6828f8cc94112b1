"""The table's key schema as plain data: the single source for tests, the local bootstrap and the SAM template.

One table, two overloaded global secondary indexes (both sparse: only items that carry the
index attributes appear in them):

- ``pk``/``sk``: every item. Live item ``RACE#<race>``/``LIVE``; final result ``RACE#<race>``/
  ``RESULT#<racer>``; personal best ``CLASS#<class>``/``BEST#<racer>``; per-second outputs
  ``RACE#<race>``/``SECONDS#<bucket>#<part>``: one item per bucket of racers (racer id mod 64) and
  delivered object, its racers' seconds in one binary attribute ``outputs`` (a racer's seconds are
  read with one Query on its bucket's ``SECONDS#<bucket>#`` prefix).
- ``gsi1`` (``gsi1pk``/``gsi1sk``): ranking by score. ``RACE#<race>#RESULTS`` (A2) and
  ``CLASS#<class>#BESTS`` (A3); ``gsi1sk`` is a fixed-width string that sorts by score, then by
  racer id ascending when read backwards (``ScanIndexForward=False``).
- ``gsi2`` (``gsi2pk``/``gsi2sk``): a racer's results, ``RACER#<racer>``, sorted by race id (A4).

Keep these names stable: ``infra/template.yaml`` mirrors them and a test compares the two.
"""

from __future__ import annotations

from typing import Any

PK = "pk"
SK = "sk"
GSI1 = "gsi1"
GSI1_PK = "gsi1pk"
GSI1_SK = "gsi1sk"
GSI2 = "gsi2"
GSI2_PK = "gsi2pk"
GSI2_SK = "gsi2sk"

STREAM_VIEW_TYPE = "NEW_AND_OLD_IMAGES"
BILLING_MODE = "PAY_PER_REQUEST"

ATTRIBUTE_DEFINITIONS: list[dict[str, str]] = [
    {"AttributeName": PK, "AttributeType": "S"},
    {"AttributeName": SK, "AttributeType": "S"},
    {"AttributeName": GSI1_PK, "AttributeType": "S"},
    {"AttributeName": GSI1_SK, "AttributeType": "S"},
    {"AttributeName": GSI2_PK, "AttributeType": "S"},
    {"AttributeName": GSI2_SK, "AttributeType": "S"},
]

KEY_SCHEMA: list[dict[str, str]] = [
    {"AttributeName": PK, "KeyType": "HASH"},
    {"AttributeName": SK, "KeyType": "RANGE"},
]

GLOBAL_SECONDARY_INDEXES: list[dict[str, Any]] = [
    {
        "IndexName": GSI1,
        "KeySchema": [
            {"AttributeName": GSI1_PK, "KeyType": "HASH"},
            {"AttributeName": GSI1_SK, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
    {
        "IndexName": GSI2,
        "KeySchema": [
            {"AttributeName": GSI2_PK, "KeyType": "HASH"},
            {"AttributeName": GSI2_SK, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
]

STREAM_SPECIFICATION: dict[str, Any] = {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE}


def create_table_kwargs(table_name: str) -> dict[str, Any]:
    """Arguments for ``dynamodb.create_table`` (tests, local bootstrap)."""
    return {
        "TableName": table_name,
        "AttributeDefinitions": [dict(item) for item in ATTRIBUTE_DEFINITIONS],
        "KeySchema": [dict(item) for item in KEY_SCHEMA],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index["IndexName"],
                "KeySchema": [dict(item) for item in index["KeySchema"]],
                "Projection": dict(index["Projection"]),
            }
            for index in GLOBAL_SECONDARY_INDEXES
        ],
        "BillingMode": BILLING_MODE,
        "StreamSpecification": dict(STREAM_SPECIFICATION),
    }


def create_table(client: Any, table_name: str) -> str:
    """Create the table if it does not exist and wait for it; returns its stream ARN."""
    try:
        client.create_table(**create_table_kwargs(table_name))
    except client.exceptions.ResourceInUseException:
        pass
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
