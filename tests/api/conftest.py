"""Fixtures for the API tests: the CRD manifests as shipped, their schemas, and the demo samples."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.api.crds import load_crds

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "samples"


def to_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3 structural schema node as draft-7 JSON Schema, to check one value (e.g. a default) alone.

    ``nullable`` becomes a type union and the ``x-kubernetes-*`` extensions are dropped. Unknown fields are
    rejected where the API server would prune them: a default that would lose a field is as wrong as an
    invalid one.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("nullable", "default", "description") or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    if "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    return out


@pytest.fixture(scope="session")
def crds() -> dict[str, dict[str, Any]]:
    """The shipped CRDs by kind."""
    return {crd["spec"]["names"]["kind"]: crd for crd in load_crds()}


@pytest.fixture(scope="session")
def schemas(crds: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The openAPIV3Schema of each kind's (only) version."""
    return {kind: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for kind, crd in crds.items()}


@pytest.fixture(scope="session")
def json_schema() -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The OpenAPI → JSON Schema conversion, for tests that validate a part of a schema."""
    return to_json_schema


@pytest.fixture(scope="session")
def samples() -> list[dict[str, Any]]:
    """Every object of deploy/samples, in apply order."""
    docs = []
    for path in sorted(SAMPLES_DIR.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return docs
