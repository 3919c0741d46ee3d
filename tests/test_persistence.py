"""
Persistence seen through the broker (L{mqttd.store}): a broker restarted on
the same store gives back persistent sessions (subscriptions with their
options, queued and unacknowledged messages, inbound QoS 2 packet ids
awaiting PUBREL, their remaining expiry and their owner), shared
subscription groups' queues and retained messages; clean sessions are never
restored.  With a store, acknowledgements (PUBACK, PUBREC, PUBCOMP, SUBACK,
UNSUBACK) wait for the writes they caused and keep their order, QoS 1
messages waiting for their PUBACK count towards Receive Maximum, and a
failed write closes the publisher's connection without acknowledging.

In-process, over L{mqttd.testing.InMemoryBroker}: a restart is the broker
service stopped and a new broker started on the same store, its driven
clock set to when the restart happens.  The store is a
L{mqttd.store.memory.MemoryStore} (or a subclass whose writes the test
completes by hand), and one test restarts on an
L{mqttd.store.sqlite.SQLiteStore} with the real reactor.  Expected packets
come from the MQTT 3.1.1 and 5.0 specifications and C{mqttd.store}'s
documented guarantees ("acknowledged means stored"), never from mqttd's
output.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, inlineCallbacks, maybeDeferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from mqttd.auth import CheckerChain, MQTTRealm
from mqttd.broker import Broker
from mqttd.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Disconnect,
    Packet,
    PropertyId,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Unsuback,
)
from mqttd.protocol import MQTTServerFactory
from mqttd.store.memory import MemoryStore
from mqttd.store.sqlite import SQLiteStore
from mqttd.testing import InMemoryBroker, MQTTTestClient
from tests.clienthelpers import tempDirectory

P = PropertyId

#: v5 CONNECT properties of a persistent session (one hour).
PERSISTENT = {P.SESSION_EXPIRY_INTERVAL: 3600}

#: The IStore methods that write.
WRITES = (
    "retain", "sessionSaved", "sessionDisconnected", "sessionDeleted", "subscriptionSaved",
    "subscriptionDeleted", "messageQueued", "messageDequeued", "inflightSaved",
    "inflightDeleted", "inboundSaved", "inboundDeleted", "sharedQueued", "sharedDequeued",
    "sharedDeleted",
)


class StoreWriteError(Exception):
    """
    The failure a test store's write fails with.
    """


class SlowStore(MemoryStore):
    """
    A L{MemoryStore} whose writes, while C{slow} is set, return a Deferred
    the test fires by hand (each write is applied to the state at once; only
    its completion is delayed).

    @ivar pending: C{(method, args, Deferred)} of every write made while
        slow, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.slow = False
        self.pending: list[tuple[str, tuple[Any, ...], Deferred[None]]] = []

    def _written(self, method: str, args: tuple[Any, ...]) -> Deferred[None] | None:
        if not self.slow:
            return None
        d: Deferred[None] = Deferred()
        self.pending.append((method, args, d))
        return d

    def writes(self, method: str | None = None) -> list[tuple[str, tuple[Any, ...], Deferred[None]]]:
        """
        The pending writes not yet fired (of one method, if given).
        """
        return [w for w in self.pending
                if not w[2].called and (method is None or w[0] == method)]

    def fire(self, *writes: tuple[str, tuple[Any, ...], Deferred[None]]) -> None:
        """
        Complete writes successfully.
        """
        for _, _, d in writes:
            d.callback(None)

    def fireAll(self) -> None:
        """
        Complete every pending write, oldest first.
        """
        self.fire(*self.writes())


def _slowWrite(name: str) -> Any:
    def write(self: SlowStore, *args: Any) -> Deferred[None] | None:
        getattr(MemoryStore, name)(self, *args)
        return self._written(name, args)

    write.__name__ = name
    return write


for _name in WRITES:
    setattr(SlowStore, _name, _slowWrite(_name))


class FailingStore(MemoryStore):
    """
    A L{MemoryStore} whose C{messageQueued} fails for the client ids in
    C{failFor} (with an already failed Deferred).
    """

    def __init__(self, *failFor: str) -> None:
        super().__init__()
        self.failFor = set(failFor)

    def messageQueued(self, clientId: str, queued: Any) -> Any:
        if clientId in self.failFor:
            return fail(StoreWriteError(f"disk full while queueing for {clientId}"))
        return super().messageQueued(clientId, queued)


def startedAt(store: Any, seconds: float = 0.0, **settings: Any) -> InMemoryBroker:
    """
    An L{InMemoryBroker} on C{store} whose clock reads C{seconds} when the
    broker starts (and reads the store back): time that passed while the
    broker was down.
    """
    if not seconds:
        return InMemoryBroker(store=store, **settings)
    env = InMemoryBroker(**settings)
    env.clock.advance(seconds)
    env.broker = Broker(env.broker.config, clock=env.clock, store=store)
    env.factory = MQTTServerFactory(env.broker)
    env.broker.startService()
    return env


def restart(env: InMemoryBroker, store: Any, seconds: float = 0.0,
            **settings: Any) -> InMemoryBroker:
    """
    Stop C{env}'s broker (its clients' connections close), then start a new
    one on C{store} at C{seconds} on its clock.
    """
    env.broker.stopService()
    env.flush()
    return startedAt(store, seconds, **settings)


