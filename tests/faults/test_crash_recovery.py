"""Crash recovery: a real ``migrate apply`` SIGKILLed at many points, then ``migrate recover``.

Each scenario copies a project applied up to some phase and runs ``migrate apply --yes``
with ``PHASEGATE_FAULTS`` set, so the process kills itself at one exact point:

* after the k-th resource operation of a first full apply, for k spread over all four
  phases (the first, middle and last operation of each);
* in a check (the outputs checks this file adds), on a first apply and on a cutover step;
* in a rollback: as it starts, after deletes of the destroy that undoes a first apply
  whose check failed, and after updates of the re-apply of a last known good.

Then ``migrate recover`` must exit 0 and leave the three records of what exists in
agreement, looked at independently:

* no state file is applying, verifying or rolling back, and each phase's outputs are
  the ones its stack's sandbox checkpoint holds;
* every resource the checkpoint holds is in the emulated cloud, and every resource in
  the emulated cloud (its legacy estate and moto's defaults aside) is in the checkpoint:
  the cloud is listed through boto3 on the sandbox's own emulator, loaded from its
  snapshot on disk, type by type, never through the engine's handlers;

and, where no check was made to fail, ``migrate apply`` succeeds afterwards. A rollback
made to fail (a cloud error injected in its re-apply) ends in ``rollback_failed``, exit
4, and ``recover`` finishes it.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from _projects import built_once, copy_project
from phasegate import faults
from phasegate.engines.base import ProgramSource, StackTarget
from phasegate.engines.sandbox import SandboxEngine, cloud_seal
from phasegate.engines.sandbox import emulator as sandbox_emulator
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.handlers import (
    REGISTRY,
    CloudContext,
    Handler,
    HandlerError,
    handler_for,
)
from phasegate.engines.sandbox.store import Checkpoint, ResourceState, SandboxStore
from phasegate.errors import EngineError
from phasegate.redaction import redact
from phasegate.state import StateStore

ENV = "sandbox"
REGION = "us-east-1"
PHASES = ("pilot", "data_layer", "compute", "cutover")
INTERRUPTED = ("applying", "verifying", "rolling_back")

Agreement = Callable[[Path], Checkpoint]


# --- running migrate --------------------------------------------------------------------


def migrate(
    cli: Any, project: Path, *args: str, fault: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``migrate ARGS`` with ``PHASEGATE_FAULTS=fault`` if given."""
    env = {faults.VARIABLE: fault} if fault is not None else None
    result: subprocess.CompletedProcess[str] = cli.run(project, *args, timeout=timeout, env=env)
    return result


def _said(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def recover(cli: Any, project: Path) -> subprocess.CompletedProcess[str]:
    result = migrate(cli, project, "recover")
    assert result.returncode == 0, f"migrate recover: {_said(result)}"
    return result


def statuses(project: Path) -> dict[str, str]:
    store = StateStore(project / "state", ENV)
    return {phase: store.read(phase).status for phase in PHASES}


def stack_file(project: Path, phase: str) -> Path:
    return project / "stacks" / f"Pulumi.{ENV}-{phase}.yaml"


def add_checks(project: Path, phase: str, *checks: dict[str, Any]) -> None:
    """Append ``checks`` to ``phase`` in the project's migration.yaml."""
    path = project / "migration.yaml"
    migration = yaml.safe_load(path.read_text())
    (spec,) = [p for p in migration["phases"] if p["name"] == phase]
    spec["checks"] = [*(spec.get("checks") or []), *checks]
    path.write_text(yaml.safe_dump(migration, sort_keys=False))


def outputs_check(name: str, **params: Any) -> dict[str, Any]:
    """An ``outputs`` check that decides at once: no waits between attempts, no retries."""
    return {"name": name, "kind": "outputs", "params": params, "interval": 0, "retries": 0}


# --- the emulated cloud, listed type by type --------------------------------------------

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
IGW = "aws:ec2/internetGateway:InternetGateway"
EIP = "aws:ec2/eip:Eip"
NAT = "aws:ec2/natGateway:NatGateway"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ROUTE = "aws:ec2/route:Route"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"
CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
BUCKET = "aws:s3/bucket:Bucket"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
RECORD = "aws:route53/record:Record"
ZONE = "aws:route53/zone:Zone"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
KUBERNETES = "kubernetes:*"
# A bucket's configurations, each a resource of its own, and how S3 shows one is set.
BUCKET_CONFIGS: dict[str, Callable[[Any, str], bool]] = {
    "aws:s3/bucketVersioning:BucketVersioning": lambda s3, bucket: (
        s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        lambda s3, bucket: _answers(s3.get_bucket_encryption, bucket)
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": lambda s3, bucket: _answers(
        s3.get_public_access_block, bucket
    ),
    "aws:s3/bucketPolicy:BucketPolicy": lambda s3, bucket: _answers(s3.get_bucket_policy, bucket),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": lambda s3, bucket: _answers(
        s3.get_bucket_lifecycle_configuration, bucket
    ),
}
LISTED = {
    *(VPC, SUBNET, IGW, EIP, NAT, ENDPOINT, ROUTE_TABLE, ROUTE, ASSOCIATION, SECURITY_GROUP),
    *(LAUNCH_TEMPLATE, PLACEMENT_GROUP, CLUSTER, NODE_GROUP, ROLE, ATTACHMENT, KEY, ALIAS),
    *(BUCKET, LOAD_BALANCER, RECORD, ALARM, KUBERNETES, *BUCKET_CONFIGS),
}
"""The types the agreement check can find in the cloud; a stack with another fails it."""


