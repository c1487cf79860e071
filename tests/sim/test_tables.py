"""``kubectl get`` output from the simulator: server-side Tables with the CRDs' printer columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from testbed.sim.tables import human_duration, to_table

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
COLUMNS: list[dict[str, Any]] = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.type", "description": "Role of the machine"},
    {"name": "State", "type": "string", "jsonPath": ".status.state"},
    {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt"},
    {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio"},
    {"name": "Halted", "type": "boolean", "jsonPath": ".spec.haltAgent"},
    {"name": "First item", "type": "string", "jsonPath": ".spec.stateItems[0].name", "priority": 1},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Zone", "type": "string", "jsonPath": ".metadata.labels['topology.kubernetes.io/zone']"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def machine(name: str = "m1", created: str = "2024-05-01T11:55:00Z", **fields: Any) -> dict[str, Any]:
    metadata = {
        "name": name,
        "namespace": "demo",
        "creationTimestamp": created,
        "resourceVersion": "7",
        "labels": {"topology.kubernetes.io/zone": "a"},
    }
    return {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine", "metadata": metadata, **fields}


FULL = machine(
    spec={"type": "worker", "haltAgent": False, "stateItems": [{"name": "install"}, {"name": "join"}]},
    status={
        "state": "Ready",
        "attempt": 2,
        "ratio": 0.5,
        "conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}],
    },
)


def test_a_full_object_fills_every_cell_with_its_columns_type() -> None:
    table = to_table([FULL], COLUMNS, now=NOW, resource_version="42")
    assert table["rows"][0]["cells"] == ["m1", "worker", "Ready", 2, 0.5, False, "install", "True", "a", "5m"]


def test_a_value_the_path_does_not_reach_is_an_empty_cell() -> None:
    table = to_table([machine(spec={"stateItems": []})], COLUMNS, now=NOW, resource_version="1")
    assert table["rows"][0]["cells"] == ["m1", None, None, None, None, None, None, None, "a", "5m"]


@pytest.mark.parametrize(
    ("column_type", "value", "cell"),
    [
        ("integer", 3, 3),
        ("integer", 3.9, 3),
        ("integer", "3", None),
        ("integer", True, None),
        ("number", 2, 2.0),
        ("number", "2", None),
        ("boolean", True, True),
        ("boolean", "true", None),
        ("string", "text", "text"),
        ("string", 5, "5"),
        ("string", 1.5, "1.5"),
        ("string", 2.0, "2"),
        ("string", True, "true"),
        ("string", {"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'),
        ("string", None, "<no value>"),
        ("integer", None, None),
        ("date", "2024-05-01T11:59:30Z", "30s"),
        ("date", "2024-05-01T13:59:30+02:00", "30s"),
        ("date", "yesterday", "<invalid>"),
        ("date", "", "<unknown>"),
        ("date", 5, None),
        ("object", {"a": 1}, None),
    ],
)
def test_cells_are_typed_as_the_api_server_types_them(column_type: str, value: Any, cell: Any) -> None:
    column = {"name": "X", "type": column_type, "jsonPath": ".spec.x"}
    table = to_table([machine(spec={"x": value})], [column], now=NOW, resource_version="1")
    assert table["rows"][0]["cells"][1] == cell


@pytest.mark.parametrize(
    ("elapsed", "text"),
    [
        (timedelta(seconds=-5), "<invalid>"),
        (timedelta(seconds=-1.5), "0s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=119), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=5, seconds=3), "5m3s"),
        (timedelta(minutes=10, seconds=59), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=2), "3h2m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(hours=47), "47h"),
        (timedelta(days=2), "2d"),
        (timedelta(days=3, hours=4), "3d4h"),
        (timedelta(days=8, hours=4), "8d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=800), "2y70d"),
        (timedelta(days=365 * 9), "9y"),
    ],
)
def test_ages_read_like_kubectls(elapsed: timedelta, text: str) -> None:
    assert human_duration(elapsed) == text


def test_columns_are_name_then_the_printer_columns_with_descriptions() -> None:
    definitions = to_table([], COLUMNS[:2] + COLUMNS[5:6], now=NOW, resource_version="1")["columnDefinitions"]
    assert [(d["name"], d["type"], d["format"], d["priority"]) for d in definitions] == [
        ("Name", "string", "name", 0),
        ("Type", "string", "", 0),
        ("State", "string", "", 0),
        ("First item", "string", "", 1),
    ]
    assert definitions[0]["description"].startswith("Name must be unique within a namespace.")
    assert definitions[1]["description"] == "Role of the machine"
    assert (
        definitions[2]["description"]
        == "Custom resource definition column (in JSONPath format): .status.state"
    )


def test_a_resource_without_printer_columns_shows_name_and_age() -> None:
    table = to_table([FULL], [], now=NOW, resource_version="3")
    assert [d["name"] for d in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["m1", "5m"]


def test_the_table_is_a_meta_v1_table_with_the_lists_resource_version() -> None:
    table = to_table([FULL, machine("m2", "2024-04-28T12:00:00Z")], [], now=NOW, resource_version="42")
    assert (table["kind"], table["apiVersion"], table["metadata"]) == (
        "Table",
        "meta.k8s.io/v1",
        {"resourceVersion": "42"},
    )
    assert [row["cells"] for row in table["rows"]] == [["m1", "5m"], ["m2", "3d"]]


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        (
            "Metadata",
            {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": FULL["metadata"]},
        ),
        ("Object", FULL),
        ("None", None),
    ],
)
def test_rows_carry_the_object_as_asked(include: str, expected: Any) -> None:
    table = to_table([FULL], COLUMNS, now=NOW, resource_version="1", include_object=include)
    assert table["rows"][0]["object"] == expected


def test_an_unknown_include_object_is_refused() -> None:
    with pytest.raises(ValueError, match="includeObject"):
        to_table([FULL], [], now=NOW, resource_version="1", include_object="Everything")


@pytest.mark.parametrize("path", [".spec.items[1:3]", ".spec..name", "spec"])
def test_a_column_outside_the_supported_json_path_subset_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="unrecognized column definition"):
        to_table([FULL], [{"name": "X", "type": "string", "jsonPath": path}], now=NOW, resource_version="1")


@pytest.mark.parametrize(
    ("path", "cell"),
    [
        (".spec.stateItems[-1].name", "join"),
        (".spec.stateItems[5].name", None),
        (".spec.stateItems[*].name", "install"),
        ('.status.conditions[?(@.type!="Ready")].status', "False"),
        (".spec.type.deeper", None),
        (".spec['type']", "worker"),
    ],
)
def test_json_paths_of_printer_columns(path: str, cell: Any) -> None:
    table = to_table(
        [FULL], [{"name": "X", "type": "string", "jsonPath": path}], now=NOW, resource_version="1"
    )
    assert table["rows"][0]["cells"][1] == cell
