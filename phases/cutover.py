"""cutover: weighted DNS moving the application's traffic from legacy to the new platform.

Two CNAME records share the application's name; Route53 answers each in proportion to
its weight. One 5xx-rate alarm per target lets the cutover checks stop a bad step.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from common import environment, load_config, phase_tags, upstream
from config import step_weights


def program() -> None:
    cfg = load_config("cutover")
    env = environment()
    tags = phase_tags("cutover", cfg)
    compute = upstream("compute")
    host = f"{cfg.app_host}.{cfg.zone}"
    zone = aws.route53.get_zone_output(name=cfg.zone)

    targets: dict[str, pulumi.Input[str]] = {
        "legacy": cfg.legacy_target,
        "platform": compute.get_output("inference_dns"),
    }
    # phasegate sets the step it is applying; -1 is the baseline a rollback returns to.
    step = pulumi.Config("phasegate").get_int("step")
    weights = step_weights(cfg, 0 if step is None else step).model_dump()
    alarms = {}
    for target, records in targets.items():
        aws.route53.Record(
            f"app-{target}",
            zone_id=zone.zone_id,
            name=host,
            type="CNAME",
            ttl=cfg.ttl,
            records=[records],
            set_identifier=target,
            weighted_routing_policies=[
                aws.route53.RecordWeightedRoutingPolicyArgs(weight=weights[target])
            ],
        )
        alarms[target] = aws.cloudwatch.MetricAlarm(
            f"app-{target}-5xx",
            name=f"{env}-app-{target}-5xx",
            alarm_description=(
                f"{host} via {target}: more than {cfg.alarm_threshold_percent}% of requests "
                f"answered 5xx in {cfg.alarm_evaluation_periods} periods"
            ),
            namespace=cfg.metric_namespace,
            metric_name="5xxRate",
            dimensions={"target": target, "environment": env},
            statistic="Average",
            unit="Percent",
            period=cfg.alarm_period_seconds,
            evaluation_periods=cfg.alarm_evaluation_periods,
            threshold=cfg.alarm_threshold_percent,
            comparison_operator="GreaterThanThreshold",
            # No traffic on a target (weight 0) is not a failure of it.
            treat_missing_data="notBreaching",
            tags=tags,
        )

    pulumi.export("app_host", host)
    pulumi.export("weights", weights)
    pulumi.export("alarm_names", [alarm.name for alarm in alarms.values()])
    pulumi.export("alarms", {target: alarm.name for target, alarm in alarms.items()})