def v5(env: InMemoryBroker, clientId: str, autoAck: bool = True,
       **connectArgs: Any) -> MQTTTestClient:
    """
    Connect a v5 test client (CONNACK consumed, kept as C{client.connack}).
    """
    return env.connect(clientId, protocolLevel=MQTT_5, autoAck=autoAck, **connectArgs)


def subscribe(env: InMemoryBroker, client: MQTTTestClient, topicFilter: str, qos: int = 1,
              subscriptionId: int | None = None, **options: Any) -> Suback:
    """
    Subscribe to one filter and return the SUBACK (other packets stay in
    C{client.received}).
    """
    props = {P.SUBSCRIPTION_IDENTIFIER: (subscriptionId,)} if subscriptionId else {}
    client.subscribe(topicFilter, qos, props, **options)
    env.flush()
    [suback] = [p for p in client.received if isinstance(p, Suback)]
    client.received.remove(suback)
    return suback


def leave(env: InMemoryBroker, client: MQTTTestClient) -> None:
    """
    DISCONNECT normally and let the broker see it.
    """
    client.disconnect()
    env.flush()


def summary(packets: list[Publish]) -> list[tuple[str, bytes, int]]:
    """
    (topic, payload, QoS) of PUBLISH packets.
    """
    return [(p.topic, p.payload, p.qos) for p in packets]


# ---------------------------------------------------------------------------
# Sessions restored
# ---------------------------------------------------------------------------


class RestoredSessionTests(SynchronousTestCase):
    """
    A persistent session (3.1.1 Clean Session 0; v5 Session Expiry
    Interval > 0) is restored with its subscriptions and queued messages;
    a clean one is not.
    """

    def setUp(self) -> None:
        self.store = MemoryStore()
        self.env = InMemoryBroker(store=self.store)

    def test_v311SessionRestored(self) -> None:
        """3.1.1 Clean Session 0: Session Present 1 after a restart, queued QoS 1/2 messages in order, subscriptions with their QoS."""
        sub = self.env.connect("sub", cleanStart=False)
        self.assertEqual(subscribe(self.env, sub, "q/#", 2).reasonCodes, (2,))
        self.assertEqual(subscribe(self.env, sub, "d/#", 1).reasonCodes, (1,))
        leave(self.env, sub)
        pub = self.env.connect("pub")
        pub.publish("q/1", b"one", qos=1)
        pub.publish("q/2", b"two", qos=2)
        pub.publish("d/x", b"downgraded", qos=2)
        pub.publish("q/3", b"three", qos=1)
        pub.publish("q/0", b"qos0 is not queued", qos=0)
        self.env.flush()
        self.env = restart(self.env, self.store)
        sub = self.env.connect("sub", cleanStart=False)
        self.assertTrue(sub.connack.sessionPresent)
        self.assertEqual(summary(sub.publishes()), [
            ("q/1", b"one", 1), ("q/2", b"two", 2), ("d/x", b"downgraded", 1),
            ("q/3", b"three", 1),
        ])
        pub = self.env.connect("pub")
        pub.publish("q/live", b"after", qos=2)
        pub.publish("d/live", b"after", qos=2)
        self.env.flush()
        self.assertEqual(summary(sub.publishes()),
                         [("q/live", b"after", 2), ("d/live", b"after", 1)])

    def test_v5SessionRestoredWithOptions(self) -> None:
        """v5 Session Expiry Interval > 0: subscriptions keep No Local, Retain As Published, Retain Handling and their identifiers."""
        sub = v5(self.env, "sub", properties=PERSISTENT)
        subscribe(self.env, sub, "n/t", 1, subscriptionId=7, noLocal=True)
        subscribe(self.env, sub, "r/a", 1, subscriptionId=8, retainAsPublished=True)
        subscribe(self.env, sub, "r/b", 1)
        subscribe(self.env, sub, "h/#", 2, subscriptionId=9, retainHandling=2)
        leave(self.env, sub)
        other = v5(self.env, "other")
        other.publish("n/t", b"queued 1", qos=1)
        other.publish("h/x", b"queued 2", qos=2)
        self.env.flush()
        self.env = restart(self.env, self.store)
        sub = v5(self.env, "sub", cleanStart=False, properties=PERSISTENT)
        self.assertTrue(sub.connack.sessionPresent)
        queued = sub.publishes()
        self.assertEqual(summary(queued), [("n/t", b"queued 1", 1), ("h/x", b"queued 2", 2)])
        self.assertEqual([dict(p.properties) for p in queued],
                         [{P.SUBSCRIPTION_IDENTIFIER: (7,)}, {P.SUBSCRIPTION_IDENTIFIER: (9,)}])
        # No Local: its own message is not delivered, another client's is.
        other = v5(self.env, "other")
        sub.publish("n/t", b"mine", qos=1)
        other.publish("n/t", b"theirs", qos=1)
        # Retain As Published on r/a only.
        other.publish("r/a", b"kept", qos=1, retain=True)
        other.publish("r/b", b"cleared", qos=1, retain=True)
        self.env.flush()
        received = sub.publishes()
        self.assertEqual(
            [(p.topic, p.payload, p.retain, dict(p.properties)) for p in received],
            [("n/t", b"theirs", False, {P.SUBSCRIPTION_IDENTIFIER: (7,)}),
             ("r/a", b"kept", True, {P.SUBSCRIPTION_IDENTIFIER: (8,)}),
             ("r/b", b"cleared", False, {})],
        )
        # The subscription exists: Retain Handling 1 sends no retained message.
        other.publish("h/y", b"retained", qos=1, retain=True)
        self.env.flush()
        self.assertEqual(summary(sub.publishes()), [("h/y", b"retained", 1)])
        subscribe(self.env, sub, "r/a", 1, subscriptionId=8, retainAsPublished=True,
                  retainHandling=1)
        self.assertEqual(sub.publishes(), [])
        options = self.env.broker.sessions["sub"].subscriptions["h/#"]
        self.assertEqual(
            (options.qos, options.noLocal, options.retainAsPublished, options.retainHandling,
             tuple(options.subscriptionIds)),
            (2, False, False, 2, (9,)),
        )

    def assertNotRestored(self, level: int, connectArgs: dict[str, Any]) -> None:
        clean = self.env.connect("clean", level, **connectArgs)
        subscribe(self.env, clean, "c/#", 1)
        kept = self.env.connect("kept", level, cleanStart=False,
                                **({"properties": PERSISTENT} if level == MQTT_5 else {}))
        subscribe(self.env, kept, "c/#", 1)
        self.assertEqual(set(self.store.state.sessions), {"kept"})
        # The clean client is still connected when the broker stops.
        self.env = restart(self.env, self.store)
        self.assertEqual(set(self.env.broker.sessions), {"kept"})
        again = self.env.connect("clean", level, cleanStart=False,
                                 **({"properties": PERSISTENT} if level == MQTT_5 else {}))
        self.assertFalse(again.connack.sessionPresent)
        self.env.broker.publish("c/x", b"x", qos=1)
        self.env.flush()
        self.assertEqual(again.take(), [])

    def test_v311CleanSessionNotRestored(self) -> None:
        """3.1.1 Clean Session 1: never written, not restored (Session Present 0, no subscription)."""
        self.assertNotRestored(MQTT_3_1_1, {"cleanStart": True})

    def test_v5ExpiryZeroNotRestored(self) -> None:
        """v5 Session Expiry Interval 0 (Clean Start 0): never written, not restored."""
        self.assertNotRestored(MQTT_5, {"cleanStart": False})


