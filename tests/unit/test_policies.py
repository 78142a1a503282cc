"""The policy pack: each rule's violations and passes, unknowns, overrides, the loader,
and the CrossGuard wrapper in ``policies/__main__.py`` over the same rules."""

from __future__ import annotations

import importlib.util
import inspect
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _projects import shipped_project
from phasegate.engines.base import UNKNOWN
from phasegate.errors import InputError
from phasegate.policy import PolicyResult, Violation, evaluate

SHIPPED = shipped_project()
PACK = SHIPPED / "policies"

RULE_NAMES = (
    "s3-bucket-kms-encryption",
    "s3-bucket-public-access-blocked",
    "s3-data-bucket-versioned",
    "eks-gpu-node-group-tainted",
    "launch-template-imdsv2",
    "security-group-no-open-ingress",
    "eks-public-endpoint-off-in-prod",
    "required-tags",
    "gpu-count-cap",
)


# --- resources as the sandbox declares them ----------------------------------------------


@dataclass(frozen=True)
class Declared:
    """Stands in for the sandbox's DeclaredResource."""

    type: str
    name: str
    inputs: dict[str, Any] = field(default_factory=dict)
    protected: bool = False


def tags(env: str = "sandbox", **extra: Any) -> dict[str, Any]:
    return {
        "phasegate:phase": "compute",
        "phasegate:environment": env,
        "owner": "platform",
        "cost-center": "ml-platform",
        **extra,
    }


def bucket(name: str, physical: Any = None, **props: Any) -> Declared:
    inputs = {"bucket": physical or f"phasegate-sandbox-{name}", "tags": tags(), **props}
    return Declared("aws:s3/bucket:Bucket", name, inputs)


def encryption(name: str, ref: Any, algorithm: Any = "aws:kms") -> Declared:
    rule = {"applyServerSideEncryptionByDefault": {"sseAlgorithm": algorithm}}
    return Declared(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        name,
        {"bucket": ref, "rules": [rule]},
    )


def public_access_block(name: str, ref: Any, **flags: Any) -> Declared:
    inputs = {
        "bucket": ref,
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
        **flags,
    }
    return Declared("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", name, inputs)


def versioning(name: str, ref: Any, status: Any = "Enabled") -> Declared:
    return Declared(
        "aws:s3/bucketVersioning:BucketVersioning",
        name,
        {"bucket": ref, "versioningConfiguration": {"status": status}},
    )


def guarded_bucket(name: str, *, ref: Any = None) -> list[Declared]:
    """A bucket with every companion the S3 rules want; ``ref``: what they name it by."""
    b = bucket(name)
    target = ref if ref is not None else b.inputs["bucket"]
    return [
        b,
        encryption(f"{name}-sse", target),
        public_access_block(f"{name}-pab", target),
        versioning(f"{name}-versioning", target),
    ]


def inline_guarded_bucket(name: str, **inline: Any) -> list[Declared]:
    """A bucket encrypted and versioned by its own inline settings, its public access
    blocked (which has no inline setting)."""
    settings = {
        "serverSideEncryptionConfiguration": {
            "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}
        },
        "versioning": {"enabled": True},
        **inline,
    }
    b = bucket(name, **settings)
    return [b, public_access_block(f"{name}-pab", b.inputs["bucket"])]


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}


def node_group(
    name: str, types: Any, max_size: Any = 2, taints: Any = (GPU_TAINT,), **props: Any
) -> Declared:
    inputs = {
        "clusterName": "sandbox-ai-platform",
        "instanceTypes": list(types) if isinstance(types, list | tuple) else types,
        "scalingConfig": {"desiredSize": 1, "minSize": 0, "maxSize": max_size},
        "tags": tags(),
        **props,
    }
    if taints is not None:
        inputs["taints"] = list(taints) if isinstance(taints, list | tuple) else taints
    return Declared("aws:eks/nodeGroup:NodeGroup", name, inputs)


def launch_template(name: str, metadata: Any) -> Declared:
    inputs: dict[str, Any] = {"tags": tags()}
    if metadata is not None:
        inputs["metadataOptions"] = metadata
    return Declared("aws:ec2/launchTemplate:LaunchTemplate", name, inputs)


def ingress(port: Any, cidrs: Any = ("0.0.0.0/0",), v6: Any = (), protocol: Any = "tcp") -> dict:
    return {
        "protocol": protocol,
        "fromPort": port,
        "toPort": port,
        "cidrBlocks": list(cidrs) if isinstance(cidrs, tuple) else cidrs,
        "ipv6CidrBlocks": list(v6) if isinstance(v6, tuple) else v6,
    }


