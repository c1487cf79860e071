"""CRD structural schemas: pruning, defaulting and validation as the apiextensions-apiserver does them.

A ``StructuralSchema`` is compiled once per CRD version into a tree of ``_Node``s whose checks are closures,
so a write costs one walk of the object and no schema interpretation. It is hand-written rather than built
on ``jsonschema`` because clients read the messages: they follow kube-openapi's validator as
apiextensions' ``kubeOpenAPIResultToFieldErrors`` turns its results into field errors. In particular
kube-openapi names properties *and map keys* with ``.key`` and list items with ``[i]``
(``spec.stateItemsOverwrites.foo.bar``, ``spec.stateItems[0].runner``); only native types use ``[key]``.

Pruning and defaulting follow ``pruning.Prune``, ``PruneNonNullableNullsWithoutDefaults`` and
``defaulting.Default``, in that order. Not modelled: CEL (``x-kubernetes-validations``), list-type
uniqueness, validation ratcheting, and the errors of the ``anyOf``/``oneOf`` branches themselves (only the
summary line the API server adds is reported).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from testbed.sim.errors import Cause

_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})
_MISSING: Any = object()
_TYPE_NAMES: dict[type, str] = {
    type(None): "null", bool: "boolean", str: "string", int: "integer", float: "number",
    list: "array", dict: "object",
}
_SCALARS = frozenset({str, int, float, bool, type(None)})
_DATE_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2})(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?$")

Check = Callable[[Any, str, list[Cause]], None]


def go_value(value: Any) -> str:
    """A bad value as ``field.Error`` prints it: ``%q`` for strings, ``%v`` for numbers and booleans."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, positional below 1e21 (``1`` not ``1.0``)."""
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if 1e-4 <= abs(value) < 1e21:
        return format(Decimal(repr(value)), "f")
    return repr(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _invalid(path: str, value: Any, detail: str, reason: str = "FieldValueInvalid") -> Cause:
    return Cause(path, reason, f"{path}: Invalid value: {go_value(value)}: {detail}")


def _composite(path: str, detail: str) -> Cause:
    # kube-openapi reports composite failures as plain errors, which apiextensions files under a nil path.
    return Cause("<nil>", "FieldValueInvalid", f'<nil>: Invalid value: "": {path} {detail}')


def _is_date_time(text: str) -> bool:
    match = _DATE_TIME.match(text)
    if not match:
        return False
    try:
        datetime.fromisoformat(f"{match[1]}T{match[2]}{match[3] or ''}")
    except ValueError:
        return False
    return True


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


# The formats of apiextensions' registry that this project's CRDs use; other formats are not checked.
_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": _is_date_time, "datetime": _is_date_time, "date": _is_date,
}


