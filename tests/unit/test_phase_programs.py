"""The phase programs on the Pulumi SDK's mock runtime, with the shipped stack configs.

Each program runs as it would under Pulumi (config from stacks/Pulumi.<env>-<phase>.yaml,
upstream phases through StackReference), and the tests read what it declared: every
resource's type, logical name and inputs (wire names, e.g. ``metadataOptions``). The
config models are tested on their own below: bad input fails with a message that names
the field and what is allowed.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pulumi
import pulumi_aws
import pytest
import yaml
from pulumi.runtime import settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import Stack, run_pulumi_func
from pulumi.runtime.sync_await import _sync_await
from pydantic import ValidationError

from _projects import shipped_project

SHIPPED = shipped_project()
PHASES = SHIPPED / "phases"
STACKS = SHIPPED / "stacks"
PROJECT = "phasegate"
ORG = "organization"

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
BUCKET = "aws:s3/bucket:Bucket"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
NAT = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"
RECORD = "aws:route53/record:Record"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
QUOTA = "kubernetes:core/v1:ResourceQuota"
REQUIRED_TAGS = ("phasegate:phase", "phasegate:environment", "owner", "cost-center")
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
ENVIRONMENTS = ("sandbox", "prod")
ZONE_ID = "Z0MOCKZONE"
OFFERINGS = "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings"


# --- running a program on the mock runtime ------------------------------------------------


def stack_config(env: str, phase: str) -> dict[str, Any]:
    """The shipped stack config, keys as in the file (``phasegate:...``)."""
    document = yaml.safe_load((STACKS / f"Pulumi.{env}-{phase}.yaml").read_text())
    config: dict[str, Any] = document["config"]
    return config


def _upstream(env: str) -> dict[str, dict[str, Any]]:
    """What earlier phases of ``env`` export, as far as later phases read it."""
    zones = len(stack_config(env, "pilot")["phasegate:availability_zones"])
    return {
        "pilot": {
            "vpc_id": "vpc-0mock",
            "vpc_cidr": stack_config(env, "pilot")["phasegate:vpc_cidr"],
            "private_subnet_ids": [f"subnet-0mock{i}" for i in range(zones)],
            "private_subnet_zones": stack_config(env, "pilot")["phasegate:availability_zones"],
            "cluster_name": f"{env}-ai-platform",
            "cluster_endpoint": f"https://{env}.eks.mock",
            "cluster_ca": "Q0EK",
            "eks_security_group_id": "sg-0eksmock",
        },
        "data_layer": {"raw_bucket": f"phasegate-{env}-lake-raw"},
        "compute": {"inference_dns": f"{env}-inference.elb.mock"},
    }


@dataclass(frozen=True)
class Declared:
    """One resource as the program declared it."""

    type: str
    name: str
    inputs: dict[str, Any]


@dataclass
class Run:
    """What one program run declared and exported."""

    resources: list[Declared]
    outputs: dict[str, Any]

    def of(self, type_: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Declared:
        found = [r for r in self.resources if r.type == type_ and r.name == name]
        assert len(found) == 1, f"{type_} {name}: declared {len(found)} times"
        return found[0]


@dataclass
class _Mocks(pulumi.runtime.Mocks):
    """Answers registrations like a provider would and records every one."""

    env: str
    declared: list[Declared] = field(default_factory=list)
    offered: dict[str, list[str]] = field(default_factory=dict)
    """Instance type -> the zones that offer it; a type not named: us-east-1a to 1c."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            stack = str(args.inputs["name"]).rsplit("/", 1)[-1]
            phase = stack.split("-", 1)[1]
            outputs = _upstream(self.env)[phase]
            return args.name, {**args.inputs, "outputs": outputs, "secretOutputNames": []}
        self.declared.append(Declared(args.typ, args.name, dict(args.inputs)))
        # As with the provider, a bucket's id is its name (companions refer to it by id).
        id_ = args.inputs["bucket"] if args.typ == BUCKET else f"{args.name}-id"
        return id_, {**args.inputs, **self._computed(args)}

    @staticmethod
    def _computed(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
        inputs = args.inputs
        if not args.typ.startswith("aws:"):
            return {}
        out: dict[str, Any] = {"arn": f"arn:aws:mock:::{args.typ}/{args.name}"}
        out.setdefault("name", inputs.get("name", f"{args.name}-physical"))
        if args.typ == BUCKET:
            out["arn"] = f"arn:aws:s3:::{inputs['bucket']}"
        elif args.typ == "aws:kms/key:Key":
            out["keyId"] = f"{args.name}-key-id"
        elif args.typ == LAUNCH_TEMPLATE:
            out["latestVersion"] = 1
        elif args.typ == "aws:eks/cluster:Cluster":
            out["endpoint"] = "https://cluster.eks.mock"
            out["certificateAuthority"] = {"data": "Q0EK"}
            out["vpcConfig"] = {**inputs["vpcConfig"], "clusterSecurityGroupId": "sg-0eksmock"}
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            out["dnsName"] = f"{inputs['name']}.elb.mock"
        return out

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "aws:route53/getZone:getZone":
            return {"id": ZONE_ID, "zoneId": ZONE_ID, "name": args.args["name"]}, []
        if args.token == OFFERINGS:
            assert args.args["locationType"] == "availability-zone"
            [wanted] = args.args["filters"]
            assert wanted["name"] == "instance-type"
            pairs = [
                (t, z)
                for t in wanted["values"]
                for z in self.offered.get(t, ["us-east-1a", "us-east-1b", "us-east-1c"])
            ]
            return {
                "id": "us-east-1",
                "instanceTypes": [t for t, _ in pairs],
                "locations": [z for _, z in pairs],
                "locationTypes": ["availability-zone"] * len(pairs),
            }, []
        raise AssertionError(f"unexpected invoke {args.token}")


def _purge_phase_modules() -> None:
    """Forget modules loaded from phases/ so the next run imports them afresh."""
    prefix = str(PHASES) + os.sep
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(prefix):
            del sys.modules[name]


def _import_phase_module(name: str) -> ModuleType:
    """A module of phases/ (config, catalog) outside a program run, for the model tests.

    Dropped from sys.modules at once: a top-level ``config`` left there would be what a
    later program run (of another project copy) gets for ``from config import ...``.
    """
    sys.path.insert(0, str(PHASES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(PHASES))
        _purge_phase_modules()


def run_phase(
    env: str,
    phase: str,
    overrides: dict[str, Any] | None = None,
    offered: dict[str, list[str]] | None = None,
) -> Run:
    """Run phases/<phase>.py as stack <env>-<phase> and return what it declared.

    The SDK keeps its settings, config and root stack in process globals: each run sets
    them up afresh and puts them back, and phases/ modules are imported anew, as the
    sandbox engine's runtime does it.
    """
    config = {**stack_config(env, phase), **(overrides or {})}
    mocks = _Mocks(env, offered=dict(offered or {}))
    settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=f"{env}-{phase}", preview=False, organization=ORG
    )
    set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}, [])
    _purge_phase_modules()
    sys.path.insert(0, str(PHASES))
    try:
        program = importlib.import_module(phase).program
        _sync_await(run_pulumi_func(program))
        stack = settings.get_root_resource()
        assert isinstance(stack, Stack)
        outputs = _sync_await(pulumi.Output.from_input(stack.outputs).future())
    finally:
        sys.path.remove(str(PHASES))
        _purge_phase_modules()
        set_all_config({}, [])
        settings.set_root_resource(None)  # type: ignore[arg-type]
        # A failed run leaves registrations under way, to fail in the next run: end them.
        settings._get_rpc_manager().clear()
        settings.SETTINGS.outputs.clear()
        loop = asyncio.get_event_loop()
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    return Run(resources=mocks.declared, outputs=dict(outputs or {}))


