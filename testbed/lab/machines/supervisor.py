"""Keeps one nspawn machine running across its own reboots, as ``systemd-nspawn@.service`` does.

When the machine's systemd reboots, systemd-nspawn exits with status 133; the unit's
``RestartForceExitStatus=133`` starts it again. The lab has no unit per machine (machines are detached
processes that outlive the command that booted them), so this small process plays that part: it runs
systemd-nspawn, records its pid in ``nspawn.pid``, and starts it again after an exit with 133, keeping the
machine's overlay, its ``/var/lib/docker`` and its network namespace (all made outside nspawn). Each boot is
appended to ``boots`` (one line per start). Any other exit ends the supervisor with nspawn's status, and so
does a reboot while the file ``hold-down`` exists (``Machine.hold_down``: a machine that does not come back,
for the tests of what the scheduler does then). SIGTERM
(``Machine.stop``, which powers nspawn off itself) means no restart after.

    python -m testbed.lab.machines.supervisor DIR -- systemd-nspawn ...
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

REBOOT_STATUS = 133
"""systemd-nspawn's exit status when the machine rebooted (systemd-nspawn(1))."""
HOLD_DOWN = "hold-down"


class Supervisor:
    def __init__(self, state: Path, argv: list[str]) -> None:
        self.state, self.argv = state, argv
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None

    def on_term(self, signum: int, frame: FrameType | None) -> None:
        # Not forwarded: ``Machine.stop`` sends nspawn its own SIGTERM, and a second one would make nspawn
        # kill the machine at once instead of powering it off.
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        while True:
            # Its own session, so that ``Machine.stop`` can kill its whole process group.
            self.child = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, start_new_session=True,
                                          cwd="/")
            (self.state / "nspawn.pid").write_text(f"{self.child.pid}\n")
            with (self.state / "boots").open("a") as boots:
                boots.write(f"{time.time():.3f}\n")
            if self.stopping:  # told to stop while the machine was between two boots
                self.child.send_signal(signal.SIGTERM)
            code = self.child.wait()
            if self.stopping or code != REBOOT_STATUS:
                return code
            if (self.state / HOLD_DOWN).exists():
                print(f"lcm-lab: machine rebooted and held down ({HOLD_DOWN})", flush=True)
                return code
            print(f"lcm-lab: machine rebooted (systemd-nspawn exit {code}); starting it again", flush=True)


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    return Supervisor(Path(args[0]), args[2:]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
