"""A metric alarm on a load balancer, and a weighted DNS record in the legacy zone
(found with ``route53.get_zone``, on the plan before the first apply too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAIN = """
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1
zone = aws.route53.get_zone(name="corp.example.com")
vpc = aws.ec2.Vpc("edge", cidr_block="10.70.0.0/16")
subnets = [
    aws.ec2.Subnet(f"edge-{zone_}", vpc_id=vpc.id, availability_zone=f"us-east-1{zone_}",
                   cidr_block=f"10.70.{i}.0/24")
    for i, zone_ in enumerate("ab")
]
lb = aws.lb.LoadBalancer("edge", internal=True, load_balancer_type="application",
                         subnets=[s.id for s in subnets], tags={"stage": str(stage)})
aws.cloudwatch.MetricAlarm("errors", name="corpus-edge-5xx", namespace="AWS/ApplicationELB",
    metric_name="HTTPCode_ELB_5XX_Count", statistic="Sum", period=60,
    evaluation_periods=3 if stage == 1 else 5, threshold=10,
    comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching",
    dimensions={"LoadBalancer": lb.arn_suffix})
aws.route53.Record("app", zone_id=zone.zone_id, name="app.corp.example.com", type="CNAME",
    ttl=60 if stage == 1 else 300, set_identifier="new", records=[lb.dns_name],
    weighted_routing_policies=[{"weight": 10 if stage == 1 else 50}])
pulumi.export("zone", zone.zone_id)
pulumi.export("lb_dns", lb.dns_name)
pulumi.export("lb_arn", lb.arn)
"""


def _record(aws: Callable[..., Any], zone: str) -> list[dict[str, Any]]:
    sets = aws("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return [r for r in sets if r["Name"] == "app.corp.example.com."]


def check(aws: Callable[..., Any], outputs: dict[str, Any], stage: int) -> None:
    (lb,) = aws("elbv2").describe_load_balancers(LoadBalancerArns=[outputs["lb_arn"]])[
        "LoadBalancers"
    ]
    assert (lb["Scheme"], lb["Type"]) == ("internal", "application")
    (alarm,) = aws("cloudwatch").describe_alarms(AlarmNames=["corpus-edge-5xx"])["MetricAlarms"]
    assert alarm["EvaluationPeriods"] == (3 if stage == 1 else 5)
    assert (alarm["Threshold"], alarm["TreatMissingData"]) == (10.0, "notBreaching")
    assert alarm["Dimensions"][0]["Name"] == "LoadBalancer"
    (record,) = _record(aws, outputs["zone"])
    assert record["Type"] == "CNAME" and record["SetIdentifier"] == "new"
    assert record["TTL"] == (60 if stage == 1 else 300)
    assert record["Weight"] == (10 if stage == 1 else 50)
    assert record["ResourceRecords"] == [{"Value": outputs["lb_dns"]}]


def gone(aws: Callable[..., Any], outputs: dict[str, Any]) -> None:
    assert not _record(aws, outputs["zone"])
    assert not aws("cloudwatch").describe_alarms(AlarmNames=["corpus-edge-5xx"])["MetricAlarms"]
    lbs = aws("elbv2").describe_load_balancers()["LoadBalancers"]
    assert outputs["lb_arn"] not in {lb["LoadBalancerArn"] for lb in lbs}
