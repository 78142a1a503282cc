"""Check kinds against real things: an emulated cloud with real buckets, node groups,
templates, records and alarms; HTTP and a Kubernetes API server on loopback; Python
functions in a project's phases/. And run_check's retries, passes in a row, timeout and
skips on a fake clock, and parameter references."""

from __future__ import annotations

import ast
import json
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import phasegate.checks as checks_package
from _projects import shipped_project
from phasegate.checks import KINDS, CheckContext, CheckSpec, load_gpu_catalog, run_check
from phasegate.checks.base import (
    CheckError,
    CheckKind,
    Params,
    Probe,
    UnresolvedReference,
    resolve_references,
)
from phasegate.checks.kubernetes import SANDBOX_REASON
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.errors import InputError
from phasegate.spec import MIGRATION_FILE, load_migration
from phasegate.state import CheckResult

REGION = "us-east-1"
ACCOUNT = "123456789012"
SHIPPED = shipped_project()
ROLE = f"arn:aws:iam::{ACCOUNT}:role/nodes"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}


# --- helpers --------------------------------------------------------------------------


class FakeTime:
    """A clock that moves only when slept on; remembers the sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.at: dict[float, Callable[[], None]] = {}
        """Things that happen once the clock reaches a time."""

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for when in sorted(self.at):
            if when <= self.now:
                self.at.pop(when)()


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _spec(kind: str, params: dict[str, Any], **options: Any) -> CheckSpec:
    """A check as migration.yaml declares it; one attempt, no waiting, unless told."""
    return CheckSpec(
        name="probe", kind=kind, params=params, **{"interval": 0, "retries": 0, **options}
    )


def _ctx(aws: Callable[[str], Any] | None = None, **fields: Any) -> CheckContext:
    fields.setdefault("outputs", {})
    return CheckContext(environment="staging", stack="staging-compute", aws=aws, **fields)


def _run(kind: str, params: dict[str, Any], ctx: CheckContext, **options: Any) -> CheckResult:
    return run_check(_spec(kind, params, **options), ctx)


# --- the emulated cloud ---------------------------------------------------------------


@pytest.fixture
def aws(emu: Emulator) -> Callable[[str], Any]:
    """``ctx.aws`` on the emulated cloud: one client per service."""
    session = emu.session()
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, region_name=REGION)
        return clients[service]

    return client


@pytest.fixture(scope="module")
def catalog() -> dict[str, int]:
    return load_gpu_catalog(SHIPPED)


# --- the registry ---------------------------------------------------------------------


def test_the_registry_holds_the_issue_kinds() -> None:
    assert set(KINDS) == {
        "outputs",
        "python",
        "s3_bucket",
        "s3_parity",
        "eks_nodegroup",
        "vpc_endpoint",
        "launch_template",
        "route53_weights",
        "cloudwatch_alarm",
        "http",
        "kubernetes",
    }


def _imported(node: ast.AST, package: str) -> set[str]:
    """What an import statement may name, a relative one resolved from ``package``."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if not isinstance(node, ast.ImportFrom):
        return set()
    parts = package.split(".")
    parent = parts[: len(parts) + 1 - node.level] if node.level else []
    base = ".".join([*parent, node.module] if node.module else parent)
    return {base} | {f"{base}.{alias.name}" for alias in node.names}


def test_the_checks_package_imports_none_of_the_modules_that_import_it() -> None:
    """spec, project and orchestrator build on phasegate.checks; an import back from it,
    even inside a function or under TYPE_CHECKING, would make an import cycle again."""
    above = {"phasegate.spec", "phasegate.project", "phasegate.orchestrator"}
    package = Path(checks_package.__file__).parent
    found = [
        f"{module.name}: {name}"
        for module in sorted(package.glob("*.py"))
        for node in ast.walk(ast.parse(module.read_text()))
        for name in sorted(_imported(node, checks_package.__name__) & above)
    ]
    assert found == []


def test_the_gpu_catalog_is_the_projects() -> None:
    found = load_gpu_catalog(SHIPPED)
    assert found["g5.xlarge"] == 1
    assert found["p5.48xlarge"] == 8
    assert found["g6.12xlarge"] == 4


# --- run_check on a fake clock --------------------------------------------------------


def scripted(ctx: CheckContext, **_: Any) -> Any:
    """A check function that answers from ``ctx.config['script']``, one answer per call."""
    answer = ctx.config["script"].pop(0)
    if isinstance(answer, Exception):
        raise answer
    return answer


def _scripted(script: list[Any], time_: FakeTime, **options: Any) -> CheckResult:
    ctx = _ctx(config={"script": script}, clock=time_.clock, sleep=time_.sleep)
    return run_check(_spec("python", {"function": f"{__name__}:scripted"}, **options), ctx)


def test_required_passes_must_come_in_a_row() -> None:
    fake = FakeTime()
    script = [False, True, True, False, True, True, (True, "third in a row"), True]
    result = _scripted(script, fake, interval=5, retries=5, required_passes=3, timeout=600)
    assert (result.result, result.attempts, result.message) == ("pass", 7, "third in a row")
    assert fake.sleeps == [5] * 6
    assert result.duration == 30


def test_more_failures_than_retries_fail_with_the_last_message() -> None:
    fake = FakeTime()
    script = [(False, "first"), (False, "second"), (False, "third"), True]
    result = _scripted(script, fake, interval=2, retries=2)
    assert (result.result, result.attempts, result.message) == ("fail", 3, "third")
    assert fake.sleeps == [2, 2]


def test_a_probe_that_raises_is_a_failed_attempt_then_retried() -> None:
    result = _scripted([RuntimeError("API throttled"), True], FakeTime(), retries=1)
    assert (result.result, result.attempts) == ("pass", 2)
    result = _scripted([RuntimeError("API throttled")], FakeTime())
    assert result.result == "fail"
    assert "raised RuntimeError: API throttled" in result.message


def test_the_timeout_ends_the_attempts() -> None:
    fake = FakeTime()
    result = _scripted([(False, "not yet")] * 10, fake, interval=5, retries=100, timeout=12)
    # Attempts at 0, 5 and 10 s; the next would start after the 12 s timeout.
    assert (result.result, result.attempts) == ("fail", 3)
    assert result.message == "timed out after 12s: not yet"
    assert fake.sleeps == [5, 5]