# ---------------------------------------------------------------------------
# Unacknowledged messages
# ---------------------------------------------------------------------------


class UnacknowledgedOutboundTests(SynchronousTestCase):
    """
    QoS 1/2 messages sent and not acknowledged before a restart are resent
    with DUP 1 and the same packet ids; a QoS 2 message the client had
    PUBREC'd gets PUBREL resent instead [MQTT-4.4.0-1].
    """

    def check(self, level: int) -> None:
        store = MemoryStore()
        env = InMemoryBroker(store=store)
        args: dict[str, Any] = {"properties": PERSISTENT} if level == MQTT_5 else {}
        sub = env.connect("sub", level, autoAck=False, cleanStart=False, **args)
        subscribe(env, sub, "o/#", 2)
        pub = env.connect("pub", level)
        pub.publish("o/1", b"one", qos=1)
        pub.publish("o/2", b"two", qos=2)
        pub.publish("o/3", b"three", qos=2)
        env.flush()
        first = sub.publishes()
        self.assertEqual(summary(first), [("o/1", b"one", 1), ("o/2", b"two", 2),
                                          ("o/3", b"three", 2)])
        self.assertFalse(any(p.dup for p in first))
        ids = [p.packetId or 0 for p in first]
        self.assertNotIn(0, ids)
        sub.send(Pubrec(ids[2]))
        env.flush()
        self.assertEqual(sub.take(), [Pubrel(ids[2])])
        env = restart(env, store)
        sub = env.connect("sub", level, autoAck=False, cleanStart=False, **args)
        self.assertTrue(sub.connack.sessionPresent)
        packets = sub.take()
        self.assertEqual([p for p in packets if isinstance(p, Pubrel)], [Pubrel(ids[2])])
        self.assertEqual(
            [(p.topic, p.payload, p.qos, p.dup, p.packetId) for p in packets
             if isinstance(p, Publish)],
            [("o/1", b"one", 1, True, ids[0]), ("o/2", b"two", 2, True, ids[1])],
        )
        self.assertEqual(len(packets), 3, packets)
        # Completing the flows forgets them in the store too.
        sub.send(Puback(ids[0]))
        sub.send(Pubrec(ids[1]))
        sub.send(Pubcomp(ids[2]))
        env.flush()
        self.assertEqual(sub.take(), [Pubrel(ids[1])])
        sub.send(Pubcomp(ids[1]))
        env.flush()
        self.assertEqual(store.state.sessions["sub"].inflight, {})
        env = restart(env, store)
        sub = env.connect("sub", level, autoAck=False, cleanStart=False, **args)
        self.assertTrue(sub.connack.sessionPresent)
        self.assertEqual(sub.take(), [])

    def test_v311(self) -> None:
        """3.1.1: unacknowledged PUBLISHes resent with DUP 1 and their packet ids, PUBREL for the PUBREC'd one."""
        self.check(MQTT_3_1_1)

    def test_v5(self) -> None:
        """v5: unacknowledged PUBLISHes resent with DUP 1 and their packet ids, PUBREL for the PUBREC'd one."""
        self.check(MQTT_5)


