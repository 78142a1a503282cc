"""The sandbox refuses, in the plan, every input a program sets that it does not emulate.

Each handler declares the input properties it realises (``emulates``, wire names). The
schema walk takes every input of every ``aws:`` type from the installed pulumi_aws class,
named on the wire as the SDK names it, and holds each one to that declaration: emulated,
or refused by name when a registration sets it.
"""

from __future__ import annotations

import ast
import collections.abc
import inspect
import textwrap
import threading
import types
import typing
from typing import Any, cast

import pulumi._types
import pulumi_aws
import pytest

from phasegate.engines.base import UNKNOWN, Op, StackTarget
from phasegate.engines.sandbox.deployment import _Deployment
from phasegate.engines.sandbox.handlers import REGISTRY, Handler, handler_for
from phasegate.engines.sandbox.handlers.base import PLACED
from phasegate.engines.sandbox.runtime import ProgramFailed, Registration
from phasegate.engines.sandbox.store import Checkpoint

handler_for("aws:s3/bucket:Bucket")  # fills the registry
AWS_TYPES = sorted(t for t in REGISTRY if t.startswith("aws:"))
_NOT_INPUTS = ("__self__", "resource_name", "opts", "__props__")


def _resource_class(type_token: str) -> type:
    """The pulumi_aws class of a type token: ``aws:ec2/vpc:Vpc`` -> ``pulumi_aws.ec2.Vpc``."""
    _, module_path, class_name = type_token.split(":")
    cls: type = getattr(getattr(pulumi_aws, module_path.split("/")[0]), class_name)
    return cls


def schema_inputs(type_token: str) -> dict[str, Any]:
    """The type's input properties, by wire name (as the SDK sends them), with a value
    of each one's type that is not its default."""
    cls = _resource_class(type_token)
    wire = pulumi._types.resource_py_to_pulumi_names(cls)
    hints = inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]
    return {
        wire.get(name, name): _dummy(param.annotation)
        for name, param in hints.items()
        if name not in _NOT_INPUTS
    }


def _dummy(annotation: Any) -> Any:
    """A value of the input's own type (the first of its Union: the plain one)."""
    plain = typing.get_args(annotation)[0] if typing.get_args(annotation) else annotation
    origin = typing.get_origin(plain)
    if origin is not None and issubclass(origin, collections.abc.Sequence):
        return ["value"]
    if origin is not None and issubclass(origin, collections.abc.Mapping):
        return {"key": "value"}
    if isinstance(plain, typing.ForwardRef):  # an input type, e.g. BucketVersioningArgs
        return {"key": "value"}
    values: dict[Any, Any] = {bool: True, int: 7, float: 1.5}
    return values.get(plain, "value")


def _preview() -> _Deployment:
    """A preview of one stack with an empty checkpoint: what ``migrate plan`` runs."""
    stack = StackTarget(
        project="phasegate",
        environment="sandbox",
        phase="test",
        region="us-east-1",
        program=cast(Any, None),
        config={},
    )
    engine = cast(Any, types.SimpleNamespace(stop=threading.Event()))
    return _Deployment(
        engine,
        stack,
        cast(Any, None),
        Checkpoint(environment="sandbox", region="us-east-1"),
        preview=True,
        upstream={},
        on_event=lambda _: None,
    )


def plan_one(type_token: str, inputs: dict[str, Any]) -> str | None:
    """The refusal the plan gives a resource declared with just ``inputs``, or None."""
    deployment = _preview()
    registration = Registration(
        urn=f"urn:pulumi:sandbox-test::phasegate::{type_token}::thing",
        type=type_token,
        name="thing",
        custom=True,
        inputs=inputs,
    )
    try:
        deployment.register(registration)
    except Exception:  # a handler's own check of inputs it emulates: not a refusal
        return None
    (change,) = deployment.changes
    assert change.op is Op.CREATE
    return change.refused


def _handler(type_token: str) -> Handler:
    handler = handler_for(type_token)
    assert handler is not None
    return handler


def test_the_schema_walk_covers_every_aws_handler() -> None:
    assert len(AWS_TYPES) >= 26
    assert "aws:s3/bucket:Bucket" in AWS_TYPES
    assert schema_inputs("aws:s3/bucket:Bucket")["versioning"] == {"key": "value"}
    assert "serverSideEncryptionConfiguration" in schema_inputs("aws:s3/bucket:Bucket")


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_every_input_of_the_schema_is_emulated_or_refused_by_name(type_token: str) -> None:
    handler = _handler(type_token)
    for prop, value in schema_inputs(type_token).items():
        if prop in handler.emulates or prop in PLACED:
            assert handler.unemulated({prop: value}) == []
            continue
        refused = plan_one(type_token, {prop: value})
        assert refused == f"inputs the sandbox does not emulate: {prop}", (
            f"{type_token}: {prop} is neither emulated nor refused (got {refused!r})"
        )


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_a_handler_declares_only_properties_its_schema_has(type_token: str) -> None:
    handler = _handler(type_token)
    schema = set(schema_inputs(type_token))
    assert handler.emulates, f"{type_token} declares nothing it emulates"
    assert handler.emulates <= schema, sorted(handler.emulates - schema)
    assert not handler.emulates & PLACED  # the deployment's, for every handler


