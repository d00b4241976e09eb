"""Catalogue filters (``{"category": ["shoes"], "price": {"lte": 50}}``) turned into SQL conditions.

Only the fields and operators listed here are accepted; anything else is a :class:`FilterError`
naming the offending field or operator (the API answers 422 with that message). Values are bound
parameters, never spliced into SQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_
from sqlalchemy.orm import InstrumentedAttribute

from glimpse.core.catalogue import Asset

TEXT_FIELDS = {
    "category": Asset.category,
    "currency": Asset.currency,
    "sku": Asset.sku,
    "kind": Asset.kind,
    "title": Asset.title,
}
NUMBER_FIELDS = {
    "price": Asset.price,
    "width": Asset.width,
    "height": Asset.height,
    "duration": Asset.duration,
}
TEXT_OPS = {"eq", "ne", "in", "contains"}
NUMBER_OPS = {"eq", "ne", "gt", "gte", "lt", "lte", "in"}
FILTER_FIELDS = sorted({*TEXT_FIELDS, *NUMBER_FIELDS})


class FilterError(ValueError):
    """A filter names an unknown field or operator, or has a value of the wrong type."""


def build_conditions(filters: dict[str, Any] | None) -> list[ColumnElement[bool]]:
    if not filters:
        return []
    if not isinstance(filters, dict):
        raise FilterError("filters must be an object of field -> condition")
    unknown = sorted(set(filters) - set(FILTER_FIELDS))
    if unknown:
        raise FilterError(
            f"unknown filter field(s): {', '.join(unknown)}; allowed: {', '.join(FILTER_FIELDS)}"
        )
    return [_condition(name, spec) for name, spec in filters.items()]


def _condition(name: str, spec: Any) -> ColumnElement[bool]:
    is_text = name in TEXT_FIELDS
    column = TEXT_FIELDS[name] if is_text else NUMBER_FIELDS[name]
    allowed_ops = TEXT_OPS if is_text else NUMBER_OPS
    if not isinstance(spec, dict):
        spec = {"in": spec} if isinstance(spec, list) else {"eq": spec}
    if not spec:
        raise FilterError(f"filter {name!r} has no condition")
    bad = sorted(set(spec) - allowed_ops)
    if bad:
        raise FilterError(
            f"unknown operator(s) {', '.join(bad)} for {name!r}; allowed: {', '.join(sorted(allowed_ops))}"
        )
    parts = [_apply(column, name, op, value, is_text) for op, value in spec.items()]
    return and_(*parts)


def _apply(
    column: InstrumentedAttribute[Any], name: str, op: str, value: Any, is_text: bool
) -> ColumnElement[bool]:
    if op == "in":
        if not isinstance(value, list) or not value:
            raise FilterError(f"filter {name!r}: 'in' takes a non-empty list")
        return column.in_([_check(name, v, is_text) for v in value])
    value = _check(name, value, is_text)
    if op == "contains":
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.ilike(f"%{escaped}%", escape="\\")
    return {
        "eq": lambda: column == value,
        "ne": lambda: column != value,
        "gt": lambda: column > value,
        "gte": lambda: column >= value,
        "lt": lambda: column < value,
        "lte": lambda: column <= value,
    }[op]()


def _check(name: str, value: Any, is_text: bool) -> Any:
    if is_text and isinstance(value, str):
        if "\x00" in value:  # PostgreSQL refuses NUL in text, SQLite would compare it: same answer on both
            raise FilterError(f"filter {name!r}: the value contains a NUL character (U+0000)")
        return value
    if not is_text and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    expected = "a string" if is_text else "a number"
    raise FilterError(f"filter {name!r}: expected {expected}, got {value!r}")