_RUNS: dict[tuple[str, str], Run] = {}


def shipped(env: str, phase: str) -> Run:
    """The run of a shipped stack config; each is run once per test session."""
    if (env, phase) not in _RUNS:
        _RUNS[env, phase] = run_phase(env, phase)
    return _RUNS[env, phase]


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


# --- every phase ----------------------------------------------------------------------


def _taggable(type_: str) -> bool:
    """Whether the installed pulumi-aws class of a type token takes ``tags``."""
    if not type_.startswith("aws:"):
        return False
    _, module_path, class_name = type_.split(":")
    module = getattr(pulumi_aws, module_path.split("/")[0])
    cls = getattr(module, class_name)
    return "tags" in inspect.signature(cls._internal_init).parameters


@pytest.mark.parametrize("phase", ["pilot", "data_layer", "compute", "cutover"])
def test_every_taggable_resource_carries_the_phase_tags(env: str, phase: str) -> None:
    run = shipped(env, phase)
    config = stack_config(env, phase)
    taggable = [r for r in run.resources if _taggable(r.type)]
    assert taggable, f"{phase} declares nothing taggable"
    for resource in taggable:
        tags = resource.inputs.get("tags") or {}
        missing = [k for k in REQUIRED_TAGS if not tags.get(k)]
        assert not missing, f"{resource.type} {resource.name} lacks tags {missing}"
        assert tags["phasegate:phase"] == phase
        assert tags["phasegate:environment"] == env
        assert tags["owner"] == config["phasegate:owner"]
        assert tags["cost-center"] == config["phasegate:cost_center"]


def test_the_taggable_check_tells_taggable_types_apart() -> None:
    assert _taggable("aws:eks/nodeGroup:NodeGroup")
    assert _taggable("aws:ec2/launchTemplate:LaunchTemplate")
    assert not _taggable("aws:route53/record:Record")
    assert not _taggable("aws:s3/bucketPolicy:BucketPolicy")


# --- pilot ------------------------------------------------------------------------------


