"""
Per-client session state (pure: no I/O, no Twisted).

A session outlives its network connections when the client asked for it
(MQTT 3.1.x Clean Session 0, MQTT 5.0 Session Expiry Interval > 0).  It
holds the client's subscriptions, the messages queued for it, the outbound
QoS 1/2 messages not yet acknowledged (resent on reconnect only
[MQTT-4.4.0-1]) and the inbound QoS 2 packet identifiers awaiting PUBREL.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from mqttd.message import Message
from mqttd.store import InflightRecord, QueuedRecord
from mqttd.topics import splitShared

if TYPE_CHECKING:
    from mqttd.topics import SubscriptionTrie

#: Session Expiry Interval meaning "never expires".
NEVER_EXPIRES = 0xFFFFFFFF


class SubscriptionOptions:
    """
    One subscription of a session.

    @ivar topicFilter: the filter, without any C{$share/group/} prefix.
    @ivar qos: the granted (maximum) QoS.
    @ivar noLocal: do not deliver the session's own messages (v5).
    @ivar retainAsPublished: keep the RETAIN flag on live deliveries (v5).
    @ivar retainHandling: 0, 1 or 2 (v5, section 3.8.3.1).
    @ivar subscriptionIds: the Subscription Identifier as a 1-tuple, or
        C{()}.
    @ivar group: the share name of a shared subscription, or L{None}.
    """

    __slots__ = (
        "topicFilter",
        "qos",
        "noLocal",
        "retainAsPublished",
        "retainHandling",
        "subscriptionIds",
        "group",
    )

    def __init__(
        self,
        topicFilter: str,
        qos: int,
        noLocal: bool = False,
        retainAsPublished: bool = False,
        retainHandling: int = 0,
        subscriptionId: int | None = None,
        group: str | None = None,
    ) -> None:
        self.topicFilter = topicFilter
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
        self.subscriptionIds: tuple[int, ...] = (
            (subscriptionId,) if subscriptionId is not None else ()
        )
        self.group = group

    def __repr__(self) -> str:
        return f"<SubscriptionOptions {self.topicFilter!r} qos={self.qos}>"


class IDeliverySink(Protocol):
    """
    What a session hands messages to while its client is connected (the
    server protocol).
    """

    def sendMessage(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscriptionIds: tuple[int, ...],
        group: Any = None,
    ) -> None: ...


class InflightEntry:
    """
    An outbound QoS 1/2 message sent and not yet completely acknowledged.

    @ivar released: for QoS 2, whether PUBREC arrived and PUBREL was sent.
    @ivar group: the shared subscription group it was delivered through, or
        L{None}.
    @ivar sentOn: the connection that last sent its PUBLISH (whose send
        quota it holds until acknowledged), or L{None}.
    """

    __slots__ = ("message", "qos", "retain", "subscriptionIds", "released", "group", "sentOn")

    def __init__(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscriptionIds: tuple[int, ...],
        group: Any = None,
    ) -> None:
        self.message = message
        self.qos = qos
        self.retain = retain
        self.subscriptionIds = subscriptionIds
        self.released = False
        self.group = group
        self.sentOn: Any = None


# A queued delivery: (message, qos, retain flag, subscription identifiers,
# shared subscription group or None, sequence number in the session).
Delivery = tuple[Message, int, bool, tuple[int, ...], Any, int]


class Session:
    """
    The state of one client session.

    @ivar clientId: the client identifier.
    @ivar subscriptions: full filter as subscribed (with any C{$share/}
        prefix) -> options.
    @ivar queue: deliveries waiting to be sent, oldest first.
    @ivar queuedBytes: the byte size of C{queue} and C{inflight}.
    @ivar inflight: packet id -> outbound message awaiting acknowledgement,
        in sending order.
    @ivar awaitingRel: inbound QoS 2 packet ids answered with PUBREC and
        awaiting PUBREL.
    @ivar expiryInterval: seconds the session outlives its connection
        (L{NEVER_EXPIRES} for ever).
    @ivar connection: the live connection, or L{None} while offline.
    @ivar identity: the authenticated identity that owns the session.
    @ivar dropped: messages dropped for this session (queue limits).
    @ivar journal: where changes are written when the broker has a store
        (L{mqttd.store.Journal}), or L{None}; only sessions with an expiry
        interval write, and only their QoS 1/2 messages.
    """

    def __init__(
        self,
        clientId: str,
        expiryInterval: int = 0,
        counters: Any = None,
        offlineLimits: tuple[int, int] = (1000, 64 * 1024 * 1024),
    ) -> None:
        """
        @param counters: the broker's counters (a C{dropped(clientId,
            message, reason)} method counts drops).
        @param offlineLimits: (max-queued-messages, max-queued-bytes).
        """
        self.clientId = clientId
        self.counters = counters if counters is not None else _NullCounters()
        self.offlineLimits = offlineLimits
        self.subscriptions: dict[str, SubscriptionOptions] = {}
        self.queue: deque[Delivery] = deque()
        self.queuedBytes = 0
        self.inflight: dict[int, InflightEntry] = {}
        self.awaitingRel: set[int] = set()
        # Where changes are written: the journal while the session is
        # persistent (a store, and an expiry interval), else None; derived
        # by the two setters below, read on every QoS 1/2 change.
        self._writer: Any = None
        self._journal: Any = None
        self._expiryInterval = expiryInterval
        self.connection: IDeliverySink | None = None
        self.identity: Any = None
        self.dropped = 0
        self.expiryCall: Any = None
        self._nextPacketId = 1
        self._seq = 0

    @property
    def journal(self) -> Any:
        return self._journal

    @journal.setter
    def journal(self, journal: Any) -> None:
        self._journal = journal
        self._writer = journal if journal is not None and self._expiryInterval else None

    @property
    def expiryInterval(self) -> int:
        return self._expiryInterval

    @expiryInterval.setter
    def expiryInterval(self, interval: int) -> None:
        self._expiryInterval = interval
        self._writer = self._journal if self._journal is not None and interval else None

    @property
    def persistent(self) -> bool:
        """
        Whether the session's changes are written to the store.
        """
        return self._writer is not None

    def newDelivery(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscriptionIds: tuple[int, ...] = (),
        group: Any = None,
    ) -> Delivery:
        """
        A delivery for this session's queue, numbered.
        """
        self._seq += 1
        return (message, qos, retain, subscriptionIds, group, self._seq)

    def _journalQueued(self, delivery: Delivery) -> None:
        group = delivery[4]
        self._writer.write("messageQueued", self.clientId, QueuedRecord(
            delivery[5], delivery[0], delivery[1], delivery[2], delivery[3],
            None if group is None else (group.name, group.topicFilter),
        ))

    def __repr__(self) -> str:
        state = "online" if self.connection is not None else "offline"
        return f"<Session {self.clientId!r} {state} queued={len(self.queue)}>"

    def allocatePacketId(self) -> int:
        """
        A packet identifier not used by any in-flight message: amortised
        O(1) (identifiers are handed out in a cycle, skipping those in use).

        @raise RuntimeError: if all 65,535 are in use (callers bound the
            in-flight window well below that).
        """
        inflight = self.inflight
        if len(inflight) >= 0xFFFF:
            raise RuntimeError("no free packet identifier")
        candidate = self._nextPacketId
        while candidate in inflight:
            candidate = candidate + 1 if candidate < 0xFFFF else 1
        self._nextPacketId = candidate + 1 if candidate < 0xFFFF else 1
        return candidate

    def enqueue(
        self, delivery: Delivery, maxMessages: int, maxBytes: int
    ) -> bool:
        """
        Queue a delivery within limits; the newest is dropped when full.

        @return: whether it was queued.
        """
        size = delivery[0].size
        if len(self.queue) >= maxMessages or self.queuedBytes + size > maxBytes:
            self.drop(delivery[0], "queue full")
            return False
        self.queue.append(delivery)
        self.queuedBytes += size
        if delivery[1] and self._writer is not None:
            self._journalQueued(delivery)
        return True

    def forceEnqueue(self, delivery: Delivery) -> None:
        """
        Queue a delivery regardless of limits (for a live subscriber that
        keeps reading: its publishers are throttled instead).
        """
        self.queue.append(delivery)
        self.queuedBytes += delivery[0].size
        if delivery[1] and self._writer is not None:
            self._journalQueued(delivery)

    def popQueued(self) -> Delivery:
        """
        Take the oldest queued delivery.
        """
        delivery = self.queue.popleft()
        self.queuedBytes -= delivery[0].size
        if delivery[1] and self._writer is not None:
            self._writer.write("messageDequeued", self.clientId, delivery[5])
        return delivery

    def dropNewest(self, reason: str) -> None:
        """
        Drop the newest queued delivery (queue limits of a stalled
        subscriber).
        """
        delivery = self.queue.pop()
        self.queuedBytes -= delivery[0].size
        if delivery[1] and self._writer is not None:
            self._writer.write("messageDequeued", self.clientId, delivery[5])
        self.drop(delivery[0], reason)

    def dropQos0(self) -> int:
        """
        Drop every queued QoS 0 delivery (a stalled subscriber's).

        @return: how many were dropped.
        """
        kept = deque(d for d in self.queue if d[1])
        dropped = [d[0] for d in self.queue if not d[1]]
        if dropped:
            self.queue = kept
            self.queuedBytes = sum(d[0].size for d in kept) + sum(
                e.message.size for e in self.inflight.values()
            )
            for message in dropped:
                self.drop(message, "subscriber stalled")
        return len(dropped)

    def drop(self, message: Message, reason: str) -> None:
        """
        Count a message dropped for this session.
        """
        self.dropped += 1
        self.counters.dropped(self.clientId, message, reason)

    def addInflight(self, packetId: int, entry: InflightEntry) -> None:
        """
        Record an outbound QoS 1/2 message as sent.
        """
        self.inflight[packetId] = entry
        self.queuedBytes += entry.message.size
        if self._writer is not None:
            self._journalInflight(packetId, entry)

    def _journalInflight(self, packetId: int, entry: InflightEntry) -> None:
        group = entry.group
        self._writer.write("inflightSaved", self.clientId, InflightRecord(
            packetId, entry.message, entry.qos, entry.retain, entry.subscriptionIds,
            entry.released, None if group is None else (group.name, group.topicFilter),
        ))

    def release(self, packetId: int) -> InflightEntry:
        """
        PUBREC arrived for an outbound QoS 2 message: PUBREL is what is
        (re)sent for it from now on.
        """
        entry = self.inflight[packetId]
        entry.released = True
        if self._writer is not None:
            self._journalInflight(packetId, entry)
        return entry

    def removeInflight(self, packetId: int) -> InflightEntry:
        """
        Forget a completely acknowledged outbound message.
        """
        entry = self.inflight.pop(packetId)
        self.queuedBytes -= entry.message.size
        if self._writer is not None:
            self._writer.write("inflightDeleted", self.clientId, packetId)
        return entry

    def addAwaitingRel(self, packetId: int) -> None:
        """
        An inbound QoS 2 PUBLISH was taken: its packet id awaits PUBREL.
        """
        self.awaitingRel.add(packetId)
        if self._writer is not None:
            self._writer.write("inboundSaved", self.clientId, packetId)

    def removeAwaitingRel(self, packetId: int) -> bool:
        """
        PUBREL arrived for an inbound packet id.

        @return: whether it was awaited.
        """
        if packetId not in self.awaitingRel:
            return False
        self.awaitingRel.remove(packetId)
        if self._writer is not None:
            self._writer.write("inboundDeleted", self.clientId, packetId)
        return True

    def sharedDeliveries(self) -> list[tuple[Message, Any]]:
        """
        The messages this session holds through shared subscriptions that
        another member of the group takes when this session ends, as
        (message, group), oldest first: queued ones, and QoS 1 ones sent but
        not acknowledged.  A QoS 2 message already sent stays with this
        session and ends with it [MQTT-4.8.2-5].
        """
        held = [(e.message, e.group) for e in self.inflight.values()
                if e.group is not None and e.qos == 1]
        held.extend((d[0], d[4]) for d in self.queue if d[4] is not None and d[1])
        return held

    def clear(self, trie: SubscriptionTrie) -> None:
        """
        End the session: remove its subscriptions from C{trie} and forget
        its messages.
        """
        for fullFilter in self.subscriptions:
            group, topicFilter = splitShared(fullFilter)
            trie.unsubscribe(topicFilter, self, group)
        self.subscriptions.clear()
        self.queue.clear()
        self.inflight.clear()
        self.awaitingRel.clear()
        self.queuedBytes = 0

    def deliver(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscriptionIds: tuple[int, ...],
        group: Any = None,
    ) -> None:
        """
        Route a message to this session: to its connection if it has one,
        else into the offline queue (QoS 1/2 only; QoS 0 is not queued for
        offline sessions).

        @param group: the shared subscription group it comes through.
        """
        connection = self.connection
        if connection is not None:
            connection.sendMessage(message, qos, retain, subscriptionIds, group)
        elif qos:
            self.enqueue(self.newDelivery(message, qos, retain, subscriptionIds, group),
                         *self.offlineLimits)


class _NullCounters:
    messagesDropped = 0

    def dropped(self, clientId: str, message: Message, reason: str) -> None:
        self.messagesDropped += 1
