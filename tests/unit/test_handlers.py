"""Sandbox resource handlers against the emulated cloud: what boto3 shows after each
create, update and delete, and the inputs each handler refuses as AWS would.

Handlers get Pulumi wire inputs (camelCase, as the pulumi-aws v7 schema names them); the
type tokens and property names are checked against the installed pulumi_aws package.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from _handlers import create, handler_of
from phasegate.engines.sandbox.handlers import CloudContext, HandlerError, handler_for

REGION = "us-east-1"
ACCOUNT = "123456789012"

IGW = "aws:ec2/internetGateway:InternetGateway"
EIP = "aws:ec2/eip:Eip"
NAT = "aws:ec2/natGateway:NatGateway"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ROUTE = "aws:ec2/route:Route"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
NEW_TYPES = (
    IGW,
    EIP,
    NAT,
    ROUTE_TABLE,
    ROUTE,
    ASSOCIATION,
    ENDPOINT,
    SECURITY_GROUP,
    LAUNCH_TEMPLATE,
    PLACEMENT_GROUP,
    VERSIONING,
    ENCRYPTION,
    ACCESS_BLOCK,
    LIFECYCLE,
    POLICY,
    KEY,
    ALIAS,
    ALARM,
)


# --- the emulated cloud -----------------------------------------------------------------


@pytest.fixture
def vpc(ec2: Any) -> str:
    vpc_id: str = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    return vpc_id


@pytest.fixture
def subnet(ec2: Any, vpc: str) -> str:
    subnet_id: str = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    return subnet_id


@pytest.fixture
def igw(ec2: Any, vpc: str) -> str:
    igw_id: str = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc)
    return igw_id


@pytest.fixture
def nat(ec2: Any, subnet: str) -> str:
    nat_id: str = ec2.create_nat_gateway(SubnetId=subnet, ConnectivityType="private")["NatGateway"][
        "NatGatewayId"
    ]
    return nat_id


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"handlers-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    return name


def _update(
    ctx: CloudContext, token: str, id_: str, old: dict, new: dict, outputs: dict
) -> dict[str, Any]:
    assert set(new) <= _provider_props(token), set(new) - _provider_props(token)
    handler = handler_of(token)
    handler.validate(new)
    return handler.update(ctx, id_, old, new, outputs)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


# --- the registry, against the provider schema ------------------------------------------


def _provider_root() -> Path:
    spec = importlib.util.find_spec("pulumi_aws")
    assert spec is not None and spec.submodule_search_locations, "pulumi_aws is not installed"
    return Path(spec.submodule_search_locations[0])


def _provider_file(token: str) -> str:
    module, rest = token.split(":", 1)[1].split("/", 1)
    stem = re.sub(r"(?<!^)(?=[A-Z])", "_", rest.split(":", 1)[0]).lower()
    return (_provider_root() / module / f"{stem}.py").read_text()


def _camel(snake: str) -> str:
    head, *tail = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in tail)


@functools.cache
def _provider_props(token: str) -> frozenset[str]:
    """The resource's wire property names: its ``__props__`` keys, camelCased."""
    found = re.findall(r'__props__\.__dict__\["(\w+)"\]', _provider_file(token))
    return frozenset(_camel(p) for p in found)


@pytest.mark.parametrize("token", NEW_TYPES)
def test_types_and_property_names_are_the_providers(token: str) -> None:
    handler = handler_of(token)
    assert handler.type == token
    assert f'@pulumi.type_token("{token}")' in _provider_file(token)
    props = _provider_props(token)
    assert handler.replace_on <= props, handler.replace_on - props
    assert set(handler.computed) - {"id"} <= props, set(handler.computed) - props
    if handler.name_key:
        assert handler.name_key in props


# --- EC2: gateways, addresses, endpoints -----------------------------------------------


def test_internet_gateway_attaches_moves_and_goes(ctx: CloudContext, ec2: Any, vpc: str) -> None:
    igw_id, outputs = create(ctx, IGW, {"vpcId": vpc, "tags": {"team": "ml"}}, "edge")
    described = ec2.describe_internet_gateways(InternetGatewayIds=[igw_id])["InternetGateways"][0]
    assert [a["VpcId"] for a in described["Attachments"]] == [vpc]
    assert {"Key": "team", "Value": "ml"} in described["Tags"]
    assert outputs["arn"] == f"arn:aws:ec2:{REGION}:{ACCOUNT}:internet-gateway/{igw_id}"

    other = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    new = {"vpcId": other}
    outputs = _update(ctx, IGW, igw_id, {"vpcId": vpc, "tags": {"team": "ml"}}, new, outputs)
    described = ec2.describe_internet_gateways(InternetGatewayIds=[igw_id])["InternetGateways"][0]
    assert [a["VpcId"] for a in described["Attachments"]] == [other]
    assert "team" not in {t["Key"] for t in described["Tags"]}
    assert "tags" not in outputs  # the dropped input does not linger in the outputs

    handler_of(IGW).delete(ctx, igw_id, outputs)
    assert not handler_of(IGW).exists(ctx, igw_id, outputs)
    with pytest.raises(ClientError) as caught:
        ec2.describe_internet_gateways(InternetGatewayIds=[igw_id])
    assert _code(caught) == "InvalidInternetGatewayID.NotFound"


def test_a_vpc_takes_one_internet_gateway(ctx: CloudContext, ec2: Any, vpc: str) -> None:
    create(ctx, IGW, {"vpcId": vpc})
    before = ec2.describe_internet_gateways()["InternetGateways"]
    with pytest.raises(HandlerError, match="already has internet gateway"):
        create(ctx, IGW, {"vpcId": vpc})
    # The refused gateway is not left behind.
    assert len(ec2.describe_internet_gateways()["InternetGateways"]) == len(before)

    # Nor does a gateway moved onto the VPC leave the VPC it was on.
    other = ec2.create_vpc(CidrBlock="10.32.0.0/16")["Vpc"]["VpcId"]
    igw_id, outputs = create(ctx, IGW, {"vpcId": other})
    with pytest.raises(HandlerError, match="already has internet gateway"):
        _update(ctx, IGW, igw_id, {"vpcId": other}, {"vpcId": vpc}, outputs)
    described = ec2.describe_internet_gateways(InternetGatewayIds=[igw_id])["InternetGateways"][0]
    assert [a["VpcId"] for a in described["Attachments"]] == [other]


def test_eip_is_a_vpc_address_released_on_delete(ctx: CloudContext, ec2: Any) -> None:
    alloc_id, outputs = create(ctx, EIP, {"domain": "vpc", "tags": {"use": "nat"}}, "nat-ip")
    address = ec2.describe_addresses(AllocationIds=[alloc_id])["Addresses"][0]
    assert address["Domain"] == "vpc"
    assert outputs["publicIp"] == address["PublicIp"]
    assert outputs["allocationId"] == alloc_id
    assert (
        outputs["publicDns"]
        == f"ec2-{address['PublicIp'].replace('.', '-')}.compute-1.amazonaws.com"
    )
    handler_of(EIP).delete(ctx, alloc_id, outputs)
    assert not handler_of(EIP).exists(ctx, alloc_id, outputs)


def test_nat_gateway_holds_its_eip(ctx: CloudContext, ec2: Any, subnet: str, igw: str) -> None:
    alloc_id, eip = create(ctx, EIP, {"domain": "vpc"})
    inputs = {"subnetId": subnet, "allocationId": alloc_id, "connectivityType": "public"}
    nat_id, outputs = create(ctx, NAT, inputs, "egress")
    nat = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]
    assert nat["State"] == "available"
    assert nat["SubnetId"] == subnet
    assert [a["AllocationId"] for a in nat["NatGatewayAddresses"]] == [alloc_id]
    assert outputs["publicIp"] == eip["publicIp"]
    assert outputs["networkInterfaceId"].startswith("eni-")

    # AWS refuses to release the address, or to give it to a second gateway.
    with pytest.raises(HandlerError, match=f"in use by NAT gateway {nat_id}"):
        handler_of(EIP).delete(ctx, alloc_id, eip)
    with pytest.raises(HandlerError, match="already associated"):
        create(ctx, NAT, inputs)

    handler_of(NAT).delete(ctx, nat_id, outputs)
    assert not handler_of(NAT).exists(ctx, nat_id, outputs)
    assert ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]["State"] == "deleted"
    handler_of(EIP).delete(ctx, alloc_id, eip)
    assert not handler_of(EIP).exists(ctx, alloc_id, eip)


