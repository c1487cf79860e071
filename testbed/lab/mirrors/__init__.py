"""The air-gapped site's mirrors: a flat apt repository and a PEP 503 index of the agent and its wheels."""
