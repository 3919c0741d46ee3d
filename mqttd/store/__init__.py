"""
Persistence: the records a store keeps, and the journal through which the
broker writes to a store.

The broker keeps its working state in memory (sessions, the subscription
trie, retained messages) and writes every change that must survive a
restart through an L{mqttd.interfaces.IStore}: sessions with a Session
Expiry Interval (3.1.x: Clean Session 0), their subscriptions, their QoS 1/2
messages (queued and in flight), their inbound QoS 2 packet ids awaiting
PUBREL, the QoS 1/2 messages shared subscription groups keep while no
member is connected, and retained messages.  QoS 0 messages and sessions
that end with their connection are never written.  At start the broker
reads it all back.

A store method returns L{None} or a C{Deferred}; the acknowledgement of a
client's PUBLISH (PUBACK/PUBREC) waits for the Deferreds of the writes it
caused ("acknowledged means stored"), and acknowledgements keep their order.

Stores: L{mqttd.store.memory.MemoryStore} (in memory: survives a restart
of the broker service, not of the process) and
L{mqttd.store.sqlite.SQLiteStore} (a file: survives a crash).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mqttd.interfaces import IStore
from mqttd.message import Message

log = Logger(namespace="mqttd")

#: A subscription as stored: (topicFilter without $share/, qos, noLocal,
#: retainAsPublished, retainHandling, subscriptionIds, share name or None).
SubscriptionRecord = tuple[str, int, bool, bool, int, tuple[int, ...], "str | None"]

#: A shared subscription group: (share name, topic filter).
GroupKey = tuple[str, str]


@dataclass
class QueuedRecord:
    """
    A QoS 1/2 message queued for a session (or a shared subscription
    group).

    @ivar seq: its number in the queue (increasing).
    @ivar group: the shared subscription group it came through, or L{None}.
    """

    seq: int
    message: Message
    qos: int
    retain: bool
    subscriptionIds: tuple[int, ...] = ()
    group: GroupKey | None = None


@dataclass
class InflightRecord:
    """
    A QoS 1/2 message sent to a session's client and not yet acknowledged.

    @ivar released: for QoS 2, whether PUBREC arrived (PUBREL is resent).
    @ivar group: the shared subscription group it came through, or L{None}.
    """

    packetId: int
    message: Message
    qos: int
    retain: bool
    subscriptionIds: tuple[int, ...] = ()
    released: bool = False
    group: GroupKey | None = None


@dataclass
class SessionRecord:
    """
    Everything stored about one session.

    @ivar ownerKey: the key of the identity that owns it (see
        L{mqttd.auth.ClientIdentity.key}: L{None}, or a tuple of C{str},
        C{bytes} and C{int}).
    @ivar disconnectedAt: when its last connection ended (the clock's
        seconds, i.e. wall-clock time), or L{None} while connected.
    @ivar subscriptions: full filter (with any C{$share/} prefix) -> record.
    @ivar queue: seq -> queued message.
    @ivar inflight: packet id -> in-flight message, in sending order.
    @ivar awaitingRel: inbound QoS 2 packet ids awaiting PUBREL.
    """

    clientId: str
    expiryInterval: int
    ownerKey: Any = None
    disconnectedAt: float | None = None
    subscriptions: dict[str, SubscriptionRecord] = field(default_factory=dict)
    queue: dict[int, QueuedRecord] = field(default_factory=dict)
    inflight: dict[int, InflightRecord] = field(default_factory=dict)
    awaitingRel: set[int] = field(default_factory=set)


@dataclass
class StoredState:
    """
    What a store hands back at start.

    @ivar sessions: client id -> record.
    @ivar retained: topic -> retained message.
    @ivar shared: shared subscription group -> seq -> message it keeps.
    """

    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    retained: dict[str, Message] = field(default_factory=dict)
    shared: dict[GroupKey, dict[int, QueuedRecord]] = field(default_factory=dict)


class Journal:
    """
    The broker's side of a store: it forwards writes and, while a client's
    PUBLISH is being handled, collects the Deferreds its writes return so
    that the acknowledgement can wait for them.
    """

    def __init__(self, store: IStore) -> None:
        self.store = store
        self._collected: list[Deferred[Any]] | None = None
        #: Set while the broker is stopped: writes are ignored.
        self.closed = False

    def begin(self) -> list[Deferred[Any]] | None:
        """
        Start collecting the Deferreds of writes.

        @return: what to give L{end} (collections nest).
        """
        outer = self._collected
        self._collected = []
        return outer

    def end(self, outer: list[Deferred[Any]] | None = None) -> list[Deferred[Any]]:
        """
        Stop collecting.

        @param outer: what L{begin} returned.
        @return: the Deferreds of the writes since L{begin}.
        """
        collected = self._collected or []
        self._collected = outer
        return collected

    def write(self, method: str, *args: Any) -> None:
        """
        Call a store method; a Deferred it returns is collected (and an
        error it fails with is logged by whoever waits for it).
        """
        if self.closed:
            return
        result = getattr(self.store, method)(*args)
        if isinstance(result, Deferred):
            if self._collected is not None:
                self._collected.append(result)
            else:
                result.addErrback(_logWriteFailure, method)


def _logWriteFailure(failure: Any, method: str) -> None:
    log.failure("store write {method} failed", failure, method=method)
