"""Bad input gets one clear `error:` line and exit 1, never a traceback, and nothing on
disk changes: each test runs on a private copy of an applied project (state files, the
sandbox cloud, the lock file) and compares every byte of it before and after."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

Snapshot = Callable[[Path], dict[str, bytes]]


def _fails_cleanly(result: Any) -> str:
    """The one error line of a run that failed on bad input."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert result.stdout == ""
    return lines[0]


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def test_unknown_environment(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "apply", "--yes", "--env", "qa"))
    assert "--env" in line and "'qa'" in line
    assert "allowed: sandbox, staging, prod" in line
    assert snapshot(applied_project) == before


def test_unknown_phase(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "apply", "--yes", "--phase", "gpu"))
    assert "--phase" in line and "'gpu'" in line
    assert "allowed: pilot, data_layer, compute, cutover" in line
    assert snapshot(applied_project) == before


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        pytest.param(
            "    depends_on: [compute, data_layer]",
            "    depends_om: [compute, data_layer]",
            "depends_om",
            id="depends_on",
        ),
        pytest.param("    program: compute\n", "    progam: compute\n", "progam", id="program"),
    ],
)
def test_misspelled_key_in_migration_yaml(
    cli: Any, applied_project: Path, snapshot: Snapshot, old: str, new: str, key: str
) -> None:
    _replace_once(applied_project / "migration.yaml", old, new)
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan"))
    assert "migration.yaml:" in line
    assert f"'{key}'" in line
    assert "allowed:" in line
    assert snapshot(applied_project) == before


def test_state_file_with_invalid_yaml(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    state_file = applied_project / "state" / "sandbox" / "compute.yaml"
    state_file.write_bytes(state_file.read_bytes() + b"outputs: {unclosed: [\n")
    damaged = state_file.read_bytes()
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "apply", "--yes"))
    assert str(state_file) in line
    assert "invalid YAML" in line
    assert state_file.read_bytes() == damaged
    assert snapshot(applied_project) == before


def test_state_file_of_an_unknown_schema_version(
    cli: Any, applied_project: Path, snapshot: Snapshot
) -> None:
    state_file = applied_project / "state" / "sandbox" / "pilot.yaml"
    _replace_once(state_file, "schema_version: 2\n", "schema_version: 9\n")
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan"))
    assert str(state_file) in line and "schema_version 9" in line
    assert snapshot(applied_project) == before


def test_bad_flag(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan", "--bogus"))
    assert "--bogus" in line
    assert snapshot(applied_project) == before


def test_apply_without_yes_and_without_a_terminal(
    cli: Any, applied_project: Path, snapshot: Snapshot
) -> None:
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "apply"))
    assert "--yes" in line
    assert snapshot(applied_project) == before


def test_debug_shows_the_traceback(cli: Any, applied_project: Path, snapshot: Snapshot) -> None:
    before = snapshot(applied_project)
    result = cli.run(applied_project, "--debug", "plan", "--env", "qa")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "InputError" in result.stderr and "unknown environment 'qa'" in result.stderr
    assert snapshot(applied_project) == before


