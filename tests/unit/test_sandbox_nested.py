"""Every nested key a handler declares reaches the emulated cloud, as boto3 shows it.

A handler that takes a nested object (a security group's rules, a cluster's vpcConfig, a
lifecycle rule) names in ``emulates`` each nested key it carries; any other one is
refused in the plan by its path. Here each declared nested key is set to a value that is
not its default, and read back through boto3 after the create and after an update; the
keys the emulator drops are shown refused by name. Networking and EKS are here; launch
templates in ``test_sandbox_nested_templates``; S3, alarms and records in
``test_sandbox_nested_settings``.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from test_sandbox_inputs import plan_one

from _handlers import create, handler_of
from phasegate.engines.base import Op
from phasegate.engines.sandbox.diff import _diff
from phasegate.engines.sandbox.handlers import (
    REGISTRY,
    CloudContext,
    HandlerError,
    RunContext,
)
from phasegate.engines.sandbox.runtime import Registration
from phasegate.engines.sandbox.store import ResourceState

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/eks"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def set_paths(value: Any, prefix: str = "") -> set[str]:
    """The dotted paths of the nested keys set in ``value`` (a list's items, no index)."""
    if isinstance(value, list):
        return {p for item in value for p in set_paths(item, prefix)}
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, inner in value.items():
        path = f"{prefix}{key}"
        found |= {path} | set_paths(inner, f"{path}.")
    return found


def declared_nested(token: str) -> set[str]:
    return {p for p in handler_of(token).emulates if "." in p}


def put_nested(
    ctx: CloudContext, token: str, inputs: dict[str, Any], name: str = "nested"
) -> tuple[str, dict[str, Any]]:
    """Create with ``inputs``, which set every nested key the handler declares: a
    declaration without its proof fails here."""
    assert set_paths(inputs) >= declared_nested(token)
    return create(ctx, token, inputs, name)


def update_nested(
    ctx: CloudContext, token: str, id_: str, old: dict, new: dict, outputs: dict
) -> None:
    found = handler_of(token)
    found.validate(new)
    found.update(ctx, id_, old, new, outputs)


def diff_op(token: str, old: dict[str, Any], new: dict[str, Any]) -> Op:
    """What the plan does to a resource whose inputs go from ``old`` to ``new``."""
    urn = f"urn:pulumi:s::p::{token}::thing"
    state = ResourceState(
        urn=urn, type=token, name="thing", custom=True, id="x", inputs=old, outputs=old
    )
    registration = Registration(urn=urn, type=token, name="thing", custom=True, inputs=new)
    return _diff(handler_of(token), state, registration, RunContext()).op


def refused(token: str, inputs: dict[str, Any]) -> str | None:
    said = plan_one(token, inputs)
    return said.removeprefix("inputs the sandbox does not emulate: ") if said else None


# --- the emulated cloud -----------------------------------------------------------------


@pytest.fixture
def vpc(ec2: Any) -> str:
    vpc_id: str = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    return vpc_id


@pytest.fixture
def subnets(ec2: Any, vpc: str) -> list[str]:
    return [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate((f"{REGION}a", f"{REGION}b"))
    ]


@pytest.fixture
def group(ec2: Any, vpc: str) -> str:
    group_id: str = ec2.create_security_group(
        GroupName=f"peer-{secrets.token_hex(3)}", Description="peer", VpcId=vpc
    )["GroupId"]
    return group_id


# --- security group rules ---------------------------------------------------------------


def _rule(port: int, note: str, prefix_list: str, peer: str) -> dict[str, Any]:
    return {
        "protocol": "tcp",
        "fromPort": port,
        "toPort": port + 1,
        "cidrBlocks": ["10.9.0.0/16"],
        "ipv6CidrBlocks": ["2001:db8::/32"],
        "prefixListIds": [prefix_list],
        "securityGroups": [peer],
        "self": True,
        "description": note,
    }


def _permissions(ec2: Any, group_id: str, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ec2.describe_security_groups(GroupIds=[group_id])[
        "SecurityGroups"
    ][0][key]
    return found


def _shown(permissions: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """Each (protocol, ports, source, description) the group holds."""
    shown = set()
    for p in permissions:
        ports = (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
        for kind, key in (
            ("IpRanges", "CidrIp"),
            ("Ipv6Ranges", "CidrIpv6"),
            ("PrefixListIds", "PrefixListId"),
            ("UserIdGroupPairs", "GroupId"),
        ):
            for source in p.get(kind, []):
                shown.add((*ports, source[key], source.get("Description")))
    return shown


def _expected(rule: dict[str, Any], group_id: str) -> set[tuple[Any, ...]]:
    ports = (rule["protocol"], rule["fromPort"], rule["toPort"])
    sources = [
        *rule["cidrBlocks"],
        *rule["ipv6CidrBlocks"],
        *rule["securityGroups"],
        *([group_id] if rule["self"] else []),
    ]
    # The emulator keeps no description on a prefix list source (AWS does).
    return {(*ports, source, rule["description"]) for source in sources} | {
        (*ports, source, None) for source in rule["prefixListIds"]
    }


def test_every_key_of_a_rule_reaches_the_group_and_an_update_changes_it(
    ctx: CloudContext, ec2: Any, vpc: str, group: str
) -> None:
    prefix_list = ec2.create_managed_prefix_list(
        PrefixListName=f"pl-{secrets.token_hex(3)}", MaxEntries=5, AddressFamily="IPv4"
    )["PrefixList"]["PrefixListId"]
    ingress, egress = _rule(443, "https", prefix_list, group), _rule(5432, "db", prefix_list, group)
    inputs = {"vpcId": vpc, "ingress": [ingress], "egress": [egress]}
    assert set_paths(inputs) >= declared_nested(SECURITY_GROUP)
    sg = handler_of(SECURITY_GROUP)
    sg.validate(inputs)
    group_id, outputs = sg.create(ctx, "web", inputs)
    assert _shown(_permissions(ec2, group_id, "IpPermissions")) == _expected(ingress, group_id)
    assert _shown(_permissions(ec2, group_id, "IpPermissionsEgress")) == _expected(egress, group_id)

    changed = {**ingress, "fromPort": 8443, "toPort": 8443, "description": "alt", "self": False}
    new = {**inputs, "ingress": [changed]}
    sg.update(ctx, group_id, inputs, new, outputs)
    assert _shown(_permissions(ec2, group_id, "IpPermissions")) == _expected(changed, group_id)


# --- route table routes -----------------------------------------------------------------


@pytest.fixture
def targets(ec2: Any, vpc: str, subnets: list[str]) -> dict[str, str]:
    """A real thing of each kind a route can lead to, by the route's target key."""
    other = ec2.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    return {
        "gatewayId": igw,
        "natGatewayId": ec2.create_nat_gateway(SubnetId=subnets[0], ConnectivityType="private")[
            "NatGateway"
        ]["NatGatewayId"],
        "vpcEndpointId": ec2.create_vpc_endpoint(  # the kind a route can lead to
            VpcId=vpc,
            ServiceName=f"com.amazonaws.vpce.{REGION}.vpce-svc-0123456789abcdef0",
            VpcEndpointType="GatewayLoadBalancer",
        )["VpcEndpoint"]["VpcEndpointId"],
        "networkInterfaceId": ec2.create_network_interface(SubnetId=subnets[0])["NetworkInterface"][
            "NetworkInterfaceId"
        ],
        "transitGatewayId": ec2.create_transit_gateway()["TransitGateway"]["TransitGatewayId"],
        "vpcPeeringConnectionId": ec2.create_vpc_peering_connection(VpcId=vpc, PeerVpcId=other)[
            "VpcPeeringConnection"
        ]["VpcPeeringConnectionId"],
        "egressOnlyGatewayId": ec2.create_egress_only_internet_gateway(VpcId=vpc)[
            "EgressOnlyInternetGateway"
        ]["EgressOnlyInternetGatewayId"],
        "carrierGatewayId": ec2.create_carrier_gateway(VpcId=vpc)["CarrierGateway"][
            "CarrierGatewayId"
        ],
    }


_API_TARGETS = {
    "gatewayId": "GatewayId",
    "natGatewayId": "NatGatewayId",
    "vpcEndpointId": "GatewayId",  # as the emulator shows an endpoint target
    "networkInterfaceId": "NetworkInterfaceId",
    "transitGatewayId": "TransitGatewayId",
    "vpcPeeringConnectionId": "VpcPeeringConnectionId",
    "egressOnlyGatewayId": "EgressOnlyInternetGatewayId",
    "carrierGatewayId": "CarrierGatewayId",
}


def _routes(ec2: Any, table_id: str) -> dict[str, dict[str, Any]]:
    table = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
    return {
        r.get("DestinationCidrBlock")
        or r.get("DestinationIpv6CidrBlock")
        or r["DestinationPrefixListId"]: r
        for r in table["Routes"]
        if r.get("Origin") != "CreateRouteTable"
    }


def test_every_destination_and_target_of_a_route_reaches_the_table(
    ctx: CloudContext, ec2: Any, vpc: str, targets: dict[str, str]
) -> None:
    prefix_list = ec2.create_managed_prefix_list(
        PrefixListName=f"pl-{secrets.token_hex(3)}", MaxEntries=5, AddressFamily="IPv4"
    )["PrefixList"]["PrefixListId"]
    routes = [
        {"cidrBlock": f"172.16.{i}.0/24", key: target}
        for i, (key, target) in enumerate(sorted(targets.items()))
    ]
    routes += [
        {"ipv6CidrBlock": "::/0", "egressOnlyGatewayId": targets["egressOnlyGatewayId"]},
        {"destinationPrefixListId": prefix_list, "gatewayId": targets["gatewayId"]},
    ]
    inputs = {"vpcId": vpc, "routes": routes}
    assert set_paths(inputs) >= declared_nested(ROUTE_TABLE)
    tables = handler_of(ROUTE_TABLE)
    tables.validate(inputs)
    table_id, outputs = tables.create(ctx, "rt", inputs)

    shown = _routes(ec2, table_id)
    for i, (key, target) in enumerate(sorted(targets.items())):
        assert shown[f"172.16.{i}.0/24"][_API_TARGETS[key]] == target, key
    assert shown["::/0"]["EgressOnlyInternetGatewayId"] == targets["egressOnlyGatewayId"]
    assert shown[prefix_list]["GatewayId"] == targets["gatewayId"]

    moved = [{"cidrBlock": "172.16.0.0/24", "transitGatewayId": targets["transitGatewayId"]}]
    tables.update(ctx, table_id, inputs, {**inputs, "routes": moved}, outputs)
    shown = _routes(ec2, table_id)
    assert list(shown) == ["172.16.0.0/24"]
    assert shown["172.16.0.0/24"]["TransitGatewayId"] == targets["transitGatewayId"]


@pytest.mark.parametrize("key", ["coreNetworkArn", "localGatewayId", "odbNetworkArn"])
def test_a_route_target_the_emulator_drops_is_refused_by_its_path(key: str) -> None:
    value = "lgw-1" if key == "localGatewayId" else "arn:aws:networkmanager::1:core-network/x"
    inputs = {"vpcId": "vpc-1", "routes": [{"cidrBlock": "10.0.0.0/8", key: value}]}
    assert refused(ROUTE_TABLE, inputs) == f"routes.{key}"
    alone = {"routeTableId": "rtb-1", "destinationCidrBlock": "10.0.0.0/8", key: value}
    assert refused("aws:ec2/route:Route", alone) == key  # the same target, as its own route


# --- EKS ----------------------------------------------------------------------------------


def _cluster_inputs(subnets: list[str], group: str) -> dict[str, Any]:
    return {
        "name": f"nested-{secrets.token_hex(3)}",
        "roleArn": ROLE,
        "vpcConfig": {
            "subnetIds": subnets,
            "securityGroupIds": [group],
            "endpointPrivateAccess": True,
            "endpointPublicAccess": False,
            "publicAccessCidrs": ["203.0.113.0/24"],
        },
        "accessConfig": {
            "authenticationMode": "API",
            "bootstrapClusterCreatorAdminPermissions": False,
        },
    }


def test_every_key_of_a_clusters_vpc_config_reaches_eks_and_an_update_changes_it(
    ctx: CloudContext, subnets: list[str], group: str
) -> None:
    """An update used to send the endpoint flags only, and the emulator, which takes the
    config whole, lost the cluster's subnets and security groups."""
    eks = ctx.client("eks")
    inputs = _cluster_inputs(subnets, group)
    assert set_paths(inputs) >= declared_nested(CLUSTER)
    clusters = handler_of(CLUSTER)
    clusters.validate(inputs)
    name, outputs = clusters.create(ctx, "c", inputs)
    shown = eks.describe_cluster(name=name)["cluster"]["resourcesVpcConfig"]
    assert {k: shown[k] for k in inputs["vpcConfig"]} == inputs["vpcConfig"]
    assert ctx.kept("eks-access-config")[name] == inputs["accessConfig"]

    vpc_config = {
        "subnetIds": subnets[::-1],
        "securityGroupIds": [group],
        "endpointPrivateAccess": False,
        "endpointPublicAccess": True,
        "publicAccessCidrs": ["198.51.100.0/24", "192.0.2.0/24"],
    }
    new = {**inputs, "vpcConfig": vpc_config}
    assert diff_op(CLUSTER, inputs, new) is Op.UPDATE
    clusters.update(ctx, name, inputs, new, outputs)
    shown = eks.describe_cluster(name=name)["cluster"]["resourcesVpcConfig"]
    assert {k: shown[k] for k in vpc_config} == vpc_config


def test_giving_the_cluster_creator_admin_rights_or_not_replaces_the_cluster(
    subnets: list[str],
) -> None:
    old = _cluster_inputs(subnets, "sg-1")
    admin = {**old["accessConfig"], "bootstrapClusterCreatorAdminPermissions": True}
    new = {**old, "accessConfig": admin}
    assert diff_op(CLUSTER, old, new) is Op.REPLACE


@pytest.mark.parametrize(
    ("cidr", "said"),
    [
        ("10.0.0.0/8", "10.0.0.0/8 is a private range; EKS takes public ones"),
        ("not-a-cidr", "'not-a-cidr' is not an IPv4 CIDR"),
    ],
)
def test_a_public_access_cidr_eks_refuses_is_refused(cidr: str, said: str) -> None:
    inputs = {"roleArn": ROLE, "vpcConfig": {"subnetIds": ["a", "b"], "publicAccessCidrs": [cidr]}}
    with pytest.raises(HandlerError, match=said):
        handler_of(CLUSTER).validate(inputs)


@pytest.mark.parametrize(
    ("vpc_config", "path"),
    [
        ({"controlPlaneEgressMode": "CUSTOMER_ROUTED"}, "vpcConfig.controlPlaneEgressMode"),
        ({"clusterSecurityGroupId": "sg-1"}, "vpcConfig.clusterSecurityGroupId"),
        ({"vpcId": "vpc-1"}, "vpcConfig.vpcId"),
    ],
)
def test_a_vpc_config_key_the_cluster_does_not_carry_is_refused_by_its_path(
    vpc_config: dict[str, Any], path: str
) -> None:
    inputs = {"roleArn": ROLE, "vpcConfig": {"subnetIds": ["a", "b"], **vpc_config}}
    assert refused(CLUSTER, inputs) == path


def test_every_key_of_a_node_groups_scaling_taints_and_template_reaches_eks(
    ctx: CloudContext, ec2: Any, subnets: list[str], group: str
) -> None:
    eks = ctx.client("eks")
    cluster, _ = handler_of(CLUSTER).create(ctx, "c", _cluster_inputs(subnets, group))
    template = ec2.create_launch_template(
        LaunchTemplateName=f"nodes-{secrets.token_hex(3)}", LaunchTemplateData={}
    )["LaunchTemplate"]
    by_name = {"name": template["LaunchTemplateName"], "version": "1"}
    inputs = {
        "clusterName": cluster,
        "nodeGroupName": "tainted",
        "nodeRoleArn": ROLE,
        "subnetIds": subnets,
        "scalingConfig": {"minSize": 1, "desiredSize": 2, "maxSize": 3},
        "taints": [{"key": "gpu", "value": "yes", "effect": "NO_SCHEDULE"}],
        "launchTemplate": by_name,
    }
    by_id = {**inputs, "nodeGroupName": "by-id"}
    by_id["launchTemplate"] = {"id": template["LaunchTemplateId"], "version": "1"}
    assert set_paths(inputs) | set_paths(by_id) >= declared_nested(NODE_GROUP)
    groups = handler_of(NODE_GROUP)
    groups.validate(inputs)
    id_, outputs = groups.create(ctx, "tainted", inputs)
    groups.create(ctx, "by-id", by_id)

    shown = eks.describe_nodegroup(clusterName=cluster, nodegroupName="tainted")["nodegroup"]
    assert shown["scalingConfig"] == inputs["scalingConfig"]
    assert shown["taints"] == inputs["taints"]
    assert {k: shown["launchTemplate"][k] for k in by_name} == by_name
    other = eks.describe_nodegroup(clusterName=cluster, nodegroupName="by-id")["nodegroup"]
    assert other["launchTemplate"]["id"] == template["LaunchTemplateId"]

    new = {
        **inputs,
        "scalingConfig": {"minSize": 2, "desiredSize": 4, "maxSize": 6},
        "taints": [{"key": "gpu", "value": "only", "effect": "NO_EXECUTE"}],
    }
    groups.update(ctx, id_, inputs, new, outputs)
    shown = eks.describe_nodegroup(clusterName=cluster, nodegroupName="tainted")["nodegroup"]
    assert shown["scalingConfig"] == new["scalingConfig"]
    assert shown["taints"] == new["taints"]


@pytest.mark.parametrize("key", ["id", "name"])
def test_another_launch_template_replaces_the_node_group(key: str) -> None:
    old = {"launchTemplate": {key: "lt-1", "version": "1"}}
    assert diff_op(NODE_GROUP, old, {"launchTemplate": {key: "lt-2", "version": "1"}}) is Op.REPLACE
    assert diff_op(NODE_GROUP, old, {"launchTemplate": {key: "lt-1", "version": "2"}}) is Op.UPDATE


# --- the mechanism, for every handler ----------------------------------------------------


def test_a_handler_that_declares_no_dotted_entries_walks_nothing() -> None:
    """How the handlers other branches add behave until they declare nested keys."""
    for token, found in REGISTRY.items():
        if found.emulates_every_input or declared_nested(token):
            continue
        for head in found.emulates:
            assert found.unemulated({head: {"anything": {"at": "all"}}}) == [], token


def test_declared_nested_keys_of_a_head_are_the_only_ones_let_through() -> None:
    taint = {"key": "gpu", "effect": "NO_SCHEDULE"}
    taints = [taint, {**taint, "operator": "Exists"}]
    assert handler_of(NODE_GROUP).unemulated({"taints": taints}) == ["taints.operator"]
