"""Registration: find this machine's LCMMachine (or create it) and report who and where the machine is.

The first status write takes the machine out of ``Uninitialized``: the scheduler assigns state items only
to machines that reported an InternalIP. The address is chosen by the spec's ``interface``/``cidr`` among
the host's NICs; a spec CIDR that is not a network is reported as an error, not guessed around.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.adapters.followed import UNTIL_LANDED
from agent.adapters.kube import Kube, KubeError
from agent.api.host_facts import HostFacts
from agent.api.models import API_VERSION, LCM_TYPE, LCMMachine
from agent.daemon.own_machine import LCMMACHINES, OwnMachine
from agent.decisions.addressing import choose_internal_ip
from agent.decisions.reporting import summary_patch
from agent.kits.backoff import Backoff

log = logging.getLogger(__name__)


class RegistrationError(Exception):
    """The machine cannot register (e.g. its spec names an invalid CIDR); the message says why."""


@dataclass(frozen=True)
class Identity:
    namespace: str
    name: str
    create_if_missing: bool
    hostname: str = socket.gethostname()


async def find_or_create(kube: Kube, who: Identity, backoff: Backoff) -> dict[str, Any]:
    """The LCMMachine; created as ``unassigned`` if allowed, else waited for (the provider creates it)."""
    failures = 0
    while True:
        try:
            return await kube.get(LCMMACHINES, who.namespace, who.name)
        except KubeError as exc:
            if exc.status == 404 and who.create_if_missing:
                log.info("LCMMachine %s/%s does not exist; creating it as unassigned",
                         who.namespace, who.name)
                body = {"apiVersion": API_VERSION, "kind": "LCMMachine",
                        "metadata": {"name": who.name, "namespace": who.namespace},
                        "spec": {"type": "unassigned", "lcmType": LCM_TYPE}}
                try:
                    return await kube.create(LCMMACHINES, who.namespace, body)
                except KubeError as create_exc:
                    if create_exc.status != 409:  # 409: created meanwhile by someone else; read it again
                        exc = create_exc
            if exc.status in (401, 403):
                log.error("the API refuses this machine's credentials: %s", exc)
            delay = backoff.delay(failures, random.uniform)
            failures += 1
            log.warning("cannot read LCMMachine %s/%s (%s); retrying in %.1fs", who.namespace, who.name, exc,
                        delay)
            await asyncio.sleep(delay)


def registration_fields(machine: LCMMachine, host: HostFacts, hostname: str) -> dict[str, Any]:
    """addresses, agentVersion and hostInfo as the status should show them."""
    try:
        ip = choose_internal_ip(host.hardware.network, machine.spec.interface or None,
                                machine.spec.cidr or None, default_interface=host.default_interface)
    except ValueError as exc:
        raise RegistrationError(f"spec.cidr {machine.spec.cidr!r} is not a network: {exc}") from None
    addresses = [{"type": "InternalIP", "address": ip}] if ip else []
    addresses.append({"type": "Hostname", "address": hostname})
    return {"addresses": addresses, "agentVersion": __version__, "hostInfo": host.to_status()}


class FactsTracker:
    """Re-reads the host's facts for the worker and says which registration fields changed since the last
    report: hostInfo and addresses are written only when they change (a NIC added, a new kernel after a
    reboot, an address moved), never as a periodic heartbeat (that is MQTT's job)."""

    def __init__(self, who: Identity, read: Callable[[], HostFacts], reported: Mapping[str, Any]) -> None:
        self.who = who
        self.read = read
        self.reported = dict(reported)

    async def changes(self, machine: LCMMachine) -> dict[str, Any]:
        """The fields to write now (empty when nothing changed or the facts cannot be turned into status)."""
        host = await asyncio.to_thread(self.read)
        try:
            fields = registration_fields(machine, host, self.who.hostname)
        except RegistrationError as exc:
            log.error("host facts not reported: %s", exc)
            return {}
        return {key: value for key, value in fields.items() if self.reported.get(key) != value}

    def written(self, fields: Mapping[str, Any]) -> None:
        """The server took these fields: the next comparison starts from them."""
        self.reported.update(fields)


async def report(
    own: OwnMachine, who: Identity, raw: dict[str, Any], host: HostFacts,
) -> dict[str, Any] | None:
    """Write the registration fields through the machine's one write path, until they land; returns them,
    as ``FactsTracker`` compares later facts with them, or None when the server refused them for good."""
    machine = LCMMachine.from_raw(raw)
    own.answered(raw)
    fields = registration_fields(machine, host, who.hostname)
    if not any(a["type"] == "InternalIP" for a in fields["addresses"]):
        log.error("no usable InternalIP (interface=%r, cidr=%r): the machine stays Uninitialized",
                  machine.spec.interface, machine.spec.cidr)
    written = await own.write(summary_patch(machine, fields), retry=UNTIL_LANDED, what="registration")
    return None if written is None else fields
