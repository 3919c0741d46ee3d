"""
Tests for the embedding API of L{mqttd.broker.Broker}, used in-process:
C{publish}, C{subscribe} (and C{cancel}), C{retained}, C{listSessions},
C{kick}, C{stats} and the C{IService} life cycle, with network clients from
L{mqttd.testing.InMemoryBroker} on a driven clock.

Expected values are derived from each scenario (and the MQTT specification
and DESIGN.md section 4), never copied from the broker's output.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.trial.unittest import SynchronousTestCase

from mqttd.broker import Broker, InvalidTopic, SessionInfo
from mqttd.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Decoder,
    Disconnect,
    PropertyId,
    Publish,
    Suback,
    Will,
)
from mqttd.message import Message
from mqttd.testing import InMemoryBroker, MQTTTestClient

#: MQTT 5.0 Session Expiry Interval meaning "never" (section 3.1.2.11.2),
#: which is what a 3.1.x Clean Session 0 session amounts to.
NEVER_EXPIRES = 0xFFFFFFFF


def record(client: MQTTTestClient) -> bytearray:
    """
    Record every byte the broker sends to C{client} from now on.
    """
    wire = bytearray()
    original = client.dataReceived

    def dataReceived(data: bytes) -> None:
        wire.extend(data)
        original(data)

    client.dataReceived = dataReceived  # type: ignore[method-assign]
    return wire


def assertServerDisconnect(
    test: SynchronousTestCase, wire: bytes | bytearray, reasonCode: int
) -> None:
    """
    Assert that C{wire} is exactly one v5 DISCONNECT with C{reasonCode} and,
    as mqttd sends by default (reason-strings), a non-empty printable ASCII
    Reason String.
    """
    decoder = Decoder(isServer=False, protocolLevel=MQTT_5)
    decoder.feed(bytes(wire))
    packet = decoder.next()
    test.assertIsInstance(packet, Disconnect, bytes(wire))
    assert isinstance(packet, Disconnect)
    test.assertEqual(packet.reasonCode, reasonCode)
    # Nothing else: no second packet, no stray bytes.
    test.assertIsNone(decoder.next())
    test.assertEqual(decoder.buffered, 0)
    text = packet.properties.get(PropertyId.REASON_STRING)
    test.assertIsInstance(text, str, packet)
    test.assertTrue(text and text.isascii() and text.isprintable(), packet)


def subscriber(
    env: InMemoryBroker,
    clientId: str,
    topicFilter: str,
    qos: int = 0,
    protocolLevel: int = MQTT_3_1_1,
    **connectArgs: Any,
) -> MQTTTestClient:
    """
    Connect a client and subscribe it to one filter (SUBACK consumed).
    """
    client = env.connect(clientId, protocolLevel=protocolLevel, **connectArgs)
    client.subscribe(topicFilter, qos)
    env.flush()
    packets = client.take()
    if not packets or packets[0] != Suback(1, (qos,)):
        raise AssertionError(f"subscription refused: {packets!r}")
    client.received.extend(packets[1:])
    return client


def payloads(packets: list[Any]) -> list[bytes]:
    """
    The payloads of the PUBLISH packets among C{packets}.
    """
    return [p.payload for p in packets if isinstance(p, Publish)]


class PublishTests(SynchronousTestCase):
    """
    L{Broker.publish}: an in-process publisher.
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()
        self.broker = self.env.broker

    def test_reachesNetworkAndLocalSubscribers(self) -> None:
        """A message reaches 3.1.1, v5 and in-process subscribers; the count of targets is returned."""
        v3 = subscriber(self.env, "v3", "a/#", 1)
        v5 = subscriber(self.env, "v5", "a/b", 2, protocolLevel=MQTT_5)
        seen: list[Message] = []
        self.broker.subscribe("a/+", seen.append)
        count = self.broker.publish("a/b", b"hi", qos=1)
        self.env.flush()
        self.assertEqual(count, 3)
        for client in (v3, v5):
            [message] = client.publishes()
            self.assertEqual(
                (message.topic, message.payload, message.qos, message.retain),
                ("a/b", b"hi", 1, False),
            )
        [local] = seen
        self.assertEqual((local.topic, local.payload, local.qos), ("a/b", b"hi", 1))

    def test_noSubscribers(self) -> None:
        """Publishing to a topic nobody subscribes to delivers to no one and returns 0."""
        subscriber(self.env, "other", "elsewhere")
        self.assertEqual(self.broker.publish("nobody/home", b"x", qos=1), 0)

    def test_defaults(self) -> None:
        """By default a message is QoS 0 and not retained; a bytes-like payload is accepted."""
        sub = subscriber(self.env, "sub", "d", 2)
        self.broker.publish("d", bytearray(b"bytes-like"))
        self.env.flush()
        self.assertEqual(sub.publishes(), [Publish("d", b"bytes-like")])
        self.assertEqual(self.broker.retained(), [])

    def test_deliveryQosIsMinimum(self) -> None:
        """The delivery QoS is the minimum of the published and granted QoS."""
        sub = subscriber(self.env, "sub", "q", 1)
        self.broker.publish("q", b"two", qos=2)
        self.broker.publish("q", b"zero", qos=0)
        self.env.flush()
        self.assertEqual(
            [(p.payload, p.qos) for p in sub.publishes()], [(b"two", 1), (b"zero", 0)]
        )

    def test_retain(self) -> None:
        """A retained message is stored, replayed with RETAIN 1, and cleared by an empty payload."""
        self.broker.publish("r/1", b"kept", qos=1, retain=True)
        [stored] = self.broker.retained()
        self.assertEqual((stored.topic, stored.payload, stored.qos), ("r/1", b"kept", 1))
        late = subscriber(self.env, "late", "r/#", 1)
        [replayed] = late.publishes()
        self.assertEqual(
            (replayed.topic, replayed.payload, replayed.retain), ("r/1", b"kept", True)
        )
        self.broker.publish("r/1", b"", retain=True)
        self.assertEqual(self.broker.retained(), [])

    def test_properties(self) -> None:
        """v5 properties given to publish reach v5 subscribers; 3.1.1 ones get the bare message."""
        v5 = subscriber(self.env, "v5", "p", protocolLevel=MQTT_5)
        v3 = subscriber(self.env, "v3", "p")
        userProperties = [("origin", "embedded")]
        self.broker.publish(
            "p",
            b"x",
            properties={
                PropertyId.USER_PROPERTY: userProperties,
                PropertyId.CONTENT_TYPE: "text/plain",
            },
        )
        self.env.flush()
        [message] = v5.publishes()
        self.assertEqual(
            list(message.properties[PropertyId.USER_PROPERTY]), [tuple(p) for p in userProperties]
        )
        self.assertEqual(message.properties[PropertyId.CONTENT_TYPE], "text/plain")
        self.assertEqual(v3.publishes(), [Publish("p", b"x")])

    def test_queuedForOfflineSession(self) -> None:
        """QoS 1 is queued for an offline persistent session, QoS 0 is not."""
        sub = subscriber(self.env, "away", "o", 1, cleanStart=False)
        sub.disconnect()
        self.env.flush()
        self.broker.publish("o", b"dropped", qos=0)
        self.broker.publish("o", b"kept", qos=1)
        again = self.env.connect("away", cleanStart=False)
        self.assertTrue(again.connack.sessionPresent)
        self.assertEqual(payloads(again.take()), [b"kept"])

    def test_invalidTopic(self) -> None:
        """An invalid topic name raises InvalidTopic and publishes nothing."""
        seen: list[Message] = []
        self.broker.subscribe("#", seen.append)
        for topic in ("a/+", "a/#", "#", "+", ""):
            self.assertRaises(InvalidTopic, self.broker.publish, topic, b"x")
        self.assertEqual(seen, [])
        self.assertEqual(self.broker.stats()["messagesIn"], 0)

    def test_tooManyLevels(self) -> None:
        """A topic with more than max-topic-levels levels raises InvalidTopic."""
        env = InMemoryBroker(maxTopicLevels=3)
        env.broker.publish("a/b/c", b"ok")
        self.assertRaises(InvalidTopic, env.broker.publish, "a/b/c/d", b"x")

    def test_invalidQos(self) -> None:
        """A QoS other than 0, 1 or 2 raises ValueError."""
        self.assertRaises(ValueError, self.broker.publish, "t", b"x", 3)
        self.assertRaises(ValueError, self.broker.publish, "t", b"x", -1)
        self.assertEqual(self.broker.stats()["messagesIn"], 0)


