"""The readiness audit against the emulated cloud in this process: each probe's findings
on an account as the shipped sandbox configs would find it, the score from its one
table, and that the audit only reads (every operation recorded through botocore's event
hooks, as tests/unit/test_parity.py records S3's)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.ec2.models import instance_types as moto_offerings

from phasegate.audit import CREDIT, WEIGHTS, Finding, findings_of, report, score
from phasegate.audit.base import AuditInputs, Pool
from phasegate.audit.data import data
from phasegate.audit.network import ADDRESSES_PER_NODE, network
from phasegate.engines.sandbox.emulator import Emulator

REGION = "us-east-1"
LEGACY = "legacy-exports"
VCPUS = {"g5.xlarge": 4, "g6.xlarge": 4, "p4d.24xlarge": 96}
POOLS = (
    # The shipped sandbox configs: pilot, then compute's training and inference pools.
    Pool("pilot", "pilot_pool", ("g5.xlarge",), "SPOT", 1, 1),
    Pool("compute", "training_pool", ("p4d.24xlarge",), "ON_DEMAND", 0, 1),
    Pool("compute", "inference_pool", ("g6.xlarge", "g5.xlarge"), "SPOT", 1, 2),
)
READ = ("Describe", "Get", "List", "Head")


class Account:
    """Clients of the emulated cloud, made for one test, whose every operation is
    recorded; ``answers`` stands in for a service (Service Quotas) by name."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.operations: list[str] = []
        self.answers: dict[str, Any] = {}
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service in self.answers:
            return self.answers[service]
        if service not in self._clients:
            client = self.emu.session().client(service, region_name=REGION)
            client.meta.events.register("before-parameter-build", self._record)
            self._clients[service] = client
        return self._clients[service]

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)


