"""The pulumi engine on the real Pulumi CLI, with a program that needs no downloaded
plugin (``tests/_dynamic.py``, a dynamic provider the engine contract shares). What only
this engine shows is here: the CLI's own words. `scripts/build-pulumi.sh` builds the CLI
where Go is."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _dynamic import MAIN, PROGRAM, pulumi_engine
from _dynamic import files as _files
from _dynamic import target as _target
from phasegate.engines.base import UNKNOWN, Engine, Op, ProgramSource, StackOutputs, StackTarget
from phasegate.errors import EngineError, GateBlocked

pytestmark = [
    pytest.mark.pulumi_cli,
    pytest.mark.skipif(
        shutil.which("pulumi") is None,
        reason="needs the Pulumi CLI on PATH (scripts/build-pulumi.sh builds it where go is)",
    ),
]


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    yield from pulumi_engine(tmp_path, monkeypatch)


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    root = tmp_path / "cloud"
    root.mkdir()
    return root


def test_a_preview_changes_nothing_and_an_up_creates_what_it_listed(
    engine: Engine, cloud: Path
) -> None:
    assert engine.outputs("test-volumes") is None
    plan = engine.preview(_target(cloud, 10))
    assert sorted((c.op, c.name) for c in plan.changes) == [
        (Op.CREATE, "data"),
        (Op.CREATE, "keep"),
    ]
    assert _files(cloud) == {}

    result = engine.up(_target(cloud, 10))

    assert {op: n for op, n in result.counts.items() if n} == {"create": 2}
    assert _files(cloud) == {"data": 10, "keep": 1}
    outputs = engine.outputs("test-volumes")
    assert outputs is not None
    assert outputs.values["path"] == str(cloud / "data.json")
    assert outputs.secret == {"token", "login"}


def test_an_unchanged_program_plans_nothing_and_a_changed_input_updates(
    engine: Engine, cloud: Path
) -> None:
    engine.up(_target(cloud, 10))
    again = engine.preview(_target(cloud, 10))
    assert not again.has_changes

    changed = engine.preview(_target(cloud, 20))
    assert [(c.op, c.name) for c in changed.changes if c.op is not Op.SAME] == [(Op.UPDATE, "data")]
    engine.up(_target(cloud, 20))
    assert _files(cloud) == {"data": 20, "keep": 1}


def test_destroy_keeps_what_is_protected_and_says_so(engine: Engine, cloud: Path) -> None:
    engine.up(_target(cloud, 10))

    result = engine.destroy(_target(cloud, 10))

    assert _files(cloud) == {"keep": 1}
    assert [(c.op, c.name) for c in result.changes if c.op is Op.DELETE] == [(Op.DELETE, "data")]
    assert any(k.endswith(" keep") for k in result.kept)


def test_a_replacement_is_one_change_in_the_plan_and_in_the_result(
    engine: Engine, cloud: Path
) -> None:
    """The CLI reports a replacement as three steps (create-replacement, replace,
    delete-replaced); a plan and a result each count it once."""
    engine.up(_target(cloud, 10))
    renamed = _target(cloud, 10, data_key="data2")

    plan = engine.preview(renamed)
    result = engine.up(renamed)

    assert [(c.op, c.name) for c in plan.changes if c.op is not Op.SAME] == [(Op.REPLACE, "data")]
    # As the sandbox reports it: what changed, not what stayed the same.
    assert {op: n for op, n in result.counts.items() if n} == {"replace": 1}
    assert _files(cloud) == {"data2": 10, "keep": 1}


def test_a_failed_create_names_the_resource_and_the_providers_own_message(
    engine: Engine, cloud: Path
) -> None:
    with pytest.raises(EngineError) as failed:
        engine.up(_target(cloud, 500))
    said = str(failed.value)
    assert said.startswith("test-volumes: ")
    assert said.startswith("test-volumes: data (pulumi-python:dynamic:Resource): ")
    assert "volume quota exceeded: 500" in said  # numbers reach a provider as floats
    for noise in ("Program failed with an unhandled exception", "error occurred", "stderr:"):
        assert noise not in said
    assert "\n" not in said


def test_a_retained_resource_dropped_from_the_program_is_reported_kept_not_deleted(
    engine: Engine, cloud: Path
) -> None:
    engine.up(_target(cloud, 10, scratch=True))
    assert _files(cloud) == {"data": 10, "keep": 1, "scratch": 2}

    result = engine.up(_target(cloud, 10))

    assert _files(cloud) == {"data": 10, "keep": 1, "scratch": 2}  # still there
    assert [c for c in result.changes if c.op is Op.DELETE] == []
    assert result.kept == ("pulumi-python:dynamic:Resource scratch",)


CONSUMER = textwrap.dedent(
    """
    import pulumi

    from volumes import Volume


    def program():
        config = pulumi.Config("phasegate")
        org, project = pulumi.get_organization(), pulumi.get_project()
        upstream = pulumi.StackReference("up", stack_name=f"{org}/{project}/test-volumes")
        key = upstream.get_output("path").apply(lambda p: p.rsplit("/", 1)[-1][:-5] + "-copy")
        Volume("copy", config.require("root"), key, 1)
    """
)


def _consumer(root: Path) -> StackTarget:
    files = {
        "__main__.py": b"import importlib\nimportlib.import_module('consumer').program()\n",
        "volumes.py": PROGRAM.encode(),
        "consumer.py": CONSUMER.encode(),
    }
    return dataclasses.replace(
        _target(root, 1), phase="consumer", program=ProgramSource(module="consumer", files=files)
    )


def test_a_stack_a_preview_made_has_no_outputs(engine: Engine, cloud: Path) -> None:
    """Defect 3: a preview creates the stack in the backend with no checkpoint, and its
    outputs were then `{}`, as if it had been applied and exported nothing."""
    engine.preview(_target(cloud, 10))
    assert engine.outputs("test-volumes") is None


def test_a_downstream_stack_of_a_fresh_environment_previews_with_its_upstream_unknown(
    engine: Engine, cloud: Path
) -> None:
    """Defect 2: the StackReference read a stack that did not exist yet and the preview
    failed; it must see the upstream's planned outputs, unknown until its apply."""
    planned = StackOutputs(values={"path": UNKNOWN, "token": UNKNOWN}, secret=frozenset({"token"}))

    plan = engine.preview(_consumer(cloud), upstream={"test-volumes": planned})

    assert [(c.op, c.name) for c in plan.changes] == [(Op.CREATE, "copy")]
    assert engine.outputs("test-volumes") is None  # nothing of the upstream was made
    # Once the upstream is applied, its real outputs are read from the backend.
    engine.up(_target(cloud, 10))
    engine.up(_consumer(cloud))
    assert _files(cloud) == {"data": 10, "data-copy": 1, "keep": 1}