class InboundQos2Tests(SynchronousTestCase):
    """
    An inbound QoS 2 packet id awaiting PUBREL survives a restart: the
    resent PUBLISH is not forwarded again [MQTT-4.3.3-2] (method B of
    section 4.3.3) and PUBREL gets PUBCOMP.
    """

    def check(self, level: int) -> None:
        store = MemoryStore()
        env = InMemoryBroker(store=store)
        args: dict[str, Any] = {"properties": PERSISTENT} if level == MQTT_5 else {}
        sub = env.connect("sub", level, cleanStart=False, **args)
        subscribe(env, sub, "i/t", 2)
        pub = env.connect("pub", level, autoAck=False, cleanStart=False, **args)
        pub.publish("i/t", b"once", qos=2, packetId=5)
        env.flush()
        self.assertEqual(pub.take(), [Pubrec(5)])
        self.assertEqual(summary(sub.publishes()), [("i/t", b"once", 2)])
        self.assertEqual(store.state.sessions["pub"].awaitingRel, {5})
        env = restart(env, store)
        sub = env.connect("sub", level, cleanStart=False, **args)
        pub = env.connect("pub", level, autoAck=False, cleanStart=False, **args)
        self.assertTrue(pub.connack.sessionPresent)
        pub.publish("i/t", b"once", qos=2, packetId=5, dup=True)
        env.flush()
        self.assertEqual(pub.take(), [Pubrec(5)])
        self.assertEqual(sub.take(), [])
        pub.send(Pubrel(5))
        env.flush()
        # v5: reason 0x00 Success, not 0x92 Packet Identifier not found.
        self.assertEqual(pub.take(), [Pubcomp(5, 0)])
        self.assertEqual(store.state.sessions["pub"].awaitingRel, set())
        self.assertEqual(sub.take(), [])

    def test_v311(self) -> None:
        """3.1.1: the dup PUBLISH after a restart gets PUBREC and is not delivered twice; PUBREL gets PUBCOMP."""
        self.check(MQTT_3_1_1)

    def test_v5(self) -> None:
        """v5: the dup PUBLISH after a restart gets PUBREC and is not delivered twice; PUBREL gets PUBCOMP 0x00."""
        self.check(MQTT_5)


# ---------------------------------------------------------------------------
# Expiry across restarts
# ---------------------------------------------------------------------------


class ExpiryAcrossRestartTests(SynchronousTestCase):
    """
    A session's expiry counts from its disconnect, also while the broker is
    down [MQTT-3.1.2-23].
    """

    def setUp(self) -> None:
        self.store = MemoryStore()
        env = InMemoryBroker(store=self.store)
        sub = v5(env, "s", properties={P.SESSION_EXPIRY_INTERVAL: 100})
        subscribe(env, sub, "e/t", 1)
        leave(env, sub)
        env.broker.publish("e/t", b"queued", qos=1)
        env.flush()
        self.assertEqual(self.store.state.sessions["s"].disconnectedAt, 0)
        self.env = env

    def test_remainingIntervalAfterRestart(self) -> None:
        """Restarted 60 s after the disconnect, a 100 s session is restored and ends 40 s later."""
        self.env = restart(self.env, self.store, 60)
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], ["s"])
        self.env.advance(39)
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], ["s"])
        self.assertIn("s", self.store.state.sessions)
        self.env.advance(2)
        self.assertEqual(self.env.broker.listSessions(), [])
        self.assertNotIn("s", self.store.state.sessions)
        again = v5(self.env, "s", cleanStart=False, properties=PERSISTENT)
        self.assertFalse(again.connack.sessionPresent)
        self.assertEqual(again.take(), [])

    def test_resumedBeforeRemainingIntervalEnds(self) -> None:
        """Restarted 60 s after the disconnect, the session resumed 39 s later is present with its message."""
        self.env = restart(self.env, self.store, 60)
        self.env.advance(39)
        again = v5(self.env, "s", cleanStart=False, properties=PERSISTENT)
        self.assertTrue(again.connack.sessionPresent)
        self.assertEqual(summary(again.publishes()), [("e/t", b"queued", 1)])

    def test_expiredWhileDown(self) -> None:
        """Restarted 101 s after the disconnect, the 100 s session is not restored and is deleted from the store."""
        self.env = restart(self.env, self.store, 101)
        self.assertEqual(self.env.broker.listSessions(), [])
        self.assertNotIn("s", self.store.state.sessions)
        again = v5(self.env, "s", cleanStart=False, properties=PERSISTENT)
        self.assertFalse(again.connack.sessionPresent)
        self.assertEqual(again.take(), [])
        self.env.broker.publish("e/t", b"late", qos=1)
        self.env.flush()
        self.assertEqual(again.take(), [])


# ---------------------------------------------------------------------------
# Retained messages
# ---------------------------------------------------------------------------


