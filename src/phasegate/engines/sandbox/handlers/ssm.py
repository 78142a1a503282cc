"""SSM parameters: configuration a program publishes for others to read.

A parameter's value is a secret of the run (the SDK sends it as one, of any type), so the
checkpoint and the cloud's snapshot keep it sealed (``sealing``, ``cloud_secrets``); an
``insecureValue`` is not, and stays as it is.

The emulator takes names, values and patterns SSM refuses; they are checked here, as is
the tier: a parameter cannot move down from Advanced to Standard, so that change replaces
it, as the provider does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    ProviderDiff,
    RunContext,
    error_code,
    resource_exists,
    retag,
)

__all__ = ["HANDLERS"]

_NAME = re.compile(r"^[a-zA-Z0-9_.\-/]+$")
_NAME_LIMIT = 1011
_LEVELS = 15
_TYPES = ("String", "StringList", "SecureString")
_TIERS = ("Standard", "Advanced", "Intelligent-Tiering")
_VALUE_LIMIT = {"Standard": 4096, "Advanced": 8192, "Intelligent-Tiering": 8192}
_DATA_TYPES = ("text", "aws:ec2:image")
_IMAGE_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")


def _value(inputs: Mapping[str, Any]) -> Any:
    """The parameter's value, from whichever of the two value inputs is set."""
    return inputs.get("value") if inputs.get("value") is not None else inputs.get("insecureValue")