class LocalSubscriptionTests(SynchronousTestCase):
    """
    L{Broker.subscribe}: in-process subscribers.
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()
        self.broker = self.env.broker

    def test_receivesClientPublishes(self) -> None:
        """Client messages matching the filter reach the callback, in order."""
        seen: list[Message] = []
        self.broker.subscribe("s/+/x", seen.append)
        pub = self.env.connect("pub")
        pub.publish("s/1/x", b"one", qos=1)
        pub.publish("s/2/y", b"other", qos=1)
        pub.publish("s/3/x", b"three", qos=2)
        pub.publish("s/4/x", b"four")
        self.env.flush()
        self.assertEqual(
            [(m.topic, m.payload, m.qos) for m in seen],
            [("s/1/x", b"one", 1), ("s/3/x", b"three", 2), ("s/4/x", b"four", 0)],
        )

    def test_receivesV5Properties(self) -> None:
        """A v5 client's user properties are visible to the callback."""
        seen: list[Message] = []
        self.broker.subscribe("#", seen.append)
        pub = self.env.connect("pub", protocolLevel=MQTT_5)
        pub.publish("t", b"x", properties={PropertyId.USER_PROPERTY: [("k", "v")]})
        self.env.flush()
        [message] = seen
        self.assertEqual(
            [tuple(p) for p in message.properties[PropertyId.USER_PROPERTY]], [("k", "v")]
        )

    def test_receivesWills(self) -> None:
        """A client's will reaches in-process subscribers."""
        seen: list[Message] = []
        self.broker.subscribe("will/#", seen.append)
        client = self.env.connect("w", will=Will("will/w", b"bye"))
        client.transport.loseConnection()
        self.env.flush()
        self.assertEqual([(m.topic, m.payload) for m in seen], [("will/w", b"bye")])

    def test_cancel(self) -> None:
        """After cancel() the callback gets nothing more; cancelling twice is harmless."""
        seen: list[Message] = []
        subscription = self.broker.subscribe("c", seen.append)
        self.assertEqual(self.broker.stats()["subscriptions"], 1)
        self.broker.publish("c", b"before")
        subscription.cancel()
        self.broker.publish("c", b"after")
        subscription.cancel()
        self.assertEqual([m.payload for m in seen], [b"before"])
        self.assertEqual(self.broker.stats()["subscriptions"], 0)

    def test_cancelLeavesOthers(self) -> None:
        """Cancelling one subscription on a filter keeps the others on the same filter."""
        first: list[Message] = []
        second: list[Message] = []
        one = self.broker.subscribe("c", first.append)
        self.broker.subscribe("c", second.append)
        one.cancel()
        self.broker.publish("c", b"x")
        self.assertEqual((len(first), len(second)), (0, 1))

    def test_callbackExceptionContained(self) -> None:
        """A callback that raises is logged; other subscribers and the publisher are unaffected."""
        seen: list[Message] = []

        def broken(message: Message) -> None:
            raise ZeroDivisionError("subscriber bug")

        self.broker.subscribe("e", broken)
        self.broker.subscribe("e", seen.append)
        sub = subscriber(self.env, "sub", "e", 1)
        pub = self.env.connect("pub")
        pub.publish("e", b"1", qos=1, packetId=1)
        pub.publish("e", b"2", qos=1, packetId=2)
        self.env.flush()
        self.assertEqual([m.payload for m in seen], [b"1", b"2"])
        self.assertEqual(payloads(sub.take()), [b"1", b"2"])
        self.assertEqual([p.packetId for p in pub.take()], [1, 2])
        self.assertFalse(pub.closed)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)
        self.assertEqual(self.broker.publish("e", b"3"), 3)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_noRetainedReplay(self) -> None:
        """An in-process subscription does not replay retained messages (use retained())."""
        self.broker.publish("r", b"old", retain=True)
        seen: list[Message] = []
        self.broker.subscribe("r", seen.append)
        self.assertEqual(seen, [])
        self.broker.publish("r", b"new", retain=True)
        self.assertEqual([m.payload for m in seen], [b"new"])

    def test_invalidFilter(self) -> None:
        """An invalid filter raises InvalidTopic and subscribes nothing."""
        for topicFilter in ("a/#/b", "a+", "#/a", ""):
            self.assertRaises(InvalidTopic, self.broker.subscribe, topicFilter, lambda m: None)
        self.assertEqual(self.broker.stats()["subscriptions"], 0)


