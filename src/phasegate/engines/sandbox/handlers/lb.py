"""Load balancers (ELBv2): the new platform's front door."""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError

__all__ = ["HANDLERS"]


class LoadBalancer(Handler):
    type = "aws:lb/loadBalancer:LoadBalancer"
    emulates = frozenset(
        {"internal", "loadBalancerType", "name", "securityGroups", "subnets", "tags"}
    )
    replace_on = frozenset({"name", "internal", "loadBalancerType"})
    computed = ("id", "arn", "name", "dnsName", "zoneId", "vpcId", "arnSuffix")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        kind = inputs.get("loadBalancerType", "application")
        if kind not in ("application", "network", "gateway"):
            raise HandlerError(f"loadBalancerType '{kind}' is not application, network or gateway")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        lb_name = self.physical_name(name, inputs, max_len=32)
        args: dict[str, Any] = {
            "Name": lb_name,
            "Subnets": list(inputs.get("subnets", [])),
            "Scheme": "internal" if inputs.get("internal") else "internet-facing",
            "Type": inputs.get("loadBalancerType", "application"),
            "SecurityGroups": list(inputs.get("securityGroups") or []),
        }
        if inputs.get("tags"):
            # ELBv2 takes no empty tag list: a load balancer without tags leaves it out.
            args["Tags"] = self.tag_list(inputs["tags"])
        try:
            lb = ctx.client("elbv2").create_load_balancer(**args)["LoadBalancers"][0]
        except Exception as exc:
            raise HandlerError(f"cannot create load balancer {lb_name}: {exc}") from None
        return lb["LoadBalancerArn"], self._outputs(inputs, lb)

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        elb = ctx.client("elbv2")
        if old.get("subnets") != new.get("subnets"):
            elb.set_subnets(LoadBalancerArn=id_, Subnets=list(new.get("subnets", [])))
        if old.get("securityGroups") != new.get("securityGroups"):
            groups = list(new.get("securityGroups") or [])
            elb.set_security_groups(LoadBalancerArn=id_, SecurityGroups=groups)
        if old.get("tags") != new.get("tags"):
            if old.get("tags"):
                elb.remove_tags(ResourceArns=[id_], TagKeys=list(old["tags"]))
            if new.get("tags"):
                elb.add_tags(ResourceArns=[id_], Tags=self.tag_list(new["tags"]))
        lb = elb.describe_load_balancers(LoadBalancerArns=[id_])["LoadBalancers"][0]
        return self._outputs(new, lb)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.client("elbv2").delete_load_balancer(LoadBalancerArn=id_)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        elb = ctx.client("elbv2")
        try:
            return bool(elb.describe_load_balancers(LoadBalancerArns=[id_])["LoadBalancers"])
        except elb.exceptions.LoadBalancerNotFoundException:
            return False

    @staticmethod
    def _outputs(inputs: dict[str, Any], lb: dict[str, Any]) -> dict[str, Any]:
        arn = lb["LoadBalancerArn"]
        return {
            **inputs,
            "id": arn,
            "arn": arn,
            "arnSuffix": arn.split(":loadbalancer/", 1)[-1],
            "name": lb["LoadBalancerName"],
            "dnsName": lb["DNSName"],
            "zoneId": lb.get("CanonicalHostedZoneId", ""),
            "vpcId": lb.get("VpcId", ""),
        }


HANDLERS: list[Handler] = [LoadBalancer()]
