"""EC2 security groups with inline ``ingress`` and ``egress`` rules.

As the provider does, a new group loses the allow-all egress rule AWS gives it: the
group's egress is exactly the rules declared. The emulator takes port ranges, protocols
and CIDRs AWS refuses; those are checked here.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    generated_name,
)
from phasegate.engines.sandbox.handlers.ec2 import _missing, _network, _retag, _tag_spec

__all__ = ["HANDLERS"]

_TEXT = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$")
"""What AWS allows in a VPC security group's name and descriptions."""
_PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1"}
_DEFAULT_DESCRIPTION = "Managed by Pulumi"
_DIRECTIONS = ("ingress", "egress")
_RULE_KEYS = (
    "cidrBlocks",
    "description",
    "fromPort",
    "ipv6CidrBlocks",
    "prefixListIds",
    "protocol",
    "securityGroups",
    "self",
    "toPort",
)
"""What a rule carries into its IpPermissions: every key of the provider's rule."""


def _protocol(value: Any) -> str:
    text = str(value).lower()
    return _PROTOCOL_NUMBERS.get(text, text)


def _check_text(value: Any, what: str) -> None:
    if not isinstance(value, str):
        return
    if len(value) > 255:
        raise HandlerError(f"{what} is longer than 255 characters")
    if not _TEXT.match(value):
        raise HandlerError(
            f"{what} '{value}' has characters AWS refuses: use a-z, A-Z, 0-9, spaces and "
            "._-:/()#,@[]+=&;{}!$*"
        )


def _check_rule(rule: dict[str, Any], what: str) -> None:
    protocol = _protocol(rule.get("protocol", ""))
    known = protocol in ("-1", "tcp", "udp", "icmp", "icmpv6")
    if not known and not (protocol.isdigit() and 0 <= int(protocol) <= 255):
        raise HandlerError(f"{what}: protocol '{rule.get('protocol')}' is not tcp, udp, icmp, ...")
    low, high = rule.get("fromPort"), rule.get("toPort")
    if isinstance(low, int) and isinstance(high, int):
        if protocol == "-1" and (low, high) != (0, 0):
            raise HandlerError(f"{what}: fromPort and toPort must both be 0 for protocol -1 (all)")
        if protocol in ("tcp", "udp") and not 0 <= low <= high <= 65535:
            raise HandlerError(
                f"{what}: ports {low}-{high} are not a range within 0-65535 (fromPort <= toPort)"
            )
        if protocol in ("icmp", "icmpv6") and not (-1 <= low <= 255 and -1 <= high <= 255):
            raise HandlerError(f"{what}: ICMP type {low} and code {high} must be within -1-255")
    for cidr in rule.get("cidrBlocks") or []:
        _network(cidr, f"{what}: cidrBlocks entry")
    for cidr in rule.get("ipv6CidrBlocks") or []:
        try:
            ipaddress.IPv6Network(str(cidr))
        except ValueError as exc:
            raise HandlerError(f"{what}: '{cidr}' is not an IPv6 CIDR: {exc}") from None
    _check_text(rule.get("description"), f"{what}: description")


def _permissions(rules: list[dict[str, Any]], group_id: str, what: str) -> dict[str, dict]:
    """IpPermissions of the rules, one per source, keyed by a canonical form.

    One source per permission lets an update add or remove a single CIDR, and two
    rules that share a source authorise it once, as AWS would keep it once.
    """
    found: dict[str, dict] = {}
    for i, rule in enumerate(rules):
        protocol = _protocol(rule["protocol"])
        base: dict[str, Any] = {"IpProtocol": protocol}
        if protocol != "-1":
            base.update(FromPort=int(rule["fromPort"]), ToPort=int(rule["toPort"]))
        note = {"Description": rule["description"]} if rule.get("description") else {}
        groups = list(rule.get("securityGroups") or [])
        if rule.get("self"):
            groups.append(group_id)
        sources = [
            *({"IpRanges": [{"CidrIp": c, **note}]} for c in rule.get("cidrBlocks") or []),
            *({"Ipv6Ranges": [{"CidrIpv6": c, **note}]} for c in rule.get("ipv6CidrBlocks") or []),
            *(
                {"PrefixListIds": [{"PrefixListId": p, **note}]}
                for p in rule.get("prefixListIds") or []
            ),
            *({"UserIdGroupPairs": [{"GroupId": g, **note}]} for g in groups),
        ]
        if not sources:
            raise HandlerError(
                f"{what}[{i}] has no source: give cidrBlocks, ipv6CidrBlocks, prefixListIds, "
                "securityGroups or self"
            )
        for source in sources:
            permission = {**base, **source}
            found[json.dumps(permission, sort_keys=True)] = permission
    return found


