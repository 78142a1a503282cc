"""Resources in three regions: the stack's, an explicit provider's and their own
``region`` input; moving one to another region replaces it there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1
west = aws.Provider("west", region="us-west-2")
home = aws.ec2.Vpc("home", cidr_block="10.50.0.0/16",
                   opts=pulumi.ResourceOptions(provider=west) if stage == 2 else None)
replica = aws.s3.Bucket("replica", bucket="corpus-replica-west", force_destroy=True,
                        opts=pulumi.ResourceOptions(provider=west))
eu = aws.s3.Bucket("eu", bucket="corpus-eu", region="eu-west-1", force_destroy=True,
                   tags={"stage": str(stage)})
pulumi.export("home", home.id)
pulumi.export("home_region", "us-west-2" if stage == 2 else "us-east-1")
pulumi.export("replica_region", replica.region)
pulumi.export("eu_region", eu.region)
"""


def check(aws: Callable[..., Any], outputs: dict[str, Any], stage: int) -> None:
    home = outputs["home_region"]
    other = "us-east-1" if home == "us-west-2" else "us-west-2"
    assert [v["VpcId"] for v in aws("ec2", home).describe_vpcs(VpcIds=[outputs["home"]])["Vpcs"]]
    assert not [
        v for v in aws("ec2", other).describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.50.0.0/16"
    ]
    s3 = aws("s3")
    assert s3.get_bucket_location(Bucket="corpus-replica-west")["LocationConstraint"] == "us-west-2"
    assert s3.get_bucket_location(Bucket="corpus-eu")["LocationConstraint"] == "eu-west-1"
    assert (outputs["replica_region"], outputs["eu_region"]) == ("us-west-2", "eu-west-1")
    tags = s3.get_bucket_tagging(Bucket="corpus-eu")["TagSet"]
    assert tags == [{"Key": "stage", "Value": str(stage)}]


def gone(aws: Callable[..., Any], outputs: dict[str, Any]) -> None:
    names = {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}
    assert not names & {"corpus-replica-west", "corpus-eu"}
    for region in ("us-east-1", "us-west-2"):
        vpcs = aws("ec2", region).describe_vpcs()["Vpcs"]
        assert not [v for v in vpcs if v["CidrBlock"] == "10.50.0.0/16"]