class Quotas:
    """Service Quotas as an account answers it: the applied value of each code."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def get_service_quota(self, ServiceCode: str, QuotaCode: str) -> dict[str, Any]:
        assert ServiceCode == "ec2"
        return {"Quota": {"QuotaCode": QuotaCode, "Value": self.values[QuotaCode]}}


@pytest.fixture
def account(emu: Emulator) -> Iterator[Account]:
    emu.reset()
    yield Account(emu)
    emu.reset()


@pytest.fixture
def vpc(account: Account) -> dict[str, Any]:
    """The pilot's network as applied: two private and two public subnets, one NAT
    gateway in the first zone, an S3 gateway endpoint; and the legacy bucket, private,
    encrypted and versioned, with three objects."""
    ec2 = account("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    private = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]
        for cidr, zone in (("10.20.0.0/19", "us-east-1a"), ("10.20.32.0/19", "us-east-1b"))
    ]
    public = ec2.create_subnet(
        VpcId=vpc_id, CidrBlock="10.20.192.0/20", AvailabilityZone="us-east-1a"
    )["Subnet"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.create_nat_gateway(SubnetId=public["SubnetId"], AllocationId=allocation)
    table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_vpc_endpoint(
        VpcId=vpc_id,
        ServiceName=f"com.amazonaws.{REGION}.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=[table],
    )
    s3 = account("s3")
    s3.create_bucket(Bucket=LEGACY)
    s3.put_bucket_versioning(Bucket=LEGACY, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=LEGACY,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=LEGACY,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    for n, body in enumerate((b"a" * 10, b"b" * 20, b"")):
        s3.put_object(Bucket=LEGACY, Key=f"exports/part-{n}.csv", Body=body)
    account.operations.clear()
    return {"vpc_id": vpc_id, "private": [s["SubnetId"] for s in private]}


def _inputs(vpc: dict[str, Any] | None = None, **changes: Any) -> AuditInputs:
    given: dict[str, Any] = {
        "region": REGION,
        "pools": POOLS,
        "vcpus": VCPUS,
        "zones": ("us-east-1a", "us-east-1b"),
        "zones_key": "pilot.availability_zones",
        "private_subnet_cidrs": ("10.20.0.0/19", "10.20.32.0/19"),
        "nat_per_az": False,
        "nat_key": "pilot.nat_per_az",
        "legacy_bucket": LEGACY,
    }
    if vpc is not None:
        given |= {"vpc_id": vpc["vpc_id"], "private_subnet_ids": tuple(vpc["private"])}
    return AuditInputs(**(given | changes))


def _by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def test_the_audit_of_an_applied_network_only_reads(account: Account, vpc: dict[str, Any]) -> None:
    findings = findings_of(_inputs(vpc), account)
    assert account.operations, "the audit asked the account nothing"
    writes = sorted({op for op in account.operations if not op.startswith(READ)})
    assert writes == [], f"the audit made calls that are not reads: {writes}"
    assert {"DescribeInstanceTypeOfferings", "GetServiceQuota", "DescribeSubnets"} <= set(
        account.operations
    )
    assert {"DescribeVpcEndpoints", "DescribeNatGateways", "ListObjectsV2"} <= set(
        account.operations
    )
    found = _by_check(findings)
    assert found["S3 gateway endpoint"].severity == "ok"
    assert found["NAT gateways"].severity == "info"  # one shared, as nat_per_az: false asks
    assert found["free addresses"].severity == "ok"
    free = 2 * (8192 - 5)
    assert f"{free} free addresses in the 2 private subnets" in found["free addresses"].found
    assert f"4 node(s) at max size x {ADDRESSES_PER_NODE}" in found["free addresses"].found
    assert [found[c].severity for c in ("legacy encryption", "legacy versioning")] == ["ok"] * 2
    assert found["legacy public access"].severity == "ok"
    assert found["legacy objects"].found == f"{LEGACY}: 3 objects, 30 bytes (current versions)"


def test_a_type_offered_in_no_chosen_zone_is_critical_and_lowers_the_score(
    account: Account, vpc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = findings_of(_inputs(vpc), account)
    assert _by_check(before)["offerings g6.xlarge"].severity == "ok"
    # The emulator's own offerings, the inference type taken out of every zone.
    zones = moto_offerings.INSTANCE_TYPE_OFFERINGS["availability-zone"]
    monkeypatch.setitem(
        zones, REGION, [o for o in zones[REGION] if o["InstanceType"] != "g6.xlarge"]
    )
    after = findings_of(_inputs(vpc), account)
    red = _by_check(after)["offerings g6.xlarge"]
    assert red.severity == "critical"
    assert "offered in 0 of the 2 chosen zones" in red.found
    assert "compute.inference_pool" in red.found and red.action
    assert "offers g6.xlarge in no zone" in red.action
    assert _by_check(after)["offerings g5.xlarge"].severity == "ok"
    was, now = report("sandbox", _inputs(vpc), before), report("sandbox", _inputs(vpc), after)
    assert (was.critical, now.critical) == (0, 1)
    # capacity: 35 x 2/3 of its three types: 11.67 points fewer.
    assert (was.score, now.score) == (88, 76)


def test_a_type_offered_in_some_chosen_zones_names_where_else_to_go(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    zones = moto_offerings.INSTANCE_TYPE_OFFERINGS["availability-zone"]
    kept = [
        o
        for o in zones[REGION]
        if o["InstanceType"] != "p4d.24xlarge" or o["Location"] in ("us-east-1b", "us-east-1c")
    ]
    monkeypatch.setitem(zones, REGION, kept)
    found = _by_check(findings_of(_inputs(), account))["offerings p4d.24xlarge"]
    assert found.severity == "warning" and "us-east-1b only" in str(found.action)
    found = _by_check(findings_of(_inputs(zones=("us-east-1a", "us-east-1d")), account))
    assert found["offerings p4d.24xlarge"].severity == "critical"
    assert "us-east-1b, us-east-1c" in str(found["offerings p4d.24xlarge"].action)


def test_quotas_the_emulator_does_not_answer_are_unknown_never_guessed(account: Account) -> None:
    found = _by_check(findings_of(_inputs(), account))
    spot_g, on_demand_p = found["quota L-3819A6DF"], found["quota L-417A185B"]
    assert (spot_g.severity, on_demand_p.severity) == ("unknown", "unknown")
    assert "quota unknown, Service Quotas did not answer" in spot_g.found
    # pilot 1 x 4 + inference 2 x 4 (its largest type) vCPUs at max size.
    assert "the pools need 12 vCPUs at max size" in spot_g.found
    assert "the pools need 96 vCPUs at max size" in on_demand_p.found
    assert "it must be at least 12" in str(spot_g.action)


@pytest.mark.parametrize(
    ("quota", "severity"),
    [(12, "ok"), (100, "ok"), (8, "warning"), (7, "critical")],
)
def test_a_quota_is_judged_at_max_size_and_at_desired_size(
    account: Account, quota: float, severity: str
) -> None:
    # Spot G/VT: 12 vCPUs at max size, 8 at desired size (pilot 1 x 4, inference 1 x 4).
    account.answers["service-quotas"] = Quotas({"L-3819A6DF": quota, "L-417A185B": 96})
    found = _by_check(findings_of(_inputs(), account))
    assert found["quota L-3819A6DF"].severity == severity
    assert f"quota {quota:g} vCPUs" in found["quota L-3819A6DF"].found
    assert found["quota L-417A185B"].severity == "ok"
    assert "L-DB2E81BA" not in found and "L-7212CCBC" not in str(found)  # no such pools


def test_nat_per_zone_wanted_and_missing_is_a_warning(
    account: Account, vpc: dict[str, Any]
) -> None:
    found = _by_check(network(_inputs(vpc, nat_per_az=True), account))
    nat = found["NAT gateways"]
    assert nat.severity == "warning"
    assert "pilot.nat_per_az: true wants one in each zone, us-east-1b have none" in nat.found


def test_before_the_pilot_the_planned_cidrs_are_counted(account: Account) -> None:
    found = _by_check(network(_inputs(), account))
    assert found["free addresses"].severity == "ok"
    assert "planned private subnets (10.20.0.0/19, 10.20.32.0/19) give 16374" in (
        found["free addresses"].found
    )
    small = _by_check(network(_inputs(private_subnet_cidrs=("10.20.0.0/28",)), account))
    assert small["free addresses"].severity == "critical"
    assert account.operations == []  # nothing to ask before there is a VPC


def test_the_legacy_bucket_as_the_sandbox_makes_it_and_when_it_is_missing(
    account: Account,
) -> None:
    s3 = account("s3")
    s3.create_bucket(Bucket=LEGACY)
    found = _by_check(data(_inputs(), account))
    assert found["legacy encryption"].severity == "warning"
    assert found["legacy versioning"].severity == "warning"
    assert found["legacy public access"].severity == "warning"
    assert found["legacy objects"].found == f"{LEGACY}: 0 objects, 0 bytes (current versions)"
    for n in range(5):
        s3.put_object(Bucket=LEGACY, Key=f"k{n}", Body=b"x")
    limited = _by_check(data(_inputs(), account, list_limit=2))["legacy objects"]
    assert "at least" in limited.found and "counting stopped at 2" in limited.found
    [missing] = data(_inputs(legacy_bucket="no-such-legacy"), account)
    assert (missing.severity, missing.check) == ("critical", "legacy bucket")


def _finding(area: str, severity: str) -> Finding:
    return Finding.model_validate({"area": area, "check": "x", "severity": severity, "found": "x"})


def test_the_score_is_the_weights_times_the_mean_credit() -> None:
    assert sum(WEIGHTS.values()) == 100
    assert score([])[0] == 100
    findings = [
        _finding("capacity", "ok"),
        _finding("capacity", "critical"),  # capacity: 35 x 1/2 = 17.5
        _finding("quotas", "unknown"),  # quotas: 25 x 0.5 = 12.5
        _finding("network", "info"),  # network: 20
        _finding("data", "warning"),
        _finding("data", "ok"),  # data: 20 x 0.75 = 15
    ]
    total, areas = score(findings)
    assert [(a.area, a.earned, a.worst) for a in areas] == [
        ("capacity", 17.5, "critical"),
        ("quotas", 12.5, "unknown"),
        ("network", 20.0, "info"),
        ("data", 15.0, "warning"),
    ]
    assert total == 65
    assert CREDIT["critical"] == 0.0 and CREDIT["ok"] == CREDIT["info"] == 1.0


def test_pools_of_types_without_vcpus_say_their_need_is_unknown(account: Account) -> None:
    found = _by_check(findings_of(_inputs(vcpus={"g5.xlarge": 4}), account))
    assert found["vCPUs compute.inference_pool"].severity == "unknown"
    assert "g6.xlarge" in found["vCPUs compute.inference_pool"].found


class Refusing:
    """An S3 client whose account refuses one operation, as IAM does without the right."""

    def __init__(self, client: Any, refused: str) -> None:
        self.client, self.refused = client, refused

    def __getattr__(self, name: str) -> Any:
        if name == self.refused:

            def refuse(**_: Any) -> Any:
                error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
                raise ClientError(error, name)

            return refuse
        return getattr(self.client, name)


def test_a_call_the_account_refuses_is_unknown_and_says_why(
    account: Account, vpc: dict[str, Any]
) -> None:
    account.answers["s3"] = Refusing(account("s3"), "get_bucket_encryption")
    found = _by_check(data(_inputs(vpc), account))
    refused = found["legacy encryption"]
    assert refused.severity == "unknown"
    assert "could not be read (AccessDenied: Access Denied)" in refused.found
    assert "s3:GetEncryptionConfiguration" in str(refused.action)
    assert found["legacy versioning"].severity == "ok"  # the rest is still read
