"""``lcm-agent status``: what the local journal says, read with nothing but the journal's own module, so that
an operator on a busy node gets the answer at once."""

from __future__ import annotations

import argparse
import json

from agent.adapters.journal import Journal


def status(args: argparse.Namespace) -> int:
    journal = Journal.load(args.state_dir / "journal.json")
    mark = journal.in_progress
    report = {
        "inProgress": None if mark is None else {
            "item": mark.item, "hash": mark.hash, "attempt": mark.attempt,
            "startedAt": mark.started_at.isoformat()},
        "finished": {name: {"hash": f.hash, "exitCode": f.exit_code, "finishedAt": f.finished_at.isoformat()}
                     for name, f in sorted(journal.finished.items())},
    }
    print(json.dumps(report, indent=2))
    return 0
