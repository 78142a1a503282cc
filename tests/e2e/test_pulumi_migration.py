"""A whole migration on the real Pulumi CLI: four phases of dynamic-provider volumes
(tests/_volumes_project.py), planned on a fresh environment, applied in one command,
rolled back, blocked by CrossGuard, killed mid-up and recovered."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from _volumes_project import PHASES, build, stack_config

pytestmark = [
    pytest.mark.pulumi_cli,
    pytest.mark.skipif(
        shutil.which("pulumi") is None,
        reason="needs the Pulumi CLI on PATH (scripts/build-pulumi.sh builds it where go is)",
    ),
]

PASSPHRASE = {"PULUMI_CONFIG_PASSPHRASE": "volumes-e2e"}


@pytest.fixture(autouse=True)
def _nothing_left_running(tmp_path: Path) -> Iterator[None]:
    """A killed run leaves the Pulumi CLI's plugins (the policy pack, in a process group
    of its own) without their parent: they are the test's to stop, not the machine's."""
    yield
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes()
            where = os.readlink(proc / "cwd")
        except OSError:  # not a process, or gone
            continue
        inside = str(tmp_path).encode() in command or where.startswith(str(tmp_path))
        if proc.name.isdigit() and inside:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    return tmp_path / "cloud"


@pytest.fixture
def project(tmp_path: Path, cloud: Path) -> Path:
    return build(tmp_path / "project", cloud)


def _files(cloud: Path) -> dict[str, int]:
    return {p.stem: json.loads(p.read_text())["size"] for p in sorted(cloud.glob("*.json"))}


def _state(project: Path, phase: str) -> dict[str, Any]:
    return yaml.safe_load((project / "state" / "staging" / f"{phase}.yaml").read_text())


def _migrate(cli: Any, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli.run(project, *args, env=PASSPHRASE, timeout=600)


def test_a_fresh_environment_is_planned_whole_then_applied_in_one_command(
    cli: Any, project: Path, cloud: Path
) -> None:
    plan = _migrate(cli, project, "plan", "--output", "json")

    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)["phases"]
    assert [p["phase"] for p in planned] == list(PHASES)
    assert [p["changes"]["create"] for p in planned] == [1, 2, 1, 1]
    # Downstream phases are planned on what only the upstream's apply can tell.
    assert planned[0]["outputs"]["path"] == "(known after apply)"
    assert _files(cloud) == {}

    apply = _migrate(cli, project, "apply", "--yes")

    assert apply.returncode == 0, apply.stderr
    assert _files(cloud) == {
        "cache": 10,
        "front": 10,
        "jobs": 10,
        "staging-base": 10,
        "staging-base-vault": 5,
    }
    assert [_state(project, p)["status"] for p in PHASES] == ["verified"] * 4
    again = _migrate(cli, project, "plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_failing_check_rolls_back_to_the_last_known_good_through_the_cli(
    cli: Any, project: Path, cloud: Path
) -> None:
    assert _migrate(cli, project, "apply", "--yes").returncode == 0
    stack_config(project, "work", {"size": 40})  # over the check's limit of 30

    run = _migrate(cli, project, "apply", "--yes", "--phase", "work")

    assert run.returncode == 3, run.stdout + run.stderr
    assert "jobs is 40 GiB (limit 30)" in run.stdout + run.stderr
    assert _files(cloud)["jobs"] == 10  # back as last verified, by the real CLI
    assert _state(project, "work")["status"] == "rolled_back"


def test_a_phase_never_verified_is_destroyed_and_what_is_protected_kept(
    cli: Any, project: Path, cloud: Path
) -> None:
    stack_config(project, "store", {"broken": True})

    run = _migrate(cli, project, "apply", "--yes")

    assert run.returncode == 3, run.stdout + run.stderr
    assert "the store is marked broken" in run.stdout + run.stderr
    assert "kept 1 protected resource(s): vault" in run.stdout
    assert _files(cloud) == {"staging-base": 10, "staging-base-vault": 5}
    assert _state(project, "base")["status"] == "verified"
    assert _state(project, "store")["status"] == "rolled_back"
    assert not (project / "state" / "staging" / "work.yaml").exists()


def test_a_mandatory_crossguard_violation_blocks_with_rule_resource_and_reason(
    cli: Any, project: Path, cloud: Path
) -> None:
    assert _migrate(cli, project, "apply", "--yes").returncode == 0
    stack_config(project, "work", {"size": 80})

    run = _migrate(cli, project, "apply", "--yes", "--phase", "work")

    assert run.returncode == 5, run.stdout + run.stderr
    assert (
        "volume-size-cap: pulumi-python:dynamic:Resource 'jobs' in staging-work: "
        "jobs asks 80 GiB, over the cap of 60"
    ) in run.stderr
    assert _files(cloud)["jobs"] == 10
    assert _state(project, "work")["status"] == "verified"


def _apply_until_kill(cli: Any, project: Path, *args: str, group: bool) -> None:
    """``migrate apply --yes ARGS`` killed (SIGKILL) once the real CLI has started its
    (20 s) operation on ``jobs`` (the stack's state holds it pending), and 1 s into it:
    the migrate process alone, or its whole process group (the machine going down, the
    CLI with it)."""
    stack_config(project, "work", {"pause": 20})
    process = subprocess.Popen(
        [*cli.command, "apply", "--yes", *args],
        cwd=project,
        env={**cli.env, **PASSPHRASE},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not _applying(project, "work") or not _pending(project, "work"):
        assert process.poll() is None and time.monotonic() < deadline, "never reached jobs"
        time.sleep(0.2)
    time.sleep(1)
    if group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()
    process.wait()
    while group and time.monotonic() < deadline:  # every process of the group gone
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    stack_config(project, "work", {"pause": 0})


def _pending(project: Path, phase: str) -> bool:
    """Whether the backend's state of the phase's stack holds an operation under way
    (what the CLI writes before it calls the provider)."""
    stacks = project / ".phasegate" / "pulumi" / "backend" / ".pulumi" / "stacks"
    for path in stacks.glob(f"*/staging-{phase}.json"):
        try:
            latest = json.loads(path.read_text()).get("checkpoint", {}).get("latest") or {}
        except ValueError:  # caught half written
            continue
        if latest.get("pending_operations"):
            return True
    return False


def _applying(project: Path, phase: str) -> bool:
    path = project / "state" / "staging" / f"{phase}.yaml"
    return path.exists() and (yaml.safe_load(path.read_text()) or {}).get("status") == "applying"


def test_killed_during_a_real_update_then_recover_finishes(
    cli: Any, project: Path, cloud: Path
) -> None:
    """The CLI is left without its program half way through an update: the update stays
    pending in the stack's state; recover has the provider settle it, then rolls back."""
    assert _migrate(cli, project, "apply", "--yes").returncode == 0
    stack_config(project, "work", {"size": 20})
    _apply_until_kill(cli, project, "--phase", "work", group=False)
    assert _state(project, "work")["status"] == "applying"

    run = _migrate(cli, project, "recover")

    assert run.returncode == 0, run.stdout + run.stderr
    assert _state(project, "work")["status"] == "rolled_back"
    assert _files(cloud)["jobs"] == 10  # the last known good, again
    assert _migrate(cli, project, "apply", "--yes", "--phase", "work").returncode == 0
    assert _files(cloud)["jobs"] == 20


def test_the_machine_going_down_during_a_real_up_then_recover_says_what_to_check(
    cli: Any, project: Path, cloud: Path
) -> None:
    """The CLI dies with it: its lock stays (its holder is gone: cleared) and the create
    under way stays pending (it may exist: a person checks, then runs what the hint says)."""
    _apply_until_kill(cli, project, group=True)

    first = _migrate(cli, project, "recover")

    said = first.stdout + first.stderr
    assert first.returncode != 0, said
    assert "was stopped while creating pulumi-python:dynamic:Resource 'jobs'" in said, said
    hint = said[said.index("`pulumi refresh") + 1 : said.index("--clear-pending-creates`")]
    assert _state(project, "work")["status"] == "rollback_failed"

    # The person checks (jobs.json is not there, or is half made) and clears it.
    backend = project / ".phasegate" / "pulumi" / "backend"
    work = next((project / ".phasegate" / "pulumi" / "work").glob("staging-work-*"))
    cleared = subprocess.run(
        [*hint.split(), "--clear-pending-creates", "--yes", "--non-interactive"],
        cwd=work,
        env={**cli.env, **PASSPHRASE, "PULUMI_BACKEND_URL": f"file://{backend}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    (cloud / "jobs.json").unlink(missing_ok=True)

    second = _migrate(cli, project, "recover")

    assert second.returncode == 0, second.stdout + second.stderr
    assert _state(project, "work")["status"] == "rolled_back"


def _shape(value: Any, where: str = "") -> set[str]:
    """What a JSON document is made of, without its values: each path with its type."""
    if isinstance(value, dict):
        inner = {p for k, v in value.items() for p in _shape(v, f"{where}/{k}")}
        return {f"{where}/"} | inner
    if isinstance(value, list):
        inner = {p for i, v in enumerate(value) for p in _shape(v, f"{where}[{i}]")}
        return {f"{where}[]"} | inner
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {f"{where}: {'number' if number else type(value).__name__}"}


def test_plan_and_apply_json_have_the_same_shape_and_counts_on_both_engines(
    cli: Any, tmp_path: Path
) -> None:
    documents: dict[str, list[dict[str, Any]]] = {}
    for engine in ("sandbox", "pulumi"):
        project = build(tmp_path / engine, tmp_path / f"{engine}-cloud", engine=engine)
        plan = _migrate(cli, project, "plan", "--output", "json")
        apply = _migrate(cli, project, "apply", "--yes", "--output", "json")
        assert (plan.returncode, apply.returncode) == (0, 0), plan.stderr + apply.stderr
        documents[engine] = [json.loads(plan.stdout), json.loads(apply.stdout)]

    for sandbox, pulumi in zip(documents["sandbox"], documents["pulumi"], strict=True):
        assert sorted(_shape(pulumi) ^ _shape(sandbox)) == []
        assert [p["changes"] for p in pulumi["phases"]] == [p["changes"] for p in sandbox["phases"]]
        assert [p["resources"] for p in pulumi["phases"]] == [
            p["resources"] for p in sandbox["phases"]
        ]


PLAIN = '''"""An ordinary Pulumi program: top-level code, its provider defined right here."""
import json
from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider


class Notes(ResourceProvider):
    def create(self, props):
        path = Path(props["root"]) / "plain-note.json"
        path.write_text(json.dumps({"size": len(props["text"])}))
        return CreateResult(id_=str(path), outs={**props, "path": str(path)})

    def delete(self, _id, props):
        Path(props["path"]).unlink(missing_ok=True)


class Note(Resource):
    path: pulumi.Output[str]

    def __init__(self, name, root, text):
        super().__init__(Notes(), name, {"root": root, "text": text, "path": None})


note = Note("note", pulumi.Config("phasegate").require("root"), "hello")
pulumi.export("path", note.path)
'''


@pytest.mark.parametrize("engine", ["sandbox", "pulumi"])
def test_an_ordinary_pulumi_program_is_a_phase_on_both_engines(
    cli: Any, tmp_path: Path, engine: str
) -> None:
    cloud = tmp_path / "cloud"
    project = build(tmp_path / "project", cloud, engine=engine)
    (project / "phases" / "plain").mkdir()
    (project / "phases" / "plain" / "__main__.py").write_text(PLAIN)
    spec = yaml.safe_load((project / "migration.yaml").read_text())
    spec["phases"].append({"name": "plain", "program": "plain"})
    (project / "migration.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    stack_config(project, "plain", {"root": str(cloud)})

    run = _migrate(cli, project, "apply", "--yes", "--phase", "plain", "--output", "json")

    assert run.returncode == 0, run.stdout + run.stderr
    (report,) = json.loads(run.stdout)["phases"]
    assert (report["outcome"], report["status"]) == ("applied", "verified")
    assert _files(cloud) == {"plain-note": 5}
