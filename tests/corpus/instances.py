"""EC2 instances: one launched from the newest Amazon Linux AMI into a VPC's subnet
behind a security group, resized in place and then moved to a fixed address (a new
instance)."""

from __future__ import annotations

import base64
from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1

image = aws.ec2.get_ami(
    owners=["amazon"],
    most_recent=True,
    filters=[
        {"name": "name", "values": ["al2023-ami-2023.*"]},
        {"name": "architecture", "values": ["x86_64"]},
    ],
)

network = aws.ec2.Vpc("apps", cidr_block="10.80.0.0/16", tags={"Name": "apps"})
subnet = aws.ec2.Subnet(
    "apps-a", vpc_id=network.id, cidr_block="10.80.1.0/24", availability_zone="us-east-1a"
)
web = aws.ec2.SecurityGroup(
    "web",
    vpc_id=network.id,
    description="web servers",
    ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/8"]}],
    egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
)

server = aws.ec2.Instance(
    "server",
    ami=image.id,
    instance_type="t3.micro" if stage == 1 else "t3.small",
    subnet_id=subnet.id,
    vpc_security_group_ids=[web.id],
    user_data="#!/bin/sh\\necho stage 1\\n" if stage == 1 else "#!/bin/sh\\necho stage 2\\n",
    root_block_device={"volume_size": 10 if stage == 1 else 20, "volume_type": "gp3"},
    metadata_options={
        "http_tokens": "required",
        "http_put_response_hop_limit": 1 if stage == 1 else 2,
    },
    private_ip=None if stage == 1 else "10.80.1.50",
    tags={"Name": "server", "stage": str(stage)},
)

pulumi.export("ami", image.id)
pulumi.export("vpc_id", network.id)
pulumi.export("subnet_id", subnet.id)
pulumi.export("group_id", web.id)
pulumi.export("instance_id", server.id)
"""


def _instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]
    return found


def check(aws: Any, outputs: dict[str, Any], stage: int) -> None:
    """After the apply of ``stage``: boto3 finds exactly the declared properties."""
    ec2 = aws("ec2")
    instance = _instance(ec2, outputs["instance_id"])
    assert instance["State"]["Name"] == "running"
    assert instance["ImageId"] == outputs["ami"]
    image = ec2.describe_images(ImageIds=[outputs["ami"]])["Images"][0]
    assert image["Name"].startswith("al2023-ami-2023.") and image["Architecture"] == "x86_64"
    assert instance["InstanceType"] == ("t3.micro" if stage == 1 else "t3.small")
    assert instance["SubnetId"] == outputs["subnet_id"]
    assert instance["VpcId"] == outputs["vpc_id"]
    (primary,) = [i for i in instance["NetworkInterfaces"] if i["Attachment"]["DeviceIndex"] == 0]
    assert [g["GroupId"] for g in primary["Groups"]] == [outputs["group_id"]]
    assert {t["Key"]: t["Value"] for t in instance["Tags"]} == {
        "Name": "server",
        "stage": str(stage),
    }
    user_data = ec2.describe_instance_attribute(
        InstanceId=outputs["instance_id"], Attribute="userData"
    )["UserData"]["Value"]
    assert base64.b64decode(user_data).decode() == f"#!/bin/sh\necho stage {stage}\n"
    (root,) = [
        m for m in instance["BlockDeviceMappings"] if m["DeviceName"] == instance["RootDeviceName"]
    ]
    volume = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
    assert (volume["Size"], volume["VolumeType"]) == (10 if stage == 1 else 20, "gp3")
    options = instance["MetadataOptions"]
    assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", stage)
    if stage == 2:
        assert instance["PrivateIpAddress"] == "10.80.1.50"
        # The fixed address made a new instance; the first one is gone.
        running = ec2.describe_instances(
            Filters=[
                {"Name": "subnet-id", "Values": [outputs["subnet_id"]]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )["Reservations"]
        assert [i["InstanceId"] for r in running for i in r["Instances"]] == [
            outputs["instance_id"]
        ]
    vpc = ec2.describe_vpcs(VpcIds=[outputs["vpc_id"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.80.0.0/16"


def gone(aws: Any, outputs: dict[str, Any]) -> None:
    """After destroy: nothing the program declared is left (the outputs of stage 2)."""
    ec2 = aws("ec2")
    assert _instance(ec2, outputs["instance_id"])["State"]["Name"] == "terminated"
    assert not ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [outputs["vpc_id"]]}])[
        "Vpcs"
    ]
    subnets = ec2.describe_subnets(
        Filters=[{"Name": "subnet-id", "Values": [outputs["subnet_id"]]}]
    )
    assert not subnets["Subnets"]
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "group-id", "Values": [outputs["group_id"]]}]
    )
    assert not groups["SecurityGroups"]