def _answers(call: Callable[..., Any], bucket: str) -> bool:
    """Whether S3 answers a read of a bucket configuration (it errs when there is none)."""
    try:
        call(Bucket=bucket)
    except Exception as exc:
        if "Error" not in getattr(exc, "response", {}):
            raise
        return False
    return True


def _kind(resource: ResourceState) -> str:
    return KUBERNETES if resource.type.startswith("kubernetes:") else resource.type


def _record_key(zone: str, name: str, type_: str, set_identifier: str | None) -> str:
    return "|".join([zone, name.rstrip("."), type_, set_identifier or ""])


def _recorded_key(resource: ResourceState) -> str:
    """What identifies a resource of the checkpoint in the cloud listing."""
    out = resource.outputs
    kind = _kind(resource)
    if kind == ROUTE:
        destination = (
            out.get("destinationCidrBlock")
            or out.get("destinationIpv6CidrBlock")
            or out.get("destinationPrefixListId")
        )
        return f"{out['routeTableId']}|{destination}"
    if kind == ASSOCIATION:
        return f"{out['routeTableId']}|{out.get('subnetId') or out.get('gatewayId')}"
    if kind in BUCKET_CONFIGS:
        return str(out["bucket"])
    if kind == RECORD:
        return _record_key(out["zoneId"], out["name"], out["type"], out.get("setIdentifier"))
    return resource.id


def recorded(checkpoint: Checkpoint) -> set[tuple[str, str]]:
    """(type, key) of every cloud resource of every stack in the checkpoint."""
    found = set()
    for stack, state in checkpoint.stacks.items():
        # Released resources (kept by a rollback, no longer managed) are known too.
        for resource in [*state.resources, *state.released]:
            if not resource.custom or resource.type.startswith("pulumi:"):
                continue
            assert _kind(resource) in LISTED, (
                f"{stack}: the agreement check cannot find {resource.type} in the cloud; "
                "teach in_cloud() to list it"
            )
            found.add((_kind(resource), _recorded_key(resource)))
    return found