def test_a_timeout_says_how_many_passes_in_a_row_it_had() -> None:
    fake = FakeTime()
    result = _scripted([True] * 5, fake, interval=5, required_passes=5, timeout=12)
    assert result.result == "fail"
    assert result.message == "timed out after 12s: 3 of 5 passes in a row, last: " + (
        f"{__name__}:scripted returned True"
    )


def test_a_skipped_probe_skips_the_check_at_once_never_passing_it() -> None:
    fake = FakeTime()
    ctx = _ctx(sandbox=True, kubeconfig="/nowhere", clock=fake.clock, sleep=fake.sleep)
    result = run_check(_spec("kubernetes", {}, retries=3, required_passes=3, interval=1), ctx)
    assert (result.result, result.attempts, result.message) == ("skipped", 1, SANDBOX_REASON)
    assert fake.sleeps == []


# --- parameter references -------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"nodegroup": "${outputs.group}", "min_gpus": "${config.gpus}"}, id="whole"),
        pytest.param({"nodegroup": "x", "instance_types": "${config.pool.types}"}, id="list"),
        pytest.param({"nodegroup": "x", "instance_types": ["${config.pool.types.0}"]}, id="item"),
        pytest.param(
            {"nodegroup": "x", "taints": [{"key": "k", "effect": "${config.e}"}]}, id="nested"
        ),
        pytest.param({"nodegroup": "x", "taints": "${config.pool.taints}"}, id="model-list"),
        pytest.param({"nodegroup": "pool-${outputs.env}"}, id="in-a-string"),
    ],
)
def test_loading_accepts_a_reference_wherever_a_value_goes(params: dict[str, Any]) -> None:
    assert _spec("eks_nodegroup", params).params == params


@pytest.mark.parametrize(
    ("params", "error"),
    [
        pytest.param(
            {"nodegroup": "x", "min_gpu": "${outputs.gpus}"},
            "params.min_gpu: Extra inputs are not permitted (eks_nodegroup takes: nodegroup,",
            id="unknown-name-with-a-reference",
        ),
        pytest.param(
            {"nodegroup": "${outputs.group}", "min_gpus": "many"},
            "params.min_gpus: Input should be a valid integer",
            id="literal-beside-a-reference",
        ),
        pytest.param(
            {"nodegroup": "x", "min_gpus": "${outputs.}"},
            "params.min_gpus: '${outputs.}' is not a reference: write ${outputs.NAME} or",
            id="malformed",
        ),
        pytest.param(
            {"nodegroup": "x", "taints": [{"key": "${config.k}", "effect": "Sometimes"}]},
            "params.taints.0.effect: Input should be 'NO_SCHEDULE', 'NO_EXECUTE' or",
            id="literal-beside-a-nested-reference",
        ),
    ],
)
def test_loading_still_refuses_what_is_wrong_beside_references(
    params: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _spec("eks_nodegroup", params)
    assert error in str(caught.value)


MIGRATION = """\
schema_version: 1
environments:
  - name: sandbox
phases:
  - name: compute
    program: compute
    checks:
      - name: gpus
        kind: eks_nodegroup
        params:
          nodegroup: ${outputs.inference_node_group}
          instance_types: ${config.inference_pool.instance_types}
          min_gpus: ${config.inference_pool.desired_size}
"""


def test_migration_yaml_with_references_loads_and_a_wrong_name_is_located(
    tmp_path: Path,
) -> None:
    (tmp_path / MIGRATION_FILE).write_text(MIGRATION)
    check = load_migration(tmp_path).phase("compute").checks[0]
    assert check.params["min_gpus"] == "${config.inference_pool.desired_size}"
    (tmp_path / MIGRATION_FILE).write_text(MIGRATION.replace("min_gpus:", "min_gpu:"))
    with pytest.raises(InputError) as caught:
        load_migration(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / MIGRATION_FILE}:"), message
    assert "params.min_gpu: Extra inputs are not permitted" in message


def test_resolution_walks_outputs_and_config_and_keeps_types() -> None:
    ctx = _ctx(
        outputs={"ids": ["rtb-1", "rtb-2"], "buckets": {"raw": "lake-raw"}, "port": 8080},
        config={"pool": {"instance_types": ["g6.xlarge"], "desired_size": 2}, "tls": False},
    )
    raw = {
        "a": "${outputs.ids}",
        "b": "${outputs.ids.1}",
        "c": ["${outputs.buckets.raw}", "${config.pool.desired_size}"],
        "d": "http://host:${outputs.port}/x?tls=${config.tls}",
        "e": {"types": "${config.pool.instance_types}"},
        "f": "${HOME} is not ours",
    }
    assert resolve_references(raw, ctx) == {
        "a": ["rtb-1", "rtb-2"],
        "b": "rtb-2",
        "c": ["lake-raw", 2],
        "d": "http://host:8080/x?tls=false",
        "e": {"types": ["g6.xlarge"]},
        "f": "${HOME} is not ours",
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("${outputs.nope}", "params: ${outputs.nope}: the stack has no output 'nope' (outputs: "),
        ("${config.pool.sizes}", "config.pool has no key 'sizes' (keys: desired_size)"),
        ("${outputs.ids.5}", "${outputs.ids.5}: outputs.ids has 1 items, no item 5"),
        ("x-${outputs.ids}", "${outputs.ids} is a list: only a whole value can take it"),
    ],
)
def test_resolution_names_a_reference_to_nothing(raw: str, message: str) -> None:
    ctx = _ctx(outputs={"ids": ["rtb-1"]}, config={"pool": {"desired_size": 1}})
    with pytest.raises(UnresolvedReference) as caught:
        resolve_references(raw, ctx)
    assert message in str(caught.value)


def test_a_missing_reference_fails_the_check_without_an_attempt() -> None:
    ctx = _ctx(outputs={"inference_node_group": "gpu-inference"}, config={"pool": {}})
    result = _run("eks_nodegroup", {"nodegroup": "${outputs.inference_nodegroup}"}, ctx)
    assert (result.result, result.attempts) == ("fail", 0)
    assert result.message == (
        "params.nodegroup: ${outputs.inference_nodegroup}: the stack has no output "
        "'inference_nodegroup' (outputs: inference_node_group)"
    )
    result = _run("eks_nodegroup", {"nodegroup": "x", "min_gpus": "${config.pool.gpus}"}, ctx)
    assert result.result == "fail"
    assert "params.min_gpus: ${config.pool.gpus}: config.pool has no key 'gpus'" in result.message