class RetainedAcrossRestartTests(SynchronousTestCase):
    """
    Retained messages survive a restart: set, replaced and cleared ones as
    they were last.
    """

    def test_currentRetainedMessages(self) -> None:
        """After a restart a new subscriber gets exactly the current retained messages."""
        store = MemoryStore()
        env = InMemoryBroker(store=store)
        pub = env.connect("pub")
        pub.publish("r/a", b"first", qos=1, retain=True)
        pub.publish("r/b", b"to be cleared", qos=2, retain=True)
        pub.publish("r/c", b"qos 0", qos=0, retain=True)
        pub.publish("r/a", b"replaced", qos=2, retain=True)
        pub.publish("r/b", b"", qos=1, retain=True)
        pub.publish("r/d", b"not retained", qos=1)
        env.flush()
        env = restart(env, store)
        sub = env.connect("sub")
        subscribe(env, sub, "r/#", 2)
        self.assertEqual(
            sorted((p.topic, p.payload, p.qos, p.retain) for p in sub.publishes()),
            [("r/a", b"replaced", 2, True), ("r/c", b"qos 0", 0, True)],
        )


# ---------------------------------------------------------------------------
# Acknowledgements wait for the store
# ---------------------------------------------------------------------------


class _SlowStoreBase(SynchronousTestCase):
    """
    A broker on a L{SlowStore}; C{offline} is a persistent session
    subscribed to C{p/#} with QoS 1 and disconnected, so that QoS 1/2
    messages to C{p/...} are written for it.
    """

    settings: dict[str, Any] = {}

    def setUp(self) -> None:
        self.store = SlowStore()
        self.env = InMemoryBroker(store=self.store, **self.settings)
        offline = self.env.connect("offline", cleanStart=False)
        subscribe(self.env, offline, "p/#", 1)
        leave(self.env, offline)
        self.store.slow = True


class AckOrderTests(_SlowStoreBase):
    """
    PUBACK/PUBREC/PUBCOMP/SUBACK/UNSUBACK go out once the writes they caused
    are stored, and in order [MQTT-4.6.0-2].
    """

    def test_pubackWaitsForItsWrite(self) -> None:
        """PUBACK only once the message is stored for the offline subscriber."""
        pub = self.env.connect("pub")
        pub.publish("p/1", b"one", qos=1, packetId=1)
        self.env.flush()
        self.assertEqual(pub.take(), [])
        [write] = self.store.writes()
        self.assertEqual(write[0], "messageQueued")
        self.store.fire(write)
        self.env.flush()
        self.assertEqual(pub.take(), [Puback(1)])

    def test_pubacksInOrder(self) -> None:
        """The second message stored first: no PUBACK until the first is stored, then PUBACK 1, PUBACK 2."""
        pub = self.env.connect("pub")
        pub.publish("p/1", b"one", qos=1, packetId=1)
        pub.publish("p/2", b"two", qos=1, packetId=2)
        self.env.flush()
        first, second = self.store.writes("messageQueued")
        self.assertEqual([w[1][1].message.payload for w in (first, second)], [b"one", b"two"])
        self.store.fire(second)
        self.env.flush()
        self.assertEqual(pub.take(), [])
        self.store.fire(first)
        self.env.flush()
        self.assertEqual(pub.take(), [Puback(1), Puback(2)])

    def test_ackWithoutWritesWaitsBehind(self) -> None:
        """A message that causes no write is acknowledged after earlier ones that wait for the store."""
        pub = self.env.connect("pub")
        pub.publish("p/1", b"stored", qos=1, packetId=1)
        pub.publish("nobody/here", b"not stored", qos=1, packetId=2)
        pub.publish("nobody/here", b"not stored", qos=2, packetId=3)
        self.env.flush()
        self.assertEqual(pub.take(), [])
        [write] = self.store.writes()
        self.store.fire(write)
        self.env.flush()
        self.assertEqual(pub.take(), [Puback(1), Puback(2), Pubrec(3)])

    def test_duplicatePubrecWaitsBehind(self) -> None:
        """The PUBREC answering a duplicate QoS 2 PUBLISH goes out after an earlier PUBACK still waiting for the store."""
        pub = self.env.connect("pub", cleanStart=False, autoAck=False)
        pub.publish("nobody/here", b"x", qos=2, packetId=9)
        self.env.flush()
        self.store.fireAll()
        self.env.flush()
        self.assertEqual(pub.take(), [Pubrec(9)])
        pub.publish("p/1", b"stored", qos=1, packetId=1)
        pub.publish("nobody/here", b"x", qos=2, packetId=9, dup=True)
        self.env.flush()
        self.assertEqual(pub.take(), [])
        [write] = self.store.writes()
        self.assertEqual(write[0], "messageQueued")
        self.store.fire(write)
        self.env.flush()
        self.assertEqual(pub.take(), [Puback(1), Pubrec(9)])

    def test_subackWaitsForSubscriptionWrite(self) -> None:
        """A persistent session's SUBACK waits until the subscription is stored; UNSUBACK until it is deleted."""
        sub = self.env.connect("sub", cleanStart=False)
        self.store.fireAll()
        packetId = sub.subscribe("s/t", 1)
        self.env.flush()
        self.assertEqual(sub.take(), [])
        [write] = self.store.writes()
        self.assertEqual(write[0], "subscriptionSaved")
        self.store.fire(write)
        self.env.flush()
        self.assertEqual(sub.take(), [Suback(packetId, (1,))])
        packetId = sub.unsubscribe("s/t")
        self.env.flush()
        self.assertEqual(sub.take(), [])
        [write] = self.store.writes()
        self.assertEqual(write[0], "subscriptionDeleted")
        self.store.fire(write)
        self.env.flush()
        self.assertEqual(sub.take(), [Unsuback(packetId)])

    def test_pubrecAndPubcompWaitForInboundWrites(self) -> None:
        """A persistent publisher's PUBREC waits for its packet id to be stored, PUBCOMP for it to be deleted."""
        pub = self.env.connect("pub", cleanStart=False, autoAck=False)
        self.store.fireAll()
        pub.publish("nobody/here", b"x", qos=2, packetId=7)
        self.env.flush()
        self.assertEqual(pub.take(), [])
        [write] = self.store.writes()
        self.assertEqual(write[:2], ("inboundSaved", ("pub", 7)))
        self.store.fire(write)
        self.env.flush()
        self.assertEqual(pub.take(), [Pubrec(7)])
        pub.send(Pubrel(7))
        self.env.flush()
        self.assertEqual(pub.take(), [])
        [write] = self.store.writes()
        self.assertEqual(write[:2], ("inboundDeleted", ("pub", 7)))
        self.store.fire(write)
        self.env.flush()
        self.assertEqual(pub.take(), [Pubcomp(7)])

    def test_pubrelWaitsForReleasedWrite(self) -> None:
        """To a persistent subscriber's PUBREC the broker answers PUBREL once the "released" state is stored (a crash before would resend the PUBLISH)."""
        self.store.slow = False
        sub = self.env.connect("sub2", cleanStart=False, autoAck=False)
        subscribe(self.env, sub, "q/#", 2)
        pub = self.env.connect("pub")
        pub.publish("q/1", b"exactly once", qos=2, packetId=1)
        pub.send(Pubrel(1))
        self.env.flush()
        [delivery] = sub.publishes()
        self.store.slow = True
        sub.send(Pubrec(delivery.packetId))
        self.env.flush()
        self.assertEqual(sub.take(), [])
        [write] = self.store.writes()
        self.assertEqual(write[0], "inflightSaved")
        self.assertTrue(write[1][1].released)
        self.store.fire(write)
        self.env.flush()
        self.assertEqual(sub.take(), [Pubrel(delivery.packetId)])

    def test_noWriteMeansImmediateAck(self) -> None:
        """With a store, a QoS 1 message that causes no write (no persistent subscriber) is acknowledged at once."""
        live = self.env.connect("live")
        subscribe(self.env, live, "l/t", 1)
        pub = self.env.connect("pub")
        pub.publish("l/t", b"to a clean session", qos=1, packetId=1)
        pub.publish("nobody/here", b"to nobody", qos=1, packetId=2)
        self.env.flush()
        self.assertEqual(pub.take(), [Puback(1), Puback(2)])
        self.assertEqual(summary(live.publishes()), [("l/t", b"to a clean session", 1)])
        self.assertEqual(self.store.writes(), [])


