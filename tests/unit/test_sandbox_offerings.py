"""The emulated cloud's instance type offerings per zone: moto's bundled AWS data for the
GPU families, what `migrate sandbox offerings` sets instead (kept with the cloud), and
EC2's paging and filter rules; and ``zones_offering`` reading them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from phasegate.engines.sandbox import SandboxEngine
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.zone_offerings import (
    UnknownInstanceType,
    UnknownZone,
    hold_offerings,
)
from phasegate.errors import InputError
from phasegate.offerings import zones_offering

REGION = "us-east-1"
ACCOUNT = "123456789012"
PHASES = Path(__file__).resolve().parents[2] / "phases"


def _catalog() -> list[str]:
    sys.path.insert(0, str(PHASES))
    try:
        from catalog import CATALOG
    finally:
        sys.path.remove(str(PHASES))
    return list(CATALOG)


@pytest.fixture
def held(emu: Emulator) -> Iterator[list[str]]:
    """Types a test holds offerings for: given back to moto's own answer after it."""
    types: list[str] = []
    yield types
    for instance_type in types:
        hold_offerings(ACCOUNT, REGION, instance_type, None)


def _zones(ec2: Any, instance_type: str, location_type: str = "availability-zone") -> list[str]:
    found = ec2.describe_instance_type_offerings(
        LocationType=location_type, Filters=[{"Name": "instance-type", "Values": [instance_type]}]
    )["InstanceTypeOfferings"]
    assert {o["InstanceType"] for o in found} <= {instance_type}
    assert {o["LocationType"] for o in found} <= {location_type}
    return sorted(o["Location"] for o in found)


# What moto's bundled AWS data answers in us-east-1 (six zones, a to f).
EXPECTED = {
    "g5": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"],
    "g6": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"],
    "g6e": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"],
    "p4d": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"],
    "p4de": ["us-east-1b", "us-east-1c"],
    "p5": [f"us-east-1{z}" for z in "abcdef"],
    "p5e": [],
}


def test_every_catalog_type_is_offered_per_zone_as_moto_s_aws_data_says(ec2: Any) -> None:
    for instance_type in _catalog():
        family = instance_type.split(".", 1)[0]
        assert _zones(ec2, instance_type) == EXPECTED[family], instance_type
    # Not every type in every zone: us-east-1e offers no g5, g6, g6e, p4d or p4de.
    assert "us-east-1e" not in _zones(ec2, "g5.xlarge")


def test_the_zones_of_the_shipped_stacks_offer_their_types(ec2: Any) -> None:
    found = zones_offering(ec2, ["g5.xlarge", "g6.xlarge", "g6e.xlarge", "p4d.24xlarge"])
    for zones in found.values():
        assert {"us-east-1a", "us-east-1b", "us-east-1c"} <= zones
    assert zones_offering(ec2, ["p5.48xlarge"])["p5.48xlarge"] >= {"us-east-1a", "us-east-1b"}


def test_a_held_type_is_offered_exactly_where_set_in_every_location_type(
    ec2: Any, held: list[str]
) -> None:
    held.append("g5.xlarge")
    hold_offerings(ACCOUNT, REGION, "g5.xlarge", ["us-east-1c"])
    assert _zones(ec2, "g5.xlarge") == ["us-east-1c"]
    ids = {
        z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]
    }
    assert _zones(ec2, "g5.xlarge", "availability-zone-id") == [ids["us-east-1c"]]
    assert _zones(ec2, "g5.xlarge", "region") == [REGION]
    # Other types keep moto's answer.
    assert _zones(ec2, "g6.xlarge") == EXPECTED["g6"]

    hold_offerings(ACCOUNT, REGION, "g5.xlarge", [])
    assert _zones(ec2, "g5.xlarge") == []
    assert _zones(ec2, "g5.xlarge", "region") == []
    hold_offerings(ACCOUNT, REGION, "g5.xlarge", None)
    assert _zones(ec2, "g5.xlarge") == EXPECTED["g5"]


def test_a_type_moto_offers_nowhere_can_be_offered(ec2: Any, held: list[str]) -> None:
    held.append("p5e.48xlarge")
    hold_offerings(ACCOUNT, REGION, "p5e.48xlarge", ["us-east-1a", "us-east-1b"])
    assert zones_offering(ec2, ["p5e.48xlarge", "p4de.24xlarge"]) == {
        "p5e.48xlarge": {"us-east-1a", "us-east-1b"},
        "p4de.24xlarge": {"us-east-1b", "us-east-1c"},
    }