def test_the_refusal_names_every_input_set_that_is_not_emulated() -> None:
    refused = plan_one(
        "aws:s3/bucket:Bucket",
        {
            "bucket": "logs",
            "tags": {"owner": "platform"},
            "website": {"indexDocument": "index.html"},
            "corsRules": [{"allowedMethods": ["GET"], "allowedOrigins": ["*"]}],
            "objectLockEnabled": True,
        },
    )
    assert refused == "inputs the sandbox does not emulate: corsRules, objectLockEnabled, website"


@pytest.mark.parametrize("value", [None, "", [], {}])
def test_an_input_left_at_its_default_is_not_refused(value: Any) -> None:
    assert plan_one("aws:s3/bucket:Bucket", {"bucket": "logs", "website": value}) is None


@pytest.mark.parametrize("value", [False, 0])
def test_a_false_or_zero_the_program_sets_is_refused(value: Any) -> None:
    """Not every default is false (enableDnsSupport is true): a value set is set."""
    refused = plan_one("aws:ec2/vpc:Vpc", {"cidrBlock": "10.0.0.0/16", "ipv6NetmaskLength": value})
    assert refused == "inputs the sandbox does not emulate: ipv6NetmaskLength"


def test_a_value_unknown_until_apply_is_set() -> None:
    refused = plan_one(
        "aws:iam/user:User", {"name": "ops", "permissionsBoundary": "(known after apply)"}
    )
    assert refused == "inputs the sandbox does not emulate: permissionsBoundary"


@pytest.mark.parametrize(
    "type_token", ["kubernetes:core/v1:ConfigMap", "pulumi-python:dynamic:Resource"]
)
def test_kubernetes_objects_and_dynamic_resources_take_every_input(type_token: str) -> None:
    handler = _handler(type_token)
    assert handler.unemulated({"anything": "at all", "spec": {"x": 1}}) == []


def _literals(cls: type) -> set[str]:
    """The strings a handler class (and its handler bases) spells out: the inputs it reads."""
    found: set[str] = set()
    for klass in cls.__mro__:
        if klass is Handler or not issubclass(klass, Handler):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        found |= {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }
    return found


NAMED_NOT_EMULATED = {
    "aws:ec2/natGateway:NatGateway": {"vpcId"},  # of a regional NAT gateway
    "aws:ec2/routeTable:RouteTable": {"propagatingVgws"},
    "aws:ec2/vpcEndpoint:VpcEndpoint": {
        "resourceConfigurationArn",
        "serviceNetworkArn",
        "serviceRegion",
        "subnetConfigurations",
    },
    "aws:eks/nodeGroup:NodeGroup": {"version"},  # the launch template's, not the group's
    "aws:kms/key:Key": {"customKeyStoreId", "xksKeyId"},
    "aws:s3/bucket:Bucket": {"region"},  # an output
    "aws:s3/bucketObjectv2:BucketObjectv2": {"etag"},  # an output
    "aws:ssm/parameter:Parameter": {"arn"},  # an output
}
"""Inputs a handler names (to force a replacement, to refuse a combination, to refuse them
at apply, or as an output) but does not realise: the plan refuses them."""


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_every_input_a_handler_reads_is_declared(type_token: str) -> None:
    """Dropping a property from ``emulates`` would refuse what the handler realises."""
    handler = _handler(type_token)
    read = _literals(type(handler)) & set(schema_inputs(type_token))
    undeclared = read - handler.emulates
    assert undeclared == NAMED_NOT_EMULATED.get(type_token, set()), sorted(undeclared)


def _plan_error(type_token: str, inputs: dict[str, Any]) -> str | None:
    """What a plan of one resource declared with ``inputs`` stops on, or None."""
    registration = Registration(
        urn=f"urn:pulumi:sandbox-test::phasegate::{type_token}::thing",
        type=type_token,
        name="thing",
        custom=True,
        inputs=inputs,
    )
    try:
        _preview().register(registration)
    except ProgramFailed as exc:
        return str(exc)
    return None


def test_a_required_input_unknown_until_apply_is_given() -> None:
    """A trust policy made from another resource's output is unknown in the plan: it was
    dropped before the check, and the plan stopped on "assumeRolePolicy is required"."""
    assert _plan_error("aws:iam/role:Role", {"assumeRolePolicy": UNKNOWN}) is None


def test_a_required_input_not_given_stops_the_plan_naming_it() -> None:
    said = _plan_error("aws:iam/role:Role", {"name": "runner"})
    assert said == "aws:iam/role:Role 'thing': assumeRolePolicy is required"
