"""DynamoDB: a provisioned table with a global secondary index, TTL, point-in-time
recovery and a stream, moved to on-demand billing and renamed."""

from __future__ import annotations

from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

orders = aws.dynamodb.Table(
    "orders",
    billing_mode="PROVISIONED" if stage == 1 else "PAY_PER_REQUEST",
    read_capacity=2 if stage == 1 else None,
    write_capacity=3 if stage == 1 else None,
    hash_key="customer",
    range_key="placed",
    attributes=[
        aws.dynamodb.TableAttributeArgs(name="customer", type="S"),
        aws.dynamodb.TableAttributeArgs(name="placed", type="N"),
        aws.dynamodb.TableAttributeArgs(name="status", type="S"),
    ],
    global_secondary_indexes=[
        aws.dynamodb.TableGlobalSecondaryIndexArgs(
            name="by-status",
            hash_key="status",
            range_key="placed",
            projection_type="INCLUDE" if stage == 1 else "KEYS_ONLY",
            non_key_attributes=["total"] if stage == 1 else None,
            read_capacity=1 if stage == 1 else None,
            write_capacity=1 if stage == 1 else None,
        )
    ],
    ttl=aws.dynamodb.TableTtlArgs(
        enabled=True, attribute_name="expires" if stage == 1 else "purge_at"
    ),
    point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=stage == 1),
    stream_enabled=True,
    stream_view_type="NEW_IMAGE" if stage == 1 else "NEW_AND_OLD_IMAGES",
    tags={"team": "orders", "stage": str(stage)},
)

audit = aws.dynamodb.Table(
    "audit",
    name="corpus-audit" if stage == 1 else "corpus-audit-v2",
    billing_mode="PAY_PER_REQUEST",
    hash_key="event",
    attributes=[aws.dynamodb.TableAttributeArgs(name="event", type="S")],
)

pulumi.export("orders", orders.name)
pulumi.export("orders_arn", orders.arn)
pulumi.export("stream", orders.stream_arn)
pulumi.export("audit", audit.name)
"""


def _tags(ddb: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of `stage`: boto3 finds exactly the declared properties."""
    ddb = aws("dynamodb")
    table = ddb.describe_table(TableName=outputs["orders"])["Table"]
    assert table["TableArn"] == outputs["orders_arn"]
    assert table["KeySchema"] == [
        {"AttributeName": "customer", "KeyType": "HASH"},
        {"AttributeName": "placed", "KeyType": "RANGE"},
    ]
    billing = table["BillingModeSummary"]["BillingMode"]
    assert billing == ("PROVISIONED" if stage == 1 else "PAY_PER_REQUEST")
    if stage == 1:
        throughput = table["ProvisionedThroughput"]
        assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (2, 3)
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-status"
    assert index["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "placed", "KeyType": "RANGE"},
    ]
    projection = (
        {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["total"]}
        if stage == 1
        else {"ProjectionType": "KEYS_ONLY"}
    )
    assert index["Projection"] == projection
    ttl = ddb.describe_time_to_live(TableName=outputs["orders"])["TimeToLiveDescription"]
    assert ttl == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires" if stage == 1 else "purge_at",
    }
    backups = ddb.describe_continuous_backups(TableName=outputs["orders"])
    recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == ("ENABLED" if stage == 1 else "DISABLED")
    view = "NEW_IMAGE" if stage == 1 else "NEW_AND_OLD_IMAGES"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": view}
    assert table["LatestStreamArn"] == outputs["stream"]
    assert _tags(ddb, table["TableArn"]) == {"team": "orders", "stage": str(stage)}
    assert table.get("DeletionProtectionEnabled") is False
    assert "SSEDescription" not in table

    audit_name = "corpus-audit" if stage == 1 else "corpus-audit-v2"
    assert outputs["audit"] == audit_name
    audit = ddb.describe_table(TableName=audit_name)["Table"]
    assert audit["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert audit["KeySchema"] == [{"AttributeName": "event", "KeyType": "HASH"}]
    names = set(ddb.list_tables()["TableNames"])
    assert names >= {outputs["orders"], audit_name}
    if stage == 2:
        assert "corpus-audit" not in names  # replaced, not left behind


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2)."""
    names = set(aws("dynamodb").list_tables()["TableNames"])
    assert not names & {outputs["orders"], outputs["audit"], "corpus-audit"}
