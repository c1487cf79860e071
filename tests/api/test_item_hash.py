"""What re-runs an item: Mirantis' hash of it, under the agent version; the old hash, still recognised."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pytest

from agent.api.gosemver import InvalidVersionError
from agent.api.models import StateItem
from agent.decisions.hashing import (
    MIRANTIS_DROPPED_PARAMS,
    MIRANTIS_DROPPED_PARAMS_257,
    effective_params,
    hash_input,
    item_hash,
    legacy_item_hash,
)

NEW_AGENT = "v0.3.0-300-g1a2b3c4d"
OLD_AGENT = "0.3.0-150-g0a0a0a0a"
MIDDLE_AGENT = "0.3.0-200-gabcdef01"


def item(name: str = "docker-engine", **fields: Any) -> StateItem:
    base: dict[str, Any] = {"runner": "ansible", "name": name, "version": "1.0.0", "phase": "deploy"}
    base["params"] = {"playbook": "deploy/docker-engine.yml", "channel": "stable"}
    return StateItem.model_validate({**base, **fields})


Case = tuple[StateItem, str, StateItem, str]

BASE = item()
# (item A, agent version A, item B, agent version B): the cases where A and B must hash alike...
SAME: dict[str, Case] = {
    "identical": (BASE, "", item(), ""),
    "param order": (BASE, "", item(params={"channel": "stable", "playbook": "deploy/docker-engine.yml"}), ""),
    "no params vs empty params": (item(params={}), "", StateItem(runner="ansible", name="docker-engine",
                                                                 version="1.0.0", phase="deploy"), ""),
    "empty agent version counts as newest": (BASE, "", BASE, NEW_AGENT),
    "our own agent versions filter nothing": (BASE, "0.1.0", BASE, OLD_AGENT),
    **{f"{p} dropped by newer agents": (BASE, NEW_AGENT, item(params={**BASE.params, p: "x"}), NEW_AGENT)
       for p in sorted(MIRANTIS_DROPPED_PARAMS | MIRANTIS_DROPPED_PARAMS_257)},
    "controlNodeIP dropped between 187 and 257": (
        BASE, MIDDLE_AGENT, item(params={**BASE.params, "controlNodeIP": "10.0.0.1"}), MIDDLE_AGENT),
}
# ...and the cases where they must not.
DIFFERENT: dict[str, Case] = {
    "param value": (BASE, "", item(params={**BASE.params, "channel": "edge"}), ""),
    "param added": (BASE, "", item(params={**BASE.params, "mirror": "http://m"}), ""),
    "param added empty": (BASE, "", item(params={**BASE.params, "mirror": ""}), ""),
    "param removed": (BASE, "", item(params={"playbook": "deploy/docker-engine.yml"}), ""),
    "version": (BASE, "", item(version="1.0.1"), ""),
    "runner": (BASE, "", item(runner="bash"), ""),
    "phase": (BASE, "", item(phase="reconfigure"), ""),
    "no phase is not deploy": (BASE, "", item(phase=""), ""),
    "name": (BASE, "", item(name="docker-engine-2"), ""),
    "unicode vs ascii look-alike": (item(params={"l": "Zürich"}), "", item(params={"l": "Zurich"}), ""),
    "key vs value swap": (item(params={"a": "b"}), "", item(params={"b": "a"}), ""),
    "param case": (item(params={"a": "b"}), "", item(params={"A": "b"}), ""),
    "a once-volatile param counts now": (BASE, "", item(params={**BASE.params, "timeout": "5"}), ""),
    "controlNodeIP counts for old agents": (
        BASE, OLD_AGENT, item(params={**BASE.params, "controlNodeIP": "10.0.0.1"}), OLD_AGENT),
    "ucp_lb counts up to 0.3.0-257": (
        BASE, MIDDLE_AGENT, item(params={**BASE.params, "ucp_lb": "l"}), MIDDLE_AGENT),
}


@pytest.mark.parametrize("case", SAME.values(), ids=SAME.keys())
def test_hash_ignores_what_mirantis_ignores(case: Case) -> None:
    a, version_a, b, version_b = case
    assert item_hash(a, version_a) == item_hash(b, version_b)


@pytest.mark.parametrize("case", DIFFERENT.values(), ids=DIFFERENT.keys())
def test_hash_follows_what_mirantis_hashes(case: Case) -> None:
    a, version_a, b, version_b = case
    assert item_hash(a, version_a) != item_hash(b, version_b)


@pytest.mark.parametrize(
    ("the_item", "text"),
    [
        (StateItem(runner="bash", name="x", version="1"), '{"runner":"bash","name":"x","version":"1"}'),
        (StateItem(runner="ansible", name="l", version="2", phase="reconfigure",
                   params={"z": "1", "a": "<&>"}),
         '{"runner":"ansible","name":"l","version":"2","params":{"a":"\\u003c\\u0026\\u003e","z":"1"},'
         '"phase":"reconfigure"}'),
        (StateItem(runner="bash", name="Zürich\u2028", version="3", phase="prepare"),
         '{"runner":"bash","name":"Zürich\\u2028","version":"3","phase":"prepare"}'),
    ],
)
def test_hash_is_sha256_of_go_json(the_item: StateItem, text: str) -> None:
    assert hash_input(the_item, "") == text
    assert item_hash(the_item, "") == hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("version", ["latest", "1.2.3.4", "v", "0.3.0_1", "99999999999999999999.0.0"])
def test_an_agent_version_mirantis_cannot_parse_is_refused_not_hashed(version: str) -> None:
    with pytest.raises(InvalidVersionError, match="version"):
        item_hash(BASE, version)


def test_items_without_params_hash_whatever_the_agent_version() -> None:
    """Mirantis parses the version only to filter params: no params, no parse (and no panic)."""
    bare = item(params={})
    assert item_hash(bare, "latest") == item_hash(bare, "")


@pytest.mark.parametrize(
    ("the_item", "canonical"),
    [
        (
            StateItem(runner="bash", name="x", version="1", phase="deploy"),
            '{"name":"x","params":{},"phase":"deploy","runner":"bash","version":"1"}',
        ),
        (
            StateItem(runner="bash", name="x", version="1"),
            '{"name":"x","params":{},"phase":"deploy","runner":"bash","version":"1"}',
        ),
        (
            StateItem(runner="downloader", name="d", version="3", phase="prepare", params={"verbosity": "4"}),
            '{"name":"d","params":{},"phase":"prepare","runner":"downloader","version":"3"}',
        ),
    ],
)
def test_the_legacy_hash_is_the_one_lcm_agent_wrote_before(the_item: StateItem, canonical: str) -> None:
    """Pinned: the old hash as it was documented, so slots written under it are still recognised."""
    assert legacy_item_hash(the_item, {}) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_the_legacy_hash_saw_the_overwrites() -> None:
    assert legacy_item_hash(BASE, {"docker-engine": {"channel": "edge"}}) == legacy_item_hash(
        item(params={**BASE.params, "channel": "edge"}), {})


@pytest.mark.parametrize(
    ("params", "overwrites", "expected"),
    [
        ({"a": "1"}, {}, {"a": "1"}),
        ({"a": "1"}, {"docker-engine": {"a": "2"}}, {"a": "2"}),
        ({"a": "1"}, {"docker-engine": {"b": "2"}}, {"a": "1", "b": "2"}),
        ({"a": "1"}, {"other": {"a": "2"}}, {"a": "1"}),
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
