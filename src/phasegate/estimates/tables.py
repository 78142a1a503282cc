"""The bundled figures estimates are made from: one CSV file per table under ``data/``.

Each file starts with ``#`` comment lines that must name its ``source:`` and the date the
figures were ``taken:``, then a header row and one row per figure. People update them by
hand, so every value is checked on load and a bad one stops the run with one line naming
the file, the row (its line number) and the column. An empty price cell means the figure
is not known: estimates say "unknown" for it, never zero. Files are read once per process.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from phasegate.errors import InputError

__all__ = [
    "DATA_DIR",
    "FILES",
    "S3_CLASSES",
    "InstancePower",
    "InstancePrice",
    "NatPrice",
    "Tables",
    "load_tables",
]

DATA_DIR = Path(__file__).resolve().parent / "data"

FILES = {
    "ec2": "ec2_prices.csv",
    "nat": "nat_gateway.csv",
    "s3": "s3_storage.csv",
    "power": "power.csv",
    "pue": "pue.csv",
    "grid": "grid_intensity.csv",
}
"""Each table's file under ``DATA_DIR``."""

S3_CLASSES = ("STANDARD", "STANDARD_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")


@dataclass(frozen=True)
class InstancePrice:
    """USD per instance-hour; None where the file says it is not known."""

    on_demand: float | None
    spot_low: float | None
    spot_high: float | None


@dataclass(frozen=True)
class NatPrice:
    per_hour: float
    per_gb: float


@dataclass(frozen=True)
class InstancePower:
    gpu_model: str
    gpu_tdp_w: float
    host_w: float
    gpu_utilisation: float


@dataclass(frozen=True)
class Tables:
    """Every table, keyed as the estimator looks them up."""

    ec2: dict[tuple[str, str], InstancePrice]  # (instance type, region)
    nat: dict[str, NatPrice]  # region
    s3: dict[tuple[str, str], float]  # (region, storage class) -> USD per GB-month
    power: dict[str, InstancePower]  # instance type
    pue: dict[str, float]  # provider
    grid: dict[str, float]  # region -> gCO2e per kWh
    taken: dict[str, str]  # file name -> the date its figures were taken


