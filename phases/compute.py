"""compute: production GPU capacity on the pilot's cluster, and its front door."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from common import environment, phase_tags, service_role_policy, upstream

_NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)


def program() -> None:
    config = pulumi.Config("phasegate")
    env = environment()
    tags = phase_tags("compute")
    pilot = upstream("pilot")
    subnets = pilot.get_output("private_subnet_ids")

    node_role = aws.iam.Role("node-role", assume_role_policy=service_role_policy("ec2"), tags=tags)
    attachments = [
        aws.iam.RolePolicyAttachment(
            f"node-{policy}", role=node_role.name, policy_arn=f"arn:aws:iam::aws:policy/{policy}"
        )
        for policy in _NODE_POLICIES
    ]

    pool = config.require_object("inference_pool")
    inference = aws.eks.NodeGroup(
        "gpu-inference",
        cluster_name=pilot.get_output("cluster_name"),
        node_group_name="gpu-inference",
        node_role_arn=node_role.arn,
        subnet_ids=subnets,
        instance_types=[pool["instance_type"]],
        capacity_type=pool.get("capacity_type", "SPOT"),
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            desired_size=pool["desired_size"], min_size=pool["min_size"], max_size=pool["max_size"]
        ),
        labels={"phasegate.io/pool": "inference"},
        taints=[
            aws.eks.NodeGroupTaintArgs(key="nvidia.com/gpu", value="true", effect="NO_SCHEDULE")
        ],
        tags=tags,
        opts=pulumi.ResourceOptions(depends_on=attachments),
    )

    front_door = aws.lb.LoadBalancer(
        "inference",
        name=f"{env.replace('_', '-')}-inference",
        internal=True,
        load_balancer_type="network",
        subnets=subnets,
        tags=tags,
    )

    pulumi.export("inference_node_group", inference.node_group_name)
    pulumi.export("inference_dns", front_door.dns_name)
