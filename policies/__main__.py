"""phasegate's guardrails as a Pulumi CrossGuard policy pack (the Pulumi engine's path).

The rules themselves live in ``rules.py`` as plain functions, which the sandbox engine
runs without ``pulumi_policy``; this module only wraps them. A rule that judges each
resource alone becomes a ``ResourceValidationPolicy``; one that correlates resources
(a bucket and its encryption configuration, a rule and its security group, the GPU total)
becomes a ``StackValidationPolicy``.

Where the rules need the stack:

* environment (eks-public-endpoint-off-in-prod): the part of the stack name before the
  first "-", from ``PULUMI_STACK``, which the Pulumi CLI sets for policy packs as it does
  for programs. Without it, each cluster's ``phasegate:environment`` tag decides.
* GPU cap (gpu-count-cap): the policy config ``maxGpus``
  (``--policy-pack-config``: ``{"gpu-count-cap": {"maxGpus": 64}}``); failing that, the
  stack config ``phasegate:max_gpus`` when the CLI passes stack config to the pack; no
  cap configured: no violation.
* enforcement: each rule's own level, overridden per rule by the policy config's
  ``enforcementLevel`` (what ``phasegate:policy`` sets in the sandbox).

Unknown values (CrossGuard's preview sentinels) are turned into ``rules.UNKNOWN`` before a
rule sees them, so a rule judges what is known instead of being skipped as a whole.

Constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks: it happens only
when Pulumi runs this directory (``python -m pulumi.policy`` runs it as ``__main__``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

import rules

PACK_NAME = "phasegate"
MAX_GPUS = "maxGpus"


def plain(value: Any) -> Any:
    """Props as plain dicts and lists, with every unknown value as ``rules.UNKNOWN``.

    CrossGuard wraps props in proxies that raise on reading an unknown value; the rules
    are written to judge unknowns themselves.
    """
    if isinstance(value, Mapping):
        return {key: _item(value, key) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_item(value, i) for i in range(len(value))]
    return rules.UNKNOWN if rules.is_unknown(value) else value


def _item(container: Any, key: Any) -> Any:
    try:
        return plain(container[key])
    except UnknownValueError:
        return rules.UNKNOWN


def context(config: Mapping[str, Any]) -> rules.Context:
    """What the rules know of the stack this pack is judging."""
    stack = os.environ.get("PULUMI_STACK", "").rsplit("/", 1)[-1] or None
    return rules.Context(
        stack=stack,
        environment=stack.split("-", 1)[0] if stack else None,
        max_gpus=_max_gpus(config),
    )


def _max_gpus(config: Mapping[str, Any]) -> int | None:
    value = config.get(MAX_GPUS)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return pulumi.Config("phasegate").get_int("max_gpus")
    except Exception:  # no stack config reached the pack: no cap
        return None


def _level(rule: rules.Rule) -> EnforcementLevel:
    return EnforcementLevel(rule.enforcement)


def resource_policy(rule: rules.Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        resource = rules.Resource(args.resource_type, args.name, plain(args.props))
        for finding in rule.check([resource], context(args.get_config())):
            report(finding.message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=_level(rule),
    )


def stack_policy(rule: rules.Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [
            rules.Resource(r.resource_type, r.name, plain(r.props)) for r in args.resources
        ]
        urns = {(r.resource_type, r.name): r.urn for r in args.resources}
        for finding in rule.check(resources, context(args.get_config())):
            # A finding on the stack as a whole is reported without a URN.
            report(finding.message, urns.get((finding.resource_type, finding.resource_name)))

    schema = None
    if rule.name == "gpu-count-cap":
        schema = PolicyConfigSchema(
            properties={
                MAX_GPUS: {
                    "type": "integer",
                    "minimum": 0,
                    "description": "GPUs the stack's GPU node groups may reach at max size.",
                }
            }
        )
    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=_level(rule),
        config_schema=schema,
    )


def build_policies() -> list[Policy]:
    """One CrossGuard policy per rule in ``rules.RULES``, in the same order."""
    return [
        resource_policy(rule) if rule.scope == "resource" else stack_policy(rule)
        for rule in rules.RULES
    ]


if __name__ == "__main__":
    PolicyPack(
        name=PACK_NAME,
        policies=build_policies(),
        enforcement_level=EnforcementLevel.MANDATORY,
    )
