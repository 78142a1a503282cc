"""pilot: the foundation network, the EKS control plane and a pilot artifacts bucket."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from common import environment, phase_tags, service_role_policy


def program() -> None:
    config = pulumi.Config("phasegate")
    env = environment()
    tags = phase_tags("pilot")

    vpc = aws.ec2.Vpc(
        "vpc",
        cidr_block=config.require("vpc_cidr"),
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={**tags, "Name": f"{env}-ai-platform"},
    )
    zones: list[str] = config.require_object("availability_zones")
    cidrs: list[str] = config.require_object("private_subnet_cidrs")
    subnets = [
        aws.ec2.Subnet(
            f"private-{zone}",
            vpc_id=vpc.id,
            cidr_block=cidr,
            availability_zone=zone,
            tags={**tags, "Name": f"{env}-private-{zone}", "kubernetes.io/role/internal-elb": "1"},
        )
        for zone, cidr in zip(zones, cidrs, strict=True)
    ]

    cluster_role = aws.iam.Role(
        "cluster-role", assume_role_policy=service_role_policy("eks"), tags=tags
    )
    cluster_policy = aws.iam.RolePolicyAttachment(
        "cluster-policy",
        role=cluster_role.name,
        policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
    )
    cluster = aws.eks.Cluster(
        "cluster",
        name=f"{env}-ai-platform",
        role_arn=cluster_role.arn,
        version=config.get("kubernetes_version") or "1.31",
        vpc_config=aws.eks.ClusterVpcConfigArgs(
            subnet_ids=[s.id for s in subnets],
            endpoint_private_access=True,
            endpoint_public_access=config.get_bool("public_endpoint") or False,
        ),
        tags=tags,
        opts=pulumi.ResourceOptions(depends_on=[cluster_policy]),
    )

    artifacts = aws.s3.Bucket(
        "artifacts", bucket=f"phasegate-{env.replace('_', '-')}-pilot-artifacts", tags=tags
    )

    pulumi.export("vpc_id", vpc.id)
    pulumi.export("private_subnet_ids", [s.id for s in subnets])
    pulumi.export("cluster_name", cluster.name)
    pulumi.export("cluster_endpoint", cluster.endpoint)
    pulumi.export("artifacts_bucket", artifacts.bucket)
