"""Route53 records, weighted ones in particular (the cutover's traffic split)."""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import CloudContext, Handler, HandlerError

__all__ = ["HANDLERS"]


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


class Record(Handler):
    type = "aws:route53/record:Record"
    emulates = frozenset(
        {
            "name",
            "records",
            "setIdentifier",
            "ttl",
            "type",
            "weightedRoutingPolicies.weight",
            "zoneId",
        }
    )
    replace_on = frozenset({"zoneId", "name", "type", "setIdentifier"})
    computed = ("id", "fqdn")
    delete_before_replace = True

    def validate(self, inputs: dict[str, Any]) -> None:
        for policy in inputs.get("weightedRoutingPolicies") or []:
            weight = policy.get("weight") if isinstance(policy, dict) else None
            if isinstance(weight, int) and not 0 <= weight <= 255:
                raise HandlerError(f"weight {weight} is outside 0-255")
        if inputs.get("weightedRoutingPolicies") and not inputs.get("setIdentifier"):
            raise HandlerError("a weighted record needs a setIdentifier")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        self._change(ctx, "CREATE", inputs)
        return self._id(inputs), {
            **inputs,
            "id": self._id(inputs),
            "fqdn": inputs["name"].rstrip("."),
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        self._change(ctx, "UPSERT", new)
        return {**outputs, **new}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        self._change(ctx, "DELETE", outputs)

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        return self._find(ctx, outputs) is not None

    @staticmethod
    def _id(inputs: dict[str, Any]) -> str:
        parts = [inputs["zoneId"], inputs["name"], inputs["type"]]
        if inputs.get("setIdentifier"):
            parts.append(inputs["setIdentifier"])
        return "_".join(parts)

    @staticmethod
    def _record_set(inputs: dict[str, Any]) -> dict[str, Any]:
        rrset: dict[str, Any] = {
            "Name": _fqdn(inputs["name"]),
            "Type": inputs["type"],
            "TTL": int(inputs.get("ttl", 300)),
            "ResourceRecords": [{"Value": str(v)} for v in inputs.get("records", [])],
        }
        if inputs.get("setIdentifier"):
            rrset["SetIdentifier"] = inputs["setIdentifier"]
        policies = inputs.get("weightedRoutingPolicies") or []
        if policies:
            rrset["Weight"] = int(policies[0]["weight"])
        return rrset

    def _change(self, ctx: CloudContext, action: str, inputs: dict[str, Any]) -> None:
        try:
            ctx.client("route53").change_resource_record_sets(
                HostedZoneId=inputs["zoneId"],
                ChangeBatch={
                    "Changes": [{"Action": action, "ResourceRecordSet": self._record_set(inputs)}]
                },
            )
        except Exception as exc:
            raise HandlerError(
                f"{action.lower()} of record {inputs['name']} failed: {exc}"
            ) from None

    @staticmethod
    def _find(ctx: CloudContext, inputs: dict[str, Any]) -> dict[str, Any] | None:
        r53 = ctx.client("route53")
        try:
            sets = r53.list_resource_record_sets(HostedZoneId=inputs["zoneId"])[
                "ResourceRecordSets"
            ]
        except r53.exceptions.NoSuchHostedZone:
            return None
        for rrset in sets:
            if (
                rrset["Name"] == _fqdn(inputs["name"])
                and rrset["Type"] == inputs["type"]
                and rrset.get("SetIdentifier") == inputs.get("setIdentifier")
            ):
                found: dict[str, Any] = rrset
                return found
        return None


HANDLERS: list[Handler] = [Record()]