def test_pilot_network_spans_the_zones_with_public_and_private_subnets(env: str) -> None:
    run = shipped(env, "pilot")
    config = stack_config(env, "pilot")
    zones = config["phasegate:availability_zones"]
    subnets = {r.name: r.inputs for r in run.of(SUBNET)}
    assert sorted(subnets) == sorted(
        [f"public-{z}" for z in zones] + [f"private-{z}" for z in zones]
    )
    for kind in ("public", "private"):
        cidrs = [subnets[f"{kind}-{z}"]["cidrBlock"] for z in zones]
        assert cidrs == config[f"phasegate:{kind}_subnet_cidrs"]
        assert [subnets[f"{kind}-{z}"]["availabilityZone"] for z in zones] == zones
    assert run.one("aws:ec2/vpc:Vpc", "vpc").inputs["cidrBlock"] == config["phasegate:vpc_cidr"]

    public_default = run.one(ROUTE, "public-default").inputs
    assert public_default["destinationCidrBlock"] == "0.0.0.0/0"
    assert public_default["gatewayId"] == "igw-id"
    endpoint = run.one("aws:ec2/vpcEndpoint:VpcEndpoint", "s3-endpoint").inputs
    assert endpoint["serviceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["vpcEndpointType"] == "Gateway"
    assert sorted(endpoint["routeTableIds"]) == sorted(f"private-routes-{z}-id" for z in zones)


@pytest.mark.parametrize(("environment", "nats"), [("sandbox", 1), ("staging", 1), ("prod", 3)])
def test_nat_gateways_one_shared_or_one_per_zone(environment: str, nats: int) -> None:
    run = shipped(environment, "pilot")
    zones = stack_config(environment, "pilot")["phasegate:availability_zones"]
    assert len(run.of(NAT)) == nats
    assert len(run.of("aws:ec2/eip:Eip")) == nats
    # Every private route table sends the internet through a NAT gateway; per zone
    # when there is one per zone.
    private_defaults = {r.name: r.inputs for r in run.of(ROUTE) if r.name.startswith("private")}
    assert len(private_defaults) == len(zones)
    targets = {private_defaults[f"private-default-{z}"]["natGatewayId"] for z in zones}
    assert targets == {f"nat-{z}-id" for z in zones[:nats]}


def test_pilot_cluster_is_private_and_its_group_open_to_the_vpc_only(env: str) -> None:
    run = shipped(env, "pilot")
    config = stack_config(env, "pilot")
    cluster = run.one("aws:eks/cluster:Cluster", "cluster").inputs
    assert cluster["name"] == f"{env}-ai-platform"
    assert cluster["version"] == config["phasegate:kubernetes_version"]
    vpc = cluster["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert sorted(vpc["subnetIds"]) == sorted(
        f"private-{z}-id" for z in config["phasegate:availability_zones"]
    )
    assert vpc["securityGroupIds"] == ["cluster-sg-id"]
    group = run.one(SECURITY_GROUP, "cluster-sg").inputs
    assert [
        (r["protocol"], r["fromPort"], r["toPort"], r["cidrBlocks"]) for r in group["ingress"]
    ] == [("tcp", 443, 443, [config["phasegate:vpc_cidr"]])]
    policy = run.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "cluster-policy")
    assert policy.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"


def test_pilot_gpu_pool_is_the_configured_small_spot_group(env: str) -> None:
    run = shipped(env, "pilot")
    pool = stack_config(env, "pilot")["phasegate:pilot_pool"]
    group = run.one(NODE_GROUP, "gpu-pilot").inputs
    types = pool.get("instance_types") or [pool["instance_type"]]
    assert group["instanceTypes"] == types
    assert group["capacityType"] == pool["capacity_type"] == "SPOT"
    assert group["scalingConfig"] == {
        "desiredSize": pool["desired_size"],
        "minSize": pool["min_size"],
        "maxSize": pool["max_size"],
    }
    assert group["labels"] == {"phasegate.io/pool": "pilot"}
    assert group["clusterName"] == f"{env}-ai-platform"


def test_pilot_exports_what_later_phases_and_checks_read(env: str) -> None:
    outputs = shipped(env, "pilot").outputs
    expected = {
        "vpc_id",
        "vpc_cidr",
        "private_subnet_ids",
        "public_subnet_ids",
        "private_route_table_ids",
        "cluster_name",
        "cluster_endpoint",
        "cluster_ca",
        "cluster_security_group_id",
        "eks_security_group_id",
        "node_role_arn",
        "artifacts_bucket",
    }
    assert expected <= set(outputs)
    assert outputs["cluster_name"] == f"{env}-ai-platform"
    assert outputs["cluster_ca"] == "Q0EK"
    assert outputs["artifacts_bucket"] == f"phasegate-{env}-pilot-artifacts"
    assert outputs["vpc_cidr"] == stack_config(env, "pilot")["phasegate:vpc_cidr"]


# --- GPU node groups (pilot and compute) -------------------------------------------------


def _gpu_runs(env: str) -> list[Run]:
    return [shipped(env, "pilot"), shipped(env, "compute")]


def test_every_gpu_node_group_is_tainted_labelled_and_on_a_launch_template(env: str) -> None:
    catalog = _import_phase_module("catalog").CATALOG
    names = []
    for run in _gpu_runs(env):
        templates = {f"{r.name}-id": r for r in run.of(LAUNCH_TEMPLATE)}
        for group in run.of(NODE_GROUP):
            names.append(group.name)
            inputs = group.inputs
            assert inputs["taints"] == [GPU_TAINT], group.name
            role = group.name.removeprefix("gpu-")
            assert inputs["labels"] == {"phasegate.io/pool": role}
            assert all(t in catalog for t in inputs["instanceTypes"])
            assert inputs["launchTemplate"]["id"] in templates, group.name
            assert inputs["launchTemplate"]["version"] == "1"
            assert inputs["amiType"] == "AL2023_x86_64_NVIDIA"
            assert set(REQUIRED_TAGS) <= set(inputs["tags"])
    assert sorted(names) == ["gpu-inference", "gpu-pilot", "gpu-training"]


def test_launch_templates_require_imdsv2_and_encrypt_the_root_volume(env: str) -> None:
    templates = [t for run in _gpu_runs(env) for t in run.of(LAUNCH_TEMPLATE)]
    assert sorted(t.name for t in templates) == [
        "gpu-inference-template",
        "gpu-pilot-template",
        "gpu-training-template",
    ]
    for template in templates:
        inputs = template.inputs
        assert inputs["metadataOptions"]["httpTokens"] == "required"
        assert inputs["metadataOptions"]["httpPutResponseHopLimit"] == 2
        [root] = inputs["blockDeviceMappings"]
        assert root["ebs"]["encrypted"] == "true"
        assert root["ebs"]["volumeType"] == "gp3"
        specs = {s["resourceType"]: s["tags"] for s in inputs["tagSpecifications"]}
        assert set(specs) == {"instance", "volume"}
        for tags in specs.values():
            assert all(tags.get(k) for k in REQUIRED_TAGS)


# --- compute ----------------------------------------------------------------------------