POLICIES = textwrap.dedent(
    """
    from pulumi_policy import (
        EnforcementLevel,
        PolicyPack,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )


    def size_cap(args, report_violation):
        size = args.props.get("size")
        if isinstance(size, (int, float)) and size > 50:
            report_violation(f"{args.name} asks {size:g} GiB, over the cap of 50")


    def small(args, report_violation):
        size = args.props.get("size")
        if isinstance(size, (int, float)) and size < 2:
            report_violation(f"{args.name} asks {size:g} GiB: volumes under 2 GiB waste a slot")


    def no_scratch_files(args, report_violation):
        for resource in args.resources:
            path = resource.props.get("path")  # known only once the volume exists
            if isinstance(path, str) and path.endswith("scratch.json"):
                report_violation(f"{path} is a scratch file", resource.urn)


    PolicyPack(
        name="volumes",
        enforcement_level=EnforcementLevel.MANDATORY,
        policies=[
            ResourceValidationPolicy(
                name="volume-size-cap", description="Volumes are 50 GiB at most.",
                validate=size_cap,
            ),
            ResourceValidationPolicy(
                name="volume-size-floor", description="Volumes are 2 GiB at least.",
                validate=small, enforcement_level=EnforcementLevel.ADVISORY,
            ),
            StackValidationPolicy(
                name="no-scratch-files", description="No scratch files in the stack.",
                validate=no_scratch_files,
            ),
        ],
    )
    """
)


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    root.mkdir()
    (root / "PulumiPolicy.yaml").write_text("runtime: python\ndescription: volume rules\n")
    (root / "__main__.py").write_text(POLICIES)
    return root