def security_group(name: str, *entries: dict, role: Any = None, **props: Any) -> Declared:
    extra = {} if role is None else {"phasegate:role": role}
    inputs = {"vpcId": "vpc-1", "ingress": list(entries), "tags": tags(**extra), **props}
    return Declared("aws:ec2/securityGroup:SecurityGroup", name, inputs)


def ingress_rule(name: str, group_id: Any, port: Any, **props: Any) -> Declared:
    inputs = {
        "securityGroupId": group_id,
        "ipProtocol": "tcp",
        "fromPort": port,
        "toPort": port,
        "tags": tags(),
        **props,
    }
    return Declared("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", name, inputs)


def group_rule(
    name: str, group_id: Any, port: Any, kind: Any = "ingress", **props: Any
) -> Declared:
    inputs = {
        "type": kind,
        "securityGroupId": group_id,
        "protocol": "tcp",
        "fromPort": port,
        "toPort": port,
        **props,
    }
    return Declared("aws:ec2/securityGroupRule:SecurityGroupRule", name, inputs)


def cluster(name: str, public: Any, env: str = "prod") -> Declared:
    vpc: dict[str, Any] = {"subnetIds": ["subnet-1"], "endpointPrivateAccess": True}
    if public is not None:
        vpc["endpointPublicAccess"] = public
    return Declared("aws:eks/cluster:Cluster", name, {"vpcConfig": vpc, "tags": tags(env)})


def role(name: str, tag_map: Any) -> Declared:
    inputs: dict[str, Any] = {"assumeRolePolicy": "{}"}
    if tag_map is not None:
        inputs["tags"] = tag_map
    return Declared("aws:iam/role:Role", name, inputs)


def run(
    resources: list[Declared],
    *,
    stack: str = "sandbox-compute",
    config: dict[str, Any] | None = None,
    pack_dir: Path = PACK,
) -> PolicyResult:
    return evaluate(resources, stack=stack, config=config or {}, pack_dir=pack_dir)


def flagged(result: PolicyResult, rule: str) -> list[str]:
    return [v.resource_name for v in result.violations if v.rule == rule]


# --- every rule: one that violates, one that complies -----------------------------------

SG_ID = {"id": "sg-0123"}


@dataclass(frozen=True)
class Case:
    rule: str
    resources: list[Declared]
    flagged: tuple[str, ...] = ()
    stack: str = "sandbox-compute"
    config: dict[str, Any] = field(default_factory=dict)