def test_private_nat_gateway_needs_no_eip(ctx: CloudContext, ec2: Any, subnet: str) -> None:
    nat_id, _ = create(ctx, NAT, {"subnetId": subnet, "connectivityType": "private"})
    nat = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]
    assert nat["ConnectivityType"] == "private"


def test_public_nat_gateway_without_eip_is_refused(ctx: CloudContext, subnet: str) -> None:
    # The emulator would create it; AWS would not.
    with pytest.raises(HandlerError, match="needs allocationId"):
        create(ctx, NAT, {"subnetId": subnet})


def test_public_nat_gateway_needs_an_internet_gateway(
    ctx: CloudContext, ec2: Any, vpc: str, subnet: str
) -> None:
    alloc_id, _ = create(ctx, EIP, {"domain": "vpc"})
    with pytest.raises(HandlerError, match=f"{vpc} has no internet gateway attached"):
        create(ctx, NAT, {"subnetId": subnet, "allocationId": alloc_id})
    nats = ec2.describe_nat_gateways(Filters=[{"Name": "subnet-id", "Values": [subnet]}])
    assert nats["NatGateways"] == []


def test_gateway_endpoint_routes_s3_through_its_tables(
    ctx: CloudContext, ec2: Any, vpc: str
) -> None:
    first = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    second = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    inputs = {
        "vpcId": vpc,
        "serviceName": f"com.amazonaws.{REGION}.s3",
        "vpcEndpointType": "Gateway",
        "routeTableIds": [first],
    }
    endpoint_id, outputs = create(ctx, ENDPOINT, inputs, "s3")
    found = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]
    assert (found["VpcEndpointType"], found["ServiceName"]) == ("Gateway", inputs["serviceName"])
    assert found["RouteTableIds"] == [first]
    assert outputs["prefixListId"].startswith("pl-")
    assert outputs["state"] == "available"

    def endpoint_routes(table_id: str) -> list[tuple[str, str]]:
        table = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
        return [
            (r["DestinationPrefixListId"], r["GatewayId"])
            for r in table["Routes"]
            if "DestinationPrefixListId" in r
        ]

    assert endpoint_routes(first) == [(outputs["prefixListId"], endpoint_id)]

    new = {**inputs, "routeTableIds": [second]}
    outputs = _update(ctx, ENDPOINT, endpoint_id, inputs, new, outputs)
    found = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]
    assert found["RouteTableIds"] == [second]
    assert outputs["routeTableIds"] == [second]
    assert endpoint_routes(first) == []
    assert endpoint_routes(second) == [(outputs["prefixListId"], endpoint_id)]

    handler_of(ENDPOINT).delete(ctx, endpoint_id, outputs)
    assert not handler_of(ENDPOINT).exists(ctx, endpoint_id, outputs)
    assert endpoint_routes(second) == []


def test_interface_endpoint_sits_in_subnets(
    ctx: CloudContext, ec2: Any, vpc: str, subnet: str
) -> None:
    inputs = {
        "vpcId": vpc,
        "serviceName": f"com.amazonaws.{REGION}.ecr.api",
        "vpcEndpointType": "Interface",
        "subnetIds": [subnet],
        "privateDnsEnabled": True,
    }
    endpoint_id, outputs = create(ctx, ENDPOINT, inputs)
    found = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]
    assert found["SubnetIds"] == [subnet]
    assert found["PrivateDnsEnabled"] is True
    assert outputs["networkInterfaceIds"] == found["NetworkInterfaceIds"]


def test_endpoint_for_an_unknown_service_is_refused(ctx: CloudContext, vpc: str) -> None:
    inputs = {
        "vpcId": vpc,
        "serviceName": f"com.amazonaws.{REGION}.no-such-service",
        "vpcEndpointType": "Interface",
    }
    with pytest.raises(HandlerError, match="no VPC endpoint service named"):
        create(ctx, ENDPOINT, inputs)


# --- EC2: routing -------------------------------------------------------------------------


def _routes(ec2: Any, table_id: str) -> dict[str, dict[str, Any]]:
    table = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
    return {r.get("DestinationCidrBlock", ""): r for r in table["Routes"]}


def test_route_table_with_inline_routes(
    ctx: CloudContext, ec2: Any, vpc: str, igw: str, nat: str
) -> None:
    inputs = {
        "vpcId": vpc,
        "routes": [{"cidrBlock": "0.0.0.0/0", "gatewayId": igw}],
        "tags": {"tier": "public"},
    }
    table_id, outputs = create(ctx, ROUTE_TABLE, inputs, "public")
    routes = _routes(ec2, table_id)
    assert routes["0.0.0.0/0"]["GatewayId"] == igw
    assert outputs["arn"].endswith(f":route-table/{table_id}")
    tags = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]["Tags"]
    assert {"Key": "tier", "Value": "public"} in tags

    new = {**inputs, "routes": [{"cidrBlock": "192.168.0.0/16", "natGatewayId": nat}]}
    _update(ctx, ROUTE_TABLE, table_id, inputs, new, outputs)
    routes = _routes(ec2, table_id)
    assert "0.0.0.0/0" not in routes
    assert routes["192.168.0.0/16"]["NatGatewayId"] == nat

    handler_of(ROUTE_TABLE).delete(ctx, table_id, outputs)
    assert not handler_of(ROUTE_TABLE).exists(ctx, table_id, outputs)


def test_route_changes_target_in_place(
    ctx: CloudContext, ec2: Any, vpc: str, igw: str, nat: str
) -> None:
    table_id = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    inputs = {"routeTableId": table_id, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": igw}
    route_id, outputs = create(ctx, ROUTE, inputs)
    assert route_id.startswith(f"r-{table_id}")
    assert _routes(ec2, table_id)["0.0.0.0/0"]["GatewayId"] == igw
    assert handler_of(ROUTE).exists(ctx, route_id, outputs)

    new = {"routeTableId": table_id, "destinationCidrBlock": "0.0.0.0/0", "natGatewayId": nat}
    outputs = _update(ctx, ROUTE, route_id, inputs, new, outputs)
    route = _routes(ec2, table_id)["0.0.0.0/0"]
    assert route["NatGatewayId"] == nat
    assert "GatewayId" not in route
    assert "gatewayId" not in outputs

    handler_of(ROUTE).delete(ctx, route_id, outputs)
    assert "0.0.0.0/0" not in _routes(ec2, table_id)
    assert not handler_of(ROUTE).exists(ctx, route_id, outputs)


def test_route_without_a_target_is_refused(ctx: CloudContext, ec2: Any, vpc: str) -> None:
    table_id = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    with pytest.raises(HandlerError, match="needs one target"):
        create(ctx, ROUTE, {"routeTableId": table_id, "destinationCidrBlock": "0.0.0.0/0"})
    assert "0.0.0.0/0" not in _routes(ec2, table_id)


def test_route_table_association_moves_between_tables(
    ctx: CloudContext, ec2: Any, vpc: str, subnet: str
) -> None:
    first = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    second = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]

    def table_of_subnet() -> list[str]:
        found = ec2.describe_route_tables(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
        )["RouteTables"]
        return [t["RouteTableId"] for t in found]

    inputs = {"subnetId": subnet, "routeTableId": first}
    association_id, outputs = create(ctx, ASSOCIATION, inputs)
    assert association_id.startswith("rtbassoc-")
    assert table_of_subnet() == [first]

    # AWS refuses a second association of the subnet; the emulator hands back the first.
    with pytest.raises(HandlerError, match=f"already associated with route table {first}"):
        create(ctx, ASSOCIATION, {"subnetId": subnet, "routeTableId": second})

    new = {"subnetId": subnet, "routeTableId": second}
    outputs = _update(ctx, ASSOCIATION, association_id, inputs, new, outputs)
    assert table_of_subnet() == [second]
    assert handler_of(ASSOCIATION).exists(ctx, association_id, outputs)

    handler_of(ASSOCIATION).delete(ctx, association_id, outputs)
    assert table_of_subnet() == []
    assert not handler_of(ASSOCIATION).exists(ctx, association_id, outputs)


