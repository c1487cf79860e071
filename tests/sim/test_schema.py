"""CRD schemas in the simulator: the 422 messages users read, and what pruning and defaulting store."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.sim.errors import Cause
from testbed.sim.schema import StructuralSchema

ROOT = Path(__file__).resolve().parents[2]

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["clusterName"],
            "properties": {
                "clusterName": {"type": "string", "minLength": 2, "maxLength": 8, "pattern": "^[a-z]+$"},
                "type": {"type": "string", "enum": ["control", "worker"], "default": "worker"},
                "maxWorkerPrepareCount": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "multipleOf": 0.5},
                "port": {"x-kubernetes-int-or-string": True},
                "release": {"type": "string", "nullable": True},
                "haltAgent": {"type": "boolean"},
                "startedAt": {"type": "string", "format": "date-time"},
                "stateItems": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "required": ["runner", "name"],
                        "properties": {
                            "runner": {"type": "string", "enum": ["ansible", "downloader", "bash"]},
                            "name": {"type": "string"},
                            "phase": {"type": "string", "default": "deploy"},
                            "params": STRING_MAP,
                        },
                    },
                },
                "stateItemsOverwrites": {
                    "type": "object",
                    "maxProperties": 2,
                    "additionalProperties": STRING_MAP,
                },
                "labels": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}},
                "tags": {"type": "array", "items": {"type": "string", "default": "untagged"}},
                "extra": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}},
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}},
                },
                "agentConfig": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "version": {"type": "string", "default": "1.0"},
                        "args": {"type": "array"},
                    },
                },
            },
        },
        "status": {"type": "object", "properties": {"state": {"type": "string"}}},
    },
}
SCHEMA_AS_STRUCTURAL = StructuralSchema(SCHEMA)


def machine(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "lcm.mirantis.com/v1alpha1",
        "kind": "LCMMachine",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"clusterName": "demo", **spec},
    }


DROP: Any = object()
ITEM = {"runner": "ansible", "name": "install"}


def causes(**spec: Any) -> list[tuple[str, str]]:
    """(reason, message) of each violation; the message always starts with the cause's field."""
    obj = machine(**spec)
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not DROP}
    found = SCHEMA_AS_STRUCTURAL.validate(obj)
    assert all(c.message.startswith(f"{c.field}: ") for c in found)
    return [(c.reason, c.message) for c in found]


MAX = "spec.maxWorkerPrepareCount"
TYPE, INVALID, REQUIRED = "FieldValueTypeInvalid", "FieldValueInvalid", "FieldValueRequired"
RUNNERS = 'supported values: "ansible", "downloader", "bash"'


