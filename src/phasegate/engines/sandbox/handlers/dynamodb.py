"""DynamoDB tables: keys, capacity, global secondary indexes, TTL, point-in-time
recovery, encryption, streams, tags and deletion protection.

The emulator takes a table whose key attributes are not declared, capacities with
on-demand billing, a stream with no view type and out-of-range numbers; those are checked
here, as DynamoDB and the provider check them. Its API cannot change a table's encryption
or enable a stream again once one was disabled: the handler changes its record of the
table for those, as DynamoDB would.
"""

from __future__ import annotations

import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    emulator_record,
    error_code,
    int_or_none,
    resource_exists,
    retag,
)

__all__ = ["HANDLERS"]

_NAME = re.compile(r"^[a-zA-Z0-9_.-]{3,255}$")
_ATTRIBUTE_TYPES = ("S", "N", "B")
_BILLING = ("PROVISIONED", "PAY_PER_REQUEST")
_PROJECTIONS = ("ALL", "KEYS_ONLY", "INCLUDE")
_STREAM_VIEWS = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
_INDEX_LIMIT = 20
_TAG_LIMIT = 50
_INDEX_FIELDS = frozenset(
    {"name", "hashKey", "rangeKey", "projectionType", "nonKeyAttributes", "readCapacity"}
    | {"writeCapacity"}
)
"""What the sandbox emulates of a global secondary index."""


def _indexes(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in inputs.get("globalSecondaryIndexes") or [] if isinstance(i, dict)]


def _provisioned(inputs: dict[str, Any]) -> bool:
    return inputs.get("billingMode", "PROVISIONED") == "PROVISIONED"


def _throughput(spec: dict[str, Any]) -> dict[str, int]:
    return {
        "ReadCapacityUnits": int(spec.get("readCapacity") or 0),
        "WriteCapacityUnits": int(spec.get("writeCapacity") or 0),
    }


def _key_schema(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def _index_spec(index: dict[str, Any], provisioned: bool) -> dict[str, Any]:
    projection: dict[str, Any] = {"ProjectionType": index["projectionType"]}
    if index.get("nonKeyAttributes"):
        projection["NonKeyAttributes"] = list(index["nonKeyAttributes"])
    spec: dict[str, Any] = {
        "IndexName": index["name"],
        "KeySchema": _key_schema(index["hashKey"], index.get("rangeKey")),
        "Projection": projection,
    }
    if provisioned:
        spec["ProvisionedThroughput"] = _throughput(index)
    return spec


def _attributes(inputs: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"AttributeName": a["name"], "AttributeType": a["type"]}
        for a in inputs.get("attributes") or []
    ]