VIOLATING: dict[str, Case] = {
    "kms/no-configuration": Case(
        "s3-bucket-kms-encryption",
        [bucket("lake-raw"), public_access_block("pab", "phasegate-sandbox-lake-raw")],
        ("lake-raw",),
    ),
    "kms/aes256": Case(
        "s3-bucket-kms-encryption",
        [bucket("artifacts"), encryption("sse", "phasegate-sandbox-artifacts", "AES256")],
        ("artifacts",),
    ),
    "kms/configuration-of-another-bucket": Case(
        "s3-bucket-kms-encryption",
        [*guarded_bucket("a"), bucket("b")],
        ("b",),
    ),
    "kms/two-buckets-one-configuration-known-after-apply": Case(
        "s3-bucket-kms-encryption",
        [bucket("a"), bucket("b"), encryption("sse", UNKNOWN)],
        ("a", "b"),
    ),
    "kms/inline-aes256": Case(
        "s3-bucket-kms-encryption",
        [
            bucket(
                "artifacts",
                serverSideEncryptionConfiguration={
                    "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
                },
            )
        ],
        ("artifacts",),
    ),
    "public-access/flag-off": Case(
        "s3-bucket-public-access-blocked",
        [
            bucket("artifacts"),
            public_access_block("pab", "phasegate-sandbox-artifacts", blockPublicPolicy=False),
        ],
        ("artifacts",),
    ),
    "public-access/flag-not-set": Case(
        "s3-bucket-public-access-blocked",
        [bucket("artifacts"), public_access_block("pab", UNKNOWN, restrictPublicBuckets=None)],
        ("artifacts",),
    ),
    "public-access/none": Case(
        "s3-bucket-public-access-blocked", [bucket("artifacts")], ("artifacts",)
    ),
    "versioned/suspended": Case(
        "s3-data-bucket-versioned",
        [bucket("raw", "x-lake-raw"), versioning("v", "x-lake-raw", "Suspended")],
        ("raw",),
    ),
    "versioned/none": Case("s3-data-bucket-versioned", [bucket("lake-raw")], ("lake-raw",)),
    "versioned/inline-off": Case(
        "s3-data-bucket-versioned",
        [bucket("lake-raw", versioning={"enabled": False})],
        ("lake-raw",),
    ),
    "versioned/autonamed-lake-bucket": Case(
        "s3-data-bucket-versioned",
        [Declared("aws:s3/bucket:Bucket", "raw", {"bucketPrefix": "acme-lake-raw"})],
        ("raw",),
    ),
    "taint/none": Case(
        "eks-gpu-node-group-tainted", [node_group("gpu", ["g5.xlarge"], taints=())], ("gpu",)
    ),
    "taint/wrong-effect": Case(
        "eks-gpu-node-group-tainted",
        [
            node_group(
                "gpu", ["m5.large", "g6.xlarge"], taints=[{**GPU_TAINT, "effect": "NO_EXECUTE"}]
            )
        ],
        ("gpu",),
    ),
    "taint/absent": Case(
        "eks-gpu-node-group-tainted", [node_group("gpu", ["p5.48xlarge"], taints=None)], ("gpu",)
    ),
    "imds/optional": Case(
        "launch-template-imdsv2", [launch_template("lt", {"httpTokens": "optional"})], ("lt",)
    ),
    "imds/not-set": Case("launch-template-imdsv2", [launch_template("lt", None)], ("lt",)),
    "ingress/ssh-inline": Case(
        "security-group-no-open-ingress",
        [security_group("nodes", ingress(22), role="load-balancer")],
        ("nodes",),
    ),
    "ingress/https-ipv6-not-load-balancer": Case(
        "security-group-no-open-ingress",
        [security_group("nodes", ingress(443, cidrs=(), v6=("::/0",)))],
        ("nodes",),
    ),
    "ingress/all-protocols-on-load-balancer": Case(
        "security-group-no-open-ingress",
        [security_group("alb", ingress(0, protocol="-1"), role="load-balancer")],
        ("alb",),
    ),
    "ingress/vpc-rule": Case(
        "security-group-no-open-ingress",
        [ingress_rule("ssh", UNKNOWN, 22, cidrIpv4="0.0.0.0/0")],
        ("ssh",),
    ),
    "ingress/vpc-rule-https-on-other-group": Case(
        "security-group-no-open-ingress",
        [security_group("nodes", **SG_ID), ingress_rule("https", "sg-0123", 443, cidrIpv6="::/0")],
        ("https",),
    ),
    "ingress/group-rule": Case(
        "security-group-no-open-ingress",
        [group_rule("ssh", "sg-0123", 22, cidrBlocks=["10.0.0.0/8", "0.0.0.0/0"])],
        ("ssh",),
    ),
    "endpoint/public": Case(
        "eks-public-endpoint-off-in-prod", [cluster("cluster", True)], ("cluster",), "prod-pilot"
    ),
    "endpoint/default-is-public": Case(
        "eks-public-endpoint-off-in-prod", [cluster("cluster", None)], ("cluster",), "prod-pilot"
    ),
    "tags/missing": Case(
        "required-tags", [role("r", {k: v for k, v in tags().items() if k != "owner"})], ("r",)
    ),
    "tags/empty": Case("required-tags", [role("r", tags(**{"cost-center": " "}))], ("r",)),
    "tags/none": Case("required-tags", [role("r", None)], ("r",)),
    "gpu-cap/over": Case(
        "gpu-count-cap",
        [node_group("train", ["p5.48xlarge"], max_size=3)],
        ("sandbox-compute",),
        config={"phasegate:max_gpus": 16},
    ),
    "gpu-cap/largest-type-counts": Case(
        "gpu-count-cap",
        [
            node_group("infer", ["g5.xlarge", "g5.12xlarge"], max_size=4),
            node_group("cpu", ["m5.large"], max_size=100, taints=()),
        ],
        ("sandbox-compute",),
        config={"phasegate:max_gpus": "15"},
    ),
}