# --- EC2: security groups --------------------------------------------------------------


def _rules(ec2: Any, group_id: str, key: str) -> set[tuple[Any, ...]]:
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    found = set()
    for permission in group[key]:
        for cidr in permission.get("IpRanges", []):
            found.add(
                (
                    permission["IpProtocol"],
                    permission.get("FromPort"),
                    permission.get("ToPort"),
                    cidr["CidrIp"],
                )
            )
        for pair in permission.get("UserIdGroupPairs", []):
            found.add(
                (
                    permission["IpProtocol"],
                    permission.get("FromPort"),
                    permission.get("ToPort"),
                    pair["GroupId"],
                )
            )
    return found


def test_security_group_rules_are_exactly_the_declared_ones(
    ctx: CloudContext, ec2: Any, vpc: str
) -> None:
    inputs = {
        "vpcId": vpc,
        "name": f"gpu-nodes-{secrets.token_hex(3)}",
        "description": "GPU worker nodes",
        "ingress": [
            {"fromPort": 443, "toPort": 443, "protocol": "tcp", "cidrBlocks": ["10.0.0.0/8"]},
            {"fromPort": 0, "toPort": 0, "protocol": "-1", "self": True, "description": "efa"},
        ],
        "egress": [
            {"fromPort": 443, "toPort": 443, "protocol": "tcp", "cidrBlocks": ["0.0.0.0/0"]}
        ],
    }
    group_id, outputs = create(ctx, SECURITY_GROUP, inputs)
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    assert (group["GroupName"], group["Description"]) == (inputs["name"], "GPU worker nodes")
    assert outputs["name"] == inputs["name"]
    assert _rules(ec2, group_id, "IpPermissions") == {
        ("tcp", 443, 443, "10.0.0.0/8"),
        ("-1", None, None, group_id),
    }
    # The allow-all egress AWS adds is gone: egress is what was declared.
    assert _rules(ec2, group_id, "IpPermissionsEgress") == {("tcp", 443, 443, "0.0.0.0/0")}

    new = {
        **inputs,
        "ingress": [
            {
                "fromPort": 443,
                "toPort": 443,
                "protocol": "tcp",
                "cidrBlocks": ["10.0.0.0/8", "172.16.0.0/12"],
            }
        ],
    }
    outputs = _update(ctx, SECURITY_GROUP, group_id, inputs, new, outputs)
    assert _rules(ec2, group_id, "IpPermissions") == {
        ("tcp", 443, 443, "10.0.0.0/8"),
        ("tcp", 443, 443, "172.16.0.0/12"),
    }
    assert _rules(ec2, group_id, "IpPermissionsEgress") == {("tcp", 443, 443, "0.0.0.0/0")}

    handler_of(SECURITY_GROUP).delete(ctx, group_id, outputs)
    assert not handler_of(SECURITY_GROUP).exists(ctx, group_id, outputs)


def test_security_group_rule_without_a_source_is_refused(
    ctx: CloudContext, ec2: Any, vpc: str
) -> None:
    name = f"no-source-{secrets.token_hex(3)}"
    inputs = {
        "vpcId": vpc,
        "name": name,
        "ingress": [{"fromPort": 22, "toPort": 22, "protocol": "tcp"}],
    }
    with pytest.raises(HandlerError, match=r"ingress\[0\] has no source"):
        create(ctx, SECURITY_GROUP, inputs)
    left = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])
    assert left["SecurityGroups"] == []


# --- EC2: launch templates and placement groups ----------------------------------------

_USER_DATA = base64.b64encode(b"#!/bin/bash\necho gpu\n").decode()


def _template_inputs(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "metadataOptions": {
            "httpTokens": "required",
            "httpEndpoint": "enabled",
            "httpPutResponseHopLimit": 2,
        },
        "blockDeviceMappings": [
            {
                "deviceName": "/dev/xvda",
                "ebs": {
                    "volumeSize": 200,
                    "volumeType": "gp3",
                    "encrypted": "true",
                    "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc",
                },
            }
        ],
        "networkInterfaces": [
            {
                "interfaceType": "efa",
                "deviceIndex": 0,
                "networkCardIndex": 0,
                "securityGroups": ["sg-0123456789abcdef0"],
            },
            {"interfaceType": "efa-only", "deviceIndex": 1, "networkCardIndex": 1},
        ],
        "placement": {"groupName": "gpu-cluster"},
        "tagSpecifications": [{"resourceType": "instance", "tags": {"pool": "gpu"}}],
        "userData": _USER_DATA,
        "tags": {"owner": "platform"},
    }


def _version_data(ec2: Any, template_id: str, version: str) -> dict[str, Any]:
    versions = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=[version]
    )["LaunchTemplateVersions"]
    data: dict[str, Any] = versions[0]["LaunchTemplateData"]
    return data


def test_launch_template_data_and_versions(ctx: CloudContext, ec2: Any) -> None:
    inputs = _template_inputs(f"gpu-{secrets.token_hex(3)}")
    template_id, outputs = create(ctx, LAUNCH_TEMPLATE, inputs)
    assert (outputs["latestVersion"], outputs["defaultVersion"]) == (1, 1)
    assert outputs["arn"] == f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/{template_id}"
    template = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"]
    assert template[0]["LaunchTemplateName"] == inputs["name"]

    data = _version_data(ec2, template_id, "1")
    assert data["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpEndpoint": "enabled",
        "HttpPutResponseHopLimit": 2,
    }
    ebs = data["BlockDeviceMappings"][0]["Ebs"]
    assert ebs["Encrypted"] is True  # the provider's "true" string, as EC2's boolean
    assert (ebs["VolumeSize"], ebs["VolumeType"]) == (200, "gp3")
    assert [n["InterfaceType"] for n in data["NetworkInterfaces"]] == ["efa", "efa-only"]
    assert data["NetworkInterfaces"][0]["Groups"] == ["sg-0123456789abcdef0"]
    assert data["Placement"] == {"GroupName": "gpu-cluster"}
    assert data["UserData"] == _USER_DATA
    assert {"Key": "pool", "Value": "gpu"} in next(
        s["Tags"] for s in data["TagSpecifications"] if s["ResourceType"] == "instance"
    )

    hop = {**inputs, "metadataOptions": {**inputs["metadataOptions"], "httpPutResponseHopLimit": 1}}
    outputs = _update(ctx, LAUNCH_TEMPLATE, template_id, inputs, hop, outputs)
    assert (outputs["latestVersion"], outputs["defaultVersion"]) == (2, 1)
    assert (
        _version_data(ec2, template_id, "$Latest")["MetadataOptions"]["HttpPutResponseHopLimit"]
        == 1
    )
    assert (
        _version_data(ec2, template_id, "$Default")["MetadataOptions"]["HttpPutResponseHopLimit"]
        == 2
    )

    promoted = {**hop, "userData": base64.b64encode(b"v3").decode(), "updateDefaultVersion": True}
    outputs = _update(ctx, LAUNCH_TEMPLATE, template_id, hop, promoted, outputs)
    assert (outputs["latestVersion"], outputs["defaultVersion"]) == (3, 3)
    described = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"]
    assert described[0]["DefaultVersionNumber"] == 3

    handler_of(LAUNCH_TEMPLATE).delete(ctx, template_id, outputs)
    assert not handler_of(LAUNCH_TEMPLATE).exists(ctx, template_id, outputs)