def test_training_pool_runs_in_a_cluster_placement_group(env: str) -> None:
    run = shipped(env, "compute")
    [placement] = run.of(PLACEMENT_GROUP)
    assert placement.inputs["strategy"] == "cluster"
    template = run.one(LAUNCH_TEMPLATE, "gpu-training-template").inputs
    assert template["placement"]["groupName"] == placement.inputs["name"] == f"{env}-gpu-training"
    assert "placement" not in run.one(LAUNCH_TEMPLATE, "gpu-inference-template").inputs
    # A cluster placement group is in one zone: the training pool uses one subnet.
    assert run.one(NODE_GROUP, "gpu-training").inputs["subnetIds"] == ["subnet-0mock0"]


def test_pools_go_only_into_zones_that_offer_all_of_their_types() -> None:
    # prod: three zones; its inference types g6, g5, g6e; its training type p5.
    offered = {
        "g6.xlarge": ["us-east-1a", "us-east-1b", "us-east-1c"],
        "g5.xlarge": ["us-east-1b", "us-east-1c"],
        "g6e.xlarge": ["us-east-1c", "us-east-1d"],
        "p5.48xlarge": ["us-east-1b", "us-east-1c"],
    }
    run = run_phase("prod", "compute", offered=offered)
    # The training pool: one zone, the first configured one that offers its type.
    assert run.one(NODE_GROUP, "gpu-training").inputs["subnetIds"] == ["subnet-0mock1"]
    assert run.outputs["training_zones"] == ["us-east-1b"]
    # Inference: only the zones that offer all three of its types.
    assert run.one(NODE_GROUP, "gpu-inference").inputs["subnetIds"] == ["subnet-0mock2"]
    assert run.outputs["inference_zones"] == ["us-east-1c"]
    # The load balancer is not a GPU pool: it stays in every zone.
    lb = run.one("aws:lb/loadBalancer:LoadBalancer", "inference").inputs
    assert lb["subnets"] == [f"subnet-0mock{i}" for i in range(3)]


def test_the_pilot_pool_goes_only_into_zones_that_offer_its_types() -> None:
    run = run_phase("prod", "pilot", offered={"g6.xlarge": ["us-east-1a", "us-east-1c"]})
    subnets = {r.name: f"{r.name}-id" for r in run.of("aws:ec2/subnet:Subnet")}
    group = run.one(NODE_GROUP, "gpu-pilot").inputs
    assert group["subnetIds"] == [subnets["private-us-east-1a"], subnets["private-us-east-1c"]]
    assert run.outputs["pilot_pool_zones"] == ["us-east-1a", "us-east-1c"]
    assert run.outputs["private_subnet_zones"] == ["us-east-1a", "us-east-1b", "us-east-1c"]


@pytest.mark.parametrize(
    ("phase", "offered", "message"),
    [
        (
            "compute",
            {"p4d.24xlarge": ["us-east-1c"]},
            "stack sandbox-compute: phasegate:training_pool.instance_types: p4d.24xlarge "
            "offered in none of the zones us-east-1a, us-east-1b",
        ),
        (
            "compute",
            {"g6.xlarge": ["us-east-1a"], "g5.xlarge": ["us-east-1b"]},
            "stack sandbox-compute: phasegate:inference_pool.instance_types: no zone of "
            "us-east-1a, us-east-1b offers all of g6.xlarge, g5.xlarge",
        ),
        (
            "pilot",
            {"g5.xlarge": []},
            "stack sandbox-pilot: phasegate:pilot_pool.instance_types: g5.xlarge offered in "
            "none of the zones us-east-1a, us-east-1b",
        ),
    ],
)
def test_a_pool_no_zone_can_take_fails_the_program_naming_the_key(
    phase: str, offered: dict[str, list[str]], message: str
) -> None:
    # Where the zones are known only from the pilot's outputs, the SDK wraps the error.
    with pytest.raises(ValueError) as caught:
        run_phase("sandbox", phase, offered=offered)
    assert message in str(caught.value)


def test_pools_follow_the_stack_config(env: str) -> None:
    run = shipped(env, "compute")
    config = stack_config(env, "compute")
    for name, key in (("gpu-training", "training_pool"), ("gpu-inference", "inference_pool")):
        pool = config[f"phasegate:{key}"]
        group = run.one(NODE_GROUP, name).inputs
        assert group["instanceTypes"] == (pool.get("instance_types") or [pool["instance_type"]])
        assert group["capacityType"] == pool["capacity_type"]
        assert group["scalingConfig"] == {
            "desiredSize": pool["desired_size"],
            "minSize": pool["min_size"],
            "maxSize": pool["max_size"],
        }
        root = run.one(LAUNCH_TEMPLATE, f"{name}-template").inputs["blockDeviceMappings"][0]
        assert root["ebs"]["volumeSize"] == pool["disk_size_gib"]
    training = run.one(NODE_GROUP, "gpu-training").inputs
    assert training["capacityType"] == "ON_DEMAND"
    assert training["instanceTypes"] == (["p4d.24xlarge"] if env == "sandbox" else ["p5.48xlarge"])
    if env == "sandbox":
        assert training["scalingConfig"]["desiredSize"] == 0


def _efa_interfaces(template: Declared) -> list[dict[str, Any]]:
    return [
        i for i in template.inputs.get("networkInterfaces") or [] if i["interfaceType"] == "efa"
    ]


def test_efa_only_on_pools_whose_types_support_it(env: str) -> None:
    run = shipped(env, "compute")
    [efa] = _efa_interfaces(run.one(LAUNCH_TEMPLATE, "gpu-training-template"))
    assert efa["deviceIndex"] == 0
    assert efa["securityGroups"] == ["sg-0eksmock"]
    assert _efa_interfaces(run.one(LAUNCH_TEMPLATE, "gpu-inference-template")) == []
    assert run.outputs["training_efa"] is True


