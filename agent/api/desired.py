"""What the node should look like, what it looks like, and what the reconciler did about it: values only.

The agent records a ``DesiredState`` after each deploy or reconfigure that left the machine Ready (derived
by ``agent.decisions.desired_state`` from the done items' params plus the ``daemon.json`` the engine had
right then), keeps it in its state dir,
and hands it to the reconciler process as a file. An ``Observed`` is one cheap look at the engine; the pure
drift decision (``agent.decisions.drift``) compares the two. A ``ReconcileReport`` is what one reconciler
run wrote: the agent reads it back to report the run.

Which items feed which component is part of the swarm contract (``docs/swarm.md``) plus one convention of
our own (``docs/reconciler.md``): an item whose params name a ``container`` (with ``image`` and
``command``) deploys a container the node must keep running, labelled ``REQUIRED_LABEL=<name>`` and
``VERSION_LABEL=<item version>``. A machine whose items name none of these has no desired state: there is
nothing of the engine's for the agent to keep, so it never even talks to the engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

REQUIRED_LABEL = "lcm.mirantis.com/required"
"""Container label naming the required container it is (its value), so the checks list them by label."""
VERSION_LABEL = "lcm.mirantis.com/version"
"""Container label carrying the version of the item that deployed it."""
SWARM_PORT = 2377
FORMAT = 1
"""Version of the file layout; a record of another format is ignored (and re-recorded) rather than misread."""

Role = Literal["manager", "worker"]
ComponentOutcome = Literal["ok", "converged", "failed", "not-run"]
"""Per component in a report: no drift; drift fixed; drift not fixed (the run stopped here); not reached."""


class DesiredStateError(ValueError):
    """A desired-state record or report that cannot be read: the message says why."""


class _Value(BaseModel):
    """Immutable, camelCase JSON, refusing unknown fields: these files are ours alone, so a field we do not
    know means a file from another version, which must not be half-understood."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True,
                              extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise DesiredStateError(f"not a valid {cls.__name__}: {exc.errors(include_url=False)}") from None


class DaemonConfig(_Value):
    """The engine's ``daemon.json`` (at ``lcm_docker_config``) as it was when the state was recorded."""

    content: str

    @property
    def digest(self) -> str:
        return content_digest(self.content)


class Membership(_Value):
    """The node's place in the swarm, from the ``swarm-init`` or ``swarm-join`` item (``docs/swarm.md``)."""

    role: Role
    manager_addresses: tuple[str, ...]
    """``ip:2377`` of managers to join through; the first control machine's own address after init."""
    advertise_address: str
    join_token_secret: str
    """The Secret holding the token for ``role`` (read by the agent, handed to the reconciler on stdin)."""
    cluster_id: str = ""
    """The swarm's ID when the state was recorded, as only a manager can see it; "" on workers."""
    version: str
    """Version of the item that made the node a member."""


class EngineLabels(_Value):
    """Engine labels from the ``node-labels`` item (``daemon.json`` ``labels``)."""

    values: Mapping[str, str]
    version: str


class RequiredContainer(_Value):
    """A container the release runs on this node, recreated from this record when it goes missing."""

    name: str = Field(min_length=1)
    image: str = Field(min_length=1)
    command: tuple[str, ...]
    version: str
    network_mode: str = "host"

    @property
    def labels(self) -> dict[str, str]:
        return {REQUIRED_LABEL: self.name, VERSION_LABEL: self.version}


class DesiredState(_Value):
    """The engine running, plus each component the release's items deployed."""

    format: int = FORMAT
    items_digest: str
    """Digest of the done items (names and hashes) the state was derived from: a new one re-records."""
    release: str
    recorded_at: str
    config: DaemonConfig | None
    """None when the engine had no ``daemon.json`` (its defaults are then the desired configuration)."""
    membership: Membership | None = None
    labels: EngineLabels | None = None
    containers: tuple[RequiredContainer, ...] = ()


class ObservedContainer(_Value):
    """One container labelled ``REQUIRED_LABEL``, as the engine lists it."""

    name: str
    image: str
    version: str
    state: str
    """The engine's word: ``running``, ``exited``, ``created``, ``restarting``..."""


class Observed(_Value):
    """One look at the engine and its config file. With ``engine_error`` set only ``config_content`` is
    known: the engine did not answer."""

    engine_error: str = ""
    config_content: str | None = None
    """The file's text; None when it does not exist."""
    swarm_state: str = ""
    """``LocalNodeState``: ``inactive``, ``pending``, ``active``, ``error``, ``locked``."""
    node_id: str = ""
    node_addr: str = ""
    cluster_id: str = ""
    manager: bool = False
    remote_managers: tuple[str, ...] = ()
    labels: Mapping[str, str] = {}
    containers: tuple[ObservedContainer, ...] = ()

    @property
    def engine_running(self) -> bool:
        return not self.engine_error


class ComponentReport(_Value):
    """One component of one reconciler run."""

    name: str
    drift: str = ""
    """Why it needed converging; "" when it did not (or was not reached)."""
    action: str = ""
    outcome: ComponentOutcome
    error: str = ""


class ReconcileReport(_Value):
    """The reconciler's JSON report; ``converged`` is what its exit code says."""

    started: str
    finished: str
    components: tuple[ComponentReport, ...]
    converged: bool

    @property
    def first_error(self) -> str:
        """``component: error`` of the component that stopped the run, "" when it converged."""
        failed = next((c for c in self.components if c.outcome == "failed"), None)
        return f"{failed.name}: {failed.error}" if failed is not None else ""


def content_digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()
