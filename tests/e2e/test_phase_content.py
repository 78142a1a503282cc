"""What the four phases provision, as plain boto3 sees it through `migrate sandbox serve`:
the lake's guarded buckets, both GPU pools and their launch templates, the S3 gateway
endpoint and the weighted records, each as the sandbox stack configs say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from _projects import copy_project

LAKE = ("raw", "curated", "features", "models", "checkpoints")


def _outputs(project: Path, phase: str) -> dict[str, Any]:
    state = yaml.safe_load((project / "state" / "sandbox" / f"{phase}.yaml").read_text())
    outputs: dict[str, Any] = state["outputs"]
    return outputs


@pytest.fixture(scope="module")
def applied(applied_template: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the applied project for this module, whose tests only read it: serving
    it is the slow part, so it is served once (``cloud``) and looked at through boto3."""
    return copy_project(applied_template.path, tmp_path_factory.mktemp("content") / "project")


@pytest.fixture(scope="module")
def cloud(cli: Any, applied: Path) -> Any:
    """The applied sandbox served on loopback for this module's tests."""
    with cli.serve(applied) as served:
        yield served.url


def test_lake_buckets_are_kms_encrypted_versioned_private_with_lifecycle_tiers(
    applied: Path, cloud: str, aws: Any, config: Any
) -> None:
    data = config(applied, "sandbox-data_layer")
    key_arn = _outputs(applied, "data_layer")["lake_key_arn"]
    s3, kms = aws("s3", cloud), aws("kms", cloud)
    assert kms.get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"] is True
    for name in LAKE:
        bucket = f"phasegate-sandbox-lake-{name}"
        [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        default = rule["ApplyServerSideEncryptionByDefault"]
        assert (default["SSEAlgorithm"], default["KMSMasterKeyID"]) == ("aws:kms", key_arn)
        assert rule["BucketKeyEnabled"] is True
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
            True,
        )
        [tiers] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert tiers["Status"] == "Enabled"
        assert [(t["Days"], t["StorageClass"]) for t in tiers["Transitions"]] == [
            (data["ia_after_days"], "STANDARD_IA"),
            (data["glacier_ir_after_days"], "GLACIER_IR"),
            (data["archive_after_days"], data["archive_storage_class"]),
        ]
        assert (
            tiers["NoncurrentVersionExpiration"]["NoncurrentDays"]
            == (data["noncurrent_expiry_days"])
        )
        assert '"aws:SecureTransport":"false"' in s3.get_bucket_policy(Bucket=bucket)[
            "Policy"
        ].replace(" ", "")


@pytest.mark.parametrize(
    ("group", "pool"), [("gpu-inference", "inference"), ("gpu-training", "training")]
)
def test_gpu_node_groups_run_as_configured_on_imdsv2_launch_templates(
    applied: Path, cloud: str, aws: Any, config: Any, group: str, pool: str
) -> None:
    wanted = config(applied, "sandbox-compute")[f"{pool}_pool"]
    types = wanted.get("instance_types") or [wanted["instance_type"]]
    eks, ec2 = aws("eks", cloud), aws("ec2", cloud)
    found = eks.describe_nodegroup(clusterName="sandbox-ai-platform", nodegroupName=group)[
        "nodegroup"
    ]
    assert found["instanceTypes"] == types
    assert found["capacityType"] == wanted["capacity_type"]
    assert found["scalingConfig"] == {
        "minSize": wanted["min_size"],
        "maxSize": wanted["max_size"],
        "desiredSize": wanted["desired_size"],
    }
    assert found["labels"]["phasegate.io/pool"] == pool
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in found["taints"]

    template = found["launchTemplate"]
    [version] = ec2.describe_launch_template_versions(
        LaunchTemplateId=template["id"], Versions=[str(template["version"])]
    )["LaunchTemplateVersions"]
    data = version["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert all(m["Ebs"]["Encrypted"] for m in data["BlockDeviceMappings"])


def test_the_private_route_tables_reach_s3_through_a_gateway_endpoint(
    applied: Path, cloud: str, aws: Any
) -> None:
    pilot = _outputs(applied, "pilot")
    ec2 = aws("ec2", cloud)
    [endpoint] = ec2.describe_vpc_endpoints(
        Filters=[{"Name": "vpc-id", "Values": [pilot["vpc_id"]]}]
    )["VpcEndpoints"]
    assert endpoint["ServiceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert sorted(endpoint["RouteTableIds"]) == sorted(pilot["private_route_table_ids"])


def test_weighted_records_carry_the_configured_weights_and_alarms_watch_them(
    applied: Path, cloud: str, aws: Any, config: Any
) -> None:
    cutover = config(applied, "sandbox-cutover")
    route53, cloudwatch = aws("route53", cloud), aws("cloudwatch", cloud)
    [zone] = [
        z for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == f"{cutover['zone']}."
    ]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    weights = {
        r["SetIdentifier"]: r["Weight"]
        for r in records
        if r["Name"] == f"{cutover['app_host']}.{cutover['zone']}."
    }
    first = cutover["steps"][0]  # one apply: the cutover is at its first step
    assert weights == {"legacy": first["legacy"], "platform": first["platform"]}
    alarms = _outputs(applied, "cutover")["alarm_names"]
    found = cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in found) == sorted(alarms) and len(alarms) == 2


def test_the_cluster_logs_what_the_pilot_names_and_the_front_door_has_its_group(
    applied: Path, cloud: str, aws: Any
) -> None:
    """Both were set by the programs and dropped by the sandbox."""
    pilot, compute = _outputs(applied, "pilot"), _outputs(applied, "compute")
    cluster = aws("eks", cloud).describe_cluster(name=pilot["cluster_name"])["cluster"]
    logged = [g for g in cluster["logging"]["clusterLogging"] if g["enabled"]]
    assert [sorted(g["types"]) for g in logged] == [["api", "audit", "authenticator"]]
    elb = aws("elbv2", cloud)
    (front_door,) = [
        lb
        for lb in elb.describe_load_balancers()["LoadBalancers"]
        if lb["DNSName"] == compute["inference_dns"]
    ]
    assert front_door["SecurityGroups"] == [compute["inference_lb_security_group_id"]]
