"""Writing a ``secure:`` value into a stack config file people edit and review.

The file keeps every line it had (comments above each knob included): only the entry of
the key set is written, in Pulumi's own block form, at its old place or after the last
entry of ``config:``; an ``encryptionsalt:`` line goes before ``config:`` when the file had
none. The result is parsed again and must read as the old file plus exactly that change,
or nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from phasegate.atomic import write_atomic
from phasegate.errors import InputError
from phasegate.yamlfile import dump_yaml, last_line, read_yaml

__all__ = ["set_secure_value"]


def _entry(key: str, secure: str, indent: int) -> list[str]:
    """``key: {secure: ...}`` in block form, as ``pulumi config set --secret`` writes it."""
    pad = " " * indent
    name = yaml.safe_dump({key: None}, width=1_000_000).rsplit(": null", 1)[0]
    return [f"{pad}{name}:\n", f"{pad}  secure: {secure}\n"]


def _is_empty(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == "" and not node.style


def set_secure_value(path: Path, key: str, secure: str, salt_state: str | None) -> None:
    """Set ``config.<key>`` of the stack file at ``path`` to ``{secure: <secure>}``, and its
    ``encryptionsalt`` to ``salt_state`` when that is given (the file had none). A file
    that does not exist yet is created."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    data, root = read_yaml(path) if text else (None, None)
    data = data or {}
    if not isinstance(data, dict) or not isinstance(data.get("config") or {}, dict):
        raise InputError("expected a mapping with a 'config' mapping", file=path)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    config_key = config_value = None
    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            if k.value == "config":
                config_key, config_value = k, v
    if config_key is None or config_value is None:
        lines += ["config:\n", *_entry(key, secure, 2)]
        config_line = len(lines) - 3
    elif (
        isinstance(config_value, yaml.MappingNode)
        and not config_value.flow_style
        and config_value.value
    ):
        config_line = config_key.start_mark.line
        found = [(k, v) for k, v in config_value.value if k.value == key]
        if found:
            start, end = found[0][0].start_mark.line, last_line(found[0][1])
            indent = found[0][0].start_mark.column
            lines[start : end + 1] = _entry(key, secure, indent)
        else:
            indent = config_value.value[0][0].start_mark.column
            after = last_line(config_value) + 1
            lines[after:after] = _entry(key, secure, indent)
    else:
        # `config:` empty, or a flow mapping: written again in block form.
        config_line = config_key.start_mark.line
        merged = {**(data.get("config") or {}), key: {"secure": secure}}
        block = dump_yaml({"config": merged}).splitlines(keepends=True)
        end = config_line if _is_empty(config_value) else last_line(config_value)
        lines[config_line : end + 1] = block
    if salt_state is not None:
        lines.insert(config_line, f"encryptionsalt: {salt_state}\n")
    new_text = "".join(lines)
    expected: dict[str, Any] = {**data, "config": {**(data.get("config") or {})}}
    expected["config"][key] = {"secure": secure}
    if salt_state is not None:
        expected["encryptionsalt"] = salt_state
    try:
        written = yaml.safe_load(new_text)
    except yaml.YAMLError:
        written = None
    if written != expected:
        raise InputError(
            f"cannot set config.{key} without rewriting the file; nothing was written",
            file=path,
            hint="set it by hand as `secure: <value>` under config",
        )
    write_atomic(path, new_text.encode())