class _Rows:
    """The rows of one table file, with located parsing of each cell."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=path) from None
        lines = text.splitlines()
        comments = [ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")]
        self.taken = self._header(comments, "taken:")
        self._header(comments, "source:")
        self.body = [(n, ln) for n, ln in enumerate(lines, 1) if ln.strip() and ln[0] != "#"]
        if not self.body:
            raise InputError("no header row", file=path)
        line, head = self.body[0]
        found = tuple(next(csv.reader([head])))
        if found != columns:
            raise InputError(
                f"header is {', '.join(found)}; expected {', '.join(columns)}",
                file=path,
                field=f"line {line}",
            )

    def _header(self, comments: list[str], key: str) -> str:
        for comment in comments:
            if comment.startswith(key) and comment[len(key) :].strip():
                return comment[len(key) :].strip()
        raise InputError(
            f"no '# {key} ...' comment line: every table says where its figures come from "
            "and when they were taken",
            file=self.path,
        )

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        for line, text in self.body[1:]:
            cells = next(csv.reader([text]))
            if len(cells) != len(self.columns):
                raise InputError(
                    f"{len(cells)} value(s); expected {len(self.columns)} "
                    f"({', '.join(self.columns)})",
                    file=self.path,
                    field=f"line {line}",
                )
            yield line, dict(zip(self.columns, (c.strip() for c in cells), strict=True))

    def number(
        self,
        line: int,
        row: dict[str, str],
        column: str,
        *,
        optional: bool = False,
        most: float | None = None,
    ) -> float | None:
        raw = row[column]
        if raw == "" and optional:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (most is not None and value > most):
            allowed = "a number >= 0" + (f" and <= {most:g}" if most is not None else "")
            allowed += " (or empty: not known)" if optional else ""
            raise InputError(
                f"{raw!r} is not {allowed}", file=self.path, field=f"line {line}: {column}"
            )
        return value

    def text(
        self, line: int, row: dict[str, str], column: str, allowed: tuple[str, ...] = ()
    ) -> str:
        value = row[column]
        if not value or (allowed and value not in allowed):
            what = f"one of {', '.join(allowed)}" if allowed else "not empty"
            raise InputError(
                f"{value!r}: must be {what}", file=self.path, field=f"line {line}: {column}"
            )
        return value

    def unique(self, seen: set[object], key: object, line: int) -> None:
        if key in seen:
            raise InputError(f"{key} is listed twice", file=self.path, field=f"line {line}")
        seen.add(key)


def _table(
    path: Path, columns: tuple[str, ...], read: Callable[[_Rows], object]
) -> tuple[object, str]:
    rows = _Rows(path, columns)
    return read(rows), rows.taken


@functools.cache
def load_tables(directory: Path = DATA_DIR) -> Tables:
    """Every table in ``directory`` (the bundled ``data/`` by default), read and checked
    once per process. InputError naming file, line and column on a bad value."""
    p = {key: directory / name for key, name in FILES.items()}
    taken: dict[str, str] = {}

    def ec2(rows: _Rows) -> dict[tuple[str, str], InstancePrice]:
        out: dict[tuple[str, str], InstancePrice] = {}
        for n, r in rows:
            key = (rows.text(n, r, "instance_type"), rows.text(n, r, "region"))
            rows.unique(set(out), key, n)
            low = rows.number(n, r, "spot_low_usd_hour", optional=True)
            high = rows.number(n, r, "spot_high_usd_hour", optional=True)
            if low is not None and high is not None and low > high:
                raise InputError(
                    f"spot_low {low:g} is above spot_high {high:g}",
                    file=rows.path,
                    field=f"line {n}: spot_low_usd_hour",
                )
            out[key] = InstancePrice(
                rows.number(n, r, "on_demand_usd_hour", optional=True), low, high
            )
        return out

    def nat(rows: _Rows) -> dict[str, NatPrice]:
        out: dict[str, NatPrice] = {}
        for n, r in rows:
            region = rows.text(n, r, "region")
            rows.unique(set(out), region, n)
            out[region] = NatPrice(
                rows.number(n, r, "usd_per_hour") or 0.0, rows.number(n, r, "usd_per_gb") or 0.0
            )
        return out

    def s3(rows: _Rows) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for n, r in rows:
            key = (rows.text(n, r, "region"), rows.text(n, r, "storage_class", S3_CLASSES))
            rows.unique(set(out), key, n)
            out[key] = rows.number(n, r, "usd_per_gb_month") or 0.0
        return out

    def power(rows: _Rows) -> dict[str, InstancePower]:
        out: dict[str, InstancePower] = {}
        for n, r in rows:
            name = rows.text(n, r, "instance_type")
            rows.unique(set(out), name, n)
            out[name] = InstancePower(
                rows.text(n, r, "gpu_model"),
                rows.number(n, r, "gpu_tdp_w") or 0.0,
                rows.number(n, r, "host_w") or 0.0,
                rows.number(n, r, "gpu_utilisation", most=1.0) or 0.0,
            )
        return out

    def pue(rows: _Rows) -> dict[str, float]:
        out: dict[str, float] = {}
        for n, r in rows:
            provider = rows.text(n, r, "provider")
            rows.unique(set(out), provider, n)
            value = rows.number(n, r, "pue") or 0.0
            if value < 1:
                raise InputError(
                    f"{value:g} is below 1: a PUE is total energy over IT energy",
                    file=rows.path,
                    field=f"line {n}: pue",
                )
            out[provider] = value
        return out

    def grid(rows: _Rows) -> dict[str, float]:
        out: dict[str, float] = {}
        for n, r in rows:
            region = rows.text(n, r, "region")
            rows.unique(set(out), region, n)
            rows.text(n, r, "source")
            out[region] = rows.number(n, r, "g_co2e_per_kwh") or 0.0
        return out

    cols = {
        "ec2": (
            "instance_type",
            "region",
            "on_demand_usd_hour",
            "spot_low_usd_hour",
            "spot_high_usd_hour",
            "note",
        ),
        "nat": ("region", "usd_per_hour", "usd_per_gb", "note"),
        "s3": ("region", "storage_class", "usd_per_gb_month", "note"),
        "power": ("instance_type", "gpu_model", "gpu_tdp_w", "host_w", "gpu_utilisation", "note"),
        "pue": ("provider", "pue", "year", "note"),
        "grid": ("region", "g_co2e_per_kwh", "source", "year"),
    }
    readers: dict[str, Callable[[_Rows], object]] = {
        "ec2": ec2,
        "nat": nat,
        "s3": s3,
        "power": power,
        "pue": pue,
        "grid": grid,
    }
    read: dict[str, object] = {}
    for key, reader in readers.items():
        read[key], taken[FILES[key]] = _table(p[key], cols[key], reader)
    return Tables(taken=taken, **read)  # type: ignore[arg-type]
