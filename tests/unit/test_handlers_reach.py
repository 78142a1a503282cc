"""Inputs a handler declares it emulates really reach the emulated cloud.

Each test sets one such input to a value other than its default, then reads the resource
back through boto3 and finds the value there (and, where the input changes in place, finds
the new value after an update). Inputs that are a behaviour rather than a stored value
(revoking a group's rules before it goes, a flag passed on to a call) are shown by what
the emulated cloud sees when the handler acts. A value the sandbox cannot emulate is
refused at apply with its reason, and that is shown as a refusal, not as emulation.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from _handlers import create, handler_of
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.handlers import CloudContext, HandlerError, handler_for

REGION = "us-east-1"
ACCOUNT = "123456789012"

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ROUTE = "aws:ec2/route:Route"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
KEY = "aws:kms/key:Key"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
NAT = "aws:ec2/natGateway:NatGateway"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/eks"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}"


# --- the emulated cloud -----------------------------------------------------------------


@pytest.fixture
def vpc(ec2: Any) -> str:
    found = ec2.create_vpc(CidrBlock="10.50.0.0/16", AmazonProvidedIpv6CidrBlock=True)
    vpc_id: str = found["Vpc"]["VpcId"]
    return vpc_id


@pytest.fixture
def subnet(ec2: Any, vpc: str) -> str:
    found = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.1.0/24", AvailabilityZone="us-east-1a")
    subnet_id: str = found["Subnet"]["SubnetId"]
    return subnet_id


@pytest.fixture
def subnet_b(ec2: Any, vpc: str) -> str:
    found = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.2.0/24", AvailabilityZone="us-east-1b")
    subnet_id: str = found["Subnet"]["SubnetId"]
    return subnet_id


def _group(ec2: Any, vpc: str) -> str:
    name = f"reach-{secrets.token_hex(3)}"
    group_id: str = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)[
        "GroupId"
    ]
    return group_id


def _update(
    ctx: CloudContext, token: str, id_: str, old: dict, new: dict, outputs: dict
) -> dict[str, Any]:
    handler = handler_of(token)
    assert handler.unemulated(new) == []
    handler.validate(new)
    return handler.update(ctx, id_, old, new, outputs)


# --- CloudWatch ---------------------------------------------------------------------------


def _alarm_inputs(**extra: Any) -> dict[str, Any]:
    return {
        "comparisonOperator": "GreaterThanThreshold",
        "evaluationPeriods": 3,
        "metricName": "Latency",
        "namespace": "AWS/ApplicationELB",
        "period": 60,
        "threshold": 0.5,
        **extra,
    }


def test_alarm_settings_reach_cloudwatch_and_change_in_place(ctx: CloudContext) -> None:
    cloudwatch = ctx.client("cloudwatch")
    inputs = _alarm_inputs(
        actionsEnabled=False,
        alarmDescription="p99 latency over half a second",
        extendedStatistic="p99",
        evaluateLowSampleCountPercentiles="ignore",
        alarmActions=[f"{TOPIC}:page"],
        okActions=[f"{TOPIC}:recovered"],
        insufficientDataActions=[f"{TOPIC}:no-data"],
        unit="Seconds",
    )
    name, outputs = create(ctx, ALARM, inputs, "latency")
    alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert alarm["ActionsEnabled"] is False
    assert alarm["AlarmDescription"] == "p99 latency over half a second"
    assert alarm["ExtendedStatistic"] == "p99"
    assert "Statistic" not in alarm
    assert alarm["EvaluateLowSampleCountPercentile"] == "ignore"
    assert alarm["OKActions"] == [f"{TOPIC}:recovered"]
    assert alarm["InsufficientDataActions"] == [f"{TOPIC}:no-data"]
    assert alarm["Unit"] == "Seconds"

    new = {
        **inputs,
        "actionsEnabled": True,
        "alarmDescription": "p95 latency over half a second",
        "extendedStatistic": "p95",
        "evaluateLowSampleCountPercentiles": "evaluate",
        "okActions": [f"{TOPIC}:calm"],
        "insufficientDataActions": [],
        "unit": "Milliseconds",
    }
    _update(ctx, ALARM, name, inputs, new, outputs)
    alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert alarm["ActionsEnabled"] is True
    assert alarm["AlarmDescription"] == "p95 latency over half a second"
    assert alarm["ExtendedStatistic"] == "p95"
    assert alarm["EvaluateLowSampleCountPercentile"] == "evaluate"
    assert alarm["OKActions"] == [f"{TOPIC}:calm"]
    assert alarm["InsufficientDataActions"] == []
    assert alarm["Unit"] == "Milliseconds"


# --- EC2: launch templates ----------------------------------------------------------------

_SPOT = {"marketType": "spot", "spotOptions": {"maxPrice": "0.5", "spotInstanceType": "one-time"}}
_LICENSE = f"arn:aws:license-manager:{REGION}:{ACCOUNT}:license-configuration:lic-0123456789abcdef"

TEMPLATE_DATA = [
    pytest.param(
        "capacityReservationSpecification",
        {"capacityReservationPreference": "none"},
        "CapacityReservationSpecification",
        {"CapacityReservationPreference": "none"},
        id="capacityReservationSpecification",
    ),
    pytest.param(
        "cpuOptions",
        {"coreCount": 2, "threadsPerCore": 1, "amdSevSnp": "enabled"},
        "CpuOptions",
        {"CoreCount": 2, "ThreadsPerCore": 1, "AmdSevSnp": "enabled"},
        id="cpuOptions",
    ),
    pytest.param(
        "creditSpecification",
        {"cpuCredits": "unlimited"},
        "CreditSpecification",
        {"CpuCredits": "unlimited"},
        id="creditSpecification",
    ),
    pytest.param("disableApiStop", True, "DisableApiStop", True, id="disableApiStop"),
    pytest.param(
        "enclaveOptions", {"enabled": True}, "EnclaveOptions", {"Enabled": True}, id="enclave"
    ),
    pytest.param(
        "hibernationOptions",
        {"configured": True},
        "HibernationOptions",
        {"Configured": True},
        id="hibernationOptions",
    ),
    pytest.param(
        "instanceMarketOptions",
        _SPOT,
        "InstanceMarketOptions",
        {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.5", "SpotInstanceType": "one-time"}},
        id="instanceMarketOptions",
    ),
    pytest.param(
        "instanceRequirements",
        {"vcpuCount": {"min": 2, "max": 8}, "memoryMib": {"min": 4096}},
        "InstanceRequirements",
        {"VCpuCount": {"Min": 2, "Max": 8}, "MemoryMiB": {"Min": 4096}},
        id="instanceRequirements",
    ),
    pytest.param("kernelId", "aki-12345678", "KernelId", "aki-12345678", id="kernelId"),
    pytest.param(
        "licenseSpecifications",
        [{"licenseConfigurationArn": _LICENSE}],
        "LicenseSpecifications",
        [{"LicenseConfigurationArn": _LICENSE}],
        id="licenseSpecifications",
    ),
    pytest.param(
        "maintenanceOptions",
        {"autoRecovery": "disabled"},
        "MaintenanceOptions",
        {"AutoRecovery": "disabled"},
        id="maintenanceOptions",
    ),
    pytest.param("monitoring", {"enabled": True}, "Monitoring", {"Enabled": True}, id="monitoring"),
    pytest.param(
        "networkPerformanceOptions",
        {"bandwidthWeighting": "vpc-1"},
        "NetworkPerformanceOptions",
        {"BandwidthWeighting": "vpc-1"},
        id="networkPerformanceOptions",
    ),
    pytest.param(
        "privateDnsNameOptions",
        {
            "hostnameType": "resource-name",
            "enableResourceNameDnsARecord": True,
            "enableResourceNameDnsAaaaRecord": True,
        },
        "PrivateDnsNameOptions",
        {
            "HostnameType": "resource-name",
            "EnableResourceNameDnsARecord": True,
            "EnableResourceNameDnsAAAARecord": True,
        },
        id="privateDnsNameOptions",
    ),
    pytest.param("ramDiskId", "ari-12345678", "RamDiskId", "ari-12345678", id="ramDiskId"),
    pytest.param(
        "secondaryInterfaces",
        [
            {
                "deviceIndex": 1,
                "networkCardIndex": 0,
                "interfaceType": "secondary",
                "deleteOnTermination": True,
                "privateIpAddresses": ["10.50.1.20", "10.50.1.21"],
            }
        ],
        "SecondaryInterfaces",
        [
            {
                "DeviceIndex": 1,
                "NetworkCardIndex": 0,
                "InterfaceType": "secondary",
                "DeleteOnTermination": True,
                "PrivateIpAddresses": [
                    {"PrivateIpAddress": "10.50.1.20"},
                    {"PrivateIpAddress": "10.50.1.21"},
                ],
            }
        ],
        id="secondaryInterfaces",
    ),
    pytest.param(
        "securityGroupNames", ["web", "ssh"], "SecurityGroups", ["web", "ssh"], id="sg-names"
    ),
]


def _template_data(ec2: Any, template_id: str, version: str = "$Latest") -> dict[str, Any]:
    found = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=[version])[
        "LaunchTemplateVersions"
    ][0]
    data: dict[str, Any] = found["LaunchTemplateData"]
    return data


@pytest.mark.parametrize(("key", "value", "api_key", "api_value"), TEMPLATE_DATA)
def test_launch_template_data_reaches_the_template_version(
    ctx: CloudContext, ec2: Any, key: str, value: Any, api_key: str, api_value: Any
) -> None:
    inputs = {"instanceType": "m5.large", key: value}
    template_id, _ = create(ctx, LAUNCH_TEMPLATE, inputs, f"lt-{key}")
    assert _template_data(ec2, template_id)[api_key] == api_value


def test_launch_template_data_changes_in_a_new_version(ctx: CloudContext, ec2: Any) -> None:
    inputs = {"cpuOptions": {"coreCount": 2, "threadsPerCore": 1}, "disableApiStop": True}
    template_id, outputs = create(ctx, LAUNCH_TEMPLATE, inputs, "lt-versions")
    new = {"cpuOptions": {"coreCount": 4, "threadsPerCore": 2}, "disableApiStop": False}
    outputs = _update(ctx, LAUNCH_TEMPLATE, template_id, inputs, new, outputs)
    assert outputs["latestVersion"] == 2
    latest = _template_data(ec2, template_id)
    assert latest["CpuOptions"] == {"CoreCount": 4, "ThreadsPerCore": 2}
    assert latest["DisableApiStop"] is False
    assert _template_data(ec2, template_id, "1")["CpuOptions"] == {
        "CoreCount": 2,
        "ThreadsPerCore": 1,
    }


def test_launch_template_name_starts_with_its_prefix(ctx: CloudContext, ec2: Any) -> None:
    template_id, outputs = create(ctx, LAUNCH_TEMPLATE, {"namePrefix": "gpu-nodes-"}, "lt")
    template = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
    assert template["LaunchTemplateName"].startswith("gpu-nodes-")
    assert len(template["LaunchTemplateName"]) == len("gpu-nodes-") + 26
    assert outputs["name"] == template["LaunchTemplateName"]


# --- EC2: routes --------------------------------------------------------------------------


def _carrier_gateway(ec2: Any, vpc: str) -> str:
    gateway_id: str = ec2.create_carrier_gateway(VpcId=vpc)["CarrierGateway"]["CarrierGatewayId"]
    return gateway_id


def _egress_only_gateway(ec2: Any, vpc: str) -> str:
    found = ec2.create_egress_only_internet_gateway(VpcId=vpc)
    gateway_id: str = found["EgressOnlyInternetGateway"]["EgressOnlyInternetGatewayId"]
    return gateway_id


def _transit_gateway(ec2: Any, vpc: str) -> str:
    gateway_id: str = ec2.create_transit_gateway()["TransitGateway"]["TransitGatewayId"]
    return gateway_id


def _peering(ec2: Any, vpc: str) -> str:
    peer = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    found = ec2.create_vpc_peering_connection(VpcId=vpc, PeerVpcId=peer)
    peering_id: str = found["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    return peering_id


def _load_balancer_endpoint(ec2: Any, vpc: str) -> str:
    # Routes take only Gateway Load Balancer endpoints, as in AWS.
    found = ec2.create_vpc_endpoint(
        VpcId=vpc,
        VpcEndpointType="GatewayLoadBalancer",
        ServiceName=f"com.amazonaws.vpce.{REGION}.vpce-svc-0123456789abcdef0",
    )
    endpoint_id: str = found["VpcEndpoint"]["VpcEndpointId"]
    return endpoint_id


def _internet_gateway(ec2: Any, vpc: str) -> str:
    gateway_id: str = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc)
    return gateway_id


ROUTE_TARGETS = [
    pytest.param("carrierGatewayId", "CarrierGatewayId", _carrier_gateway, id="carrier"),
    pytest.param(
        "egressOnlyGatewayId", "EgressOnlyInternetGatewayId", _egress_only_gateway, id="egress-only"
    ),
    pytest.param("transitGatewayId", "TransitGatewayId", _transit_gateway, id="transit"),
    pytest.param("vpcPeeringConnectionId", "VpcPeeringConnectionId", _peering, id="peering"),
    pytest.param("vpcEndpointId", "GatewayId", _load_balancer_endpoint, id="endpoint"),
]
"""Route targets: the input, the key of the route EC2 describes, how to make the target.
EC2 describes a route to a Gateway Load Balancer endpoint by its GatewayId."""


def _table(ec2: Any, vpc: str) -> str:
    table_id: str = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    return table_id


def _route(ec2: Any, table_id: str, key: str, value: str) -> dict[str, Any]:
    table = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
    route: dict[str, Any] = next(r for r in table["Routes"] if r.get(key) == value)
    return route


@pytest.mark.parametrize(("key", "api_key", "make"), ROUTE_TARGETS)
def test_route_target_reaches_the_route_table(
    ctx: CloudContext, ec2: Any, vpc: str, key: str, api_key: str, make: Any
) -> None:
    table_id, target = _table(ec2, vpc), make(ec2, vpc)
    inputs = {"routeTableId": table_id, "destinationCidrBlock": "172.16.0.0/12", key: target}
    create(ctx, ROUTE, inputs)
    assert _route(ec2, table_id, "DestinationCidrBlock", "172.16.0.0/12")[api_key] == target


def test_route_target_moves_in_place(ctx: CloudContext, ec2: Any, vpc: str) -> None:
    table_id = _table(ec2, vpc)
    transit, peering = _transit_gateway(ec2, vpc), _peering(ec2, vpc)
    inputs = {
        "routeTableId": table_id,
        "destinationCidrBlock": "172.16.0.0/12",
        "transitGatewayId": transit,
    }
    id_, outputs = create(ctx, ROUTE, inputs)
    new = {**inputs, "transitGatewayId": None, "vpcPeeringConnectionId": peering}
    _update(ctx, ROUTE, id_, inputs, new, outputs)
    route = _route(ec2, table_id, "DestinationCidrBlock", "172.16.0.0/12")
    assert route["VpcPeeringConnectionId"] == peering
    assert "TransitGatewayId" not in route


def test_route_to_an_ipv6_destination(ctx: CloudContext, ec2: Any, vpc: str) -> None:
    table_id, gateway = _table(ec2, vpc), _egress_only_gateway(ec2, vpc)
    inputs = {
        "routeTableId": table_id,
        "destinationIpv6CidrBlock": "::/0",
        "egressOnlyGatewayId": gateway,
    }
    id_, outputs = create(ctx, ROUTE, inputs)
    route = _route(ec2, table_id, "DestinationIpv6CidrBlock", "::/0")
    assert route["EgressOnlyInternetGatewayId"] == gateway
    assert handler_of(ROUTE).exists(ctx, id_, outputs)
    handler_of(ROUTE).delete(ctx, id_, outputs)
    assert not handler_of(ROUTE).exists(ctx, id_, outputs)


def test_route_to_a_prefix_list(ctx: CloudContext, ec2: Any, vpc: str) -> None:
    table_id, gateway = _table(ec2, vpc), _internet_gateway(ec2, vpc)
    prefix_list = ec2.create_managed_prefix_list(
        PrefixListName="partners",
        MaxEntries=5,
        AddressFamily="IPv4",
        Entries=[{"Cidr": "198.51.100.0/24"}],
    )["PrefixList"]["PrefixListId"]
    inputs = {
        "routeTableId": table_id,
        "destinationPrefixListId": prefix_list,
        "gatewayId": gateway,
    }
    id_, outputs = create(ctx, ROUTE, inputs)
    assert _route(ec2, table_id, "DestinationPrefixListId", prefix_list)["GatewayId"] == gateway
    assert handler_of(ROUTE).exists(ctx, id_, outputs)


# --- EC2: security groups and endpoints ---------------------------------------------------


def test_security_group_name_starts_with_its_prefix(ctx: CloudContext, ec2: Any, vpc: str) -> None:
    group_id, outputs = create(ctx, SECURITY_GROUP, {"vpcId": vpc, "namePrefix": "web-"})
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    assert group["GroupName"].startswith("web-")
    assert len(group["GroupName"]) == len("web-") + 26
    assert outputs["name"] == group["GroupName"]


@pytest.mark.parametrize("revoke", [True, False])
def test_security_group_rules_are_revoked_before_its_delete_when_asked(
    emu: Emulator, ctx: CloudContext, ec2: Any, vpc: str, revoke: bool
) -> None:
    peer = _group(ec2, vpc)
    rule = {"protocol": "tcp", "fromPort": 443, "toPort": 443, "securityGroups": [peer]}
    inputs = {"vpcId": vpc, "ingress": [rule], "egress": [rule], "revokeRulesOnDelete": revoke}
    group_id, outputs = create(ctx, SECURITY_GROUP, inputs)

    # What the emulated cloud holds of the group at the moment the delete reaches it.
    onlooker = emu.session().client("ec2", region_name=REGION)
    at_delete: list[dict[str, Any]] = []

    def look(**_: Any) -> None:
        at_delete.append(
            onlooker.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        )

    ec2.meta.events.register("before-call.ec2.DeleteSecurityGroup", look)
    handler_of(SECURITY_GROUP).delete(ctx, id_=group_id, outputs=outputs)
    ec2.meta.events.unregister("before-call.ec2.DeleteSecurityGroup", look)

    (group,) = at_delete
    rules = (group["IpPermissions"], group["IpPermissionsEgress"])
    if revoke:
        assert rules == ([], [])
    else:
        assert all(r[0]["UserIdGroupPairs"][0]["GroupId"] == peer for r in rules)
    assert not handler_of(SECURITY_GROUP).exists(ctx, group_id, outputs)


def test_interface_endpoint_security_groups_reach_it_and_change_in_place(
    ctx: CloudContext, ec2: Any, vpc: str, subnet: str
) -> None:
    first, second = _group(ec2, vpc), _group(ec2, vpc)
    inputs = {
        "vpcId": vpc,
        "serviceName": f"com.amazonaws.{REGION}.ecr.api",
        "vpcEndpointType": "Interface",
        "subnetIds": [subnet],
        "securityGroupIds": [first],
    }
    endpoint_id, outputs = create(ctx, ENDPOINT, inputs)

    def groups() -> list[str]:
        found = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]
        return sorted(g["GroupId"] for g in found["Groups"])

    assert groups() == [first]
    new = {**inputs, "securityGroupIds": [second]}
    _update(ctx, ENDPOINT, endpoint_id, inputs, new, outputs)
    assert groups() == [second]


# --- EKS ----------------------------------------------------------------------------------


def _logging(eks: Any, cluster: str) -> list[str]:
    """The control plane log types the cluster sends."""
    found = eks.describe_cluster(name=cluster)["cluster"]["logging"]["clusterLogging"]
    return sorted(t for entry in found if entry["enabled"] for t in entry["types"])


def test_cluster_log_types_reach_eks_and_change_in_place(
    ctx: CloudContext, subnet: str, subnet_b: str
) -> None:
    eks = ctx.client("eks")
    inputs = {
        "name": f"logs-{secrets.token_hex(3)}",
        "roleArn": ROLE,
        "vpcConfig": {"subnetIds": [subnet, subnet_b]},
        "enabledClusterLogTypes": ["api", "audit"],
    }
    name, outputs = create(ctx, CLUSTER, inputs)
    assert _logging(eks, name) == ["api", "audit"]
    new = {**inputs, "enabledClusterLogTypes": ["authenticator"]}
    _update(ctx, CLUSTER, name, inputs, new, outputs)
    assert _logging(eks, name) == ["authenticator"]


def test_node_group_ami_type_and_disk_size_reach_eks(
    ctx: CloudContext, subnet: str, subnet_b: str
) -> None:
    eks = ctx.client("eks")
    cluster = f"nodes-{secrets.token_hex(3)}"
    eks.create_cluster(name=cluster, roleArn=ROLE, resourcesVpcConfig={"subnetIds": [subnet]})
    inputs = {
        "clusterName": cluster,
        "nodeGroupName": "gpu",
        "nodeRoleArn": ROLE,
        "subnetIds": [subnet, subnet_b],
        "instanceTypes": ["g5.xlarge"],
        "scalingConfig": {"minSize": 0, "desiredSize": 1, "maxSize": 2},
        "amiType": "AL2023_x86_64_NVIDIA",
        "diskSize": 200,
    }
    create(ctx, NODE_GROUP, inputs)
    group = eks.describe_nodegroup(clusterName=cluster, nodegroupName="gpu")["nodegroup"]
    assert (group["amiType"], group["diskSize"]) == ("AL2023_x86_64_NVIDIA", 200)


# --- KMS ----------------------------------------------------------------------------------


def test_multi_region_key_is_a_primary_multi_region_key(ctx: CloudContext) -> None:
    kms = ctx.client("kms")
    key_id, _ = create(ctx, KEY, {"multiRegion": True})
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["MultiRegion"] is True
    assert meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    assert key_id.startswith("mrk-")


def _key_policy(statement_id: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": statement_id,
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


def test_policy_lockout_bypass_is_passed_on_with_the_policy(ctx: CloudContext) -> None:
    """KMS reads the flag on CreateKey and PutKeyPolicy; both carry it as declared."""
    kms = ctx.client("kms")
    sent: list[tuple[str, Any]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, params.get("BypassPolicyLockoutSafetyCheck")))

    kms.meta.events.register("provide-client-params.kms", record)
    inputs = {"policy": _key_policy("first"), "bypassPolicyLockoutSafetyCheck": True}
    key_id, outputs = create(ctx, KEY, inputs)
    new = {**inputs, "policy": _key_policy("second")}
    _update(ctx, KEY, key_id, inputs, new, outputs)
    kms.meta.events.unregister("provide-client-params.kms", record)

    assert [s for s in sent if s[0] in ("CreateKey", "PutKeyPolicy")] == [
        ("CreateKey", True),
        ("PutKeyPolicy", True),
    ]
    policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    assert '"second"' in policy


# --- ELBv2 --------------------------------------------------------------------------------


def test_load_balancer_security_groups_reach_it_and_change_in_place(
    ctx: CloudContext, ec2: Any, vpc: str, subnet: str, subnet_b: str
) -> None:
    elb = ctx.client("elbv2")
    first, second = _group(ec2, vpc), _group(ec2, vpc)
    inputs = {
        "name": f"front-{secrets.token_hex(3)}",
        "subnets": [subnet, subnet_b],
        "securityGroups": [first],
    }
    arn, outputs = create(ctx, LOAD_BALANCER, inputs)

    def groups() -> list[str]:
        found = elb.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
        return list(found["SecurityGroups"])

    assert groups() == [first]
    new = {**inputs, "securityGroups": [second]}
    _update(ctx, LOAD_BALANCER, arn, inputs, new, outputs)
    assert groups() == [second]


# --- refused at apply, with the reason: not emulated, and not passed off as emulated ------


def test_regional_nat_gateway_is_refused_at_apply(ctx: CloudContext, ec2: Any, vpc: str) -> None:
    """availabilityMode's only other value, regional, is refused: the emulator makes zonal
    gateways only. Nothing is left behind."""
    before = ec2.describe_nat_gateways()["NatGateways"]
    with pytest.raises(HandlerError, match="regional NAT gateways are not emulated"):
        create(ctx, NAT, {"availabilityMode": "regional", "connectivityType": "private"})
    assert ec2.describe_nat_gateways()["NatGateways"] == before


@pytest.mark.parametrize(
    ("token", "inputs"),
    [
        (
            "aws:s3/bucketVersioning:BucketVersioning",
            {"versioningConfiguration": {"status": "Enabled"}},
        ),
        (
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
        ),
        (
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            {"rules": [{"id": "tmp", "status": "Enabled", "expiration": {"days": 3}}]},
        ),
    ],
)
def test_a_bucket_setting_for_another_owner_is_refused_as_s3_refuses_it(
    ctx: CloudContext, token: str, inputs: dict[str, Any]
) -> None:
    """expectedBucketOwner: the emulator takes any; S3 answers 403 unless it is the
    bucket's. The right owner sets the configuration."""
    bucket = f"owned-{secrets.token_hex(4)}"
    ctx.client("s3").create_bucket(Bucket=bucket)
    handler = handler_for(token)
    assert handler is not None

    other, own = (
        {"bucket": bucket, "expectedBucketOwner": owner, **inputs}
        for owner in ("999999999999", ACCOUNT)
    )

    with pytest.raises(HandlerError, match=r"access denied: bucket .* belongs to account"):
        handler.create(ctx, "cfg", other)
    assert not handler.exists(ctx, bucket, own)
    id_, _ = handler.create(ctx, "cfg", own)

    assert id_ == f"{bucket},{ACCOUNT}"
    assert handler.exists(ctx, id_, own)


def test_vpc_dns_support_reaches_the_vpc_and_changes_in_place(ctx: CloudContext, ec2: Any) -> None:
    token = "aws:ec2/vpc:Vpc"
    inputs = {"cidrBlock": "10.77.0.0/16", "enableDnsSupport": False}
    vpc_id, outputs = create(ctx, token, inputs)

    def support() -> bool:
        found = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")
        return bool(found["EnableDnsSupport"]["Value"])

    assert support() is False
    handler_of(token).update(ctx, vpc_id, inputs, {**inputs, "enableDnsSupport": True}, outputs)
    assert support() is True


def test_kms_alias_name_starts_with_its_prefix(ctx: CloudContext) -> None:
    key = ctx.client("kms").create_key()["KeyMetadata"]["KeyId"]
    _, outputs = create(
        ctx, "aws:kms/alias:Alias", {"namePrefix": "alias/lake-", "targetKeyId": key}
    )
    names = {
        a["AliasName"]: a.get("TargetKeyId") for a in ctx.client("kms").list_aliases()["Aliases"]
    }
    assert outputs["name"].startswith("alias/lake-")
    assert len(outputs["name"]) == len("alias/lake-") + 26
    assert names[outputs["name"]] == key
