"""YAML files people edit: parse, validate into a pydantic model, and say exactly where it broke.

A bad file gets one line: ``file:line: field: what is wrong (allowed: ...)``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from phasegate.errors import InputError

__all__ = [
    "dump_yaml",
    "last_line",
    "line_of",
    "load_model",
    "read_yaml",
    "refuse_booleans_as_numbers",
    "validation_to_error",
]

M = TypeVar("M", bound=BaseModel)


_INT_TAG = "tag:yaml.org,2002:int"
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
"""Integers a YAML file may hold: 64 bits, what every engine and cloud API takes."""


class _Refused(yaml.YAMLError):
    """Well-formed YAML that phasegate does not accept, at a line and a key."""

    def __init__(self, message: str, mark: yaml.Mark, at: list[str | int], hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.line = mark.line + 1
        self.field = ".".join(str(p) for p in at) or "(top level)"
        self.hint = hint


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a reviewer would miss the shadowed one),
    anchors and aliases (a value pasted from elsewhere is not where a reviewer reads it,
    and a few lines of them expand to billions of values) and integers beyond 64 bits."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._at: list[str | int] = []
        """The keys (and list positions) down to the node being composed."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if isinstance(index, yaml.Node):  # a mapping's value, under its key
            self._at.append(str(index.value))
        elif isinstance(index, int):  # a list's item
            self._at.append(index)
        try:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
                raise _Refused(
                    f"YAML {'alias' if sign == '*' else 'anchor'} '{sign}{event.anchor}' is "
                    "not allowed",
                    event.start_mark,
                    self._at,
                    "write each value out where it is used",
                )
            node = super().compose_node(parent, index)
            if isinstance(node, yaml.ScalarNode) and node.tag == _INT_TAG:
                self._refuse_huge(node)
            return node
        finally:
            if index is not None:
                self._at.pop()

    def _refuse_huge(self, node: yaml.ScalarNode) -> None:
        text = str(node.value)
        value: int | None = None
        if len(text) <= 40:  # longer cannot fit; converting it could take seconds
            try:
                value = self.construct_yaml_int(node)
            except (ValueError, IndexError):
                raise _Refused(
                    f"{text!r} is not an integer", node.start_mark, self._at, "write a number"
                ) from None
        if value is None or not _INT_MIN <= value <= _INT_MAX:
            digits = sum(c.isdigit() for c in text)
            shown = text if len(text) <= 24 else f"{text[:12]}... ({digits} digits)"
            raise _Refused(
                f"integer {shown} is out of range",
                node.start_mark,
                self._at,
                f"allowed: {_INT_MIN} to {_INT_MAX}",
            )


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(
    path: Path, error: type[InputError] = InputError, text: str | None = None
) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; returns the data and its node tree (for line numbers).

    ``text``: parse this instead of the file's content (what is about to be written
    there), with errors located in ``path`` all the same."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise error("file not found", file=path) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"cannot read: {exc}", file=path) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise error(
            exc.message, file=f"{path}:{exc.line}", field=exc.field, hint=exc.hint
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"invalid YAML: {problem}", file=f"{path}{line}") from None
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest node along ``loc`` that exists."""
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def last_line(node: yaml.Node) -> int:
    """The 0-based last line that holds some of ``node``'s text."""
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style:
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if children:
            return max(last_line(child) for child in children)
    end = node.end_mark
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def refuse_booleans_as_numbers(model: type[BaseModel], data: Any) -> None:
    """YAML's ``true`` is not a number, though pydantic takes it as 1 where one is wanted:
    raise a ValidationError at every place in ``data`` where ``model`` wants a number (and
    no boolean) and finds a boolean."""
    found = list(_booleans_as_numbers(model, data, ()))
    if found:
        raise ValidationError.from_exception_data(
            model.__name__,
            [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "bool_not_number",
                        "{value} is a boolean, not a number",
                        {"value": "true" if raw else "false", "expected": "a number"},
                    ),
                    loc=loc,
                    input=raw,
                )
                for loc, raw in found
            ],
        )