def type_error(path: str, expected: str, actual: str) -> tuple[str, str]:
    return TYPE, f'{path}: Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"'


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, [], id="valid"),
        pytest.param({"clusterName": DROP}, [(REQUIRED, "spec.clusterName: Required value")], id="required"),
        pytest.param(
            {"type": "foo"},
            [
                (
                    "FieldValueNotSupported",
                    'spec.type: Unsupported value: "foo": supported values: "control", "worker"',
                )
            ],
            id="enum",
        ),
        pytest.param({"maxWorkerPrepareCount": "string"}, [type_error(MAX, "integer", "string")], id="type"),
        pytest.param({"maxWorkerPrepareCount": 2.0}, [], id="integral-float-is-an-integer"),
        pytest.param({"maxWorkerPrepareCount": 2.5}, [type_error(MAX, "integer", "number")], id="fraction"),
        pytest.param(
            {"haltAgent": 1}, [type_error("spec.haltAgent", "boolean", "integer")], id="not-boolean"
        ),
        pytest.param(
            {"maxWorkerPrepareCount": 0},
            [(INVALID, f"{MAX}: Invalid value: 0: {MAX} in body should be greater than or equal to 1")],
            id="minimum",
        ),
        pytest.param(
            {"maxWorkerPrepareCount": 501},
            [(INVALID, f"{MAX}: Invalid value: 501: {MAX} in body should be less than or equal to 500")],
            id="maximum",
        ),
        pytest.param(
            {"ratio": 0},
            [(INVALID, "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0")],
            id="exclusive-minimum",
        ),
        pytest.param(
            {"ratio": 0.75},
            [(INVALID, "spec.ratio: Invalid value: 0.75: spec.ratio in body should be a multiple of 0.5")],
            id="multiple-of",
        ),
        pytest.param(
            {"clusterName": "abcdefghij"},
            [("FieldValueTooLong", "spec.clusterName: Too long: may not be longer than 8")],
            id="max-length",
        ),
        pytest.param(
            {"clusterName": "a"},
            [
                (
                    INVALID,
                    'spec.clusterName: Invalid value: "a": '
                    "spec.clusterName in body should be at least 2 chars long",
                )
            ],
            id="min-length",
        ),
        pytest.param(
            {"clusterName": "ab1"},
            [
                (
                    INVALID,
                    'spec.clusterName: Invalid value: "ab1": '
                    "spec.clusterName in body should match '^[a-z]+$'",
                )
            ],
            id="pattern",
        ),
        pytest.param(
            {"startedAt": "yesterday"},
            [type_error("spec.startedAt", "date-time", "yesterday")],
            id="date-time",
        ),
        pytest.param({"startedAt": "2024-05-01T10:00:00.123Z"}, [], id="date-time-ok"),
        pytest.param({"release": None}, [], id="nullable"),
        pytest.param(
            {"haltAgent": None}, [type_error("spec.haltAgent", "boolean", "null")], id="null-not-nullable"
        ),
        pytest.param({"port": 8080}, [], id="int-or-string-int"),
        pytest.param({"port": "http"}, [], id="int-or-string-string"),
        pytest.param(
            {"port": True}, [type_error("spec.port", "integer,string", "boolean")], id="int-or-string-bool"
        ),
        pytest.param(
            {"stateItems": [ITEM, {"runner": "make"}]},
            [
                (REQUIRED, "spec.stateItems[1].name: Required value"),
                (
                    "FieldValueNotSupported",
                    f'spec.stateItems[1].runner: Unsupported value: "make": {RUNNERS}',
                ),
            ],
            id="nested-array-items",
        ),
        pytest.param(
            {"stateItems": []},
            [
                (
                    INVALID,
                    "spec.stateItems: Invalid value: 0: spec.stateItems in body should have at least 1 items",
                )
            ],
            id="min-items",
        ),
        pytest.param(
            {"stateItems": [ITEM] * 4},
            [("FieldValueTooMany", "spec.stateItems: Too many: 4: must have at most 3 items")],
            id="max-items",
        ),
        pytest.param(
            {"stateItems": [{**ITEM, "params": {"retries": 3}}]},
            [type_error("spec.stateItems[0].params.retries", "string", "integer")],
            id="map-key-path",
        ),
        pytest.param(
            {"stateItemsOverwrites": {"install": {"verbose": False}}},
            [type_error("spec.stateItemsOverwrites.install.verbose", "string", "boolean")],
            id="map-of-maps",
        ),
        pytest.param(
            {"stateItemsOverwrites": {"a": {}, "b": {}, "c": {"x": 1}}},
            [("FieldValueTooMany", "spec.stateItemsOverwrites: Too many: 3: must have at most 2 items")],
            id="max-properties-stops-there",
        ),
        pytest.param(
            {"labels": {}},
            [
                (
                    INVALID,
                    "spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties",
                )
            ],
            id="min-properties",
        ),
        pytest.param(
            {"stateItems": "install"}, [type_error("spec.stateItems", "array", "string")], id="array-type"
        ),
        pytest.param(
            {"template": {"metadata": {"name": "x"}}},
            [
                (REQUIRED, "spec.template.apiVersion: Required value: must not be empty"),
                (REQUIRED, "spec.template.kind: Required value: must not be empty"),
            ],
            id="embedded-resource",
        ),
        pytest.param(
            {"extra": {"anything": [1, {"goes": True}], "known": {"a": 1}}},
            [type_error("spec.extra.known.a", "string", "integer")],
            id="preserve-unknown-still-checks-known",
        ),
    ],
)
def test_validation_messages_are_the_api_servers(
    spec: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert causes(**spec) == expected


def test_every_violation_is_reported_ordered_by_field_path() -> None:
    items = [ITEM, {"name": "a"}, {"name": "b"}]
    found = SCHEMA_AS_STRUCTURAL.validate(
        machine(type="x", stateItems=items, haltAgent="no", clusterName=None)
    )
    assert [c.field for c in found] == [
        "spec.clusterName",
        "spec.haltAgent",
        "spec.stateItems[1].runner",
        "spec.stateItems[2].runner",
        "spec.type",
    ]


def test_list_indices_are_ordered_as_numbers() -> None:
    items = [dict(ITEM) for _ in range(11)]
    items[2]["runner"] = items[10]["runner"] = "x"
    assert [m.split(":")[0] for _, m in causes(stateItems=items) if "[" in m.split(":")[0]] == [
        "spec.stateItems[2].runner",
        "spec.stateItems[10].runner",
    ]


def test_identical_violations_are_reported_once() -> None:
    schema = StructuralSchema(
        {
            "type": "object",
            "properties": {"a": {"type": "string", "allOf": [{"minLength": 3}, {"minLength": 3}]}},
        }
    )
    assert schema.validate({"a": "x"}) == [
        Cause("a", "FieldValueInvalid", 'a: Invalid value: "x": a in body should be at least 3 chars long')
    ]


@pytest.mark.parametrize(
    ("composite", "value", "expected"),
    [
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, 5, []),
        (
            {"anyOf": [{"minimum": 10}, {"maximum": 1}]},
            5,
            ['<nil>: Invalid value: "": spec.n must validate at least one schema (anyOf)'],
        ),
        (
            {"oneOf": [{"minimum": 1}, {"minimum": 2}]},
            5,
            ['<nil>: Invalid value: "": spec.n must validate one and only one schema (oneOf)'],
        ),
        ({"not": {"minimum": 1}}, 5, ['<nil>: Invalid value: "": spec.n must not validate the schema (not)']),
    ],
)
def test_composite_keywords_report_the_summary_line(
    composite: dict[str, Any], value: Any, expected: list[str]
) -> None:
    schema = StructuralSchema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {"n": {"x-kubernetes-int-or-string": True, **composite}},
                }
            },
        }
    )
    assert [c.message for c in schema.validate({"spec": {"n": value}})] == expected


