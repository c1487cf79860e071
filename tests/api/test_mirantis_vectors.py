"""Mirantis' own Go code as the oracle: the item hash and the machine state agree with it on every case.

The cases (tests/api/vectors, README there) were computed by running the public Go types of
Mirantis/mcc-api on each input. ``LCM_MIRANTIS_VECTORS`` names another folder of cases of the same shape
(``items.json``, ``machines.json``), so that held-back or newer sets run through the same tests.
A panic or a decode error in Go must be a clear refusal here, never a hash.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from agent.api.gojson import GoDecodeError, decode_item
from agent.api.gosemver import InvalidVersionError
from agent.api.models import InvalidObjectError, LCMMachine, StateItem
from agent.decisions import state
from agent.decisions.hashing import hash_input, item_hash
from testbed.sim.schema import StructuralSchema

FOLDER = Path(os.environ.get("LCM_MIRANTIS_VECTORS") or Path(__file__).parent / "vectors")


def _cases(name: str) -> list[Any]:
    cases: list[Any] = json.loads((FOLDER / name).read_text())
    return [pytest.param(case, id=case["id"]) for case in cases]


def _item(raw: Any) -> StateItem:
    fields = decode_item(raw)
    return StateItem.model_validate({**fields, "params": fields["params"] or {}})


@pytest.mark.parametrize("case", _cases("items.json"))
def test_item_hash_is_mirantis_hash(case: dict[str, Any]) -> None:
    if "decodeError" in case:
        with pytest.raises(GoDecodeError):
            decode_item(case["item"])
        return
    item = _item(case["item"])
    if "panic" in case:
        with pytest.raises(InvalidVersionError):
            item_hash(item, case["agentVersion"])
        return
    assert hash_input(item, case["agentVersion"]) == case["hashInput"]
    assert item_hash(item, case["agentVersion"]) == case["hash"]


def _outputs(machine: LCMMachine) -> dict[str, Any]:
    """Each output Mirantis computes, or the marker of a refusal where ours raises (theirs panics)."""
    spec, status = machine.spec, machine.status
    computations = {
        "state": lambda: state.machine_state(spec, status),
        "itemsState": lambda: state.items_state(spec, status),
        "ready": lambda: state.ready(spec, status),
        "needsReboot": lambda: state.needs_reboot(spec, status),
        "nodeInitialized": lambda: state.node_initialized(spec, status),
        **{f"phaseReady.{p}": (lambda p=p: state.phase_ready(spec, status, p))
           for p in ("prepare", "deploy", "reconfigure")},
    }
    out: dict[str, Any] = {}
    for key, compute in computations.items():
        try:
            out[key] = compute()
        except InvalidVersionError:
            out[key] = "panic"
    return out


def _hashes(machine: LCMMachine) -> list[str | None]:
    out: list[str | None] = []
    for item in machine.spec.state_items:
        try:
            out.append(item_hash(item, machine.spec.agent_config.version))
        except InvalidVersionError:
            out.append(None)
    return out


@pytest.mark.parametrize("case", _cases("machines.json"))
def test_machine_state_is_mirantis_state(case: dict[str, Any]) -> None:
    if "decodeError" in case:
        with pytest.raises(InvalidObjectError):
            LCMMachine.from_raw(case["machine"])
        return
    machine = LCMMachine.from_raw(case["machine"])
    expected = {k: case[k] for k in ("state", "itemsState", "ready", "needsReboot", "nodeInitialized")
                if k in case}
    expected |= {f"phaseReady.{p}": v for p, v in case["phaseReady"].items()}
    expected |= dict.fromkeys(case.get("panic", {}), "panic")
    assert _outputs(machine) == expected
    assert _hashes(machine) == (case["specItemHashes"] or [])


def test_a_mirantis_machine_reads_back_as_it_was_written() -> None:
    """Nothing of a Mirantis-written object is lost or invented on a parse and dump."""
    for case in json.loads((FOLDER / "machines.json").read_text()):
        if "decodeError" not in case:
            assert LCMMachine.from_raw(case["machine"]).to_raw() == case["machine"], case["id"]


def test_what_mirantis_writes_passes_the_crd_and_loses_nothing_to_pruning(
    schemas: dict[str, dict[str, Any]],
) -> None:
    """A Ready machine from the vectors, with what the old schema refused or pruned: hostInfo.os.type, a
    result that is not an object, an upper-case digest, an empty InternalIP, an item without a phase."""
    case = next(c for c in json.loads((FOLDER / "machines.json").read_text()) if c.get("state") == "Ready"
                and c["machine"]["spec"].get("lcmType") == "ucp" and c["machine"]["spec"].get("stateItems"))
    raw = copy.deepcopy(case["machine"])
    spec, status = raw["spec"], raw["status"]
    spec["agentConfig"]["sha256"] = spec["agentConfig"].get("sha256", "a" * 64).upper()
    spec["stateItems"].append({"runner": "bash", "name": "phaseless", "version": "1"})
    status["hostInfo"]["os"] = {"type": "linux", "family": "debian", "platform": "ubuntu", "name": "Ubuntu"}
    status["addresses"] = [{"type": "InternalIP", "address": ""}]
    first = next(iter(status["stateItemStatuses"].values()))
    first["result"] = ["any", {"json": 1}]
    schema = StructuralSchema(schemas["LCMMachine"])
    assert schema.validate(raw) == []
    assert schema.default_and_prune(copy.deepcopy(raw)) == raw
    assert LCMMachine.from_raw(raw).to_raw() == raw
