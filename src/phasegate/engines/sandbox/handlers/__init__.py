"""Resource handlers: how the sandbox creates, updates and deletes each resource type.

An explicit registry of type token -> handler. A type with no handler is refused by name
in the plan; it is never faked. Each handler validates what real AWS would reject and the
emulator accepts, so a sandbox rehearsal fails where the real apply would.

Handlers live one module per service area (``ec2_routes``, ``s3_config``, ``kms``, ...),
each exporting ``HANDLERS``; :func:`_registry` lists the modules. A Python dynamic
resource is handled by calling its own provider (``dynamic``).
"""

from __future__ import annotations

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    ProviderDiff,
    RunContext,
    error_code,
    int_or_none,
)

__all__ = [
    "REGISTRY",
    "CloudContext",
    "Handler",
    "HandlerError",
    "ProviderDiff",
    "RunContext",
    "error_code",
    "handler_for",
    "int_or_none",
]


def _registry() -> dict[str, Handler]:
    from phasegate.engines.sandbox.handlers import (
        cloudwatch,
        dynamic,
        dynamodb,
        ec2,
        ec2_compute,
        ec2_endpoints,
        ec2_gateways,
        ec2_instances,
        ec2_routes,
        ec2_security,
        ecr,
        efs,
        eks,
        events,
        iam,
        iam_identities,
        iam_policy,
        kms,
        lb,
        messaging,
        queues,
        route53,
        s3,
        s3_config,
        s3_lifecycle,
        s3_objects,
        secretsmanager,
        ssm,
    )

    handlers: list[Handler] = [
        *cloudwatch.HANDLERS,
        *dynamic.HANDLERS,
        *dynamodb.HANDLERS,
        *ec2.HANDLERS,
        *ec2_compute.HANDLERS,
        *ec2_endpoints.HANDLERS,
        *ec2_gateways.HANDLERS,
        *ec2_instances.HANDLERS,
        *ec2_routes.HANDLERS,
        *ec2_security.HANDLERS,
        *ecr.HANDLERS,
        *efs.HANDLERS,
        *eks.HANDLERS,
        *events.HANDLERS,
        *iam.HANDLERS,
        *iam_identities.HANDLERS,
        *iam_policy.HANDLERS,
        *kms.HANDLERS,
        *lb.HANDLERS,
        *messaging.HANDLERS,
        *queues.HANDLERS,
        *route53.HANDLERS,
        *s3.HANDLERS,
        *s3_config.HANDLERS,
        *s3_lifecycle.HANDLERS,
        *s3_objects.HANDLERS,
        *secretsmanager.HANDLERS,
        *ssm.HANDLERS,
    ]
    return {h.type: h for h in handlers}


REGISTRY: dict[str, Handler] = {}


def handler_for(type_token: str) -> Handler | None:
    """The handler of a type, or None when the sandbox cannot realise it."""
    if not REGISTRY:
        REGISTRY.update(_registry())
    if type_token in REGISTRY:
        return REGISTRY[type_token]
    if type_token.startswith("kubernetes:"):
        from phasegate.engines.sandbox.handlers.kubernetes import MANIFEST

        return MANIFEST
    from phasegate.engines.sandbox.handlers.dynamic import DynamicResource, is_dynamic

    if is_dynamic(type_token):  # a subclass that names its own module and type
        return REGISTRY[DynamicResource.type]
    return None
