"""The one module that talks MQTT (aiomqtt): a connection that never blocks its callers and always comes back.

Callers put messages into an ``Outbox``, a bounded queue that drops the oldest message when full and
counts what it dropped: a broker outage costs memory up to that bound and never slows the agent's work.
``MqttLink.run`` owns the connection: it connects (MQTT 5, or 3.1.1 when the broker has no 5), registers the
last will, publishes the ``hello`` message on every connect, subscribes, sends the outbox in order (a
message leaves the outbox only once the broker took it, so nothing is lost to a connection that dies
mid-send; QoS 1 may then deliver it twice) and hands received messages to a callback. A lost connection is
retried with the project's backoff, logged once per outage rather than once per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
from aiomqtt import MqttCodeError, MqttError, ProtocolVersion, Will
from aiomqtt.exceptions import MqttConnectError

from agent.kits.backoff import Backoff
from agent.kits.tasks import first_of, raise_lost_cancel

log = logging.getLogger(__name__)

RECONNECT = Backoff(base=1.0, cap=30.0)
"""Reconnect pacing: jittered so a fleet does not storm a restarted broker, capped so a node is back
within half a minute of the broker."""
PUBLISH_TIMEOUT = 10.0
"""Seconds to wait for the broker's PUBACK before the connection is presumed dead (half-open TCP)."""
FLUSH_GRACE = 2.0
"""On a clean stop, how long the outbox may take to drain before the connection is closed anyway."""
_UNSUPPORTED_PROTOCOL = (1, 132)  # MQTT 3.1.1 CONNACK code 1, MQTT 5 reason code 0x84


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and who this client is; ``password`` is the secret itself, never logged."""

    url: str
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]``."""
    client_id: str
    """Unique per broker: a second connection with the same id replaces the first (a restarted agent takes
    over from its own half-open session instead of waiting for it to time out)."""
    username: str = ""
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    """Signs the broker's certificate (``mqtts``); None trusts the system's CAs."""
    cert_file: Path | None = None
    """Client certificate, for brokers that authenticate by certificate."""
    key_file: Path | None = None
    keepalive: int = 30
    """Seconds between pings on an idle connection; the broker fires the last will after 1.5 times this
    without a packet (a node that lost power)."""

    @property
    def address(self) -> tuple[str, int, bool]:
        """Host, port and whether to use TLS."""
        parts = urlsplit(self.url)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "localhost", parts.port or (8883 if tls else 1883), tls


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


