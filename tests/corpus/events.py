"""CloudWatch Logs and EventBridge: a log group with retention, rules that feed a queue and it."""

import json
from typing import Any

MAIN = '''"""Audit: a nightly rule sends a job to a queue, and order events are logged."""
import json

import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

# A new name is a new log group: stage 2 replaces it.
audit = aws.cloudwatch.LogGroup(
    "audit",
    name="/corpus/events/audit" if stage == 1 else "/corpus/events/audit-v2",
    retention_in_days=14 if stage == 1 else 30,
    tags={"purpose": "audit"},
)
jobs = aws.sqs.Queue("jobs", name="corpus-events-jobs")

nightly = aws.cloudwatch.EventRule(
    "nightly",
    name="corpus-nightly",
    description="nightly export" if stage == 1 else "hourly export",
    schedule_expression="cron(0 2 * * ? *)" if stage == 1 else "rate(1 hour)",
)
to_jobs = aws.cloudwatch.EventTarget(
    "nightly-to-jobs",
    rule=nightly.name,
    arn=jobs.arn,
    # A new target id is a new target: stage 2 replaces it.
    target_id="export-job" if stage == 1 else "export-job-v2",
    input=json.dumps({"job": "export", "window": "1d" if stage == 1 else "1h"}),
)

orders = aws.cloudwatch.EventRule(
    "orders",
    name_prefix="corpus-orders-",
    event_pattern=json.dumps(
        {"source": ["corpus.shop"], "detail-type": ["OrderPlaced"]}
        if stage == 1
        else {"source": ["corpus.shop"], "detail-type": ["OrderPlaced", "OrderRefunded"]}
    ),
    state="ENABLED" if stage == 1 else "DISABLED",
)
to_audit = aws.cloudwatch.EventTarget(
    "orders-to-audit",
    rule=orders.name,
    target_id="audit-log",
    arn=audit.arn,
    input_path="$.detail" if stage == 2 else None,
)

pulumi.export("log_group", audit.name)
pulumi.export("log_group_arn", audit.arn)
pulumi.export("jobs_arn", jobs.arn)
pulumi.export("jobs_url", jobs.url)
pulumi.export("nightly", nightly.name)
pulumi.export("orders", orders.name)
'''

_GROUPS = ("/corpus/events/audit", "/corpus/events/audit-v2")


def _groups(aws: Any) -> dict[str, dict[str, Any]]:
    found = aws("logs").describe_log_groups(logGroupNamePrefix="/corpus/events/")["logGroups"]
    return {g["logGroupName"]: g for g in found}


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of `stage`: boto3 finds exactly the declared properties."""
    logs, events = aws("logs"), aws("events")
    groups = _groups(aws)
    assert set(groups) == {_GROUPS[stage - 1]} and outputs["log_group"] == _GROUPS[stage - 1]
    group = groups[outputs["log_group"]]
    assert group["retentionInDays"] == (14 if stage == 1 else 30)
    assert "kmsKeyId" not in group
    assert logs.list_tags_for_resource(resourceArn=outputs["log_group_arn"])["tags"] == {
        "purpose": "audit"
    }

    nightly = events.describe_rule(Name="corpus-nightly")
    assert outputs["nightly"] == "corpus-nightly"
    assert (nightly["ScheduleExpression"], nightly["Description"], nightly["State"]) == (
        ("cron(0 2 * * ? *)", "nightly export", "ENABLED")
        if stage == 1
        else ("rate(1 hour)", "hourly export", "ENABLED")
    )
    (job,) = events.list_targets_by_rule(Rule="corpus-nightly")["Targets"]
    assert job == {
        "Id": "export-job" if stage == 1 else "export-job-v2",
        "Arn": outputs["jobs_arn"],
        "Input": json.dumps({"job": "export", "window": "1d" if stage == 1 else "1h"}),
    }

    assert outputs["orders"].startswith("corpus-orders-")
    orders = events.describe_rule(Name=outputs["orders"])
    assert json.loads(orders["EventPattern"]) == {
        "source": ["corpus.shop"],
        "detail-type": ["OrderPlaced"] if stage == 1 else ["OrderPlaced", "OrderRefunded"],
    }
    assert orders["State"] == ("ENABLED" if stage == 1 else "DISABLED")
    assert "ScheduleExpression" not in orders
    (audit,) = events.list_targets_by_rule(Rule=outputs["orders"])["Targets"]
    expected = {"Id": "audit-log", "Arn": outputs["log_group_arn"]}
    assert audit == (expected if stage == 1 else {**expected, "InputPath": "$.detail"})

    rules = events.list_rules(NamePrefix="corpus-")["Rules"]
    assert sorted(r["Name"] for r in rules) == sorted(["corpus-nightly", outputs["orders"]])


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2)."""
    assert _groups(aws) == {}
    assert aws("events").list_rules(NamePrefix="corpus-")["Rules"] == []
    sqs = aws("sqs")
    assert sqs.list_queues(QueueNamePrefix="corpus-events-").get("QueueUrls", []) == []