class ImmediateStoreTests(SynchronousTestCase):
    """
    A store whose writes complete at once (return L{None}) adds no delay.
    """

    def test_synchronousWritesAckAtOnce(self) -> None:
        """With a MemoryStore, PUBACK for a message stored for an offline subscriber needs no reactor turn."""
        store = MemoryStore()
        env = InMemoryBroker(store=store)
        offline = env.connect("offline", cleanStart=False)
        subscribe(env, offline, "p/#", 1)
        leave(env, offline)
        pub = env.connect("pub")
        pub.publish("p/1", b"stored", qos=1, packetId=1)
        pub.publish("nobody/here", b"not stored", qos=1, packetId=2)
        env.flush()
        self.assertEqual(pub.take(), [Puback(1), Puback(2)])
        self.assertEqual([q.message.payload for q in store.state.sessions["offline"].queue.values()],
                         [b"stored"])


class ReceiveMaximumTests(_SlowStoreBase):
    """
    QoS 1 messages whose PUBACK waits for the store count towards the
    broker's Receive Maximum (v5 section 4.9): one more is DISCONNECT 0x93.
    """

    settings = {"receiveMaximum": 2}

    def test_thirdPendingPublishDisconnected(self) -> None:
        """Receive Maximum 2, two QoS 1 PUBACKs waiting for the store: a third QoS 1 PUBLISH gets DISCONNECT 0x93."""
        pub = v5(self.env, "pub")
        self.assertEqual(pub.connack.properties.get(P.RECEIVE_MAXIMUM), 2)
        pub.publish("p/1", b"one", qos=1)
        pub.publish("p/2", b"two", qos=1)
        self.env.flush()
        self.assertEqual(pub.take(), [])
        pub.publish("p/3", b"three", qos=1)
        self.env.flush()
        packets = pub.take()
        self.assertEqual([(type(p), getattr(p, "reasonCode", None)) for p in packets],
                         [(Disconnect, 0x93)])
        self.assertTrue(pub.closed)

    def test_storedPublishesFreeTheQuota(self) -> None:
        """Once the writes are stored and PUBACKed, further QoS 1 PUBLISHes are accepted."""
        pub = v5(self.env, "pub")
        pub.publish("p/1", b"one", qos=1, packetId=1)
        pub.publish("p/2", b"two", qos=1, packetId=2)
        self.env.flush()
        self.store.fireAll()
        self.env.flush()
        self.assertEqual(pub.take(), [Puback(1), Puback(2)])
        pub.publish("p/3", b"three", qos=1, packetId=3)
        self.env.flush()
        self.store.fireAll()
        self.env.flush()
        self.assertEqual(pub.take(), [Puback(3)])
        self.assertFalse(pub.closed)