def in_cloud(client: Callable[[str], Any], checkpoint: Checkpoint) -> set[tuple[str, str]]:
    """(type, key) of every resource in the emulated cloud, as AWS lists them, without
    the legacy estate and what AWS (moto) makes on its own: default VPC, main route
    tables, default security groups, AWS managed keys, a zone's NS and SOA."""
    legacy = checkpoint.legacy
    found: set[tuple[str, str]] = set()
    ec2 = client("ec2")
    vpcs = ec2.describe_vpcs()["Vpcs"]
    skipped = {v["VpcId"] for v in vpcs if v.get("IsDefault")} | {legacy.get("vpc_id")}
    found |= {(VPC, v["VpcId"]) for v in vpcs if v["VpcId"] not in skipped}
    for subnet in ec2.describe_subnets()["Subnets"]:
        if subnet["VpcId"] not in skipped:
            found.add((SUBNET, subnet["SubnetId"]))
    for gateway in ec2.describe_internet_gateways()["InternetGateways"]:
        if not {a["VpcId"] for a in gateway.get("Attachments", [])} & skipped:
            found.add((IGW, gateway["InternetGatewayId"]))
    found |= {(EIP, a["AllocationId"]) for a in ec2.describe_addresses()["Addresses"]}
    for nat in ec2.describe_nat_gateways()["NatGateways"]:
        if nat["State"] not in ("deleting", "deleted"):
            found.add((NAT, nat["NatGatewayId"]))
    for endpoint in ec2.describe_vpc_endpoints()["VpcEndpoints"]:
        if endpoint["State"].lower() not in ("deleting", "deleted"):
            found.add((ENDPOINT, endpoint["VpcEndpointId"]))
    for table in ec2.describe_route_tables()["RouteTables"]:
        if table["VpcId"] in skipped:
            continue
        table_id = table["RouteTableId"]
        if not any(a.get("Main") for a in table["Associations"]):
            found.add((ROUTE_TABLE, table_id))
        for association in table["Associations"]:
            if not association.get("Main"):
                target = association.get("SubnetId") or association.get("GatewayId")
                found.add((ASSOCIATION, f"{table_id}|{target}"))
        for route in table["Routes"]:
            gateway = route.get("GatewayId", "")
            if gateway == "local" or gateway.startswith("vpce-"):
                continue  # the VPC's own route, and those its endpoints add
            destination = route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock")
            found.add((ROUTE, f"{table_id}|{destination}"))
    for group in ec2.describe_security_groups()["SecurityGroups"]:
        if group["VpcId"] not in skipped and group["GroupName"] != "default":
            found.add((SECURITY_GROUP, group["GroupId"]))
    for template in ec2.describe_launch_templates()["LaunchTemplates"]:
        found.add((LAUNCH_TEMPLATE, template["LaunchTemplateId"]))

    eks = client("eks")
    for cluster in eks.list_clusters()["clusters"]:
        found.add((CLUSTER, cluster))
        for group in eks.list_nodegroups(clusterName=cluster)["nodegroups"]:
            found.add((NODE_GROUP, f"{cluster}:{group}"))

    iam = client("iam")
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if role["Path"].startswith("/aws-service-role/"):
                continue
            name = role["RoleName"]
            found.add((ROLE, name))
            attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
            found |= {(ATTACHMENT, f"{name}/{p['PolicyArn']}") for p in attached}

    kms = client("kms")
    for key in kms.list_keys()["Keys"]:
        meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        if meta["KeyManager"] == "CUSTOMER" and meta["KeyState"] != "PendingDeletion":
            found.add((KEY, key["KeyId"]))
    for alias in kms.list_aliases()["Aliases"]:
        if not alias["AliasName"].startswith("alias/aws/"):
            found.add((ALIAS, alias["AliasName"]))

    s3 = client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        if name == legacy.get("bucket"):
            continue
        found.add((BUCKET, name))
        found |= {(kind, name) for kind, is_set in BUCKET_CONFIGS.items() if is_set(s3, name)}

    for balancer in client("elbv2").describe_load_balancers()["LoadBalancers"]:
        found.add((LOAD_BALANCER, balancer["LoadBalancerArn"]))

    route53 = client("route53")
    legacy_zones = set(legacy.get("zones", {}).values())
    for zone in route53.list_hosted_zones()["HostedZones"]:
        zone_id = zone["Id"].rsplit("/", 1)[-1]
        if zone_id not in legacy_zones:
            found.add((ZONE, zone_id))
        records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])
        for record in records["ResourceRecordSets"]:
            name = record["Name"].rstrip(".")
            apex = name == zone["Name"].rstrip(".") and record["Type"] in ("NS", "SOA")
            if apex or name == legacy.get("app_host"):
                continue
            key = _record_key(zone_id, name, record["Type"], record.get("SetIdentifier"))
            found.add((RECORD, key))

    for alarm in client("cloudwatch").describe_alarms()["MetricAlarms"]:
        found.add((ALARM, alarm["AlarmName"]))

    # What the emulator lacks, the sandbox keeps itself (the plan marks it emulated).
    found |= {(PLACEMENT_GROUP, k) for k in checkpoint.store.get("ec2_placement_groups", {})}
    found |= {(KUBERNETES, k) for k in checkpoint.store.get("kubernetes", {})}
    return found