def test_launch_template_tag_change_makes_no_version(ctx: CloudContext) -> None:
    inputs = _template_inputs(f"tags-{secrets.token_hex(3)}")
    template_id, outputs = create(ctx, LAUNCH_TEMPLATE, inputs)
    new = {**inputs, "tags": {"owner": "ml"}}
    outputs = _update(ctx, LAUNCH_TEMPLATE, template_id, inputs, new, outputs)
    assert outputs["latestVersion"] == 1


def test_placement_group_is_kept_by_the_sandbox(ctx: CloudContext) -> None:
    handler = handler_of(PLACEMENT_GROUP)
    assert handler.emulated
    inputs = {"name": "gpu-cluster", "strategy": "cluster", "tags": {"pool": "gpu"}}
    group_id, outputs = create(ctx, PLACEMENT_GROUP, inputs)
    assert group_id == "gpu-cluster"
    assert outputs["placementGroupId"].startswith("pg-")
    assert outputs["arn"] == f"arn:aws:ec2:{REGION}:{ACCOUNT}:placement-group/gpu-cluster"
    kept = ctx.store["ec2_placement_groups"]
    assert kept["gpu-cluster"]["strategy"] == "cluster"
    json.dumps(ctx.store)  # the store goes into checkpoint.json
    with pytest.raises(HandlerError, match="already exists"):
        create(ctx, PLACEMENT_GROUP, inputs)

    outputs = _update(ctx, PLACEMENT_GROUP, group_id, inputs, {**inputs, "tags": {}}, outputs)
    assert kept["gpu-cluster"]["tags"] == {}
    handler.delete(ctx, group_id, outputs)
    assert not handler.exists(ctx, group_id, outputs)
    assert kept == {}


def test_placement_group_partitions_default_to_two(ctx: CloudContext) -> None:
    _, outputs = create(ctx, PLACEMENT_GROUP, {"strategy": "partition"}, "parts")
    assert outputs["partitionCount"] == 2
    assert outputs["name"].startswith("parts-")


# --- S3: bucket configurations ----------------------------------------------------------


def _versioning(s3: Any, bucket: str) -> str | None:
    status: str | None = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    return status


def test_bucket_versioning_enables_suspends_and_never_unversions(
    ctx: CloudContext, s3: Any, bucket: str
) -> None:
    enabled = {"bucket": bucket, "versioningConfiguration": {"status": "Enabled"}}
    id_, outputs = create(ctx, VERSIONING, enabled)
    assert id_ == bucket
    assert _versioning(s3, bucket) == "Enabled"
    assert handler_of(VERSIONING).exists(ctx, id_, outputs)

    suspended = {"bucket": bucket, "versioningConfiguration": {"status": "Suspended"}}
    outputs = _update(ctx, VERSIONING, id_, enabled, suspended, outputs)
    assert _versioning(s3, bucket) == "Suspended"
    outputs = _update(ctx, VERSIONING, id_, suspended, enabled, outputs)
    assert _versioning(s3, bucket) == "Enabled"

    disabled = {"bucket": bucket, "versioningConfiguration": {"status": "Disabled"}}
    with pytest.raises(HandlerError, match="cannot go back to Disabled"):
        _update(ctx, VERSIONING, id_, enabled, disabled, outputs)

    # Deleting the resource cannot un-version the bucket: it suspends versioning.
    handler_of(VERSIONING).delete(ctx, id_, outputs)
    assert _versioning(s3, bucket) == "Suspended"


def test_bucket_versioning_disabled_leaves_the_bucket_unversioned(
    ctx: CloudContext, s3: Any, bucket: str
) -> None:
    inputs = {"bucket": bucket, "versioningConfiguration": {"status": "Disabled"}}
    id_, outputs = create(ctx, VERSIONING, inputs)
    assert _versioning(s3, bucket) is None
    handler_of(VERSIONING).delete(ctx, id_, outputs)
    assert _versioning(s3, bucket) is None


def test_bucket_config_on_a_missing_bucket_is_refused(ctx: CloudContext) -> None:
    inputs = {"bucket": "no-such-bucket-here", "versioningConfiguration": {"status": "Enabled"}}
    with pytest.raises(HandlerError, match="bucket no-such-bucket-here does not exist"):
        create(ctx, VERSIONING, inputs)


def test_bucket_encryption_set_changed_and_removed(ctx: CloudContext, s3: Any, bucket: str) -> None:
    kms_inputs = {
        "bucket": bucket,
        "rules": [
            {
                "applyServerSideEncryptionByDefault": {
                    "sseAlgorithm": "aws:kms",
                    "kmsMasterKeyId": "alias/artifacts",
                },
                "bucketKeyEnabled": True,
            }
        ],
    }
    id_, outputs = create(ctx, ENCRYPTION, kms_inputs)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules == [
        {
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": "alias/artifacts",
            },
            "BucketKeyEnabled": True,
        }
    ]
    aes = {
        "bucket": bucket,
        "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
    }
    outputs = _update(ctx, ENCRYPTION, id_, kms_inputs, aes, outputs)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}

    handler_of(ENCRYPTION).delete(ctx, id_, outputs)
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_encryption(Bucket=bucket)
    assert _code(caught) == "ServerSideEncryptionConfigurationNotFoundError"
    assert not handler_of(ENCRYPTION).exists(ctx, id_, outputs)


def test_public_access_block_set_changed_and_removed(
    ctx: CloudContext, s3: Any, bucket: str
) -> None:
    inputs = {
        "bucket": bucket,
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    id_, outputs = create(ctx, ACCESS_BLOCK, inputs)
    config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert config == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    new = {**inputs, "restrictPublicBuckets": False}
    outputs = _update(ctx, ACCESS_BLOCK, id_, inputs, new, outputs)
    config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert config["RestrictPublicBuckets"] is False

    handler_of(ACCESS_BLOCK).delete(ctx, id_, outputs)
    with pytest.raises(ClientError) as caught:
        s3.get_public_access_block(Bucket=bucket)
    assert _code(caught) == "NoSuchPublicAccessBlockConfiguration"


def test_public_access_block_skip_destroy_keeps_it(ctx: CloudContext, s3: Any, bucket: str) -> None:
    inputs = {"bucket": bucket, "blockPublicAcls": True, "skipDestroy": True}
    id_, outputs = create(ctx, ACCESS_BLOCK, inputs)
    handler_of(ACCESS_BLOCK).delete(ctx, id_, outputs)
    config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert config["BlockPublicAcls"] is True


def _lifecycle_inputs(bucket: str) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "rules": [
            {
                "id": "checkpoints",
                "status": "Enabled",
                "filter": {"prefix": "checkpoints/"},
                "transitions": [
                    {"days": 30, "storageClass": "STANDARD_IA"},
                    {"days": 90, "storageClass": "GLACIER"},
                ],
                "noncurrentVersionExpiration": {"noncurrentDays": 60},
            }
        ],
    }


def test_bucket_lifecycle_set_changed_and_removed(ctx: CloudContext, s3: Any, bucket: str) -> None:
    inputs = _lifecycle_inputs(bucket)
    id_, outputs = create(ctx, LIFECYCLE, inputs)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert len(rules) == 1
    assert (rules[0]["ID"], rules[0]["Status"]) == ("checkpoints", "Enabled")
    assert rules[0]["Filter"] == {"Prefix": "checkpoints/"}
    assert rules[0]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"},
        {"Days": 90, "StorageClass": "GLACIER"},
    ]
    assert rules[0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 60}

    new = {
        "bucket": bucket,
        "rules": [
            {
                "id": "scratch",
                "status": "Enabled",
                "filter": {"and": {"prefix": "tmp/", "tags": {"kind": "scratch"}}},
                "expiration": {"days": 7},
            }
        ],
    }
    outputs = _update(ctx, LIFECYCLE, id_, inputs, new, outputs)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in rules] == ["scratch"]
    assert rules[0]["Expiration"] == {"Days": 7}
    assert rules[0]["Filter"] == {
        "And": {"Prefix": "tmp/", "Tags": [{"Key": "kind", "Value": "scratch"}]}
    }

    handler_of(LIFECYCLE).delete(ctx, id_, outputs)
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert _code(caught) == "NoSuchLifecycleConfiguration"
    assert not handler_of(LIFECYCLE).exists(ctx, id_, outputs)


