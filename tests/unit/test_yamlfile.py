"""YAML files people edit: parsed strictly, and a broken one named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from phasegate.errors import InputError, StateFileError
from phasegate.yamlfile import dump_yaml, load_model, read_yaml


class _Pool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=0)
    kind: str = "gpu"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    pools: list[_Pool] = Field(default_factory=list)


def _write(tmp_path: Path, text: str, name: str = "doc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_data_and_node_tree(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: a\npools:\n  - size: 1\n")
    data, node = read_yaml(path)
    assert data == {"name": "a", "pools": [{"size": 1}]}
    assert isinstance(node, yaml.MappingNode)


def test_duplicate_key_is_refused_with_the_line_of_the_second_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: a\npools: []\nname: b\n")
    with pytest.raises(InputError) as caught:
        read_yaml(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert "duplicate key 'name'" in str(caught.value)


def test_nested_duplicate_key_is_refused_too(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: a\npools:\n  - size: 1\n    kind: gpu\n    size: 2\n")
    with pytest.raises(InputError, match=r":5: invalid YAML: duplicate key 'size'"):
        read_yaml(path)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: a\nkind: gpu: yes\npools: []\n")
    with pytest.raises(InputError) as caught:
        read_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: invalid YAML: ")
    assert "mapping values are not allowed here" in message
    assert "\n" not in message


def test_unclosed_flow_sequence_names_file_and_a_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: a\npools: [\n  {size: 1\n")
    with pytest.raises(InputError, match=r"doc\.yaml:\d+: invalid YAML: "):
        read_yaml(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match=r"nope\.yaml: file not found"):
        read_yaml(path)


def test_the_error_class_is_the_callers(tmp_path: Path) -> None:
    path = _write(tmp_path, "a: [\n")
    with pytest.raises(StateFileError):
        read_yaml(path, StateFileError)


def test_load_model_unknown_key_names_line_key_and_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: a\npools:\n  - size: 1\n    knd: cpu\n")
    with pytest.raises(InputError) as caught:
        load_model(path, _Doc)
    assert str(caught.value) == (
        f"{path}:4: unknown key 'knd' in pools.0; did you mean 'kind'? (allowed: size, kind)"
    )


def test_load_model_wrong_value_names_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: a\npools:\n  - size: 1\n  - size: -3\n")
    with pytest.raises(InputError) as caught:
        load_model(path, _Doc)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: pools.1.size: ")
    assert "greater than or equal to 0" in message


def test_load_model_refuses_a_top_level_list(tmp_path: Path) -> None:
    path = _write(tmp_path, "- name: a\n")
    with pytest.raises(InputError, match="expected a mapping at the top level"):
        load_model(path, _Doc)


def test_an_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "# nothing yet\n")
    with pytest.raises(InputError, match=r"name: Field required"):
        load_model(path, _Doc)


_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.text(max_size=30).filter(lambda s: "\r" not in s and "\x85" not in s),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=12,
)


@given(st.dictionaries(_keys, _values, max_size=6))
def test_dump_yaml_reads_back_the_same_data_and_is_stable(data: dict) -> None:
    text = dump_yaml(data)
    assert yaml.safe_load(text) == (data or {})
    assert dump_yaml(data) == text


def test_dump_yaml_writes_no_aliases_for_shared_objects() -> None:
    shared = {"subnets": ["a", "b"]}
    text = dump_yaml({"one": shared, "two": shared})
    assert "&" not in text and "*" not in text
    assert yaml.safe_load(text) == {"one": shared, "two": shared}


def test_dump_yaml_keeps_the_given_key_order_and_uses_block_style() -> None:
    text = dump_yaml({"b": 1, "a": {"y": [1, 2], "x": "two\nlines"}})
    assert text == "b: 1\na:\n  y:\n  - 1\n  - 2\n  x: |-\n    two\n    lines\n"
