"""
The in-memory store.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from zope.interface import implementer

from mqttd.interfaces import IStore
from mqttd.message import Message
from mqttd.store import (
    GroupKey,
    InflightRecord,
    QueuedRecord,
    SessionRecord,
    StoredState,
    SubscriptionRecord,
)


@implementer(IStore)
class MemoryStore:
    """
    A store that keeps the records in memory (C{--store memory}): the state
    survives a restart of the broker service within the process (e.g. an
    embedding application stopping and starting it), not of the process.
    It is also the reference implementation of L{IStore}.
    """

    durable = False

    def __init__(self) -> None:
        self.state = StoredState()

    def __repr__(self) -> str:
        return f"<MemoryStore: {len(self.state.sessions)} sessions>"

    def load(self) -> StoredState:
        return copy.deepcopy(self.state, {id(m): m for m in self._messages()})

    def _messages(self) -> Iterable[Message]:
        yield from self.state.retained.values()
        for queue in self.state.shared.values():
            for queued in queue.values():
                yield queued.message
        for record in self.state.sessions.values():
            for queued in record.queue.values():
                yield queued.message
            for entry in record.inflight.values():
                yield entry.message

    def close(self) -> None:
        return None

    def _session(self, clientId: str) -> SessionRecord | None:
        return self.state.sessions.get(clientId)

    def retain(self, topic: str, message: Message | None) -> None:
        if message is None:
            self.state.retained.pop(topic, None)
        else:
            self.state.retained[topic] = message

    def sessionSaved(self, clientId: str, expiryInterval: int, ownerKey: Any) -> None:
        record = self._session(clientId)
        if record is None:
            self.state.sessions[clientId] = SessionRecord(clientId, expiryInterval, ownerKey)
        else:
            record.expiryInterval = expiryInterval
            record.ownerKey = ownerKey
            record.disconnectedAt = None

    def sessionDisconnected(self, clientId: str, when: float) -> None:
        record = self._session(clientId)
        if record is not None:
            record.disconnectedAt = when

    def sessionDeleted(self, clientId: str) -> None:
        self.state.sessions.pop(clientId, None)

    def subscriptionSaved(self, clientId: str, topicFilter: str,
                          subscription: SubscriptionRecord) -> None:
        record = self._session(clientId)
        if record is not None:
            record.subscriptions[topicFilter] = subscription

    def subscriptionDeleted(self, clientId: str, topicFilter: str) -> None:
        record = self._session(clientId)
        if record is not None:
            record.subscriptions.pop(topicFilter, None)

    def messageQueued(self, clientId: str, queued: QueuedRecord) -> None:
        record = self._session(clientId)
        if record is not None:
            record.queue[queued.seq] = queued

    def messageDequeued(self, clientId: str, seq: int) -> None:
        record = self._session(clientId)
        if record is not None:
            record.queue.pop(seq, None)

    def inflightSaved(self, clientId: str, entry: InflightRecord) -> None:
        record = self._session(clientId)
        if record is not None:
            record.inflight[entry.packetId] = entry

    def inflightDeleted(self, clientId: str, packetId: int) -> None:
        record = self._session(clientId)
        if record is not None:
            record.inflight.pop(packetId, None)

    def inboundSaved(self, clientId: str, packetId: int) -> None:
        record = self._session(clientId)
        if record is not None:
            record.awaitingRel.add(packetId)

    def inboundDeleted(self, clientId: str, packetId: int) -> None:
        record = self._session(clientId)
        if record is not None:
            record.awaitingRel.discard(packetId)

    def sharedQueued(self, group: GroupKey, queued: QueuedRecord) -> None:
        self.state.shared.setdefault(group, {})[queued.seq] = queued

    def sharedDequeued(self, group: GroupKey, seq: int) -> None:
        queue = self.state.shared.get(group)
        if queue is not None:
            queue.pop(seq, None)
            if not queue:
                del self.state.shared[group]

    def sharedDeleted(self, group: GroupKey) -> None:
        self.state.shared.pop(group, None)
