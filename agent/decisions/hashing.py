"""The identity of a state item: what the machine converges to, as one sha256.

An item is done when its status slot carries the hash of the spec item and exit code 0, so the hash decides
what re-runs. It covers everything that changes the outcome — runner, name, version, phase and the effective
params (the item's params with the machine's ``stateItemsOverwrites`` merged over them) — and nothing else:

- the canonical JSON has sorted keys and no whitespace, so key order in the object is irrelevant;
- ``VOLATILE_PARAMS`` are left out: they tune how or when an item runs, not what it converges to, and an
  operator turning up verbosity or a timeout on a fleet must not make every machine re-run its playbooks.

Changing the set of volatile params, or anything else here, changes the hash of items that use them and
re-runs those items once everywhere; treat it as an API change.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping

from agent.api.models import StateItem

VOLATILE_PARAMS: frozenset[str] = frozenset(
    {
        "verbosity",  # log detail of the runner (ansible -v level)
        "timeout",  # seconds before the agent gives up on one run
        "retries",  # how many times a failed run is retried
        "retry_delay",  # seconds between retries
    }
)
"""Params passed to the runner but left out of the hash: they change how/when an item runs, not its result."""


def effective_params(item: StateItem, overwrites: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The params the runner gets: the item's own with ``overwrites[item.name]`` (per machine) on top."""
    return {**item.params, **overwrites.get(item.name, {})}


def item_hash(item: StateItem, overwrites: Mapping[str, Mapping[str, str]]) -> str:
    """The sha256 (hex) of the item's canonical JSON, effective params minus ``VOLATILE_PARAMS``."""
    params = effective_params(item, overwrites)
    kept = tuple(sorted((k, v) for k, v in params.items() if k not in VOLATILE_PARAMS))
    return _digest((item.runner, item.name, item.version, item.phase, kept))


@functools.lru_cache(maxsize=65536)
def _digest(key: tuple[str, str, str, str, tuple[tuple[str, str], ...]]) -> str:
    """Memoised: the scheduler re-derives thousands of machines' states per plan from the same few items."""
    runner, name, version, phase, params = key
    canonical = {"runner": runner, "name": name, "version": version, "phase": phase, "params": dict(params)}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
