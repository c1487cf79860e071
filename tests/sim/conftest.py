"""The differential conformance tests, and fixtures for the registry's tests.

Every test of ``test_conformance_*.py``, ``test_kubectl.py`` and ``test_server_http.py`` that uses
``kube_api`` runs twice, on the real API server and on the simulator (``api_backend`` "kube" and "sim"): each
must pass on both, or be marked ``simulator("why")``; what the simulator does not implement at all is marked
``real_server("what")``. Where the two disagree the real server is right.

The registry's tests use an in-memory registry serving two small inline CRDs.

``widgets`` (namespaced, with a status subresource) and ``gadgets`` (cluster-scoped, status an ordinary
field) cover both generation and status rules without depending on the project's real CRDs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testbed.sim.registry import Registry
from testbed.sim.resources import ResourceType
from testbed.sim.store import Store

GROUP = "example.com"
DIFFERENTIAL = ("test_conformance_", "test_kubectl", "test_server_http")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    differential = metafunc.module.__name__.rsplit(".", 1)[-1].startswith(DIFFERENTIAL)
    marks = {m.name for m in metafunc.definition.iter_markers()}
    if differential and "simulator" not in marks and "kube_api" in metafunc.fixturenames:
        backends = ["kube"] if "real_server" in marks else ["kube", "sim"]
        metafunc.parametrize("api_backend", backends, indirect=True)


def crd(kind: str, plural: str, *, namespaced: bool, status_subresource: bool) -> dict[str, Any]:
    """A minimal valid CRD: an enum, a defaulted integer, a required field, a free-form status."""
    spec_schema = {
        "type": "object",
        "required": ["color"],
        "properties": {
            "color": {"type": "string", "enum": ["red", "blue"]},
            "size": {"type": "integer", "default": 1, "minimum": 0},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    version: dict[str, Any] = {
        "name": "v1", "served": True, "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": spec_schema,
            "status": {"type": "object", "properties": {
                "state": {"type": "string"}, "count": {"type": "integer"}}},
        }}},
    }
    if status_subresource:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced" if namespaced else "Cluster",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                 "versions": [version]},
    }


WIDGET_CRD = crd("Widget", "widgets", namespaced=True, status_subresource=True)
GADGET_CRD = crd("Gadget", "gadgets", namespaced=False, status_subresource=False)


def _widget(name: str, color: str = "red", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": {"color": color}, **extra}


@pytest.fixture
def widget() -> Callable[..., dict[str, Any]]:
    """``widget(name, color="red", **top_level_fields)``: a Widget body."""
    return _widget


@pytest.fixture
def widget_crd() -> dict[str, Any]:
    return copy.deepcopy(WIDGET_CRD)


@pytest.fixture
def registry() -> Iterator[Registry]:
    reg = Registry(Store(None, history_limit=100, queue_size=50))
    crds = reg.resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    reg.create(crds, "", WIDGET_CRD)
    reg.create(crds, "", GADGET_CRD)
    yield reg
    reg.close()


@pytest.fixture
def widgets(registry: Registry) -> ResourceType:
    return registry.resolve(GROUP, "v1", "widgets")


@pytest.fixture
def gadgets(registry: Registry) -> ResourceType:
    return registry.resolve(GROUP, "v1", "gadgets")


@pytest.fixture
def secrets(registry: Registry) -> ResourceType:
    return registry.resolve("", "v1", "secrets")


@pytest.fixture
def namespaces(registry: Registry) -> ResourceType:
    return registry.resolve("", "v1", "namespaces")
