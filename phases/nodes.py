"""GPU node pools: the node role, a hardened launch template and the managed node group.

Shared by pilot (one small pool) and compute (training and inference pools), so every
GPU node in the platform gets the same IMDSv2 metadata, encrypted root volume, labels
and the `nvidia.com/gpu` taint that keeps non-GPU work off it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from common import service_role_policy
from config import NodePool

__all__ = ["GPU_TAINT", "POOL_LABEL", "gpu_launch_template", "gpu_node_group", "node_role"]

POOL_LABEL = "phasegate.io/pool"
GPU_TAINT = aws.eks.NodeGroupTaintArgs(key="nvidia.com/gpu", value="true", effect="NO_SCHEDULE")
# EKS picks the newest NVIDIA-ready AL2023 image for the cluster's version.
_GPU_AMI = "AL2023_x86_64_NVIDIA"
_ROOT_DEVICE = "/dev/xvda"
_NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)


def node_role(tags: dict[str, str]) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """The IAM role GPU nodes run as, with the policies every EKS node needs."""
    role = aws.iam.Role("node-role", assume_role_policy=service_role_policy("ec2"), tags=tags)
    attachments = [
        aws.iam.RolePolicyAttachment(
            f"node-{policy}", role=role.name, policy_arn=f"arn:aws:iam::aws:policy/{policy}"
        )
        for policy in _NODE_POLICIES
    ]
    return role, attachments


def gpu_launch_template(
    pool_name: str,
    *,
    template_name: str,
    pool: NodePool,
    tags: dict[str, str],
    placement_group: aws.ec2.PlacementGroup | None = None,
    efa_security_group_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
) -> aws.ec2.LaunchTemplate:
    """Launch template of one pool: IMDSv2 only, encrypted gp3 root, tagged instances.

    With ``efa_security_group_ids`` the primary interface is an EFA device (the pool's
    types must support it); with ``placement_group`` nodes launch into it.
    """
    network_interfaces = None
    if efa_security_group_ids is not None:
        network_interfaces = [
            aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0,
                network_card_index=0,
                interface_type="efa",
                delete_on_termination="true",
                # With interfaces in the template, EKS takes security groups from here.
                security_groups=efa_security_group_ids,
            )
        ]
    return aws.ec2.LaunchTemplate(
        f"{pool_name}-template",
        name=template_name,
        description=f"GPU nodes of node group {pool_name}",
        update_default_version=True,
        # IMDSv2 only; hop limit 2 so pods (one hop further) still reach the node's role.
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            http_put_response_hop_limit=2,
        ),
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=_ROOT_DEVICE,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_type="gp3",
                    volume_size=pool.disk_size_gib,
                    encrypted="true",
                    delete_on_termination="true",
                ),
            )
        ],
        placement=(
            aws.ec2.LaunchTemplatePlacementArgs(group_name=placement_group.name)
            if placement_group is not None
            else None
        ),
        network_interfaces=network_interfaces,
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags)
            for kind in ("instance", "volume")
        ],
        tags=tags,
    )


def gpu_node_group(
    pool_name: str,
    *,
    role: str,
    pool: NodePool,
    cluster_name: pulumi.Input[str],
    node_role_arn: pulumi.Input[str],
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]],
    launch_template: aws.ec2.LaunchTemplate,
    tags: dict[str, str],
    depends_on: Sequence[pulumi.Resource] = (),
) -> aws.eks.NodeGroup:
    """A managed GPU node group labelled `phasegate.io/pool=<role>` and tainted for GPUs."""
    return aws.eks.NodeGroup(
        pool_name,
        cluster_name=cluster_name,
        node_group_name=pool_name,
        node_role_arn=node_role_arn,
        subnet_ids=subnet_ids,
        ami_type=_GPU_AMI,
        instance_types=list(pool.instance_types),
        capacity_type=pool.capacity_type,
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            desired_size=pool.desired_size, min_size=pool.min_size, max_size=pool.max_size
        ),
        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
            id=launch_template.id,
            version=launch_template.latest_version.apply(str),
        ),
        labels={POOL_LABEL: role},
        taints=[GPU_TAINT],
        tags=tags,
        opts=pulumi.ResourceOptions(depends_on=list(depends_on)),
    )