@pytest.mark.parametrize(
    ("stack", "old", "new", "expected"),
    [
        pytest.param(
            "sandbox-compute",
            "    min_size: 0\n    max_size: 2",
            "    min_size: 3\n    max_size: 2",
            "inference_pool: min_size (3) must be <= desired_size (1)",
            id="min-above-max",
        ),
        pytest.param(
            "sandbox-compute",
            "instance_types: [g6.xlarge, g5.xlarge]",
            "instance_types: [g6.xlarge, m5.large]",
            "inference_pool.instance_types: 'm5.large' not in the GPU catalog; allowed families: "
            "g5, g6, g6e, p4d, p4de, p5, p5e",
            id="unknown-instance-type",
        ),
        pytest.param(
            "sandbox-pilot",
            "[10.20.0.0/19, 10.20.32.0/19]",
            "[10.20.0.0/19, 10.20.16.0/20]",
            "private_subnet_cidrs: CIDR blocks must not overlap: private_subnet_cidrs[0] "
            "10.20.0.0/19 overlaps private_subnet_cidrs[1] 10.20.16.0/20",
            id="overlapping-cidrs",
        ),
        pytest.param(
            "sandbox-pilot",
            "[us-east-1a, us-east-1b]",
            "[eu-west-1a, eu-west-1b]",
            "availability_zones: zones eu-west-1a, eu-west-1b are not in the environment's "
            "region us-east-1",
            id="zones-of-another-region",
        ),
        pytest.param(
            "sandbox-cutover",
            "{legacy: 90, platform: 10,",
            "{legacy: 300, platform: 10,",
            "steps.0.legacy: a Route53 weight must be between 0 and 255 (got 300)",
            id="weight-300",
        ),
    ],
)
def test_bad_stack_config_value(
    cli: Any,
    applied_project: Path,
    snapshot: Snapshot,
    stack: str,
    old: str,
    new: str,
    expected: str,
) -> None:
    path = applied_project / "stacks" / f"Pulumi.{stack}.yaml"
    _replace_once(path, old, new)
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan"))
    assert line.startswith(f"error: {path}:"), line
    assert f" {expected}" in line
    # The line number points at the key to fix, or at the bad value inside it.
    text = path.read_text().splitlines()
    key = expected.split(":", 1)[0].split(".", 1)[0]
    key_line = next(i for i, t in enumerate(text, 1) if t.startswith(f"  phasegate:{key}:"))
    changed = next(i for i, t in enumerate(text, 1) if new.splitlines()[-1] in t)
    assert key_line <= int(line.split(":")[2]) <= changed
    assert snapshot(applied_project) == before


def test_a_mandatory_policy_violation_stops_apply_before_anything_changes(
    cli: Any, applied_project: Path, snapshot: Snapshot
) -> None:
    # Letting the inference pool grow to 12 GPUs breaks the sandbox's cap of 10.
    path = applied_project / "stacks" / "Pulumi.sandbox-compute.yaml"
    _replace_once(path, "    min_size: 0\n    max_size: 2", "    min_size: 0\n    max_size: 12")
    before = snapshot(applied_project)
    result = cli.run(applied_project, "apply", "--yes")
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    # The run's first line says what it set out to do; then why it did nothing.
    headline, *lines = result.stderr.strip().splitlines()
    assert headline == "Applying sandbox: pilot → data_layer → compute → cutover"
    assert lines[0] == "error: 1 mandatory policy violation(s); nothing was applied:"
    assert lines[1].strip().startswith("gpu-count-cap: pulumi:pulumi:Stack 'sandbox-compute'")
    assert "gpu-inference: 12 x 1" in lines[1] and "over the stack's cap of 10" in lines[1]
    assert snapshot(applied_project) == before


def test_a_bad_value_in_a_late_phase_leaves_the_earlier_phases_untouched(
    cli: Any, applied_project: Path, snapshot: Snapshot
) -> None:
    # compute has a real change to plan; cutover's config is wrong: nothing is recorded.
    stacks = applied_project / "stacks"
    _replace_once(stacks / "Pulumi.sandbox-compute.yaml", "desired_size: 1", "desired_size: 2")
    _replace_once(
        stacks / "Pulumi.sandbox-cutover.yaml",
        "{legacy: 90, platform: 10,",
        "{legacy: 300, platform: 10,",
    )
    before = snapshot(applied_project)
    for args in (("plan",), ("apply", "--yes")):
        line = _fails_cleanly(cli.run(applied_project, *args))
        assert "Pulumi.sandbox-cutover.yaml" in line and "steps.0.legacy" in line
        assert snapshot(applied_project) == before


def test_plan_with_a_mandatory_violation_shows_it_and_exits_5(
    cli: Any, applied_project: Path
) -> None:
    path = applied_project / "stacks" / "Pulumi.sandbox-compute.yaml"
    _replace_once(path, "    min_size: 0\n    max_size: 2", "    min_size: 0\n    max_size: 12")
    result = cli.run(applied_project, "plan", "--detailed-exitcode")
    assert result.returncode == 5, result.stderr
    assert "policy mandatory gpu-count-cap" in result.stdout
    assert result.stderr.strip().splitlines() == [
        "Planning sandbox: pilot → data_layer → compute → cutover",
        "error: 1 mandatory policy violation(s) (see above): apply would refuse this plan",
    ]