def sandbox_store(cli: Any, project: Path) -> SandboxStore:
    """The project's sandbox store, as the ``migrate`` runs keep it (sealed with the key
    of their HOME, not this test's)."""
    directory = project / ".phasegate" / "sandbox" / ENV
    return SandboxStore(directory, ENV, REGION, key_file=cloud_seal.key_path(cli.env))


class Cloud:
    """The sandbox's emulator in this process, loading a project's cloud snapshot from
    disk to be listed through boto3 (clients made once: making them is the slow part)."""

    def __init__(self, emulator: Emulator, cli: Any) -> None:
        self._emulator = emulator
        self._cli = cli
        self._session = emulator.session()
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, region_name=REGION)
        return self._clients[service]

    def listing(self, project: Path) -> tuple[Checkpoint, set[tuple[str, str]]]:
        """The project's sandbox checkpoint, and what its cloud snapshot holds."""
        store = sandbox_store(self._cli, project)
        checkpoint = store.load()
        self._emulator.load(store.cloud_dump(checkpoint), blobs=store.blobs)
        return checkpoint, in_cloud(self.client, checkpoint)


@pytest.fixture(scope="module")
def cloud(cli: Any) -> Iterator[Cloud]:
    with pytest.MonkeyPatch.context() as mp:
        # The emulator sets its moto variables with setdefault: put back what was there.
        for name, value in sandbox_emulator._ENV_DEFAULTS.items():
            mp.setenv(name, value)
        emulator = Emulator(REGION)
        emulator.start()
        try:
            yield Cloud(emulator, cli)
        finally:
            emulator.load(b"")
            emulator.stop()


@pytest.fixture
def agreement(cloud: Cloud) -> Agreement:
    """Assert that state files, sandbox checkpoint and emulated cloud agree; returns the
    checkpoint for further questions."""

    def check(project: Path) -> Checkpoint:
        states = StateStore(project / "state", ENV)
        found = {phase: states.read(phase) for phase in PHASES}
        stuck = {p: s.status for p, s in found.items() if s.status in INTERRUPTED}
        assert not stuck, f"state files left mid-run: {stuck}"

        checkpoint, listed = cloud.listing(project)
        for phase, state in found.items():
            stack = checkpoint.stacks.get(f"{ENV}-{phase}")
            urns = [r.urn for r in stack.resources] if stack else []
            assert len(urns) == len(set(urns)), f"{phase}: a replacement left half done"
            outputs = redact(stack.outputs, set(stack.secret_outputs)) if stack else {}
            assert state.outputs == outputs, (
                f"{phase} ({state.status}): the state file's outputs are not the checkpoint's"
            )
            if state.status == "pending":
                assert not urns, f"{phase} was never applied, yet its checkpoint holds {urns}"
        held = recorded(checkpoint)
        missing = sorted(held - listed)
        orphaned = sorted(listed - held)
        assert not missing, f"in the checkpoint but not in the cloud: {missing}"
        assert not orphaned, f"in the cloud but in no checkpoint: {orphaned}"
        return checkpoint

    return check


def cloud_resources(checkpoint: Checkpoint, phase: str) -> list[str]:
    stack = checkpoint.stacks.get(f"{ENV}-{phase}")
    return [
        f"{r.type} {r.name}"
        for r in (stack.resources if stack else [])
        if r.custom and not r.type.startswith("pulumi:")
    ]


# --- projects applied up to a phase -----------------------------------------------------


