"""Building blocks shared by the phase programs: environment, config, tags, roles."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, overload

import pulumi
import yaml
from pulumi.runtime.config import CONFIG, get_config_env
from pydantic import BaseModel, ValidationError

from config import (
    MODELS,
    ComputeConfig,
    CutoverConfig,
    DataLayerConfig,
    PhaseConfig,
    PilotConfig,
)

__all__ = [
    "InvalidConfig",
    "describe",
    "environment",
    "load_config",
    "phase_tags",
    "service_role_policy",
    "upstream",
]

NAMESPACE = "phasegate"
# Keys the orchestrator and the policy pack read (which program runs, policy
# enforcement overrides, the cost and carbon caps and the NAT traffic its estimates
# use); not part of any phase's model.
_NOT_MODEL_KEYS = frozenset(
    {
        "phase",
        "program",
        "policy",
        "step",
        "data_source",
        "protected",
        "max_monthly_cost_usd",
        "max_monthly_kg_co2e",
        "nat_gb_per_month",
    }
)


class InvalidConfig(ValueError):
    """Stack config a phase cannot run with; one line per problem, naming the key."""


def environment() -> str:
    """The environment of this stack (stacks are named <environment>-<phase>)."""
    return pulumi.get_stack().split("-", 1)[0]


def _protected() -> list[str]:
    """The names and patterns migration.yaml protects in this phase: passed by phasegate as
    `phasegate:protected`; read from the project's migration.yaml when the program runs
    by hand (`pulumi up` in the project), so that such a run does not lift them."""
    config = pulumi.Config(NAMESPACE)
    passed = config.get_object("protected")
    if passed is not None:
        return list(passed)
    migration = Path(__file__).resolve().parent.parent / "migration.yaml"
    if not migration.is_file():
        return []
    phase = config.get("phase") or pulumi.get_stack().split("-", 1)[1]
    spec = yaml.safe_load(migration.read_text(encoding="utf-8")) or {}
    for entry in spec.get("phases") or []:
        if isinstance(entry, dict) and entry.get("name") == phase:
            return [str(p) for p in entry.get("protected") or []]
    return []


def keep(name: str, opts: pulumi.ResourceOptions | None = None) -> pulumi.ResourceOptions:
    """Resource options that protect ``name`` when migration.yaml lists it as protected
    (names or glob patterns, passed as `phasegate:protected`): never deleted, not even by
    a rollback, on either engine. ``retain_on_delete`` as well: a rollback to a version
    without it lifts the protection for its up, and the resource is then only forgotten."""
    protect = any(fnmatch.fnmatchcase(name, pattern) for pattern in _protected())
    return pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(protect=protect, retain_on_delete=protect or None)
    )


def upstream(phase: str) -> pulumi.StackReference:
    """The stack of an earlier phase in the same environment."""
    org, project = pulumi.get_organization(), pulumi.get_project()
    return pulumi.StackReference(
        f"{phase}-ref", stack_name=f"{org}/{project}/{environment()}-{phase}"
    )


def _text(annotation: Any) -> bool:
    """Whether a field's config value is plain text rather than JSON (numbers, lists, ...)."""
    if annotation is str:
        return True
    return get_origin(annotation) is Literal and all(
        isinstance(a, str) for a in get_args(annotation)
    )


@overload
def load_config(phase: Literal["pilot"]) -> PilotConfig: ...
@overload
def load_config(phase: Literal["data_layer"]) -> DataLayerConfig: ...
@overload
def load_config(phase: Literal["compute"]) -> ComputeConfig: ...
@overload
def load_config(phase: Literal["cutover"]) -> CutoverConfig: ...
@overload
def load_config(phase: str) -> BaseModel: ...
def load_config(phase: str) -> BaseModel:
    """This stack's `phasegate:` config as the phase's model; InvalidConfig if it is wrong."""
    model = MODELS[phase]
    config = pulumi.Config(NAMESPACE)
    values: dict[str, Any] = {}
    for key, field in model.model_fields.items():
        try:
            value = config.get(key) if _text(field.annotation) else config.get_object(key)
        except pulumi.ConfigTypeError:
            # Not JSON: hand the text to the model, which says what the key allows.
            value = config.get(key)
        if value is not None:
            values[key] = value
    # Keys no field reads are typos or leftovers; the model rejects them by name.
    prefix = f"{NAMESPACE}:"
    for full_key, raw in {**get_config_env(), **CONFIG.get()}.items():
        key = full_key.removeprefix(prefix)
        if full_key.startswith(prefix) and key not in {*model.model_fields, *_NOT_MODEL_KEYS}:
            values[key] = raw
    try:
        region = pulumi.Config("aws").get("region")
        return model.model_validate(values, context={"region": region} if region else None)
    except ValidationError as exc:
        raise InvalidConfig(f"stack {pulumi.get_stack()}: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """A model's validation errors on one line, each naming its `phasegate:` key."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{NAMESPACE}:{where}: {message}" if where else message)
    return "; ".join(problems)


def phase_tags(
    phase: str, config: PhaseConfig, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The tags every taggable resource of a phase carries."""
    return {
        "phasegate:phase": phase,
        "phasegate:environment": environment(),
        "owner": config.owner,
        "cost-center": config.cost_center,
        **(extra or {}),
    }


def service_role_policy(service: str) -> str:
    """An assume-role policy letting an AWS service (eks, ec2) take the role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": f"{service}.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