# --- files that parse but say less, or more, than they seem to --------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", ": config: missing: the file is empty", id="empty-file"),
        pytest.param("# nothing yet\n", ": config: missing: the file is empty", id="comments-only"),
        pytest.param("config:\n", ":1: config: is empty", id="config-null"),
        pytest.param("encryptionsalt: abc\n", ": config: missing", id="no-config-key"),
    ],
)
def test_an_empty_stack_config_is_refused_not_read_as_all_defaults(
    cli: Any, applied_project: Path, snapshot: Snapshot, text: str, expected: str
) -> None:
    path = applied_project / "stacks" / "Pulumi.sandbox-pilot.yaml"
    path.write_text(text)
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan"))
    assert line == (
        f"error: {path}{expected} (a stack with no settings of its own has `config: {{}}`)"
    )
    assert snapshot(applied_project) == before


def test_a_stack_with_deliberately_no_settings_writes_an_empty_config(
    cli: Any, applied_project: Path
) -> None:
    # pilot's model has a default for everything: `config: {}` is all defaults, on purpose.
    (applied_project / "stacks" / "Pulumi.sandbox-pilot.yaml").write_text("config: {}\n")
    result = cli.run(applied_project, "plan", "--phase", "pilot")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("stack", "old", "new", "field"),
    [
        pytest.param(
            "sandbox-compute",
            "    desired_size: 1\n",
            "    desired_size: true\n",
            "inference_pool.desired_size",
            id="desired_size",
        ),
        pytest.param(
            "sandbox-compute",
            "phasegate:max_gpus: 10",
            "phasegate:max_gpus: false",
            "max_gpus",
            id="max_gpus",
        ),
        pytest.param(
            "sandbox-cutover",
            "{legacy: 90, platform: 10, bake_seconds: 3}",
            "{legacy: 90, platform: 10, bake_seconds: true}",
            "steps.0.bake_seconds",
            id="float-in-a-list",
        ),
    ],
)
def test_a_boolean_is_not_a_number_in_a_stack_config(
    cli: Any, fresh_project: Path, snapshot: Snapshot, stack: str, old: str, new: str, field: str
) -> None:
    path = fresh_project / "stacks" / f"Pulumi.{stack}.yaml"
    _replace_once(path, old, new)
    number = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if new.strip() in t)

    def files() -> dict[str, bytes]:  # a fresh project's first run makes the lock file
        return {k: v for k, v in snapshot(fresh_project).items() if "locks" not in k}

    before = files()
    line = _fails_cleanly(cli.run(fresh_project, "plan"))
    value = new.strip().rsplit(" ", 1)[1].rstrip(",}")
    assert line == (
        f"error: {path}:{number}: {field}: {value} is a boolean, not a number (allowed: a number)"
    )
    assert files() == before


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "          min_gpus: 1      # inference always serves on at least one GPU\n",
            "          min_gpus: true\n",
            "phases.2.checks.0: params.min_gpus: true is a boolean, not a number",
            id="check-param",
        ),
        pytest.param(
            "        timeout: 7200\n",
            "        timeout: true\n",
            "phases.3.checks.1.timeout: true is a boolean, not a number (allowed: a number)",
            id="check-timeout",
        ),
        pytest.param(
            "schema_version: 1\n",
            "schema_version: true\n",
            "schema_version: true is a boolean, not a number (allowed: a number)",
            id="schema-version",
        ),
    ],
)
def test_a_boolean_is_not_a_number_in_migration_yaml(
    cli: Any, applied_project: Path, snapshot: Snapshot, old: str, new: str, expected: str
) -> None:
    path = applied_project / "migration.yaml"
    _replace_once(path, old, new)
    number = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t == new.rstrip())
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan"))
    assert line.startswith(f"error: {path}:"), line
    assert f" {expected}" in line
    assert int(line.split(":")[2]) <= number
    assert snapshot(applied_project) == before


