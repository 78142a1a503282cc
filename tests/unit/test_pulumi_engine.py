"""The pulumi engine's own logic, which needs no Pulumi CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from phasegate.engines.base import Op, ProgramSource, StackTarget
from phasegate.engines.pulumi import PulumiEngine, change_from_metadata
from phasegate.errors import EngineError


def _meta(op: str, type_: str, name: str, diffs: list[str] | None = None) -> SimpleNamespace:
    urn = f"urn:pulumi:sandbox-pilot::phasegate::{type_}::{name}"
    return SimpleNamespace(op=op, type=type_, urn=urn, diffs=diffs)


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("create", Op.CREATE),
        ("update", Op.UPDATE),
        ("replace", Op.REPLACE),
        ("delete", Op.DELETE),
        ("same", Op.SAME),
        # Defect 11: these three were dropped from plans.
        ("import", Op.IMPORT),
        ("import-replacement", Op.REPLACE),
        ("read-replacement", Op.REPLACE),
    ],
)
def test_step_ops_map_to_plan_ops(op: str, expected: Op) -> None:
    change = change_from_metadata(
        _meta(op, "aws:eks/nodeGroup:NodeGroup", "gpu", ["scalingConfig"])
    )
    assert change is not None
    assert (change.op, change.name, change.changed) == (expected, "gpu", ("scalingConfig",))


@pytest.mark.parametrize(
    ("op", "type_"),
    [
        ("create", "pulumi:pulumi:Stack"),
        ("create", "pulumi:providers:aws"),
        ("create-replacement", "aws:ec2/vpc:Vpc"),  # a replacement counts once: "replace"
        ("delete-replaced", "aws:ec2/vpc:Vpc"),
        ("discard", "aws:ec2/vpc:Vpc"),
    ],
)
def test_internal_steps_are_not_plan_entries(op: str, type_: str) -> None:
    assert change_from_metadata(_meta(op, type_, "x")) is None


def _target(tmp_path: Path) -> StackTarget:
    return StackTarget(
        project="phasegate",
        environment="staging",
        phase="pilot",
        region="eu-west-1",
        program=ProgramSource("pilot", {"__main__.py": b"print(1)\n", "pilot.py": b"x = 1\n"}),
        config={"phasegate:vpc_cidr": "10.0.0.0/16"},
        endpoint_url="http://127.0.0.1:5000",
    )


def test_work_dir_holds_exactly_the_snapshot_and_its_config(tmp_path: Path) -> None:
    engine = PulumiEngine(tmp_path, tmp_path / "home")
    work = engine.work_dir(_target(tmp_path))
    assert (work / "program" / "pilot.py").read_bytes() == b"x = 1\n"
    project = yaml.safe_load((work / "Pulumi.yaml").read_text())
    assert project["main"] == "program/" and project["stackConfigDir"] == "stacks"
    config = yaml.safe_load((work / "stacks" / "Pulumi.staging-pilot.yaml").read_text())["config"]
    assert config["phasegate:phase"] == "pilot"
    assert config["phasegate:vpc_cidr"] == "10.0.0.0/16"
    assert config["aws:skipCredentialsValidation"] is True


def test_environment_of_a_run(tmp_path: Path) -> None:
    engine = PulumiEngine(tmp_path, tmp_path / "home")
    env = engine._env(_target(tmp_path))
    assert env["PULUMI_BACKEND_URL"] == f"file://{tmp_path / 'home' / 'backend'}"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"


def test_missing_cli_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    engine = PulumiEngine(tmp_path, tmp_path / "home")
    with pytest.raises(EngineError, match="needs the Pulumi CLI on PATH"):
        engine.preview(_target(tmp_path))


def test_secure_values_keep_their_salt_in_the_work_dir(tmp_path: Path) -> None:
    target = _target(tmp_path)
    target = StackTarget(
        **{
            **target.__dict__,
            "config": {"phasegate:db_password": {"secure": "v1:abc:def"}},
            "stack_settings": {"encryptionsalt": "v1:salt:xyz"},
        }
    )
    work = PulumiEngine(tmp_path, tmp_path / "home").work_dir(target)
    stack = yaml.safe_load((work / "stacks" / "Pulumi.staging-pilot.yaml").read_text())
    assert stack["encryptionsalt"] == "v1:salt:xyz"
    assert stack["config"]["phasegate:db_password"] == {"secure": "v1:abc:def"}
    assert stack["config"]["phasegate:program"] == "pilot"


def test_passphrase_is_passed_only_when_the_user_set_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = PulumiEngine(tmp_path, tmp_path / "home")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    assert "PULUMI_CONFIG_PASSPHRASE" not in engine._env(_target(tmp_path))
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "correct horse")
    assert engine._env(_target(tmp_path))["PULUMI_CONFIG_PASSPHRASE"] == "correct horse"


def test_outputs_of_a_stack_use_its_environments_backend(tmp_path: Path) -> None:
    engine = PulumiEngine(
        tmp_path, tmp_path / "home", {"staging": "s3://state-staging", "prod": None}
    )
    assert engine._env(None, "staging")["PULUMI_BACKEND_URL"] == "s3://state-staging"
    assert engine._env(None, "prod")["PULUMI_BACKEND_URL"].startswith("file://")
    assert engine._env(_target(tmp_path))["PULUMI_BACKEND_URL"] == "s3://state-staging"


def test_program_snapshot_holds_data_files_but_not_caches_or_other_phases(
    tmp_path: Path,
) -> None:
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "pilot.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "pilot.py").write_text("x = 1\n")
    (tmp_path / "compute.py").write_text("y = 2\n")
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "gpu.json").write_text("{}\n")
    (tmp_path / ".swp").write_text("editor state\n")
    source = ProgramSource.from_directory(tmp_path, "pilot", {"compute"})
    assert sorted(source.files) == ["dashboards/gpu.json", "pilot.py"]


def test_policy_pack_and_its_stack_config_are_passed_to_crossguard(tmp_path: Path) -> None:
    pack = tmp_path / "policies"
    pack.mkdir()
    target = StackTarget(
        **{
            **_target(tmp_path).__dict__,
            "policy_pack": pack,
            "policy_config": {"gpu-count-cap": {"maxGpus": 16}},
        }
    )
    (pack / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.3.0\n")
    args = PulumiEngine(tmp_path, tmp_path / "home")._policy_args(target)
    # The CLI starts the pack as an executable: the SDK's policy runner on the pack.
    (launcher,) = map(Path, args["policy_packs"])
    assert launcher.stat().st_mode & 0o111
    assert repr(str(pack.resolve())) in launcher.read_text()
    assert "pulumi.policy" in launcher.read_text()
    assert (launcher.parent / "PulumiPolicy.yaml").read_text().endswith("version: 0.3.0\n")
    (config,) = args["policy_pack_configs"]
    assert json.loads(Path(config).read_text()) == {"gpu-count-cap": {"maxGpus": 16}}
    assert PulumiEngine(tmp_path, tmp_path / "home")._policy_args(_target(tmp_path)) == {}


def test_crossguard_findings_carry_the_reason_without_colour_and_advisory_ones_are_kept() -> None:
    """Defect 6: the lines carried the CLI's colour markup and the rule's description (the
    first line of the event's message), not the reason; advisory findings were dropped."""
    from pulumi.automation import events

    from phasegate.engines.pulumi import EventWatch

    seen: list[object] = []
    watch = EventWatch(seen.append)
    for level, name in (("mandatory", "launch-template-imdsv2"), ("advisory", "required-tags")):
        event = events.EngineEvent(
            sequence=1,
            timestamp=0,
            policy_event=events.PolicyEvent(
                # As the CLI sends it: the rule's description, then the rule's reason.
                message="<{%fg 13%}><{%bold%}>Launch templates require IMDSv2\n"
                "metadataOptions.httpTokens must be 'required'<{%reset%}>\n",
                color="raw",
                policy_name=name,
                policy_pack_name="phasegate",
                policy_pack_version="0.1.0",
                policy_pack_version_tag="0.1.0",
                enforcement_level=level,
                resource_urn="urn:pulumi:prod-compute::phasegate::aws:ec2/launchTemplate:"
                "LaunchTemplate::gpu-inference-template",
            ),
        )
        watch(event)
    assert watch.mandatory == [
        "launch-template-imdsv2: aws:ec2/launchTemplate:LaunchTemplate "
        "'gpu-inference-template': metadataOptions.httpTokens must be 'required'"
    ]
    assert [(v.rule, v.enforcement, v.message) for v in watch.findings] == [
        ("launch-template-imdsv2", "mandatory", "metadataOptions.httpTokens must be 'required'"),
        ("required-tags", "advisory", "metadataOptions.httpTokens must be 'required'"),
    ]
    assert len(seen) == 2  # the events still reach the progress display


def test_a_relative_file_backend_is_the_projects_whatever_version_runs(tmp_path: Path) -> None:
    """The CLI runs in a work dir per program version: a relative file:// backend would be
    a new, empty one for each, and every version would create everything again."""
    engine = PulumiEngine(tmp_path, tmp_path / "home", {"staging": "file://state/pulumi"})
    url = engine._env(None, "staging")["PULUMI_BACKEND_URL"]
    assert url == f"file://{(tmp_path / 'state' / 'pulumi').resolve()}"
    assert (tmp_path / "state" / "pulumi").is_dir()
    for kept in (f"file://{tmp_path / 'elsewhere'}", "s3://bucket/state"):
        assert (
            PulumiEngine(tmp_path, tmp_path / "h", {"e": kept})._env(None, "e")[
                "PULUMI_BACKEND_URL"
            ]
            == kept
        )


def test_stacks_of_cloud_secrets_providers_and_esc_environments_are_accepted(
    fresh_project: Path,
) -> None:
    """Defect 8: a stack file with `encryptedkey` (a KMS, Vault or service secrets
    provider's data key) or `environment:` (ESC) was refused; each reaches the CLI's
    stack file as written, lists as lists."""
    from phasegate.project import Project

    path = fresh_project / "stacks" / "Pulumi.staging-pilot.yaml"
    data = yaml.safe_load(path.read_text())
    data.pop("encryptionsalt", None)
    data["secretsprovider"] = "awskms://alias/phasegate-staging?region=eu-west-1"
    data["encryptedkey"] = "AQICAHhFakeDataKeyCiphertext=="
    data["environment"] = ["platform/aws-staging"]
    path.write_text(yaml.safe_dump(data))
    project = Project.load(fresh_project)
    target = project.target(
        project.migration.environment("staging"), project.migration.phase("pilot")
    )

    work = PulumiEngine(fresh_project, fresh_project / ".phasegate" / "pulumi").work_dir(target)

    stack = yaml.safe_load((work / "stacks" / "Pulumi.staging-pilot.yaml").read_text())
    assert stack["secretsprovider"] == data["secretsprovider"]
    assert stack["encryptedkey"] == data["encryptedkey"]
    assert stack["environment"] == ["platform/aws-staging"]


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("environment", "platform/aws-staging", "must be a list of environment names"),
        ("encryptedkey", ["x"], "must be a string"),
    ],
)
def test_a_stack_setting_of_the_wrong_kind_is_one_line_naming_it(
    fresh_project: Path, key: str, value: object, said: str
) -> None:
    from phasegate.errors import InputError
    from phasegate.project import Project

    path = fresh_project / "stacks" / "Pulumi.staging-pilot.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), key: value}))
    project = Project.load(fresh_project)
    with pytest.raises(InputError) as refused:
        project.target(project.migration.environment("staging"), project.migration.phase("pilot"))
    assert str(refused.value) == f"{path}: {key}: {said}"


