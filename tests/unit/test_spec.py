"""migration.yaml: the shipped file loads; a wrong one gets one located, actionable line."""

from __future__ import annotations

from pathlib import Path

import pytest

from _projects import REPO, shipped_project
from phasegate.errors import ExitCode, InputError
from phasegate.project import Project
from phasegate.spec import MIGRATION_FILE, Migration, load_migration

SHIPPED = shipped_project()
SHIPPED_YAML = (SHIPPED / MIGRATION_FILE).read_text(encoding="utf-8")

PHASE_KEYS = "name, program, depends_on, checks, rollback, protected"
ENV_KEYS = "name, engine, region, promote_from, approval, aws, backend"
TOP_KEYS = "schema_version, environments, phases"


def _line_of(text: str, needle: str) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(lines) == 1, f"{needle!r} is not on exactly one line of migration.yaml"
    return lines[0]


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    """The shipped migration.yaml with one exact piece of text replaced."""
    assert SHIPPED_YAML.count(old) == 1, f"{old!r} is not in the shipped migration.yaml once"
    (tmp_path / MIGRATION_FILE).write_text(SHIPPED_YAML.replace(old, new), encoding="utf-8")
    return tmp_path


def _load_error(root: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_migration(root)
    assert caught.value.exit_code == ExitCode.ERROR
    message = str(caught.value)
    assert "\n" not in message, "an input error is one line"
    return message


# --- the shipped file -----------------------------------------------------------------


def test_the_shipped_migration_loads() -> None:
    migration = load_migration(SHIPPED)
    assert [e.name for e in migration.environments] == ["sandbox", "staging", "prod"]
    assert [e.engine for e in migration.environments] == ["sandbox", "pulumi", "pulumi"]
    assert [e.promote_from for e in migration.environments] == [None, "sandbox", "staging"]
    assert migration.environment("prod").approval == "required"
    assert [p.name for p in migration.phases] == ["pilot", "data_layer", "compute", "cutover"]
    deps = {p.name: p.depends_on for p in migration.phases}
    assert deps == {
        "pilot": [],
        "data_layer": ["pilot"],
        "compute": ["pilot"],
        "cutover": ["compute", "data_layer"],
    }
    # Every data bucket, its guards and the key that encrypts them: a rollback never
    # deletes data or loosens its protection.
    assert migration.phase("data_layer").protected == ["lake-*"]


def test_every_shipped_stack_has_its_program_and_config() -> None:
    project = Project.load(SHIPPED)
    try:
        for env in project.migration.environments:
            for phase in project.migration.phases:
                target = project.target(env, phase)
                assert target.name == f"{env.name}-{phase.name}"
                assert f"{phase.program}.py" in target.program.files
                assert target.config, f"stacks/Pulumi.{target.name}.yaml has no config"
    finally:
        project.close()


def test_the_default_environment_is_the_first() -> None:
    assert load_migration(SHIPPED).environment(None).name == "sandbox"


def test_upstream_is_transitive_and_in_phase_order() -> None:
    migration = load_migration(SHIPPED)
    upstream = migration.upstream(migration.phase("cutover"))
    assert [p.name for p in upstream] == ["pilot", "data_layer", "compute"]
    assert migration.upstream(migration.phase("pilot")) == []


# --- misspelled keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key", "allowed"),
    [
        pytest.param(
            "    depends_on: [compute, data_layer]",
            "    depends_om: [compute, data_layer]",
            "depends_om",
            PHASE_KEYS,
            id="optional-phase-key",
        ),
        pytest.param(
            "    program: cutover",
            "    progam: cutover",
            "progam",
            PHASE_KEYS,
            id="required-phase-key",
        ),
        pytest.param(
            "    promote_from: sandbox",
            "    promote_form: sandbox",
            "promote_form",
            ENV_KEYS,
            id="environment-key",
        ),
        pytest.param("\nphases:\n", "\nphasess:\n", "phasess", TOP_KEYS, id="top-level-key"),
    ],
)
def test_a_misspelled_key_names_file_line_key_and_allowed_keys(
    tmp_path: Path, old: str, new: str, key: str, allowed: str
) -> None:
    root = _variant(tmp_path, old, new)
    line = _line_of((root / MIGRATION_FILE).read_text(), key + ":")
    message = _load_error(root)
    assert message.startswith(f"{root / MIGRATION_FILE}:{line}: "), message
    assert f"unknown key '{key}'" in message
    assert f"allowed: {allowed}" in message


# --- values that do not fit -----------------------------------------------------------


def test_depends_on_a_later_phase_is_refused(tmp_path: Path) -> None:
    root = _variant(
        tmp_path,
        "    program: pilot\n",
        "    program: pilot\n    depends_on: [compute]\n",
    )
    message = _load_error(root)
    assert message.startswith(f"{root / MIGRATION_FILE}:")
    assert "phase pilot" in message
    assert "depends_on 'compute' must name an earlier phase" in message


def test_depends_on_an_unknown_phase_lists_the_earlier_ones(tmp_path: Path) -> None:
    root = _variant(tmp_path, "depends_on: [compute, data_layer]", "depends_on: [compute, lake]")
    message = _load_error(root)
    assert "phase cutover: depends_on 'lake'" in message
    assert "one of: pilot, data_layer, compute" in message


def test_depends_on_takes_a_single_name_as_shorthand(tmp_path: Path) -> None:
    root = _variant(tmp_path, "depends_on: [compute, data_layer]", "depends_on: compute")
    assert load_migration(root).phase("cutover").depends_on == ["compute"]


def test_promote_from_a_later_environment_is_refused(tmp_path: Path) -> None:
    root = _variant(tmp_path, "promote_from: staging", "promote_from: nowhere")
    message = _load_error(root)
    assert "environment prod: promote_from 'nowhere' must name an earlier environment" in message
    assert "one of: sandbox, staging" in message


