"""cutover: weighted DNS moving the application's traffic from legacy to the new platform."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from common import upstream


def program() -> None:
    config = pulumi.Config("phasegate")
    compute = upstream("compute")
    zone_name = config.require("zone")
    host = f"{config.require('app_host')}.{zone_name}"
    weights: dict[str, int] = config.require_object("weights")
    zone = aws.route53.get_zone_output(name=zone_name)

    targets = {
        "legacy": config.require("legacy_target"),
        "platform": compute.get_output("inference_dns"),
    }
    for target, records in targets.items():
        aws.route53.Record(
            f"app-{target}",
            zone_id=zone.zone_id,
            name=host,
            type="CNAME",
            ttl=60,
            records=[records],
            set_identifier=target,
            weighted_routing_policies=[
                aws.route53.RecordWeightedRoutingPolicyArgs(weight=weights[target])
            ],
        )

    pulumi.export("app_host", host)
    pulumi.export("weights", weights)
