"""phasegate's guardrails as plain functions, shared by both engines.

Standard library only, and no ``pulumi_policy``: the sandbox engine loads this file by
path (``phasegate.policy``) and runs the rules over the resources a program declares;
``__main__.py`` wraps the same rules as a CrossGuard pack for the Pulumi engine.

A rule sees resources as (type token, logical name, props), where props are Pulumi wire
property names (camelCase) nested exactly as pulumi-aws v7 and pulumi-kubernetes v4 send
them. A value only an apply can tell is *unknown*: ``UNKNOWN`` in the sandbox, one of
CrossGuard's sentinels in a pack. No rule reports a violation from an unknown value; a
property that is absent is simply not set, and AWS's default for it is what is judged.

The GPU figures come from ``phases/catalog.py``, loaded by path from beside this pack.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "RULES",
    "TAGGABLE_TYPES",
    "UNKNOWN",
    "CatalogMissing",
    "Context",
    "Finding",
    "Resource",
    "Rule",
    "gpu_catalog",
    "is_unknown",
]

UNKNOWN = "(known after apply)"
"""How the sandbox shows a value only an apply can tell (``phasegate.engines.base``)."""

# CrossGuard's unknown sentinels (pulumi_policy/proxy.py), one per value kind.
_CROSSGUARD_UNKNOWNS = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
        "030794c1-ac77-496b-92df-f27374a8bd58",
        "e48ece36-62e2-4504-bad9-02848725956a",
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
    }
)

CATALOG_PATH = Path(__file__).resolve().parent.parent / "phases" / "catalog.py"
"""The project's GPU catalog: the pack lives in ``policies/``, the catalog in ``phases/``."""

STACK_TYPE = "pulumi:pulumi:Stack"
"""The type a finding about the stack as a whole (not one resource) is reported on."""

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
BUCKET_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"

TAGGABLE_TYPES: frozenset[str] = frozenset(
    {
        # Every type here takes a ``tags`` input in pulumi-aws v7 (the unit tests check
        # this against the installed classes). Types without one (route table
        # associations, routes, role policy attachments, bucket sub-resources, KMS
        # aliases, Route 53 records) are not taggable and not judged.
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
        "aws:ec2/eip:Eip",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:ec2/networkAcl:NetworkAcl",
        "aws:ec2/flowLog:FlowLog",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/placementGroup:PlacementGroup",
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
        "aws:eks/cluster:Cluster",
        "aws:eks/nodeGroup:NodeGroup",
        "aws:eks/addon:Addon",
        "aws:eks/accessEntry:AccessEntry",
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:lb/listener:Listener",
        "aws:lb/listenerRule:ListenerRule",
        "aws:s3/bucket:Bucket",
        "aws:kms/key:Key",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:route53/zone:Zone",
        "aws:route53/healthCheck:HealthCheck",
        "aws:acm/certificate:Certificate",
        "aws:ec2/instance:Instance",
        "aws:efs/fileSystem:FileSystem",
        "aws:iam/user:User",
        "aws:sns/topic:Topic",
        "aws:sqs/queue:Queue",
        "aws:cloudwatch/eventRule:EventRule",
        "aws:dynamodb/table:Table",
        "aws:ecr/repository:Repository",
        "aws:ssm/parameter:Parameter",
        "aws:secretsmanager/secret:Secret",
    }
)

REQUIRED_TAGS = ("phasegate:phase", "phasegate:environment", "owner", "cost-center")
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_EFFECT = "NO_SCHEDULE"
LOAD_BALANCER_ROLE = "load-balancer"
OPEN_CIDRS = ("0.0.0.0/0", "::/0")
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
PROD = "prod"


# --- the model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One declared resource: type token, logical name, wire-named props."""

    type: str
    name: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Context:
    """What rules know about the stack besides its resources.

    ``environment`` None: unknown here; rules that need it fall back to the resource's
    ``phasegate:environment`` tag. ``max_gpus`` None: no GPU cap configured.
    """

    stack: str | None = None
    environment: str | None = None
    max_gpus: int | None = None