def test_no_efa_interface_on_a_training_type_without_efa() -> None:
    pool = {**stack_config("sandbox", "compute")["phasegate:training_pool"]}
    pool["instance_type"] = "g5.xlarge"
    run = run_phase("sandbox", "compute", {"phasegate:training_pool": pool})
    template = run.one(LAUNCH_TEMPLATE, "gpu-training-template")
    assert "networkInterfaces" not in template.inputs
    assert template.inputs["placement"]["groupName"] == "sandbox-gpu-training"
    assert run.outputs["training_efa"] is False


def test_kubernetes_side_namespaces_quotas_priorities_and_device_plugin(env: str) -> None:
    run = shipped(env, "compute")
    quotas = stack_config(env, "compute")["phasegate:gpu_quotas"]
    namespaces = {r.inputs["metadata"]["name"] for r in run.of("kubernetes:core/v1:Namespace")}
    assert namespaces == {"training", "inference"}
    hard = {r.inputs["metadata"]["namespace"]: r.inputs["spec"]["hard"] for r in run.of(QUOTA)}
    assert hard == {
        "training": {"requests.nvidia.com/gpu": str(quotas["training"])},
        "inference": {"requests.nvidia.com/gpu": str(quotas["inference"])},
    }
    classes = {
        r.inputs["metadata"]["name"]: r.inputs["value"]
        for r in run.of("kubernetes:scheduling.k8s.io/v1:PriorityClass")
    }
    assert set(classes) == {"training-preemptible", "inference-critical"}
    assert classes["inference-critical"] > classes["training-preemptible"]

    [plugin] = run.of("kubernetes:apps/v1:DaemonSet")
    assert plugin.inputs["metadata"]["namespace"] == "kube-system"
    pod = plugin.inputs["spec"]["template"]["spec"]
    assert [c["image"] for c in pod["containers"]] == ["nvcr.io/nvidia/k8s-device-plugin:v0.17.0"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    [provider] = run.of("pulumi:providers:kubernetes")
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{env}.eks.mock"
    assert kubeconfig["users"][0]["user"]["exec"]["args"][-1] == f"{env}-ai-platform"


def test_inference_front_door_is_internal_behind_a_load_balancer_group(env: str) -> None:
    run = shipped(env, "compute")
    group = run.one(SECURITY_GROUP, "inference-lb-sg").inputs
    assert group["tags"]["phasegate:role"] == "load-balancer"
    assert [
        (r["protocol"], r["fromPort"], r["toPort"], r["cidrBlocks"]) for r in group["ingress"]
    ] == [("tcp", 443, 443, ["0.0.0.0/0"])]
    lb = run.one("aws:lb/loadBalancer:LoadBalancer", "inference").inputs
    assert lb["name"] == f"{env}-inference"
    assert lb["internal"] is True
    assert lb["loadBalancerType"] == "network"
    assert lb["securityGroups"] == ["inference-lb-sg-id"]
    assert run.outputs["inference_dns"] == f"{env}-inference.elb.mock"
    assert run.outputs["inference_node_group"] == "gpu-inference"


# --- data_layer -------------------------------------------------------------------------

LAKE = ("raw", "curated", "features", "models", "checkpoints")


def test_lake_buckets_are_named_versioned_and_encrypted_with_the_lake_key(env: str) -> None:
    run = shipped(env, "data_layer")
    buckets = {r.name: r.inputs["bucket"] for r in run.of(BUCKET)}
    assert buckets == {f"lake-{n}": f"phasegate-{env}-lake-{n}" for n in LAKE}
    key = run.one("aws:kms/key:Key", "lake-key").inputs
    assert key["enableKeyRotation"] is True
    alias = run.one("aws:kms/alias:Alias", "lake-key-alias").inputs
    assert alias["name"] == f"alias/phasegate-{env}-lake"
    for name in LAKE:
        versioning = run.one(VERSIONING, f"lake-{name}-versioning").inputs
        assert versioning["versioningConfiguration"]["status"] == "Enabled"
        [rule] = run.one(ENCRYPTION, f"lake-{name}-encryption").inputs["rules"]
        default = rule["applyServerSideEncryptionByDefault"]
        assert default["kmsMasterKeyId"] == "arn:aws:mock:::aws:kms/key:Key/lake-key"
    outputs = run.outputs
    assert outputs["raw_bucket"] == f"phasegate-{env}-lake-raw"
    assert outputs["lake_buckets"] == {n: f"phasegate-{env}-lake-{n}" for n in LAKE}
    assert outputs["lake_key_arn"] == "arn:aws:mock:::aws:kms/key:Key/lake-key"
    assert outputs["legacy_bucket"] == f"phasegate-legacy-{env}"


def test_the_sandbox_raw_bucket_keeps_its_name() -> None:
    assert shipped("sandbox", "data_layer").one(BUCKET, "lake-raw").inputs["bucket"] == (
        "phasegate-sandbox-lake-raw"
    )


@pytest.mark.parametrize("phase", ["pilot", "data_layer"])
def test_every_bucket_is_private_kms_encrypted_and_tls_only(env: str, phase: str) -> None:
    run = shipped(env, phase)
    buckets = run.of(BUCKET)
    assert buckets
    for bucket in buckets:
        block = run.one(PUBLIC_ACCESS, f"{bucket.name}-public-access").inputs
        assert block["bucket"] == bucket.inputs["bucket"]  # the bucket's id is its name
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            assert block[flag] is True, f"{bucket.name}: {flag}"
        [rule] = run.one(ENCRYPTION, f"{bucket.name}-encryption").inputs["rules"]
        assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        assert rule["bucketKeyEnabled"] is True
        policy = json.loads(run.one(BUCKET_POLICY, f"{bucket.name}-tls-only").inputs["policy"])
        [deny] = policy["Statement"]
        assert deny["Effect"] == "Deny"
        assert deny["Action"] == "s3:*"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        arn = f"arn:aws:s3:::{bucket.inputs['bucket']}"
        assert deny["Resource"] == [arn, f"{arn}/*"]


def test_lifecycle_days_are_as_configured(env: str) -> None:
    run = shipped(env, "data_layer")
    config = stack_config(env, "data_layer")
    expected = [
        {"storageClass": "STANDARD_IA", "days": config["phasegate:ia_after_days"]},
        {"storageClass": "GLACIER_IR", "days": config["phasegate:glacier_ir_after_days"]},
        {
            "storageClass": config["phasegate:archive_storage_class"],
            "days": config["phasegate:archive_after_days"],
        },
    ]
    for name in LAKE:
        [rule] = run.one(LIFECYCLE, f"lake-{name}-lifecycle").inputs["rules"]
        assert rule["status"] == "Enabled"
        assert rule["transitions"] == expected
        assert rule["noncurrentVersionExpiration"] == {
            "noncurrentDays": config["phasegate:noncurrent_expiry_days"]
        }
    if env == "prod":
        assert expected[-1]["storageClass"] == "DEEP_ARCHIVE"


def test_lifecycle_follows_a_changed_config() -> None:
    run = run_phase(
        "sandbox",
        "data_layer",
        {
            "phasegate:ia_after_days": 45,
            "phasegate:glacier_ir_after_days": 120,
            "phasegate:archive_after_days": 400,
            "phasegate:noncurrent_expiry_days": 14,
        },
    )
    [rule] = run.one(LIFECYCLE, "lake-raw-lifecycle").inputs["rules"]
    assert [t["days"] for t in rule["transitions"]] == [45, 120, 400]
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 14


# --- cutover ----------------------------------------------------------------------------


def test_weighted_records_and_one_alarm_per_target(env: str) -> None:
    run = shipped(env, "cutover")
    config = stack_config(env, "cutover")
    host = f"{config['phasegate:app_host']}.{config['phasegate:zone']}"
    records = {r.name: r.inputs for r in run.of(RECORD)}
    assert set(records) == {"app-legacy", "app-platform"}
    first = config["phasegate:steps"][0]  # no step given: the first one
    weights = {"legacy": first["legacy"], "platform": first["platform"]}
    for target in ("legacy", "platform"):
        record = records[f"app-{target}"]
        assert record["name"] == host
        assert record["zoneId"] == ZONE_ID
        assert record["type"] == "CNAME"
        assert record["setIdentifier"] == target
        assert record["weightedRoutingPolicies"] == [{"weight": weights[target]}]
    assert records["app-legacy"]["records"] == [config["phasegate:legacy_target"]]
    assert records["app-platform"]["records"] == [f"{env}-inference.elb.mock"]

    alarms = {r.inputs["name"]: r.inputs for r in run.of(ALARM)}
    assert set(alarms) == {f"{env}-app-legacy-5xx", f"{env}-app-platform-5xx"}
    for target in ("legacy", "platform"):
        alarm = alarms[f"{env}-app-{target}-5xx"]
        assert alarm["dimensions"]["target"] == target
        assert alarm["namespace"] == config["phasegate:metric_namespace"]
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["threshold"] == config["phasegate:alarm_threshold_percent"]
    assert run.outputs["weights"] == weights
    assert sorted(run.outputs["alarm_names"]) == sorted(alarms)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, (90, 10)), (1, (50, 50)), (2, (0, 100)), (-1, (100, 0))],
    ids=["first", "second", "last", "baseline"],
)
def test_a_cutover_step_sets_only_its_weights(step: int, expected: tuple[int, int]) -> None:
    # phasegate passes the step it applies; -1 is the baseline a rollback goes back to.
    run = run_phase("sandbox", "cutover", {"phasegate:step": step})
    weights = {r.name: r.inputs["weightedRoutingPolicies"][0]["weight"] for r in run.of(RECORD)}
    assert (weights["app-legacy"], weights["app-platform"]) == expected
    assert {r.name for r in run.resources} == {
        r.name for r in shipped("sandbox", "cutover").resources
    }


