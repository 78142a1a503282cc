"""SNS topics and subscriptions, SQS queues and queue policies, log groups, EventBridge
rules and targets against the emulated cloud.

Every property a handler emulates is set to a value that is not its default and read
back through boto3; those updatable in place are changed and read again, and those that
force a replacement make the plan replace. Deletes leave nothing, and what AWS refuses
(and the emulator would take) is refused.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from _handlers import handler_of
from phasegate.engines.base import Op
from phasegate.engines.sandbox.diff import _diff
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.handlers import (
    CloudContext,
    HandlerError,
    RunContext,
)
from phasegate.engines.sandbox.runtime import Registration
from phasegate.engines.sandbox.store import ResourceState

REGION = "us-east-1"
ACCOUNT = "123456789012"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/events"


def _policy(sid: str) -> str:
    statement = {"Sid": sid, "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _unique(stem: str) -> str:
    return f"{stem}-{secrets.token_hex(4)}"


@pytest.fixture
def sns(ctx: CloudContext) -> Any:
    return ctx.client("sns")


@pytest.fixture
def sqs(ctx: CloudContext) -> Any:
    return ctx.client("sqs")


@pytest.fixture
def logs(ctx: CloudContext) -> Any:
    return ctx.client("logs")


@pytest.fixture
def events(ctx: CloudContext) -> Any:
    return ctx.client("events")


def _create(ctx: CloudContext, token: str, inputs: dict[str, Any], name: str = "res") -> tuple:
    """As the engine does it: validate, then create."""
    handler = handler_of(token)
    assert not handler.unemulated(inputs)
    handler.validate(inputs)
    id_, outputs = handler.create(ctx, name, inputs)
    assert handler.exists(ctx, id_, outputs)
    return id_, outputs


def _update(ctx: CloudContext, token: str, id_: str, old: dict, new: dict, outputs: dict) -> dict:
    handler = handler_of(token)
    assert not handler.unemulated(new)
    handler.validate(new)
    assert _op(token, old, new) is Op.UPDATE
    return handler.update(ctx, id_, old, new, outputs)


def _delete(ctx: CloudContext, token: str, id_: str, outputs: dict) -> None:
    handler = handler_of(token)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)


def _op(token: str, old: dict[str, Any], new: dict[str, Any]) -> Op:
    """The op the plan shows for a resource declared ``old`` and now ``new``."""
    urn = f"urn:pulumi:sandbox::phasegate::{token}::res"
    state = ResourceState(
        urn=urn, type=token, name="res", custom=True, id="x", inputs=old, outputs=old
    )
    reg = Registration(urn=urn, type=token, name="res", custom=True, inputs=new)
    return _diff(handler_of(token), state, reg, RunContext()).op


# --- SNS topics -------------------------------------------------------------------------


def test_topic_carries_its_properties_and_changes_them_in_place(
    ctx: CloudContext, sns: Any
) -> None:
    inputs: dict[str, Any] = {
        "name": _unique("orders"),
        "displayName": "Orders",
        "kmsMasterKeyId": "alias/orders",
        "policy": _policy("first"),
        "deliveryPolicy": json.dumps({"http": {"defaultHealthyRetryPolicy": {"numRetries": 5}}}),
        "tags": {"team": "shop"},
    }
    arn, outputs = _create(ctx, TOPIC, inputs)
    assert outputs["arn"] == arn == f"arn:aws:sns:{REGION}:{ACCOUNT}:{inputs['name']}"
    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["DisplayName"] == "Orders"
    assert attributes["KmsMasterKeyId"] == "alias/orders"
    assert json.loads(attributes["Policy"]) == json.loads(inputs["policy"])
    assert json.loads(attributes["DeliveryPolicy"]) == json.loads(inputs["deliveryPolicy"])
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "shop"}]

    new: dict[str, Any] = {
        **inputs,
        "displayName": "Orders v2",
        "kmsMasterKeyId": "alias/other",
        "policy": _policy("second"),
        "deliveryPolicy": json.dumps({"http": {"defaultHealthyRetryPolicy": {"numRetries": 9}}}),
        "tags": {"owner": "ops"},
    }
    outputs = _update(ctx, TOPIC, arn, inputs, new, outputs)
    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["DisplayName"] == "Orders v2"
    assert attributes["KmsMasterKeyId"] == "alias/other"
    assert json.loads(attributes["Policy"])["Statement"][0]["Sid"] == "second"
    assert json.loads(attributes["DeliveryPolicy"]) == json.loads(new["deliveryPolicy"])
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "owner", "Value": "ops"}]

    bare = {"name": inputs["name"]}
    outputs = _update(ctx, TOPIC, arn, new, bare, outputs)
    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert (attributes["DisplayName"], attributes["DeliveryPolicy"]) == ("", "")
    assert "KmsMasterKeyId" not in attributes or not attributes["KmsMasterKeyId"]
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == []
    _delete(ctx, TOPIC, arn, outputs)


def test_fifo_topic_and_its_deduplication(ctx: CloudContext, sns: Any) -> None:
    inputs = {"fifoTopic": True, "contentBasedDeduplication": True}
    arn, outputs = _create(ctx, TOPIC, inputs, "events")
    assert outputs["name"].startswith("events-") and outputs["name"].endswith(".fifo")
    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert (attributes["FifoTopic"], attributes["ContentBasedDeduplication"]) == ("true", "true")
    new = {"fifoTopic": True, "contentBasedDeduplication": False}
    outputs = _update(ctx, TOPIC, arn, inputs, new, outputs)
    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["ContentBasedDeduplication"] == "false"
    _delete(ctx, TOPIC, arn, outputs)


def test_topic_name_prefix_makes_a_unique_name(ctx: CloudContext, sns: Any) -> None:
    arn, outputs = _create(ctx, TOPIC, {"namePrefix": "alerts-"})
    assert outputs["name"].startswith("alerts-") and len(outputs["name"]) == len("alerts-") + 26
    assert arn.endswith(f":{outputs['name']}")
    fifo_arn, fifo = _create(ctx, TOPIC, {"namePrefix": "alerts-", "fifoTopic": True})
    assert fifo["name"].endswith(".fifo")
    assert sns.get_topic_attributes(TopicArn=fifo_arn)["Attributes"]["FifoTopic"] == "true"
    _delete(ctx, TOPIC, arn, outputs)
    _delete(ctx, TOPIC, fifo_arn, fifo)


# --- SNS subscriptions ------------------------------------------------------------------


@pytest.fixture
def topic(sns: Any) -> str:
    arn: str = sns.create_topic(Name=_unique("topic"))["TopicArn"]
    return arn


@pytest.fixture
def queue_arn(sqs: Any) -> str:
    url = sqs.create_queue(QueueName=_unique("queue"))["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return arn


def test_sqs_subscription_carries_its_attributes_and_changes_them(
    ctx: CloudContext, sns: Any, topic: str, queue_arn: str
) -> None:
    dead_letters = f"arn:aws:sqs:{REGION}:{ACCOUNT}:dead-letters"
    inputs = {
        "topic": topic,
        "protocol": "sqs",
        "endpoint": queue_arn,
        "rawMessageDelivery": True,
        "filterPolicy": json.dumps({"kind": ["order"]}),
        "filterPolicyScope": "MessageBody",
        "redrivePolicy": json.dumps({"deadLetterTargetArn": dead_letters}),
    }
    arn, outputs = _create(ctx, SUBSCRIPTION, inputs)
    assert outputs["arn"] == arn and arn.startswith(f"{topic}:")
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert (attributes["TopicArn"], attributes["Protocol"], attributes["Endpoint"]) == (
        topic,
        "sqs",
        queue_arn,
    )
    assert attributes["RawMessageDelivery"] == "true"
    assert json.loads(attributes["FilterPolicy"]) == {"kind": ["order"]}
    assert attributes["FilterPolicyScope"] == "MessageBody"
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dead_letters}

    new = {
        **inputs,
        "rawMessageDelivery": False,
        "filterPolicy": json.dumps({"kind": ["refund"]}),
        "filterPolicyScope": "MessageAttributes",
    }
    del new["redrivePolicy"]
    outputs = _update(ctx, SUBSCRIPTION, arn, inputs, new, outputs)
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["RawMessageDelivery"] == "false"
    assert json.loads(attributes["FilterPolicy"]) == {"kind": ["refund"]}
    assert attributes["FilterPolicyScope"] == "MessageAttributes"
    assert not attributes.get("RedrivePolicy")
    _delete(ctx, SUBSCRIPTION, arn, outputs)
    assert all(s["SubscriptionArn"] != arn for s in sns.list_subscriptions()["Subscriptions"])


def test_firehose_subscription_carries_its_role(ctx: CloudContext, sns: Any, topic: str) -> None:
    stream = f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/orders"
    inputs = {
        "topic": topic,
        "protocol": "firehose",
        "endpoint": stream,
        "subscriptionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/sns-firehose",
    }
    arn, outputs = _create(ctx, SUBSCRIPTION, inputs)
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["SubscriptionRoleArn"] == inputs["subscriptionRoleArn"]
    new = {**inputs, "subscriptionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/other"}
    outputs = _update(ctx, SUBSCRIPTION, arn, inputs, new, outputs)
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["SubscriptionRoleArn"] == new["subscriptionRoleArn"]
    _delete(ctx, SUBSCRIPTION, arn, outputs)


def test_a_firehose_subscription_without_a_role_is_refused(ctx: CloudContext, topic: str) -> None:
    stream = f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/orders"
    inputs = {"topic": topic, "protocol": "firehose", "endpoint": stream}
    with pytest.raises(HandlerError, match="needs subscriptionRoleArn"):
        handler_of(SUBSCRIPTION).create(ctx, "res", inputs)


def test_a_subscription_to_a_missing_topic_is_refused(ctx: CloudContext, queue_arn: str) -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic"
    inputs = {"topic": topic, "protocol": "sqs", "endpoint": queue_arn}
    with pytest.raises(HandlerError, match="cannot subscribe"):
        handler_of(SUBSCRIPTION).create(ctx, "res", inputs)


# --- SQS queues -------------------------------------------------------------------------


def _attributes(sqs: Any, url: str) -> dict[str, str]:
    found: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    return found


def test_queue_carries_its_properties_and_changes_them_in_place(
    ctx: CloudContext, sqs: Any, queue_arn: str
) -> None:
    redrive = json.dumps({"deadLetterTargetArn": queue_arn, "maxReceiveCount": 4})
    inputs: dict[str, Any] = {
        "name": _unique("work"),
        "delaySeconds": 90,
        "maxMessageSize": 2048,
        "messageRetentionSeconds": 86_400,
        "receiveWaitTimeSeconds": 10,
        "visibilityTimeoutSeconds": 120,
        "redrivePolicy": redrive,
        "policy": _policy("first"),
        "kmsMasterKeyId": "alias/work",
        "kmsDataKeyReusePeriodSeconds": 600,
        "tags": {"team": "shop"},
    }
    url, outputs = _create(ctx, QUEUE, inputs)
    assert outputs["url"] == url and outputs["arn"].endswith(f":{inputs['name']}")
    attributes = _attributes(sqs, url)
    expected = {
        "DelaySeconds": "90",
        "MaximumMessageSize": "2048",
        "MessageRetentionPeriod": "86400",
        "ReceiveMessageWaitTimeSeconds": "10",
        "VisibilityTimeout": "120",
        "KmsMasterKeyId": "alias/work",
        "KmsDataKeyReusePeriodSeconds": "600",
        "SqsManagedSseEnabled": "false",
    }
    assert {k: attributes[k] for k in expected} == expected
    assert json.loads(attributes["RedrivePolicy"]) == json.loads(redrive)
    assert json.loads(attributes["Policy"]) == json.loads(inputs["policy"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "shop"}

    new = {
        "name": inputs["name"],
        "delaySeconds": 5,
        "maxMessageSize": 4096,
        "messageRetentionSeconds": 600,
        "receiveWaitTimeSeconds": 20,
        "visibilityTimeoutSeconds": 45,
        "redrivePolicy": json.dumps({"deadLetterTargetArn": queue_arn, "maxReceiveCount": 9}),
        "policy": _policy("second"),
        "kmsMasterKeyId": "alias/other",
        "kmsDataKeyReusePeriodSeconds": 3600,
        "tags": {"owner": "ops"},
    }
    outputs = _update(ctx, QUEUE, url, inputs, new, outputs)
    attributes = _attributes(sqs, url)
    expected = {
        "DelaySeconds": "5",
        "MaximumMessageSize": "4096",
        "MessageRetentionPeriod": "600",
        "ReceiveMessageWaitTimeSeconds": "20",
        "VisibilityTimeout": "45",
        "KmsMasterKeyId": "alias/other",
        "KmsDataKeyReusePeriodSeconds": "3600",
    }
    assert {k: attributes[k] for k in expected} == expected
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 9
    assert json.loads(attributes["Policy"])["Statement"][0]["Sid"] == "second"
    assert sqs.list_queue_tags(QueueUrl=url).get("Tags", {}) == {"owner": "ops"}

    bare = {"name": inputs["name"], "sqsManagedSseEnabled": True}
    outputs = _update(ctx, QUEUE, url, new, bare, outputs)
    attributes = _attributes(sqs, url)
    assert attributes["DelaySeconds"] == "0" and attributes["MaximumMessageSize"] == "262144"
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert "RedrivePolicy" not in attributes and "KmsMasterKeyId" not in attributes
    assert json.loads(attributes["Policy"])["Statement"][0]["Sid"] == "second"  # computed
    _delete(ctx, QUEUE, url, outputs)


def test_queue_takes_the_providers_defaults(ctx: CloudContext, sqs: Any) -> None:
    url, outputs = _create(ctx, QUEUE, {"sqsManagedSseEnabled": False}, "jobs")
    assert outputs["name"].startswith("jobs-")
    attributes = _attributes(sqs, url)
    assert attributes["MaximumMessageSize"] == "262144"
    assert attributes["MessageRetentionPeriod"] == "345600"
    assert attributes["VisibilityTimeout"] == "30"
    assert attributes["SqsManagedSseEnabled"] == "false"
    assert "KmsDataKeyReusePeriodSeconds" not in attributes  # no key, no reuse period
    _delete(ctx, QUEUE, url, outputs)


def test_fifo_queue_carries_its_fifo_attributes(ctx: CloudContext, sqs: Any) -> None:
    inputs = {
        "namePrefix": "orders-",
        "fifoQueue": True,
        "contentBasedDeduplication": True,
        "deduplicationScope": "messageGroup",
        "fifoThroughputLimit": "perMessageGroupId",
    }
    url, outputs = _create(ctx, QUEUE, inputs)
    assert outputs["name"].startswith("orders-") and outputs["name"].endswith(".fifo")
    assert len(outputs["name"]) == len("orders-") + 26 + len(".fifo")
    attributes = _attributes(sqs, url)
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    assert attributes["DeduplicationScope"] == "messageGroup"
    assert attributes["FifoThroughputLimit"] == "perMessageGroupId"
    new = {"namePrefix": "orders-", "fifoQueue": True, "deduplicationScope": "messageGroup"}
    outputs = _update(ctx, QUEUE, url, inputs, new, outputs)
    attributes = _attributes(sqs, url)
    assert attributes["ContentBasedDeduplication"] == "false"
    assert attributes["FifoThroughputLimit"] == "perQueue"
    _delete(ctx, QUEUE, url, outputs)


def test_a_dead_letter_queue_must_exist(ctx: CloudContext) -> None:
    missing = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{_unique('missing')}"
    redrive = json.dumps({"deadLetterTargetArn": missing, "maxReceiveCount": 3})
    with pytest.raises(HandlerError, match="cannot create queue"):
        handler_of(QUEUE).create(ctx, "work", {"redrivePolicy": redrive})


def test_queue_policy_set_changed_and_removed(ctx: CloudContext, sqs: Any) -> None:
    url = sqs.create_queue(QueueName=_unique("policed"))["QueueUrl"]
    inputs = {"queueUrl": url, "policy": _policy("first")}
    id_, outputs = _create(ctx, QUEUE_POLICY, inputs)
    assert id_ == url
    assert json.loads(_attributes(sqs, url)["Policy"]) == json.loads(inputs["policy"])
    new = {**inputs, "policy": _policy("second")}
    outputs = _update(ctx, QUEUE_POLICY, id_, inputs, new, outputs)
    assert json.loads(_attributes(sqs, url)["Policy"])["Statement"][0]["Sid"] == "second"
    _delete(ctx, QUEUE_POLICY, id_, outputs)
    assert "Policy" not in _attributes(sqs, url)


def test_a_queue_change_keeps_the_policy_a_queue_policy_set(ctx: CloudContext, sqs: Any) -> None:
    inputs = {"name": _unique("shared"), "visibilityTimeoutSeconds": 30}
    url, queue = _create(ctx, QUEUE, inputs)
    _create(ctx, QUEUE_POLICY, {"queueUrl": url, "policy": _policy("grant")})
    new = {**inputs, "visibilityTimeoutSeconds": 60}
    _update(ctx, QUEUE, url, inputs, new, queue)
    attributes = _attributes(sqs, url)
    assert attributes["VisibilityTimeout"] == "60"
    assert json.loads(attributes["Policy"])["Statement"][0]["Sid"] == "grant"


def test_queue_policy_on_a_missing_queue_is_refused(ctx: CloudContext) -> None:
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{_unique('missing')}"
    with pytest.raises(HandlerError, match="does not exist"):
        handler_of(QUEUE_POLICY).create(ctx, "res", {"queueUrl": url, "policy": _policy("x")})


# --- log groups -------------------------------------------------------------------------


def _key(ctx: CloudContext) -> str:
    arn: str = ctx.client("kms").create_key()["KeyMetadata"]["Arn"]
    return arn


def _group(logs: Any, name: str) -> dict[str, Any]:
    (found,) = [
        g
        for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        if g["logGroupName"] == name
    ]
    return dict(found)


def test_log_group_carries_its_properties_and_changes_them_in_place(
    ctx: CloudContext, logs: Any
) -> None:
    first_key, second_key = _key(ctx), _key(ctx)
    inputs = {
        "name": f"/app/{_unique('web')}",
        "retentionInDays": 14,
        "kmsKeyId": first_key,
        "tags": {"team": "web"},
    }
    name, outputs = _create(ctx, LOG_GROUP, inputs)
    assert outputs["arn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"
    group = _group(logs, name)
    assert (group["retentionInDays"], group["kmsKeyId"]) == (14, first_key)
    assert logs.list_tags_for_resource(resourceArn=outputs["arn"])["tags"] == {"team": "web"}

    new = {**inputs, "retentionInDays": 3653, "kmsKeyId": second_key, "tags": {"owner": "ops"}}
    outputs = _update(ctx, LOG_GROUP, name, inputs, new, outputs)
    group = _group(logs, name)
    assert (group["retentionInDays"], group["kmsKeyId"]) == (3653, second_key)
    assert logs.list_tags_for_resource(resourceArn=outputs["arn"])["tags"] == {"owner": "ops"}

    bare = {"name": inputs["name"], "retentionInDays": 0}
    outputs = _update(ctx, LOG_GROUP, name, new, bare, outputs)
    group = _group(logs, name)
    assert "retentionInDays" not in group and "kmsKeyId" not in group
    _delete(ctx, LOG_GROUP, name, outputs)


def test_log_group_name_prefix_and_skip_destroy(ctx: CloudContext, logs: Any) -> None:
    name, outputs = _create(ctx, LOG_GROUP, {"namePrefix": "/batch/", "skipDestroy": True})
    assert name.startswith("/batch/") and len(name) == len("/batch/") + 26
    handler_of(LOG_GROUP).delete(ctx, name, outputs)
    assert _group(logs, name)["logGroupName"] == name  # left in the cloud
    _delete(ctx, LOG_GROUP, name, {**outputs, "skipDestroy": False})


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000", "does not"),
        (f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000", "not a KMS"),
    ],
)
def test_a_log_group_key_that_cannot_be_used_is_refused(
    ctx: CloudContext, key: str, reason: str
) -> None:
    with pytest.raises(HandlerError, match=reason):
        handler_of(LOG_GROUP).create(ctx, "res", {"kmsKeyId": key})


def test_a_disabled_key_is_refused_for_a_log_group(ctx: CloudContext) -> None:
    key = _key(ctx)
    ctx.client("kms").disable_key(KeyId=key.rsplit("/", 1)[1])
    with pytest.raises(HandlerError, match="Disabled, not Enabled"):
        handler_of(LOG_GROUP).create(ctx, "res", {"kmsKeyId": key})


# --- EventBridge rules and targets ------------------------------------------------------


def test_scheduled_rule_carries_its_properties_and_changes_them(
    ctx: CloudContext, events: Any
) -> None:
    inputs = {
        "name": _unique("nightly"),
        "scheduleExpression": "cron(0 2 * * ? *)",
        "description": "nightly export",
        "roleArn": ROLE,
        "state": "DISABLED",
        "tags": {"team": "data"},
    }
    id_, outputs = _create(ctx, RULE, inputs)
    assert id_ == inputs["name"]
    rule = events.describe_rule(Name=id_)
    assert outputs["arn"] == rule["Arn"]
    assert (rule["ScheduleExpression"], rule["Description"], rule["RoleArn"], rule["State"]) == (
        "cron(0 2 * * ? *)",
        "nightly export",
        ROLE,
        "DISABLED",
    )
    assert rule["EventBusName"] == "default"
    assert events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"] == [
        {"Key": "team", "Value": "data"}
    ]

    new = {
        "name": inputs["name"],
        "scheduleExpression": "rate(1 hour)",
        "description": "hourly export",
        "isEnabled": True,
        "tags": {"owner": "ops"},
    }
    outputs = _update(ctx, RULE, id_, inputs, new, outputs)
    rule = events.describe_rule(Name=id_)
    assert (rule["ScheduleExpression"], rule["Description"], rule["State"]) == (
        "rate(1 hour)",
        "hourly export",
        "ENABLED",
    )
    assert "RoleArn" not in rule
    assert events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"] == [
        {"Key": "owner", "Value": "ops"}
    ]
    off = {**new, "isEnabled": False}
    outputs = _update(ctx, RULE, id_, new, off, outputs)
    assert events.describe_rule(Name=id_)["State"] == "DISABLED"
    _delete(ctx, RULE, id_, outputs)


def test_pattern_rule_on_its_own_bus(ctx: CloudContext, events: Any) -> None:
    bus = _unique("orders-bus")
    events.create_event_bus(Name=bus)
    pattern = json.dumps({"source": ["shop.orders"]})
    inputs = {
        "namePrefix": "placed-",
        "eventBusName": bus,
        "eventPattern": pattern,
        "state": "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
    }
    id_, outputs = _create(ctx, RULE, inputs)
    assert outputs["name"].startswith("placed-") and len(outputs["name"]) == len("placed-") + 26
    assert id_ == f"{bus}/{outputs['name']}"
    rule = events.describe_rule(Name=outputs["name"], EventBusName=bus)
    assert json.loads(rule["EventPattern"]) == {"source": ["shop.orders"]}
    assert rule["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    new = {**inputs, "eventPattern": json.dumps({"source": ["shop.refunds"]})}
    outputs = _update(ctx, RULE, id_, inputs, new, outputs)
    rule = events.describe_rule(Name=outputs["name"], EventBusName=bus)
    assert json.loads(rule["EventPattern"]) == {"source": ["shop.refunds"]}
    _delete(ctx, RULE, id_, outputs)


@pytest.fixture
def rule(events: Any) -> str:
    name = _unique("rule")
    events.put_rule(Name=name, ScheduleExpression="rate(5 minutes)")
    return name


def test_event_target_carries_its_properties_and_changes_them(
    ctx: CloudContext, events: Any, rule: str, queue_arn: str
) -> None:
    inputs = {
        "rule": rule,
        "targetId": "export",
        "arn": queue_arn,
        "input": json.dumps({"job": "export"}),
        "roleArn": ROLE,
    }
    id_, outputs = _create(ctx, TARGET, inputs)
    assert id_ == f"{rule}-export"
    (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
    assert target == {"Id": "export", "Arn": queue_arn, "Input": inputs["input"], "RoleArn": ROLE}

    other = f"arn:aws:sqs:{REGION}:{ACCOUNT}:other"
    new = {"rule": rule, "targetId": "export", "arn": other, "inputPath": "$.detail"}
    outputs = _update(ctx, TARGET, id_, inputs, new, outputs)
    (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
    assert target == {"Id": "export", "Arn": other, "InputPath": "$.detail"}
    _delete(ctx, TARGET, id_, outputs)
    assert events.list_targets_by_rule(Rule=rule)["Targets"] == []


def test_event_target_retry_dead_letters_and_message_group(
    ctx: CloudContext, events: Any, sqs: Any, rule: str, queue_arn: str
) -> None:
    fifo_url = sqs.create_queue(
        QueueName=_unique("ordered") + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    fifo_arn = _attributes(sqs, fifo_url)["QueueArn"]
    inputs: dict[str, Any] = {
        "rule": rule,
        "targetId": "ordered",
        "arn": fifo_arn,
        "sqsTarget": {"messageGroupId": "exports"},
        "retryPolicy": {"maximumEventAgeInSeconds": 600, "maximumRetryAttempts": 3},
        "deadLetterConfig": {"arn": queue_arn},
    }
    id_, outputs = _create(ctx, TARGET, inputs)
    (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
    assert target["SqsParameters"] == {"MessageGroupId": "exports"}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 600, "MaximumRetryAttempts": 3}
    assert target["DeadLetterConfig"] == {"Arn": queue_arn}

    new = {
        **inputs,
        "sqsTarget": {"messageGroupId": "reports"},
        "retryPolicy": {"maximumEventAgeInSeconds": 3600, "maximumRetryAttempts": 0},
    }
    del new["deadLetterConfig"]
    outputs = _update(ctx, TARGET, id_, inputs, new, outputs)
    (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
    assert target["SqsParameters"] == {"MessageGroupId": "reports"}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 0}
    assert "DeadLetterConfig" not in target
    _delete(ctx, TARGET, id_, outputs)


def test_a_fifo_queue_target_without_a_message_group_is_refused_at_apply(
    ctx: CloudContext, rule: str
) -> None:
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{_unique('ordered')}.fifo"
    with pytest.raises(HandlerError, match=r"needs sqsTarget\.messageGroupId"):
        handler_of(TARGET).create(ctx, "res", {"rule": rule, "arn": arn})


def test_event_target_without_an_id_gets_one_and_a_bus_of_its_own(
    ctx: CloudContext, events: Any, queue_arn: str
) -> None:
    bus = _unique("bus")
    events.create_event_bus(Name=bus)
    name = _unique("rule")
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["x"]}))
    id_, outputs = _create(ctx, TARGET, {"rule": name, "eventBusName": bus, "arn": queue_arn})
    assert outputs["targetId"].startswith("terraform-")
    assert id_ == f"{bus}/{name}/{outputs['targetId']}"
    (target,) = events.list_targets_by_rule(Rule=name, EventBusName=bus)["Targets"]
    assert target["Id"] == outputs["targetId"]
    _delete(ctx, TARGET, id_, outputs)


def test_a_rule_takes_five_targets(ctx: CloudContext, rule: str, queue_arn: str) -> None:
    for n in range(5):
        _create(ctx, TARGET, {"rule": rule, "targetId": f"t{n}", "arn": queue_arn})
    with pytest.raises(HandlerError, match="a rule takes 5"):
        handler_of(TARGET).create(ctx, "res", {"rule": rule, "targetId": "t5", "arn": queue_arn})


def test_a_target_on_a_missing_rule_is_refused(ctx: CloudContext, queue_arn: str) -> None:
    with pytest.raises(HandlerError, match="does not exist"):
        handler_of(TARGET).create(ctx, "res", {"rule": _unique("nope"), "arn": queue_arn})


def test_a_rule_with_targets_is_not_deleted(ctx: CloudContext, queue_arn: str) -> None:
    id_, outputs = _create(ctx, RULE, {"scheduleExpression": "rate(2 hours)"}, "busy")
    _create(ctx, TARGET, {"rule": outputs["name"], "targetId": "t", "arn": queue_arn})
    with pytest.raises(HandlerError, match="cannot delete rule"):
        handler_of(RULE).delete(ctx, id_, outputs)


# --- plan: what replaces, what AWS refuses, what is refused by name ---------------------


@pytest.mark.parametrize(
    ("token", "old", "new"),
    [
        (TOPIC, {"name": "a"}, {"name": "b"}),
        (TOPIC, {"namePrefix": "a-"}, {"namePrefix": "b-"}),
        (TOPIC, {}, {"fifoTopic": True}),
        (
            SUBSCRIPTION,
            {"topic": "t1", "protocol": "sqs", "endpoint": "q"},
            {"topic": "t2", "protocol": "sqs", "endpoint": "q"},
        ),
        (
            SUBSCRIPTION,
            {"topic": "t", "protocol": "sqs", "endpoint": "q1"},
            {"topic": "t", "protocol": "sqs", "endpoint": "q2"},
        ),
        (
            SUBSCRIPTION,
            {"topic": "t", "protocol": "sqs", "endpoint": "q"},
            {"topic": "t", "protocol": "lambda", "endpoint": "q"},
        ),
        (QUEUE, {"name": "a"}, {"name": "b"}),
        (QUEUE, {"namePrefix": "a-"}, {"namePrefix": "b-"}),
        (QUEUE, {}, {"fifoQueue": True}),
        (QUEUE_POLICY, {"queueUrl": "u1", "policy": "{}"}, {"queueUrl": "u2", "policy": "{}"}),
        (LOG_GROUP, {"name": "a"}, {"name": "b"}),
        (LOG_GROUP, {"namePrefix": "a"}, {"namePrefix": "b"}),
        (RULE, {"name": "a"}, {"name": "b"}),
        (RULE, {"namePrefix": "a"}, {"namePrefix": "b"}),
        (RULE, {"name": "a"}, {"name": "a", "eventBusName": "other"}),
        (TARGET, {"rule": "a", "arn": "x"}, {"rule": "b", "arn": "x"}),
        (TARGET, {"rule": "a", "targetId": "t1"}, {"rule": "a", "targetId": "t2"}),
        (TARGET, {"rule": "a"}, {"rule": "a", "eventBusName": "other"}),
    ],
)
def test_what_forces_a_replacement(token: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    assert _op(token, old, new) is Op.REPLACE


@pytest.mark.parametrize(
    ("token", "inputs", "reason"),
    [
        (TOPIC, {"name": "bad name"}, "not a valid topic name"),
        (TOPIC, {"name": "x" * 257}, "not a valid topic name"),
        (TOPIC, {"namePrefix": "p" * 231}, "namePrefix"),
        (TOPIC, {"name": "orders", "fifoTopic": True}, "must end in .fifo"),
        (TOPIC, {"name": "orders.fifo"}, "not a valid topic name"),
        (TOPIC, {"contentBasedDeduplication": True}, "FIFO topics"),
        (TOPIC, {"displayName": "d" * 101}, "longer than 100"),
        (TOPIC, {"policy": "{not json"}, "policy is not valid JSON"),
        (TOPIC, {"deliveryPolicy": "{not json"}, "deliveryPolicy is not valid JSON"),
        (SUBSCRIPTION, {"protocol": "pigeon"}, "is not one of"),
        (SUBSCRIPTION, {"protocol": "email", "endpoint": "a@example.com"}, "confirm"),
        (SUBSCRIPTION, {"protocol": "https", "endpoint": "https://example.com"}, "confirm"),
        (SUBSCRIPTION, {"protocol": "sqs", "endpoint": "my-queue"}, "not a sqs endpoint"),
        (SUBSCRIPTION, {"protocol": "sms", "endpoint": "hello"}, "not a sms endpoint"),
        (
            SUBSCRIPTION,
            {
                "protocol": "lambda",
                "endpoint": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f",
                "rawMessageDelivery": True,
            },
            "raw message delivery",
        ),
        (
            SUBSCRIPTION,
            {
                "topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:t.fifo",
                "protocol": "sms",
                "endpoint": "+15555550100",
            },
            "FIFO topic",
        ),
        (SUBSCRIPTION, {"filterPolicy": "{not json"}, "filterPolicy is not valid JSON"),
        (SUBSCRIPTION, {"filterPolicyScope": "Everything"}, "filterPolicyScope"),
        (SUBSCRIPTION, {"redrivePolicy": "{"}, "redrivePolicy is not valid JSON"),
        (QUEUE, {"name": "bad.name"}, "not a valid queue name"),
        (QUEUE, {"name": "q" * 81}, "not a valid queue name"),
        (QUEUE, {"namePrefix": "p" * 50, "fifoQueue": True}, "namePrefix"),
        (QUEUE, {"name": "jobs", "fifoQueue": True}, "must end in .fifo"),
        (QUEUE, {"delaySeconds": 901}, "delaySeconds 901 is outside 0-900"),
        (QUEUE, {"maxMessageSize": 1023}, "outside 1024-1048576"),
        (QUEUE, {"maxMessageSize": 1_048_577}, "outside 1024-1048576"),
        (QUEUE, {"messageRetentionSeconds": 59}, "outside 60-1209600"),
        (QUEUE, {"messageRetentionSeconds": 1_209_601}, "outside 60-1209600"),
        (QUEUE, {"receiveWaitTimeSeconds": 21}, "outside 0-20"),
        (QUEUE, {"visibilityTimeoutSeconds": 43_201}, "outside 0-43200"),
        (QUEUE, {"kmsDataKeyReusePeriodSeconds": 59}, "outside 60-86400"),
        (QUEUE, {"contentBasedDeduplication": True}, "FIFO queues"),
        (QUEUE, {"deduplicationScope": "messageGroup"}, "FIFO queues"),
        (QUEUE, {"fifoQueue": True, "deduplicationScope": "everywhere"}, "is not queue or"),
        (
            QUEUE,
            {
                "fifoQueue": True,
                "fifoThroughputLimit": "perMessageGroupId",
                "deduplicationScope": "queue",
            },
            "needs deduplicationScope messageGroup",
        ),
        (QUEUE, {"kmsMasterKeyId": "alias/k", "sqsManagedSseEnabled": True}, "not both"),
        (QUEUE, {"policy": "{not json"}, "policy is not valid JSON"),
        (QUEUE, {"redrivePolicy": "{"}, "redrivePolicy is not valid JSON"),
        (QUEUE, {"redrivePolicy": json.dumps({"maxReceiveCount": 3})}, "deadLetterTargetArn"),
        (
            QUEUE,
            {"redrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:r:1:d"})},
            "maxReceiveCount",
        ),
        (
            QUEUE,
            {
                "redrivePolicy": json.dumps(
                    {"deadLetterTargetArn": "arn:aws:sqs:r:1:d", "maxReceiveCount": 1001}
                )
            },
            "outside 1-1000",
        ),
        (
            QUEUE,
            {
                "fifoQueue": True,
                "redrivePolicy": json.dumps(
                    {"deadLetterTargetArn": "arn:aws:sqs:r:1:d", "maxReceiveCount": 3}
                ),
            },
            "FIFO too",
        ),
        (QUEUE_POLICY, {"policy": "{not json"}, "policy is not valid JSON"),
        (LOG_GROUP, {"name": "bad name"}, "not a valid log group name"),
        (LOG_GROUP, {"name": "g" * 513}, "not a valid log group name"),
        (LOG_GROUP, {"retentionInDays": 2}, "retentionInDays 2 is not one of"),
        (LOG_GROUP, {"retentionInDays": 4000}, "retentionInDays 4000 is not one of"),
        (LOG_GROUP, {"kmsKeyId": "alias/logs"}, "not a KMS key ARN"),
        (RULE, {"name": "bad name"}, "not a valid rule name"),
        (RULE, {"name": "r" * 65}, "not a valid rule name"),
        (RULE, {"namePrefix": "r" * 39}, "namePrefix"),
        (RULE, {"scheduleExpression": "rate(1 minutes)"}, "singular for 1"),
        (RULE, {"scheduleExpression": "rate(5 minute)"}, "singular for 1"),
        (RULE, {"scheduleExpression": "rate(0 minutes)"}, "positive"),
        (RULE, {"scheduleExpression": "every 5 minutes"}, "neither rate"),
        (RULE, {"scheduleExpression": "cron(0 2 * * *)"}, "neither rate"),
        (RULE, {"scheduleExpression": "cron(0 2 * * * *)"}, "must be '?'"),
        (
            RULE,
            {"scheduleExpression": "rate(5 minutes)", "eventBusName": "orders"},
            "default event bus",
        ),
        (RULE, {"eventPattern": "{not json"}, "eventPattern is not valid JSON"),
        (RULE, {"eventPattern": "[]"}, "JSON object"),
        (RULE, {"state": "PAUSED"}, "state 'PAUSED' is not one of"),
        (RULE, {"state": "ENABLED", "isEnabled": True}, "not both"),
        (RULE, {"description": "d" * 513}, "longer than 512"),
        (RULE, {"roleArn": "events-role"}, "not an IAM role ARN"),
        (TARGET, {"targetId": "bad id"}, "targetId 'bad id'"),
        (TARGET, {"arn": "my-queue"}, "not an ARN"),
        (TARGET, {"roleArn": "arn:aws:iam::123456789012:user/u"}, "not an IAM role ARN"),
        (TARGET, {"input": "{}", "inputPath": "$.detail"}, "not both"),
        (TARGET, {"input": "{not json"}, "input is not valid JSON"),
        (TARGET, {"input": json.dumps({"x": "y" * 8192})}, "longer than 8192"),
        (TARGET, {"inputPath": "detail"}, "not a JSONPath"),
        (TARGET, {"retryPolicy": {"maximumEventAgeInSeconds": 59}}, "outside 60-86400"),
        (TARGET, {"retryPolicy": {"maximumEventAgeInSeconds": 86_401}}, "outside 60-86400"),
        (TARGET, {"retryPolicy": {"maximumRetryAttempts": 186}}, "outside 0-185"),
        (
            TARGET,
            {"deadLetterConfig": {"arn": "arn:aws:sns:us-east-1:123456789012:t"}},
            "not an SQS queue ARN",
        ),
        (
            TARGET,
            {"arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q.fifo", "sqsTarget": {}},
            "needs sqsTarget.messageGroupId",
        ),
        (
            TARGET,
            {"arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q", "sqsTarget": {"messageGroupId": "g"}},
            "FIFO queue targets only",
        ),
    ],
)
def test_what_aws_refuses_is_refused(token: str, inputs: dict[str, Any], reason: str) -> None:
    with pytest.raises(HandlerError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        handler_of(token).validate(inputs)


@pytest.mark.parametrize(
    ("token", "prop"),
    [
        (TOPIC, "signatureVersion"),
        (TOPIC, "tracingConfig"),
        (TOPIC, "archivePolicy"),
        (TOPIC, "sqsSuccessFeedbackRoleArn"),
        (SUBSCRIPTION, "endpointAutoConfirms"),
        (SUBSCRIPTION, "deliveryPolicy"),  # for http(s) subscriptions, which need confirming
        (SUBSCRIPTION, "replayPolicy"),
        (QUEUE, "redriveAllowPolicy"),
        (LOG_GROUP, "logGroupClass"),
        (LOG_GROUP, "deletionProtectionEnabled"),
        (RULE, "forceDestroy"),
        (TARGET, "inputTransformer"),
        (TARGET, "ecsTarget"),
        (TARGET, "kinesisTarget"),
    ],
)
def test_what_the_emulator_does_not_carry_is_refused_by_name(token: str, prop: str) -> None:
    assert handler_of(token).unemulated({prop: "set"}) == [prop]


# --- the emulated cloud survives a dump and a load --------------------------------------


def test_messaging_and_events_survive_a_dump_and_load(
    emu: Emulator, ctx: CloudContext, sns: Any, sqs: Any, logs: Any, events: Any
) -> None:
    url, queue = _create(ctx, QUEUE, {"name": _unique("kept"), "messageRetentionSeconds": 600})
    sqs.send_message(QueueUrl=url, MessageBody="before the dump")
    topic_arn, _ = _create(ctx, TOPIC, {"displayName": "kept"}, "kept")
    sub_arn, _ = _create(
        ctx,
        SUBSCRIPTION,
        {
            "topic": topic_arn,
            "protocol": "sqs",
            "endpoint": queue["arn"],
            "rawMessageDelivery": True,
        },
    )
    group, _ = _create(ctx, LOG_GROUP, {"retentionInDays": 30}, "kept")
    rule_id, rule = _create(ctx, RULE, {"scheduleExpression": "rate(1 day)"}, "kept")
    _create(ctx, TARGET, {"rule": rule["name"], "targetId": "kept", "arn": queue["arn"]})

    emu.load(emu.dump())

    assert _attributes(sqs, url)["MessageRetentionPeriod"] == "600"
    received = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in received] == ["before the dump"]
    assert sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["DisplayName"] == "kept"
    attributes = sns.get_subscription_attributes(SubscriptionArn=sub_arn)["Attributes"]
    assert attributes["RawMessageDelivery"] == "true"
    assert _group(logs, group)["retentionInDays"] == 30
    assert events.describe_rule(Name=rule_id)["ScheduleExpression"] == "rate(1 day)"
    assert [t["Id"] for t in events.list_targets_by_rule(Rule=rule_id)["Targets"]] == ["kept"]
    sns.publish(TopicArn=topic_arn, Message="after the load")
    received = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in received] == ["after the load"]
