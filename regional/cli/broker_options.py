"""The broker client of the MQTT options every regional command that reads the plane takes
(``regional.cli.commands.add_broker_options``)."""

from __future__ import annotations

import argparse

from agent.adapters.mqtt import BrokerSettings


def broker_settings(args: argparse.Namespace, client_id: str) -> BrokerSettings:
    """The client of these options; the password is read from its file, never taken from argv."""
    password = args.mqtt_password_file.read_text().strip() if args.mqtt_password_file else None
    return BrokerSettings(args.mqtt_url, client_id, args.mqtt_username, password, ca_file=args.mqtt_ca_file)
