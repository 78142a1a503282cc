"""Building blocks shared by the phase programs."""

from __future__ import annotations

import json

import pulumi

__all__ = ["environment", "phase_tags", "service_role_policy", "upstream"]


def environment() -> str:
    """The environment of this stack (stacks are named <environment>-<phase>)."""
    return pulumi.get_stack().split("-", 1)[0]


def upstream(phase: str) -> pulumi.StackReference:
    """The stack of an earlier phase in the same environment."""
    org, project = pulumi.get_organization(), pulumi.get_project()
    return pulumi.StackReference(
        f"{phase}-ref", stack_name=f"{org}/{project}/{environment()}-{phase}"
    )


def phase_tags(phase: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    config = pulumi.Config("phasegate")
    return {
        "phasegate:phase": phase,
        "phasegate:environment": environment(),
        "owner": config.get("owner") or "platform",
        "cost-center": config.get("cost_center") or "ml-platform",
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