COMPLIANT: dict[str, Case] = {
    "kms/kms": Case("s3-bucket-kms-encryption", guarded_bucket("lake-raw")),
    "kms/inline": Case("s3-bucket-kms-encryption", inline_guarded_bucket("raw")),
    "kms/inline-known-after-apply": Case(
        "s3-bucket-kms-encryption",
        inline_guarded_bucket("raw", serverSideEncryptionConfiguration=UNKNOWN),
    ),
    "versioned/inline": Case("s3-data-bucket-versioned", inline_guarded_bucket("lake-raw")),
    "kms/dsse-by-id-known-after-apply": Case(
        "s3-bucket-kms-encryption",
        [
            *guarded_bucket("a", ref=UNKNOWN),
            *guarded_bucket("b", ref=UNKNOWN)[:1],
            encryption("b-sse", UNKNOWN, "aws:kms:dsse"),
            public_access_block("b-pab", UNKNOWN),
        ],
    ),
    "public-access/all-on": Case("s3-bucket-public-access-blocked", guarded_bucket("artifacts")),
    "versioned/enabled": Case("s3-data-bucket-versioned", guarded_bucket("lake-curated")),
    "versioned/not-a-data-bucket": Case(
        "s3-data-bucket-versioned", guarded_bucket("artifacts")[:3]
    ),
    "taint/tainted": Case("eks-gpu-node-group-tainted", [node_group("gpu", ["g5.xlarge"])]),
    "taint/not-gpu": Case(
        "eks-gpu-node-group-tainted", [node_group("cpu", ["m5.large"], taints=())]
    ),
    "imds/required": Case(
        "launch-template-imdsv2",
        [launch_template("lt", {"httpTokens": "required", "httpEndpoint": "enabled"})],
    ),
    "ingress/https-on-load-balancer": Case(
        "security-group-no-open-ingress",
        [
            security_group("alb", ingress(443.0, v6=("::/0",)), role="load-balancer", **SG_ID),
            ingress_rule("https", "sg-0123", 443, cidrIpv4="0.0.0.0/0"),
            group_rule("https6", "sg-0123", 443, ipv6CidrBlocks=["::/0"]),
        ],
    ),
    "ingress/internal-only": Case(
        "security-group-no-open-ingress",
        [
            security_group("nodes", ingress(22, cidrs=("10.20.0.0/16",))),
            ingress_rule("ssh", UNKNOWN, 22, cidrIpv4="10.0.0.0/8"),
            group_rule("egress", UNKNOWN, 0, kind="egress", cidrBlocks=["0.0.0.0/0"]),
        ],
    ),
    "endpoint/private-in-prod": Case(
        "eks-public-endpoint-off-in-prod", [cluster("cluster", False)], stack="prod-pilot"
    ),
    "endpoint/public-outside-prod": Case(
        "eks-public-endpoint-off-in-prod",
        [cluster("cluster", True, "staging")],
        stack="staging-pilot",
    ),
    "tags/all": Case("required-tags", [role("r", tags())]),
    "tags/from-provider-defaults": Case(
        "required-tags", [Declared("aws:iam/role:Role", "r", {"tags": {}, "tagsAll": tags()})]
    ),
    "tags/not-taggable": Case(
        "required-tags",
        [Declared("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "attach", {"role": "r"})],
    ),
    "gpu-cap/at-cap": Case(
        "gpu-count-cap",
        [
            node_group("train", ["p5.48xlarge"], max_size=2),
            node_group("cpu", ["m5.large"], taints=()),
        ],
        config={"phasegate:max_gpus": 16},
    ),
    "gpu-cap/no-cap": Case("gpu-count-cap", [node_group("train", ["p5.48xlarge"], max_size=64)]),
}


def test_every_rule_has_a_violating_and_a_compliant_case() -> None:
    assert {c.rule for c in VIOLATING.values()} == set(RULE_NAMES)
    assert {c.rule for c in COMPLIANT.values()} == set(RULE_NAMES)


@pytest.mark.parametrize("case", VIOLATING.values(), ids=VIOLATING.keys())
def test_violating_resources_are_reported(case: Case) -> None:
    result = run(case.resources, stack=case.stack, config=case.config)
    assert sorted(flagged(result, case.rule)) == sorted(case.flagged)
    for violation in result.violations:
        if violation.rule == case.rule:
            assert violation.enforcement == "mandatory"
            assert violation.message
            assert violation in result.mandatory


@pytest.mark.parametrize("case", COMPLIANT.values(), ids=COMPLIANT.keys())
def test_compliant_resources_pass_every_rule(case: Case) -> None:
    result = run(case.resources, stack=case.stack, config=case.config)
    assert result.violations == []


def test_a_violation_names_its_resource_and_what_is_wrong() -> None:
    result = run([launch_template("lt", {"httpTokens": "optional"})])
    assert result.violations == [
        Violation(
            rule="launch-template-imdsv2",
            enforcement="mandatory",
            resource_type="aws:ec2/launchTemplate:LaunchTemplate",
            resource_name="lt",
            message=result.violations[0].message,
        )
    ]
    assert "httpTokens is optional" in result.violations[0].message
    cap = run([node_group("t", ["p4d.24xlarge"], max_size=3)], config={"phasegate:max_gpus": 8})
    assert cap.violations[0].resource_type == "pulumi:pulumi:Stack"
    assert "24 GPUs" in cap.violations[0].message and "cap of 8" in cap.violations[0].message


# --- unknown values never violate --------------------------------------------------------

UNKNOWN_CASES: dict[str, Case] = {
    "kms/reference": Case("s3-bucket-kms-encryption", [bucket("a"), encryption("sse", UNKNOWN)]),
    "kms/bucket-name": Case(
        "s3-bucket-kms-encryption", [bucket("a", UNKNOWN), encryption("sse", "some-other-bucket")]
    ),
    "kms/algorithm": Case(
        "s3-bucket-kms-encryption", [bucket("a"), encryption("sse", "phasegate-sandbox-a", UNKNOWN)]
    ),
    "kms/rules": Case(
        "s3-bucket-kms-encryption",
        [
            bucket("a"),
            Declared(encryption("x", UNKNOWN).type, "sse", {"bucket": UNKNOWN, "rules": UNKNOWN}),
        ],
    ),
    "public-access/flag": Case(
        "s3-bucket-public-access-blocked",
        [bucket("a"), public_access_block("pab", UNKNOWN, blockPublicPolicy=UNKNOWN)],
    ),
    "versioned/status": Case(
        "s3-data-bucket-versioned", [bucket("lake-raw"), versioning("v", UNKNOWN, UNKNOWN)]
    ),
    "versioned/bucket-name": Case("s3-data-bucket-versioned", [bucket("lake-raw", UNKNOWN)]),
    "taint/instance-types": Case(
        "eks-gpu-node-group-tainted", [node_group("gpu", UNKNOWN, taints=())]
    ),
    "taint/taints": Case(
        "eks-gpu-node-group-tainted", [node_group("gpu", ["g5.xlarge"], taints=UNKNOWN)]
    ),
    "taint/effect": Case(
        "eks-gpu-node-group-tainted",
        [node_group("gpu", ["g5.xlarge"], taints=[{"key": "nvidia.com/gpu", "effect": UNKNOWN}])],
    ),
    "imds/options": Case("launch-template-imdsv2", [launch_template("lt", UNKNOWN)]),
    "imds/tokens": Case("launch-template-imdsv2", [launch_template("lt", {"httpTokens": UNKNOWN})]),
    "ingress/cidrs": Case(
        "security-group-no-open-ingress", [security_group("g", ingress(22, cidrs=UNKNOWN))]
    ),
    "ingress/port": Case("security-group-no-open-ingress", [security_group("g", ingress(UNKNOWN))]),
    "ingress/group-of-https-rule": Case(
        "security-group-no-open-ingress",
        [
            security_group("nodes", **SG_ID),
            ingress_rule("https", UNKNOWN, 443, cidrIpv4="0.0.0.0/0"),
        ],
    ),
    "ingress/group-tags": Case(
        "security-group-no-open-ingress",
        [security_group("g", ingress(443), tags=UNKNOWN)],
    ),
    "ingress/rule-type": Case(
        "security-group-no-open-ingress",
        [group_rule("r", "sg-1", 22, kind=UNKNOWN, cidrBlocks=["0.0.0.0/0"])],
    ),
    "endpoint/public-access": Case(
        "eks-public-endpoint-off-in-prod", [cluster("c", UNKNOWN)], stack="prod-pilot"
    ),
    "endpoint/vpc-config": Case(
        "eks-public-endpoint-off-in-prod",
        [Declared("aws:eks/cluster:Cluster", "c", {"vpcConfig": UNKNOWN, "tags": tags("prod")})],
        stack="prod-pilot",
    ),
    "tags/all-tags": Case("required-tags", [role("r", UNKNOWN)]),
    "tags/one-value": Case("required-tags", [role("r", tags(owner=UNKNOWN))]),
    "tags/provider-defaults": Case(
        "required-tags", [Declared("aws:iam/role:Role", "r", {"tags": {}, "tagsAll": UNKNOWN})]
    ),
    "gpu-cap/max-size": Case(
        "gpu-count-cap",
        [node_group("t", ["p5.48xlarge"], max_size=UNKNOWN)],
        config={"phasegate:max_gpus": 0},
    ),
    "gpu-cap/instance-types": Case(
        "gpu-count-cap", [node_group("t", UNKNOWN, max_size=10)], config={"phasegate:max_gpus": 0}
    ),
}


def test_every_rule_has_an_unknown_case() -> None:
    assert {c.rule for c in UNKNOWN_CASES.values()} == set(RULE_NAMES)


@pytest.mark.parametrize("case", UNKNOWN_CASES.values(), ids=UNKNOWN_CASES.keys())
def test_an_unknown_deciding_value_never_violates(case: Case) -> None:
    result = run(case.resources, stack=case.stack, config=case.config)
    assert flagged(result, case.rule) == []


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*prefix, i)
            yield from _paths(item, (*prefix, i))


def _with_unknown(value: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return UNKNOWN
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: _with_unknown(v, rest) if k == head else v for k, v in value.items()}
    return [_with_unknown(v, rest) if i == head else v for i, v in enumerate(value)]


@pytest.mark.parametrize("case", COMPLIANT.values(), ids=COMPLIANT.keys())
def test_making_any_value_of_a_compliant_stack_unknown_never_violates(case: Case) -> None:
    tried = 0
    for index, resource in enumerate(case.resources):
        for path in _paths(resource.inputs):
            changed = Declared(resource.type, resource.name, _with_unknown(resource.inputs, path))
            resources = [*case.resources[:index], changed, *case.resources[index + 1 :]]
            result = run(resources, stack=case.stack, config=case.config)
            assert result.violations == [], f"{resource.name}.{'.'.join(map(str, path))}"
            tried += 1
    assert tried > 0


# --- enforcement and config -----------------------------------------------------------------

UNTAGGED = [role("r", None), launch_template("lt", {"httpTokens": "optional"})]


def test_config_turns_a_rule_advisory() -> None:
    result = run(UNTAGGED, config={"phasegate:policy": {"required-tags": "advisory"}})
    assert [(v.rule, v.enforcement) for v in result.advisory] == [("required-tags", "advisory")]
    assert [v.rule for v in result.mandatory] == ["launch-template-imdsv2"]


def test_config_disables_a_rule() -> None:
    result = run(UNTAGGED, config={"phasegate:policy": {"launch-template-imdsv2": "disabled"}})
    assert [v.rule for v in result.violations] == ["required-tags"]
    assert [v.rule for v in run(UNTAGGED).violations] == ["launch-template-imdsv2", "required-tags"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (
            {"required-tags": "warn"},
            "required-tags: 'warn' is not an enforcement level; "
            "allowed: mandatory, advisory, disabled",
        ),
        ({"no-such-rule": "advisory"}, "no rule named 'no-such-rule'; rules: s3-bucket-kms"),
        ("advisory", "must map rule names to one of mandatory, advisory, disabled"),
    ],
)
def test_a_bad_enforcement_override_is_one_clear_error(value: Any, says: str) -> None:
    with pytest.raises(InputError) as raised:
        run(UNTAGGED, stack="prod-pilot", config={"phasegate:policy": value})
    assert str(raised.value).startswith("Pulumi.prod-pilot.yaml: phasegate:policy: ")
    assert says in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("value", [-1, "many", True, 2.5])
