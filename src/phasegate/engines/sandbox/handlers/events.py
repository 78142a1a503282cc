"""CloudWatch Logs log groups, and EventBridge rules and their targets.

The emulator takes any log group name and retention, rule names and states EventBridge
has not got, ``rate(1 minutes)``, target input that is not JSON and a FIFO queue target
without a message group; those are checked here. It cannot associate a KMS key with an
existing log group, so a key change is made on its own record of the group. A log
group's key must exist in the emulated KMS, as CloudWatch Logs refuses a key it cannot
use.
"""

from __future__ import annotations

import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    check_json_input,
    check_name,
    emulator_record,
    error_code,
    generated_name,
    int_or_none,
    json_document,
    prefixed_name,
    resource_exists,
    retag,
)
from phasegate.engines.sandbox.handlers.fifo import FIFO

__all__ = ["HANDLERS"]

_LOG_GROUP_NAME = re.compile(r"^[.\-_/#A-Za-z0-9]+$")
_RETENTION_DAYS = (
    0,
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
"""What CloudWatch Logs keeps events for; 0 is the provider's "never expire"."""
_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key/[A-Za-z0-9-]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")


def _log_group_arn(ctx: CloudContext, name: str) -> str:
    return f"arn:aws:logs:{ctx.region}:{ctx.account_id}:log-group:{name}"


class LogGroup(Handler):
    type = "aws:cloudwatch/logGroup:LogGroup"
    emulates = frozenset(
        {"kmsKeyId", "name", "namePrefix", "retentionInDays", "skipDestroy", "tags"}
    )
    replace_on = frozenset({"name", "namePrefix"})
    computed = ("id", "arn", "name")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        check_name(inputs, _LOG_GROUP_NAME, 512, "log group")
        days = inputs.get("retentionInDays")
        if days is not None and (int_or_none(days) is None or days not in _RETENTION_DAYS):
            raise HandlerError(
                f"retentionInDays {days} is not one of {', '.join(map(str, _RETENTION_DAYS))}"
            )
        key = inputs.get("kmsKeyId")
        if isinstance(key, str) and key and not _KEY_ARN.match(key):
            raise HandlerError(
                f"kmsKeyId '{key}' is not a KMS key ARN (CloudWatch Logs takes ARNs)"
            )

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        group = generated_name(self, name, inputs, 512)
        logs = ctx.client("logs")
        args: dict[str, Any] = {"logGroupName": group}
        if inputs.get("kmsKeyId"):
            args["kmsKeyId"] = self._usable_key(ctx, inputs["kmsKeyId"])
        if inputs.get("tags"):
            args["tags"] = {k: str(v) for k, v in inputs["tags"].items()}
        try:
            logs.create_log_group(**args)
        except Exception as exc:
            raise HandlerError(f"cannot create log group {group}: {exc}") from None
        if inputs.get("retentionInDays"):
            logs.put_retention_policy(logGroupName=group, retentionInDays=inputs["retentionInDays"])
        return group, {**inputs, "id": group, "name": group, "arn": _log_group_arn(ctx, group)}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        logs = ctx.client("logs")
        days = new.get("retentionInDays") or 0
        if (old.get("retentionInDays") or 0) != days:
            if days:
                logs.put_retention_policy(logGroupName=id_, retentionInDays=days)
            else:
                logs.delete_retention_policy(logGroupName=id_)
        if old.get("kmsKeyId") != new.get("kmsKeyId"):
            key = self._usable_key(ctx, new["kmsKeyId"]) if new.get("kmsKeyId") else None
            self._record(ctx, id_).kms_key_id = key  # AssociateKmsKey, DisassociateKmsKey
        arn = _log_group_arn(ctx, id_)
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: logs.tag_resource(
                resourceArn=arn, tags={t["Key"]: t["Value"] for t in tags}
            ),
            lambda keys: logs.untag_resource(resourceArn=arn, tagKeys=keys),
        )
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        if outputs.get("skipDestroy"):
            return  # the provider forgets the group and leaves it in the cloud
        try:
            ctx.client("logs").delete_log_group(logGroupName=id_)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        pages = ctx.client("logs").get_paginator("describe_log_groups")
        found = pages.paginate(logGroupNamePrefix=id_)
        return any(g["logGroupName"] == id_ for page in found for g in page["logGroups"])

    @staticmethod
    def _usable_key(ctx: CloudContext, key_arn: str) -> str:
        """The key ARN, if the key is one CloudWatch Logs here can encrypt with."""
        match = _KEY_ARN.match(key_arn)
        if match is None or match.group(1) != ctx.region:
            raise HandlerError(f"kmsKeyId {key_arn} is not a KMS key in {ctx.region}")
        try:
            key = ctx.client("kms").describe_key(KeyId=key_arn)["KeyMetadata"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                raise HandlerError(f"KMS key {key_arn} does not exist") from None
            raise
        if key["KeyState"] != "Enabled":
            raise HandlerError(f"KMS key {key_arn} is {key['KeyState']}, not Enabled")
        return key_arn

    @staticmethod
    def _record(ctx: CloudContext, group: str) -> Any:
        from phasegate.engines.sandbox.emulator import log_group

        return emulator_record(log_group, ctx, group, "log group")


_RULE_NAME = re.compile(r"^[.\-_A-Za-z0-9]+$")
_STATES = ("ENABLED", "DISABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_DEFAULT_BUS = "default"


def _check_schedule(expression: str) -> None:
    rate, cron = _RATE.match(expression), _CRON.match(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1 or (value == 1) == unit.endswith("s"):
            raise HandlerError(
                f"scheduleExpression '{expression}': a rate is a positive number and a unit, "
                "singular for 1 (rate(1 hour)) and plural otherwise (rate(5 minutes))"
            )
        return
    fields = cron.group(1).split() if cron else []
    if len(fields) != 6:
        raise HandlerError(
            f"scheduleExpression '{expression}' is neither rate(value unit) nor "
            "cron(minutes hours day-of-month month day-of-week year)"
        )
    if (fields[2] == "?") == (fields[4] == "?"):
        raise HandlerError(
            f"scheduleExpression '{expression}': one of day-of-month and day-of-week must be '?'"
        )


def _bus(inputs: dict[str, Any]) -> str:
    return str(inputs.get("eventBusName") or _DEFAULT_BUS)


class EventRule(Handler):
    type = "aws:cloudwatch/eventRule:EventRule"
    emulates = frozenset(
        {
            "description",
            "eventBusName",
            "eventPattern",
            "isEnabled",
            "name",
            "namePrefix",
            "roleArn",
            "scheduleExpression",
            "state",
            "tags",
        }
    )
    replace_on = frozenset({"eventBusName", "name", "namePrefix"})
    computed = ("id", "arn", "name")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        check_name(inputs, _RULE_NAME, 64, "rule")
        schedule, pattern = inputs.get("scheduleExpression"), inputs.get("eventPattern")
        if isinstance(schedule, str) and schedule:
            _check_schedule(schedule)
            if _bus(inputs) != _DEFAULT_BUS:
                raise HandlerError("scheduleExpression is for rules on the default event bus only")
        if isinstance(pattern, str) and pattern:
            parsed = json_document(pattern, "eventPattern")
            if not isinstance(parsed, dict) or not parsed:
                raise HandlerError("eventPattern must be a JSON object that matches something")
        state = inputs.get("state")
        if state is not None and state not in _STATES:
            raise HandlerError(f"state '{state}' is not one of {', '.join(_STATES)}")
        if state is not None and inputs.get("isEnabled") is not None:
            raise HandlerError("give state or isEnabled, not both")
        description = inputs.get("description")
        if isinstance(description, str) and len(description) > 512:
            raise HandlerError("description is longer than 512 characters")
        role = inputs.get("roleArn")
        if isinstance(role, str) and role and not _ROLE_ARN.match(role):
            raise HandlerError(f"roleArn '{role}' is not an IAM role ARN")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        rule = generated_name(self, name, inputs, 64)
        arn = self._put(ctx, rule, inputs, tags=self.tag_list(inputs.get("tags")))
        bus = _bus(inputs)
        id_ = rule if bus == _DEFAULT_BUS else f"{bus}/{rule}"  # as the provider names it
        return id_, {**inputs, "id": id_, "name": rule, "arn": arn}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        self._put(ctx, outputs["name"], new, tags=[])
        events, arn = ctx.client("events"), outputs["arn"]
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: events.tag_resource(ResourceARN=arn, Tags=tags),
            lambda keys: events.untag_resource(ResourceARN=arn, TagKeys=keys),
        )
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("events").delete_rule(Name=outputs["name"], EventBusName=_bus(outputs))
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return
            raise HandlerError(f"cannot delete rule {outputs['name']}: {exc}") from None

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        events, rule, bus = ctx.client("events"), outputs["name"], _bus(outputs)
        return resource_exists(
            lambda: events.describe_rule(Name=rule, EventBusName=bus), "ResourceNotFoundException"
        )

    @staticmethod
    def _put(
        ctx: CloudContext, rule: str, inputs: dict[str, Any], tags: list[dict[str, str]]
    ) -> str:
        """PutRule, which makes the rule or sets all of it again; the rule's ARN."""
        if inputs.get("isEnabled") is False:
            state = "DISABLED"
        else:
            state = str(inputs.get("state") or "ENABLED")
        request: dict[str, Any] = {"Name": rule, "EventBusName": _bus(inputs), "State": state}
        for key, api in (
            ("scheduleExpression", "ScheduleExpression"),
            ("eventPattern", "EventPattern"),
            ("description", "Description"),
            ("roleArn", "RoleArn"),
        ):
            if inputs.get(key):
                request[api] = inputs[key]
        if tags:
            request["Tags"] = tags
        try:
            arn: str = ctx.client("events").put_rule(**request)["RuleArn"]
        except Exception as exc:
            raise HandlerError(f"cannot put rule {rule}: {exc}") from None
        return arn


_TARGET_ID = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
_TARGETS_PER_RULE = 5
_RETRY_RANGES = (("maximumEventAgeInSeconds", 60, 86_400), ("maximumRetryAttempts", 0, 185))
_QUEUE_ARN = re.compile(r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$")


class EventTarget(Handler):
    type = "aws:cloudwatch/eventTarget:EventTarget"
    emulates = frozenset(
        {
            "arn",
            "deadLetterConfig.arn",
            "eventBusName",
            "input",
            "inputPath",
            *(f"retryPolicy.{key}" for key, _, _ in _RETRY_RANGES),
            "roleArn",
            "rule",
            "sqsTarget.messageGroupId",
            "targetId",
        }
    )
    replace_on = frozenset({"eventBusName", "rule", "targetId"})
    computed = ("id", "targetId")

    def validate(self, inputs: dict[str, Any]) -> None:
        target_id = inputs.get("targetId")
        if isinstance(target_id, str) and not _TARGET_ID.match(target_id):
            raise HandlerError(
                f"targetId '{target_id}' must be 1-64 characters of a-z, A-Z, 0-9, ., - and _"
            )
        arn = inputs.get("arn")
        if isinstance(arn, str) and not arn.startswith("arn:"):
            raise HandlerError(f"arn '{arn}' is not an ARN")
        role = inputs.get("roleArn")
        if isinstance(role, str) and role and not _ROLE_ARN.match(role):
            raise HandlerError(f"roleArn '{role}' is not an IAM role ARN")
        given, path = inputs.get("input"), inputs.get("inputPath")
        if given and path:
            raise HandlerError("give input or inputPath, not both")
        if isinstance(given, str) and given:
            if len(given) > 8192:
                raise HandlerError("input is longer than 8192 characters")
            check_json_input(inputs, "input")
        if isinstance(path, str) and path and (len(path) > 256 or not path.startswith("$")):
            raise HandlerError(f"inputPath '{path}' is not a JSONPath of up to 256 characters")
        self._check_delivery(inputs)

    @staticmethod
    def _check_delivery(inputs: dict[str, Any]) -> None:
        """The retry policy's ranges, the dead-letter queue, a FIFO queue's message group."""
        retry = inputs.get("retryPolicy") or {}
        for key, least, most in _RETRY_RANGES:
            value = int_or_none(retry.get(key))
            if value is not None and not least <= value <= most:
                raise HandlerError(f"retryPolicy.{key} {value} is outside {least}-{most}")
        dead = (inputs.get("deadLetterConfig") or {}).get("arn")
        if isinstance(dead, str) and dead and not _QUEUE_ARN.match(dead):
            raise HandlerError(f"deadLetterConfig.arn '{dead}' is not an SQS queue ARN")
        arn, group = inputs.get("arn"), (inputs.get("sqsTarget") or {}).get("messageGroupId")
        fifo = isinstance(arn, str) and _QUEUE_ARN.match(arn) and arn.endswith(FIFO)
        if fifo and "sqsTarget" in inputs and not group:
            raise HandlerError("a FIFO queue target needs sqsTarget.messageGroupId")
        if group and isinstance(arn, str) and not fifo:
            raise HandlerError("sqsTarget.messageGroupId is for FIFO queue targets only")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        self._check_delivery({"sqsTarget": {}, **inputs})  # every input known now
        # The provider's own unique id when the program gives none.
        target_id = str(inputs.get("targetId") or prefixed_name("terraform-"))
        rule, bus = inputs["rule"], _bus(inputs)
        present = self._targets(ctx, rule, bus)
        if len({*present, target_id}) > _TARGETS_PER_RULE:
            raise HandlerError(f"rule {rule} has {len(present)} targets; a rule takes 5")
        self._put(ctx, {**inputs, "targetId": target_id})
        id_ = f"{rule}-{target_id}" if bus == _DEFAULT_BUS else f"{bus}/{rule}/{target_id}"
        return id_, {**inputs, "id": id_, "targetId": target_id}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        self._check_delivery({"sqsTarget": {}, **new})
        self._put(ctx, {**new, "targetId": outputs["targetId"]})
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("events").remove_targets(
                Rule=outputs["rule"], EventBusName=_bus(outputs), Ids=[outputs["targetId"]]
            )
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            present = self._targets(ctx, outputs["rule"], _bus(outputs))
        except HandlerError:
            return False
        return outputs["targetId"] in present

    @staticmethod
    def _targets(ctx: CloudContext, rule: str, bus: str) -> dict[str, dict[str, Any]]:
        """The rule's targets by id; HandlerError if there is no such rule."""
        try:
            found = ctx.client("events").list_targets_by_rule(Rule=rule, EventBusName=bus)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise HandlerError(f"rule {rule} does not exist on event bus {bus}") from None
            raise
        return {t["Id"]: t for t in found["Targets"]}

    @staticmethod
    def _put(ctx: CloudContext, inputs: dict[str, Any]) -> None:
        """PutTargets, which adds the target or sets all of it again."""
        target: dict[str, Any] = {"Id": inputs["targetId"], "Arn": inputs["arn"]}
        for key, api in (("input", "Input"), ("inputPath", "InputPath"), ("roleArn", "RoleArn")):
            if inputs.get(key):
                target[api] = inputs[key]
        retry = {
            api: retry_value
            for key, api in (
                ("maximumEventAgeInSeconds", "MaximumEventAgeInSeconds"),
                ("maximumRetryAttempts", "MaximumRetryAttempts"),
            )
            if (retry_value := (inputs.get("retryPolicy") or {}).get(key)) is not None
        }
        if retry:
            target["RetryPolicy"] = retry
        if (inputs.get("deadLetterConfig") or {}).get("arn"):
            target["DeadLetterConfig"] = {"Arn": inputs["deadLetterConfig"]["arn"]}
        if (inputs.get("sqsTarget") or {}).get("messageGroupId"):
            target["SqsParameters"] = {"MessageGroupId": inputs["sqsTarget"]["messageGroupId"]}
        try:
            answer = ctx.client("events").put_targets(
                Rule=inputs["rule"], EventBusName=_bus(inputs), Targets=[target]
            )
        except Exception as exc:
            raise HandlerError(f"cannot put target on rule {inputs['rule']}: {exc}") from None
        for failed in answer.get("FailedEntries") or []:
            raise HandlerError(f"target {failed.get('TargetId')}: {failed.get('ErrorMessage')}")


HANDLERS: list[Handler] = [LogGroup(), EventRule(), EventTarget()]
