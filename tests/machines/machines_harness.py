"""What a machines test module shares: the lab its machines boot in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testbed.lab.machines.sets import MachineSet


@dataclass(frozen=True)
class Lab:
    fleet: MachineSet
    state_dir: Path
    """Where ``lcmctl machines ls --state-dir`` finds this lab's API."""
    tag: str
    """A random prefix for machine names, so a run never meets another run's machines."""
