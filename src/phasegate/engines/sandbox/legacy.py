"""The legacy estate the sandbox starts with: what a migration moves away from.

A legacy VPC, a legacy data bucket with nightly batch exports in it, and a DNS zone with
the legacy application's record. Stack configs name these the way they would name real
legacy infrastructure; the data layer and the cutover act on them.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3

__all__ = ["LEGACY_OBJECTS", "LEGACY_ZONE", "create_estate", "legacy_bucket_name"]

LEGACY_ZONE = "corp.example.com"
LEGACY_APP_HOST = f"legacy.{LEGACY_ZONE}"
LEGACY_OBJECTS = 120


def legacy_bucket_name(environment: str) -> str:
    return f"phasegate-legacy-{environment.replace('_', '-')}"


def _export(day: int, part: int) -> bytes:
    """A small, deterministic CSV export: the same bytes in every sandbox."""
    rows = ["customer_id,event,amount_cents"]
    for i in range(20):
        seed = hashlib.sha256(f"{day}/{part}/{i}".encode()).hexdigest()
        rows.append(f"{int(seed[:6], 16)},{('view', 'cart', 'order')[i % 3]},{int(seed[6:10], 16)}")
    return ("\n".join(rows) + "\n").encode()


def create_estate(session: boto3.Session, environment: str, region: str) -> dict[str, Any]:
    """Create the estate in the emulated cloud; returns its inventory (names and ids)."""
    ec2 = session.client("ec2", region_name=region)
    vpc = ec2.create_vpc(
        CidrBlock="172.16.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "legacy"}]}],
    )["Vpc"]["VpcId"]

    s3 = session.client("s3", region_name=region)
    bucket = legacy_bucket_name(environment)
    args: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**args)
    total = 0
    for n in range(LEGACY_OBJECTS):
        day, part = divmod(n, 10)
        body = _export(day, part)
        total += len(body)
        s3.put_object(
            Bucket=bucket, Key=f"exports/2026-10-{day + 1:02d}/part-{part:03d}.csv", Body=body
        )

    r53 = session.client("route53", region_name=region)
    zone = r53.create_hosted_zone(Name=LEGACY_ZONE, CallerReference=f"legacy-{environment}")
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": LEGACY_APP_HOST + ".",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "172.16.10.10"}],
                    },
                }
            ]
        },
    )
    return {
        "vpc_id": vpc,
        "bucket": bucket,
        "objects": LEGACY_OBJECTS,
        "bytes": total,
        "zones": {LEGACY_ZONE: zone_id},
        "app_host": LEGACY_APP_HOST,
    }