def test_a_resolved_value_is_validated_against_the_real_type() -> None:
    ctx = _ctx(outputs={"group": "gpu-inference"})
    result = _run("eks_nodegroup", {"nodegroup": "x", "min_gpus": "${outputs.group}"}, ctx)
    assert (result.result, result.attempts) == ("fail", 0)
    assert result.message.startswith("params.min_gpus: Input should be a valid integer")
    assert "'gpu-inference' once references are resolved" in result.message


# --- s3_bucket ------------------------------------------------------------------------


@pytest.fixture
def lake_bucket(aws: Callable[[str], Any]) -> tuple[str, str]:
    """A bucket set up as the data layer sets its lake buckets up; its name and key ARN."""
    s3, kms = aws("s3"), aws("kms")
    name = _unique("lake-raw")
    key = kms.create_key(Description="lake")["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    flags = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    s3.put_public_access_block(
        Bucket=name, PublicAccessBlockConfiguration=dict.fromkeys(flags, True)
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "tiering",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Transitions": [
                        {"Days": 30, "StorageClass": "STANDARD_IA"},
                        {"Days": 90, "StorageClass": "GLACIER_IR"},
                        {"Days": 365, "StorageClass": "GLACIER"},
                    ],
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                }
            ]
        },
    )
    return name, key


def _lake_params(bucket: str, key: str) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "encryption": "aws:kms",
        "kms_key": key,
        "bucket_key": True,
        "versioning": True,
        "public_access_blocked": True,
        "transitions": [
            {"days": 30, "storage_class": "STANDARD_IA"},
            {"days": 90, "storage_class": "GLACIER_IR"},
            {"days": 365, "storage_class": "GLACIER"},
        ],
        "noncurrent_expiry_days": 30,
    }


def test_s3_bucket_passes_when_set_up_as_declared(
    aws: Callable[[str], Any], lake_bucket: tuple[str, str]
) -> None:
    bucket, key = lake_bucket
    result = _run("s3_bucket", _lake_params(bucket, key), _ctx(aws))
    assert result.result == "pass", result.message
    assert result.message.startswith(f"bucket {bucket}: exists, aws:kms with {key}")
    # A key id names the same key as its ARN.
    params = {**_lake_params(bucket, key), "kms_key": key.rsplit("/", 1)[1]}
    assert _run("s3_bucket", params, _ctx(aws)).result == "pass"


def test_s3_bucket_fails_naming_each_setting_that_differs(
    aws: Callable[[str], Any], lake_bucket: tuple[str, str]
) -> None:
    bare = _unique("bare")
    aws("s3").create_bucket(Bucket=bare)
    result = _run("s3_bucket", _lake_params(bare, lake_bucket[1]), _ctx(aws))
    assert result.result == "fail"
    assert result.message == (
        f"bucket {bare}: no default encryption, expected aws:kms; versioning is never "
        "enabled, expected Enabled; public access not blocked: BlockPublicAcls, "
        "IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets off; lifecycle "
        "transitions are none, expected 30d STANDARD_IA, 90d GLACIER_IR, 365d GLACIER; "
        "noncurrent versions expire never (no enabled rule expires them), expected after "
        "30 days"
    )
    bucket, _ = lake_bucket
    other = aws("kms").create_key(Description="other")["KeyMetadata"]["Arn"]
    params = {
        **_lake_params(bucket, other),
        "bucket_key": False,
        "transitions": [{"days": 30, "storage_class": "STANDARD_IA"}],
        "noncurrent_expiry_days": 7,
    }
    message = _run("s3_bucket", params, _ctx(aws)).message
    assert f"default KMS key is {lake_bucket[1]}, expected {other}" in message
    assert "bucket key is on, expected off" in message
    assert "transitions are 30d STANDARD_IA, 90d GLACIER_IR, 365d GLACIER, expected " in message
    assert "noncurrent versions expire after 30 days, expected after 7 days" in message


def test_s3_bucket_fails_when_the_bucket_does_not_exist(aws: Callable[[str], Any]) -> None:
    name = _unique("missing")
    result = _run("s3_bucket", {"bucket": name}, _ctx(aws))
    assert (result.result, result.message) == ("fail", f"bucket {name} does not exist")


def test_s3_bucket_kms_key_needs_kms_encryption() -> None:
    with pytest.raises(ValidationError, match="kms_key and bucket_key need encryption"):
        _spec("s3_bucket", {"bucket": "lake", "encryption": "AES256", "kms_key": "k"})


# --- eks_nodegroup --------------------------------------------------------------------


@pytest.fixture
def node_group(aws: Callable[[str], Any]) -> Callable[..., tuple[str, str]]:
    """Makes a cluster with one node group as the compute phase declares them."""

    def make(**overrides: Any) -> tuple[str, str]:
        eks = aws("eks")
        cluster = _unique("platform")
        eks.create_cluster(name=cluster, roleArn=ROLE, resourcesVpcConfig={"subnetIds": []})
        args: dict[str, Any] = {
            "clusterName": cluster,
            "nodegroupName": _unique("gpu-inference"),
            "nodeRole": ROLE,
            "subnets": ["subnet-1"],
            "scalingConfig": {"minSize": 0, "desiredSize": 1, "maxSize": 2},
            "instanceTypes": ["g6.xlarge", "g5.xlarge"],
            "capacityType": "SPOT",
            "labels": {"phasegate.io/pool": "inference", "team": "ml"},
            "taints": [GPU_TAINT],
            **overrides,
        }
        eks.create_nodegroup(**args)
        return cluster, args["nodegroupName"]

    return make


def test_eks_nodegroup_passes_as_declared_with_references(
    aws: Callable[[str], Any], node_group: Callable[..., tuple[str, str]], catalog: dict
) -> None:
    cluster, group = node_group()
    ctx = _ctx(
        aws,
        outputs={"inference_node_group": group, "cluster_name": cluster},
        config={
            "inference_pool": {
                "instance_types": ["g5.xlarge", "g6.xlarge"],
                "capacity_type": "SPOT",
                "desired_size": 1,
                "min_size": 0,
                "max_size": 2,
            }
        },
        gpu_catalog=catalog,
    )
    params = {
        "cluster": "${outputs.cluster_name}",
        "nodegroup": "${outputs.inference_node_group}",
        "instance_types": "${config.inference_pool.instance_types}",
        "capacity_type": "${config.inference_pool.capacity_type}",
        "min_size": "${config.inference_pool.min_size}",
        "desired_size": "${config.inference_pool.desired_size}",
        "max_size": "${config.inference_pool.max_size}",
        "labels": {"phasegate.io/pool": "inference"},
        "taints": ["nvidia.com/gpu=true:NoSchedule"],
        "min_gpus": "${config.inference_pool.desired_size}",
    }
    result = _run("eks_nodegroup", params, ctx)
    assert result.result == "pass", result.message
    assert result.message == (
        f"{group}: ACTIVE, g6.xlarge/g5.xlarge SPOT, scaling 0/1/2, "
        "1 GPUs (desired 1 × 1 g6.xlarge, the fewest-GPU type of g6.xlarge/g5.xlarge)"  # noqa: RUF001
    )