class RetainedApiTests(SynchronousTestCase):
    """
    L{Broker.retained}.
    """

    def test_retainedByFilter(self) -> None:
        """retained() returns the retained messages matching a filter ("#" by default)."""
        env = InMemoryBroker()
        pub = env.connect("pub")
        pub.publish("r/a", b"1", retain=True)
        pub.publish("r/b/c", b"2", retain=True)
        pub.publish("s", b"3", retain=True)
        pub.publish("r/x", b"not retained")
        env.flush()
        broker = env.broker
        self.assertEqual(sorted(m.topic for m in broker.retained()), ["r/a", "r/b/c", "s"])
        self.assertEqual([m.topic for m in broker.retained("r/+")], ["r/a"])
        self.assertEqual(sorted(m.payload for m in broker.retained("r/#")), [b"1", b"2"])
        self.assertRaises(InvalidTopic, broker.retained, "r/#/x")

    def test_expiredRetainedHidden(self) -> None:
        """A retained message past its v5 Message Expiry Interval is no longer returned."""
        env = InMemoryBroker()
        env.broker.publish(
            "e", b"x", retain=True, properties={PropertyId.MESSAGE_EXPIRY_INTERVAL: 10}
        )
        env.advance(9)
        self.assertEqual(len(env.broker.retained("e")), 1)
        env.advance(1)
        self.assertEqual(env.broker.retained("e"), [])