def test_crossguard_findings_in_a_plan_name_rule_resource_and_reason(
    engine: Engine, cloud: Path, pack: Path
) -> None:
    """Defect 6, on the real CLI: the reason, not the rule's description, no colour
    markup, and the advisory findings too; a mandatory one goes to the policy gate."""
    plan = engine.preview(dataclasses.replace(_target(cloud, 80), policy_pack=pack))

    found = sorted((v.rule, v.enforcement, v.resource_name, v.message) for v in plan.findings)
    assert found == [
        # CrossGuard's own note: the stack policy reads a value only an up knows.
        (
            "no-scratch-files",
            "advisory",
            "test-volumes",
            "can't run policy 'no-scratch-files' from policy pack 'volumes@v0.0.1' during "
            "preview: string value at .path can't be known during preview",
        ),
        ("volume-size-cap", "mandatory", "data", "data asks 80 GiB, over the cap of 50"),
        (
            "volume-size-floor",
            "advisory",
            "keep",
            "keep asks 1 GiB: volumes under 2 GiB waste a slot",
        ),
    ]
    assert {v.resource_type for v in plan.findings} == {"pulumi-python:dynamic:Resource", "stack"}
    assert _files(cloud) == {}


def test_a_stack_policy_that_fails_during_up_is_an_apply_failure(
    engine: Engine, cloud: Path, pack: Path
) -> None:
    """Defect 1: a stack policy sees values only an up knows; its mandatory violation
    was reported as "nothing was applied" (a gate), though the up had created resources.
    It is an apply failure, which the orchestrator rolls back."""
    target = _target(cloud, 10)
    target = dataclasses.replace(
        target, policy_pack=pack, config={**target.config, "phasegate:scratch": True}
    )
    plan = engine.preview(target)
    assert [v for v in plan.findings if v.enforcement == "mandatory"] == []

    with pytest.raises(EngineError) as failed:
        engine.up(target)

    said = str(failed.value)
    assert not isinstance(failed.value, GateBlocked)
    assert "1 mandatory policy violation(s) during the apply" in said
    assert "no-scratch-files: pulumi-python:dynamic:Resource 'scratch': " in said
    assert f"{cloud / 'scratch.json'} is a scratch file" in said


def _state(tmp_path: Path) -> Path:
    """The backend's own files (the engine's default local backend)."""
    return tmp_path / ".phasegate" / "pulumi" / "backend" / ".pulumi"


def _lock(tmp_path: Path, host: str, pid: int) -> Path:
    lock = _state(tmp_path) / "locks" / "organization" / "contract" / "test-volumes" / "x.json"
    lock.parent.mkdir(parents=True, exist_ok=True)
    held = {"pid": pid, "username": "ci", "hostname": host, "timestamp": "2026-12-01T10:00:00Z"}
    lock.write_text(json.dumps(held))
    return lock


def test_a_lock_left_by_a_run_that_died_on_this_machine_is_cleared(
    engine: Engine, cloud: Path, tmp_path: Path
) -> None:
    """Defect 10: a run killed mid-up leaves the backend's lock, and every later run was
    refused as "another update is in progress", with no hint. Its holder is provably gone."""
    engine.up(_target(cloud, 10))
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock = _lock(tmp_path, socket.gethostname(), gone.pid)

    engine.up(_target(cloud, 20))

    assert _files(cloud)["data"] == 20
    assert not lock.exists()


