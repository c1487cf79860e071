"""What re-runs an item: the hash changes with what the item converges to, and only with that."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pytest

from agent.api.models import StateItem
from agent.decisions.hashing import VOLATILE_PARAMS, effective_params, item_hash

NO_OVERWRITES: Mapping[str, Mapping[str, str]] = {}


def item(name: str = "docker-engine", **fields: Any) -> StateItem:
    base: dict[str, Any] = {"runner": "ansible", "name": name, "version": "1.0.0", "phase": "deploy"}
    base["params"] = {"playbook": "deploy/docker-engine.yml", "channel": "stable"}
    return StateItem.model_validate({**base, **fields})


Case = tuple[StateItem, Mapping[str, Mapping[str, str]], StateItem, Mapping[str, Mapping[str, str]]]

BASE = item()
# (item A, overwrites A, item B, overwrites B): the cases where A and B must hash alike...
SAME: dict[str, Case] = {
    "identical": (BASE, NO_OVERWRITES, item(), NO_OVERWRITES),
    "param order": (BASE, {}, item(params={"channel": "stable", "playbook": "deploy/docker-engine.yml"}), {}),
    "overwrite restating a param": (BASE, {}, BASE, {"docker-engine": {"channel": "stable"}}),
    "overwrite of another item": (BASE, {}, BASE, {"swarm-join": {"channel": "edge"}}),
    "empty overwrite": (BASE, {}, BASE, {"docker-engine": {}}),
    "no params vs empty params": (
        item(params={}),
        {},
        StateItem(runner="ansible", name="docker-engine", version="1.0.0"),
        {},
    ),
    "default phase": (
        item(params={}, phase="deploy"),
        {},
        StateItem.model_validate({"runner": "ansible", "name": "docker-engine", "version": "1.0.0"}),
        {},
    ),
    **{
        f"volatile {p} added": (BASE, {}, item(params={**BASE.params, p: "5"}), {})
        for p in sorted(VOLATILE_PARAMS)
    },
    **{
        f"volatile {p} overwritten": (
            item(params={**BASE.params, p: "1"}),
            {},
            item(params={**BASE.params, p: "1"}),
            {"docker-engine": {p: "900"}},
        )
        for p in sorted(VOLATILE_PARAMS)
    },
    "unicode, twice": (
        item(params={"label": "zone=Zürich ✓"}),
        {},
        item(params={"label": "zone=Zürich ✓"}),
        {},
    ),
}
# ...and the cases where they must not.
DIFFERENT: dict[str, Case] = {
    "param value": (BASE, {}, item(params={**BASE.params, "channel": "edge"}), {}),
    "param added": (BASE, {}, item(params={**BASE.params, "mirror": "http://m"}), {}),
    "param added empty": (BASE, {}, item(params={**BASE.params, "mirror": ""}), {}),
    "param removed": (BASE, {}, item(params={"playbook": "deploy/docker-engine.yml"}), {}),
    "overwrite changes a param": (BASE, {}, BASE, {"docker-engine": {"channel": "edge"}}),
    "overwrite adds a param": (BASE, {}, BASE, {"docker-engine": {"role": "manager"}}),
    "version": (BASE, {}, item(version="1.0.1"), {}),
    "runner": (BASE, {}, item(runner="bash"), {}),
    "phase": (BASE, {}, item(phase="reconfigure"), {}),
    "name": (BASE, {}, item(name="docker-engine-2"), {}),
    "unicode vs ascii look-alike": (item(params={"l": "Zürich"}), {}, item(params={"l": "Zurich"}), {}),
    "key vs value swap": (item(params={"a": "b"}), {}, item(params={"b": "a"}), {}),
    "param case": (item(params={"a": "b"}), {}, item(params={"A": "b"}), {}),
    "near-volatile name": (BASE, {}, item(params={**BASE.params, "timeouts": "5"}), {}),
}


@pytest.mark.parametrize("case", SAME.values(), ids=SAME.keys())
def test_hash_ignores_what_does_not_change_the_outcome(case: Case) -> None:
    a, over_a, b, over_b = case
    assert item_hash(a, over_a) == item_hash(b, over_b)


@pytest.mark.parametrize("case", DIFFERENT.values(), ids=DIFFERENT.keys())
def test_hash_follows_what_changes_the_outcome(case: Case) -> None:
    a, over_a, b, over_b = case
    assert item_hash(a, over_a) != item_hash(b, over_b)


@pytest.mark.parametrize(
    ("the_item", "canonical"),
    [
        (
            StateItem(runner="bash", name="x", version="1"),
            '{"name":"x","params":{},"phase":"deploy","runner":"bash","version":"1"}',
        ),
        (
            StateItem(
                runner="ansible", name="l", version="2", phase="reconfigure", params={"z": "1", "a": "Zürich"}
            ),
            '{"name":"l","params":{"a":"Zürich","z":"1"},"phase":"reconfigure","runner":"ansible","version":"2"}',
        ),
        (
            StateItem(runner="downloader", name="d", version="3", phase="prepare", params={"verbosity": "4"}),
            '{"name":"d","params":{},"phase":"prepare","runner":"downloader","version":"3"}',
        ),
    ],
)
def test_hash_is_sha256_of_the_documented_canonical_json(the_item: StateItem, canonical: str) -> None:
    """Pinned vectors: another implementation (or a later version of this one) can check it agrees."""
    assert item_hash(the_item, {}) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_hash_is_lowercase_hex_sha256() -> None:
    digest = item_hash(BASE, {})
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")


def test_volatile_params_are_few_and_about_execution_only() -> None:
    assert frozenset({"verbosity", "timeout", "retries", "retry_delay"}) == VOLATILE_PARAMS


@pytest.mark.parametrize(
    ("params", "overwrites", "expected"),
    [
        ({"a": "1"}, {}, {"a": "1"}),
        ({"a": "1"}, {"docker-engine": {"a": "2"}}, {"a": "2"}),
        ({"a": "1"}, {"docker-engine": {"b": "2"}}, {"a": "1", "b": "2"}),
        ({"a": "1"}, {"other": {"a": "2"}}, {"a": "1"}),
        # Volatile params are left out of the hash, not out of the runner's input.
        ({}, {"docker-engine": {"timeout": "60"}}, {"timeout": "60"}),
        ({"verbosity": "1"}, {"docker-engine": {"verbosity": "3"}}, {"verbosity": "3"}),
    ],
)
def test_effective_params_put_the_machine_overwrites_on_top(
    params: dict[str, str], overwrites: Mapping[str, Mapping[str, str]], expected: dict[str, str]
) -> None:
    assert effective_params(item(params=params), overwrites) == expected


def test_effective_params_leave_the_item_alone() -> None:
    the_item = item(params={"a": "1"})
    effective_params(the_item, {"docker-engine": {"a": "2"}})["a"] = "3"
    assert the_item.params == {"a": "1"}