def stored(**spec: Any) -> dict[str, Any]:
    return SCHEMA_AS_STRUCTURAL.default_and_prune(machine(**spec))


DEFAULTED = {
    "clusterName": "demo",
    "type": "worker",
    "maxWorkerPrepareCount": 50,
    "agentConfig": {"version": "1.0"},
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, DEFAULTED, id="defaults-including-nested-default-of-a-default"),
        pytest.param(
            {"type": "control", "maxWorkerPrepareCount": 5, "agentConfig": {"version": "2.0"}},
            DEFAULTED | {"type": "control", "maxWorkerPrepareCount": 5, "agentConfig": {"version": "2.0"}},
            id="given-values-win",
        ),
        pytest.param({"bogus": 1, "agentConfig": {"flavour": "x"}}, DEFAULTED, id="unknown-fields-pruned"),
        pytest.param(
            {"stateItems": [{"runner": "bash", "name": "a", "junk": 1}, {**ITEM, "phase": "prepare"}]},
            DEFAULTED
            | {
                "stateItems": [
                    {"runner": "bash", "name": "a", "phase": "deploy"},
                    {**ITEM, "phase": "prepare"},
                ]
            },
            id="array-items-pruned-and-defaulted",
        ),
        pytest.param(
            {"stateItemsOverwrites": {"a": {"k": "v"}}, "stateItems": [{**ITEM, "params": {"k": "v"}}]},
            DEFAULTED
            | {
                "stateItemsOverwrites": {"a": {"k": "v"}},
                "stateItems": [{**ITEM, "phase": "deploy", "params": {"k": "v"}}],
            },
            id="map-values-kept",
        ),
        pytest.param({"release": None}, DEFAULTED | {"release": None}, id="nullable-null-kept"),
        pytest.param({"haltAgent": None}, DEFAULTED, id="non-nullable-null-dropped"),
        pytest.param(
            {"type": None, "maxWorkerPrepareCount": None}, DEFAULTED, id="non-nullable-null-defaulted"
        ),
        pytest.param(
            {"tags": ["a", None]}, DEFAULTED | {"tags": ["a", "untagged"]}, id="null-array-item-defaulted"
        ),
        pytest.param(
            {"extra": {"free": {"form": [1]}, "known": {"a": "x", "b": "pruned"}}},
            DEFAULTED | {"extra": {"free": {"form": [1]}, "known": {"a": "x"}}},
            id="preserve-unknown-keeps-unknown-but-prunes-known",
        ),
        pytest.param(
            {
                "template": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p", "odd": 1},
                    "spec": {"x": "y", "z": 1},
                    "status": {},
                }
            },
            DEFAULTED
            | {
                "template": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p", "odd": 1},
                    "spec": {"x": "y"},
                }
            },
            id="embedded-resource-keeps-its-type-and-metadata",
        ),
        pytest.param(
            {"agentConfig": {"args": ["--a", {"b": 1}]}},
            DEFAULTED | {"agentConfig": {"version": "1.0", "args": ["--a", {}]}},
            id="array-without-items-schema-empties-objects",
        ),
    ],
)
def test_default_and_prune_stores_what_the_api_server_stores(
    spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert stored(**spec)["spec"] == expected


def test_root_type_fields_and_metadata_are_never_pruned_but_unknown_root_fields_are() -> None:
    obj = machine() | {"extra": 1}
    obj["metadata"] = {"name": "m", "labels": {"a": "b"}, "annotations": {"x": "y"}, "resourceVersion": "5"}
    result = SCHEMA_AS_STRUCTURAL.default_and_prune(obj)
    assert result["metadata"] == obj["metadata"]
    assert (result["apiVersion"], result["kind"]) == ("lcm.mirantis.com/v1alpha1", "LCMMachine")
    assert "extra" not in result


def test_default_and_prune_returns_a_new_object_and_leaves_the_input_alone() -> None:
    obj = machine(stateItems=[{**ITEM, "junk": 1}], agentConfig={"args": ["x"]})
    before = copy.deepcopy(obj)
    result = SCHEMA_AS_STRUCTURAL.default_and_prune(obj)
    assert obj == before
    result["spec"]["agentConfig"]["args"].append("y")
    result["metadata"]["name"] = "changed"
    assert obj == before


def test_defaults_are_copied_not_shared_between_objects() -> None:
    first, second = stored()["spec"], stored()["spec"]
    first["agentConfig"]["version"] = "9"
    assert second["agentConfig"] == {"version": "1.0"}


def test_a_schema_the_api_server_rejects_is_refused() -> None:
    with pytest.raises(ValueError, match="additionalProperties cannot be set to false"):
        StructuralSchema({"type": "object", "additionalProperties": False})


def _documents(folder: str) -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted((ROOT / folder).glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


CRDS = _documents("deploy/crds")


@pytest.mark.parametrize("crd", CRDS, ids=[crd["spec"]["names"]["kind"] for crd in CRDS])
def test_the_projects_crds_compile_and_accept_their_samples(crd: dict[str, Any]) -> None:
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema = StructuralSchema(version["schema"]["openAPIV3Schema"])
    samples = [doc for doc in _documents("deploy/samples") if doc["kind"] == crd["spec"]["names"]["kind"]]
    for sample in samples:
        assert schema.validate(schema.default_and_prune(sample)) == []
        assert schema.validate(sample) == []


def test_an_update_leaving_a_value_as_stored_is_not_checked_again() -> None:
    """Validation ratcheting (KEP-4008): a value that no longer passes a tightened schema survives updates
    that leave it alone; changing it is checked. Unchanged subtrees are also kept as they were stored."""
    schema = StructuralSchema({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "size": {"type": "integer", "maximum": 10},
        "color": {"type": "string", "enum": ["red", "blue"]},
        "extra": {"type": "object", "properties": {"kept": {"type": "string"}}}}}}})
    stored = {"spec": {"size": 50, "color": "red", "extra": {"kept": "x"}}}  # admitted before "maximum"
    recolored = {"spec": {**stored["spec"], "color": "blue"}}  # a merge patch shares the untouched parts
    assert schema.validate(recolored, stored) == []
    assert schema.default_and_prune(recolored, stored)["spec"]["extra"] is stored["spec"]["extra"]
    assert [c.field for c in schema.validate(recolored)] == ["spec.size"]  # a create is checked whole
    resized = {"spec": {**stored["spec"], "size": 60, "color": "green"}}
    assert sorted(c.field for c in schema.validate(resized, stored)) == ["spec.color", "spec.size"]