def test_unknown_types_and_zones_are_refused_naming_what_is_allowed(emu: Emulator) -> None:
    with pytest.raises(UnknownInstanceType, match=r"'g5.huge'.*allowed: .*g5\.xlarge"):
        hold_offerings(ACCOUNT, REGION, "g5.huge", ["us-east-1a"])
    with pytest.raises(UnknownZone, match=r"us-east-1z: not a zone of us-east-1; allowed: "):
        hold_offerings(ACCOUNT, REGION, "g5.xlarge", ["us-east-1a", "us-east-1z"])


def test_offerings_are_paged_as_ec2_pages_them(ec2: Any) -> None:
    first = ec2.describe_instance_type_offerings(LocationType="availability-zone", MaxResults=5)
    assert len(first["InstanceTypeOfferings"]) == 5
    second = ec2.describe_instance_type_offerings(
        LocationType="availability-zone", MaxResults=5, NextToken=first["NextToken"]
    )
    assert not {(o["InstanceType"], o["Location"]) for o in first["InstanceTypeOfferings"]} & {
        (o["InstanceType"], o["Location"]) for o in second["InstanceTypeOfferings"]
    }
    pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": ["g5.*"]}],
        PaginationConfig={"PageSize": 7},
    )
    sizes = [len(p["InstanceTypeOfferings"]) for p in pages]
    assert sizes == [7, 7, 7, 7, 7, 5]  # 8 sizes x 5 zones
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        ec2.describe_instance_type_offerings(MaxResults=1001)
    with pytest.raises(ClientError, match="InvalidNextToken"):
        ec2.describe_instance_type_offerings(NextToken="next")


def test_an_unknown_filter_is_refused_not_answered_with_nothing(ec2: Any) -> None:
    with pytest.raises(ClientError, match=r"The filter 'instance-family' is invalid"):
        ec2.describe_instance_type_offerings(
            LocationType="availability-zone",
            Filters=[{"Name": "instance-family", "Values": ["g5"]}],
        )


def test_zones_offering_reads_every_page_and_names_every_type(ec2: Any) -> None:
    class Paged:
        """The client, its pages made small so that the answer takes several."""

        def get_paginator(self, name: str) -> Any:
            paginator = ec2.get_paginator(name)

            class Small:
                def paginate(self, **kwargs: Any) -> Any:
                    return paginator.paginate(**kwargs, PaginationConfig={"PageSize": 5})

            return Small()

    types = ["g5.xlarge", "g6e.xlarge", "p5e.48xlarge"]
    assert zones_offering(Paged(), types) == {
        "g5.xlarge": set(EXPECTED["g5"]),
        "g6e.xlarge": set(EXPECTED["g6e"]),
        "p5e.48xlarge": set(),
    }
    assert zones_offering(ec2, []) == {}


def test_the_engine_keeps_what_is_set_with_the_cloud(tmp_path: Path, emu: Emulator) -> None:
    def engine() -> SandboxEngine:
        made = SandboxEngine(tmp_path / "sandbox", {"test": REGION})
        made.store("test").key_file = tmp_path / "sandbox.key"
        return made

    first = engine()
    try:
        first.set_offerings("test", "g6.xlarge", ["us-east-1b"])
        with pytest.raises(InputError, match=r"--zones: us-east-1q: not a zone of us-east-1"):
            first.set_offerings("test", "g6.xlarge", ["us-east-1q"])
        with pytest.raises(InputError, match=r"TYPE: unknown instance type 'g6.tiny'"):
            first.set_offerings("test", "g6.tiny", [])
    finally:
        first.close()
    emu.reset()  # nothing left in memory: only the committed cloud can answer
    second = engine()
    try:
        store = second.store("test")
        client = store.cloud(store.load()).client("ec2", REGION)
        assert _zones(client, "g6.xlarge") == ["us-east-1b"]
        second.set_offerings("test", "g6.xlarge", None)
        assert _zones(client, "g6.xlarge") == EXPECTED["g6"]
    finally:
        second.close()
        emu.reset()
