"""The JSONPath subset of CRD printer columns, evaluated as client-go's ``jsonpath`` allowing missing keys.

Supported steps: ``.field``, ``['key']`` / ``["key"]``, ``[3]`` / ``[-1]``, ``[*]`` and the equality filter
``[?(@.type=="Ready")]`` (and ``!=``) that printer columns use for conditions. A path yields every match; a
missing key, an index out of range or a step into a scalar yields nothing, which the table shows as an
empty cell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

Step = Callable[[Any], Iterator[Any]]

_FIELD = re.compile(r"\.([^.\[\]]+)")
_KEY = re.compile(r"""\[\s*(?:'([^']*)'|"([^"]*)")\s*\]""")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_WILDCARD = re.compile(r"\[\s*\*\s*\]|\.\*")
_FILTER = re.compile(
    r"""\[\s*\?\(\s*@((?:\.[^.\s=!()]+)+)\s*(==|!=)\s*(?:'([^']*)'|"([^"]*)"|(-?[\w.]+))\s*\)\s*\]""")


def _key(name: str) -> Step:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, dict) and name in value:
            yield value[name]
    return step


def _index(position: int) -> Step:
    def step(value: Any) -> Iterator[Any]:
        if isinstance(value, list) and -len(value) <= position < len(value):
            yield value[position]
    return step


def _every(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        yield from value
    elif isinstance(value, dict):
        yield from value.values()


def _literal_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _filter(fields: Sequence[str], negated: bool, expected: str) -> Step:
    field_steps = tuple(_key(name) for name in fields)

    def step(value: Any) -> Iterator[Any]:
        for item in _every(value):
            found = evaluate(field_steps, item)
            if found and (_literal_text(found[0]) == expected) != negated:
                yield item
    return step


@lru_cache(maxsize=256)
def compile_path(text: str) -> tuple[Step, ...]:
    """The steps of a printer column's ``jsonPath``; ValueError when it is outside the supported subset."""
    rest = text.strip()
    rest = rest[1:] if rest.startswith("$") else rest
    steps: list[Step] = []
    while rest and rest != ".":
        if match := _WILDCARD.match(rest):
            steps.append(_every)
        elif match := _FIELD.match(rest):
            steps.append(_key(match[1]))
        elif match := _KEY.match(rest):
            steps.append(_key(match[1] if match[1] is not None else match[2]))
        elif match := _INDEX.match(rest):
            steps.append(_index(int(match[1])))
        elif match := _FILTER.match(rest):
            expected = next(group for group in match.groups()[2:] if group is not None)
            steps.append(_filter(match[1].split(".")[1:], match[2] == "!=", expected))
        else:
            raise ValueError(f"unrecognized column definition {text!r}")
        rest = rest[match.end():]
    return tuple(steps)


def evaluate(steps: Sequence[Step], document: Any) -> list[Any]:
    """Every value the path reaches in ``document``, in document order."""
    values = [document]
    for step in steps:
        values = [found for value in values for found in step(value)]
        if not values:
            break
    return values
