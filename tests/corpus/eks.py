"""An EKS cluster and a GPU node group from a launch template, with the roles they run
as: the group scaled and relabelled in place, its instance types changed (replaced)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAIN = """
import json
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1


def role(name, service, policies):
    made = aws.iam.Role(name, assume_role_policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"Service": service}}],
    }))
    for i, arn in enumerate(policies):
        aws.iam.RolePolicyAttachment(f"{name}-{i}", role=made.name, policy_arn=arn)
    return made


cluster_role = role("cluster", "eks.amazonaws.com",
                    ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"])
node_role = role("nodes", "ec2.amazonaws.com", [
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
])
vpc = aws.ec2.Vpc("eks", cidr_block="10.60.0.0/16")
subnets = [
    aws.ec2.Subnet(f"eks-{zone}", vpc_id=vpc.id, availability_zone=f"us-east-1{zone}",
                   cidr_block=f"10.60.{i}.0/24")
    for i, zone in enumerate("ab")
]
cluster = aws.eks.Cluster("gpu", role_arn=cluster_role.arn, version="1.31",
    vpc_config={"subnet_ids": [s.id for s in subnets], "endpoint_private_access": True,
                "endpoint_public_access": False})
template = aws.ec2.LaunchTemplate("gpu", metadata_options={
    "http_tokens": "required", "http_endpoint": "enabled", "http_put_response_hop_limit": 2})
group = aws.eks.NodeGroup("inference", cluster_name=cluster.name, node_role_arn=node_role.arn,
    subnet_ids=[s.id for s in subnets],
    instance_types=["g5.xlarge"] if stage == 1 else ["g6.xlarge"],
    capacity_type="ON_DEMAND",
    scaling_config={"desired_size": 1 if stage == 1 else 2, "min_size": 0, "max_size": 4},
    labels={"pool": "inference", "stage": str(stage)},
    taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
    launch_template={"id": template.id, "version": template.latest_version.apply(str)})
pulumi.export("cluster", cluster.name)
pulumi.export("group", group.node_group_name)
pulumi.export("template", template.id)
"""


def check(aws: Callable[..., Any], outputs: dict[str, Any], stage: int) -> None:
    eks = aws("eks")
    cluster = eks.describe_cluster(name=outputs["cluster"])["cluster"]
    assert cluster["version"] == "1.31"
    access = cluster["resourcesVpcConfig"]
    assert (access["endpointPrivateAccess"], access["endpointPublicAccess"]) == (True, False)
    assert len(access["subnetIds"]) == 2
    group = eks.describe_nodegroup(clusterName=outputs["cluster"], nodegroupName=outputs["group"])[
        "nodegroup"
    ]
    assert group["instanceTypes"] == (["g5.xlarge"] if stage == 1 else ["g6.xlarge"])
    assert group["scalingConfig"] == {"desiredSize": stage, "minSize": 0, "maxSize": 4}
    assert group["labels"] == {"pool": "inference", "stage": str(stage)}
    assert group["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert group["capacityType"] == "ON_DEMAND"
    assert group["launchTemplate"]["id"] == outputs["template"]
    (version,) = aws("ec2").describe_launch_template_versions(LaunchTemplateId=outputs["template"])[
        "LaunchTemplateVersions"
    ]
    assert version["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"
    attached = aws("iam").list_attached_role_policies(RoleName=group["nodeRole"].rsplit("/", 1)[1])
    assert sorted(p["PolicyName"] for p in attached["AttachedPolicies"]) == [
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKSWorkerNodePolicy",
    ]


def gone(aws: Callable[..., Any], outputs: dict[str, Any]) -> None:
    assert outputs["cluster"] not in aws("eks").list_clusters()["clusters"]
    templates = aws("ec2").describe_launch_templates()["LaunchTemplates"]
    assert outputs["template"] not in {t["LaunchTemplateId"] for t in templates}