def _policy(bucket: str, principal: Any, *, condition: bool = False) -> str:
    statement: dict[str, Any] = {
        "Sid": "Read",
        "Effect": "Allow",
        "Principal": principal,
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    if condition:
        statement["Condition"] = {"StringEquals": {"aws:SourceVpce": "vpce-0123"}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_bucket_policy_set_changed_and_removed(ctx: CloudContext, s3: Any, bucket: str) -> None:
    reader = {"AWS": f"arn:aws:iam::{ACCOUNT}:role/reader"}
    inputs = {"bucket": bucket, "policy": _policy(bucket, reader)}
    id_, outputs = create(ctx, POLICY, inputs)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(inputs["policy"])

    # A policy may also arrive as an object (aws.iam.PolicyDocument).
    as_object = {"bucket": bucket, "policy": json.loads(_policy(bucket, "*", condition=True))}
    outputs = _update(ctx, POLICY, id_, inputs, as_object, outputs)
    stored = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert stored["Statement"][0]["Principal"] == "*"

    handler_of(POLICY).delete(ctx, id_, outputs)
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_policy(Bucket=bucket)
    assert _code(caught) == "NoSuchBucketPolicy"


def test_public_policy_is_refused_under_block_public_policy(
    ctx: CloudContext, s3: Any, bucket: str
) -> None:
    create(ctx, ACCESS_BLOCK, {"bucket": bucket, "blockPublicPolicy": True})
    with pytest.raises(HandlerError, match="BlockPublicPolicy"):
        create(ctx, POLICY, {"bucket": bucket, "policy": _policy(bucket, "*")})
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_policy(Bucket=bucket)
    assert _code(caught) == "NoSuchBucketPolicy"


# --- KMS ----------------------------------------------------------------------------------


def test_kms_key_rotation_description_and_scheduled_deletion(ctx: CloudContext, kms: Any) -> None:
    inputs = {
        "description": "model artifacts",
        "enableKeyRotation": True,
        "deletionWindowInDays": 7,
        "tags": {"data": "models"},
    }
    key_id, outputs = create(ctx, KEY, inputs)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (meta["Description"], meta["KeyUsage"], meta["KeySpec"]) == (
        "model artifacts",
        "ENCRYPT_DECRYPT",
        "SYMMETRIC_DEFAULT",
    )
    assert outputs["arn"] == meta["Arn"]
    assert outputs["keyId"] == key_id
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    tags = kms.list_resource_tags(KeyId=key_id)["Tags"]
    assert tags == [{"TagKey": "data", "TagValue": "models"}]

    new = {**inputs, "description": "model artifacts v2", "enableKeyRotation": False}
    outputs = _update(ctx, KEY, key_id, inputs, new, outputs)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "model artifacts v2"
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False

    disabled = {**new, "isEnabled": False}
    outputs = _update(ctx, KEY, key_id, new, disabled, outputs)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"

    handler_of(KEY).delete(ctx, key_id, outputs)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert 6 <= (meta["DeletionDate"] - meta["CreationDate"]).days <= 7
    assert not handler_of(KEY).exists(ctx, key_id, outputs)
    handler_of(KEY).delete(ctx, key_id, outputs)  # deleting again is a no-op


def test_kms_signing_key(ctx: CloudContext, kms: Any) -> None:
    inputs = {"keyUsage": "SIGN_VERIFY", "customerMasterKeySpec": "ECC_NIST_P256"}
    key_id, _ = create(ctx, KEY, inputs)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (meta["KeyUsage"], meta["KeySpec"]) == ("SIGN_VERIFY", "ECC_NIST_P256")


def test_kms_alias_points_and_repoints(ctx: CloudContext, kms: Any) -> None:
    first = kms.create_key()["KeyMetadata"]
    second = kms.create_key()["KeyMetadata"]
    name = f"alias/artifacts-{secrets.token_hex(3)}"

    def target() -> list[str]:
        aliases = kms.list_aliases()["Aliases"]
        return [a["TargetKeyId"] for a in aliases if a["AliasName"] == name]

    inputs = {"name": name, "targetKeyId": first["KeyId"]}
    alias_id, outputs = create(ctx, ALIAS, inputs)
    assert alias_id == name
    assert target() == [first["KeyId"]]
    assert outputs["targetKeyArn"] == first["Arn"]
    assert outputs["arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:{name}"

    new = {"name": name, "targetKeyId": second["KeyId"]}
    outputs = _update(ctx, ALIAS, alias_id, inputs, new, outputs)
    assert target() == [second["KeyId"]]
    assert outputs["targetKeyArn"] == second["Arn"]

    handler_of(ALIAS).delete(ctx, alias_id, outputs)
    assert target() == []
    assert not handler_of(ALIAS).exists(ctx, alias_id, outputs)


def test_kms_alias_on_a_key_pending_deletion_is_refused(ctx: CloudContext, kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    name = f"alias/doomed-{secrets.token_hex(3)}"
    with pytest.raises(HandlerError, match="pending deletion"):
        create(ctx, ALIAS, {"name": name, "targetKeyId": key_id})
    assert name not in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}


# --- CloudWatch -----------------------------------------------------------------------------


def _alarm_inputs(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "AWS/EC2",
        "metricName": "CPUUtilization",
        "dimensions": {"AutoScalingGroupName": "gpu-nodes"},
        "statistic": "Average",
        "period": 60,
        "evaluationPeriods": 5,
        "datapointsToAlarm": 3,
        "threshold": 90,
        "comparisonOperator": "GreaterThanOrEqualToThreshold",
        "treatMissingData": "notBreaching",
        "alarmActions": [f"arn:aws:sns:{REGION}:{ACCOUNT}:pager"],
    }


def test_metric_alarm_put_changed_and_deleted(ctx: CloudContext) -> None:
    cloudwatch = ctx.client("cloudwatch")
    inputs = _alarm_inputs(f"gpu-hot-{secrets.token_hex(3)}")
    alarm_id, outputs = create(ctx, ALARM, inputs)
    assert outputs["arn"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_id}"
    alarm = cloudwatch.describe_alarms(AlarmNames=[alarm_id])["MetricAlarms"][0]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/EC2",
        "CPUUtilization",
        "Average",
    )
    assert alarm["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": "gpu-nodes"}]
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (60, 5, 3)
    assert alarm["Threshold"] == 90.0
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == inputs["alarmActions"]

    new = {**inputs, "threshold": 75.5, "comparisonOperator": "GreaterThanThreshold"}
    outputs = _update(ctx, ALARM, alarm_id, inputs, new, outputs)
    alarm = cloudwatch.describe_alarms(AlarmNames=[alarm_id])["MetricAlarms"][0]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (75.5, "GreaterThanThreshold")

    handler_of(ALARM).delete(ctx, alarm_id, outputs)
    assert cloudwatch.describe_alarms(AlarmNames=[alarm_id])["MetricAlarms"] == []
    assert not handler_of(ALARM).exists(ctx, alarm_id, outputs)


def test_metric_alarm_on_a_metric_query(ctx: CloudContext) -> None:
    inputs = {
        "name": f"error-rate-{secrets.token_hex(3)}",
        "evaluationPeriods": 2,
        "threshold": 5,
        "comparisonOperator": "GreaterThanThreshold",
        "metricQueries": [
            {"id": "rate", "expression": "errors / requests * 100", "returnData": True},
            {
                "id": "errors",
                "metric": {
                    "metricName": "5XXError",
                    "namespace": "AWS/ApplicationELB",
                    "period": 60,
                    "stat": "Sum",
                },
            },
        ],
    }
    alarm_id, _ = create(ctx, ALARM, inputs)
    alarm = ctx.client("cloudwatch").describe_alarms(AlarmNames=[alarm_id])["MetricAlarms"][0]
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    assert metrics["rate"]["Expression"] == "errors / requests * 100"
    assert metrics["errors"]["MetricStat"]["Metric"]["MetricName"] == "5XXError"


def test_metric_alarm_without_a_threshold_is_refused(ctx: CloudContext) -> None:
    inputs = _alarm_inputs(f"no-threshold-{secrets.token_hex(3)}")
    del inputs["threshold"]
    with pytest.raises(HandlerError, match="needs a threshold"):
        create(ctx, ALARM, inputs)


# --- what each handler refuses before anything is created ---------------------------------

_BUCKET = "artifacts-bucket"
_IA_TOO_SOON = {"days": 10, "storageClass": "STANDARD_IA"}


def _lifecycle_rule(**rule: Any) -> dict[str, Any]:
    return {"bucket": _BUCKET, "rules": [{"id": "r", "status": "Enabled", **rule}]}


def _tcp(low: int, high: int, **extra: Any) -> dict[str, Any]:
    return {"ingress": [{"fromPort": low, "toPort": high, "protocol": "tcp", **extra}]}


REFUSED = [
    pytest.param(EIP, {"domain": "standard"}, "EC2-Classic", id="eip-classic"),
    pytest.param(EIP, {"instance": "i-1", "networkInterface": "eni-1"}, "not both", id="eip-both"),
    pytest.param(NAT, {"connectivityType": "carrier"}, "public or private", id="nat-kind"),
    pytest.param(
        NAT,
        {"connectivityType": "private", "allocationId": "eipalloc-1"},
        "takes no Elastic IP",
        id="nat-private-eip",
    ),
    pytest.param(
        ROUTE,
        {"destinationCidrBlock": "0.0.0.0/0", "gatewayId": "nat-0123"},
        "gatewayId 'nat-0123' is not an id starting igw-",
        id="route-nat-as-gateway",
    ),
    pytest.param(
        ROUTE,
        {"destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-1", "natGatewayId": "nat-1"},
        "more than one target",
        id="route-two-targets",
    ),
    pytest.param(
        ROUTE,
        {"destinationCidrBlock": "10.0.0.1/16", "gatewayId": "igw-1"},
        "not a valid IPv4 CIDR",
        id="route-host-bits",
    ),
    pytest.param(
        ROUTE_TABLE,
        {"routes": [{"cidrBlock": "0.0.0.0/0", "gatewayId": "eni-1"}]},
        r"routes\[0\]: gatewayId",
        id="route-table-inline",
    ),
    pytest.param(
        ASSOCIATION,
        {"subnetId": "subnet-1", "gatewayId": "igw-1", "routeTableId": "rtb-1"},
        "not both",
        id="association-both",
    ),
    pytest.param(
        ENDPOINT,
        {"serviceName": f"com.amazonaws.{REGION}.ecr.api", "vpcEndpointType": "Gateway"},
        "only S3 and DynamoDB",
        id="endpoint-gateway-service",
    ),
    pytest.param(
        ENDPOINT,
        {"vpcEndpointType": "Interface", "routeTableIds": ["rtb-1"]},
        "takes no routeTableIds",
        id="endpoint-interface-routes",
    ),
    pytest.param(
        ENDPOINT,
        {"vpcEndpointType": "Gateway", "subnetIds": ["subnet-1"]},
        "takes no subnetIds",
        id="endpoint-gateway-subnets",
    ),
    pytest.param(ENDPOINT, {"vpcEndpointType": "Tunnel"}, "not one of", id="endpoint-type"),
    pytest.param(
        SECURITY_GROUP, _tcp(443, 80, cidrBlocks=["10.0.0.0/8"]), "0-65535", id="sg-ports"
    ),
    pytest.param(
        SECURITY_GROUP,
        {
            "egress": [
                {"fromPort": 0, "toPort": 65535, "protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]}
            ]
        },
        "must both be 0",
        id="sg-all-with-ports",
    ),
    pytest.param(
        SECURITY_GROUP,
        _tcp(22, 22, cidrBlocks=["10.0.0.1/8"]),
        "not a valid IPv4 CIDR",
        id="sg-cidr-host-bits",
    ),
    pytest.param(
        SECURITY_GROUP,
        {"ingress": [{"fromPort": 0, "toPort": 0, "protocol": "gre", "cidrBlocks": []}]},
        "protocol 'gre'",
        id="sg-protocol",
    ),
    pytest.param(SECURITY_GROUP, {"name": "sg-workers"}, "reserved", id="sg-name-prefix"),
    pytest.param(SECURITY_GROUP, {"description": "nœuds GPU"}, "characters", id="sg-description"),
    pytest.param(
        LAUNCH_TEMPLATE,
        {"metadataOptions": {"httpTokens": "always"}},
        "optional or required",
        id="lt-http-tokens",
    ),
    pytest.param(
        LAUNCH_TEMPLATE,
        {"metadataOptions": {"httpPutResponseHopLimit": 65}},
        "outside 1-64",
        id="lt-hop-limit",
    ),
    pytest.param(
        LAUNCH_TEMPLATE,
        {
            "blockDeviceMappings": [
                {"deviceName": "/dev/xvda", "ebs": {"volumeSize": 80, "volumeType": "st1"}}
            ]
        },
        "outside 125-16384 for st1",
        id="lt-volume-size",
    ),
    pytest.param(
        LAUNCH_TEMPLATE,
        {
            "blockDeviceMappings": [
                {"deviceName": "/dev/xvda", "ebs": {"volumeType": "gp2", "iops": 3000}}
            ]
        },
        "iops applies to",
        id="lt-gp2-iops",
    ),
    pytest.param(
        LAUNCH_TEMPLATE,
        {
            "blockDeviceMappings": [
                {"deviceName": "/dev/xvda", "ebs": {"kmsKeyId": "k", "encrypted": "false"}}
            ]
        },
        "needs encrypted",
        id="lt-kms-unencrypted",
    ),
    pytest.param(
        LAUNCH_TEMPLATE,
        {
            "networkInterfaces": [
                {"interfaceType": "efa-only", "deviceIndex": 0, "networkCardIndex": 0}
            ]
        },
        "cannot be the primary",
        id="lt-efa-only-primary",
    ),
    pytest.param(
        LAUNCH_TEMPLATE,
        {
            "networkInterfaces": [
                {"interfaceType": "efa", "deviceIndex": 0, "networkCardIndex": 0},
                {"interfaceType": "efa", "deviceIndex": 0, "networkCardIndex": 0},
            ]
        },
        "repeats deviceIndex 0",
        id="lt-duplicate-device",
    ),
    pytest.param(
        LAUNCH_TEMPLATE,
        {"networkInterfaces": [{"interfaceType": "ena", "deviceIndex": 0}]},
        "interfaceType 'ena'",
        id="lt-interface-type",
    ),
    pytest.param(
        LAUNCH_TEMPLATE,
        {
            "vpcSecurityGroupIds": ["sg-1"],
            "networkInterfaces": [{"deviceIndex": 0, "securityGroups": ["sg-2"]}],
        },
        "instance-level",
        id="lt-two-levels-of-groups",
    ),
    pytest.param(
        LAUNCH_TEMPLATE,
        {"tagSpecifications": [{"resourceType": "launch-template", "tags": {"a": "b"}}]},
        "resourceType 'launch-template'",
        id="lt-tag-spec",
    ),
    pytest.param(LAUNCH_TEMPLATE, {"userData": "#!/bin/bash"}, "base64", id="lt-user-data"),
    pytest.param(LAUNCH_TEMPLATE, {"name": "gpu nodes"}, "3-128 characters", id="lt-name"),
    pytest.param(PLACEMENT_GROUP, {"strategy": "pack"}, "not one of", id="pg-strategy"),
    pytest.param(
        PLACEMENT_GROUP,
        {"strategy": "cluster", "partitionCount": 3},
        "partition strategy only",
        id="pg-count-cluster",
    ),
    pytest.param(
        PLACEMENT_GROUP, {"strategy": "partition", "partitionCount": 8}, "1-7", id="pg-count"
    ),
    pytest.param(
        PLACEMENT_GROUP, {"strategy": "spread", "spreadLevel": "host"}, "Outposts", id="pg-host"
    ),
    pytest.param(
        VERSIONING,
        {"bucket": _BUCKET, "versioningConfiguration": {"status": "On"}},
        "status 'On'",
        id="versioning-status",
    ),
    pytest.param(
        ENCRYPTION,
        {
            "bucket": _BUCKET,
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}] * 2,
        },
        "exactly one rule",
        id="sse-two-rules",
    ),
    pytest.param(
        ENCRYPTION,
        {
            "bucket": _BUCKET,
            "rules": [
                {
                    "applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": "AES256",
                        "kmsMasterKeyId": "alias/x",
                    }
                }
            ],
        },
        "not AES256",
        id="sse-aes-with-key",
    ),
    pytest.param(
        ENCRYPTION,
        {
            "bucket": _BUCKET,
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "DES"}}],
        },
        "sseAlgorithm 'DES'",
        id="sse-algorithm",
    ),
    pytest.param(
        ACCESS_BLOCK, {"bucket": _BUCKET, "blockPublicAcls": "yes"}, "true or false", id="pab-flag"
    ),
    pytest.param(
        LIFECYCLE, _lifecycle_rule(transitions=[_IA_TOO_SOON]), "at least 30 days", id="lc-ia-days"
    ),
    pytest.param(
        LIFECYCLE,
        _lifecycle_rule(
            noncurrentVersionTransitions=[{"noncurrentDays": 7, "storageClass": "ONEZONE_IA"}]
        ),
        "at least 30 days",
        id="lc-noncurrent-ia-days",
    ),
    pytest.param(
        LIFECYCLE,
        _lifecycle_rule(transitions=[{"days": 30, "storageClass": "COLD"}]),
        "storageClass 'COLD'",
        id="lc-class",
    ),
    pytest.param(
        LIFECYCLE,
        _lifecycle_rule(
            transitions=[
                {"days": 30, "storageClass": "GLACIER"},
                {"days": 60, "storageClass": "STANDARD_IA"},
            ]
        ),
        "cannot follow",
        id="lc-waterfall",
    ),
    pytest.param(
        LIFECYCLE,
        _lifecycle_rule(
            transitions=[
                {"days": 30, "storageClass": "STANDARD_IA"},
                {"days": 45, "storageClass": "GLACIER"},
            ]
        ),
        "stay in STANDARD_IA at least 30 days",
        id="lc-ia-stay",
    ),
    pytest.param(
        LIFECYCLE,
        _lifecycle_rule(
            transitions=[{"days": 90, "storageClass": "GLACIER"}], expiration={"days": 60}
        ),
        "not after their last transition",
        id="lc-expire-before-move",
    ),
    pytest.param(
        LIFECYCLE,
        _lifecycle_rule(
            filter={"prefix": "a/", "tag": {"key": "k", "value": "v"}}, expiration={"days": 1}
        ),
        "under 'and'",
        id="lc-filter-predicates",
    ),
    pytest.param(
        LIFECYCLE, _lifecycle_rule(filter={"prefix": "a/"}), "has no action", id="lc-no-action"
    ),
    pytest.param(
        LIFECYCLE,
        _lifecycle_rule(status="On", expiration={"days": 1}),
        "status 'On'",
        id="lc-status",
    ),
    pytest.param(
        LIFECYCLE,
        {
            "bucket": _BUCKET,
            "rules": [
                {"id": "r", "status": "Enabled", "expiration": {"days": 1}},
                {"id": "r", "status": "Enabled", "expiration": {"days": 2}},
            ],
        },
        "unique: r repeats",
        id="lc-duplicate-ids",
    ),
    pytest.param(
        POLICY, {"bucket": _BUCKET, "policy": "{not json"}, "not valid JSON", id="policy-json"
    ),
    pytest.param(
        POLICY,
        {
            "bucket": _BUCKET,
            "policy": {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]},
        },
        "needs Principal",
        id="policy-no-principal",
    ),
    pytest.param(
        POLICY,
        {"bucket": _BUCKET, "policy": _policy("someone-elses-bucket", "*")},
        "covers its own bucket only",
        id="policy-other-bucket",
    ),
    pytest.param(
        POLICY,
        {"bucket": _BUCKET, "policy": {"Version": "2024-01-01", "Statement": []}},
        "Version",
        id="policy-version",
    ),
    pytest.param(KEY, {"deletionWindowInDays": 6}, "outside 7-30", id="key-window-short"),
    pytest.param(KEY, {"deletionWindowInDays": 31}, "outside 7-30", id="key-window-long"),
    pytest.param(
        KEY,
        {"customerMasterKeySpec": "HMAC_256"},
        "keyUsage 'ENCRYPT_DECRYPT' is not possible for a HMAC_256 key",
        id="key-hmac-usage",
    ),
    pytest.param(
        KEY,
        {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY", "enableKeyRotation": True},
        "symmetric encryption keys only",
        id="key-rsa-rotation",
    ),
    pytest.param(KEY, {"customerMasterKeySpec": "AES_256"}, "not one of", id="key-spec"),
    pytest.param(KEY, {"rotationPeriodInDays": 30}, "outside 90-2560", id="key-rotation-period"),
    pytest.param(ALIAS, {"name": "artifacts"}, "must start with 'alias/'", id="alias-prefix"),
    pytest.param(ALIAS, {"name": "alias/aws/s3"}, "reserved", id="alias-reserved"),
    pytest.param(ALIAS, {"name": "alias/with space"}, "up to 256 characters", id="alias-chars"),
    pytest.param(
        ALARM, {"comparisonOperator": "Above"}, "comparisonOperator 'Above'", id="alarm-op"
    ),
    pytest.param(ALARM, {"statistic": "Median"}, "statistic 'Median'", id="alarm-statistic"),
    pytest.param(ALARM, {"period": 45}, "multiple of 60", id="alarm-period"),
    pytest.param(
        ALARM,
        {"evaluationPeriods": 2, "datapointsToAlarm": 3},
        "within 1-2",
        id="alarm-datapoints",
    ),
    pytest.param(
        ALARM, {"period": 300, "evaluationPeriods": 300}, "allows 86400s", id="alarm-day-limit"
    ),
    pytest.param(
        ALARM,
        {"comparisonOperator": "LessThanLowerThreshold", "threshold": 1},
        "thresholdMetricId, not a threshold",
        id="alarm-band-threshold",
    ),
    pytest.param(
        ALARM, {"treatMissingData": "zero"}, "treatMissingData 'zero'", id="alarm-missing"
    ),
    pytest.param(ALARM, {"alarmActions": ["pager"]}, "not an ARN", id="alarm-action"),
    pytest.param(
        ALARM,
        {"metricName": "m", "metricQueries": [{"id": "q", "expression": "m1"}]},
        "cannot be combined with metricName",
        id="alarm-metric-and-queries",
    ),
]


