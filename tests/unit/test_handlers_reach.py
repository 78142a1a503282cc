"""Inputs a handler declares it emulates really reach the emulated cloud.

Each test sets one such input to a value other than its default, then reads the resource
back through boto3 and finds the value there (and, where the input changes in place, finds
the new value after an update). Inputs that are a behaviour rather than a stored value
(revoking a group's rules before it goes, a flag passed on to a call) are shown by what
the emulated cloud sees when the handler acts.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.handlers import CloudContext, Handler, handler_for

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
ROLE = f"arn:aws:iam::{ACCOUNT}:role/eks"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}"


# --- the emulated cloud -----------------------------------------------------------------


@pytest.fixture
def ctx(emu: Emulator) -> CloudContext:
    """The module's cloud (each test makes its own resources) and an empty sandbox store."""
    return CloudContext(session=emu.session(), region=REGION, account_id=ACCOUNT, store={})


@pytest.fixture
def ec2(ctx: CloudContext) -> Any:
    return ctx.client("ec2")


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


def _handler(token: str) -> Handler:
    handler = handler_for(token)
    assert handler is not None, token
    return handler


def _create(ctx: CloudContext, token: str, inputs: dict[str, Any], name: str = "res") -> tuple:
    """As the engine does it: validate, then create; none of the inputs is refused."""
    handler = _handler(token)
    assert handler.unemulated(inputs) == []
    handler.validate(inputs)
    return handler.create(ctx, name, inputs)


def _update(
    ctx: CloudContext, token: str, id_: str, old: dict, new: dict, outputs: dict
) -> dict[str, Any]:
    handler = _handler(token)
    assert handler.unemulated(new) == []
    handler.validate(new)
    return handler.update(ctx, id_, old, new, outputs)


class _Calls:
    """The requests a client sends the emulated cloud, by operation, with their arguments."""

    def __init__(self, client: Any) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("provide-client-params", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.seen.append((model.name, dict(params)))

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.seen if name == operation]


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
    name, outputs = _create(ctx, ALARM, inputs, "latency")
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
    template_id, _ = _create(ctx, LAUNCH_TEMPLATE, inputs, f"lt-{key}")
    assert _template_data(ec2, template_id)[api_key] == api_value


def test_launch_template_data_changes_in_a_new_version(ctx: CloudContext, ec2: Any) -> None:
    inputs = {"cpuOptions": {"coreCount": 2, "threadsPerCore": 1}, "disableApiStop": True}
    template_id, outputs = _create(ctx, LAUNCH_TEMPLATE, inputs, "lt-versions")
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
    template_id, outputs = _create(ctx, LAUNCH_TEMPLATE, {"namePrefix": "gpu-nodes-"}, "lt")
    template = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
    assert template["LaunchTemplateName"].startswith("gpu-nodes-")
    assert len(template["LaunchTemplateName"]) == len("gpu-nodes-") + 26
    assert outputs["name"] == template["LaunchTemplateName"]