class SecurityGroup(Handler):
    type = "aws:ec2/securityGroup:SecurityGroup"
    emulates = frozenset(
        {
            "description",
            *(f"{direction}.{key}" for direction in _DIRECTIONS for key in _RULE_KEYS),
            "name",
            "namePrefix",
            "revokeRulesOnDelete",
            "tags",
            "vpcId",
        }
    )
    replace_on = frozenset({"name", "namePrefix", "description", "vpcId"})
    computed = ("id", "arn", "name", "ownerId")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        name = inputs.get("name")
        _check_text(name, "name")
        if isinstance(name, str) and (name.startswith("sg-") or name.lower() == "default"):
            raise HandlerError(f"name '{name}' is reserved: it may not be 'default' or start sg-")
        _check_text(inputs.get("description"), "description")
        for key in _DIRECTIONS:
            for i, rule in enumerate(inputs.get(key) or []):
                if isinstance(rule, dict):
                    _check_rule(rule, f"{key}[{i}]")

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        ec2 = ctx.client("ec2")
        group_name = generated_name(self, name, inputs, max_len=255)
        args: dict[str, Any] = {
            "GroupName": group_name,
            "Description": inputs.get("description") or _DEFAULT_DESCRIPTION,
            "TagSpecifications": _tag_spec("security-group", inputs),
        }
        if inputs.get("vpcId"):
            args["VpcId"] = inputs["vpcId"]
        try:
            group_id = ec2.create_security_group(**args)["GroupId"]
        except Exception as exc:
            raise HandlerError(f"cannot create security group {group_name}: {exc}") from None
        try:
            default = self._described(ec2, group_id)["IpPermissionsEgress"]
            if default:
                ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=default)
            self._apply(ec2, group_id, {}, inputs)
        except Exception:
            ec2.delete_security_group(GroupId=group_id)
            raise
        return group_id, {
            **inputs,
            "id": group_id,
            "arn": f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:security-group/{group_id}",
            "name": group_name,
            "ownerId": ctx.account_id,
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        ec2 = ctx.client("ec2")
        self._apply(ec2, id_, old, new)
        _retag(ec2, id_, old.get("tags"), new.get("tags"))
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ec2 = ctx.client("ec2")
        try:
            group = self._described(ec2, id_)
        except Exception as exc:
            if _missing(exc):
                return
            raise
        if outputs.get("revokeRulesOnDelete"):
            if group.get("IpPermissions"):
                ec2.revoke_security_group_ingress(GroupId=id_, IpPermissions=group["IpPermissions"])
            if group.get("IpPermissionsEgress"):
                ec2.revoke_security_group_egress(
                    GroupId=id_, IpPermissions=group["IpPermissionsEgress"]
                )
        try:
            ec2.delete_security_group(GroupId=id_)
        except Exception as exc:
            raise HandlerError(f"cannot delete security group {id_}: {exc}") from None

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            self._described(ctx.client("ec2"), id_)
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return True

    @staticmethod
    def _described(ec2: Any, group_id: str) -> dict[str, Any]:
        group: dict[str, Any] = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][
            0
        ]
        return group

    @staticmethod
    def _apply(ec2: Any, group_id: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Revoke the rules ``old`` has and ``new`` lacks, then authorise the new ones."""
        for key in _DIRECTIONS:
            before = _permissions(old.get(key) or [], group_id, key)
            after = _permissions(new.get(key) or [], group_id, key)
            gone = [p for k, p in before.items() if k not in after]
            added = [p for k, p in after.items() if k not in before]
            try:
                if gone:
                    getattr(ec2, f"revoke_security_group_{key}")(
                        GroupId=group_id, IpPermissions=gone
                    )
                if added:
                    getattr(ec2, f"authorize_security_group_{key}")(
                        GroupId=group_id, IpPermissions=added
                    )
            except Exception as exc:
                raise HandlerError(f"cannot set the {key} rules of {group_id}: {exc}") from None


HANDLERS: list[Handler] = [SecurityGroup()]
