"""``lcmctl``: the operator's tool. Each command group adds its own subparser: ``cloud-init`` and ``watch``
here, and the groups of any installed distribution that declares ``lcmctl.commands`` entry points (the
testbed's ``sim``, ``kube``, ``nodes``, ``machines``, ``mirror`` and ``demo``), so the regional side runs
without the testbed and the testbed adds its commands without the regional side knowing them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from agent.kits.commands import Groups
from regional.cli.commands import COMMAND_GROUPS

CommandGroup = Callable[[Groups], None]
PLUGIN_GROUP = "lcmctl.commands"
"""The entry-point group through which other distributions add ``lcmctl`` command groups."""



def command_groups() -> list[CommandGroup]:
    """Our groups, then every installed plugin's, in name order so ``--help`` reads the same everywhere."""
    plugins = sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)
    return [*COMMAND_GROUPS, *(ep.load() for ep in plugins)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lcmctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    groups = parser.add_subparsers(dest="group", required=True)
    for add in command_groups():
        add(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
