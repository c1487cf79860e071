"""The demo's regional stack around the nodes: the API, the broker, the scheduler, a run's state."""