class Outbox:
    """Messages waiting for the broker: at most ``size``, the oldest dropped (and counted) first."""

    def __init__(self, size: int) -> None:
        self._queue: deque[Outgoing] = deque()
        self.size = size
        self.dropped = 0
        """Messages dropped since the start: a counter, reported in every heartbeat."""
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, message: Outgoing, *, latest_only: bool = False) -> None:
        """Queue ``message``; never blocks. ``latest_only`` replaces a queued message of the same topic
        (a newer heartbeat or status says everything the older one did), which is not counted as a drop."""
        if latest_only:
            for queued in self._queue:
                if queued.topic == message.topic:
                    self._queue.remove(queued)
                    break
        self._queue.append(message)
        while len(self._queue) > self.size:
            self._queue.popleft()
            self.dropped += 1
        self._ready.set()

    async def head(self) -> Outgoing:
        """The oldest message, once there is one; it stays queued until ``sent``."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        return self._queue[0]

    def sent(self, message: Outgoing) -> None:
        """The broker took ``message``: remove it, unless it was dropped or replaced while in flight."""
        if self._queue and self._queue[0] is message:
            self._queue.popleft()


OnMessage = Callable[[str, bytes], None]


class MqttLink:
    """One client's connection; ``run`` keeps it up until ``stopping`` is set."""

    def __init__(
        self, settings: BrokerSettings, *, outbox: Outbox | None = None,
        will: Callable[[], Outgoing] | None = None, hello: Callable[[], Outgoing] | None = None,
        subscriptions: Sequence[tuple[str, int]] = (),
        on_message: OnMessage | None = None, backoff: Backoff = RECONNECT,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.will = will
        """Builds the last will, registered on every connect."""
        self.hello = hello
        """Builds the message published first on every connect (the retained "online" status)."""
        self.farewell: Outgoing | None = None
        """Published last on a clean stop; a clean disconnect suppresses the will, so this replaces it."""
        self.subscriptions = tuple(subscriptions)
        self.on_message = on_message
        self.backoff = backoff
        self.connected = asyncio.Event()
        """Set while connected, hello sent and subscriptions in place."""
        self._protocol = ProtocolVersion.V5

    async def run(self, stopping: asyncio.Event) -> None:
        """Connect, serve, reconnect with backoff; returns once ``stopping`` is set and the farewell sent."""
        host, port, _ = self.settings.address
        failures = 0
        while not stopping.is_set():
            try:
                async with await self._client() as client:
                    failures = 0
                    log.info("connected to the MQTT broker %s:%d (MQTT %s)", host, port,
                             "5" if self._protocol == ProtocolVersion.V5 else "3.1.1")
                    await self._serve(client, stopping)
                    return
            except MqttConnectError as exc:
                if self._protocol == ProtocolVersion.V5 and _code(exc) in _UNSUPPORTED_PROTOCOL:
                    log.info("the MQTT broker has no MQTT 5; using 3.1.1")
                    self._protocol = ProtocolVersion.V311
                    continue
                self._lost(exc, failures)
            except (MqttError, OSError) as exc:  # OSError: the TLS files cannot be read
                self._lost(exc, failures)
            finally:
                self.connected.clear()
            delay = self.backoff.delay(failures, random.uniform)
            failures += 1
            await first_of(stopping.wait(), seconds=delay)

    def _lost(self, exc: Exception, failures: int) -> None:
        """One warning per outage; the retries that follow are debug noise."""
        level = logging.WARNING if failures == 0 else logging.DEBUG
        queued = len(self.outbox) if self.outbox is not None else 0
        log.log(level, "MQTT broker unreachable (%s); %d messages buffered, reconnecting", exc, queued)

    async def _client(self) -> aiomqtt.Client:
        s = self.settings
        host, port, tls = s.address
        context = await asyncio.to_thread(_tls_context, s) if tls else None
        will = None
        if self.will is not None:
            last = self.will()
            will = Will(last.topic, last.payload, last.qos, last.retain)
        return aiomqtt.Client(
            host, port, username=s.username or None, password=s.password, identifier=s.client_id,
            protocol=self._protocol, will=will, keepalive=s.keepalive, tls_context=context,
            timeout=PUBLISH_TIMEOUT,
        )

    async def _serve(self, client: aiomqtt.Client, stopping: asyncio.Event) -> None:
        """Until ``stopping`` (then flush and say farewell) or until the connection fails (raises)."""
        if self.hello is not None:
            await _send(client, self.hello())
        for topic, qos in self.subscriptions:
            await client.subscribe(topic, qos)
        self.connected.set()
        waits = [self._receive(client), stopping.wait()]
        if self.outbox is not None:
            waits.append(self._send_all(client, self.outbox))
        await first_of(*waits)  # a failed receive or send raises here
        with contextlib.suppress(MqttError, TimeoutError):
            if self.outbox is not None:
                await asyncio.wait_for(self._drain(client, self.outbox), FLUSH_GRACE)
            if self.farewell is not None:
                await _send(client, self.farewell)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if self.on_message is None:
                continue
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload or "").encode()
            try:
                self.on_message(str(message.topic), data)
            except Exception:
                log.exception("MQTT message on %s not handled", message.topic)

    @staticmethod
    async def _send_all(client: aiomqtt.Client, outbox: Outbox) -> None:
        while True:
            message = await outbox.head()
            await _send(client, message)
            outbox.sent(message)
            raise_lost_cancel()  # a stop that came as the broker acknowledged: seen in CI, the agent hung

    @staticmethod
    async def _drain(client: aiomqtt.Client, outbox: Outbox) -> None:
        while len(outbox):
            message = await outbox.head()
            await _send(client, message)
            outbox.sent(message)


async def _send(client: aiomqtt.Client, message: Outgoing) -> None:
    await client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)


def _code(exc: MqttCodeError) -> int:
    rc = exc.rc
    return rc if isinstance(rc, int) else int(getattr(rc, "value", -1))


def _tls_context(settings: BrokerSettings) -> ssl.SSLContext:
    """Verifies the broker (its CA, its host name); presents the client certificate when there is one."""
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.cert_file is not None:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    return context