class Table(Handler):
    type = "aws:dynamodb/table:Table"
    required = frozenset({"hashKey"})
    emulates = frozenset(
        {
            "attributes.name",
            "attributes.type",
            "billingMode",
            "deletionProtectionEnabled",
            *(f"globalSecondaryIndexes.{key}" for key in _INDEX_FIELDS),
            "hashKey",
            "name",
            "pointInTimeRecovery.enabled",
            "pointInTimeRecovery.recoveryPeriodInDays",
            "rangeKey",
            "readCapacity",
            "serverSideEncryption.enabled",
            "serverSideEncryption.kmsKeyArn",
            "streamEnabled",
            "streamViewType",
            "tags",
            "ttl.attributeName",
            "ttl.enabled",
            "writeCapacity",
        }
    )
    replace_on = frozenset({"name", "hashKey", "rangeKey"})
    computed = ("id", "arn", "name", "streamArn", "streamLabel")
    changed_by_update = ("streamArn", "streamLabel")
    name_key = "name"

    # -- validation -------------------------------------------------------------------

    def validate(self, inputs: dict[str, Any]) -> None:
        name = inputs.get("name")
        if isinstance(name, str) and not _NAME.match(name):
            raise HandlerError(
                f"table name '{name}' is not valid: 3-255 characters of a-z, A-Z, 0-9, _ . -"
            )
        billing = inputs.get("billingMode", "PROVISIONED")
        if isinstance(billing, str) and billing not in _BILLING:
            raise HandlerError(f"billingMode '{billing}' is not PROVISIONED or PAY_PER_REQUEST")
        self._check_capacity("the table", inputs, billing)
        declared = self._check_attributes(inputs)
        self._check_indexes(inputs, billing)
        used = {inputs.get("hashKey"), inputs.get("rangeKey")}
        for index in _indexes(inputs):
            used |= {index.get("hashKey"), index.get("rangeKey")}
        used.discard(None)
        if isinstance(inputs.get("attributes"), list):
            missing = sorted(k for k in used if isinstance(k, str) and k not in declared)
            if missing:
                raise HandlerError(
                    f"key attribute(s) {', '.join(missing)} are not declared in attributes"
                )
            unused = sorted(a for a in declared if a not in used)
            if unused:
                raise HandlerError(
                    f"attribute(s) {', '.join(unused)} are declared but no key uses them: "
                    "DynamoDB takes attributes used by the table's or an index's keys only"
                )
        self._check_settings(inputs)

    @staticmethod
    def _check_capacity(what: str, spec: dict[str, Any], billing: Any) -> None:
        for key in ("readCapacity", "writeCapacity"):
            value = int_or_none(spec.get(key))
            if billing == "PROVISIONED" and (value is None or value < 1):
                raise HandlerError(f"{key} of {what} must be 1 or more with PROVISIONED billing")
            if billing == "PAY_PER_REQUEST" and value:
                raise HandlerError(f"{key} of {what} cannot be set with PAY_PER_REQUEST billing")

    @staticmethod
    def _check_attributes(inputs: dict[str, Any]) -> set[str]:
        declared: set[str] = set()
        for attribute in inputs.get("attributes") or []:
            if not isinstance(attribute, dict):
                continue
            name, kind = attribute.get("name"), attribute.get("type")
            if kind not in _ATTRIBUTE_TYPES:
                raise HandlerError(f"attribute {name} has type {kind!r}, not S, N or B")
            if name in declared:
                raise HandlerError(f"attribute {name} is declared twice")
            declared.add(str(name))
        return declared

    def _check_indexes(self, inputs: dict[str, Any], billing: Any) -> None:
        indexes = _indexes(inputs)
        if len(indexes) > _INDEX_LIMIT:
            raise HandlerError(f"a table takes at most {_INDEX_LIMIT} global secondary indexes")
        names: set[str] = set()
        for index in indexes:
            name = index.get("name")
            other = sorted(k for k, v in index.items() if k not in _INDEX_FIELDS and v)
            if other:
                raise HandlerError(
                    f"global secondary index {name}: the sandbox does not emulate "
                    f"{', '.join(other)}"
                )
            if not isinstance(name, str) or not _NAME.match(name):
                raise HandlerError(f"global secondary index name {name!r} is not 3-255 characters")
            if name in names:
                raise HandlerError(f"global secondary index {name} is declared twice")
            names.add(name)
            if not index.get("hashKey"):
                raise HandlerError(f"global secondary index {name} needs a hashKey")
            projection = index.get("projectionType")
            if projection not in _PROJECTIONS:
                raise HandlerError(
                    f"global secondary index {name}: projectionType {projection!r} is not "
                    "ALL, KEYS_ONLY or INCLUDE"
                )
            if index.get("nonKeyAttributes") and projection != "INCLUDE":
                raise HandlerError(
                    f"global secondary index {name}: nonKeyAttributes need projectionType INCLUDE"
                )
            self._check_capacity(f"index {name}", index, billing)

    @staticmethod
    def _check_settings(inputs: dict[str, Any]) -> None:
        ttl = inputs.get("ttl") or {}
        if ttl.get("enabled") and not ttl.get("attributeName"):
            raise HandlerError("ttl needs an attributeName when enabled")
        if len(str(ttl.get("attributeName") or "")) > 255:
            raise HandlerError("ttl attributeName is longer than 255 characters")
        recovery = inputs.get("pointInTimeRecovery") or {}
        period = int_or_none(recovery.get("recoveryPeriodInDays"))
        if period is not None:
            if not recovery.get("enabled"):
                raise HandlerError("pointInTimeRecovery.recoveryPeriodInDays needs it enabled")
            if not 1 <= period <= 35:
                raise HandlerError(f"recoveryPeriodInDays {period} is outside 1-35")
        encryption = inputs.get("serverSideEncryption") or {}
        if encryption.get("kmsKeyArn") and not encryption.get("enabled"):
            raise HandlerError("serverSideEncryption.kmsKeyArn needs encryption enabled")
        view = inputs.get("streamViewType")
        if inputs.get("streamEnabled"):
            if view not in _STREAM_VIEWS:
                raise HandlerError(
                    f"streamViewType {view!r} is not one of {', '.join(_STREAM_VIEWS)} "
                    "(required with streamEnabled)"
                )
        elif view:
            raise HandlerError("streamViewType is set but streamEnabled is not")
        tags = inputs.get("tags")
        if isinstance(tags, dict) and len(tags) > _TAG_LIMIT:
            raise HandlerError(f"a table takes at most {_TAG_LIMIT} tags, not {len(tags)}")

    # -- lifecycle --------------------------------------------------------------------

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ddb = ctx.client("dynamodb")
        table = self.physical_name(name, inputs, max_len=255)
        provisioned = _provisioned(inputs)
        args: dict[str, Any] = {
            "TableName": table,
            "AttributeDefinitions": _attributes(inputs),
            "KeySchema": _key_schema(inputs["hashKey"], inputs.get("rangeKey")),
            "BillingMode": inputs.get("billingMode", "PROVISIONED"),
            "DeletionProtectionEnabled": bool(inputs.get("deletionProtectionEnabled")),
        }
        if provisioned:
            args["ProvisionedThroughput"] = _throughput(inputs)
        if _indexes(inputs):
            args["GlobalSecondaryIndexes"] = [_index_spec(i, provisioned) for i in _indexes(inputs)]
        if inputs.get("streamEnabled"):
            args["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": inputs["streamViewType"],
            }
        encryption = self._encryption(inputs)
        if encryption:
            args["SSESpecification"] = encryption
        if inputs.get("tags"):
            args["Tags"] = self.tag_list(inputs["tags"])
        try:
            created = ddb.create_table(**args)["TableDescription"]
        except Exception as exc:
            raise HandlerError(f"cannot create table '{table}': {exc}") from None
        self._set_ttl(ddb, table, {}, inputs)
        self._set_recovery(ddb, table, {}, inputs)
        outputs = {**inputs, "id": table, "name": table, "arn": created["TableArn"]}
        return table, {**outputs, **self._stream(ddb, table)}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ddb = ctx.client("dynamodb")
        try:
            self._update_capacity(ddb, id_, old, new)
            self._update_indexes(ddb, id_, old, new)
            self._update_stream(ctx, ddb, id_, old, new)
            if self._encryption(old) != self._encryption(new):
                self._update_encryption(ctx, id_, new)
            protection = bool(new.get("deletionProtectionEnabled"))
            if bool(old.get("deletionProtectionEnabled")) != protection:
                ddb.update_table(TableName=id_, DeletionProtectionEnabled=protection)
            self._set_ttl(ddb, id_, old, new)
            self._set_recovery(ddb, id_, old, new)
            arn = outputs["arn"]
            retag(
                old.get("tags"),
                new.get("tags"),
                lambda tags: ddb.tag_resource(ResourceArn=arn, Tags=tags),
                lambda keys: ddb.untag_resource(ResourceArn=arn, TagKeys=keys),
            )
        except HandlerError:
            raise
        except Exception as exc:
            raise HandlerError(f"cannot update table '{id_}': {exc}") from None
        return {**self.updated(new, outputs), **self._stream(ddb, id_)}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("dynamodb").delete_table(TableName=id_)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return
            if "DeletionProtectionEnabled" in str(exc):
                raise HandlerError(
                    f"table '{id_}' has deletion protection: set deletionProtectionEnabled "
                    "to false first"
                ) from None
            raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        ddb = ctx.client("dynamodb")
        return resource_exists(
            lambda: ddb.describe_table(TableName=id_), "ResourceNotFoundException"
        )

    # -- parts of an update -----------------------------------------------------------

    @staticmethod
    def _update_capacity(ddb: Any, table: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        billing = new.get("billingMode", "PROVISIONED")
        changed = old.get("billingMode", "PROVISIONED") != billing
        if _provisioned(new) and (changed or _throughput(old) != _throughput(new)):
            ddb.update_table(
                TableName=table, BillingMode=billing, ProvisionedThroughput=_throughput(new)
            )
        elif changed:
            ddb.update_table(TableName=table, BillingMode=billing)

    @staticmethod
    def _update_indexes(ddb: Any, table: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        """One index created, deleted or changed per call, as DynamoDB takes them; an
        index whose keys or projection change is made again."""
        before = {i["name"]: i for i in _indexes(old)}
        after = {i["name"]: i for i in _indexes(new)}
        provisioned = _provisioned(new)
        keys = ("hashKey", "rangeKey", "projectionType", "nonKeyAttributes")
        for name, index in before.items():
            if name not in after or any(index.get(k) != after[name].get(k) for k in keys):
                ddb.update_table(
                    TableName=table, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": name}}]
                )
        for name, index in after.items():
            old_index = before.get(name)
            if old_index is None or any(old_index.get(k) != index.get(k) for k in keys):
                ddb.update_table(
                    TableName=table,
                    AttributeDefinitions=_attributes(new),
                    GlobalSecondaryIndexUpdates=[{"Create": _index_spec(index, provisioned)}],
                )
            elif provisioned and _throughput(old_index) != _throughput(index):
                update = {"IndexName": name, "ProvisionedThroughput": _throughput(index)}
                ddb.update_table(TableName=table, GlobalSecondaryIndexUpdates=[{"Update": update}])

    def _update_stream(
        self, ctx: CloudContext, ddb: Any, table: str, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        before = (bool(old.get("streamEnabled")), old.get("streamViewType"))
        after = (bool(new.get("streamEnabled")), new.get("streamViewType"))
        if before == after:
            return
        if before[0]:
            ddb.update_table(TableName=table, StreamSpecification={"StreamEnabled": False})
        if after[0]:
            # A new stream, with a new label; the emulator's API refuses one after another.
            self._moto_table(ctx, table).set_stream_specification(
                {"StreamEnabled": True, "StreamViewType": after[1]}
            )

    def _update_encryption(self, ctx: CloudContext, table: str, new: dict[str, Any]) -> None:
        """Encryption as UpdateTable sets it: by DynamoDB's key, or a KMS key (the
        account's aws/dynamodb key unless one is named)."""
        record = self._moto_table(ctx, table)
        spec = self._encryption(new)
        if spec is not None and "KMSMasterKeyId" not in spec:
            spec["KMSMasterKeyId"] = record._get_default_encryption_key(ctx.account_id, ctx.region)
        record.sse_specification = spec

    @staticmethod
    def _set_ttl(ddb: Any, table: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        before, after = old.get("ttl") or {}, new.get("ttl") or {}
        enabled = bool(after.get("enabled"))
        if (bool(before.get("enabled")), before.get("attributeName")) == (
            enabled,
            after.get("attributeName"),
        ):
            return
        if enabled:
            spec = {"Enabled": True, "AttributeName": after["attributeName"]}
        elif before.get("enabled"):
            spec = {"Enabled": False, "AttributeName": before["attributeName"]}
        else:
            return
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification=spec)

    @staticmethod
    def _set_recovery(ddb: Any, table: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        before, after = old.get("pointInTimeRecovery") or {}, new.get("pointInTimeRecovery") or {}
        if (bool(before.get("enabled")), before.get("recoveryPeriodInDays")) == (
            bool(after.get("enabled")),
            after.get("recoveryPeriodInDays"),
        ):
            return
        spec: dict[str, Any] = {"PointInTimeRecoveryEnabled": bool(after.get("enabled"))}
        if after.get("recoveryPeriodInDays"):
            spec["RecoveryPeriodInDays"] = int(after["recoveryPeriodInDays"])
        ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification=spec)

    @staticmethod
    def _encryption(inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The SSESpecification declared; None: DynamoDB's own key, the default."""
        spec = inputs.get("serverSideEncryption") or {}
        if not spec.get("enabled"):
            return None
        out: dict[str, Any] = {"Enabled": True, "SSEType": "KMS"}
        if spec.get("kmsKeyArn"):
            out["KMSMasterKeyId"] = spec["kmsKeyArn"]
        return out

    @staticmethod
    def _stream(ddb: Any, table: str) -> dict[str, str]:
        found = ddb.describe_table(TableName=table)["Table"]
        enabled = (found.get("StreamSpecification") or {}).get("StreamEnabled")
        return {
            "streamArn": found.get("LatestStreamArn", "") if enabled else "",
            "streamLabel": found.get("LatestStreamLabel", "") if enabled else "",
        }

    @staticmethod
    def _moto_table(ctx: CloudContext, table: str) -> Any:
        from phasegate.engines.sandbox.emulator import dynamodb_table

        return emulator_record(dynamodb_table, ctx, table, "table")


HANDLERS: list[Handler] = [Table()]
