"""The shape every command of the project shares: a program with ``--version`` and required subcommands.

``lcm-agent`` and ``lcm-scheduler`` (and any later command) are asked for the same things the same way:
``--help`` prints the module's own docstring as written, ``--version`` names the program and the build.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import TypeAlias


def command_parser(
    prog: str, doc: str | None, version: str,
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    """The parser and its subcommand group (``dest="command"``, one required)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{prog} {version}")
    return parser, parser.add_subparsers(dest="command", required=True)


Groups: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""Where a command group adds its subparser (``lcmctl``'s groups, each from its own distribution)."""
Handler = Callable[[argparse.Namespace], int]
"""What a command runs: the parsed arguments in, the exit code out."""


def deferred(target: str) -> Handler:
    """The handler ``module:function``, imported only when its command runs.

    A command-line tool pays at start-up for every module it imports, and the daemon's stack is heavy
    (kubernetes_asyncio's client alone takes a second to import on these machines). So parsers are built
    from light modules, and each command names its handler here: ``--help`` and a light command never
    import what another command needs."""
    module, _, name = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        handler: Handler = getattr(importlib.import_module(module), name)
        return handler(args)

    run.__qualname__ = run.__name__ = f"deferred({target})"
    return run
