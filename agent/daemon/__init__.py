"""The node agent's lifecycle: watching its LCMMachine, running state items, reporting status."""
