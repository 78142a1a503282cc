"""What YAML lets through and phasegate does not: anchors and aliases, integers beyond 64
bits, and booleans where a number is wanted; each refused with the file, line and key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from phasegate.checks import CheckSpec
from phasegate.errors import InputError, StateFileError
from phasegate.yamlfile import load_model, read_yaml


class _Pool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(0, ge=0)
    share: float | None = None
    enabled: bool = False
    kind: str | int = "gpu"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    pools: list[_Pool] = Field(default_factory=list)
    sizes: dict[str, int] = Field(default_factory=dict)
    free: dict[str, object] = Field(default_factory=dict)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: &x 1\n", "1: a: YAML anchor '&x'"),
        ("a: 1\nb: *x\n", "2: b: YAML alias '*x'"),
        ("a:\n  - b\n  - &y {c: 1}\n", "3: a.1: YAML anchor '&y'"),
        ("&top {a: 1}\n", "1: (top level): YAML anchor '&top'"),
        ("? &k a\n: 1\n", "1: (top level): YAML anchor '&k'"),
    ],
)
def test_anchors_and_aliases_are_refused_where_they_are(
    tmp_path: Path, text: str, where: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        read_yaml(path)
    assert str(caught.value).startswith(f"{path}:{where}"), str(caught.value)
    assert str(caught.value).endswith("is not allowed (write each value out where it is used)")


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(InputError, match="YAML anchor '&a0' is not allowed"):
        read_yaml(path)
    assert time.monotonic() - started < 1


def test_state_files_with_an_alias_are_refused_as_damaged(tmp_path: Path) -> None:
    path = _write(tmp_path, "stack: &s x\n")
    with pytest.raises(StateFileError, match=r"doc.yaml:1: stack: YAML anchor '&s'"):
        read_yaml(path, StateFileError)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("9" * 5000, "999999999999... (5000 digits)"),
        ("-" + "1" * 30, "-11111111111... (30 digits)"),
        ("9223372036854775808", "9223372036854775808"),
        ("0x" + "f" * 17, "0xfffffffffffffffff"),
        ("!!int " + "1_" * 30 + "1", "1_1_1_1_1_1_... (31 digits)"),
    ],
)
def test_integers_beyond_64_bits_are_refused_with_line_and_key(
    tmp_path: Path, value: str, shown: str
) -> None:
    path = _write(tmp_path, f"pools:\n  - size: {value}\n")
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        read_yaml(path)
    assert time.monotonic() - started < 1
    assert str(caught.value) == (
        f"{path}:2: pools.0.size: integer {shown} is out of range "
        "(allowed: -9223372036854775808 to 9223372036854775807)"
    )


def test_integers_within_64_bits_read_as_before(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "a: 9223372036854775807\nb: -9223372036854775808\nc: 0x10\nd: 1_000\ne: 0\nf: 1:30\n",
    )
    assert read_yaml(path)[0] == {
        "a": 2**63 - 1,
        "b": -(2**63),
        "c": 16,
        "d": 1000,
        "e": 0,
        "f": 90,
    }


def test_a_tagged_integer_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "a: !!int twelve\n")
    with pytest.raises(InputError, match=r"doc.yaml:1: a: 'twelve' is not an integer"):
        read_yaml(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("pools:\n  - size: true\n", ":2: pools.0.size: true"),
        ("pools:\n  - share: false\n", ":2: pools.0.share: false"),
        ("sizes: {a: 1, b: true}\n", ":1: sizes.b: true"),
        ("version: true\n", ":1: version: true"),
    ],
)
def test_a_boolean_is_not_a_number(tmp_path: Path, text: str, where: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_model(path, _Doc)
    assert str(caught.value) == (f"{path}{where} is a boolean, not a number (allowed: a number)")


def test_booleans_stay_welcome_where_they_are_wanted(tmp_path: Path) -> None:
    path = _write(tmp_path, "pools:\n  - {enabled: true, size: 2, share: 0.5}\nfree: {x: true}\n")
    doc = load_model(path, _Doc)
    assert doc.pools[0].enabled is True and doc.free == {"x": True}


def test_a_boolean_is_not_a_number_in_check_params() -> None:
    with pytest.raises(ValueError, match=r"params.min_gpus: true is a boolean, not a number"):
        CheckSpec.model_validate(
            {
                "name": "gpus",
                "kind": "eks_nodegroup",
                # A reference elsewhere in the params does not let a literal through.
                "params": {"nodegroup": "${outputs.group}", "min_gpus": True},
            }
        )