class WriteFailureTests(SynchronousTestCase):
    """
    A message that cannot be stored is not acknowledged: the publisher's
    connection is closed (v5: DISCONNECT 0x80), other clients carry on.
    """

    def test_failedWriteClosesPublisher(self) -> None:
        """A failed write: no PUBACK, v5 DISCONNECT 0x80 and closed; another publisher is unaffected."""
        store = FailingStore("broken")
        env = InMemoryBroker(store=store)
        for clientId, topicFilter in (("broken", "bad/#"), ("fine", "good/#")):
            client = env.connect(clientId, cleanStart=False)
            subscribe(env, client, topicFilter, 1)
            leave(env, client)
        pub = v5(env, "pub")
        other = v5(env, "other")
        pub.publish("bad/t", b"lost", qos=1, packetId=1)
        env.flush()
        packets = pub.take()
        self.assertEqual([(type(p), getattr(p, "reasonCode", None)) for p in packets],
                         [(Disconnect, 0x80)])
        self.assertTrue(pub.closed)
        self.assertEqual(len(self.flushLoggedErrors(StoreWriteError)), 1)
        other.publish("good/t", b"kept", qos=1, packetId=1)
        env.flush()
        self.assertEqual(other.take(), [Puback(1)])
        self.assertFalse(other.closed)
        fine = env.connect("fine", cleanStart=False)
        self.assertEqual(summary(fine.publishes()), [("good/t", b"kept", 1)])

    def test_laterFailureClosesV311Publisher(self) -> None:
        """A write failing later: the 3.1.1 publisher is closed with neither its PUBACK nor the later ones."""
        store = SlowStore()
        env = InMemoryBroker(store=store)
        offline = env.connect("offline", cleanStart=False)
        subscribe(env, offline, "p/#", 1)
        leave(env, offline)
        store.slow = True
        pub = env.connect("pub")
        other = env.connect("other")
        pub.publish("p/1", b"lost", qos=1, packetId=1)
        pub.publish("nobody/here", b"after", qos=1, packetId=2)
        env.flush()
        [(_, _, d)] = store.writes()
        d.errback(StoreWriteError("disk full"))
        env.flush()
        self.assertEqual(pub.take(), [])
        self.assertTrue(pub.closed)
        self.assertEqual(len(self.flushLoggedErrors(StoreWriteError)), 1)
        other.publish("p/2", b"kept", qos=1, packetId=1)
        env.flush()
        store.fireAll()
        env.flush()
        self.assertEqual(other.take(), [Puback(1)])
        self.assertFalse(other.closed)


# ---------------------------------------------------------------------------
# Shared subscriptions and session owners
# ---------------------------------------------------------------------------


class SharedGroupAcrossRestartTests(SynchronousTestCase):
    """
    The QoS 1/2 messages a shared subscription group keeps while none of
    its members is connected survive a restart.
    """

    def test_groupQueueRestored(self) -> None:
        """The only member of $share/g/t offline: a QoS 1 message published to t reaches it after a restart."""
        store = MemoryStore()
        env = InMemoryBroker(store=store)
        member = v5(env, "member", properties=PERSISTENT)
        subscribe(env, member, "$share/g/t", 1)
        leave(env, member)
        pub = v5(env, "pub")
        pub.publish("t", b"for the group", qos=1, packetId=1)
        env.flush()
        self.assertEqual(pub.take(), [Puback(1)])
        env = restart(env, store)
        member = v5(env, "member", cleanStart=False, properties=PERSISTENT)
        self.assertTrue(member.connack.sessionPresent)
        self.assertEqual(summary(member.publishes()), [("t", b"for the group", 1)])
        self.assertEqual(store.state.shared, {})
        self.assertEqual(store.state.sessions["member"].inflight, {})
        env = restart(env, store)
        member = v5(env, "member", cleanStart=False, properties=PERSISTENT)
        self.assertEqual(member.take(), [])


class OwnershipAcrossRestartTests(SynchronousTestCase):
    """
    A session made by an authenticated identity still belongs to it after a
    restart (catalogue AU-11): another user is refused (3.1.1 CONNACK 0x05,
    v5 0x87), the owner resumes it.
    """

    def withPortal(self, env: InMemoryBroker) -> InMemoryBroker:
        checker = InMemoryUsernamePasswordDatabaseDontUse()
        checker.addUser(b"alice", b"a-pw")
        checker.addUser(b"bob", b"b-pw")
        env.factory.portal = Portal(MQTTRealm(), [CheckerChain([checker])])
        return env

    def check(self, level: int) -> None:
        store = MemoryStore()
        env = self.withPortal(InMemoryBroker(store=store))
        args: dict[str, Any] = {"properties": PERSISTENT} if level == MQTT_5 else {}
        alice = env.connect("dev1", level, cleanStart=False, username="alice",
                            password=b"a-pw", **args)
        subscribe(env, alice, "t/#", 1)
        leave(env, alice)
        env.broker.publish("t/x", b"for alice", qos=1)
        env.flush()
        env = self.withPortal(restart(env, store))
        for clean in (False, True):
            bob = env.openClient(level)
            bob.connect("dev1", cleanStart=clean, username="bob", password=b"b-pw", **args)
            env.flush()
            [connack] = bob.take()
            assert isinstance(connack, Connack)
            self.assertEqual((connack.sessionPresent, connack.reasonCode),
                             (False, 0x87 if level == MQTT_5 else 0x05))
            self.assertTrue(bob.closed)
        self.assertIn("dev1", store.state.sessions)
        alice = env.connect("dev1", level, cleanStart=False, username="alice",
                            password=b"a-pw", **args)
        self.assertTrue(alice.connack.sessionPresent)
        self.assertEqual(summary(alice.publishes()), [("t/x", b"for alice", 1)])

    def test_v311(self) -> None:
        """3.1.1: after a restart bob cannot use alice's client id (CONNACK 0x05); alice resumes her session."""
        self.check(MQTT_3_1_1)

    def test_v5(self) -> None:
        """v5: after a restart bob cannot use alice's client id (CONNACK 0x87); alice resumes her session."""
        self.check(MQTT_5)