def _string_checks(raw: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if (max_length := raw.get("maxLength")) is not None:
        def too_long(v: str, path: str, out: list[Cause], n: int = max_length) -> None:
            if len(v) > n:
                out.append(Cause(path, "FieldValueTooLong", f"{path}: Too long: may not be longer than {n}"))
        checks.append(too_long)
    if (min_length := raw.get("minLength")) is not None:
        def too_short(v: str, path: str, out: list[Cause], n: int = min_length) -> None:
            if len(v) < n:
                out.append(_invalid(path, v, f"{path} in body should be at least {n} chars long"))
        checks.append(too_short)
    if (pattern := raw.get("pattern")) is not None:
        regex = re.compile(pattern)

        def mismatch(v: str, path: str, out: list[Cause]) -> None:
            if not regex.search(v):
                out.append(_invalid(path, v, f"{path} in body should match '{pattern}'"))
        checks.append(mismatch)
    if (is_format := _FORMATS.get(raw.get("format", ""))) is not None:
        name = raw["format"]

        def bad_format(v: str, path: str, out: list[Cause]) -> None:
            if not is_format(v):
                out.append(_invalid(path, v, f'{path} in body must be of type {name}: {go_value(v)}',
                                    "FieldValueTypeInvalid"))
        checks.append(bad_format)
    return checks


def _bound_check(bound: float, exclusive: bool, upper: bool) -> Check:
    words = ("less than" if upper else "greater than") + ("" if exclusive else " or equal to")

    def check(v: float, path: str, out: list[Cause]) -> None:
        over, under = (v >= bound, v <= bound) if exclusive else (v > bound, v < bound)
        if over if upper else under:
            out.append(_invalid(path, v, f"{path} in body should be {words} {go_float(float(bound))}"))
    return check


def _number_checks(raw: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if (maximum := raw.get("maximum")) is not None:
        checks.append(_bound_check(maximum, bool(raw.get("exclusiveMaximum")), upper=True))
    if (minimum := raw.get("minimum")) is not None:
        checks.append(_bound_check(minimum, bool(raw.get("exclusiveMinimum")), upper=False))
    if (factor := raw.get("multipleOf")) is not None:
        detail = f"should be a multiple of {go_float(float(factor))}"

        def not_multiple(v: float, path: str, out: list[Cause]) -> None:
            if (v / factor) % 1:
                out.append(_invalid(path, v, f"{path} in body {detail}"))
        checks.append(not_multiple)
    return checks


def _array_checks(raw: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if (max_items := raw.get("maxItems")) is not None:
        def too_many(v: list[Any], path: str, out: list[Cause], n: int = max_items) -> None:
            if len(v) > n:
                out.append(Cause(path, "FieldValueTooMany",
                                 f"{path}: Too many: {len(v)}: must have at most {n} items"))
        checks.append(too_many)
    if (min_items := raw.get("minItems")) is not None:
        def too_few(v: list[Any], path: str, out: list[Cause], n: int = min_items) -> None:
            if len(v) < n:
                out.append(_invalid(path, len(v), f"{path} in body should have at least {n} items"))
        checks.append(too_few)
    return checks


def _enum_label(value: Any) -> str:
    return json.dumps(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")),
                      ensure_ascii=False)


class _Node:
    """One compiled schema node: what pruning and defaulting need, plus the value checks by JSON kind."""

    __slots__ = ("additional", "additional_any", "all_of", "any_of", "composite", "default", "defaulted",
                 "embedded", "enum", "enum_detail", "enum_strings", "items", "kind_checks", "max_properties",
                 "min_properties", "not_", "nullable", "one_of", "preserve", "properties", "required",
                 "simple", "type_label", "types")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        if raw.get("x-kubernetes-int-or-string"):
            self.types: frozenset[str] = frozenset({"integer", "string"})
            self.type_label = "integer,string"
        else:
            self.types = frozenset({raw["type"]}) if raw.get("type") else frozenset()
            self.type_label = raw.get("type", "")
        self.nullable = bool(raw.get("nullable"))
        self.preserve = bool(raw.get("x-kubernetes-preserve-unknown-fields"))
        self.embedded = bool(raw.get("x-kubernetes-embedded-resource"))
        self.default = raw.get("default", _MISSING)
        self.properties = {key: _Node(sub) for key, sub in raw.get("properties", {}).items()}
        self.defaulted = tuple((k, n) for k, n in self.properties.items() if n.default is not _MISSING)
        additional = raw.get("additionalProperties")
        if additional is False:
            raise ValueError("additionalProperties cannot be set to false")
        self.additional = _Node(additional) if isinstance(additional, Mapping) else None
        self.additional_any = additional is True
        self.items = _Node(raw["items"]) if isinstance(raw.get("items"), Mapping) else None
        self.required = tuple(raw.get("required", ()))
        self.min_properties: int | None = raw.get("minProperties")
        self.max_properties: int | None = raw.get("maxProperties")
        self.enum: tuple[Any, ...] | None = tuple(raw["enum"]) if raw.get("enum") is not None else None
        self.enum_detail = "supported values: " + ", ".join(_enum_label(v) for v in self.enum or ())
        self.enum_strings = frozenset(v for v in self.enum or () if isinstance(v, str))
        number_checks = tuple(_number_checks(raw))
        self.kind_checks: dict[str, tuple[Check, ...]] = {
            "string": tuple(_string_checks(raw)), "integer": number_checks, "number": number_checks,
            "array": tuple(_array_checks(raw)),
        }
        self.all_of = tuple(_Node(sub) for sub in raw.get("allOf", ()))
        self.any_of = tuple(_Node(sub) for sub in raw.get("anyOf", ()))
        self.one_of = tuple(_Node(sub) for sub in raw.get("oneOf", ()))
        self.not_ = _Node(raw["not"]) if isinstance(raw.get("not"), Mapping) else None
        self.composite = bool(self.all_of or self.any_of or self.one_of or self.not_ is not None)
        self.simple = self._simple_type()

    def _simple_type(self) -> type | None:
        """The Python type whose values need no check at all here: lets object walks skip plain leaves."""
        scalar = {"string": str, "boolean": bool, "integer": int, "number": float}
        if len(self.types) != 1 or self.enum is not None or self.composite:
            return None
        (name,) = self.types
        return None if self.kind_checks.get(name) else scalar.get(name)


def _type_error(node: _Node, value: Any, kind: str, path: str) -> Cause | None:
    if kind in node.types:
        return None
    if kind == "number" and "integer" in node.types and value.is_integer():
        return None
    if kind == "integer" and "number" in node.types:
        return None
    detail = f'{path} in body must be of type {node.type_label}: "{kind}"'
    return _invalid(path, kind, detail, "FieldValueTypeInvalid")


def _in_enum(node: _Node, value: Any) -> bool:
    if isinstance(value, str):
        return value in node.enum_strings
    # Go's reflect-based comparison never equates a boolean with a number, unlike Python's ``True == 1``.
    return any(value == e and isinstance(value, bool) == isinstance(e, bool) for e in node.enum or ())


def _validate(node: _Node, value: Any, path: str, out: list[Cause], old: Any = None) -> None:
    if old is not None and value is old:
        return  # ratcheting: a value the update left as it was is not checked again
    vtype = type(value)
    if vtype is node.simple:
        return
    kind = _TYPE_NAMES.get(vtype) or ("object" if isinstance(value, Mapping) else "")
    if kind not in node.types and node.types and not (value is None and node.nullable):
        error = _type_error(node, value, kind, path)
        if error is not None:
            out.append(error)
    if node.composite and value is not None:
        _validate_composites(node, value, path, out)
    for check in node.kind_checks.get(kind, ()):
        check(value, path, out)
    if kind == "array" and node.items is not None:
        items = node.items
        for index, item in enumerate(value):
            if type(item) is not items.simple:
                _validate(items, item, f"{path}[{index}]", out)
    if node.enum is not None and not _in_enum(node, value):
        detail = f": {node.enum_detail}" if node.enum else ""
        message = f"{path}: Unsupported value: {go_value(value)}{detail}"
        out.append(Cause(path, "FieldValueNotSupported", message))
    if kind == "object":
        _validate_object(node, value, path, out, old if isinstance(old, Mapping) else None)


def _passes(node: _Node, value: Any, path: str) -> bool:
    errors: list[Cause] = []
    _validate(node, value, path, errors)
    return not errors


def _validate_composites(node: _Node, value: Any, path: str, out: list[Cause]) -> None:
    for sub in node.all_of:
        _validate(sub, value, path, out)
    if node.any_of and not any(_passes(sub, value, path) for sub in node.any_of):
        out.append(_composite(path, "must validate at least one schema (anyOf)"))
    if node.one_of and sum(_passes(sub, value, path) for sub in node.one_of) != 1:
        out.append(_composite(path, "must validate one and only one schema (oneOf)"))
    if node.not_ is not None and _passes(node.not_, value, path):
        out.append(_composite(path, "must not validate the schema (not)"))


def _validate_object(
    node: _Node, value: Mapping[str, Any], path: str, out: list[Cause], old: Mapping[str, Any] | None,
) -> None:
    # kube-openapi stops at a property-count violation without looking at the properties themselves.
    if node.min_properties is not None and len(value) < node.min_properties:
        detail = f"{path} in body should have at least {node.min_properties} properties"
        out.append(_invalid(path, len(value), detail))
        return
    if node.max_properties is not None and len(value) > node.max_properties:
        out.append(Cause(path, "FieldValueTooMany",
                         f"{path}: Too many: {len(value)}: must have at most {node.max_properties} items"))
        return
    prefix, properties, additional = f"{path}." if path else "", node.properties, node.additional
    for key, item in value.items():
        child = properties.get(key, additional)
        if child is not None and type(item) is not child.simple:
            _validate(child, item, prefix + key, out, None if old is None else old.get(key))
    for key in node.required:
        if key not in value:
            field = _join(path, key)
            out.append(Cause(field, "FieldValueRequired", f"{field}: Required value"))
    if node.embedded:
        for key in ("apiVersion", "kind"):
            if key not in value:
                field = _join(path, key)
                out.append(Cause(field, "FieldValueRequired", f"{field}: Required value: must not be empty"))


def _copy(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _transform(node: _Node | None, value: Any, skip: bool, old: Any = None) -> Any:
    """Prune, drop non-nullable nulls and default ``value``; ``skip`` is apiextensions' ``skipPrune``."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        if node is None:
            return _copy(value) if skip else {}
        return _transform_object(node, value, skip or node.preserve, node.embedded,
                                 old if isinstance(old, Mapping) else None)
    if not isinstance(value, list):
        return value
    items = node.items if node is not None else None
    skip = skip or (node is not None and node.preserve)
    if items is None:
        return _copy(value) if skip else [_transform(None, v, False) for v in value]
    if items.default is not _MISSING and not items.nullable:
        value = [_copy(items.default) if v is None else v for v in value]
    return [_transform(items, v, skip) for v in value]


def _transform_object(
    node: _Node, obj: Mapping[str, Any], preserve: bool, keep_meta: bool,
    old: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``old``: the stored object at this path, already pruned and defaulted; what an update left as it was
    (the very same subtree, as a merge patch leaves it) is taken over without another pass."""
    out: dict[str, Any] = {}
    properties, additional = node.properties, node.additional
    for key, value in obj.items():
        before = None if old is None else old.get(key)
        if before is not None and value is before:
            out[key] = value
            continue
        if keep_meta and key in _META_FIELDS:
            out[key] = _copy(value)
            continue
        child = properties.get(key, additional)
        if child is None:
            if node.additional_any:
                out[key] = _transform(None, value, False)
            elif preserve:
                out[key] = _copy(value)
            continue
        if value is None and not child.nullable:
            if child.default is not _MISSING:
                out[key] = _transform(child, _copy(child.default), False)
            continue
        out[key] = value if type(value) in _SCALARS else _transform(child, value, False, before)
    for key, child in node.defaulted:
        if key not in out:
            out[key] = _transform(child, _copy(child.default), False)
    return out


def _path_order(cause: Cause) -> tuple[str, str]:
    # Index-aware: spec.items[2] sorts before spec.items[10].
    return re.sub(r"\[(\d+)\]", lambda m: f"[{int(m[1]):012d}]", cause.field), cause.message


class StructuralSchema:
    """One CRD version's ``openAPIV3Schema``, compiled once and applied on every write."""

    def __init__(self, openapi_v3_schema: Mapping[str, Any]) -> None:
        self._root = _Node(openapi_v3_schema)

    def default_and_prune(
        self, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new object with unknown fields pruned and defaults applied; apiVersion/kind/metadata are kept.
        ``old`` is the stored version an update starts from (its subtrees are done already)."""
        return _transform_object(self._root, obj, self._root.preserve, keep_meta=True, old=old)

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[Cause]:
        """Every violation, worded as the API server words it, ordered by field path. With ``old`` (an
        update), values left exactly as stored are not checked again: the API server's validation ratcheting
        (KEP-4008), and most of a status write's cost on large objects."""
        out: list[Cause] = []
        _validate(self._root, obj, "", out, old)
        if not out:
            return out
        return sorted(set(out), key=_path_order)
