"""The sandbox refuses, in the plan, every input a program sets that it does not emulate.

Each handler declares the input properties it realises (``emulates``, wire names). The
schema walk takes every input of every ``aws:`` type from the installed pulumi_aws class,
named on the wire as the SDK names it, and holds each one to that declaration: emulated,
or refused by name when a registration sets it. It goes on into each input type (an
object, or a list of them), by the wire names of its own properties: a nested key is
emulated (declared by its dotted path, or under an input carried whole) or refused by
its path.
"""

from __future__ import annotations

import ast
import collections.abc
import importlib
import inspect
import re
import textwrap
import threading
import types
import typing
from pathlib import Path
from typing import Any, cast

import pulumi._types
import pulumi_aws
import pytest

from _handlers import handler_of
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
    of each one's type that is not its default: an input type (an object) has a value
    in each of its own properties, by wire name, down to ``_DEPTH`` levels."""
    cls = _resource_class(type_token)
    wire = pulumi._types.resource_py_to_pulumi_names(cls)
    hints = inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]
    input_types = importlib.import_module(f"{cls.__module__.rsplit('.', 1)[0]}._inputs")
    return {
        wire.get(name, name): _dummy(param.annotation, input_types, _DEPTH)
        for name, param in hints.items()
        if name not in _NOT_INPUTS
    }


_DEPTH = 6
"""How deep the walk goes into input types (some nest themselves without end)."""


class _Map(dict[str, Any]):
    """A map input's value (tags, labels): its keys are the program's, not properties."""


def _dummy(annotation: Any, input_types: types.ModuleType, depth: int) -> Any:
    """A value of the input's own type (the first of its Union: the plain one)."""
    plain = annotation
    while typing.get_origin(plain) is typing.Union:
        plain = typing.get_args(plain)[0]
    if isinstance(plain, typing.ForwardRef):  # an input type, e.g. BucketVersioningArgs
        plain = getattr(input_types, plain.__forward_arg__)
    if isinstance(plain, type) and pulumi._types.is_input_type(plain):
        if depth == 0:
            return "value"
        return {
            name: _dummy(hint, input_types, depth - 1)
            for name, hint in pulumi._types.input_type_types(plain).items()
        }
    origin = typing.get_origin(plain)
    if origin is not None and issubclass(origin, collections.abc.Sequence):
        return [_dummy(typing.get_args(plain)[0], input_types, depth)]
    if origin is not None and issubclass(origin, collections.abc.Mapping):
        return _Map(key="value")
    values: dict[Any, Any] = {bool: True, int: 7, float: 1.5}
    return values.get(plain, "value")


def nested_paths(value: Any, prefix: str = "") -> dict[str, Any]:
    """Each property under an input's value by its dotted path (a list's items without
    an index), nested objects included, with the value there."""
    found: dict[str, Any] = {}
    if isinstance(value, list):
        for item in value:
            found.update(nested_paths(item, prefix))
    elif isinstance(value, dict) and not isinstance(value, _Map):
        for key, inner in value.items():
            path = f"{prefix}{key}"
            found[path] = inner
            found.update(nested_paths(inner, f"{path}."))
    return found


def schema_paths(type_token: str) -> dict[str, Any]:
    """Every input of the type and every property nested in one, by dotted path."""
    return nested_paths(schema_inputs(type_token))