def test_eks_nodegroup_fails_short_of_gpus_saying_how_it_counted(
    aws: Callable[[str], Any], node_group: Callable[..., tuple[str, str]], catalog: dict
) -> None:
    cluster, group = node_group(
        instanceTypes=["g5.xlarge"], scalingConfig={"minSize": 0, "desiredSize": 0, "maxSize": 1}
    )
    ctx = _ctx(aws, gpu_catalog=catalog)
    result = _run("eks_nodegroup", {"cluster": cluster, "nodegroup": group, "min_gpus": 1}, ctx)
    assert result.result == "fail"
    assert result.message == (
        f"{group}: 0 GPUs (desired 0 × 1 g5.xlarge), expected at least 1"  # noqa: RUF001
    )


def test_eks_nodegroup_counts_only_the_gpus_its_fewest_gpu_type_guarantees(
    aws: Callable[[str], Any], node_group: Callable[..., tuple[str, str]], catalog: dict
) -> None:
    # EKS may launch the 1-GPU g5.xlarge as well as the 4-GPU g5.12xlarge: 4 is not sure.
    cluster, group = node_group(instanceTypes=["g5.xlarge", "g5.12xlarge"])
    ctx = _ctx(aws, gpu_catalog=catalog)
    result = _run("eks_nodegroup", {"cluster": cluster, "nodegroup": group, "min_gpus": 4}, ctx)
    assert result.result == "fail"
    assert result.message == (
        f"{group}: 1 GPUs (desired 1 × 1 g5.xlarge, the fewest-GPU type of "  # noqa: RUF001
        "g5.xlarge/g5.12xlarge), expected at least 4"
    )
    result = _run("eks_nodegroup", {"cluster": cluster, "nodegroup": group, "min_gpus": 1}, ctx)
    assert result.result == "pass", result.message


def test_eks_nodegroup_fails_naming_each_setting_that_differs(
    aws: Callable[[str], Any], node_group: Callable[..., tuple[str, str]]
) -> None:
    cluster, group = node_group()
    params = {
        "cluster": cluster,
        "nodegroup": group,
        "instance_types": ["p5.48xlarge"],
        "capacity_type": "ON_DEMAND",
        "desired_size": 2,
        "max_size": 2,
        "labels": {"phasegate.io/pool": "training", "owner": "platform"},
        "taints": [{"key": "dedicated", "effect": "NoExecute"}],
    }
    result = _run("eks_nodegroup", params, _ctx(aws))
    assert result.result == "fail"
    assert result.message == (
        f"{group}: instance types g6.xlarge, g5.xlarge, expected p5.48xlarge; capacity type "
        "SPOT, expected ON_DEMAND; desired size 1, expected 2; labels "
        "phasegate.io/pool=inference, owner missing, expected phasegate.io/pool=training, "
        "owner=platform; taints lack dedicated:NO_EXECUTE (found: "
        "nvidia.com/gpu=true:NO_SCHEDULE)"
    )


def test_eks_nodegroup_finds_its_cluster_and_reads_the_catalog_from_the_project(
    aws: Callable[[str], Any], node_group: Callable[..., tuple[str, str]], tmp_path: Path
) -> None:
    _, group = node_group()
    (tmp_path / "phases").mkdir()
    shutil.copy(SHIPPED / "phases" / "catalog.py", tmp_path / "phases" / "catalog.py")
    result = _run(
        "eks_nodegroup", {"nodegroup": group, "min_gpus": 1}, _ctx(aws, project_root=tmp_path)
    )
    assert result.result == "pass", result.message
    assert not (tmp_path / "phases" / "__pycache__").exists()
    result = _run("eks_nodegroup", {"nodegroup": group, "min_gpus": 1}, _ctx(aws))
    assert result.result == "fail"
    assert result.message == "min_gpus needs the GPU catalog, and the check was given none"


def test_eks_nodegroup_fails_for_a_group_that_is_not_there(
    aws: Callable[[str], Any], node_group: Callable[..., tuple[str, str]]
) -> None:
    cluster, _ = node_group()
    result = _run("eks_nodegroup", {"cluster": cluster, "nodegroup": "gpu-nothing"}, _ctx(aws))
    assert result.result == "fail"
    assert result.message.startswith(f"gpu-nothing: not found in cluster {cluster}")
    result = _run("eks_nodegroup", {"nodegroup": "gpu-nothing"}, _ctx(aws))
    assert result.message.startswith("gpu-nothing: no cluster has this node group")


# --- vpc_endpoint ---------------------------------------------------------------------


