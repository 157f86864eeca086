"""Making a row fit its table (§6.5: a record is never refused by the database)."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Integer, SmallInteger, String, Table

# -- making a row fit its table ----------------------------------------------------------------------
# The widths and ranges come from the column types, so they cannot drift from the models. JSON columns
# need nothing: the serializer escapes every character, and neither database refuses the escapes.

_INT_BITS: tuple[tuple[type[Integer], int], ...] = ((SmallInteger, 15), (BigInteger, 63), (Integer, 31))
_UNBOUNDED = 2**62


@cache
def _limits(table: Table) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int, int], ...]]:
    """(name, width) of each string column, (name, lowest, highest) of each integer column."""
    widths: list[tuple[str, int]] = []
    ranges: list[tuple[str, int, int]] = []
    for column in table.columns:
        type_ = column.type
        if isinstance(type_, String):
            widths.append((column.name, type_.length or _UNBOUNDED))
        for int_type, bits in _INT_BITS:
            if isinstance(type_, int_type):
                ranges.append((column.name, -(2**bits), 2**bits - 1))
                break
    return tuple(widths), tuple(ranges)


def fit_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """The row with every value made storable in its column, on SQLite and PostgreSQL alike: strings
    lose NUL bytes (PostgreSQL text cannot hold them) and lone surrogates (no encoding can), then are
    cut to the column's width; integers are clamped to the column's range."""
    widths, ranges = _limits(table)
    for name, width in widths:
        value = row.get(name)
        if value is not None and (
            value.__class__ is not str or len(value) > width or not value.isascii() or "\x00" in value
        ):
            row[name] = _fit_str(str(value), width)
    for name, low, high in ranges:
        value = row.get(name)
        if value.__class__ is int and not low <= value <= high:
            row[name] = low if value < low else high
    return row


def _fit_str(value: str, width: int) -> str:
    value = value.replace("\x00", "")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate becomes '?'
    return value[:width]