# ---------------------------------------------------------------------------
# A broker on SQLite
# ---------------------------------------------------------------------------


class SQLiteBrokerTests(TestCase):
    """
    A broker on an L{SQLiteStore} (its commits run in a thread of the real
    reactor): messages for an offline session come back after a restart on
    the same file with their MQTT 5.0 properties.
    """

    def setUp(self) -> None:
        self.path = os.path.join(tempDirectory(self), "mqttd.db")

    @inlineCallbacks
    def waitFor(self, env: InMemoryBroker, condition: Any, attempts: int = 300) -> Any:
        """
        Flush and let the reactor run (the store's thread) until
        C{condition()} holds, at most C{attempts} times 10 ms.
        """
        for _ in range(attempts):
            env.flush()
            if condition():
                return
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail("the store never finished its writes")

    @inlineCallbacks
    def test_restartOnSameFile(self) -> Any:
        """QoS 1 and 2 messages to an offline v5 session come back after a restart with their properties and a decreasing Message Expiry Interval."""
        store = SQLiteStore(self.path)
        self.addCleanup(store.close)
        env = InMemoryBroker(store=store)
        sub = v5(env, "sub", properties=PERSISTENT)
        packetId = sub.subscribe("p/#", 2)
        received: list[Packet] = []

        def collected(client: MQTTTestClient, count: int) -> Any:
            def check() -> bool:
                received.extend(client.take())
                return len(received) >= count
            return check

        yield self.waitFor(env, collected(sub, 1))
        self.assertEqual(received, [Suback(packetId, (2,))])
        leave(env, sub)
        pub = v5(env, "pub", autoAck=False)
        props1 = {
            P.USER_PROPERTY: (("z", "1"), ("a", "2"), ("z", "0")),
            P.CONTENT_TYPE: "text/plain",
            P.RESPONSE_TOPIC: "reply/here",
            P.CORRELATION_DATA: b"\x00corr\xff",
            P.MESSAGE_EXPIRY_INTERVAL: 100,
        }
        props2 = {P.PAYLOAD_FORMAT_INDICATOR: 1, P.USER_PROPERTY: (("k", "v"),)}
        pub.publish("p/1", b"qos 1", qos=1, packetId=1, properties=props1)
        pub.publish("p/2", b"qos 2", qos=2, packetId=2, properties=props2)
        received.clear()
        yield self.waitFor(env, collected(pub, 2))
        self.assertEqual(received, [Puback(1), Pubrec(2)])
        pub.send(Pubrel(2))
        received.clear()
        yield self.waitFor(env, collected(pub, 1))
        self.assertEqual(received, [Pubcomp(2)])
        leave(env, pub)
        yield maybeDeferred(env.broker.stopService)

        store = SQLiteStore(self.path)
        self.addCleanup(store.close)
        env = startedAt(store, 30)
        sub = v5(env, "sub", cleanStart=False, properties=PERSISTENT)
        self.assertTrue(sub.connack.sessionPresent)
        messages = sub.publishes()
        self.assertEqual(summary(messages), [("p/1", b"qos 1", 1), ("p/2", b"qos 2", 2)])
        self.assertEqual(dict(messages[0].properties),
                         {**props1, P.MESSAGE_EXPIRY_INTERVAL: 70})
        self.assertEqual(messages[0].properties[P.USER_PROPERTY],
                         (("z", "1"), ("a", "2"), ("z", "0")))
        self.assertEqual(dict(messages[1].properties), props2)
        # The subscriber acknowledges them (autoAck); the QoS 2 flow ends
        # with PUBREL (once its PUBREC is stored) and PUBCOMP: after another
        # restart nothing comes back.
        received.clear()
        yield self.waitFor(env, collected(sub, 1))
        self.assertEqual(received, [Pubrel(messages[1].packetId)])
        env.flush()
        leave(env, sub)
        yield maybeDeferred(env.broker.stopService)
        store = SQLiteStore(self.path)
        self.addCleanup(store.close)
        env = startedAt(store, 31)
        sub = v5(env, "sub", cleanStart=False, properties=PERSISTENT)
        self.assertTrue(sub.connack.sessionPresent)
        self.assertEqual(sub.take(), [])
        leave(env, sub)
        yield maybeDeferred(env.broker.stopService)