def test_a_lock_left_by_a_run_that_ended_uncollected_is_cleared(
    engine: Engine, cloud: Path, tmp_path: Path
) -> None:
    """The CLI a killed run leaves ends with its program, and stays a zombie until init
    collects it, which a container's init may never do: its pid answers, it holds nothing.
    (It failed a recover in CI: "another run holds the stack's lock".)"""
    engine.up(_target(cloud, 10))
    ended = subprocess.Popen(["true"])
    while Path(f"/proc/{ended.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        time.sleep(0.05)  # ended, and not collected: os.kill(pid, 0) still answers
    lock = _lock(tmp_path, socket.gethostname(), ended.pid)

    engine.up(_target(cloud, 20))

    assert _files(cloud)["data"] == 20
    assert not lock.exists()
    ended.wait()


@pytest.mark.parametrize("where", ["another machine", "a live run here"])
def test_a_lock_that_may_be_held_stops_the_run_naming_its_holder(
    engine: Engine, cloud: Path, tmp_path: Path, where: str
) -> None:
    engine.up(_target(cloud, 10))
    host, pid = (
        ("ci-runner-7", 4242) if where == "another machine" else (socket.gethostname(), os.getpid())
    )
    lock = _lock(tmp_path, host, pid)

    with pytest.raises(EngineError) as refused:
        engine.up(_target(cloud, 20))

    said = str(refused.value)
    assert said.startswith(
        f"test-volumes: another run holds the stack's lock: held by ci@{host} (pid {pid}) "
        "since 2026-12-01T10:00:00Z (wait for it to end; if it is gone, run "
        "`pulumi cancel --stack test-volumes` with PULUMI_BACKEND_URL=file://"
    )
    assert lock.exists() and _files(cloud)["data"] == 10


def _pending(tmp_path: Path, op: str, name: str) -> None:
    """Leave a pending operation in the stack's checkpoint, as a run killed mid-step does."""
    path = _state(tmp_path) / "stacks" / "contract" / "test-volumes.json"
    data = json.loads(path.read_text())
    latest = data["checkpoint"]["latest"]
    (resource,) = [r for r in latest["resources"] if r["urn"].endswith(f"::{name}")]
    latest["pending_operations"] = [{"resource": resource, "type": op}]
    path.write_text(json.dumps(data))


def test_an_interrupted_update_is_settled_by_the_provider_before_the_next_up(
    engine: Engine, cloud: Path, tmp_path: Path
) -> None:
    """Pending operations other than creates: the provider tells how they ended."""
    engine.up(_target(cloud, 10))
    _pending(tmp_path, "updating", "data")

    engine.up(_target(cloud, 20))

    path = _state(tmp_path) / "stacks" / "contract" / "test-volumes.json"
    assert not json.loads(path.read_text())["checkpoint"]["latest"].get("pending_operations")
    assert _files(cloud)["data"] == 20


@pytest.mark.parametrize("release", [False, True], ids=["up", "release-up"])
def test_an_interrupted_create_stops_the_run_with_what_a_person_must_check(
    engine: Engine, cloud: Path, tmp_path: Path, release: bool
) -> None:
    engine.up(_target(cloud, 10))
    _pending(tmp_path, "creating", "data")

    with pytest.raises(EngineError) as refused:
        engine.up(_target(cloud, 20), release_protected=release)

    said = str(refused.value)
    assert said.startswith(
        "test-volumes: an earlier run was stopped while creating "
        "pulumi-python:dynamic:Resource 'data': it may exist in the cloud without being in "
        "the stack, and phasegate cannot tell (check whether it exists; then, with "
        "PULUMI_BACKEND_URL=file://"
    )
    assert "`pulumi refresh --stack test-volumes --clear-pending-creates`" in said
    assert _files(cloud)["data"] == 10
    path = _state(tmp_path) / "stacks" / "contract" / "test-volumes.json"
    assert json.loads(path.read_text())["checkpoint"]["latest"]["pending_operations"]


def test_a_failed_release_up_gives_back_protect_and_retain_on_delete_as_they_were(
    engine: Engine, cloud: Path, tmp_path: Path
) -> None:
    """Defect 10: after a failed up that was to release protected resources, `protect`
    came back but every one of them kept `retainOnDelete`."""
    engine.up(_target(cloud, 10))
    # It fails before it declares anything, so no declaration gives the options back.
    broken = PROGRAM.replace("def program():\n", "def program():\n    raise RuntimeError('x')\n")
    files = {"__main__.py": MAIN.encode(), "volumes.py": broken.encode()}
    failing = dataclasses.replace(
        _target(cloud, 10), program=ProgramSource(module="volumes", files=files)
    )

    with pytest.raises(EngineError):
        engine.up(failing, release_protected=True)

    path = _state(tmp_path) / "stacks" / "contract" / "test-volumes.json"
    resources = json.loads(path.read_text())["checkpoint"]["latest"]["resources"]
    (keep,) = [r for r in resources if r["urn"].endswith("::keep")]
    assert keep.get("protect") is True
    assert not keep.get("retainOnDelete")


def test_a_rollback_destroy_reports_everything_it_keeps(
    engine: Engine, cloud: Path, tmp_path: Path
) -> None:
    """Defect 9: `--exclude-protected` also keeps what a protected resource depends on;
    `kept` listed only the protected ones."""
    program = PROGRAM.replace(
        'Volume("keep", root, "keep", 1, opts=pulumi.ResourceOptions(protect=True))',
        'Volume("keep", root, "keep", 1, opts=pulumi.ResourceOptions(protect=True, '
        "depends_on=[data]))",
    )
    files = {"__main__.py": MAIN.encode(), "volumes.py": program.encode()}
    target = dataclasses.replace(
        _target(cloud, 10), program=ProgramSource(module="volumes", files=files)
    )
    engine.up(target)

    result = engine.destroy(target)

    assert _files(cloud) == {"data": 10, "keep": 1}
    assert sorted(result.kept) == [
        "pulumi-python:dynamic:Resource data",
        "pulumi-python:dynamic:Resource keep",
    ]
    assert [c for c in result.changes if c.op is Op.DELETE] == []


@pytest.mark.parametrize("before", ["nothing", "a preview"])
def test_a_rollback_destroy_of_a_stack_never_applied_does_nothing(
    engine: Engine, cloud: Path, before: str
) -> None:
    """Defect 9: a stack with no checkpoint (never applied, or made by a preview) made
    the rollback fail."""
    if before == "a preview":
        engine.preview(_target(cloud, 10))

    result = engine.destroy(_target(cloud, 10))

    assert (result.changes, result.kept) == ([], ())
    assert engine.outputs("test-volumes") is None


def test_the_shipped_staging_plan_names_the_missing_aws_plugin_and_how_to_install_it(
    cli: Any, fresh_project: Path
) -> None:
    """The shipped phases need the aws provider plugin, which cannot be downloaded here:
    one line naming it, its version and the command that installs it; exit 1. Staging
    is pointed at the sandbox served as its AWS endpoint: the plan reads the zones'
    instance type offerings there before it runs a program (this machine has no AWS)."""
    from importlib.metadata import version

    aws = "v" + version("pulumi-aws")
    migration = fresh_project / "migration.yaml"
    with cli.serve(fresh_project) as served:
        text = migration.read_text()
        staging = "    engine: pulumi\n    region: us-east-1\n    promote_from: sandbox\n"
        assert text.count(staging) == 1
        migration.write_text(
            text.replace(staging, f"{staging}    aws: {{endpoint_url: {served.url}}}\n")
        )
        run = cli.run(
            fresh_project,
            "plan",
            "--env",
            "staging",
            env={"PULUMI_CONFIG_PASSPHRASE": "staging-tests"},
        )

    assert run.returncode == 1, run.stderr
    (error,) = [line for line in run.stderr.splitlines() if line.startswith("error")]
    assert error == (
        f"error: staging-pilot: the Pulumi resource plugin 'aws' {aws} is not installed and "
        f"could not be downloaded; install it with `pulumi plugin install resource aws {aws}`"
    )
    assert "Traceback" not in run.stderr


def test_a_plan_says_which_outputs_only_the_apply_can_tell(engine: Engine, cloud: Path) -> None:
    """Downstream phases are planned on these, as on the sandbox; a secret's value is not
    in a preview's events, so it is unknown there too."""
    plan = engine.preview(_target(cloud, 10))

    assert {k: plan.outputs.values[k] for k in ("path", "token", "login")} == {
        "path": UNKNOWN,
        "token": UNKNOWN,
        "login": UNKNOWN,
    }
    assert plan.outputs.secret == {"token", "login"}
    engine.up(_target(cloud, 10))
    assert engine.preview(_target(cloud, 10)).outputs.values["path"] == str(cloud / "data.json")


def test_a_stack_never_verified_says_so_and_one_verified_keeps_its_fingerprint(
    engine: Engine, cloud: Path
) -> None:
    """The file backend keeps no tags for a stack until its first: no tags is "never
    verified" (it was refused as a backend that cannot keep tags, and rollbacks of
    never-verified phases failed)."""
    target = _target(cloud, 10)
    engine.up(target)
    assert engine.verified_fingerprint(target) is None

    engine.record_verified(target, "sha256:abc")

    assert engine.verified_fingerprint(target) == "sha256:abc"
