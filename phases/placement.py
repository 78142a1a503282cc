"""GPU-zone placement: the subnets a GPU node group may use, by the zones that offer its types.

Not every zone of a region offers every GPU instance type (in us-east-1, p4de.24xlarge
is offered in two zones of six). A node group whose subnet sits in a zone that lacks
one of its types cannot launch nodes there, so a pool goes only into subnets whose zone
offers every one of its types; a training pool in a cluster placement group lives in one
zone: the first such zone, in the order the stack configures its zones. What each zone
offers is what the provider's ``get_instance_type_offerings`` answers for the region.

phasegate checks before a plan that every pool has such a zone and says which key to
change; the program refuses too, naming the key, for a run that skipped that check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pulumi
import pulumi_aws as aws

from common import InvalidConfig
from config import NodePool

__all__ = ["Offerings", "placed_subnets", "placed_zones"]


class Offerings:
    """Which zones of the stack's region offer each of ``types``: one lookup per program."""

    def __init__(self, types: Iterable[str]) -> None:
        wanted = sorted(set(types))
        self.zones: dict[str, set[str]] = {t: set() for t in wanted}
        found = aws.ec2.get_instance_type_offerings(
            location_type="availability-zone",
            filters=[
                aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type", values=wanted)
            ],
        )
        for instance_type, zone in zip(found.instance_types, found.locations, strict=True):
            self.zones.setdefault(instance_type, set()).add(zone)

    def zones_for(self, pool: NodePool, zones: Sequence[str]) -> list[str]:
        """The zones of ``zones``, in their order, that offer every type of ``pool``."""
        return [z for z in zones if all(z in self.zones.get(t, ()) for t in pool.instance_types)]

    def refusal(self, key: str, pool: NodePool, zones: Sequence[str]) -> str:
        """Why ``pool`` fits no zone of ``zones``, naming its config key."""
        shown = ", ".join(zones)
        missing = [t for t in pool.instance_types if not self.zones.get(t, set()) & set(zones)]
        if missing:
            what = f"{', '.join(missing)} offered in none of the zones {shown}"
        else:
            what = f"no zone of {shown} offers all of {', '.join(pool.instance_types)}"
        return f"stack {pulumi.get_stack()}: phasegate:{key}.instance_types: {what}"


def placed_subnets(
    key: str,
    pool: NodePool,
    offerings: Offerings,
    subnet_ids: pulumi.Input[Sequence[str]],
    zones: pulumi.Input[Sequence[str]],
    *,
    one_zone: bool = False,
) -> pulumi.Output[list[str]]:
    """The subnets of ``subnet_ids`` (one per zone of ``zones``, in the same order) that
    the pool ``key`` may use; with ``one_zone``, the subnet of the first zone that fits."""
    if isinstance(zones, (list, tuple)) and not offerings.zones_for(pool, zones):
        raise InvalidConfig(offerings.refusal(key, pool, zones))  # known now: refuse now

    def choose(args: list[Sequence[str]]) -> list[str]:
        ids, subnet_zones = args
        if subnet_zones is None:
            raise InvalidConfig(
                f"stack {pulumi.get_stack()}: the pilot exports no private_subnet_zones: "
                "apply the pilot first"
            )
        fits = offerings.zones_for(pool, subnet_zones)
        if not fits:
            raise InvalidConfig(offerings.refusal(key, pool, subnet_zones))
        chosen = [i for i, z in zip(ids, subnet_zones, strict=True) if z in fits]
        return chosen[:1] if one_zone else chosen

    return pulumi.Output.all(subnet_ids, zones).apply(choose)


def placed_zones(
    pool: NodePool,
    offerings: Offerings,
    zones: pulumi.Input[Sequence[str]],
    *,
    one_zone: bool = False,
) -> pulumi.Output[list[str]]:
    """The zones :func:`placed_subnets` chooses for the pool, in the same order."""

    def choose(subnet_zones: Sequence[str] | None) -> list[str]:
        fits = offerings.zones_for(pool, subnet_zones or [])
        return fits[:1] if one_zone else fits

    return pulumi.Output.from_input(zones).apply(choose)
