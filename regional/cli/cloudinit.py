"""What ``lcmctl cloud-init render`` does (its usage and options: ``regional/cli/commands.py``): a machine's
user-data from files, with nothing but the renderer imported (``provision``, which talks to the API, is
``regional/cli/provision.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.adapters.atomic import write_atomic
from agent.decisions.cloudinit import AgentBuild, MachineUserData, render_user_data


def render(args: argparse.Namespace) -> int:
    try:
        data = MachineUserData(
            machine=args.machine, namespace=args.namespace, api_server=args.api_server,
            token=_read(args.token_file).strip(), ca_pem=_read(args.ca_file),
            agent=AgentBuild(url=args.agent_url, sha256=args.agent_sha256, index_url=args.index_url,
                             tree_url=args.agent_tree_url, tree_sha256=args.agent_tree_sha256),
            unit=_read(args.unit_file), mqtt_url=args.mqtt_url, mqtt_username=args.mqtt_username,
            mqtt_password=_read(args.mqtt_password_file).strip(), mqtt_ca_pem=_read(args.mqtt_ca_file))
        text = render_user_data(data)
    except (OSError, ValueError) as exc:
        print(f"lcmctl cloud-init render: {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.output, text.encode(), 0o600)
    return 0


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text()
    except OSError as exc:
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None