@pytest.mark.parametrize(
    ("where", "old", "new", "key"),
    [
        pytest.param(
            "stacks/Pulumi.sandbox-compute.yaml",
            "    desired_size: 1\n",
            "    desired_size: " + "9" * 5000 + "\n",
            "config.phasegate:inference_pool.desired_size",
            id="stack-config",
        ),
        pytest.param(
            "migration.yaml",
            "        timeout: 7200\n",
            "        timeout: -" + "1" * 30 + "\n",
            "phases.3.checks.1.timeout",
            id="migration-yaml",
        ),
    ],
)
def test_a_huge_integer_is_refused_with_file_line_and_key(
    cli: Any, applied_project: Path, snapshot: Snapshot, where: str, old: str, new: str, key: str
) -> None:
    path = applied_project / where
    _replace_once(path, old, new)
    number = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t == new.rstrip())
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan"))
    assert line.startswith(f"error: {path}:{number}: {key}: integer "), line
    assert line.endswith(
        " is out of range (allowed: -9223372036854775808 to 9223372036854775807)"
    ), line
    assert len(line) < 400  # not the 5,000 digits back
    assert snapshot(applied_project) == before


_ALIAS_BOMB = """\
          a: &a [x, x, x, x, x, x, x, x, x, x]
          b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
          c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
          d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
          e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
          f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


def test_yaml_anchors_and_aliases_are_refused_in_migration_yaml(
    cli: Any, applied_project: Path, snapshot: Snapshot
) -> None:
    # A million strings out of six lines, in a check's params.
    path = applied_project / "migration.yaml"
    _replace_once(
        path,
        "        params: {min_gpus: 1}\n",
        "        params:\n          min_gpus: 1\n" + _ALIAS_BOMB,
    )
    number = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "&a [" in t)
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan", timeout=60))
    assert line == (
        f"error: {path}:{number}: phases.2.checks.4.params.a: YAML anchor '&a' is not allowed "
        "(write each value out where it is used)"
    )
    assert snapshot(applied_project) == before


def test_yaml_anchors_are_refused_in_a_stack_config(
    cli: Any, applied_project: Path, snapshot: Snapshot
) -> None:
    path = applied_project / "stacks" / "Pulumi.sandbox-compute.yaml"
    _replace_once(path, "  phasegate:training_pool:\n", "  phasegate:training_pool: &pool\n")
    _replace_once(
        path,
        "  phasegate:inference_pool:\n    instance_types: [g6.xlarge, g5.xlarge]\n",
        "  phasegate:inference_pool:\n    <<: *pool\n    instance_types: [g6.xlarge, g5.xlarge]\n",
    )
    number = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "&pool" in t)
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "plan"))
    assert line == (
        f"error: {path}:{number}: config.phasegate:training_pool: YAML anchor '&pool' is not "
        "allowed (write each value out where it is used)"
    )
    assert snapshot(applied_project) == before


def test_yaml_aliases_are_refused_in_a_state_file(
    cli: Any, applied_project: Path, snapshot: Snapshot
) -> None:
    state_file = applied_project / "state" / "sandbox" / "pilot.yaml"
    state = yaml.safe_load(state_file.read_text())
    # What phasegate writes never has one; a hand edit that adds one is refused.
    text = state_file.read_text().replace("stack: sandbox-pilot\n", "stack: &s sandbox-pilot\n")
    state_file.write_text(text)
    assert state["stack"] == "sandbox-pilot"
    number = next(i for i, t in enumerate(text.splitlines(), 1) if "&s" in t)
    damaged = state_file.read_bytes()
    before = snapshot(applied_project)
    line = _fails_cleanly(cli.run(applied_project, "status"))
    assert line == (
        f"error: {state_file}:{number}: stack: YAML anchor '&s' is not allowed "
        "(write each value out where it is used)"
    )
    assert state_file.read_bytes() == damaged
    assert snapshot(applied_project) == before