def test_a_bad_gpu_cap_is_one_clear_error(value: Any) -> None:
    with pytest.raises(InputError, match=r"phasegate:max_gpus: must be a whole number"):
        run([], config={"phasegate:max_gpus": value})


# --- the pack on disk -------------------------------------------------------------------------


def _pack_copy(tmp_path: Path, *, with_catalog: bool = True) -> Path:
    (tmp_path / "policies").mkdir()
    shutil.copy2(PACK / "rules.py", tmp_path / "policies" / "rules.py")
    if with_catalog:
        (tmp_path / "phases").mkdir()
        shutil.copy2(SHIPPED / "phases" / "catalog.py", tmp_path / "phases" / "catalog.py")
    return tmp_path / "policies"


def test_the_crossguard_entry_point_is_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = _pack_copy(tmp_path)
    (pack / "__main__.py").write_text("raise RuntimeError('the CrossGuard pack was imported')\n")
    monkeypatch.setitem(sys.modules, "pulumi_policy", None)  # any import of it now fails
    result = run([node_group("gpu", ["g5.xlarge"], taints=())], pack_dir=pack)
    assert flagged(result, "eks-gpu-node-group-tainted") == ["gpu"]


def test_edits_to_the_rules_apply_on_the_next_evaluation(tmp_path: Path) -> None:
    pack = _pack_copy(tmp_path)
    resources = [launch_template("lt", {"httpTokens": "optional"})]
    assert [v.enforcement for v in run(resources, pack_dir=pack).violations] == ["mandatory"]
    rules_file = pack / "rules.py"
    source = rules_file.read_text()
    marker = '"launch-template-imdsv2",\n'
    start = source.index(marker)
    level = source.index('"mandatory"', start)
    rules_file.write_text(source[:level] + '"advisory"' + source[level + len('"mandatory"') :])
    assert [v.enforcement for v in run(resources, pack_dir=pack).violations] == ["advisory"]


