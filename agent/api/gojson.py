"""Go's ``encoding/json``, as far as Mirantis' item hash depends on it: how a string is written, and how a
state item is read.

Mirantis hashes an item as ``json.Marshal`` writes the Go struct, so the bytes must be Go's to the last
escape (measured on Go 1.22+, the version the conformance vectors were computed with):

- ``"`` and ``\\`` are backslash-escaped; ``\\n``, ``\\r``, ``\\t``, ``\\b``, ``\\f`` have short escapes
  (Go before 1.22 wrote ``\\u0008``/``\\u000c`` for the last two); every other control character is
  ``\\u00XX``;
- HTML-safe escaping is on: ``<``, ``>``, ``&`` are ``\\u003c``, ``\\u003e``, ``\\u0026``;
- U+2028 and U+2029 are ``\\u2028``/``\\u2029`` (JavaScript line terminators);
- an unpaired surrogate (no valid UTF-8) is written as U+FFFD; everything else is raw UTF-8.

The decoder reproduces what Go does with the JSON our client has already parsed (``json.loads``), so an
object means the same to both sides: member names match case-insensitively (Unicode simple folding, so
the long s, U+017F, is an ``s``), the last of two names that fold alike wins, repeated ``params`` objects
merge, ``null`` leaves a string field as it was and is ``""`` as a map value, unpaired surrogates become
U+FFFD, and a wrong JSON type is an error (Go refuses the whole object). Two quirks cannot reach us:
duplicate member names in one object (the API server stores one, and ``json.loads`` keeps the last, as Go
does for a string field) and invalid UTF-8 bytes (the API server has already replaced them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_ESCAPED = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"
    return f"\\u{ord(char):04x}"


def go_string(text: str) -> str:
    """``text`` as Go's ``json.Marshal`` writes a string, quotes included."""
    return '"' + _ESCAPED.sub(_escape, text) + '"'


def go_object(pairs: list[tuple[str, str]]) -> str:
    """A JSON object of string members in the given order, Go-escaped, no whitespace."""
    return "{" + ",".join(f"{go_string(k)}:{v}" for k, v in pairs) + "}"


def go_string_map(values: Mapping[str, str]) -> str:
    """A ``map[string]string`` as Go writes it: keys sorted by their UTF-8 bytes (code point order)."""
    return go_object([(k, go_string(values[k])) for k in sorted(values)])


def valid_utf8(text: str) -> str:
    """``text`` with unpaired surrogates replaced by U+FFFD, as Go's decoder reads ``\\ud800``."""
    return _SURROGATE.sub("\ufffd", text)


class GoDecodeError(ValueError):
    """The JSON does not decode into the Go type: Go's ``json.Unmarshal`` would have returned an error."""


def _fold(name: str) -> str:
    """The key Go matches a member name by, for ASCII field names: ASCII letters upper-cased, the long s
    (U+017F) as ``S`` and the Kelvin sign as ``K`` (the only non-ASCII runes whose simple fold orbit holds
    an ASCII letter); any other rune stays itself and so matches no field."""
    return "".join(_FOLDS.get(c, c.upper() if c.isascii() else c) for c in name)


_FOLDS = {"\u017f": "S", "\u212a": "K"}

_ITEM_FIELDS = {name.upper(): name for name in ("runner", "name", "version", "params", "phase")}


def _string(value: Any, field: str, current: str) -> str:
    if value is None:
        return current
    if not isinstance(value, str):
        raise GoDecodeError(f"cannot unmarshal {_kind(value)} into Go struct field LCMStateItem.{field} of "
                            "type string")
    return valid_utf8(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _params(value: Any, current: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise GoDecodeError(f"cannot unmarshal {_kind(value)} into Go struct field LCMStateItem.params of "
                            "type map[string]string")
    merged = {} if current is None else current
    for key, element in value.items():
        if element is not None and not isinstance(element, str):
            raise GoDecodeError(f"cannot unmarshal {_kind(element)} into Go struct field LCMStateItem.params "
                                "of type string")
        merged[valid_utf8(key)] = "" if element is None else valid_utf8(element)
    return merged


def decode_item(raw: Any) -> dict[str, Any]:
    """A state item as Go's decoder reads it into ``LCMStateItem``: a dict with the five fields (``params``
    None when absent or null). Raises GoDecodeError where Go's ``Unmarshal`` fails."""
    fields: dict[str, Any] = {"runner": "", "name": "", "version": "", "params": None, "phase": ""}
    if raw is None:
        return fields
    if not isinstance(raw, dict):
        raise GoDecodeError(f"cannot unmarshal {_kind(raw)} into Go value of type LCMStateItem")
    for key, value in raw.items():
        field = _ITEM_FIELDS.get(_fold(valid_utf8(key)))
        if field == "params":
            fields["params"] = _params(value, fields["params"])
        elif field is not None:
            fields[field] = _string(value, field, fields[field])
    return fields