@pytest.mark.parametrize(("token", "inputs", "match"), REFUSED)
def test_validate_refuses_what_aws_refuses(token: str, inputs: dict[str, Any], match: str) -> None:
    with pytest.raises(HandlerError, match=match):
        handler_of(token).validate(inputs)


ACCEPTED = [
    pytest.param(SECURITY_GROUP, _tcp(0, 65535, cidrBlocks=["10.0.0.0/8"]), id="sg-all-ports"),
    pytest.param(
        SECURITY_GROUP,
        {
            "ingress": [
                {"fromPort": -1, "toPort": -1, "protocol": "icmp", "cidrBlocks": ["0.0.0.0/0"]}
            ]
        },
        id="sg-icmp",
    ),
    pytest.param(
        SECURITY_GROUP, {"ingress": [{"fromPort": 0, "toPort": 0, "protocol": "all"}]}, id="sg-all"
    ),
    pytest.param(LAUNCH_TEMPLATE, _template_inputs("gpu-nodes"), id="lt-full"),
    pytest.param(PLACEMENT_GROUP, {"strategy": "spread", "spreadLevel": "rack"}, id="pg-spread"),
    pytest.param(LIFECYCLE, _lifecycle_inputs(_BUCKET), id="lc-ia-then-glacier"),
    pytest.param(
        LIFECYCLE,
        _lifecycle_rule(
            transitions=[
                {"days": 0, "storageClass": "INTELLIGENT_TIERING"},
                {"days": 180, "storageClass": "DEEP_ARCHIVE"},
            ],
            expiration={"days": 365},
        ),
        id="lc-tiering-then-archive",
    ),
    pytest.param(
        KEY, {"customerMasterKeySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC"}, id="key-hmac"
    ),
    pytest.param(ALARM, _alarm_inputs("ok"), id="alarm"),
    pytest.param(ALARM, {"period": 3600, "evaluationPeriods": 168}, id="alarm-week-of-hours"),
    pytest.param(ROUTE, {"destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"}, id="route"),
    pytest.param(
        ENDPOINT,
        {"serviceName": f"com.amazonaws.{REGION}.dynamodb", "vpcEndpointType": "Gateway"},
        id="endpoint-dynamodb",
    ),
    # Unknown values are left out of what validate() sees during preview: no false alarm.
    pytest.param(NAT, {"connectivityType": "public"}, id="nat-eip-not-known-yet"),
]