@pytest.fixture
def s3_endpoint(aws: Callable[[str], Any]) -> tuple[str, list[str]]:
    """A VPC with an S3 gateway endpoint on two private route tables."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    tables = [ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"] for _ in range(2)]
    ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName=f"com.amazonaws.{REGION}.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=tables,
    )
    return vpc, tables


def test_vpc_endpoint_passes_for_the_service_type_and_route_tables(
    aws: Callable[[str], Any], s3_endpoint: tuple[str, list[str]]
) -> None:
    vpc, tables = s3_endpoint
    ctx = _ctx(aws, outputs={"vpc_id": vpc, "private_route_table_ids": tables})
    params = {
        "vpc_id": "${outputs.vpc_id}",
        "service": "s3",
        "type": "Gateway",
        "route_table_ids": "${outputs.private_route_table_ids}",
    }
    result = _run("vpc_endpoint", params, ctx)
    assert result.result == "pass", result.message
    assert f"(Gateway com.amazonaws.{REGION}.s3) in {vpc}: available" in result.message
    params = {"vpc_id": vpc, "service": f"com.amazonaws.{REGION}.s3"}
    assert _run("vpc_endpoint", params, ctx).result == "pass"


def test_vpc_endpoint_fails_on_route_tables_type_or_service(
    aws: Callable[[str], Any], s3_endpoint: tuple[str, list[str]]
) -> None:
    vpc, tables = s3_endpoint
    ctx = _ctx(aws)
    params = {"vpc_id": vpc, "service": "s3", "route_table_ids": tables[:1]}
    result = _run("vpc_endpoint", params, ctx)
    assert result.result == "fail"
    assert result.message.endswith(
        f"route tables {', '.join(sorted(tables))}, expected {tables[0]}"
    )
    result = _run("vpc_endpoint", {"vpc_id": vpc, "service": "s3", "type": "Interface"}, ctx)
    assert result.message == (
        f"VPC {vpc}: no Interface endpoint for com.amazonaws.{REGION}.s3 (endpoints there: "
        f"com.amazonaws.{REGION}.s3 (Gateway))"
    )
    result = _run("vpc_endpoint", {"vpc_id": vpc, "service": "dynamodb"}, ctx)
    assert result.result == "fail"
    assert result.message.startswith(
        f"VPC {vpc}: no endpoint for com.amazonaws.{REGION}.dynamodb (endpoints there: "
    )


# --- launch_template ------------------------------------------------------------------


def _template(aws: Callable[[str], Any], tokens: str, encrypted: bool) -> tuple[str, str]:
    name = _unique("gpu-inference")
    created = aws("ec2").create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={
            "MetadataOptions": {"HttpTokens": tokens, "HttpPutResponseHopLimit": 2},
            "BlockDeviceMappings": [
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {"VolumeSize": 100, "VolumeType": "gp3", "Encrypted": encrypted},
                }
            ],
        },
    )
    return name, created["LaunchTemplate"]["LaunchTemplateId"]


def test_launch_template_passes_with_imdsv2_and_encrypted_volumes(
    aws: Callable[[str], Any],
) -> None:
    name, template_id = _template(aws, "required", encrypted=True)
    for template in (name, template_id):
        params = {"template": template, "encrypted_volumes": True}
        result = _run("launch_template", params, _ctx(aws))
        assert result.result == "pass", result.message
        assert result.message == (
            f"launch template {template} version 1: IMDSv2 required, 1 EBS volume(s) encrypted"
        )


def test_launch_template_fails_when_imdsv1_is_allowed_or_a_volume_is_plain(
    aws: Callable[[str], Any],
) -> None:
    name, _ = _template(aws, "optional", encrypted=False)
    result = _run("launch_template", {"template": name, "encrypted_volumes": True}, _ctx(aws))
    assert result.result == "fail"
    assert result.message == (
        f"launch template {name} version 1: allows IMDSv1 (HttpTokens optional), expected "
        "required; EBS volume(s) /dev/xvda not encrypted"
    )
    # A new default version that fixes both passes; the old version still fails.
    ec2 = aws("ec2")
    ec2.create_launch_template_version(
        LaunchTemplateName=name,
        LaunchTemplateData={
            "MetadataOptions": {"HttpTokens": "required"},
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True}}],
        },
    )
    ec2.modify_launch_template(LaunchTemplateName=name, DefaultVersion="2")
    params = {"template": name, "encrypted_volumes": True}
    assert _run("launch_template", params, _ctx(aws)).result == "pass"
    assert _run("launch_template", {**params, "version": 1}, _ctx(aws)).result == "fail"


def test_launch_template_fails_when_it_does_not_exist(aws: Callable[[str], Any]) -> None:
    result = _run("launch_template", {"template": "no-such-template"}, _ctx(aws))
    assert (result.result, result.message) == (
        "fail",
        "launch template no-such-template does not exist",
    )


# --- route53_weights ------------------------------------------------------------------


@pytest.fixture
def weighted(aws: Callable[[str], Any]) -> str:
    """A zone with the legacy and the platform record of app, at 90/10; the zone name."""
    r53 = aws("route53")
    zone_name = f"{_unique('corp')}.example.com"
    zone = r53.create_hosted_zone(Name=zone_name, CallerReference=_unique("ref"))["HostedZone"]
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": f"app.{zone_name}.",
                "Type": "CNAME",
                "TTL": 60,
                "SetIdentifier": ident,
                "Weight": weight,
                "ResourceRecords": [{"Value": target}],
            },
        }
        for ident, weight, target in (
            ("legacy", 90, f"legacy.{zone_name}"),
            ("platform", 10, "inference.elb.amazonaws.com"),
        )
    ]
    changes.append(
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": f"www.{zone_name}.",
                "Type": "CNAME",
                "TTL": 60,
                "SetIdentifier": "other",
                "Weight": 1,
                "ResourceRecords": [{"Value": "x.example.com"}],
            },
        }
    )
    r53.change_resource_record_sets(HostedZoneId=zone["Id"], ChangeBatch={"Changes": changes})
    return zone_name


def test_route53_weights_pass_when_exactly_as_declared(
    aws: Callable[[str], Any], weighted: str
) -> None:
    ctx = _ctx(aws, outputs={"weights": {"legacy": 90, "platform": 10}})
    params: dict[str, Any] = {"zone": weighted, "name": "app", "weights": "${outputs.weights}"}
    result = _run("route53_weights", params, ctx)
    assert result.result == "pass", result.message
    assert result.message == f"app.{weighted}: weights legacy=90, platform=10"
    params = {
        "zone": weighted,
        "name": f"app.{weighted}.",
        "type": "CNAME",
        "weights": {"legacy": 90, "platform": 10},
    }
    assert _run("route53_weights", params, ctx).result == "pass"


def test_route53_weights_fail_on_other_weights_or_records(
    aws: Callable[[str], Any], weighted: str
) -> None:
    ctx = _ctx(aws)
    params = {"zone": weighted, "name": "app", "weights": {"legacy": 50, "platform": 50}}
    result = _run("route53_weights", params, ctx)
    assert result.result == "fail"
    assert result.message == (
        f"app.{weighted}: weights legacy=90, platform=10, expected legacy=50, platform=50"
    )
    params = {"zone": weighted, "name": "app", "weights": {"platform": 10}}
    assert "expected platform=10" in _run("route53_weights", params, ctx).message
    params = {"zone": weighted, "name": "api", "weights": {"platform": 100}}
    result = _run("route53_weights", params, ctx)
    assert result.message == f"api.{weighted}: no weighted records, expected platform=100"
    params = {"zone": "nowhere.example.com", "name": "app", "weights": {"platform": 100}}
    result = _run("route53_weights", params, ctx)
    assert result.message == "no hosted zone is named nowhere.example.com."


# --- cloudwatch_alarm -----------------------------------------------------------------


def _alarms(aws: Callable[[str], Any], count: int = 2) -> list[str]:
    cloudwatch = aws("cloudwatch")
    names = [_unique("app-5xx") for _ in range(count)]
    for name in names:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="Phasegate/App",
            MetricName="5xxRate",
            Statistic="Average",
            Period=60,
            EvaluationPeriods=3,
            Threshold=10,
            ComparisonOperator="GreaterThanThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="quiet")
    return names


def test_cloudwatch_alarm_passes_when_quiet_for_the_whole_bake(
    aws: Callable[[str], Any],
) -> None:
    names = _alarms(aws)
    aws("cloudwatch").set_alarm_state(
        AlarmName=names[1], StateValue="INSUFFICIENT_DATA", StateReason="no traffic yet"
    )
    fake = FakeTime()
    ctx = _ctx(aws, bake_seconds=3, clock=fake.clock, sleep=fake.sleep)
    result = run_check(_spec("cloudwatch_alarm", {"alarms": names}), ctx)
    assert result.result == "pass", result.message
    assert result.message == (
        f"not in ALARM for the 3s bake (4 look(s)): {names[0]} OK, {names[1]} INSUFFICIENT_DATA"
    )
    assert fake.sleeps == [1, 1, 1]
    # No bake: one look.
    result = _run("cloudwatch_alarm", {"alarms": names[0]}, _ctx(aws))
    assert result.result == "pass"
    assert "(1 look(s))" in result.message


def test_cloudwatch_alarm_fails_for_good_when_an_alarm_fires_mid_bake(
    aws: Callable[[str], Any],
) -> None:
    names = _alarms(aws)
    fake = FakeTime()
    fake.at[2.5] = lambda: aws("cloudwatch").set_alarm_state(
        AlarmName=names[1], StateValue="ALARM", StateReason="5xx over 10 %"
    )
    ctx = _ctx(aws, bake_seconds=10, clock=fake.clock, sleep=fake.sleep)
    params = {"alarms": names, "poll_seconds": 0.5}
    result = run_check(_spec("cloudwatch_alarm", params, retries=3), ctx)
    assert (result.result, result.attempts) == ("fail", 1)
    assert result.message == f"{names[1]} is in ALARM 2.5s into the 10s bake: 5xx over 10 %"


def test_cloudwatch_alarm_set_by_another_thread_during_a_real_bake(
    emu: Emulator, aws: Callable[[str], Any]
) -> None:
    names = _alarms(aws, 1)

    def fire() -> None:
        client = emu.session().client("cloudwatch", region_name=REGION)
        client.set_alarm_state(AlarmName=names[0], StateValue="ALARM", StateReason="rehearsal")

    ctx = _ctx(aws, bake_seconds=5)
    quiet = run_check(
        _spec("cloudwatch_alarm", {"alarms": names, "poll_seconds": 0.05}),
        _ctx(aws, bake_seconds=0.2),
    )
    assert quiet.result == "pass", quiet.message
    assert quiet.duration >= 0.2
    timer = threading.Timer(0.3, fire)
    timer.start()
    try:
        result = run_check(_spec("cloudwatch_alarm", {"alarms": names, "poll_seconds": 0.05}), ctx)
    finally:
        timer.join()
    assert result.result == "fail"
    assert result.message.startswith(f"{names[0]} is in ALARM ")
    assert result.message.endswith("s bake: rehearsal")


def test_cloudwatch_alarm_fails_for_an_alarm_that_does_not_exist(
    aws: Callable[[str], Any],
) -> None:
    names = _alarms(aws, 1)
    result = _run("cloudwatch_alarm", {"alarms": [*names, "no-such-alarm"]}, _ctx(aws))
    assert (result.result, result.message) == ("fail", "no such alarm: no-such-alarm")


# --- http -----------------------------------------------------------------------------


class _Web(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/slow":
            time.sleep(0.2)
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = 503 if self.path == "/down" else 200
        body = b"ok\n" if status == 200 else b"unavailable\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadingHTTPServer]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Web)
    server.daemon_threads = True
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _url(server: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_http_passes_on_the_expected_status_within_budget(web: ThreadingHTTPServer) -> None:
    ctx = _ctx(outputs={"port": web.server_address[1]})
    params = {"url": "http://127.0.0.1:${outputs.port}/ok", "latency_ms": 2000}
    result = _run("http", params, ctx)
    assert result.result == "pass", result.message
    assert result.message.startswith(f"GET {_url(web, '/ok')} answered 200 in ")
    assert result.message.endswith(" ms (budget 2000 ms)")
    assert _run("http", {"url": _url(web, "/down"), "status": 503}, ctx).result == "pass"


def test_http_passes_in_a_row_as_many_times_as_required(web: ThreadingHTTPServer) -> None:
    result = _run("http", {"url": _url(web, "/ok")}, _ctx(), required_passes=3)
    assert (result.result, result.attempts) == ("pass", 3)
    assert web.hits == ["/ok"] * 3  # type: ignore[attr-defined]


def test_http_fails_on_another_status(web: ThreadingHTTPServer) -> None:
    result = _run("http", {"url": _url(web, "/down")}, _ctx())
    assert result.result == "fail"
    assert result.message.startswith(f"GET {_url(web, '/down')} answered 503 in ")
    assert result.message.endswith(" ms, expected 200")
    result = _run("http", {"url": _url(web, "/moved"), "follow_redirects": False}, _ctx())
    assert "answered 302" in result.message
    assert _run("http", {"url": _url(web, "/moved")}, _ctx()).result == "pass"


def test_http_fails_over_its_latency_budget(web: ThreadingHTTPServer) -> None:
    result = _run("http", {"url": _url(web, "/slow"), "latency_ms": 50}, _ctx())
    assert result.result == "fail"
    assert result.message.endswith(" ms, over the 50 ms budget")


def test_http_fails_when_nothing_answers(web: ThreadingHTTPServer) -> None:
    url = _url(web, "/ok")
    web.shutdown()
    web.server_close()
    result = _run("http", {"url": url, "timeout_seconds": 2}, _ctx())
    assert result.result == "fail"
    assert result.message.startswith(f"GET {url}: cannot connect: ")


def test_http_never_shows_a_secret_token_its_url_carries(web: ThreadingHTTPServer) -> None:
    token = "tok-" + secrets.token_hex(8)
    ctx = _ctx(outputs={"port": web.server_address[1], "api_token": token}, secret_values=(token,))
    url = "http://127.0.0.1:${outputs.port}/ok?token=${outputs.api_token}"
    result = _run("http", {"url": url}, ctx)
    assert result.result == "pass", result.message
    assert result.message.startswith(f"GET {_url(web, '/ok?token=[secret]')} answered 200 in ")
    assert web.hits == [f"/ok?token={token}"]  # type: ignore[attr-defined]
    result = _run("http", {"url": url, "status": 204}, ctx)
    assert result.result == "fail"
    assert token not in result.message
    assert result.message.endswith(" ms, expected 204")


# --- kubernetes -----------------------------------------------------------------------

TOKEN = "phasegate-test-token"


class _Cluster(BaseHTTPRequestHandler):
    """The two API paths the check reads, answered from ``server.state``."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.auth.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != f"Bearer {server.token}":
            return self._json(401, {"kind": "Status", "message": "Unauthorized"})
        path = self.path.split("?", 1)[0]
        if path == "/api/v1/nodes":
            return self._json(200, {"kind": "NodeList", "items": server.state["nodes"]})
        plugin = "/apis/apps/v1/namespaces/kube-system/daemonsets/nvidia-device-plugin-daemonset"
        if path == plugin and server.state["plugin"] is not None:
            return self._json(200, server.state["plugin"])
        return self._json(404, {"kind": "Status", "message": "not found"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _node(name: str, gpus: int, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"phasegate.io/pool": "inference"}},
        "status": {
            "capacity": {"cpu": "4", "nvidia.com/gpu": str(gpus)},
            "allocatable": {"cpu": "4", "nvidia.com/gpu": str(gpus)},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Kubernetes API server on loopback with two ready GPU nodes and the device plugin."""
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Cluster)
    server.daemon_threads = True
    server.token = TOKEN
    server.auth = []
    server.state = {
        "nodes": [_node("gpu-a", 1), _node("gpu-b", 1), _node("cpu-a", 0)],
        "plugin": {"status": {"desiredNumberScheduled": 2, "numberReady": 2}},
    }
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _kubeconfig(path: Path, server: Any, user: dict[str, Any]) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}
        ],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
        "users": [{"name": "u", "user": user}],
    }
    path.write_text(json.dumps(config))
    return str(path)


def test_kubernetes_is_skipped_in_the_sandbox_with_its_reason(cluster: Any, tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path / "kubeconfig", cluster, {"token": TOKEN})
    result = _run("kubernetes", {"min_gpus": 1}, _ctx(sandbox=True, kubeconfig=kubeconfig))
    assert (result.result, result.message) == ("skipped", SANDBOX_REASON)
    assert "sandbox has no Kubernetes cluster" in result.message
    assert cluster.auth == [], "the sandbox never asks a cluster"


def test_kubernetes_passes_with_ready_gpu_nodes_and_the_device_plugin(
    cluster: Any, tmp_path: Path
) -> None:
    kubeconfig = _kubeconfig(tmp_path / "kubeconfig", cluster, {"token": TOKEN})
    result = _run("kubernetes", {"min_gpus": 2}, _ctx(kubeconfig=kubeconfig))
    assert result.result == "pass", result.message
    assert result.message == (
        "2 GPU node(s) Ready, 2 nvidia.com/gpu allocatable; DaemonSet "
        "kube-system/nvidia-device-plugin-daemonset: 2/2 ready"
    )
    assert set(cluster.auth) == {f"Bearer {TOKEN}"}


def test_kubernetes_fails_on_unready_nodes_too_few_gpus_or_a_missing_plugin(
    cluster: Any, tmp_path: Path
) -> None:
    kubeconfig = _kubeconfig(tmp_path / "kubeconfig", cluster, {"token": TOKEN})
    ctx = _ctx(kubeconfig=kubeconfig)
    cluster.state["nodes"] = [_node("gpu-a", 1), _node("gpu-b", 1, ready=False)]
    cluster.state["plugin"] = {"status": {"desiredNumberScheduled": 2, "numberReady": 1}}
    result = _run("kubernetes", {"min_gpus": 2}, ctx)
    assert result.result == "fail"
    assert result.message == (
        "GPU node(s) not Ready: gpu-b; 1 nvidia.com/gpu allocatable on 1 Ready GPU node(s), "
        "expected at least 2; DaemonSet kube-system/nvidia-device-plugin-daemonset: 1 of 2 "
        "pod(s) ready"
    )
    cluster.state["plugin"] = None
    result = _run("kubernetes", {"min_gpus": 1}, ctx)
    assert result.message == (
        "GPU node(s) not Ready: gpu-b; DaemonSet kube-system/nvidia-device-plugin-daemonset "
        "does not exist"
    )
    cluster.token = "rotated"
    result = _run("kubernetes", {}, ctx)
    assert result.message == "the API server answered GET /api/v1/nodes with 401: Unauthorized"


def test_kubernetes_signs_in_through_an_exec_credential_plugin(
    cluster: Any, tmp_path: Path
) -> None:
    credential = {"kind": "ExecCredential", "status": {"token": TOKEN}}
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": sys.executable,
        "args": ["-c", f"print({json.dumps(json.dumps(credential))})"],
    }
    kubeconfig = _kubeconfig(tmp_path / "kubeconfig", cluster, {"exec": plugin})
    result = _run("kubernetes", {"min_gpus": 1}, _ctx(kubeconfig=kubeconfig))
    assert result.result == "pass", result.message
    broken = {**plugin, "args": ["-c", "import sys; sys.exit('no AWS credentials')"]}
    kubeconfig = _kubeconfig(tmp_path / "kubeconfig", cluster, {"exec": broken})
    result = _run("kubernetes", {"min_gpus": 1}, _ctx(kubeconfig=kubeconfig))
    assert result.result == "fail"
    assert result.message.endswith("exited 1: no AWS credentials")


def test_kubernetes_outside_the_sandbox_needs_a_kubeconfig() -> None:
    result = _run("kubernetes", {}, _ctx())
    assert (result.result, result.message) == (
        "fail",
        "environment staging has no kubeconfig, so its cluster cannot be asked",
    )


# --- python ---------------------------------------------------------------------------

PROBES = """
import sibling


def gpus_ok(ctx, minimum=1):
    return ctx.outputs.get("gpus", 0) >= minimum


def explained(ctx):
    return (False, f"quota {sibling.QUOTA} missing in namespace inference")


def broken(ctx):
    raise RuntimeError("cluster unreachable")


def vague(ctx):
    return "yes"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "phases").mkdir()
    (tmp_path / "phases" / "probes.py").write_text(PROBES)
    (tmp_path / "phases" / "sibling.py").write_text("QUOTA = 'gpu-quota'\n")
    return tmp_path


@pytest.mark.parametrize(
    ("function", "args", "outcome", "message"),
    [
        ("gpus_ok", {}, "pass", "probes:gpus_ok returned True"),
        ("gpus_ok", {"minimum": 8}, "fail", "probes:gpus_ok returned False"),
        ("explained", {}, "fail", "quota gpu-quota missing in namespace inference"),
        ("broken", {}, "fail", "probes:broken raised RuntimeError: cluster unreachable"),
        (
            "vague",
            {},
            "fail",
            "probes:vague returned 'yes'; a check function returns True/False or (bool, message)",
        ),
        ("absent", {}, "fail", "probes:absent: probes has no function absent"),
    ],
)
def test_python_runs_a_function_of_the_projects_phases(
    project: Path, function: str, args: dict[str, Any], outcome: str, message: str
) -> None:
    ctx = _ctx(outputs={"gpus": 2}, project_root=project)
    result = _run("python", {"function": f"probes:{function}", "args": args}, ctx)
    assert (result.result, result.message) == (outcome, message)
    # The project's modules are dropped afterwards, as the engines drop a program's.
    assert "probes" not in sys.modules and "sibling" not in sys.modules


def test_python_runs_a_function_of_an_installed_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "team_checks.py").write_text(
        "def ready(ctx, **kw):\n    return (True, f'{ctx.stack} is ready')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "team_checks", raising=False)
    try:
        result = _run("python", {"function": "team_checks:ready"}, _ctx())
    finally:
        sys.modules.pop("team_checks", None)
    assert (result.result, result.message) == ("pass", "staging-compute is ready")
    result = _run("python", {"function": "no_such_module_here:ready"}, _ctx())
    assert result.result == "fail"
    assert result.message.startswith("no_such_module_here:ready: cannot import")


def test_python_function_must_be_module_colon_function() -> None:
    with pytest.raises(ValidationError, match=r"params\.function: String should match pattern"):
        _spec("python", {"function": "probes.gpus_ok"})


# --- outputs --------------------------------------------------------------------------


def test_outputs_asserts_presence_and_values() -> None:
    ctx = _ctx(outputs={"vpc_id": "vpc-1", "training_efa": True, "nat_gateway_ids": []})
    params = {"present": ["vpc_id"], "equals": {"training_efa": True}}
    assert _run("outputs", params, ctx).message == "2 output assertion(s) hold"
    params = {"present": ["vpc_id", "nat_gateway_ids"], "equals": {"training_efa": False}}
    result = _run("outputs", params, ctx)
    assert (result.result, result.message) == (
        "fail",
        "missing outputs: nat_gateway_ids; training_efa is True, expected False",
    )


# --- secrets in messages --------------------------------------------------------------


def test_outputs_never_shows_a_secret_output_it_compares() -> None:
    ctx = _ctx(outputs={"db_password": "hunter2"}, secret_values=("hunter2",))
    result = _run("outputs", {"equals": {"db_password": "x"}}, ctx)
    assert (result.result, result.message) == ("fail", "db_password is '[secret]', expected 'x'")
    # A list or map is hidden whole, as str() and JSON spell it, and part by part.
    keys = ["key-aaaa", "key-bbbb"]
    ctx = _ctx(outputs={"keys": keys}, secret_values=(keys,))
    result = _run("outputs", {"equals": {"keys": []}}, ctx)
    assert result.message == "keys is [secret], expected []"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"nodegroup": "${outputs.api_token.name}"},
            "params.nodegroup: ${outputs.api_token.name}: outputs.api_token is '[secret]', "
            "which has no 'name'",
        ),
        (
            {"nodegroup": "x", "min_gpus": "${outputs.api_token}"},
            "params.min_gpus: Input should be a valid integer, unable to parse string as an "
            "integer (it is '[secret]' once references are resolved)",
        ),
        (
            {"nodegroup": "x", "min_gpus": "${config.db.password}"},
            "params.min_gpus: Input should be a valid integer, unable to parse string as an "
            "integer (it is '[secret]' once references are resolved)",
        ),
    ],
)
def test_a_reference_error_never_shows_a_secret_it_resolved(
    params: dict[str, Any], message: str
) -> None:
    ctx = _ctx(
        outputs={"api_token": "tok-1234"},
        config={"db": {"password": "hunter22"}},
        secret_values=("tok-1234", "hunter22"),
    )
    result = _run("eks_nodegroup", params, ctx)
    assert (result.result, result.attempts, result.message) == ("fail", 0, message)


