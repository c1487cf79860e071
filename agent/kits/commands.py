"""The shape every command of the project shares: a program with ``--version`` and required subcommands.

``lcm-agent`` and ``lcm-scheduler`` (and any later command) are asked for the same things the same way:
``--help`` prints the module's own docstring as written, ``--version`` names the program and the build.
"""

from __future__ import annotations

import argparse


def command_parser(
    prog: str, doc: str | None, version: str,
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    """The parser and its subcommand group (``dest="command"``, one required)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{prog} {version}")
    return parser, parser.add_subparsers(dest="command", required=True)
