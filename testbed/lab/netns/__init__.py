"""Lab nodes on this host: a network namespace per node with its own dockerd, on a private bridge."""