def test_no_policies_directory_means_no_rules(tmp_path: Path) -> None:
    result = run(UNTAGGED, pack_dir=tmp_path / "policies")
    assert result == PolicyResult(violations=[])


def test_a_pack_without_rules_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    with pytest.raises(InputError, match=r"has no rules\.py"):
        run(UNTAGGED, pack_dir=tmp_path / "policies")


def test_a_broken_rules_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    pack = _pack_copy(tmp_path)
    (pack / "rules.py").write_text("RULES = (\n")
    with pytest.raises(InputError, match=r"rules\.py: cannot load the policy pack"):
        run(UNTAGGED, pack_dir=pack)


def test_a_missing_gpu_catalog_is_named(tmp_path: Path) -> None:
    pack = _pack_copy(tmp_path, with_catalog=False)
    assert run(UNTAGGED, pack_dir=pack).violations  # rules that need no catalog still run
    with pytest.raises(InputError, match=r"phases/catalog\.py is missing"):
        run([node_group("gpu", ["g5.xlarge"])], pack_dir=pack)


# --- rules.py itself ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules_module() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("_test_policy_rules", PACK / "rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_rules_are_named_described_and_leveled(rules_module: ModuleType) -> None:
    assert tuple(r.name for r in rules_module.RULES) == RULE_NAMES
    for rule in rules_module.RULES:
        assert rule.description and rule.enforcement == "mandatory"
        assert rule.scope in ("resource", "stack")
    assert rules_module.UNKNOWN == UNKNOWN