class ListSessionsTests(SynchronousTestCase):
    """
    L{Broker.listSessions}.
    """

    def test_sessionsSnapshot(self) -> None:
        """Each session is listed with its connection state, subscriptions and queue figures."""
        env = InMemoryBroker(maxQueuedMessages=2)
        broker = env.broker
        live = env.connect(
            "live",
            protocolLevel=MQTT_5,
            autoAck=False,
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 300},
        )
        live.subscribe("a", 1)
        live.subscribe("b/#", 0)
        away = subscriber(env, "away", "a", 1, cleanStart=False)
        away.disconnect()
        clean = env.connect("clean")
        env.flush()
        for i in range(3):
            broker.publish("a", b"%d" % i, qos=1)
        env.flush()
        self.assertEqual(len(live.publishes()), 3)
        sessions = {info.clientId: info for info in broker.listSessions()}
        self.assertEqual(set(sessions), {"live", "away", "clean"})
        for info in sessions.values():
            self.assertIsInstance(info, SessionInfo)
        info = sessions["live"]
        self.assertEqual(
            (
                info.connected,
                info.protocolLevel,
                set(info.subscriptions),
                info.queuedMessages,
                info.inflightMessages,
                info.expiryInterval,
                info.dropped,
            ),
            (True, MQTT_5, {"a", "b/#"}, 0, 3, 300, 0),
        )
        self.assertIsInstance(info.peer, str)
        self.assertTrue(info.peer)
        info = sessions["away"]
        # Offline, maxQueuedMessages 2: the third QoS 1 message was dropped.
        self.assertEqual(
            (
                info.connected,
                info.protocolLevel,
                info.peer,
                info.subscriptions,
                info.queuedMessages,
                info.inflightMessages,
                info.expiryInterval,
                info.dropped,
            ),
            (False, None, None, ("a",), 2, 0, NEVER_EXPIRES, 1),
        )
        info = sessions["clean"]
        self.assertEqual(
            (
                info.connected,
                info.protocolLevel,
                info.subscriptions,
                info.queuedMessages,
                info.expiryInterval,
            ),
            (True, MQTT_3_1_1, (), 0, 0),
        )
        clean.disconnect()
        env.flush()
        self.assertNotIn("clean", {i.clientId for i in broker.listSessions()})

    def test_emptyBroker(self) -> None:
        """A broker without clients lists no sessions."""
        self.assertEqual(InMemoryBroker().broker.listSessions(), [])