# --- bad config stops the program before anything is declared ---------------------------


def test_bad_stack_config_fails_the_program_naming_the_key() -> None:
    pool = {**stack_config("sandbox", "compute")["phasegate:inference_pool"], "min_size": 2}
    with pytest.raises(ValueError) as caught:
        run_phase("sandbox", "compute", {"phasegate:inference_pool": pool})
    assert caught.typename == "InvalidConfig"
    assert str(caught.value) == (
        "stack sandbox-compute: phasegate:inference_pool: min_size (2) must be <= desired_size (1)"
    )


def test_an_unknown_stack_config_key_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"phasegate:nat_per_zone: Extra inputs are not permitted"):
        run_phase("sandbox", "pilot", {"phasegate:nat_per_zone": "true"})


def test_the_orchestrators_phase_key_is_not_a_model_key() -> None:
    run = run_phase("sandbox", "cutover", {"phasegate:phase": "cutover"})
    assert len(run.of(RECORD)) == 2


# --- the config models ------------------------------------------------------------------


@pytest.fixture(scope="module")
def models() -> ModuleType:
    return _import_phase_module("config")


def _error(model: type[Any], data: dict[str, Any]) -> tuple[str, str]:
    """(location, message) of the one validation error ``data`` causes."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    [error] = caught.value.errors()
    return ".".join(str(p) for p in error["loc"]), error["msg"]


def test_the_shipped_configs_are_valid(models: ModuleType) -> None:
    for path in sorted(STACKS.glob("Pulumi.*.yaml")):
        phase = path.stem.split("-", 1)[1]
        config = yaml.safe_load(path.read_text())["config"]
        models.MODELS[phase].model_validate(
            {k.removeprefix("phasegate:"): v for k, v in config.items()}
        )


def test_every_model_has_the_tag_fields_and_forbids_extras(models: ModuleType) -> None:
    assert set(models.MODELS) == {"pilot", "data_layer", "compute", "cutover"}
    for model in models.MODELS.values():
        assert {"owner", "cost_center"} <= set(model.model_fields)
        assert model.model_config["extra"] == "forbid"
        assert model.model_config["frozen"] is True


def test_min_size_above_desired_size_is_refused(models: ModuleType) -> None:
    pool = {"instance_type": "g5.xlarge", "min_size": 3, "desired_size": 1, "max_size": 4}
    where, message = _error(models.ComputeConfig, {"inference_pool": pool})
    assert where == "inference_pool"
    assert "min_size (3) must be <= desired_size (1)" in message


def test_sizes_above_max_size_are_refused(models: ModuleType) -> None:
    pool = {"instance_type": "g5.xlarge", "min_size": 5, "desired_size": 5, "max_size": 4}
    where, message = _error(models.PilotConfig, {"pilot_pool": pool})
    assert where == "pilot_pool"
    assert "desired_size (5) must be <= max_size (4)" in message


def test_an_unknown_instance_type_lists_the_allowed_families(models: ModuleType) -> None:
    pool = {"instance_types": ["g5.xlarge", "m5.large"], "desired_size": 0}
    where, message = _error(models.ComputeConfig, {"training_pool": pool})
    assert where == "training_pool.instance_types"
    assert "'m5.large' not in the GPU catalog" in message
    assert "allowed families: g5, g6, g6e, p4d, p4de, p5, p5e" in message


def test_overlapping_subnets_are_refused(models: ModuleType) -> None:
    data = {
        "private_subnet_cidrs": ["10.20.0.0/19", "10.20.16.0/20"],
    }
    where, message = _error(models.PilotConfig, data)
    assert where == ""
    assert "CIDR blocks must not overlap" in message
    assert "private_subnet_cidrs[0] 10.20.0.0/19 overlaps private_subnet_cidrs[1]" in message


def test_a_vpc_overlapping_the_legacy_vpc_is_refused(models: ModuleType) -> None:
    data = {
        "vpc_cidr": "172.16.0.0/16",
        "public_subnet_cidrs": ["172.16.192.0/20", "172.16.208.0/20"],
        "private_subnet_cidrs": ["172.16.0.0/19", "172.16.32.0/19"],
    }
    _, message = _error(models.PilotConfig, data)
    assert "vpc_cidr 172.16.0.0/16 overlaps legacy_vpc_cidr 172.16.0.0/16" in message


def test_a_subnet_outside_the_vpc_is_refused(models: ModuleType) -> None:
    _, message = _error(
        models.PilotConfig, {"public_subnet_cidrs": ["10.20.192.0/20", "10.99.0.0/20"]}
    )
    assert "public_subnet_cidrs[1] 10.99.0.0/20 must be inside vpc_cidr 10.20.0.0/16" in message


def test_zone_and_subnet_counts_must_match(models: ModuleType) -> None:
    where, message = _error(models.PilotConfig, {"availability_zones": ["us-east-1a"]})
    assert where == "availability_zones"
    assert "list 2 or 3 availability zones (got 1)" in message
    _, message = _error(
        models.PilotConfig, {"availability_zones": ["us-east-1a", "us-east-1b", "us-east-1c"]}
    )
    assert "public_subnet_cidrs needs one CIDR per availability zone (3 zones, got 2)" in message


def test_a_malformed_cidr_says_what_a_cidr_looks_like(models: ModuleType) -> None:
    where, message = _error(models.PilotConfig, {"vpc_cidr": "10.20.0.1/16"})
    assert where == "vpc_cidr"
    assert "is not an IPv4 CIDR block like 10.20.0.0/16" in message


def test_a_weight_over_255_is_refused(models: ModuleType) -> None:
    where, message = _error(
        models.CutoverConfig,
        {
            "zone": "corp.example.com",
            "legacy_target": "legacy.corp.example.com",
            "steps": [{"legacy": 0, "platform": 300}],
        },
    )
    assert where == "steps.0.platform"
    assert "between 0 and 255 (got 300)" in message


def test_weights_that_add_up_to_zero_are_refused(models: ModuleType) -> None:
    where, message = _error(
        models.CutoverConfig,
        {
            "zone": "corp.example.com",
            "legacy_target": "legacy.corp.example.com",
            "steps": [{"legacy": 0, "platform": 0}],
        },
    )
    assert where == "steps.0"
    assert "at least one must be 1-255" in message


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Phasegate-Legacy", "a-z, 0-9, '.' and '-'"),
        ("ab", "3-63 characters"),
        ("x" * 64, "3-63 characters"),
        ("legacy_bucket", "a-z, 0-9, '.' and '-'"),
        ("-legacy", "starting and ending with a letter or digit"),
        ("legacy..exports", "no two adjacent periods"),
        ("192.168.1.10", "must not look like an IP address"),
        ("xn--legacy", "AWS reserves the prefixes"),
    ],
)
def test_a_bad_bucket_name_says_what_is_allowed(models: ModuleType, name: str, why: str) -> None:
    where, message = _error(models.DataLayerConfig, {"legacy_bucket": name})
    assert where == "legacy_bucket"
    assert why in message


def test_lifecycle_days_respect_the_s3_minimums(models: ModuleType) -> None:
    base = {"legacy_bucket": "phasegate-legacy-sandbox"}
    where, message = _error(models.DataLayerConfig, {**base, "ia_after_days": 10})
    assert where == "ia_after_days"
    assert "greater than or equal to 30" in message
    _, message = _error(models.DataLayerConfig, {**base, "glacier_ir_after_days": 45})
    assert "glacier_ir_after_days (45) must be at least ia_after_days + 30 (60)" in message
    _, message = _error(models.DataLayerConfig, {**base, "archive_after_days": 90})
    assert "archive_after_days (90) must be greater than glacier_ir_after_days (90)" in message


def test_instance_type_shorthand_and_its_conflict(models: ModuleType) -> None:
    pool = models.NodePool.model_validate({"instance_type": "p5.48xlarge", "desired_size": 0})
    assert pool.instance_types == ["p5.48xlarge"]
    assert pool.efa is True
    assert pool.max_gpus == 8
    _, message = _error(
        models.NodePool, {"instance_type": "g5.xlarge", "instance_types": ["g6.xlarge"]}
    )
    assert "give instance_type or instance_types, not both" in message


# --- the GPU catalog --------------------------------------------------------------------


def test_catalog_has_the_real_aws_figures() -> None:
    catalog = _import_phase_module("catalog")
    g5 = catalog.CATALOG["g5.xlarge"]
    assert (g5.gpu_model, g5.gpus, g5.gpu_memory_gib, g5.vcpus, g5.memory_gib, g5.efa) == (
        "A10G",
        1,
        24,
        4,
        16,
        False,
    )
    p4d = catalog.CATALOG["p4d.24xlarge"]
    assert (p4d.gpu_model, p4d.gpus, p4d.gpu_memory_gib, p4d.vcpus, p4d.memory_gib, p4d.efa) == (
        "A100",
        8,
        40,
        96,
        1152,
        True,
    )
    p5 = catalog.CATALOG["p5.48xlarge"]
    assert (p5.gpu_model, p5.gpus, p5.gpu_memory_gib, p5.vcpus, p5.memory_gib, p5.efa) == (
        "H100",
        8,
        80,
        192,
        2048,
        True,
    )
    assert {t.family for t in catalog.CATALOG.values()} == {
        "g5",
        "g6",
        "g6e",
        "p4d",
        "p4de",
        "p5",
        "p5e",
    }
    assert all(name.startswith(t.family + ".") for name, t in catalog.CATALOG.items())
    assert catalog.gpus("g6e.48xlarge") == 8
    with pytest.raises(KeyError, match="allowed families: g5, g6, g6e, p4d, p4de, p5, p5e"):
        catalog.gpus("m5.large")


def test_catalog_imports_only_the_standard_library() -> None:
    source = (PHASES / "catalog.py").read_text()
    imports = [
        line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))
    ]
    assert set(imports) <= {"__future__", "dataclasses"}


# --- the policy pack over the shipped programs --------------------------------------------


def _policy(env: str, phase: str, overrides: dict[str, Any] | None = None) -> list[Any]:
    """The pack's violations for a program run, judged on the config the orchestrator
    passes (the stack file with the model's defaults filled in)."""
    from phasegate.policy import evaluate
    from phasegate.project import Project

    project = Project.load(SHIPPED)
    try:
        config = project.validate_config(env, project.migration.phase(phase))
    finally:
        project.close()
    run = run_phase(env, phase, overrides) if overrides else shipped(env, phase)
    return evaluate(
        run.resources,
        stack=f"{env}-{phase}",
        config={**config, **(overrides or {})},
        pack_dir=SHIPPED / "policies",
    ).violations


@pytest.mark.parametrize("phase", ["pilot", "data_layer", "compute", "cutover"])
@pytest.mark.parametrize("environment", ["sandbox", "staging", "prod"])
def test_shipped_configs_pass_every_mandatory_policy(environment: str, phase: str) -> None:
    mandatory = [v for v in _policy(environment, phase) if v.enforcement == "mandatory"]
    assert mandatory == []


def test_the_pack_does_catch_a_shipped_program_gone_wrong() -> None:
    # The same check, with a public API server in prod: the pack must say so.
    violations = _policy("prod", "pilot", {"phasegate:public_endpoint": True})
    assert [(v.rule, v.resource_name) for v in violations] == [
        ("eks-public-endpoint-off-in-prod", "cluster")
    ]


@pytest.mark.parametrize(
    ("passed", "expected"),
    [(None, True), ([], False), (["lake-raw"], True)],
    ids=["by hand", "by phasegate, nothing protected", "by phasegate"],
)
def test_run_by_hand_a_program_protects_what_migration_yaml_protects(
    passed: list[str] | None, expected: bool
) -> None:
    """Defect 11: run by hand (`pulumi up` in the project, no `phasegate:protected`), a
    program lifted the protection of the lake; it reads migration.yaml then."""
    settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(
        _Mocks("staging"), project=PROJECT, stack="staging-data_layer", preview=False
    )
    config = {} if passed is None else {"phasegate:protected": json.dumps(passed)}
    set_all_config(config, [])
    try:
        common = _import_phase_module("common")
        assert common.keep("lake-raw").protect is expected
        assert common.keep("lake-key").protect is (passed is None)
        assert common.keep("pilot-vpc").protect is False
    finally:
        set_all_config({}, [])