@pytest.mark.parametrize(("token", "inputs"), ACCEPTED)
def test_validate_accepts_what_aws_accepts(token: str, inputs: dict[str, Any]) -> None:
    handler_of(token).validate(inputs)


def test_a_new_launch_template_version_rolls_the_node_group_in_place(
    ctx: CloudContext, ec2: Any, subnet: str
) -> None:

    eks = ctx.client("eks")
    role = "arn:aws:iam::123456789012:role/eks"
    eks.create_cluster(name="lt-roll", roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]})
    template = ec2.create_launch_template(
        LaunchTemplateName="lt-roll-nodes",
        LaunchTemplateData={"MetadataOptions": {"HttpTokens": "required"}},
    )["LaunchTemplate"]
    nodes = handler_for("aws:eks/nodeGroup:NodeGroup")
    assert nodes is not None
    inputs = {
        "clusterName": "lt-roll",
        "nodeGroupName": "gpu",
        "nodeRoleArn": role,
        "subnetIds": [subnet],
        "instanceTypes": ["g5.xlarge"],
        "scalingConfig": {"minSize": 0, "desiredSize": 1, "maxSize": 2},
        "launchTemplate": {"id": template["LaunchTemplateId"], "version": "1"},
    }
    id_, outputs = nodes.create(ctx, "gpu", inputs)
    created = eks.describe_nodegroup(clusterName="lt-roll", nodegroupName="gpu")["nodegroup"]
    newer = {**inputs, "launchTemplate": {"id": template["LaunchTemplateId"], "version": "2"}}
    nodes.update(ctx, id_, inputs, newer, outputs)
    rolled = eks.describe_nodegroup(clusterName="lt-roll", nodegroupName="gpu")["nodegroup"]
    assert rolled["launchTemplate"]["version"] == "2"
    assert rolled["createdAt"] == created["createdAt"]  # the same group, not a new one


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param({"phasegate:owner": "platform", "env": "pilot"}, id="change-and-add"),
        pytest.param({"phasegate:owner": "platform"}, id="remove-one"),
        pytest.param({}, id="remove-all"),
    ],
)
def test_cluster_and_node_group_tags_become_exactly_the_new_ones(
    ctx: CloudContext, subnet: str, tags: dict[str, str]
) -> None:
    eks = ctx.client("eks")
    role = "arn:aws:iam::123456789012:role/eks"
    name = f"tags-{secrets.token_hex(3)}"
    old_tags = {"phasegate:owner": "infra", "phasegate:phase": "pilot"}
    cluster_inputs = {
        "name": name,
        "roleArn": role,
        "vpcConfig": {"subnetIds": [subnet, subnet]},
        "tags": old_tags,
    }
    cluster_id, cluster_out = create(ctx, "aws:eks/cluster:Cluster", cluster_inputs, name)
    group_inputs = {
        "clusterName": name,
        "nodeGroupName": "general",
        "nodeRoleArn": role,
        "subnetIds": [subnet],
        "scalingConfig": {"minSize": 1, "desiredSize": 1, "maxSize": 2},
        "tags": old_tags,
    }
    group_id, group_out = create(ctx, "aws:eks/nodeGroup:NodeGroup", group_inputs, "general")

    new_cluster = {**cluster_inputs, "tags": tags}
    _update(ctx, "aws:eks/cluster:Cluster", cluster_id, cluster_inputs, new_cluster, cluster_out)
    new_group = {**group_inputs, "tags": tags}
    _update(ctx, "aws:eks/nodeGroup:NodeGroup", group_id, group_inputs, new_group, group_out)

    assert eks.describe_cluster(name=name)["cluster"].get("tags", {}) == tags
    group = eks.describe_nodegroup(clusterName=name, nodegroupName="general")["nodegroup"]
    assert group.get("tags", {}) == tags