class KickTests(SynchronousTestCase):
    """
    L{Broker.kick}.
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()
        self.watcher = subscriber(self.env, "watcher", "will/#")

    def test_kickV5(self) -> None:
        """A kicked v5 client gets DISCONNECT 0x98 and is closed; its will is published."""
        client = self.env.connect("k", protocolLevel=MQTT_5, will=Will("will/k", b"kicked"))
        wire = record(client)
        self.assertTrue(self.env.broker.kick("k"))
        self.env.flush()
        assertServerDisconnect(self, wire, 0x98)
        self.assertTrue(client.closed)
        self.assertEqual(payloads(self.watcher.take()), [b"kicked"])
        self.assertNotIn("k", self.env.broker.connections)

    def test_kick311(self) -> None:
        """A kicked 3.1.1 client is closed without a packet; its will is published."""
        client = self.env.connect("k", will=Will("will/k", b"kicked"))
        wire = record(client)
        self.assertTrue(self.env.broker.kick("k"))
        self.env.flush()
        self.assertEqual(bytes(wire), b"")
        self.assertTrue(client.closed)
        self.assertEqual(payloads(self.watcher.take()), [b"kicked"])

    def test_kickReasonCode(self) -> None:
        """kick() sends the reason code it is given to a v5 client."""
        client = self.env.connect("k", protocolLevel=MQTT_5)
        wire = record(client)
        self.env.broker.kick("k", 0x9C)
        self.env.flush()
        assertServerDisconnect(self, wire, 0x9C)
        self.assertTrue(client.closed)

    def test_kickUnknown(self) -> None:
        """kick() of a client id that is not connected returns False."""
        self.assertFalse(self.env.broker.kick("nobody"))
        away = self.env.connect("away", cleanStart=False)
        away.disconnect()
        self.env.flush()
        self.assertFalse(self.env.broker.kick("away"))

    def test_kickKeepsPersistentSession(self) -> None:
        """Kicking a client does not end its persistent session."""
        subscriber(self.env, "k", "t", 1, cleanStart=False)
        self.env.broker.kick("k")
        self.env.flush()
        [info] = [i for i in self.env.broker.listSessions() if i.clientId == "k"]
        self.assertEqual((info.connected, info.subscriptions), (False, ("t",)))


class StatsTests(SynchronousTestCase):
    """
    L{Broker.stats}: each counter against a scenario with known numbers.
    """

    def setUp(self) -> None:
        # Two sessions subscribe to "s/#": "a" (online, acks) and "b"
        # (offline, queue limit 3); one in-process subscription on "s/#".
        env = self.env = InMemoryBroker(maxQueuedMessages=3, maxConnections=4)
        self.a = env.connect("a")
        self.a.subscribe("s/#", 1)
        self.a.subscribe("x", 0)
        b = subscriber(env, "b", "s/#", 1, cleanStart=False)
        b.disconnect()
        self.local: list[Message] = []
        env.broker.subscribe("s/#", self.local.append)
        self.p = env.connect("p", protocolLevel=MQTT_5)
        env.flush()
        self.a.take()

    def test_initial(self) -> None:
        """Before any message: only connection, session and subscription figures."""
        self.assertEqual(
            self.env.broker.stats(),
            {
                "messagesIn": 0,
                "messagesOut": 0,
                "messagesDropped": 0,
                "messagesQueued": 0,
                "connections": 2,
                "connectionsTotal": 3,
                "connectionsRefused": 0,
                "sessions": 3,
                "subscriptions": 4,
                "retained": 0,
            },
        )

    def test_messageCounters(self) -> None:
        """messagesIn/Out/Dropped/Queued follow five client messages, a retained one and an in-process one."""
        env = self.env
        for i in range(5):
            self.p.publish("s/1", b"%d" % i, qos=1)
        env.flush()
        # In: 5.  Out: 5 to "a" + 5 in-process.  "b" offline keeps 3, drops 2.
        stats = env.broker.stats()
        self.assertEqual(
            (
                stats["messagesIn"],
                stats["messagesOut"],
                stats["messagesDropped"],
                stats["messagesQueued"],
            ),
            (5, 10, 2, 3),
        )
        self.p.publish("r/1", b"keep", retain=True)
        env.broker.publish("x", b"hi")
        env.flush()
        stats = env.broker.stats()
        self.assertEqual(
            (stats["messagesIn"], stats["messagesOut"], stats["retained"]), (7, 11, 1)
        )
        self.assertEqual(len(payloads(self.a.take())), 6)
        self.assertEqual(len(self.local), 5)
        # "b" comes back: its 3 queued messages go out.
        b = env.connect("b", cleanStart=False)
        self.assertEqual(len(payloads(b.take())), 3)
        stats = env.broker.stats()
        self.assertEqual(
            (stats["messagesOut"], stats["messagesQueued"], stats["messagesDropped"]), (14, 0, 2)
        )

    def test_willCounted(self) -> None:
        """A will counts as a message in and its deliveries as messages out."""
        w = self.env.connect("w", will=Will("s/will", b"bye"))
        w.transport.loseConnection()
        self.env.flush()
        stats = self.env.broker.stats()
        # In: the will.  Out: "a" and the in-process subscriber; "b" is offline and the
        # will is QoS 0, so it is not queued for it.
        self.assertEqual(
            (stats["messagesIn"], stats["messagesOut"], stats["messagesQueued"]), (1, 2, 0)
        )

    def test_queuedCountsInflight(self) -> None:
        """messagesQueued counts the messages in flight (sent, not acknowledged) too."""
        slow = self.env.connect("slow", autoAck=False)
        slow.subscribe("z", 1)
        self.env.flush()
        self.env.broker.publish("z", b"1", qos=1)
        self.env.broker.publish("z", b"2", qos=1)
        self.env.flush()
        self.assertEqual(self.env.broker.stats()["messagesQueued"], 2)

    def test_connectionCounters(self) -> None:
        """connections is the open count, connectionsTotal the accepted ones, connectionsRefused the rest."""
        env = self.env
        env.openClient()
        extra = env.openClient()
        self.assertRaises(ConnectionRefusedError, env.openClient)
        stats = env.broker.stats()
        self.assertEqual(
            (stats["connections"], stats["connectionsTotal"], stats["connectionsRefused"]),
            (4, 5, 1),
        )
        extra.transport.loseConnection()
        self.p.disconnect()
        env.flush()
        stats = env.broker.stats()
        self.assertEqual(
            (stats["connections"], stats["connectionsTotal"], stats["connectionsRefused"]),
            (2, 5, 1),
        )
        # A clean session ends with its connection: "p" is gone, "b" stays.
        self.assertEqual(stats["sessions"], 2)

    def test_subscriptionAndRetainedGauges(self) -> None:
        """subscriptions and retained go down as well as up."""
        env = self.env
        self.a.unsubscribe("x")
        self.p.publish("r/1", b"1", retain=True)
        self.p.publish("r/2", b"2", retain=True)
        env.flush()
        stats = env.broker.stats()
        self.assertEqual((stats["subscriptions"], stats["retained"]), (3, 2))
        self.p.publish("r/1", b"", retain=True)
        self.a.disconnect()
        env.flush()
        stats = env.broker.stats()
        self.assertEqual((stats["subscriptions"], stats["retained"]), (2, 1))


class ServiceTests(SynchronousTestCase):
    """
    The broker as a Twisted service.
    """

    def test_multiService(self) -> None:
        """A Broker in a MultiService starts and stops with it; stopping disconnects clients."""
        env = InMemoryBroker()
        broker = env.broker
        parent = MultiService()
        broker.setServiceParent(parent)
        self.assertFalse(broker.running)
        parent.startService()
        self.assertTrue(broker.running)
        v5 = env.connect("v5", protocolLevel=MQTT_5)
        v3 = env.connect("v3")
        pending = env.openClient()
        wires = [record(c) for c in (v5, v3, pending)]
        parent.stopService()
        env.flush()
        self.assertFalse(broker.running)
        # v5 gets DISCONNECT 0x8B Server shutting down; 3.1.1 and a connection
        # without CONNACK get no packet [MQTT-3.14.0-1].
        assertServerDisconnect(self, wires[0], 0x8B)
        self.assertEqual([bytes(w) for w in wires[1:]], [b"", b""])
        self.assertTrue(all(c.closed for c in (v5, v3, pending)))
        self.assertEqual(broker.stats()["connections"], 0)

    def test_stopLeavesNoTimers(self) -> None:
        """After stopService and the disconnections, no broker timer is left pending."""
        env = InMemoryBroker()
        broker = env.broker
        broker.startService()
        expiry = {PropertyId.SESSION_EXPIRY_INTERVAL: 600}
        # An offline session waiting to expire, with a delayed will.
        gone = env.connect(
            "gone",
            protocolLevel=MQTT_5,
            properties=expiry,
            will=Will("w", b"x", properties={PropertyId.WILL_DELAY_INTERVAL: 60}),
        )
        gone.transport.loseConnection()
        # A connected client with a session expiry and keep-alive.
        env.connect("live", protocolLevel=MQTT_5, keepAlive=30, properties=expiry)
        env.flush()
        broker.stopService()
        env.flush()
        self.assertEqual([c for c in env.clock.getDelayedCalls() if c.active()], [])

    def test_constructedWithDefaults(self) -> None:
        """Broker() validates its default configuration and names itself."""
        broker = Broker(clock=InMemoryBroker().clock)
        self.assertEqual(broker.name, "mqttd-broker")
        self.assertEqual(broker.stats()["sessions"], 0)