def test_repeated_phase_names_are_refused(tmp_path: Path) -> None:
    root = _variant(tmp_path, "  - name: compute ", "  - name: pilot ")
    assert "phase names repeat: pilot" in _load_error(root)


def test_an_unknown_engine_names_line_field_and_allowed_values(tmp_path: Path) -> None:
    root = _variant(
        tmp_path,
        "  - name: staging\n    engine: pulumi",
        "  - name: staging\n    engine: terraform",
    )
    line = _line_of((root / MIGRATION_FILE).read_text(), "engine: terraform")
    message = _load_error(root)
    assert message.startswith(f"{root / MIGRATION_FILE}:{line}: environments.1.engine: ")
    assert "'sandbox'" in message and "'pulumi'" in message


def test_a_badly_formed_phase_name_is_refused_with_its_field(tmp_path: Path) -> None:
    root = _variant(tmp_path, "  - name: compute ", "  - name: Compute ")
    message = _load_error(root)
    assert "phases.2.name" in message


def test_a_duplicate_key_in_migration_yaml_is_refused(tmp_path: Path) -> None:
    root = _variant(
        tmp_path, "    program: compute\n", "    program: compute\n    program: compute_v2\n"
    )
    line = _line_of((root / MIGRATION_FILE).read_text(), "program: compute_v2")
    message = _load_error(root)
    assert message.startswith(f"{root / MIGRATION_FILE}:")
    assert "duplicate key 'program'" in message
    assert f":{line}:" in message


def test_a_missing_migration_yaml_is_named(tmp_path: Path) -> None:
    message = _load_error(tmp_path)
    assert str(tmp_path / MIGRATION_FILE) in message
    assert "not found" in message


# --- selecting environments and phases ------------------------------------------------


def test_an_unknown_environment_is_an_input_error_with_the_allowed_list() -> None:
    migration = load_migration(SHIPPED)
    with pytest.raises(InputError) as caught:
        migration.environment("qa")
    assert caught.value.field == "--env"
    assert str(caught.value) == (
        "--env: unknown environment 'qa' (allowed: sandbox, staging, prod)"
    )


def test_an_unknown_phase_is_an_input_error_with_the_allowed_list() -> None:
    migration = load_migration(SHIPPED)
    with pytest.raises(InputError) as caught:
        migration.phase("gpu")
    assert caught.value.field == "--phase"
    assert str(caught.value) == (
        "--phase: unknown phase 'gpu' (allowed: pilot, data_layer, compute, cutover)"
    )


def test_the_schema_documents_every_field() -> None:
    schema = Migration.model_json_schema(by_alias=True)
    undocumented = [
        f"{model}.{name}"
        for model, spec in schema.get("$defs", {}).items()
        for name, prop in spec.get("properties", {}).items()
        if "description" not in prop
    ]
    assert undocumented == []


def _readme_environments() -> list[str]:
    """Each ```yaml block of the README that shows `environments:` entries."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in text.split("```yaml\n")[1:]]
    return [block for block in blocks if block.startswith("environments:")]


@pytest.mark.parametrize("block", _readme_environments())
def test_the_readmes_environment_examples_load(block: str, tmp_path: Path) -> None:
    """Excerpts of a migration.yaml: after the sandbox they may promote from, they load."""
    entries = block.removeprefix("environments:\n")
    text = f"environments:\n  - name: sandbox\n{entries}phases: []\n"
    (tmp_path / MIGRATION_FILE).write_text(text, encoding="utf-8")
    [_, *shown] = load_migration(tmp_path).environments
    assert shown and all(env.engine == "pulumi" for env in shown)


# --- the sandbox's legacy estate --------------------------------------------------------


def test_the_legacy_estate_is_configured_on_a_sandbox_environment(tmp_path: Path) -> None:
    root = _variant(
        tmp_path,
        "    engine: sandbox\n",
        "    engine: sandbox\n    legacy_estate: {objects: 800, large: 1, large_mib: 8, "
        "multipart: 2, overwrites: 5, deleted: 3}\n",
    )
    estate = load_migration(root).environment("sandbox").legacy_estate
    assert estate is not None and (estate.objects, estate.large_mib, estate.deleted) == (800, 8, 3)
    assert load_migration(SHIPPED).environment("sandbox").legacy_estate is None, "the defaults"


@pytest.mark.parametrize(
    ("setting", "field", "says"),
    [
        ("{objects: -1}", "legacy_estate.objects", "greater than or equal to 0"),
        ("{large_mib: 0}", "legacy_estate.large_mib", "greater than or equal to 1"),
        ("{deleted: -5}", "legacy_estate.deleted", "greater than or equal to 0"),
        ("{objects: 10, multipart: 20}", "legacy_estate", "objects (10) must be at least"),
        ("{sizes: 3}", "legacy_estate", "unknown key 'sizes'"),
    ],
)
def test_a_bad_legacy_estate_names_its_field(
    tmp_path: Path, setting: str, field: str, says: str
) -> None:
    root = _variant(
        tmp_path, "    engine: sandbox\n", f"    engine: sandbox\n    legacy_estate: {setting}\n"
    )
    message = _load_error(root)
    assert f"environments.0.{field}" in message and says in message, message


def test_a_legacy_estate_on_a_pulumi_environment_is_refused(tmp_path: Path) -> None:
    root = _variant(
        tmp_path,
        "  - name: staging\n    engine: pulumi\n",
        "  - name: staging\n    engine: pulumi\n    legacy_estate: {objects: 100}\n",
    )
    message = _load_error(root)
    assert "environments.1" in message and "legacy_estate is a setting of the sandbox" in message
    assert "engine is pulumi" in message, message
