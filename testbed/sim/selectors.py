"""Label and field selectors, parsed and matched as ``k8s.io/apimachinery/pkg/labels`` and ``.../fields`` do.

The label grammar is the set-based one kubectl's ``-l`` speaks (``a=b``, ``a!=b``, ``a in (x,y)``,
``a notin (x)``, ``a``, ``!a``, ``a>1``, comma = AND). Error messages are the API server's own, since they
reach users verbatim in a 400 response (``unable to parse requirement: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from testbed.sim.naming import label_value_errors, qualified_name_errors
from testbed.sim.schema import go_value


class SelectorError(ValueError):
    """A selector the API server would reject with 400 Bad Request."""


_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_OPERATOR_TOKENS = {
    "==": "==", "!=": "!=", "=": "=", "!": "!", ">": "gt", "<": "lt", "(": "(", ")": ")", ",": ",",
}
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"


def _field_invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {go_value(value)}: {detail}"


def _aggregate(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


@dataclass(frozen=True)
class Requirement:
    """One clause: ``operator`` is one of ``in notin = == != exists !exists gt lt``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator in ("in", "=", "=="):
            return value is not None and value in self.values
        if self.operator in ("notin", "!="):
            return value is None or value not in self.values
        if self.operator == "exists":
            return value is not None
        if self.operator == "!exists":
            return value is None
        if value is None or not _is_int(value):
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.operator == "gt" else int(value) < bound


def _is_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text) is not None


@dataclass(frozen=True)
class LabelSelector:
    """Requirements ANDed together; no requirement matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _new_requirement(key: str, operator: str, values: list[str]) -> Requirement:
    """``labels.NewRequirement``: checks the values against the operator and the label value syntax."""
    errors: list[str] = []
    if operator in ("gt", "lt"):
        errors += [_field_invalid(f"values[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer")
                   for i, v in enumerate(values) if not _is_int(v)]
    for index, value in enumerate(values):
        if problems := label_value_errors(value):
            errors.append(_field_invalid(f"values[{index}][{key}]", value, "; ".join(problems)))
    if errors:
        raise SelectorError("unable to parse requirement: " + _aggregate(errors))
    return Requirement(key, operator, tuple(values))


def _lex(text: str) -> list[tuple[str, str]]:
    """(kind, literal) pairs ending with ("end", ""); identifiers are ("id", text), keywords ("in", "in")."""
    items: list[tuple[str, str]] = []
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= size:
            items.append(("end", ""))
            return items
        if text[pos] in _SPECIAL:
            symbol = text[pos:pos + 2] if text[pos:pos + 2] in ("==", "!=") else text[pos]
            items.append((_OPERATOR_TOKENS[symbol], symbol))
            pos += len(symbol)
            continue
        start = pos
        while pos < size and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
            pos += 1
        word = text[start:pos]
        items.append((word if word in ("in", "notin") else "id", word))


class _Parser:
    """A port of the apimachinery recursive-descent parser, so the same inputs fail with the same words."""

    def __init__(self, text: str) -> None:
        self._items = _lex(text)
        self._pos = 0

    def _peek(self, values: bool = True) -> tuple[str, str]:
        kind, literal = self._items[self._pos]
        return ("id" if values and kind in ("in", "notin") else kind), literal

    def _next(self, values: bool = True) -> tuple[str, str]:
        item = self._peek(values)
        self._pos += 1
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self._peek()
            if kind == "end":
                return requirements
            if kind not in ("id", "!"):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            requirements.append(self._requirement())
            kind, literal = self._next()
            if kind == "end":
                return requirements
            if kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            if (after := self._peek())[0] not in ("id", "!"):
                raise SelectorError(f"found '{after[1]}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        try:
            key, operator = self._key_and_operator()
            if operator in ("exists", "!exists"):
                return Requirement(key, operator)
            operator = self._operator()
            values = self._values() if operator in ("in", "notin") else self._exact_value()
        except SelectorError as error:
            raise SelectorError(f"unable to parse requirement: {error}") from None
        return _new_requirement(key, operator, sorted(set(values)))

    def _key_and_operator(self) -> tuple[str, str]:
        kind, literal = self._next()
        negated = kind == "!"
        if negated:
            kind, literal = self._next()
        if kind != "id":
            raise SelectorError(f"found '{literal}', expected: identifier")
        if problems := qualified_name_errors(literal):
            raise SelectorError(_field_invalid("<nil>", literal, "; ".join(problems)))
        if negated:
            return literal, "!exists"
        return literal, ("exists" if self._peek()[0] in ("end", ",") else "")

    def _operator(self) -> str:
        kind, literal = self._next(values=False)
        if kind not in ("in", "notin", "=", "==", "!=", "gt", "lt"):
            raise SelectorError(f"found '{literal}', expected: {_BINARY_OPERATORS}")
        return kind

    def _values(self) -> list[str]:
        kind, literal = self._next()
        if kind != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self._peek()
        if kind == ")":
            self._next()
            return [""]
        if kind not in ("id", ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self._identifiers()
        if self._next()[0] != ")":
            raise SelectorError(f"found '{literal}', expected: ')'")
        return values

    def _identifiers(self) -> list[str]:
        values: list[str] = []
        while True:
            kind, literal = self._next()
            if kind == "id":
                values.append(literal)
                after, after_literal = self._peek()
                if after == ")":
                    return values
                if after != ",":
                    raise SelectorError(f"found '{after_literal}', expected: ',' or ')'")
            elif kind == ",":
                # "(,", ",," and ",)" all stand for an empty value.
                after = self._peek()[0]
                if not values or after in (")", ","):
                    values.append("")
                if after == ")":
                    return values
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def _exact_value(self) -> list[str]:
        if self._peek()[0] in ("end", ","):
            return [""]
        kind, literal = self._next()
        if kind != "id":
            raise SelectorError(f"found '{literal}', expected: identifier")
        return [literal]


def parse_label_selector(text: str) -> LabelSelector:
    """``labels.Parse``: an empty selector matches everything; requirements are sorted by key."""
    requirements = _Parser(text).parse()
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


@dataclass(frozen=True)
class FieldRequirement:
    """``field=value`` (or ``!=`` when ``negated``) on a dotted path such as ``metadata.name``."""

    field: str
    value: str
    negated: bool = False

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (_field_text(obj, self.field) == self.value) != self.negated


def _field_text(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class FieldSelector:
    """Field requirements ANDed together; no requirement matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped with a backslash; escapes stay in the terms."""
    terms, start, escaped = [], 0, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            # Go prints the rune with %v, i.e. as its code point.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(char)}")
        else:
            out.append(char)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str, supported: Collection[str]) -> FieldSelector:
    """``fields.ParseSelector`` plus the resource's field-label conversion (only ``supported`` fields)."""
    requirements: list[FieldRequirement] = []
    for term in sorted(_split_terms(text)) if text else ():
        if not term:
            continue
        match = re.search("!=|==|=", term)
        if match is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        field, value = term[:match.start()], _unescape(term[match.end():])
        requirements.append(FieldRequirement(field, value, negated=match[0] == "!="))
    for requirement in requirements:
        if requirement.field not in supported:
            raise SelectorError(f"field label not supported: {requirement.field}")
    return FieldSelector(tuple(requirements))