@pytest.mark.parametrize(
    ("token", "inputs"),
    [
        ("aws:kms/key:Key", {"policy": "{not json"}),
        (
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            {"vpcId": "vpc-1", "serviceName": "com.amazonaws.us-east-1.s3", "policy": "{nope"},
        ),
    ],
    ids=["kms-key", "vpc-endpoint"],
)
def test_a_policy_that_is_not_json_is_refused_before_anything_is_made(
    token: str, inputs: dict[str, Any]
) -> None:
    with pytest.raises(HandlerError, match="policy is not valid JSON"):
        handler_of(token).validate(inputs)


def test_a_clusters_access_config_is_kept_and_moves_one_way_only(
    ctx: CloudContext, subnet: str
) -> None:
    """The emulator keeps no accessConfig, so the sandbox dropped it; EKS moves the
    authentication mode from CONFIG_MAP towards API only."""
    name = f"access-{secrets.token_hex(3)}"
    inputs: dict[str, Any] = {
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "vpcConfig": {"subnetIds": [subnet, subnet]},
        "accessConfig": {
            "authenticationMode": "API_AND_CONFIG_MAP",
            "bootstrapClusterCreatorAdminPermissions": True,
        },
    }
    cluster_id, outputs = create(ctx, "aws:eks/cluster:Cluster", inputs, name)
    assert ctx.kept("eks-access-config")[cluster_id]["authenticationMode"] == "API_AND_CONFIG_MAP"

    to_api = {**inputs, "accessConfig": {**inputs["accessConfig"], "authenticationMode": "API"}}
    outputs = _update(ctx, "aws:eks/cluster:Cluster", cluster_id, inputs, to_api, outputs)
    assert ctx.kept("eks-access-config")[cluster_id]["authenticationMode"] == "API"
    back = {
        **inputs,
        "accessConfig": {**inputs["accessConfig"], "authenticationMode": "CONFIG_MAP"},
    }
    with pytest.raises(HandlerError, match="cannot go back from API to CONFIG_MAP"):
        _update(ctx, "aws:eks/cluster:Cluster", cluster_id, to_api, back, outputs)
    with pytest.raises(HandlerError, match="authenticationMode 'OPEN' is not one of"):
        handler_of("aws:eks/cluster:Cluster").validate(
            {**inputs, "accessConfig": {"authenticationMode": "OPEN"}}
        )

    handler_of("aws:eks/cluster:Cluster").delete(ctx, cluster_id, outputs)
    assert cluster_id not in ctx.kept("eks-access-config")
