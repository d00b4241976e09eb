"""Text every catalogue backend can hold alike, checked once at the edge.

PostgreSQL refuses a NUL character in text and its driver cannot encode a lone surrogate (JSON's
``"\\udc00"`` decodes to one), while SQLite takes both: the same request would be a 500 on one
backend and an answer on the other. Request models built on :class:`TextInput` refuse such text in
any field, at any depth, with a 422 naming the field; the filter builder checks its values again
(``glimpse.search.filters``), for callers that build no request model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator


def text_fault(text: str) -> str | None:
    """Why ``text`` cannot be stored or compared alike by every catalogue backend, else None.

    PostgreSQL refuses a NUL character in text and its driver cannot encode a lone surrogate
    (``"\\udc00"`` in JSON decodes to one), while SQLite takes both: such text is refused before
    any query, so both backends give the same answer."""
    if "\x00" in text:
        return "a NUL character (U+0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (not valid Unicode)"
    return None


def text_fault_at(value: Any, path: str = "") -> tuple[str, str] | None:
    """Where ``value`` (a text, or lists and objects of them at any depth) holds text no backend
    can store alike (:func:`text_fault`: a NUL, a lone surrogate), and
    what: ``("", why)`` for the value itself, ``("title.contains", why)`` inside an object, else None."""
    if isinstance(value, str):
        fault = text_fault(value)
        return None if fault is None else (path, fault)
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        here = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and text_fault(key) is not None:
            return here, f"{text_fault(key)} in a name"
        found = text_fault_at(item, here)
        if found is not None:
            return found
    return None


class TextInput(BaseModel):
    """A request model whose every text field, at any depth, is refused when it holds a NUL
    character or a lone surrogate: a 422 naming the field (and the place inside it), on every
    backend alike."""

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        found = text_fault_at(value)
        if found is not None:
            where, fault = found
            at = f"; found at {where}" if where else ""
            raise ValueError(f"text may not hold {fault}{at}")
        return value