def test_rules_import_nothing_from_pulumi() -> None:
    source = (PACK / "rules.py").read_text()
    assert "import pulumi" not in source and "from pulumi" not in source


def _aws_class(token: str) -> type:
    import pulumi_aws

    module = token.split(":")[1].split("/")[0]
    return getattr(getattr(pulumi_aws, module), token.rsplit(":", 1)[1])


def _takes_tags(token: str) -> bool:
    cls = _aws_class(token)
    assert cls.pulumi_type == token  # type: ignore[attr-defined]
    return "tags" in inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]


def test_taggable_types_take_tags_in_pulumi_aws(rules_module: ModuleType) -> None:
    untaggable = [t for t in sorted(rules_module.TAGGABLE_TYPES) if not _takes_tags(t)]
    assert untaggable == []
    for token in (
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:route53/record:Record",
        rules_module.BUCKET_ENCRYPTION,
        rules_module.BUCKET_VERSIONING,
    ):
        assert not _takes_tags(token)
        assert token not in rules_module.TAGGABLE_TYPES


TAGS_NOT_JUDGED = frozenset({"aws:s3/bucketObjectv2:BucketObjectv2"})
"""An object's tags label the data in it, not what the platform spends."""


def test_every_taggable_type_the_sandbox_emulates_is_judged(rules_module: ModuleType) -> None:
    """A type the sandbox learns to make is one a program can carry untagged."""
    from phasegate.engines.sandbox.handlers import REGISTRY, handler_for

    handler_for("aws:s3/bucket:Bucket")  # fills the registry
    emulated = {t for t in REGISTRY if t.startswith("aws:") and _takes_tags(t)}
    assert sorted(emulated - rules_module.TAGGABLE_TYPES - TAGS_NOT_JUDGED) == []


# --- the CrossGuard pack over the same rules ------------------------------------------------


