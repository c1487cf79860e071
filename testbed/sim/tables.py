"""Server-side printing: the ``meta.k8s.io/v1`` Table kubectl asks for with ``Accept: ...;as=Table``.

Mirrors apiextensions' CRD table convertor: a "Name" column, then the CRD's additionalPrinterColumns (or
"Age" when it declares none). Cells are typed as the API server types them: an integer column holds a
number, a date column an age such as ``5m`` or ``3h2m`` (``duration.HumanDuration``), a string column the
value as client-go's JSONPath prints it, and a value the path does not reach is ``null``, exactly what the
API server sends (not ``""``: kubectl renders the cell itself).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from testbed.sim.jsonpath import compile_path, evaluate
from testbed.sim.schema import go_float

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
CREATION_TIMESTAMP_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this "
    "value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for "
    "lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
    "#metadata")
DEFAULT_COLUMNS: tuple[Mapping[str, Any], ...] = (
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
     "description": CREATION_TIMESTAMP_DESCRIPTION},
)
INCLUDE_OBJECT = ("Metadata", "Object", "None")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def human_duration(elapsed: timedelta) -> str:
    """``duration.HumanDuration``: about two significant figures (``90s``, ``5m3s``, ``3h2m``, ``4d``)."""
    micros = elapsed // timedelta(microseconds=1)
    seconds = -(-micros // 1_000_000) if micros < 0 else micros // 1_000_000
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, hours // 24 % 365
    if hours < 24 * 365 * 8:
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


def _age(text: str, now: datetime) -> str:
    """A date cell: ``metav1.Time.UnmarshalQueryParameter`` then ``ConvertToHumanReadableDateType``."""
    if text in ("", "null"):
        return "<unknown>"
    if not _RFC3339.match(text):
        return "<invalid>"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return "<invalid>"
    return human_duration(now - stamp)


def _printed(value: Any) -> str:
    """A value as client-go's JSONPath ``PrintResults`` writes it (JSON for maps and lists)."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return str(value)


def _cell(column_type: str, value: Any, now: datetime) -> Any:
    """``cellForJSONValue``: the value when it has the column's type, else null."""
    if column_type == "string":
        return _printed(value)
    if value is None or isinstance(value, bool) != (column_type == "boolean"):
        return None
    if column_type == "integer" and isinstance(value, int | float):
        return int(value)
    if column_type == "number" and isinstance(value, int | float):
        return float(value)
    if column_type == "boolean":
        return value
    if column_type == "date" and isinstance(value, str):
        return _age(value, now)
    return None


def _definition(column: Mapping[str, Any]) -> dict[str, Any]:
    description = column.get("description") or (
        f"Custom resource definition column (in JSONPath format): {column['jsonPath']}")
    return {"name": column["name"], "type": column["type"], "format": column.get("format", ""),
            "description": description, "priority": int(column.get("priority", 0))}


def _row_object(obj: Mapping[str, Any], include_object: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    metadata = obj.get("metadata", {})
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}


def to_table(objects: Sequence[Mapping[str, Any]], printer_columns: Sequence[Mapping[str, Any]], *,
             now: datetime, resource_version: str, include_object: str = "Metadata") -> dict[str, Any]:
    """The Table for ``objects`` (a list's items, or one object) with the CRD's printer columns."""
    if include_object not in INCLUDE_OBJECT:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT)}, not {include_object!r}")
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    columns = tuple(printer_columns) or DEFAULT_COLUMNS
    paths = [compile_path(column["jsonPath"]) for column in columns]
    rows = []
    for obj in objects:
        cells: list[Any] = [obj.get("metadata", {}).get("name", "")]
        for column, path in zip(columns, paths, strict=True):
            found = evaluate(path, obj)
            cells.append(_cell(column["type"], found[0], now) if found else None)
        rows.append({"cells": cells, "object": _row_object(obj, include_object)})
    name_column = {"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION,
                   "priority": 0}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": [name_column, *(_definition(c) for c in columns)], "rows": rows}
