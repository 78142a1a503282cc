"""Scaffolding without a CLI: where the example comes from, how a phase's entry joins a
migration.yaml written in any of the shapes a person may give it, the starter's names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from _projects import shipped_project
from phasegate import phase_template
from phasegate.errors import InputError, PhasegateError
from phasegate.scaffold import PROJECT_PARTS, _with_entry, example_dir
from phasegate.spec import MIGRATION_FILE, load_migration

SHIPPED = shipped_project()
SHIPPED_YAML = (SHIPPED / MIGRATION_FILE).read_text(encoding="utf-8")
ENVIRONMENTS = SHIPPED_YAML[SHIPPED_YAML.index("environments:") : SHIPPED_YAML.index("phases:")]


def _project(root: Path) -> Path:
    for part in PROJECT_PARTS:
        source = SHIPPED / part
        if source.is_dir():
            shutil.copytree(source, root / part)
        else:
            root.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / part)
    return root


# --- where the example comes from ----------------------------------------------------------


def test_the_package_copy_comes_before_the_checkout(tmp_path: Path) -> None:
    package, checkout = _project(tmp_path / "package"), _project(tmp_path / "checkout")
    assert example_dir(package, checkout) == package
    shutil.rmtree(package / "stacks")  # a partial copy is no example
    assert example_dir(package, checkout) == checkout


def test_no_example_anywhere_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(PhasegateError) as caught:
        example_dir(tmp_path / "package", tmp_path / "checkout")
    assert str(tmp_path / "package") in str(caught.value)
    assert "--from DIR" in str(caught.value)


def test_this_installation_has_an_example() -> None:
    found = example_dir()
    assert [p for p in PROJECT_PARTS if not (found / p).exists()] == []


# --- a phase's entry in migration.yaml -----------------------------------------------------


def _added(tmp_path: Path, text: str, depends_on: list[str] | None = None) -> str:
    path = tmp_path / MIGRATION_FILE
    new = _with_entry(path, text, "gpu_cache", depends_on or [])
    migration = load_migration(tmp_path, text=new)
    assert migration.phases[-1].name == "gpu_cache"
    assert migration.phases[-1].depends_on == (depends_on or [])
    return new


def test_the_entry_is_appended_to_the_shipped_file_byte_for_byte(tmp_path: Path) -> None:
    new = _added(tmp_path, SHIPPED_YAML, ["pilot", "compute"])
    assert new.startswith(SHIPPED_YAML + "\n  - name: gpu_cache")
    assert "    depends_on: [pilot, compute]\n" in new


def test_an_empty_list_takes_its_first_entry_under_the_key(tmp_path: Path) -> None:
    text = f"schema_version: 1\n{ENVIRONMENTS}phases: []  # none yet\n"
    new = _added(tmp_path, text)
    assert new.startswith(f"schema_version: 1\n{ENVIRONMENTS}phases:  # none yet\n  - name: ")


def test_the_entry_goes_into_the_list_when_other_keys_follow_it(tmp_path: Path) -> None:
    text = (
        "schema_version: 1\n"
        "phases:\n"
        "- name: pilot\n"
        "  program: pilot   # no trailing newline after the environments\n"
        "\n"
        f"{ENVIRONMENTS.rstrip()}"
    )
    new = _added(tmp_path, text)
    before, _, after = new.partition("\n- name: gpu_cache")
    assert before.endswith("  program: pilot   # no trailing newline after the environments\n")
    assert "\n  program: gpu_cache\n" in after
    assert after.endswith(ENVIRONMENTS.rstrip() + "\n")
    assert [p.name for p in load_migration(tmp_path, text=new).phases] == ["pilot", "gpu_cache"]


def test_a_flow_list_of_phases_is_left_to_a_person(tmp_path: Path) -> None:
    text = f"schema_version: 1\n{ENVIRONMENTS}phases: [{{name: pilot, program: pilot}}]\n"
    with pytest.raises(InputError) as caught:
        _with_entry(tmp_path / MIGRATION_FILE, text, "gpu_cache", [])
    assert "phases: is a flow list" in str(caught.value)


# --- the starter -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "name", "bucket"),
    [
        ("sandbox", "gpu_cache", "phasegate-sandbox-gpu-cache"),
        ("prod", "cache_", "phasegate-prod-cache"),
        ("a" * 32, "b" * 32, f"phasegate-{'a' * 32}-{'b' * 20}"),
    ],
)
def test_the_starter_bucket_name_is_one_s3_accepts(
    environment: str, name: str, bucket: str
) -> None:
    made = phase_template.bucket_name(environment, name)
    assert made == bucket
    assert len(made) <= 63 and made[0].isalnum() and made[-1].isalnum()


def test_the_starter_stack_config_holds_the_required_tags() -> None:
    text = phase_template.stack_config("gpu_cache", "prod", "eu-west-1", "team-a", "cc-7")
    config = yaml.safe_load(text)["config"]
    assert config == {
        "phasegate:owner": "team-a",
        "phasegate:cost_center": "cc-7",
        "phasegate:bucket_name": "phasegate-prod-gpu-cache",
    }
    assert "arn:aws:kms:eu-west-1:" in text, "the commented KMS knob names the region"