@pytest.fixture
def crossguard(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    pytest.importorskip("pulumi_policy")
    monkeypatch.syspath_prepend(str(PACK))
    monkeypatch.delitem(sys.modules, "rules", raising=False)
    spec = importlib.util.spec_from_file_location("_test_crossguard_pack", PACK / "__main__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # not run as __main__: no analyzer server starts
    yield module
    sys.modules.pop("rules", None)


CG_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # CrossGuard's unknown string


def _options() -> Any:
    from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions

    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _resource_args(r: Declared) -> Any:
    """What CrossGuard hands a resource policy: props behind its unknown-checking proxy."""
    from pulumi_policy import ResourceValidationArgs
    from pulumi_policy.proxy import unknown_checking_proxy

    props = unknown_checking_proxy(r.inputs)
    return ResourceValidationArgs(r.type, props, f"urn:{r.name}", r.name, _options(), None)


def _stack_args(resources: list[Declared], config: dict[str, Any] | None = None) -> Any:
    from pulumi_policy import PolicyResource, StackValidationArgs
    from pulumi_policy.proxy import unknown_checking_proxy

    return StackValidationArgs(
        [
            PolicyResource(
                r.type,
                unknown_checking_proxy(r.inputs),
                f"urn:{r.name}",
                r.name,
                _options(),
                None,
                None,
                [],
                {},
            )
            for r in resources
        ],
        config,
    )


def _policy(module: ModuleType, name: str) -> Any:
    return next(p for p in module.build_policies() if p.name == name)


def _reports(policy: Any, args: Any) -> list[tuple[str, str | None]]:
    reported: list[tuple[str, str | None]] = []
    policy.validate(args, lambda message, urn=None: reported.append((message, urn)))
    return reported


def test_crossguard_policies_mirror_the_rules(crossguard: ModuleType) -> None:
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

    policies = crossguard.build_policies()
    assert tuple(p.name for p in policies) == RULE_NAMES
    stack_level = {
        "s3-bucket-kms-encryption",
        "s3-bucket-public-access-blocked",
        "s3-data-bucket-versioned",
        "security-group-no-open-ingress",
        "gpu-count-cap",
    }
    for p in policies:
        assert p.enforcement_level is EnforcementLevel.MANDATORY
        kind = StackValidationPolicy if p.name in stack_level else ResourceValidationPolicy
        assert isinstance(p, kind), p.name
    cap = _policy(crossguard, "gpu-count-cap")
    assert cap.config_schema.properties["maxGpus"]["type"] == "integer"


def test_crossguard_stack_policy_reports_on_the_resource_urn(crossguard: ModuleType) -> None:
    policy = _policy(crossguard, "s3-bucket-kms-encryption")
    plain = [bucket("a"), encryption("sse", "phasegate-sandbox-b")]
    reported = _reports(policy, _stack_args(plain))
    assert [urn for _, urn in reported] == ["urn:a"]
    assert "bucket 'phasegate-sandbox-a' has no" in reported[0][0]
    pending = [bucket("a"), encryption("sse", CG_UNKNOWN)]
    assert _reports(policy, _stack_args(pending)) == []


def test_crossguard_unknowns_do_not_violate_or_abort(crossguard: ModuleType) -> None:
    policy = _policy(crossguard, "launch-template-imdsv2")
    assert _reports(policy, _resource_args(launch_template("lt", {"httpTokens": CG_UNKNOWN}))) == []
    assert len(_reports(policy, _resource_args(launch_template("lt", {"httpTokens": "no"})))) == 1
    tags_policy = _policy(crossguard, "required-tags")
    assert _reports(tags_policy, _resource_args(role("r", tags(owner=CG_UNKNOWN)))) == []
    # The unknown value is skipped, the rest is still judged: the other tags are missing.
    missing = _reports(tags_policy, _resource_args(role("s", {"owner": CG_UNKNOWN})))
    assert [urn for _, urn in missing] == [None]
    assert "missing phasegate:phase, phasegate:environment, cost-center" in missing[0][0]


def test_crossguard_gpu_cap_comes_from_policy_config(crossguard: ModuleType) -> None:
    policy = _policy(crossguard, "gpu-count-cap")
    groups = [node_group("train", ["p5.48xlarge"], max_size=2)]
    assert _reports(policy, _stack_args(groups, {"maxGpus": 16})) == []
    over = _reports(policy, _stack_args(groups, {"maxGpus": 8}))
    assert len(over) == 1 and over[0][1] is None and "16 GPUs" in over[0][0]


def test_crossguard_environment_comes_from_the_stack_then_the_tag(
    crossguard: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _policy(crossguard, "eks-public-endpoint-off-in-prod")

    def reports(env_tag: str) -> int:
        return len(_reports(policy, _resource_args(cluster("c", True, env_tag))))

    monkeypatch.delenv("PULUMI_STACK", raising=False)
    assert (reports("prod"), reports("staging")) == (1, 0)
    monkeypatch.setenv("PULUMI_STACK", "prod-pilot")
    assert reports("staging") == 1
    monkeypatch.setenv("PULUMI_STACK", "staging-pilot")
    assert reports("prod") == 0
