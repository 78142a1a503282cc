"""pilot: the foundation network, the EKS control plane, a first GPU node group and a bucket."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from common import environment, load_config, phase_tags, service_role_policy
from config import PilotConfig
from nodes import gpu_launch_template, gpu_node_group, node_role
from placement import Offerings, placed_subnets, placed_zones
from storage import private_bucket

_ANYWHERE = "0.0.0.0/0"


class _Network:
    """The VPC with a public and a private subnet per zone, and the routes between them."""

    def __init__(self, env: str, cfg: PilotConfig, tags: dict[str, str]) -> None:
        zones = cfg.availability_zones
        region = zones[0][:-1]
        self.vpc = aws.ec2.Vpc(
            "vpc",
            cidr_block=cfg.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"{env}-ai-platform"},
        )
        self.public = [
            aws.ec2.Subnet(
                f"public-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                tags={**tags, "Name": f"{env}-public-{zone}", "kubernetes.io/role/elb": "1"},
            )
            for zone, cidr in zip(zones, cfg.public_subnet_cidrs, strict=True)
        ]
        self.private = [
            aws.ec2.Subnet(
                f"private-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                tags={
                    **tags,
                    "Name": f"{env}-private-{zone}",
                    "kubernetes.io/role/internal-elb": "1",
                },
            )
            for zone, cidr in zip(zones, cfg.private_subnet_cidrs, strict=True)
        ]

        igw = aws.ec2.InternetGateway(
            "igw", vpc_id=self.vpc.id, tags={**tags, "Name": f"{env}-igw"}
        )
        public_routes = aws.ec2.RouteTable(
            "public-routes", vpc_id=self.vpc.id, tags={**tags, "Name": f"{env}-public"}
        )
        aws.ec2.Route(
            "public-default",
            route_table_id=public_routes.id,
            destination_cidr_block=_ANYWHERE,
            gateway_id=igw.id,
        )
        for zone, subnet in zip(zones, self.public, strict=True):
            aws.ec2.RouteTableAssociation(
                f"public-{zone}", subnet_id=subnet.id, route_table_id=public_routes.id
            )

        # One NAT in the first zone, or one per zone so a zone outage cuts no other off.
        nat_zones = zones if cfg.nat_per_az else zones[:1]
        nats = []
        for zone, subnet in zip(nat_zones, self.public, strict=False):
            eip = aws.ec2.Eip(
                f"nat-{zone}", domain="vpc", tags={**tags, "Name": f"{env}-nat-{zone}"}
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"nat-{zone}",
                    allocation_id=eip.id,
                    subnet_id=subnet.id,
                    tags={**tags, "Name": f"{env}-nat-{zone}"},
                    opts=pulumi.ResourceOptions(depends_on=[igw]),
                )
            )

        self.private_routes = []
        for index, (zone, subnet) in enumerate(zip(zones, self.private, strict=True)):
            table = aws.ec2.RouteTable(
                f"private-routes-{zone}",
                vpc_id=self.vpc.id,
                tags={**tags, "Name": f"{env}-private-{zone}"},
            )
            aws.ec2.Route(
                f"private-default-{zone}",
                route_table_id=table.id,
                destination_cidr_block=_ANYWHERE,
                nat_gateway_id=nats[index if cfg.nat_per_az else 0].id,
            )
            aws.ec2.RouteTableAssociation(
                f"private-{zone}", subnet_id=subnet.id, route_table_id=table.id
            )
            self.private_routes.append(table)
        self.nat_gateways = nats

        # S3 traffic from private subnets stays on the AWS network and skips NAT charges.
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            "s3-endpoint",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[t.id for t in self.private_routes],
            tags={**tags, "Name": f"{env}-s3"},
        )


def program() -> None:
    cfg = load_config("pilot")
    env = environment()
    tags = phase_tags("pilot", cfg)
    net = _Network(env, cfg, tags)
    cluster_name = f"{env}-ai-platform"

    cluster_sg = aws.ec2.SecurityGroup(
        "cluster-sg",
        name=f"{env}-eks-cluster",
        description="EKS API server: HTTPS from inside the VPC only",
        vpc_id=net.vpc.id,
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                description="Kubernetes API from the VPC",
                protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_blocks=[cfg.vpc_cidr],
            )
        ],
        egress=[
            aws.ec2.SecurityGroupEgressArgs(
                description="control plane to nodes",
                protocol="-1",
                from_port=0,
                to_port=0,
                cidr_blocks=[cfg.vpc_cidr],
            )
        ],
        tags={**tags, "Name": f"{env}-eks-cluster"},
    )
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
        name=cluster_name,
        role_arn=cluster_role.arn,
        version=cfg.kubernetes_version,
        vpc_config=aws.eks.ClusterVpcConfigArgs(
            subnet_ids=[s.id for s in net.private],
            security_group_ids=[cluster_sg.id],
            endpoint_private_access=True,
            endpoint_public_access=cfg.public_endpoint,
        ),
        access_config=aws.eks.ClusterAccessConfigArgs(
            authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True
        ),
        enabled_cluster_log_types=["api", "audit", "authenticator"],
        tags=tags,
        opts=pulumi.ResourceOptions(depends_on=[cluster_policy]),
    )

    # The pilot pool goes only into zones that offer all of its instance types.
    offerings = Offerings(cfg.pilot_pool.instance_types)
    pool_subnets = placed_subnets(
        "pilot_pool",
        cfg.pilot_pool,
        offerings,
        [s.id for s in net.private],
        list(cfg.availability_zones),
    )
    role, attachments = node_role(tags)
    template = gpu_launch_template(
        "gpu-pilot", template_name=f"{env}-gpu-pilot", pool=cfg.pilot_pool, tags=tags
    )
    pilot_pool = gpu_node_group(
        "gpu-pilot",
        role="pilot",
        pool=cfg.pilot_pool,
        cluster_name=cluster.name,
        node_role_arn=role.arn,
        subnet_ids=pool_subnets,
        launch_template=template,
        tags=tags,
        depends_on=attachments,
    )

    artifacts = private_bucket(
        "artifacts", bucket=f"phasegate-{env.replace('_', '-')}-pilot-artifacts", tags=tags
    )

    pulumi.export("vpc_id", net.vpc.id)
    pulumi.export("vpc_cidr", net.vpc.cidr_block)
    pulumi.export("public_subnet_ids", [s.id for s in net.public])
    pulumi.export("private_subnet_ids", [s.id for s in net.private])
    # The zone of each private subnet, in the same order: compute places its pools by them.
    pulumi.export("private_subnet_zones", list(cfg.availability_zones))
    pulumi.export("private_route_table_ids", [t.id for t in net.private_routes])
    pulumi.export("nat_gateway_ids", [n.id for n in net.nat_gateways])
    pulumi.export("s3_endpoint_id", net.s3_endpoint.id)
    pulumi.export("cluster_name", cluster.name)
    pulumi.export("cluster_endpoint", cluster.endpoint)
    pulumi.export("cluster_ca", cluster.certificate_authority.apply(lambda ca: ca and ca.data))
    pulumi.export("cluster_security_group_id", cluster_sg.id)
    pulumi.export(
        "eks_security_group_id",
        cluster.vpc_config.apply(lambda vpc: vpc and vpc.cluster_security_group_id),
    )
    pulumi.export("node_role_arn", role.arn)
    pulumi.export("pilot_node_group", pilot_pool.node_group_name)
    pulumi.export("pilot_launch_template", template.name)
    pulumi.export(
        "pilot_pool_zones", placed_zones(cfg.pilot_pool, offerings, list(cfg.availability_zones))
    )
    pulumi.export("artifacts_bucket", artifacts.bucket)
