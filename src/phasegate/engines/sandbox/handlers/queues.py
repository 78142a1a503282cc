"""SQS queues and queue policies.

The emulator takes attribute values outside SQS's ranges (a delay of an hour), the FIFO
attributes on a standard queue and a dead-letter queue of the other kind; SQS refuses
them, and so do the checks here. A queue is made with the provider's defaults for what
the program leaves out, as the provider sends them (256 KiB messages, kept four days).
"""

from __future__ import annotations

import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    check_json_input,
    error_code,
    int_or_none,
    json_document,
    json_text,
    resource_exists,
    retag,
)
from phasegate.engines.sandbox.handlers.fifo import FIFO, check_fifo_name, fifo_name

__all__ = ["HANDLERS"]

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_GONE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_NUMBERS: dict[str, tuple[str, int, int, int | None]] = {
    "delaySeconds": ("DelaySeconds", 0, 900, 0),
    "maxMessageSize": ("MaximumMessageSize", 1024, 1_048_576, 262_144),
    "messageRetentionSeconds": ("MessageRetentionPeriod", 60, 1_209_600, 345_600),
    "receiveWaitTimeSeconds": ("ReceiveMessageWaitTimeSeconds", 0, 20, 0),
    "visibilityTimeoutSeconds": ("VisibilityTimeout", 0, 43_200, 30),
    "kmsDataKeyReusePeriodSeconds": ("KmsDataKeyReusePeriodSeconds", 60, 86_400, None),
}
"""Numeric input -> (attribute, least, most, the provider's default; None: SQS's own,
and left as it is when the program stops declaring it)."""
_CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "deduplicationScope": ("DeduplicationScope", ("queue", "messageGroup")),
    "fifoThroughputLimit": ("FifoThroughputLimit", ("perQueue", "perMessageGroupId")),
}
"""A FIFO queue's input -> (attribute, its values, the default first)."""
_FIFO_ONLY = ("contentBasedDeduplication", *_CHOICES)
_TEXTS = {"policy": "Policy", "redrivePolicy": "RedrivePolicy", "kmsMasterKeyId": "KmsMasterKeyId"}
"""Inputs whose attribute an empty string clears."""


def _attributes(inputs: dict[str, Any]) -> dict[str, str]:
    """The queue attributes the inputs declare, with the provider's defaults."""
    attributes = {
        api: str(inputs[key] if inputs.get(key) is not None else default)
        for key, (api, _, _, default) in _NUMBERS.items()
        if inputs.get(key) is not None or default is not None
    }
    for key, api in _TEXTS.items():
        attributes[api] = json_text(inputs[key]) if inputs.get(key) else ""
    if inputs.get("fifoQueue"):
        attributes["ContentBasedDeduplication"] = str(
            bool(inputs.get("contentBasedDeduplication"))
        ).lower()
        for key, (api, choices) in _CHOICES.items():
            attributes[api] = str(inputs.get(key) or choices[0])
    if inputs.get("sqsManagedSseEnabled") is not None:
        attributes["SqsManagedSseEnabled"] = str(bool(inputs["sqsManagedSseEnabled"])).lower()
    elif inputs.get("kmsMasterKeyId"):
        attributes["SqsManagedSseEnabled"] = "false"  # a KMS key replaces SQS's own
    return attributes


def _check_throughput(inputs: dict[str, Any]) -> None:
    if inputs.get("fifoThroughputLimit") == "perMessageGroupId" and (
        inputs.get("deduplicationScope") != "messageGroup"
    ):
        raise HandlerError(
            "fifoThroughputLimit perMessageGroupId needs deduplicationScope messageGroup"
        )