def _booleans_as_numbers(
    annotation: Any, raw: Any, loc: tuple[int | str, ...]
) -> Iterator[tuple[tuple[int | str, ...], bool]]:
    """Walk ``raw`` along the type it is validated as (models, lists, maps, unions)."""
    members = _members(annotation)
    if isinstance(raw, bool):
        if any(map(_is_number, members)) and not any(map(_takes_bool, members)):
            yield loc, raw
        return
    for member in members:
        origin = get_origin(member)
        args = get_args(member)
        if isinstance(raw, dict) and isinstance(member, type) and issubclass(member, BaseModel):
            for name, field in member.model_fields.items():
                key = field.alias if field.alias is not None and field.alias in raw else name
                if key in raw:
                    yield from _booleans_as_numbers(field.annotation, raw[key], (*loc, key))
            return
        if isinstance(raw, dict) and origin in (dict, Mapping) and len(args) == 2:
            for key, item in raw.items():
                yield from _booleans_as_numbers(args[1], item, (*loc, key))
            return
        if isinstance(raw, list) and origin in (list, tuple, set, frozenset, Sequence) and args:
            for index, item in enumerate(raw):
                yield from _booleans_as_numbers(args[0], item, (*loc, index))
            return


def _members(annotation: Any) -> list[Any]:
    """The types a value may be: unions flattened, ``Annotated`` metadata dropped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_number(member: Any) -> bool:
    if get_origin(member) is Literal:
        return any(isinstance(v, int | float) and not isinstance(v, bool) for v in get_args(member))
    return member is int or member is float


def _takes_bool(member: Any) -> bool:
    if get_origin(member) is Literal:
        return any(isinstance(v, bool) for v in get_args(member))
    return member is bool or member is Any or member is object


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str] | None:
    """Field names allowed at ``loc`` (the parent of an unknown key), if a model is there."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return None


def _model_in(annotation: Any) -> Any:
    """The model class inside ``list[M]``, ``M | None``, ``dict[str, M]`` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validation_to_error(
    exc: ValidationError,
    model: type[BaseModel],
    path: Path | str,
    node: yaml.Node | None = None,
    error: type[InputError] = InputError,
    prefix: tuple[int | str, ...] = (),
    yaml_path: Callable[[tuple[int | str, ...]], tuple[int | str, ...]] | None = None,
) -> InputError:
    """Turn the first pydantic error into one located line.

    ``yaml_path`` maps a model location to where it sits in the YAML file, when the
    model is validated from part of the file (a stack config's namespaced keys).
    """
    errors = exc.errors(include_url=False)
    # An unknown key usually explains a "field required" beside it (a typo): say it first.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"]) or _field_named_in(first["msg"], model)
    dotted = ".".join(str(p) for p in (*prefix, *loc)) or "(top level)"
    line = line_of(node, yaml_path(loc) if yaml_path else (*prefix, *loc))
    where = f"{path}:{line}" if line else str(path)
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = f"allowed: {', '.join(allowed)}" if allowed else None
        guess = difflib.get_close_matches(str(loc[-1]), allowed or [], n=1)
        did_you_mean = f"; did you mean '{guess[0]}'?" if guess else ""
        parent = ".".join(str(p) for p in (*prefix, *loc[:-1]))
        at = f" in {parent}" if parent else ""
        return error(
            f"unknown key '{loc[-1]}'{at}{did_you_mean}", file=where, field=None, hint=hint
        )
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    hint = None
    ctx = first.get("ctx") or {}
    if "expected" in ctx:
        hint = f"allowed: {ctx['expected']}"
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return error(message, file=where, field=dotted, hint=hint)


def _field_named_in(message: str, model: type[BaseModel]) -> tuple[str, ...]:
    """A check across fields fails at the top level: locate it at the field its message
    names first, so the line points at the key to fix (``()`` if it names none)."""
    found = [
        (m.start(), name)
        for name in model.model_fields
        if (m := re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message))
    ]
    return (min(found)[1],) if found else ()


def load_model(
    path: Path,
    model: type[M],
    error: type[InputError] = InputError,
    context: dict[str, Any] | None = None,
    text: str | None = None,
) -> M:
    """Read ``path`` (or ``text``, as if it were that file's content) and validate it as
    ``model``; raise one located error if it is wrong."""
    data, node = read_yaml(path, error, text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error("expected a mapping at the top level", file=path)
    try:
        loaded = model.model_validate(data, context=context)
        refuse_booleans_as_numbers(model, data)
    except ValidationError as exc:
        raise validation_to_error(exc, model, path, node, error) from None
    return loaded


class _Dumper(yaml.SafeDumper):
    """Block style, no aliases: state files are read in pull requests."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def dump_yaml(data: Any) -> str:
    """Deterministic, diff-friendly YAML (keys in the order given)."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