class Parameter(Handler):
    type = "aws:ssm/parameter:Parameter"
    required = frozenset({"type"})
    emulates = frozenset(
        {
            "allowedPattern",
            "dataType",
            "description",
            "insecureValue",
            "keyId",
            "name",
            "overwrite",
            "tags",
            "tier",
            "type",
            "value",
        }
    )
    replace_on = frozenset({"name", "dataType"})
    computed = ("id", "arn", "name", "version", "tier")
    changed_by_update = ("version",)
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        self._check_name(inputs.get("name"))
        kind = inputs.get("type")
        if isinstance(kind, str) and kind not in _TYPES:
            raise HandlerError(f"type '{kind}' is not String, StringList or SecureString")
        if inputs.get("value") is not None and inputs.get("insecureValue") is not None:
            raise HandlerError("value and insecureValue cannot both be set")
        if kind == "SecureString" and inputs.get("insecureValue") is not None:
            raise HandlerError("insecureValue cannot hold a SecureString parameter's value")
        if inputs.get("keyId") and kind not in ("SecureString", None):
            raise HandlerError("keyId encrypts SecureString parameters only")
        tier = inputs.get("tier", "Standard")
        if isinstance(tier, str) and tier not in _TIERS:
            raise HandlerError(f"tier '{tier}' is not one of {', '.join(_TIERS)}")
        data_type = inputs.get("dataType", "text")
        if isinstance(data_type, str) and data_type not in _DATA_TYPES:
            raise HandlerError(
                f"dataType '{data_type}' is not text or aws:ec2:image (aws:ssm:integration "
                "is for SecureString parameters, which the sandbox does not emulate)"
            )
        description = inputs.get("description")
        if isinstance(description, str) and len(description) > 1024:
            raise HandlerError("description is longer than 1024 characters")
        pattern = inputs.get("allowedPattern")
        if isinstance(pattern, str):
            if len(pattern) > 1024:
                raise HandlerError("allowedPattern is longer than 1024 characters")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise HandlerError(f"allowedPattern is not a regular expression: {exc}") from None
        value = _value(inputs)
        if isinstance(value, str):
            self._check_value(value, tier, data_type, pattern)

    @staticmethod
    def _check_name(name: Any) -> None:
        if not isinstance(name, str):
            return
        if not _NAME.match(name) or len(name) > _NAME_LIMIT:
            raise HandlerError(
                f"parameter name '{name}' is not valid: up to {_NAME_LIMIT} characters of "
                "a-z, A-Z, 0-9 and _ . - /"
            )
        if "/" in name and not name.startswith("/"):
            raise HandlerError(f"parameter name '{name}' has a path, so it must start with '/'")
        if name.count("/") > _LEVELS:
            raise HandlerError(f"parameter name '{name}' is more than {_LEVELS} levels deep")
        if name.lstrip("/").lower().startswith(("aws", "ssm")):
            raise HandlerError(
                f"parameter name '{name}': names starting with aws or ssm are reserved"
            )

    @staticmethod
    def _check_value(value: str, tier: Any, data_type: Any, pattern: Any) -> None:
        if not value:
            raise HandlerError("the parameter's value cannot be empty")
        limit = _VALUE_LIMIT.get(str(tier), 4096)
        if len(value.encode()) > limit:
            raise HandlerError(
                f"the parameter's value is larger than the {tier} tier's {limit} bytes"
            )
        if data_type == "aws:ec2:image" and not _IMAGE_ID.match(value):
            raise HandlerError(f"dataType aws:ec2:image needs an AMI id as value, not '{value}'")
        if isinstance(pattern, str) and not re.fullmatch(pattern, value):
            raise HandlerError(f"the parameter's value does not match allowedPattern {pattern}")

    def diff(
        self, run: RunContext, id_: str, old_outputs: dict[str, Any], new: dict[str, Any]
    ) -> ProviderDiff | None:
        if old_outputs.get("tier") == "Advanced" and new.get("tier", "Standard") == "Standard":
            # SSM keeps an advanced parameter advanced: the provider makes it again.
            return ProviderDiff(changes=None, replaces=("tier",))
        return None

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        if _value(inputs) is None:
            raise HandlerError("a parameter needs value or insecureValue")
        ssm = ctx.client("ssm")
        param = self.physical_name(name, inputs, max_len=_NAME_LIMIT)
        overwrite = bool(inputs.get("overwrite"))
        self._put(ssm, param, inputs, overwrite=overwrite)
        if inputs.get("tags"):
            # SSM takes tags with a new parameter only, not when overwriting one.
            ssm.add_tags_to_resource(
                ResourceType="Parameter", ResourceId=param, Tags=self.tag_list(inputs["tags"])
            )
        found = ssm.get_parameter(Name=param)["Parameter"]  # its ARN and version: no value
        return param, {
            **inputs,
            "id": param,
            "name": param,
            "arn": found["ARN"],
            "version": found["Version"],
            "tier": inputs.get("tier", "Standard"),
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ssm = ctx.client("ssm")
        fields = (
            "type",
            "value",
            "insecureValue",
            "description",
            "allowedPattern",
            "tier",
            "keyId",
        )
        if any(old.get(k) != new.get(k) for k in fields):
            self._put(ssm, id_, new, overwrite=True)
        where = {"ResourceType": "Parameter", "ResourceId": id_}
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: ssm.add_tags_to_resource(**where, Tags=tags),
            lambda keys: ssm.remove_tags_from_resource(**where, TagKeys=keys),
        )
        version = ssm.get_parameter(Name=id_)["Parameter"]["Version"]
        return {
            **self.updated(new, outputs),
            "version": version,
            "tier": new.get("tier", "Standard"),
        }

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            ctx.client("ssm").delete_parameter(Name=id_)
        except Exception as exc:
            if error_code(exc) != "ParameterNotFound":
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        ssm = ctx.client("ssm")
        return resource_exists(lambda: ssm.get_parameter(Name=id_), "ParameterNotFound")

    @staticmethod
    def _put(ssm: Any, name: str, inputs: dict[str, Any], overwrite: bool) -> None:
        args: dict[str, Any] = {
            "Name": name,
            "Type": inputs["type"],
            "Value": _value(inputs),
            "Tier": inputs.get("tier", "Standard"),
            "DataType": inputs.get("dataType", "text"),
            "Overwrite": overwrite,
            "Description": inputs.get("description", ""),
            "AllowedPattern": inputs.get("allowedPattern", ""),
        }
        if inputs["type"] == "SecureString" and inputs.get("keyId"):
            args["KeyId"] = inputs["keyId"]
        try:
            ssm.put_parameter(**args)
        except Exception as exc:
            if error_code(exc) == "ParameterAlreadyExists":
                raise HandlerError(
                    f"parameter {name} already exists; set overwrite to take it over"
                ) from None
            raise HandlerError(f"cannot put parameter {name}: {exc}") from None


HANDLERS: list[Handler] = [Parameter()]