class Templates:
    """Projects applied up to a phase (``applied_before`` in conftest.py): ``before(p)``
    has every phase before ``p`` verified and ``p`` never applied; ``ops[p]`` counts the
    resource operations of ``p``'s first apply (one create per cloud resource, as the plan
    of the whole fresh project says)."""

    def __init__(
        self,
        cli: Any,
        applied_before: Callable[[str], Path],
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        self.before = applied_before

        def plan(project: Path) -> dict[str, Any]:
            copy_project(applied_before(PHASES[0]), project)
            result = migrate(cli, project, "plan", "--output", "json")
            assert result.returncode == 0, f"plan: {_said(result)}"
            phases = json.loads(result.stdout)["phases"]
            return {"ops": {p["phase"]: p["changes"]["create"] for p in phases}}

        _, facts = built_once(tmp_path_factory, "crash-planned", plan)
        self.ops: dict[str, int] = facts["ops"]

    def ops_before(self, phase: str) -> int:
        return sum(self.ops[p] for p in PHASES[: PHASES.index(phase)])


@pytest.fixture(scope="module")
def templates(
    cli: Any, applied_before: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Templates:
    return Templates(cli, applied_before, tmp_path_factory)


# --- the kills -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One kill: a copy of ``template()`` (it may build the project first), ``command``
    killed at ``fault``, ``migrate recover``, then (unless None) ``afterwards``."""

    template: Callable[[], Path]
    fault: str
    command: tuple[str, ...]
    afterwards: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Rehearsal:
    """What a scenario left: the project, and a copy of it taken right after recover."""

    project: Path
    recovered: Path
    killed: subprocess.CompletedProcess[str]
    interrupted: dict[str, str]
    """The phases' statuses as the kill left them."""
    recover: subprocess.CompletedProcess[str]
    afterwards: subprocess.CompletedProcess[str] | None


def rehearse(cli: Any, scenario: Scenario, workdir: Path) -> Rehearsal:
    project = copy_project(scenario.template(), workdir / "project")
    killed = migrate(cli, project, *scenario.command, fault=scenario.fault)
    interrupted = statuses(project)
    recovered = migrate(cli, project, "recover")
    snapshot = copy_project(project, workdir / "recovered")
    afterwards = None
    if scenario.afterwards is not None and recovered.returncode == 0:
        afterwards = migrate(cli, project, *scenario.afterwards)
    return Rehearsal(project, snapshot, killed, interrupted, recovered, afterwards)


def checked(rehearsal: Rehearsal, fault: str, *, interrupted: str, phase: str) -> None:
    """The run died at ``fault`` leaving ``phase`` ``interrupted``, and recover exited 0."""
    assert rehearsal.killed.returncode == -signal.SIGKILL, (
        f"never reached {fault}: {_said(rehearsal.killed)}"
    )
    assert rehearsal.interrupted[phase] == interrupted, (
        f"killed at {fault}: {rehearsal.interrupted}"
    )
    assert rehearsal.recover.returncode == 0, f"recover after {fault}: {_said(rehearsal.recover)}"


# Kills after the n-th resource operation of a phase's first apply, in a full apply.
SPREAD = {"first": 0.0, "halfway": 0.5, "last": 1.0}
RESOURCE_OP_KILLS = [(phase, at) for phase in PHASES for at in SPREAD]

# Kills in the n-th check; this file adds two outputs checks to the phase.
CHECKED_OUTPUTS = {"compute": ["gpu_quotas", "namespaces"], "cutover": ["app_host", "weights"]}
CHECK_KILLS = [("compute", 1), ("cutover", 1), ("cutover", 2)]

# Compute's first apply fails its check: kills in the check, as the rollback starts, and
# after deletes of the destroy that undoes the apply (no last known good yet).
FAILING = outputs_check("crash_never_passes", present=["no_such_output"])
DESTROY_KILLS = ["check:1", "rollback:1", "first delete", "halfway", "last delete"]

# Verified compute changed, and a check fails on the change: kills as the rollback
# starts and after updates of its re-apply of the last known good.
REAPPLY_KILLS = ["rollback:1", "first update", "halfway", "last update"]


def nth(total: int, at: str) -> int:
    """The operation ``at`` (first, halfway, last) of ``total``, counted from 1."""
    return 1 + round(SPREAD[at] * (total - 1))


def _resource_op_scenario(templates: Templates, phase: str, at: str) -> Scenario:
    # Every phase before this one is verified: the run's n-th operation is this
    # phase's n-th, and the (ops before + n)-th of a first full apply.
    return Scenario(
        lambda: templates.before(phase),
        f"resource-op:{nth(templates.ops[phase], at)}",
        ("apply", "--yes"),
        afterwards=("apply", "--yes", "--phase", phase),
    )


def _check_scenario(checked_phase: Path, phase: str, n: int) -> Scenario:
    return Scenario(
        lambda: checked_phase,
        f"check:{n}",
        ("apply", "--yes", "--phase", phase),
        afterwards=("apply", "--yes", "--phase", phase),
    )


def _destroy_scenario(templates: Templates, failing: Path, point: str) -> Scenario:
    created = templates.ops["compute"]
    fault = {
        "first delete": f"resource-op:{created + 1}",
        "halfway": f"resource-op:{created + (created + 1) // 2}",
        "last delete": f"resource-op:{2 * created}",
    }.get(point, point)
    return Scenario(lambda: failing, fault, ("apply", "--yes", "--phase", "compute"))


def _reapply_scenario(changed: ChangedCompute, point: str) -> Scenario:
    n = changed.operations
    fault = {
        "first update": f"resource-op:{n + 1}",
        "halfway": f"resource-op:{n + (n + 1) // 2}",
        "last update": f"resource-op:{2 * n}",
    }.get(point, point)
    return Scenario(lambda: changed.project, fault, ("apply", "--yes", "--phase", "compute"))


@dataclass(frozen=True)
class ChangedCompute:
    """Verified compute with a changed stack config whose check fails: the rollback
    re-applies the last known good, ``operations`` updates back."""

    project: Path
    operations: int
    verified_outputs: dict[str, Any]


@pytest.fixture(scope="module")
def checked_phases(
    templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Compute and cutover each about to be applied, with two outputs checks added."""
    root = tmp_path_factory.mktemp("checked")
    found = {}
    for phase, names in CHECKED_OUTPUTS.items():
        project = copy_project(templates.before(phase), root / phase)
        add_checks(project, phase, *[outputs_check(f"crash_{n}", present=[n]) for n in names])
        found[phase] = project
    return found


@pytest.fixture(scope="module")
def failing_first_apply(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compute about to be applied for the first time, with a check that fails."""
    project = copy_project(
        templates.before("compute"), tmp_path_factory.mktemp("failing") / "project"
    )
    add_checks(project, "compute", FAILING)
    return project


@pytest.fixture(scope="module")
def changed_compute(
    cli: Any, templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> ChangedCompute:
    root = tmp_path_factory.mktemp("changed-compute")
    project = copy_project(templates.before("cutover"), root / "project")
    verified = StateStore(project / "state", ENV).read("compute").outputs
    # Bigger root volumes give both launch templates a new version and roll both node
    # groups to it; smaller GPU quotas update both quotas, and fail the check.
    path = stack_file(project, "compute")
    stack = yaml.safe_load(path.read_text())
    config = stack["config"]
    for pool in ("phasegate:training_pool", "phasegate:inference_pool"):
        config[pool]["disk_size_gib"] += 20
    quotas = config["phasegate:gpu_quotas"]
    assert quotas == verified["gpu_quotas"] and all(n > 0 for n in quotas.values())
    config["phasegate:gpu_quotas"] = {pool: n - 1 for pool, n in quotas.items()}
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    add_checks(project, "compute", outputs_check("crash_quotas", equals={"gpu_quotas": quotas}))
    planned = copy_project(project, root / "planned")
    plan = migrate(cli, planned, "plan", "--phase", "compute", "--output", "json")
    assert plan.returncode == 0, _said(plan)
    (compute,) = json.loads(plan.stdout)["phases"]
    operations = sum(n for op, n in compute["changes"].items() if op != "same")
    assert operations >= 4, f"the change touches too little of compute: {compute['changes']}"
    return ChangedCompute(project, operations, verified)


# --- the tests --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_rollback_that_fails_ends_in_rollback_failed_and_recover_finishes_it(
    cli: Any, changed_compute: ChangedCompute, agreement: Agreement, tmp_path: Path
) -> None:
    project = copy_project(changed_compute.project, tmp_path / "project")
    # The second operation of the rollback's re-apply fails as a cloud API error would.
    fault = f"resource-op-fail:{changed_compute.operations + 2}:fail"
    failed = migrate(cli, project, "apply", "--yes", "--phase", "compute", fault=fault)
    assert failed.returncode == 4, _said(failed)
    assert "injected fault at resource-op-fail" in failed.stdout + failed.stderr
    assert statuses(project)["compute"] == "rollback_failed"
    agreement(project)  # the failed operation changed nothing; what was done is recorded

    blocked = migrate(cli, project, "apply", "--yes", "--phase", "compute")
    assert blocked.returncode == 5, _said(blocked)
    assert "migrate recover" in blocked.stderr

    recover(cli, project)
    agreement(project)
    state = StateStore(project / "state", ENV).read("compute")
    assert state.status == "rolled_back"
    assert state.outputs == changed_compute.verified_outputs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("phase", "at"), RESOURCE_OP_KILLS, ids=[f"{p}-{a}" for p, a in RESOURCE_OP_KILLS]
)
def test_killed_after_a_resource_operation(
    cli: Any, templates: Templates, agreement: Agreement, phase: str, at: str, tmp_path: Path
) -> None:
    scenario = _resource_op_scenario(templates, phase, at)
    k = templates.ops_before(phase) + nth(templates.ops[phase], at)
    done = rehearse(cli, scenario, tmp_path)
    checked(
        done,
        f"{scenario.fault} (operation {k} of the first apply)",
        interrupted="applying",
        phase=phase,
    )

    checkpoint = agreement(done.recovered)
    found = statuses(done.recovered)
    earlier, later = PHASES[: PHASES.index(phase)], PHASES[PHASES.index(phase) + 1 :]
    assert found[phase] == "rolled_back", found
    assert all(found[p] == "verified" for p in earlier), found
    assert all(found[p] == "pending" for p in later), found
    state = StateStore(done.recovered / "state", ENV).read(phase)
    if state.steps is not None or state.step is not None:
        assert state.step == -1, "a stepped phase rolls back to its baseline"
    else:  # never verified: what the apply created is destroyed, protected resources kept
        stack = checkpoint.stacks[f"{ENV}-{phase}"]
        assert all(r.protect for r in stack.resources if r.custom), cloud_resources(
            checkpoint, phase
        )

    assert done.afterwards is not None
    assert done.afterwards.returncode == 0, f"apply after recovering: {_said(done.afterwards)}"
    assert statuses(done.project)[phase] == "verified"
    agreement(done.project)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("phase", "n"), CHECK_KILLS, ids=[f"{p}-check-{n}" for p, n in CHECK_KILLS]
)
def test_killed_during_a_check(
    cli: Any,
    checked_phases: dict[str, Path],
    agreement: Agreement,
    phase: str,
    n: int,
    tmp_path: Path,
) -> None:
    done = rehearse(cli, _check_scenario(checked_phases[phase], phase, n), tmp_path)
    checked(done, f"check:{n}", interrupted="verifying", phase=phase)
    agreement(done.recovered)
    assert statuses(done.recovered)[phase] == "verified", "recover finishes the verification"

    assert done.afterwards is not None
    assert done.afterwards.returncode == 0, _said(done.afterwards)
    assert statuses(done.project)[phase] == "verified"
    agreement(done.project)


@pytest.mark.slow
@pytest.mark.parametrize("point", DESTROY_KILLS, ids=[p.replace(" ", "-") for p in DESTROY_KILLS])
def test_killed_while_destroying_a_first_apply(
    cli: Any,
    templates: Templates,
    failing_first_apply: Path,
    agreement: Agreement,
    point: str,
    tmp_path: Path,
) -> None:
    scenario = _destroy_scenario(templates, failing_first_apply, point)
    fault = scenario.fault
    done = rehearse(cli, scenario, tmp_path)
    interrupted = "verifying" if fault.startswith("check:") else "rolling_back"
    checked(done, fault, interrupted=interrupted, phase="compute")
    checkpoint = agreement(done.recovered)
    assert statuses(done.recovered)["compute"] == "rolled_back"
    assert cloud_resources(checkpoint, "compute") == [], "the rollback destroys it all"


@pytest.mark.slow
@pytest.mark.parametrize("point", REAPPLY_KILLS, ids=[p.replace(" ", "-") for p in REAPPLY_KILLS])
def test_killed_while_reapplying_the_last_known_good(
    cli: Any, changed_compute: ChangedCompute, agreement: Agreement, point: str, tmp_path: Path
) -> None:
    scenario = _reapply_scenario(changed_compute, point)
    fault = scenario.fault
    done = rehearse(cli, scenario, tmp_path)
    checked(done, fault, interrupted="rolling_back", phase="compute")
    agreement(done.recovered)
    state = StateStore(done.recovered / "state", ENV).read("compute")
    assert state.status == "rolled_back"
    assert state.outputs == changed_compute.verified_outputs, "back at the last known good"


# --- an operation that fails half way ---------------------------------------------------

HALF_WAY = "phasegate-test:index:HalfWay"
HALF_WAY_CIDR = "10.99.0.0/16"
HALF_WAY_PROGRAM = f"""
import pulumi
import pulumi_aws as aws

def program():
    network = aws.ec2.Vpc("network", cidr_block="10.98.0.0/16")
    pulumi.CustomResource(
        "{HALF_WAY}", "half", {{}}, opts=pulumi.ResourceOptions(depends_on=[network])
    )
"""


class HalfWay(Handler):
    """A create whose first call succeeds and second fails, as a cloud API error would."""

    type = HALF_WAY

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ctx.client("ec2").create_vpc(CidrBlock=HALF_WAY_CIDR)
        raise HandlerError("the second call of this create failed")

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.client("ec2").delete_vpc(VpcId=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        vpcs = ctx.client("ec2").describe_vpcs()["Vpcs"]
        return any(v["VpcId"] == id_ for v in vpcs)


def test_an_operation_that_fails_half_way_leaves_nothing_unrecorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in sandbox_emulator._ENV_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    assert handler_for("aws:ec2/vpc:Vpc") is not None  # the registry, filled
    monkeypatch.setitem(REGISTRY, HALF_WAY, HalfWay())
    main = "import importlib\nimportlib.import_module('halfway').program()\n"
    target = StackTarget(
        project="crash",
        environment=ENV,
        phase="halfway",
        region=REGION,
        program=ProgramSource(
            "halfway", {"__main__.py": main.encode(), "halfway.py": HALF_WAY_PROGRAM.encode()}
        ),
        config={},
    )
    engine = SandboxEngine(tmp_path / "sandbox", {ENV: REGION})
    try:
        with pytest.raises(EngineError, match="the second call of this create failed"):
            engine.up(target)
        # What the rollback does next commits the cloud again, in this same process.
        engine.destroy(target)
    finally:
        engine.close()

    store = SandboxStore(tmp_path / "sandbox" / ENV, ENV, REGION)
    checkpoint = store.load()
    assert cloud_resources(checkpoint, "halfway") == []
    try:
        ec2 = store.cloud(checkpoint).session().client("ec2", region_name=REGION)
        cidrs = {v["CidrBlock"] for v in ec2.describe_vpcs()["Vpcs"]}
    finally:
        store.close()
    assert "10.98.0.0/16" not in cidrs, "the destroy deleted what the failed up created"
    assert HALF_WAY_CIDR not in cidrs, "the half-done create was saved with the next commit"


# --- drift found while recovering ---------------------------------------------------------


@pytest.mark.slow
def test_a_verification_is_not_finished_over_resources_gone_from_the_cloud(
    cli: Any, templates: Templates, agreement: Agreement, tmp_path: Path
) -> None:
    """Killed in a check of a compute change; meanwhile a launch template is deleted
    behind the sandbox's back. What was applied is not all there: recover rolls back to
    the last known good (which puts it back) instead of verifying what is left."""
    project = copy_project(templates.before("cutover"), tmp_path / "project")
    path = stack_file(project, "compute")
    stack = yaml.safe_load(path.read_text())
    stack["config"]["phasegate:inference_pool"]["disk_size_gib"] += 20
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    killed = migrate(cli, project, "apply", "--yes", "--phase", "compute", fault="check:1")
    assert killed.returncode == -signal.SIGKILL, _said(killed)
    assert statuses(project)["compute"] == "verifying"

    store = sandbox_store(cli, project)
    checkpoint = store.load()
    try:
        ec2 = store.cloud(checkpoint).client("ec2")
        [template] = ec2.describe_launch_templates(LaunchTemplateNames=["sandbox-gpu-training"])[
            "LaunchTemplates"
        ]
        ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
        store.commit(checkpoint)
    finally:
        store.close()

    recovered = recover(cli, project)
    assert "no longer all in the cloud" in recovered.stdout + recovered.stderr
    state = StateStore(project / "state", ENV).read("compute")
    assert state.status == "rolled_back", state.history[-1]
    checkpoint = agreement(project)
    resources = checkpoint.stacks[f"{ENV}-compute"].resources
    templates_left = {r.outputs.get("name") for r in resources if r.type == LAUNCH_TEMPLATE}
    assert "sandbox-gpu-training" in templates_left, "the rollback put it back"
