"""Entry points: argument parsing and process setup for ``lcm-agent``, ``lcm-scheduler`` and ``lcmctl``."""
