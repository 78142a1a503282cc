"""Include and exclude globs on keys relative to the source prefix.

A key is a path of segments split on ``/``. In a glob:

* ``*`` matches any characters within one segment (never a ``/``);
* ``?`` matches one character other than ``/``;
* ``[abc]``, ``[a-z]``, ``[!abc]`` match one character of (or not of) a set, never ``/``;
* ``**`` as a whole segment matches any number of segments, none included:
  ``**/*.csv`` matches ``a.csv`` and ``x/y/a.csv``; ``exports/**`` matches everything
  under ``exports/``; ``a/**/b`` matches ``a/b`` and ``a/x/y/b``;
* everything else matches itself, case-sensitively (keys are case-sensitive).

A glob matches the whole relative key, not a part of it: ``*.csv`` matches ``a.csv`` but
not ``x/a.csv``. A key is selected when it matches one of the includes (or there are none)
and none of the excludes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from phasegate.errors import InputError

__all__ = ["KeyFilter", "glob_to_regex"]


def glob_to_regex(glob: str, field: str = "include") -> str:
    """The regular expression (anchored at both ends) for one glob."""
    if not glob:
        raise InputError("an empty glob matches no key", field=field)
    segments = glob.split("/")
    out: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            # Any number of whole segments: with the slash after it, or at the end anything.
            out.append(".*" if last else "(?:[^/]*/)*")
            continue
        if "**" in segment:
            raise InputError(
                f"{glob!r}: '**' must be a whole path segment (like a/**/b)", field=field
            )
        out.append(_segment(segment, glob, field) + ("" if last else "/"))
    return "".join(out)


def _segment(segment: str, glob: str, field: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = segment.find("]", i + 2 if segment[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise InputError(f"{glob!r}: '[' without its ']'", field=field)
            body = segment[i + 1 : end]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


class KeyFilter:
    """Selects relative keys by include and exclude globs (see the module's doc)."""

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self._include = self._compile(self.include, "include")
        self._exclude = self._compile(self.exclude, "exclude")

    @staticmethod
    def _compile(globs: tuple[str, ...], field: str) -> re.Pattern[str] | None:
        if not globs:
            return None
        pattern = "|".join(f"(?:{glob_to_regex(glob, field)})" for glob in globs)
        try:
            return re.compile(f"(?s:{pattern})\\Z")
        except re.error as exc:
            raise InputError(
                f"{', '.join(globs)}: not a glob S3 keys can match: {exc}", field=field
            ) from exc

    @property
    def selects_all(self) -> bool:
        return self._include is None and self._exclude is None

    def __call__(self, key: str) -> bool:
        if self._include is not None and self._include.match(key) is None:
            return False
        return self._exclude is None or self._exclude.match(key) is None