@dataclass(frozen=True)
class Finding:
    """One violation of one rule, on one resource (or on the stack: ``STACK_TYPE``)."""

    resource_type: str
    resource_name: str
    message: str


Check = Callable[[Sequence[Resource], Context], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """A guardrail. ``scope`` "resource": judges each resource alone; "stack": correlates."""

    name: str
    description: str
    enforcement: str  # "mandatory" | "advisory"
    scope: str  # "resource" | "stack"
    check: Check


# --- reading props ----------------------------------------------------------------------


def is_unknown(value: Any) -> bool:
    """Whether ``value`` is one only an apply can tell."""
    return isinstance(value, str) and (value == UNKNOWN or value in _CROSSGUARD_UNKNOWNS)


def _get(props: Any, *path: str) -> Any:
    """The value at ``path``: None if absent, ``UNKNOWN`` if it or a parent is unknown."""
    value = props
    for key in path:
        if is_unknown(value):
            return UNKNOWN
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return UNKNOWN if is_unknown(value) else value


def _items(value: Any) -> list[Any] | None:
    """A list prop as a list (absent: empty); None when the list itself is unknown."""
    if is_unknown(value):
        return None
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _known_str(value: Any) -> str | None:
    return value if isinstance(value, str) and not is_unknown(value) else None


def _tags(resource: Resource) -> Mapping[str, Any] | None:
    """The resource's tags (``tags`` over ``tagsAll``); None when they are unknown."""
    tags = _get(resource.props, "tags")
    if is_unknown(tags):
        return None
    merged: dict[str, Any] = dict(tags) if isinstance(tags, Mapping) else {}
    every = _get(resource.props, "tagsAll")
    if isinstance(every, Mapping):
        merged = {**every, **merged}
    return merged


def _bucket_name(bucket: Resource) -> str | None:
    """The bucket's physical name, None when only an apply can tell (or it is autonamed)."""
    return _known_str(_get(bucket.props, "bucket"))


def _bucket_name_prefix(bucket: Resource) -> str | None:
    """What the bucket's name certainly starts with (its name when that is known)."""
    name = _get(bucket.props, "bucket")
    if name is not None:
        return _known_str(name)
    prefix = _get(bucket.props, "bucketPrefix")
    if prefix is not None:
        return _known_str(prefix)
    return f"{bucket.name}-"  # Pulumi autonames as "<logical name>-<random>"


# --- the GPU catalog ----------------------------------------------------------------------


class CatalogMissing(RuntimeError):
    """``phases/catalog.py`` is not where the pack expects it."""


_catalog_module: ModuleType | None = None


def gpu_catalog() -> ModuleType:
    """The project's ``phases/catalog.py``, loaded once by path (never as ``catalog``:
    the sandbox runs phase programs in this process, and they import their own)."""
    global _catalog_module
    if _catalog_module is not None:
        return _catalog_module
    if not CATALOG_PATH.is_file():
        raise CatalogMissing(
            f"the GPU catalog {CATALOG_PATH} is missing: the policy pack in "
            f"{CATALOG_PATH.parent.parent / 'policies'} reads GPU counts from phases/catalog.py"
        )
    digest = hashlib.sha256(str(CATALOG_PATH).encode()).hexdigest()[:12]
    name = f"_phasegate_gpu_catalog_{digest}"
    spec = importlib.util.spec_from_file_location(name, CATALOG_PATH)
    if spec is None or spec.loader is None:
        raise CatalogMissing(f"cannot load the GPU catalog {CATALOG_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    _catalog_module = module
    return module


def _gpu_types(node_group: Resource) -> list[str] | None:
    """The node group's instance types that are GPU types; None when they are unknown."""
    types = _items(_get(node_group.props, "instanceTypes"))
    if types is None:
        return None
    catalog = gpu_catalog().CATALOG
    return [t for t in types if isinstance(t, str) and t in catalog]


# --- bucket companions (encryption, public access block, versioning) -------------------


def _bucket_companions(
    resources: Sequence[Resource],
    *,
    companion_type: str,
    what: str,
    judge: Callable[[Resource], str | None],
    applies: Callable[[Resource], bool] = lambda _bucket: True,
) -> Iterator[Finding]:
    """Buckets that no compliant ``companion_type`` can belong to.

    ``judge`` returns why a companion falls short, or None when it complies or its
    settings are unknown. A companion belongs to the bucket its ``bucket`` names; one
    whose ``bucket`` is unknown (the bucket's id, during a plan) could belong to any of
    them, so each companion covers at most one bucket, and a bucket is reported only
    when no assignment of the possible companions covers every bucket.
    """
    buckets = [b for b in resources if b.type == BUCKET and applies(b)]
    if not buckets:
        return
    companions = [c for c in resources if c.type == companion_type]
    shortfall = {id(c): judge(c) for c in companions}

    def identities(bucket: Resource) -> set[str] | None:
        """The bucket's known name and id; None when neither is known yet."""
        names = {_known_str(_get(bucket.props, key)) for key in ("bucket", "id")}
        return {n for n in names if n is not None} or None

    def may_belong(companion: Resource, bucket: Resource) -> bool:
        ref = _known_str(_get(companion.props, "bucket"))
        names = identities(bucket)
        return ref is None or names is None or ref in names

    usable = [c for c in companions if shortfall[id(c)] is None]
    options = [[i for i, c in enumerate(usable) if may_belong(c, b)] for b in buckets]

    # Kuhn's augmenting paths: the largest set of buckets each given its own companion.
    owner: dict[int, int] = {}

    def assign(b: int, seen: set[int]) -> bool:
        for c in options[b]:
            if c not in seen:
                seen.add(c)
                if c not in owner or assign(owner[c], seen):
                    owner[c] = b
                    return True
        return False

    for b in range(len(buckets)):
        assign(b, set())
    covered = set(owner.values())
    if len(covered) == len(buckets):
        return

    # The buckets reachable from an uncovered one by alternating paths share too few
    # possible companions between them (König): those are the ones to report.
    short: set[int] = set()
    frontier = [b for b in range(len(buckets)) if b not in covered]
    while frontier:
        b = frontier.pop()
        if b in short:
            continue
        short.add(b)
        frontier.extend(owner[c] for c in options[b] if c in owner)
    pool = sorted({c for b in short for c in options[b]})

    for b in sorted(short):
        bucket = buckets[b]
        label = _bucket_name(bucket) or bucket.name
        if options[b]:
            names = ", ".join(
                repr(_bucket_name(buckets[i]) or buckets[i].name) for i in sorted(short)
            )
            message = (
                f"{len(short)} buckets ({names}) but only {len(pool)} {what} that could "
                f"belong to them (their bucket is known only after apply): at least "
                f"{len(short) - len(pool)} of these buckets has none"
            )
        else:
            reasons = [
                f"{c.name}: {shortfall[id(c)]}"
                for c in companions
                if shortfall[id(c)] is not None and may_belong(c, bucket)
            ]
            message = f"bucket {label!r} has no {what}" + (
                f" that complies ({'; '.join(reasons)})" if reasons else ""
            )
        yield Finding(bucket.type, bucket.name, message)


def _judge_encryption(config: Resource) -> str | None:
    rules = _items(_get(config.props, "rules"))
    if rules is None:
        return None
    algorithms = [_get(r, "applyServerSideEncryptionByDefault", "sseAlgorithm") for r in rules]
    if any(is_unknown(a) or a in KMS_ALGORITHMS for a in algorithms):
        return None
    shown = ", ".join(str(a) for a in algorithms if a is not None) or "none"
    return f"sseAlgorithm is {shown}, not {' or '.join(KMS_ALGORITHMS)}"


def _judge_public_access_block(block: Resource) -> str | None:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    off = [
        f
        for f in flags
        if not is_unknown(_get(block.props, f)) and _get(block.props, f) is not True
    ]
    return f"{', '.join(off)} not true" if off else None


def _judge_versioning(versioning: Resource) -> str | None:
    status = _get(versioning.props, "versioningConfiguration", "status")
    if is_unknown(status) or status == "Enabled":
        return None
    return f"versioningConfiguration.status is {status or 'not set'}, not Enabled"


def _is_data_bucket(bucket: Resource) -> bool:
    prefix = _bucket_name_prefix(bucket)
    return prefix is not None and "-lake-" in prefix


def _inline_kms(bucket: Resource) -> bool:
    """Encrypted with SSE-KMS by its own (deprecated, valid) inline setting; unknown
    until apply counts as complying, as with a companion's."""
    algorithm = _get(
        bucket.props,
        "serverSideEncryptionConfiguration",
        "rule",
        "applyServerSideEncryptionByDefault",
        "sseAlgorithm",
    )
    return is_unknown(algorithm) or algorithm in KMS_ALGORITHMS


def _inline_versioned(bucket: Resource) -> bool:
    """Versioned by its own inline setting (unknown until apply counts as versioned)."""
    enabled = _get(bucket.props, "versioning", "enabled")
    return is_unknown(enabled) or enabled is True


def check_bucket_encryption(resources: Sequence[Resource], _: Context) -> Iterator[Finding]:
    yield from _bucket_companions(
        resources,
        companion_type=BUCKET_ENCRYPTION,
        what="BucketServerSideEncryptionConfiguration with SSE-KMS",
        judge=_judge_encryption,
        applies=lambda bucket: not _inline_kms(bucket),
    )


def check_bucket_public_access(resources: Sequence[Resource], _: Context) -> Iterator[Finding]:
    yield from _bucket_companions(
        resources,
        companion_type=BUCKET_PUBLIC_ACCESS_BLOCK,
        what="BucketPublicAccessBlock blocking all public access",
        judge=_judge_public_access_block,
    )


def check_data_bucket_versioning(resources: Sequence[Resource], _: Context) -> Iterator[Finding]:
    yield from _bucket_companions(
        resources,
        companion_type=BUCKET_VERSIONING,
        what="BucketVersioning with status Enabled",
        judge=_judge_versioning,
        applies=lambda bucket: _is_data_bucket(bucket) and not _inline_versioned(bucket),
    )


# --- compute ----------------------------------------------------------------------------


def _may_be_gpu_taint(taint: Any) -> bool:
    key, effect = _get(taint, "key"), _get(taint, "effect")
    return (is_unknown(key) or key == GPU_TAINT_KEY) and (
        is_unknown(effect) or effect == GPU_TAINT_EFFECT
    )


def check_gpu_taint(resources: Sequence[Resource], _: Context) -> Iterator[Finding]:
    for group in resources:
        if group.type != NODE_GROUP:
            continue
        gpu_types = _gpu_types(group)
        taints = _items(_get(group.props, "taints"))
        if not gpu_types or taints is None:
            continue
        if not any(_may_be_gpu_taint(t) for t in taints):
            yield Finding(
                group.type,
                group.name,
                f"GPU node group ({', '.join(gpu_types)}) has no taint "
                f"{GPU_TAINT_KEY}:{GPU_TAINT_EFFECT}, so any pod may land on its GPUs",
            )


def check_imdsv2(resources: Sequence[Resource], _: Context) -> Iterator[Finding]:
    for template in resources:
        if template.type != LAUNCH_TEMPLATE:
            continue
        tokens = _get(template.props, "metadataOptions", "httpTokens")
        if is_unknown(tokens) or tokens == "required":
            continue
        yield Finding(
            template.type,
            template.name,
            f"metadataOptions.httpTokens is {tokens or 'not set'}, not required: "
            "instances would still answer IMDSv1",
        )


def check_gpu_count_cap(resources: Sequence[Resource], context: Context) -> Iterator[Finding]:
    if context.max_gpus is None:
        return
    total = 0
    parts: list[str] = []
    gpus = gpu_catalog().gpus
    for group in resources:
        if group.type != NODE_GROUP:
            continue
        gpu_types = _gpu_types(group)
        max_size = _number(_get(group.props, "scalingConfig", "maxSize"))
        # Unknown types or size only add to the total: what is known is a lower bound.
        if not gpu_types or max_size is None:
            continue
        per_node = max(gpus(t) for t in gpu_types)
        total += int(max_size) * per_node
        parts.append(f"{group.name}: {int(max_size)} x {per_node}")
    if total > context.max_gpus:
        yield Finding(
            STACK_TYPE,
            context.stack or "stack",
            f"GPU node groups can scale to {total} GPUs ({', '.join(parts)}), "
            f"over the stack's cap of {context.max_gpus}",
        )


# --- network ------------------------------------------------------------------------------


def _https_only(protocol: Any, from_port: Any, to_port: Any) -> bool | None:
    """Whether the rule allows 443/tcp and nothing else; None if that is unknown."""
    if any(is_unknown(v) for v in (protocol, from_port, to_port)):
        return None
    tcp = isinstance(protocol, str) and protocol.lower() in ("tcp", "6")
    return tcp and _number(from_port) == 443 and _number(to_port) == 443


def _load_balancer_group(group: Resource | None) -> bool | None:
    """Whether the group is tagged ``phasegate:role: load-balancer``; None if unknown."""
    if group is None:
        return None
    tags = _tags(group)
    if tags is None:
        return None
    role = tags.get("phasegate:role")
    return None if is_unknown(role) else role == LOAD_BALANCER_ROLE


def _port(value: Any) -> str:
    number = _number(value)
    return str(int(number)) if number is not None and number.is_integer() else str(value)


def _open_ingress(
    owner: Resource,
    cidrs: Iterable[Any],
    protocol: Any,
    from_port: Any,
    to_port: Any,
    group: Resource | None,
    where: str,
) -> Iterator[Finding]:
    opened = [c for c in cidrs if c in OPEN_CIDRS]
    if not opened:
        return
    https = _https_only(protocol, from_port, to_port)
    if https is None:
        return
    if https:
        load_balancer = _load_balancer_group(group)
        if load_balancer is None or load_balancer:
            return
    low, high = _port(from_port), _port(to_port)
    ports = low if low == high else f"{low}-{high}"
    yield Finding(
        owner.type,
        owner.name,
        f"{where} allows {protocol} port {ports} from {', '.join(opened)}; only 443/tcp "
        f"on a group tagged phasegate:role={LOAD_BALANCER_ROLE} may be open to the internet",
    )


def _cidrs(props: Mapping[str, Any], *keys: str) -> list[Any]:
    out: list[Any] = []
    for key in keys:
        out.extend(_items(_get(props, key)) or [])
    return out


def check_open_ingress(resources: Sequence[Resource], _: Context) -> Iterator[Finding]:
    groups_by_id: dict[str, Resource] = {}
    for group in resources:
        if group.type == SECURITY_GROUP:
            group_id = _known_str(_get(group.props, "id"))
            if group_id:
                groups_by_id[group_id] = group

    def group_of(rule: Resource) -> Resource | None:
        ref = _known_str(_get(rule.props, "securityGroupId"))
        return groups_by_id.get(ref) if ref else None

    for r in resources:
        if r.type == SECURITY_GROUP:
            for i, entry in enumerate(_items(_get(r.props, "ingress")) or []):
                yield from _open_ingress(
                    r,
                    _cidrs(entry, "cidrBlocks", "ipv6CidrBlocks")
                    if isinstance(entry, Mapping)
                    else [],
                    _get(entry, "protocol"),
                    _get(entry, "fromPort"),
                    _get(entry, "toPort"),
                    r,
                    f"ingress[{i}]",
                )
        elif r.type == INGRESS_RULE:
            yield from _open_ingress(
                r,
                [_get(r.props, "cidrIpv4"), _get(r.props, "cidrIpv6")],
                _get(r.props, "ipProtocol"),
                _get(r.props, "fromPort"),
                _get(r.props, "toPort"),
                group_of(r),
                "the rule",
            )
        elif r.type == SECURITY_GROUP_RULE and _get(r.props, "type") == "ingress":
            yield from _open_ingress(
                r,
                _cidrs(r.props, "cidrBlocks", "ipv6CidrBlocks"),
                _get(r.props, "protocol"),
                _get(r.props, "fromPort"),
                _get(r.props, "toPort"),
                group_of(r),
                "the rule",
            )


def check_public_endpoint(resources: Sequence[Resource], context: Context) -> Iterator[Finding]:
    for cluster in resources:
        if cluster.type != EKS_CLUSTER:
            continue
        environment: Any = context.environment
        if environment is None:
            tags = _tags(cluster)
            environment = tags.get("phasegate:environment") if tags is not None else None
        if environment != PROD:
            continue
        public = _get(cluster.props, "vpcConfig", "endpointPublicAccess")
        if is_unknown(public) or public is False:
            continue
        # AWS turns the public endpoint on unless told otherwise.
        shown = "not set (AWS default: true)" if public is None else str(public).lower()
        yield Finding(
            cluster.type,
            cluster.name,
            f"vpcConfig.endpointPublicAccess is {shown}; in prod the API server stays private",
        )


# --- tags ---------------------------------------------------------------------------------


def check_required_tags(resources: Sequence[Resource], _: Context) -> Iterator[Finding]:
    for r in resources:
        if r.type not in TAGGABLE_TYPES:
            continue
        tags = _tags(r)
        if tags is None:
            continue
        # Provider default tags reach ``tagsAll`` only: while that is unknown, a tag
        # missing from ``tags`` may still come from there.
        defaults_unknown = is_unknown(_get(r.props, "tagsAll"))
        missing = [k for k in REQUIRED_TAGS if k not in tags and not defaults_unknown]
        empty = [
            k
            for k in REQUIRED_TAGS
            if k in tags
            and not is_unknown(tags[k])
            and not (isinstance(tags[k], str) and tags[k].strip())
        ]
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if empty:
            problems.append(f"empty {', '.join(empty)}")
        if problems:
            yield Finding(r.type, r.name, f"tags: {'; '.join(problems)}")


RULES: tuple[Rule, ...] = (
    Rule(
        "s3-bucket-kms-encryption",
        "Every S3 bucket has a server-side encryption configuration using SSE-KMS "
        "(aws:kms or aws:kms:dsse).",
        "mandatory",
        "stack",
        check_bucket_encryption,
    ),
    Rule(
        "s3-bucket-public-access-blocked",
        "Every S3 bucket has a public access block with all four settings true.",
        "mandatory",
        "stack",
        check_bucket_public_access,
    ),
    Rule(
        "s3-data-bucket-versioned",
        "Every data bucket (name containing '-lake-') has versioning Enabled.",
        "mandatory",
        "stack",
        check_data_bucket_versioning,
    ),
    Rule(
        "eks-gpu-node-group-tainted",
        f"Every EKS node group with a GPU instance type has the taint "
        f"{GPU_TAINT_KEY}:{GPU_TAINT_EFFECT}.",
        "mandatory",
        "resource",
        check_gpu_taint,
    ),
    Rule(
        "launch-template-imdsv2",
        "Every launch template requires IMDSv2 (metadataOptions.httpTokens = required).",
        "mandatory",
        "resource",
        check_imdsv2,
    ),
    Rule(
        "security-group-no-open-ingress",
        "No security group ingress from 0.0.0.0/0 or ::/0, except 443/tcp on a group "
        f"tagged phasegate:role={LOAD_BALANCER_ROLE}.",
        "mandatory",
        "stack",
        check_open_ingress,
    ),
    Rule(
        "eks-public-endpoint-off-in-prod",
        "In prod, EKS clusters keep the API server endpoint private.",
        "mandatory",
        "resource",
        check_public_endpoint,
    ),
    Rule(
        "required-tags",
        f"Every taggable AWS resource carries non-empty tags {', '.join(REQUIRED_TAGS)}.",
        "mandatory",
        "resource",
        check_required_tags,
    ),
    Rule(
        "gpu-count-cap",
        "The GPU node groups at their maximum size stay within the stack's GPU cap.",
        "mandatory",
        "stack",
        check_gpu_count_cap,
    ),
)
