"""The journal's mark of a reboot the agent carries out: a value the journal stores and the reboot decision
(``agent.decisions.rebooting``) reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RebootMark:
    """A reboot for the request of ``requested_at`` (its ``status.reboot.requestedAt``), issued in boot
    ``boot_id`` by the agent process ``run_id``; ``failed`` says why the reboot command failed."""

    requested_at: str
    boot_id: str
    run_id: str
    failed: str = ""
