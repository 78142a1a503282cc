"""data_layer: the lake that replaces nightly batch exports from the legacy bucket."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from common import environment, phase_tags, upstream


def program() -> None:
    config = pulumi.Config("phasegate")
    env = environment().replace("_", "-")
    tags = phase_tags("data_layer")
    pilot = upstream("pilot")

    raw = aws.s3.Bucket(
        "lake-raw",
        bucket=f"phasegate-{env}-lake-raw",
        tags={**tags, "phasegate:vpc": pilot.get_output("vpc_id")},
        # Data is never deleted by phasegate, whatever a rollback does.
        opts=pulumi.ResourceOptions(protect=True),
    )

    pulumi.export("raw_bucket", raw.bucket)
    pulumi.export("legacy_bucket", config.require("legacy_bucket"))