def _only(path: str, value: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """Inputs that set just ``path`` (in a one-item list where the schema has a list)."""
    *heads, last = path.split(".")
    inner: Any = {last: value}
    for depth in range(len(heads), 0, -1):
        head = ".".join(heads[:depth])
        inner = {heads[depth - 1]: [inner] if isinstance(schema[head], list) else inner}
    return cast(dict[str, Any], inner)


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


def test_the_schema_walk_covers_every_aws_handler() -> None:
    assert len(AWS_TYPES) >= 26
    assert "aws:s3/bucket:Bucket" in AWS_TYPES
    assert schema_inputs("aws:s3/bucket:Bucket")["versioning"] == {
        "enabled": True,
        "mfaDelete": True,
    }
    assert "serverSideEncryptionConfiguration" in schema_inputs("aws:s3/bucket:Bucket")
    paths = schema_paths("aws:ec2/securityGroup:SecurityGroup")
    assert paths["ingress"] == [paths["ingress"][0]] and paths["ingress.fromPort"] == 7
    assert "tags.key" not in paths  # a map's keys are the program's
    deep = schema_paths("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert "rules.filter.and.tags" in deep


def _leaves(type_token: str) -> dict[str, Any]:
    """The schema's nested paths that hold a plain value, a list of them or a map."""
    return {
        path: value
        for path, value in schema_paths(type_token).items()
        if "." in path and not nested_paths(value)
    }


def _first_dropped(handler: Handler, path: str) -> str:
    """The shortest part of ``path`` the handler does not let through: what it refuses."""
    parts = path.split(".")
    return next(
        prefix
        for prefix in (".".join(parts[:n]) for n in range(1, len(parts) + 1))
        if not handler.carries(prefix)
    )


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_every_input_of_the_schema_is_emulated_or_refused_by_name(type_token: str) -> None:
    handler = handler_of(type_token)
    for prop, value in schema_inputs(type_token).items():
        if handler.carries(prop):
            assert prop not in handler.unemulated({prop: value})
            continue
        refused = plan_one(type_token, {prop: value})
        assert refused == f"inputs the sandbox does not emulate: {prop}", (
            f"{type_token}: {prop} is neither emulated nor refused (got {refused!r})"
        )


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_every_nested_property_of_the_schema_is_emulated_or_refused_by_name(
    type_token: str,
) -> None:
    """A nested key a handler would drop (``metadataOptions.instanceMetadataTags``) is
    refused by its path, where the whole object used to be let through."""
    handler = handler_of(type_token)
    schema = schema_paths(type_token)
    for path, value in _leaves(type_token).items():
        if not handler.carries(path.split(".")[0]):
            continue  # its head is refused, by the walk of the inputs
        inputs = _only(path, value, schema)
        if handler.carries(path):
            assert handler.unemulated(inputs) == [], path
            continue
        refused = plan_one(type_token, inputs)
        dropped = _first_dropped(handler, path)
        assert refused == f"inputs the sandbox does not emulate: {dropped}", (
            f"{type_token}: {path} is neither emulated nor refused (got {refused!r})"
        )


@pytest.mark.parametrize(
    ("inputs", "refused"),
    [
        (
            {"metadataOptions": {"httpTokens": "required", "instanceMetadataTags": "enabled"}},
            "metadataOptions.instanceMetadataTags",
        ),
        (
            {"ingress": [{"fromPort": 1, "ipv6CidrBlocks": ["::/0"]}, {"toPort": 2}]},
            "ingress.ipv6CidrBlocks, ingress.toPort",
        ),
        ({"a": {"b": {"c": 1, "d": 2}, "e": []}}, "a.b.d"),
        ({"metadataOptions": {"httpTokens": None, "instanceMetadataTags": ""}}, ""),
        ({"metadataOptions": "(known after apply)"}, ""),
    ],
)
def test_a_nested_key_set_and_not_declared_is_named_by_its_path(
    inputs: dict[str, Any], refused: str
) -> None:
    class Declared(type(handler_of("aws:ec2/placementGroup:PlacementGroup"))):  # type: ignore[misc]
        emulates = frozenset({"metadataOptions.httpTokens", "ingress.fromPort", "a.b.c"})

    assert ", ".join(Declared().unemulated(inputs)) == refused


def test_a_handler_with_no_dotted_entries_takes_its_inputs_whole() -> None:
    """As before nested keys were declared: what the other handlers' authors rely on."""

    class Whole(type(handler_of("aws:ec2/placementGroup:PlacementGroup"))):  # type: ignore[misc]
        emulates = frozenset({"metadataOptions", "tags"})

    whole = Whole()
    assert whole.unemulated({"metadataOptions": {"anything": 1}, "tags": {"a": "b"}}) == []
    assert whole.unemulated({"other": {"x": 1}}) == ["other"]
    assert whole.carries("metadataOptions.anything") and not whole.carries("other")


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_a_handler_declares_only_properties_its_schema_has(type_token: str) -> None:
    handler = handler_of(type_token)
    schema = set(schema_paths(type_token))
    assert handler.emulates, f"{type_token} declares nothing it emulates"
    assert handler.emulates <= schema, sorted(handler.emulates - schema)
    assert not handler.emulates & PLACED  # the deployment's, for every handler


CARRIED_WHOLE = {
    # Each object goes whole into the version's LaunchTemplateData, which the emulator
    # keeps as given: test_sandbox_nested_templates finds every nested key there.
    "aws:ec2/launchTemplate:LaunchTemplate",
}
"""Types whose object inputs are declared whole, each with a test that every nested key
of the schema reaches the emulated cloud."""


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_an_object_input_is_declared_key_by_key_unless_proven_carried_whole(
    type_token: str,
) -> None:
    """A bare name lets every nested key through: for an object (an input type) that is
    a claim about each of its keys, so it is made key by key, or proven whole."""
    handler = handler_of(type_token)
    objects = {path.split(".")[0] for path in schema_paths(type_token) if "." in path}
    walked = {path.split(".")[0] for path in handler.emulates if "." in path}
    whole = sorted((objects & handler.emulates) - walked)
    if type_token in CARRIED_WHOLE:
        assert whole, f"{type_token} declares no object whole any more"
    else:
        assert whole == [], f"{type_token}: declare the nested keys carried of {whole}"


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
    handler = handler_of(type_token)
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


def _read_names(handler: Handler, type_token: str) -> set[str]:
    """The schema's names a handler can read: its inputs, and the keys nested under
    each input whose nested keys it declares."""
    walked = {path.split(".")[0] for path in handler.emulates if "." in path}
    nested = {
        path.rsplit(".", 1)[-1]
        for path in schema_paths(type_token)
        if "." in path and path.split(".")[0] in walked
    }
    return set(schema_inputs(type_token)) | nested


NAMED_NOT_EMULATED = {
    "aws:ec2/eip:Eip": {  # passed on, and dropped by the emulator
        "associateWithPrivateIp",
        "customerOwnedIpv4Pool",
        "ipamPoolId",
        "networkBorderGroup",
        "publicIpv4Pool",
    },
    "aws:ec2/natGateway:NatGateway": {  # vpcId: of a regional one; the rest dropped by moto
        "privateIp",
        "secondaryAllocationIds",
        "secondaryPrivateIpAddressCount",
        "secondaryPrivateIpAddresses",
        "vpcId",
    },
    "aws:ec2/routeTable:RouteTable": {"propagatingVgws"},
    "aws:ec2/vpcEndpoint:VpcEndpoint": {
        "ipAddressType",  # dropped by the emulator
        "resourceConfigurationArn",
        "serviceNetworkArn",
        "serviceRegion",
        "subnetConfigurations",
    },
    "aws:eks/cluster:Cluster": {"clusterSecurityGroupId", "vpcId"},  # vpcConfig's outputs
    "aws:kms/key:Key": {"customKeyStoreId", "xksKeyId"},
    "aws:s3/bucket:Bucket": {"region"},  # an output
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": {
        "transitionDefaultMinimumObjectSize"
    },
    "aws:s3/bucketObjectv2:BucketObjectv2": {"etag"},  # an output
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": {
        "blockedEncryptionTypes"
    },
    "aws:s3/bucketVersioning:BucketVersioning": {"mfa", "mfaDelete"},  # dropped by the emulator
    "aws:ssm/parameter:Parameter": {"arn"},  # an output
}
"""Inputs and nested keys a handler names (to force a replacement, to refuse a
combination, to refuse them at apply, or as an output) but does not realise: the plan
refuses them."""


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_every_input_a_handler_reads_is_declared(type_token: str) -> None:
    """Dropping a property from ``emulates`` would refuse what the handler realises."""
    handler = handler_of(type_token)
    read = _literals(type(handler)) & _read_names(handler, type_token)
    undeclared = read - {name for path in handler.emulates for name in path.split(".")}
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


_PROOFS = (
    *Path(__file__).parent.glob("test_handlers*.py"),
    *Path(__file__).parent.glob("test_sandbox_nested*.py"),
    *(Path(__file__).parents[1] / "corpus").glob("*.py"),
)
"""Where a value of an emulated input is set and found again in the emulated cloud: the
handler tests (through boto3 against the emulator) and the corpus programs (through
``migrate sandbox serve``)."""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_every_emulated_input_is_set_by_a_test_that_makes_its_type(type_token: str) -> None:
    """What ``emulates`` promises is proven where a test makes the type with the input set
    and reads it back. This guard finds the inputs no such test even names (a new one
    declared without its proof), by their wire or Python name."""
    class_name = type_token.rsplit(":", 1)[1]
    making = [
        text
        for text in (path.read_text() for path in _PROOFS)
        if type_token in text or f".{class_name}(" in text
    ]
    assert making, f"no test makes {type_token}"

    def named(path: str) -> bool:
        leaf = path.rsplit(".", 1)[-1]
        return any(leaf in text or _snake(leaf) in text for text in making)

    unnamed = [path for path in sorted(handler_of(type_token).emulates) if not named(path)]
    assert unnamed == [], f"{type_token}: no test sets {', '.join(unnamed)}"