class Queue(Handler):
    type = "aws:sqs/queue:Queue"
    emulates = frozenset(
        {
            "contentBasedDeduplication",
            "fifoQueue",
            "kmsMasterKeyId",
            "name",
            "namePrefix",
            "policy",
            "redrivePolicy",
            "sqsManagedSseEnabled",
            "tags",
            *_CHOICES,
            *_NUMBERS,
        }
    )
    replace_on = frozenset({"fifoQueue", "name", "namePrefix"})
    computed = ("id", "arn", "name", "url")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        fifo = bool(inputs.get("fifoQueue"))
        check_fifo_name(inputs, fifo, _QUEUE_NAME, 80, "queue")
        for key, (_, least, most, _) in _NUMBERS.items():
            value = int_or_none(inputs.get(key))
            if value is not None and not least <= value <= most:
                raise HandlerError(f"{key} {value} is outside {least}-{most}")
        for key, (_, choices) in _CHOICES.items():
            value = inputs.get(key)
            if value is not None and value not in choices:
                raise HandlerError(f"{key} '{value}' is not {' or '.join(choices)}")
        set_fifo_only = [k for k in _FIFO_ONLY if inputs.get(k)]
        if set_fifo_only and not fifo:
            raise HandlerError(f"{', '.join(set_fifo_only)}: for FIFO queues (fifoQueue) only")
        if "deduplicationScope" in inputs:  # else it may be unknown until the apply
            _check_throughput(inputs)
        if inputs.get("kmsMasterKeyId") and inputs.get("sqsManagedSseEnabled"):
            raise HandlerError("give kmsMasterKeyId or sqsManagedSseEnabled, not both")
        check_json_input(inputs, "policy")
        self._check_redrive(inputs.get("redrivePolicy"), fifo)

    @staticmethod
    def _check_redrive(policy: Any, fifo: bool) -> None:
        if not isinstance(policy, str) or not policy:
            return
        redrive = json_document(policy, "redrivePolicy")
        target, count = redrive.get("deadLetterTargetArn"), redrive.get("maxReceiveCount")
        if not isinstance(target, str) or ":sqs:" not in target:
            raise HandlerError("redrivePolicy needs deadLetterTargetArn, an SQS queue's ARN")
        if int_or_none(count) is None and not (isinstance(count, str) and count.isdigit()):
            raise HandlerError("redrivePolicy needs maxReceiveCount, a whole number")
        if not 1 <= int(count) <= 1000:
            raise HandlerError(f"redrivePolicy maxReceiveCount {count} is outside 1-1000")
        if target.endswith(FIFO) != fifo:
            kind = "FIFO" if fifo else "standard"
            raise HandlerError(f"the dead-letter queue of a {kind} queue must be {kind} too")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        _check_throughput(inputs)
        fifo = bool(inputs.get("fifoQueue"))
        queue_name = fifo_name(self, name, inputs, 80, fifo)
        attributes = {k: v for k, v in _attributes(inputs).items() if v}
        if fifo:
            attributes["FifoQueue"] = "true"
        sqs = ctx.client("sqs")
        try:
            url: str = sqs.create_queue(
                QueueName=queue_name,
                Attributes=attributes,
                tags={k: str(v) for k, v in (inputs.get("tags") or {}).items()},
            )["QueueUrl"]
        except Exception as exc:
            raise HandlerError(f"cannot create queue {queue_name}: {exc}") from None
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return url, {**inputs, "id": url, "url": url, "arn": arn, "name": queue_name}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        _check_throughput(new)
        sqs = ctx.client("sqs")
        before, after = _attributes(old), _attributes(new)
        changed = {k: v for k, v in after.items() if before.get(k) != v}
        if not new.get("policy"):  # the provider keeps a policy no longer declared (computed)
            changed.pop("Policy", None)
        if changed:
            try:
                sqs.set_queue_attributes(QueueUrl=id_, Attributes=changed)
            except Exception as exc:
                raise HandlerError(f"cannot change queue {id_}: {exc}") from None
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: sqs.tag_queue(QueueUrl=id_, Tags={t["Key"]: t["Value"] for t in tags}),
            lambda keys: sqs.untag_queue(QueueUrl=id_, TagKeys=keys),
        )
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("sqs").delete_queue(QueueUrl=id_)
        except Exception as exc:
            if error_code(exc) not in _GONE:
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        return _queue_exists(ctx, id_)


def _queue_exists(ctx: CloudContext, url: str) -> bool:
    sqs = ctx.client("sqs")
    return resource_exists(
        lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]), _GONE
    )


class QueuePolicy(Handler):
    type = "aws:sqs/queuePolicy:QueuePolicy"
    emulates = frozenset({"policy", "queueUrl"})
    replace_on = frozenset({"queueUrl"})
    computed = ("id",)

    def validate(self, inputs: dict[str, Any]) -> None:
        if "policy" in inputs and not inputs["policy"]:
            raise HandlerError("policy is required")
        check_json_input(inputs, "policy")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        self._put(ctx, inputs["queueUrl"], json_text(inputs["policy"]))
        return inputs["queueUrl"], {**inputs, "id": inputs["queueUrl"]}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        self._put(ctx, id_, json_text(new["policy"]))
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("sqs").set_queue_attributes(QueueUrl=id_, Attributes={"Policy": ""})
        except Exception as exc:
            if error_code(exc) not in _GONE:
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        if not _queue_exists(ctx, id_):
            return False
        found = ctx.client("sqs").get_queue_attributes(QueueUrl=id_, AttributeNames=["Policy"])
        return bool(found.get("Attributes", {}).get("Policy"))

    @staticmethod
    def _put(ctx: CloudContext, url: str, policy: str) -> None:
        try:
            ctx.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
        except Exception as exc:
            if error_code(exc) in _GONE:
                raise HandlerError(f"queue {url} does not exist") from None
            raise HandlerError(f"cannot set the policy of {url}: {exc}") from None


HANDLERS: list[Handler] = [Queue(), QueuePolicy()]
