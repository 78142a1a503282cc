"""SNS topics and their subscriptions.

The emulator takes topic and subscription attributes AWS refuses: content-based
deduplication on a standard topic, a subscription in a protocol SNS has not got, raw
delivery to a Lambda function, a filter policy that is not JSON (on which it fails
part-way). Those are checked here. Email and HTTP(S) subscriptions wait for their endpoint
to confirm them, which nothing in the sandbox can do: they are refused, and with them a
subscription's delivery policy, which SNS takes for HTTP(S) only. SQS queues and their
policies are in ``queues``.
"""

from __future__ import annotations

import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    check_json_input,
    json_text,
    resource_exists,
    retag,
)
from phasegate.engines.sandbox.handlers.fifo import FIFO, check_fifo_name, fifo_name

__all__ = ["HANDLERS"]

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_GONE = ("NotFound", "NotFoundException")
"""The error codes of a topic or subscription that is not there."""
_TOPIC_ATTRIBUTES = {
    "displayName": "DisplayName",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "deliveryPolicy": "DeliveryPolicy",
}
"""Topic inputs that SetTopicAttributes changes in place, and clears with ""."""


def _bool(value: Any) -> str:
    return "true" if value else "false"


class Topic(Handler):
    type = "aws:sns/topic:Topic"
    emulates = frozenset(
        {
            "contentBasedDeduplication",
            "deliveryPolicy",
            "displayName",
            "fifoTopic",
            "kmsMasterKeyId",
            "name",
            "namePrefix",
            "policy",
            "tags",
        }
    )
    replace_on = frozenset({"fifoTopic", "name", "namePrefix"})
    computed = ("id", "arn", "name", "owner")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        fifo = bool(inputs.get("fifoTopic"))
        check_fifo_name(inputs, fifo, _TOPIC_NAME, 256, "topic")
        if inputs.get("contentBasedDeduplication") and not fifo:
            raise HandlerError("contentBasedDeduplication is for FIFO topics (fifoTopic) only")
        display = inputs.get("displayName")
        if isinstance(display, str) and len(display) > 100:
            raise HandlerError("displayName is longer than 100 characters")
        check_json_input(inputs, "policy")
        check_json_input(inputs, "deliveryPolicy")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        fifo = bool(inputs.get("fifoTopic"))
        topic_name = fifo_name(self, name, inputs, 256, fifo)
        attributes = {
            api: str(inputs[key]) for key, api in _TOPIC_ATTRIBUTES.items() if inputs.get(key)
        }
        if inputs.get("policy"):
            attributes["Policy"] = json_text(inputs["policy"])
        if fifo:
            attributes["FifoTopic"] = "true"
            attributes["ContentBasedDeduplication"] = _bool(inputs.get("contentBasedDeduplication"))
        sns = ctx.client("sns")
        try:
            arn: str = sns.create_topic(
                Name=topic_name, Attributes=attributes, Tags=self.tag_list(inputs.get("tags"))
            )["TopicArn"]
        except Exception as exc:
            raise HandlerError(f"cannot create topic {topic_name}: {exc}") from None
        return arn, {**inputs, "id": arn, "arn": arn, "name": topic_name, "owner": ctx.account_id}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        sns = ctx.client("sns")
        changed = {
            api: str(new.get(key) or "")
            for key, api in _TOPIC_ATTRIBUTES.items()
            if old.get(key) != new.get(key)
        }
        # The provider keeps a policy the program stops declaring (it is computed).
        if new.get("policy") and old.get("policy") != new.get("policy"):
            changed["Policy"] = json_text(new["policy"])
        if old.get("contentBasedDeduplication") != new.get("contentBasedDeduplication"):
            changed["ContentBasedDeduplication"] = _bool(new.get("contentBasedDeduplication"))
        for api, value in changed.items():
            sns.set_topic_attributes(TopicArn=id_, AttributeName=api, AttributeValue=value)
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: sns.tag_resource(ResourceArn=id_, Tags=tags),
            lambda keys: sns.untag_resource(ResourceArn=id_, TagKeys=keys),
        )
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.client("sns").delete_topic(TopicArn=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        sns = ctx.client("sns")
        return resource_exists(lambda: sns.get_topic_attributes(TopicArn=id_), _GONE)


_PROTOCOLS = (
    "application",
    "email",
    "email-json",
    "firehose",
    "http",
    "https",
    "lambda",
    "sms",
    "sqs",
)
"""Every protocol SNS delivers in."""
_CONFIRMED_BY_ENDPOINT = ("email", "email-json", "http", "https")
"""Protocols whose subscription waits for its endpoint to confirm it."""
_ENDPOINTS = {
    "sqs": re.compile(r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$"),
    "lambda": re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_:.-]+$"),
    "firehose": re.compile(r"^arn:aws[a-z-]*:firehose:[a-z0-9-]+:\d{12}:deliverystream/.+$"),
    "application": re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:endpoint/.+$"),
    "sms": re.compile(r"^\+[1-9]\d{1,14}$"),
}
_RAW_DELIVERY = ("sqs", "http", "https", "firehose")
_SUBSCRIPTION_ATTRIBUTES = {
    "filterPolicy": "FilterPolicy",
    "filterPolicyScope": "FilterPolicyScope",
    "redrivePolicy": "RedrivePolicy",
    "subscriptionRoleArn": "SubscriptionRoleArn",
}


class TopicSubscription(Handler):
    type = "aws:sns/topicSubscription:TopicSubscription"
    emulates = frozenset(
        {"endpoint", "protocol", "rawMessageDelivery", "topic", *_SUBSCRIPTION_ATTRIBUTES}
    )
    replace_on = frozenset({"endpoint", "protocol", "topic"})
    computed = ("id", "arn", "ownerId", "confirmationWasAuthenticated", "pendingConfirmation")

    def validate(self, inputs: dict[str, Any]) -> None:
        protocol, endpoint = inputs.get("protocol"), inputs.get("endpoint")
        if isinstance(protocol, str):
            if protocol not in _PROTOCOLS:
                raise HandlerError(f"protocol '{protocol}' is not one of {', '.join(_PROTOCOLS)}")
            if protocol in _CONFIRMED_BY_ENDPOINT:
                raise HandlerError(
                    f"a {protocol} subscription waits for its endpoint to confirm it, which "
                    "the sandbox cannot do"
                )
            shape = _ENDPOINTS[protocol]
            if isinstance(endpoint, str) and not shape.match(endpoint):
                raise HandlerError(f"endpoint '{endpoint}' is not a {protocol} endpoint")
            if inputs.get("rawMessageDelivery") and protocol not in _RAW_DELIVERY:
                raise HandlerError(f"raw message delivery is not possible over {protocol}")
            topic = inputs.get("topic")
            if (
                isinstance(topic, str)
                and topic.endswith(FIFO)
                and protocol in ("sms", "application")
            ):
                raise HandlerError(f"a FIFO topic cannot deliver over {protocol}")
        scope = inputs.get("filterPolicyScope")
        if scope is not None and scope not in ("MessageAttributes", "MessageBody"):
            raise HandlerError(
                f"filterPolicyScope '{scope}' is not MessageAttributes or MessageBody"
            )
        for key in ("filterPolicy", "redrivePolicy"):
            check_json_input(inputs, key)

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        if inputs["protocol"] == "firehose" and not inputs.get("subscriptionRoleArn"):
            raise HandlerError("a firehose subscription needs subscriptionRoleArn")
        attributes = {
            api: json_text(inputs[key])
            for key, api in _SUBSCRIPTION_ATTRIBUTES.items()
            if inputs.get(key)
        }
        if inputs.get("rawMessageDelivery"):
            attributes["RawMessageDelivery"] = "true"
        try:
            arn: str = ctx.client("sns").subscribe(
                TopicArn=inputs["topic"],
                Protocol=inputs["protocol"],
                Endpoint=inputs["endpoint"],
                Attributes=attributes,
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
        except Exception as exc:
            raise HandlerError(f"cannot subscribe to {inputs['topic']}: {exc}") from None
        return arn, {
            **inputs,
            "id": arn,
            "arn": arn,
            "ownerId": ctx.account_id,
            "confirmationWasAuthenticated": True,
            "pendingConfirmation": False,
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        sns = ctx.client("sns")
        changed = {
            api: json_text(new.get(key) or "")
            for key, api in _SUBSCRIPTION_ATTRIBUTES.items()
            if old.get(key) != new.get(key)
        }
        if bool(old.get("rawMessageDelivery")) != bool(new.get("rawMessageDelivery")):
            changed["RawMessageDelivery"] = _bool(new.get("rawMessageDelivery"))
        if "FilterPolicyScope" in changed:  # SNS reads the filter policy in its scope
            changed = {"FilterPolicyScope": changed.pop("FilterPolicyScope"), **changed}
        for api, value in changed.items():
            try:
                sns.set_subscription_attributes(
                    SubscriptionArn=id_, AttributeName=api, AttributeValue=value
                )
            except Exception as exc:
                raise HandlerError(f"cannot set {api} of {id_}: {exc}") from None
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.client("sns").unsubscribe(SubscriptionArn=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        sns = ctx.client("sns")
        return resource_exists(lambda: sns.get_subscription_attributes(SubscriptionArn=id_), _GONE)


HANDLERS: list[Handler] = [Topic(), TopicSubscription()]