class _Tattler(CheckKind):
    """A kind that says the secret whatever it finds: what any kind, now or later, might do."""

    name = "tattler"
    params = Params

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome

    def probe(self, params: Any, ctx: CheckContext) -> Probe:
        said = f"token is {ctx.outputs['api_token']}, port {ctx.outputs['port']}"
        if self.outcome == "raise":
            raise RuntimeError(said)
        if self.outcome == "error":
            raise CheckError(said)
        if self.outcome == "skip":
            return Probe.skip(said)
        return Probe(self.outcome == "pass", said)


@pytest.mark.parametrize(
    ("outcome", "options", "result", "message"),
    [
        ("pass", {}, "pass", "token is [secret], port [secret]"),
        ("fail", {}, "fail", "token is [secret], port [secret]"),
        ("skip", {}, "skipped", "token is [secret], port [secret]"),
        ("error", {}, "fail", "token is [secret], port [secret]"),
        ("raise", {}, "fail", "RuntimeError: token is [secret], port [secret]"),
        (
            "fail",
            {"retries": 5, "interval": 5, "timeout": 1},
            "fail",
            "timed out after 1s: token is [secret], port [secret]",
        ),
    ],
)
def test_no_result_of_any_kind_shows_a_secret(
    monkeypatch: pytest.MonkeyPatch, outcome: str, options: dict, result: str, message: str
) -> None:
    monkeypatch.setitem(KINDS, "tattler", _Tattler(outcome))
    fake = FakeTime()
    # A number is found as str() spells it; a text shorter than 4 would garble messages.
    ctx = _ctx(
        outputs={"api_token": "s3cr3t-value", "port": 8443},
        secret_values=("s3cr3t-value", 8443, "is", ""),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    found = _run("tattler", {}, ctx, **options)
    assert (found.result, found.message) == (result, message)
