"""The readiness audit of a fresh sandbox, in this process, through the sandbox engine as
`migrate audit` drives it: the shipped stack configs read as the audit reads them, every
call made through the engine's clients recorded and found to be a read, and the
inference type's offering taken out of every zone of the emulator turning its finding
critical and lowering the score."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.ec2.models import instance_types as moto_offerings

from phasegate.audit import AuditReport, audit_environment, audit_inputs
from phasegate.environment import Environment
from phasegate.machine import RunContext
from phasegate.project import Project

READ = ("Describe", "Get", "List", "Head")
INFERENCE = "g6.xlarge"
"""The type only the inference pool names (compute.inference_pool: g6.xlarge, g5.xlarge)."""


class Recorded:
    """The sandbox environment, with every operation its engine's clients make recorded."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.environment = Environment(
            project, "sandbox", RunContext.detect(project.root, "migrate audit", environ={})
        )
        self.operations: list[str] = []
        engine = self.environment.engine
        given = engine.aws_client

        def aws_client(stack: Any, service: str) -> Any:
            client = given(stack, service)
            # The emulator keeps one client per service for the process: hook it once.
            client.meta.events.unregister("before-parameter-build", self._record)
            client.meta.events.register("before-parameter-build", self._record)
            return client

        engine.aws_client = aws_client  # type: ignore[method-assign]

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def audit(self) -> AuditReport:
        return audit_environment(self.environment)


@pytest.fixture
def sandbox(fresh_project: Path) -> Iterator[Recorded]:
    project = Project.load(fresh_project)
    try:
        yield Recorded(project)
    finally:
        project.close()


def _finding(report: AuditReport, check: str) -> Any:
    [found] = [f for f in report.findings if f.check == check]
    return found


def test_the_shipped_configs_are_read_as_the_audit_needs_them(sandbox: Recorded) -> None:
    inputs = audit_inputs(sandbox.environment)
    assert [(p.label, p.instance_types, p.max_size) for p in inputs.pools] == [
        ("pilot.pilot_pool", ("g5.xlarge",), 1),
        ("compute.training_pool", ("p4d.24xlarge",), 1),
        ("compute.inference_pool", ("g6.xlarge", "g5.xlarge"), 2),
    ]
    assert (inputs.zones, inputs.zones_key) == (
        ("us-east-1a", "us-east-1b"),
        "pilot.availability_zones",
    )
    assert inputs.legacy_bucket == "phasegate-legacy-sandbox"
    assert (inputs.vpc_id, inputs.nat_per_az) == (None, False)  # nothing applied yet
    assert inputs.vcpus["p4d.24xlarge"] == 96 and inputs.vcpus["g5.xlarge"] == 4


def test_removing_the_inference_type_everywhere_turns_it_red_and_lowers_the_score(
    sandbox: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sandbox.audit()
    assert _finding(before, f"offerings {INFERENCE}").severity == "ok"
    assert before.critical == 0

    zones = moto_offerings.INSTANCE_TYPE_OFFERINGS["availability-zone"]
    region = sandbox.environment.spec.region
    monkeypatch.setitem(zones, region, [o for o in zones[region] if o["InstanceType"] != INFERENCE])
    after = sandbox.audit()
    red = _finding(after, f"offerings {INFERENCE}")
    assert red.severity == "critical"
    assert "compute.inference_pool" in red.found and "offered in 0 of the 2" in red.found
    assert after.critical == 1 and after.score < before.score
    capacity = {a.area: a for a in after.areas}["capacity"]
    assert (capacity.worst, capacity.earned) == ("critical", round(35 * 2 / 3, 2))

    assert sandbox.operations
    writes = sorted({op for op in sandbox.operations if not op.startswith(READ)})
    assert writes == [], f"the audit made calls that are not reads: {writes}"
    assert not (sandbox.project.root / "state").exists()
