"""The identity of a state item: Mirantis' ``LCMStateItem.Hash(agentVersion)``, byte for byte.

An item is done when its status slot carries the hash of the spec item and exit code 0, so the hash decides
what re-runs, and it must be the one Mirantis computes or the two systems disagree on what is done
(docs/api.md, "Item hash"). It is the sha256 (lower-case hex) of the item as Go's ``json.Marshal`` writes
the struct: members in the order runner, name, version, params, phase; ``params`` left out when empty and
``phase`` when empty; params sorted by key; Go's escaping (``agent.api.gojson``). For agent versions newer
than 0.3.0-187 (``AgentGreater187``) the params in ``MIRANTIS_DROPPED_PARAMS`` are left out, and for those
newer than 0.3.0-257 also ``MIRANTIS_DROPPED_PARAMS_257``; an empty agent version counts as newest.

``stateItemsOverwrites`` are not in the hash, as in Mirantis: the scheduler renders every machine-specific
param into the machine's own items (docs/scheduler.md), so a change still re-runs the item; an overwrite
written by someone else changes what the runner gets (``effective_params``) but re-runs nothing by itself.

``legacy_item_hash`` is the hash lcm-agent used before (sorted-key JSON of the effective params): status
slots written under it are recognised and rewritten, never re-run (docs/api.md, "Upgrading from the old
hash").
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping

from agent.api.gojson import go_object, go_string, go_string_map
from agent.api.gosemver import AGENT_IN_MCC_216, AGENT_IN_MCC_219, newer_than
from agent.api.models import ItemFields, StateItem

MIRANTIS_DROPPED_PARAMS: frozenset[str] = frozenset(
    {"controlNodeIP", "ucp_tag", "target_release", "release_needs_upgrade"}
)
"""Params Mirantis' hash leaves out for agents newer than 0.3.0-187: they change with the cluster (its first
control node, its MKE version), not with what the item converges a node to."""
MIRANTIS_DROPPED_PARAMS_257: frozenset[str] = frozenset(
    {"ucp_lb", "supplementary_addresses_in_ssl_keys", "mirrors_mgmt_disabled"}
)
"""Params also left out for agents newer than 0.3.0-257."""


def effective_params(item: StateItem, overwrites: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The params the runner gets: the item's own with ``overwrites[item.name]`` (per machine) on top."""
    return {**item.params, **overwrites.get(item.name, {})}


def hashed_params(params: Mapping[str, str], agent_version: str) -> dict[str, str]:
    """The params Mirantis' hash covers for ``agent_version``; raises InvalidVersionError where it panics."""
    if not params or not newer_than(agent_version, AGENT_IN_MCC_216):
        return dict(params)
    dropped = MIRANTIS_DROPPED_PARAMS
    if newer_than(agent_version, AGENT_IN_MCC_219):
        dropped = dropped | MIRANTIS_DROPPED_PARAMS_257
    return {k: v for k, v in params.items() if k not in dropped}


def hash_input(item: ItemFields, agent_version: str) -> str:
    """The exact JSON text Mirantis hashes for ``item`` under ``agent_version``."""
    members = [("runner", go_string(item.runner)), ("name", go_string(item.name)),
               ("version", go_string(item.version))]
    params = hashed_params(item.params, agent_version)
    if params:
        members.append(("params", go_string_map(params)))
    phase = getattr(item, "phase", "")
    if phase:
        members.append(("phase", go_string(phase)))
    return go_object(members)


def item_hash(item: ItemFields, agent_version: str) -> str:
    """Mirantis' ``item.Hash(agentVersion)``; raises InvalidVersionError where that panics."""
    return _digest(hash_input(item, agent_version))


@functools.lru_cache(maxsize=65536)
def _digest(text: str) -> str:
    """Memoised: the scheduler re-derives thousands of machines' states per plan from the same few items."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


LEGACY_VOLATILE_PARAMS: frozenset[str] = frozenset({"verbosity", "timeout", "retries", "retry_delay"})
"""Params the old hash left out (they tuned how an item ran, not its result)."""


def legacy_item_hash(item: StateItem, overwrites: Mapping[str, Mapping[str, str]]) -> str:
    """The hash lcm-agent wrote before it hashed as Mirantis does: sorted-key JSON of runner, name,
    version, phase (``deploy`` when absent) and the effective params minus ``LEGACY_VOLATILE_PARAMS``."""
    params = {k: v for k, v in effective_params(item, overwrites).items() if k not in LEGACY_VOLATILE_PARAMS}
    canonical = {"runner": item.runner, "name": item.name, "version": item.version,
                 "phase": item.phase or "deploy", "params": params}
    return _digest(json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