def _sdk_raising(monkeypatch: pytest.MonkeyPatch, error: Exception, *, on_preview: bool) -> None:
    """The Automation API raising ``error`` as it selects the stack, or as it previews."""
    from pulumi import automation

    monkeypatch.setattr("phasegate.engines.pulumi.shutil.which", lambda _: "/opt/pulumi/bin/pulumi")

    def select(**_: object) -> object:
        if not on_preview:
            raise error

        def preview(**_: object) -> None:
            raise error

        return SimpleNamespace(preview=preview)

    monkeypatch.setattr(automation, "create_or_select_stack", select)


def test_a_cli_too_old_for_the_sdk_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 11: the SDK's InvalidVersionError escaped as a raw exception."""
    from pulumi.automation import InvalidVersionError

    said = "Minimum version requirement failed. The minimum CLI version requirement is 3.272.0"
    _sdk_raising(monkeypatch, InvalidVersionError(said), on_preview=False)
    with pytest.raises(EngineError) as refused:
        PulumiEngine(tmp_path, tmp_path / "home").preview(_target(tmp_path))
    assert str(refused.value) == (
        f"staging-pilot: the Pulumi CLI at /opt/pulumi/bin/pulumi cannot run it: {said} "
        "(install a Pulumi CLI at least as new as the pulumi Python SDK, or build one with "
        "scripts/build-pulumi.sh)"
    )


def test_a_preview_without_its_summary_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 11: a preview whose summary event never came escaped as a RuntimeError."""
    _sdk_raising(monkeypatch, RuntimeError("summary event never found"), on_preview=True)
    with pytest.raises(EngineError, match=r"^staging-pilot: the Pulumi CLI ended its preview"):
        PulumiEngine(tmp_path, tmp_path / "home").preview(_target(tmp_path))
