"""
MQTT 5.0 features over in-memory connections (L{mqttd.testing}): sessions
and their expiry, message properties and expiry, topic aliases both ways,
subscription options, shared subscriptions, flow control, CONNACK
capabilities, wills, server-initiated DISCONNECT reason codes, enhanced
authentication and mixed protocol versions.

Expected packets and properties come from the MQTT 5.0 specification (and
the decisions of DESIGN.md section 4 where it allows several answers), never
from mqttd's output.  Failure packets may carry a Reason String (mqttd sends
one unless the client set Request Problem Information to 0): tests compare
reason codes and the other properties, and check Reason Strings apart.  Time
is the driven clock of L{InMemoryBroker}.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mqttd.auth import AuthContinue, AuthFailure, AuthSuccess
from mqttd.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Auth,
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
    Subscribe,
    SubscriptionRequest,
    Unsuback,
    Will,
    encode,
)
from mqttd.interfaces import IAuthExchange, IEnhancedAuthenticator
from mqttd.testing import InMemoryBroker, MQTTTestClient

P = PropertyId

#: The CONNACK properties of a broker with default settings: Receive
#: Maximum 20, Maximum Packet Size 1 MiB, Topic Alias Maximum 10 (DESIGN.md
#: section 4); every other capability is the protocol default, so absent.
DEFAULT_CONNACK = {P.RECEIVE_MAXIMUM: 20, P.MAXIMUM_PACKET_SIZE: 1048576, P.TOPIC_ALIAS_MAXIMUM: 10}

#: Every property a PUBLISH forwards unchanged (section 3.3.2.3), user
#: properties with a repeated name and out of alphabetical order.
FORWARDED = {
    P.PAYLOAD_FORMAT_INDICATOR: 1,
    P.CONTENT_TYPE: "text/plain; charset=utf-8",
    P.RESPONSE_TOPIC: "reply/to/me",
    P.CORRELATION_DATA: b"\x00\x01corr\xff",
    P.USER_PROPERTY: (("z", "1"), ("a", "2"), ("z", "0"), ("", "")),
}


def v5(env: InMemoryBroker, clientId: str, autoAck: bool = True, **connectArgs: Any) -> MQTTTestClient:
    """
    Connect a v5 test client (CONNACK consumed, kept as C{client.connack}).
    """
    return env.connect(clientId, protocolLevel=MQTT_5, autoAck=autoAck, **connectArgs)


def drop(env: InMemoryBroker, client: MQTTTestClient) -> None:
    """
    Close a client's connection without DISCONNECT (a network failure).
    """
    client.transport.loseConnection()
    env.flush()


def leave(env: InMemoryBroker, client: MQTTTestClient, **properties: Any) -> None:
    """
    DISCONNECT normally (reason code 0x00), with optional properties.
    """
    client.disconnect(0, {getattr(P, k): v for k, v in properties.items()} or {})
    env.flush()


def subscribe(
    env: InMemoryBroker,
    client: MQTTTestClient,
    topicFilter: str,
    qos: int = 1,
    subscriptionId: int | None = None,
    **options: Any,
) -> Suback:
    """
    Subscribe to one filter and return the SUBACK (other packets received
    meanwhile, such as retained messages, stay in C{client.received}).
    """
    props = {P.SUBSCRIPTION_IDENTIFIER: (subscriptionId,)} if subscriptionId else {}
    client.subscribe(topicFilter, qos, props, **options)
    env.flush()
    [suback] = [p for p in client.received if isinstance(p, Suback)]
    client.received.remove(suback)
    return suback


def withoutReasonString(props: Any) -> dict[int, Any]:
    """
    A packet's properties without its Reason String.
    """
    return {k: v for k, v in dict(props).items() if k != P.REASON_STRING}


def alive(client: MQTTTestClient) -> bool:
    """
    Whether the connection is open and the broker never told it to go.
    """
    return not client.closed and not any(isinstance(p, Disconnect) for p in client.received)


class _Base(SynchronousTestCase):
    """
    A fresh broker with default settings per test, and assertions.
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()

    def newBroker(self, **settings: Any) -> InMemoryBroker:
        self.env = InMemoryBroker(**settings)
        return self.env

    def assertDisconnected(self, client: MQTTTestClient, reasonCode: int, **props: Any) -> Disconnect:
        """
        The broker sent DISCONNECT with C{reasonCode} (and exactly the
        given properties besides an optional Reason String) as the last
        packet, and closed the connection.
        """
        packets = client.take()
        self.assertTrue(packets, "nothing received")
        last = packets[-1]
        self.assertIsInstance(last, Disconnect, repr(packets))
        assert isinstance(last, Disconnect)
        self.assertEqual(last.reasonCode, reasonCode, packets)
        self.assertEqual(withoutReasonString(last.properties),
                         {getattr(P, k): v for k, v in props.items()})
        self.assertTrue(client.closed)
        return last

    def assertRefused(self, client: MQTTTestClient, reasonCode: int, **props: Any) -> Connack:
        """
        The broker answered the CONNECT with exactly one CONNACK carrying
        C{reasonCode} (and exactly the given properties besides an optional
        Reason String), then closed the connection.
        """
        packets = client.take()
        self.assertEqual(len(packets), 1, packets)
        [connack] = packets
        self.assertIsInstance(connack, Connack)
        assert isinstance(connack, Connack)
        self.assertEqual((connack.sessionPresent, connack.reasonCode), (False, reasonCode))
        self.assertEqual(withoutReasonString(connack.properties),
                         {getattr(P, k): v for k, v in props.items()})
        self.assertTrue(client.closed)
        return connack

    def openV5(self, clientId: str, **connectArgs: Any) -> MQTTTestClient:
        """
        Send a v5 CONNECT without requiring success.
        """
        client = self.env.openClient(MQTT_5)
        client.connect(clientId, **connectArgs)
        self.env.flush()
        return client


# ---------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------


class SessionTests(_Base):
    """
    Clean Start and Session Expiry Interval (sections 3.1.2.4, 3.1.2.11.2,
    4.1).
    """

    def sessionWithQueuedMessage(self, expiry: int) -> None:
        sub = v5(self.env, "s", properties={P.SESSION_EXPIRY_INTERVAL: expiry})
        subscribe(self.env, sub, "s/t", 1)
        drop(self.env, sub)
        self.env.broker.publish("s/t", b"queued", qos=1)
        self.env.flush()

    def resume(self, **props: Any) -> MQTTTestClient:
        return v5(self.env, "s", cleanStart=False,
                  properties={getattr(P, k): v for k, v in props.items()})

    def test_expiryZeroEndsWithConnection(self) -> None:
        """Session Expiry Interval absent (0): the session ends when the connection closes [MQTT-3.1.2-23]."""
        sub = v5(self.env, "s")
        subscribe(self.env, sub, "s/t", 1)
        drop(self.env, sub)
        self.assertEqual(self.env.broker.listSessions(), [])
        again = self.resume()
        self.assertFalse(again.connack.sessionPresent)
        self.env.broker.publish("s/t", b"x", qos=1)
        self.env.flush()
        self.assertEqual(again.take(), [])

    def test_resumedWithinExpiry(self) -> None:
        """Reconnecting with Clean Start 0 before the interval passes: Session Present 1 and the queued message."""
        self.sessionWithQueuedMessage(30)
        self.env.advance(29)
        again = self.resume(SESSION_EXPIRY_INTERVAL=30)
        self.assertTrue(again.connack.sessionPresent)
        self.assertEqual([(p.topic, p.payload, p.qos) for p in again.publishes()],
                         [("s/t", b"queued", 1)])

    def test_expiredAfterInterval(self) -> None:
        """The session is discarded once the interval has passed since the disconnect."""
        self.sessionWithQueuedMessage(30)
        self.env.advance(29.9)
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], ["s"])
        self.env.advance(0.1)
        self.assertEqual(self.env.broker.listSessions(), [])
        again = self.resume(SESSION_EXPIRY_INTERVAL=30)
        self.assertFalse(again.connack.sessionPresent)
        self.assertEqual(again.take(), [])

    def test_neverExpires(self) -> None:
        """Session Expiry Interval 0xFFFFFFFF: the session does not expire [section 3.1.2.11.2]."""
        self.sessionWithQueuedMessage(0xFFFFFFFF)
        self.env.advance(0xFFFFFFFF + 10.0)
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], ["s"])
        again = self.resume()
        self.assertTrue(again.connack.sessionPresent)
        self.assertEqual([p.payload for p in again.publishes()], [b"queued"])

    def test_cleanStartDiscardsSession(self) -> None:
        """Clean Start 1 discards the existing session: Session Present 0, no old subscription or message [MQTT-3.1.2-4]."""
        self.sessionWithQueuedMessage(60)
        again = v5(self.env, "s", cleanStart=True, properties={P.SESSION_EXPIRY_INTERVAL: 60})
        self.assertFalse(again.connack.sessionPresent)
        self.env.broker.publish("s/t", b"after", qos=1)
        self.env.flush()
        self.assertEqual(again.take(), [])

    def test_resumedTimerDoesNotEndSession(self) -> None:
        """The expiry timer of an earlier disconnect does not end a resumed session."""
        self.sessionWithQueuedMessage(10)
        self.env.advance(5)
        again = self.resume(SESSION_EXPIRY_INTERVAL=10)
        again.take()
        self.env.advance(20)
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], ["s"])
        self.assertTrue(alive(again))

    def test_disconnectSetsExpiryZero(self) -> None:
        """DISCONNECT with Session Expiry Interval 0 ends a session created with 60 at once [section 3.14.2.2.2]."""
        sub = v5(self.env, "s", properties={P.SESSION_EXPIRY_INTERVAL: 60})
        subscribe(self.env, sub, "s/t", 1)
        leave(self.env, sub, SESSION_EXPIRY_INTERVAL=0)
        self.assertEqual(self.env.broker.listSessions(), [])
        self.assertFalse(self.resume().connack.sessionPresent)

    def test_disconnectLengthensExpiry(self) -> None:
        """DISCONNECT with Session Expiry Interval 100 replaces the CONNECT's 10."""
        sub = v5(self.env, "s", properties={P.SESSION_EXPIRY_INTERVAL: 10})
        subscribe(self.env, sub, "s/t", 1)
        leave(self.env, sub, SESSION_EXPIRY_INTERVAL=100)
        self.env.advance(99)
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], ["s"])
        self.env.advance(1)
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_disconnectWithoutExpiryKeepsConnectValue(self) -> None:
        """DISCONNECT without the property keeps the CONNECT's interval."""
        sub = v5(self.env, "s", properties={P.SESSION_EXPIRY_INTERVAL: 10})
        leave(self.env, sub)
        self.env.advance(9)
        self.assertEqual(len(self.env.broker.listSessions()), 1)
        self.env.advance(1)
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_disconnectNonZeroAfterZeroIsProtocolError(self) -> None:
        """DISCONNECT with a non-zero Session Expiry Interval after 0 at CONNECT: DISCONNECT 0x82, session gone [section 3.14.2.2.2]."""
        client = v5(self.env, "s")
        subscribe(self.env, client, "s/t", 1)
        client.send(Disconnect(0, {P.SESSION_EXPIRY_INTERVAL: 60}))
        self.env.flush()
        self.assertDisconnected(client, 0x82)
        self.env.advance(1)
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_disconnectZeroAfterZeroAccepted(self) -> None:
        """DISCONNECT with Session Expiry Interval 0 after 0 at CONNECT is a normal disconnect."""
        client = v5(self.env, "s")
        client.send(Disconnect(0, {P.SESSION_EXPIRY_INTERVAL: 0}))
        self.env.flush()
        self.assertEqual(client.take(), [])
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_maxSessionExpiryLowersInterval(self) -> None:
        """max-session-expiry 30 below the client's 600: CONNACK says 30 and the session expires after 30 s (section 3.2.2.3.2)."""
        self.newBroker(maxSessionExpiry=30)
        sub = v5(self.env, "s", properties={P.SESSION_EXPIRY_INTERVAL: 600})
        self.assertEqual(dict(sub.connack.properties),
                         {**DEFAULT_CONNACK, P.SESSION_EXPIRY_INTERVAL: 30})
        drop(self.env, sub)
        self.env.advance(29)
        self.assertEqual(len(self.env.broker.listSessions()), 1)
        self.env.advance(1)
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_maxSessionExpiryNotSentWhenNotLowered(self) -> None:
        """A Session Expiry Interval within max-session-expiry is not echoed in CONNACK."""
        self.newBroker(maxSessionExpiry=30)
        sub = v5(self.env, "s", properties={P.SESSION_EXPIRY_INTERVAL: 30})
        self.assertEqual(dict(sub.connack.properties), DEFAULT_CONNACK)

    def test_maxSessionExpiryBoundsDisconnectValue(self) -> None:
        """A DISCONNECT asking for more than max-session-expiry gets max-session-expiry."""
        self.newBroker(maxSessionExpiry=30)
        sub = v5(self.env, "s", properties={P.SESSION_EXPIRY_INTERVAL: 10})
        leave(self.env, sub, SESSION_EXPIRY_INTERVAL=1000)
        self.env.advance(30)
        self.assertEqual(self.env.broker.listSessions(), [])


# ---------------------------------------------------------------------------
# Message properties and expiry
# ---------------------------------------------------------------------------


class MessagePropertyTests(_Base):
    """
    PUBLISH properties forwarded to subscribers (section 3.3.2.3) and the
    Message Expiry Interval (section 3.3.2.3.3).
    """

    def pair(self, **subscriberConnect: Any) -> tuple[MQTTTestClient, MQTTTestClient]:
        sub = v5(self.env, "sub", **subscriberConnect)
        subscribe(self.env, sub, "m/#", 2)
        pub = v5(self.env, "pub")
        return sub, pub

    def test_propertiesForwardedUnchanged(self) -> None:
        """Payload Format Indicator, Content Type, Response Topic, Correlation Data and User Properties arrive unchanged, in order [MQTT-3.3.2-4, -15, -16, -18, -20]."""
        sub, pub = self.pair()
        for qos in (0, 1, 2):
            pub.publish("m/x", b"payload", qos=qos, properties=FORWARDED)
        self.env.flush()
        received = sub.publishes()
        self.assertEqual([(p.topic, p.payload, p.qos) for p in received],
                         [("m/x", b"payload", q) for q in (0, 1, 2)])
        for p in received:
            self.assertEqual(dict(p.properties), FORWARDED)
            self.assertEqual(p.properties[P.USER_PROPERTY], FORWARDED[P.USER_PROPERTY])

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                      max_size=5),
                              st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                      max_size=5)),
                    min_size=1, max_size=8))
    def test_userPropertyOrder(self, pairs: list[tuple[str, str]]) -> None:
        """Any list of User Properties reaches the subscriber as the same list, in order [MQTT-3.3.2-18]."""
        env = InMemoryBroker()
        sub = v5(env, "sub")
        subscribe(env, sub, "u", 1)
        pub = v5(env, "pub")
        pub.publish("u", b"", qos=1, properties={P.USER_PROPERTY: tuple(pairs)})
        env.flush()
        [received] = sub.publishes()
        self.assertEqual(dict(received.properties), {P.USER_PROPERTY: tuple(pairs)})

    def test_noInventedProperties(self) -> None:
        """A PUBLISH without properties arrives without properties."""
        sub, pub = self.pair()
        pub.publish("m/x", b"plain", qos=1)
        self.env.flush()
        [received] = sub.publishes()
        self.assertEqual(dict(received.properties), {})

    def test_publisherTopicAliasNotForwarded(self) -> None:
        """The publisher's Topic Alias is not forwarded; the subscriber gets the topic name (section 3.3.2.3.4)."""
        sub, pub = self.pair()
        pub.publish("m/a", b"1", qos=1, properties={P.TOPIC_ALIAS: 3, P.CONTENT_TYPE: "x"})
        pub.publish("", b"2", qos=1, properties={P.TOPIC_ALIAS: 3})
        self.env.flush()
        self.assertEqual([(p.topic, p.payload, dict(p.properties)) for p in sub.publishes()],
                         [("m/a", b"1", {P.CONTENT_TYPE: "x"}), ("m/a", b"2", {})])

    def test_expiryForwardedImmediately(self) -> None:
        """A message delivered at once carries its Message Expiry Interval unchanged."""
        sub, pub = self.pair()
        pub.publish("m/x", b"e", qos=1, properties={P.MESSAGE_EXPIRY_INTERVAL: 30})
        self.env.flush()
        [received] = sub.publishes()
        self.assertEqual(dict(received.properties), {P.MESSAGE_EXPIRY_INTERVAL: 30})

    def offlineSubscriber(self) -> MQTTTestClient:
        sub = v5(self.env, "sub", properties={P.SESSION_EXPIRY_INTERVAL: 1000})
        subscribe(self.env, sub, "m/#", 1)
        drop(self.env, sub)
        return v5(self.env, "pub")

    def test_expiredWhileQueuedOffline(self) -> None:
        """A message queued for an offline session past its expiry is never delivered; one within it arrives with the interval minus the time waited [MQTT-3.3.2-5, -6]."""
        pub = self.offlineSubscriber()
        pub.publish("m/short", b"short", qos=1, properties={P.MESSAGE_EXPIRY_INTERVAL: 5})
        pub.publish("m/long", b"long", qos=1,
                    properties={P.MESSAGE_EXPIRY_INTERVAL: 20, P.CONTENT_TYPE: "c"})
        pub.publish("m/none", b"none", qos=1)
        self.env.flush()
        self.env.advance(8)
        sub = v5(self.env, "sub", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 1000})
        received = sub.publishes()
        self.assertEqual(
            [(p.topic, p.payload, dict(p.properties)) for p in received],
            [
                ("m/long", b"long", {P.MESSAGE_EXPIRY_INTERVAL: 12, P.CONTENT_TYPE: "c"}),
                ("m/none", b"none", {}),
            ],
        )

    def test_expiresExactlyAtInterval(self) -> None:
        """At exactly the Message Expiry Interval the message has expired."""
        pub = self.offlineSubscriber()
        pub.publish("m/x", b"x", qos=1, properties={P.MESSAGE_EXPIRY_INTERVAL: 5})
        self.env.flush()
        self.env.advance(5)
        sub = v5(self.env, "sub", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 1000})
        self.assertEqual(sub.publishes(), [])

    def test_expiredWhileWaitingForReceiveMaximum(self) -> None:
        """A message waiting behind a full Receive Maximum window expires there and is skipped; a live one is sent with the remaining interval."""
        sub = v5(self.env, "sub", autoAck=False, properties={P.RECEIVE_MAXIMUM: 1})
        subscribe(self.env, sub, "m/#", 1)
        pub = v5(self.env, "pub")
        pub.publish("m/1", b"first", qos=1)
        pub.publish("m/2", b"expires", qos=1, properties={P.MESSAGE_EXPIRY_INTERVAL: 3})
        pub.publish("m/3", b"lives", qos=1, properties={P.MESSAGE_EXPIRY_INTERVAL: 10})
        self.env.flush()
        [first] = sub.publishes()
        self.assertEqual(first.payload, b"first")
        self.env.advance(4)
        self.assertEqual(sub.publishes(), [])
        sub.send(Puback(first.packetId))  # type: ignore[arg-type]
        self.env.flush()
        [third] = sub.publishes()
        self.assertEqual((third.payload, dict(third.properties)),
                         (b"lives", {P.MESSAGE_EXPIRY_INTERVAL: 6}))

    def test_retainedMessageExpiry(self) -> None:
        """A retained message is replayed with the remaining interval, and not at all once expired [MQTT-3.3.2-5]."""
        pub = v5(self.env, "pub")
        pub.publish("m/r", b"kept", qos=1, retain=True,
                     properties={P.MESSAGE_EXPIRY_INTERVAL: 10})
        self.env.flush()
        self.env.advance(4)
        early = v5(self.env, "early")
        subscribe(self.env, early, "m/r", 1)
        [replay] = early.publishes()
        self.assertEqual((replay.payload, replay.retain, dict(replay.properties)),
                         (b"kept", True, {P.MESSAGE_EXPIRY_INTERVAL: 6}))
        self.env.advance(6)
        late = v5(self.env, "late")
        subscribe(self.env, late, "m/r", 1)
        self.assertEqual(late.publishes(), [])
        self.assertEqual(self.env.broker.retained("m/#"), [])

    def test_resentInflightCarriesRemainingExpiry(self) -> None:
        """An unacknowledged message resent after a reconnect carries the interval left at the resend."""
        sub = v5(self.env, "sub", autoAck=False, properties={P.SESSION_EXPIRY_INTERVAL: 100})
        subscribe(self.env, sub, "m/#", 1)
        pub = v5(self.env, "pub")
        pub.publish("m/x", b"x", qos=1, properties={P.MESSAGE_EXPIRY_INTERVAL: 50})
        self.env.flush()
        [first] = sub.publishes()
        self.assertEqual(dict(first.properties), {P.MESSAGE_EXPIRY_INTERVAL: 50})
        drop(self.env, sub)
        self.env.advance(20)
        again = v5(self.env, "sub", autoAck=False, cleanStart=False,
                   properties={P.SESSION_EXPIRY_INTERVAL: 100})
        [resent] = again.publishes()
        self.assertEqual((resent.dup, resent.packetId, dict(resent.properties)),
                         (True, first.packetId, {P.MESSAGE_EXPIRY_INTERVAL: 30}))


# ---------------------------------------------------------------------------
# Topic aliases
# ---------------------------------------------------------------------------


def resolveAliases(publishes: list[Publish]) -> list[str]:
    """
    What a client makes of the PUBLISHes it received: the topic of each,
    resolving Topic Aliases set on this connection (section 3.3.2.3.4).

    @raise AssertionError: for an empty topic with an unknown alias.
    """
    aliases: dict[int, str] = {}
    topics = []
    for p in publishes:
        alias = p.properties.get(P.TOPIC_ALIAS)
        if p.topic:
            if alias is not None:
                aliases[alias] = p.topic
            topics.append(p.topic)
        else:
            if alias not in aliases:
                raise AssertionError(f"empty topic with unknown alias {alias}: {p!r}")
            topics.append(aliases[alias])
    return topics


class InboundTopicAliasTests(_Base):
    """
    Topic aliases from the client to the broker (section 3.3.2.3.4), within
    the advertised Topic Alias Maximum (10 by default).
    """

    def setUp(self) -> None:
        super().setUp()
        self.sub = v5(self.env, "sub")
        subscribe(self.env, self.sub, "a/#", 0)
        self.pub = v5(self.env, "pub")

    def test_aliasSetThenUsed(self) -> None:
        """A topic + alias sets the alias; an empty topic + alias means that topic."""
        self.pub.publish("a/one", b"1", properties={P.TOPIC_ALIAS: 1})
        self.pub.publish("", b"2", properties={P.TOPIC_ALIAS: 1})
        self.pub.publish("a/ten", b"3", properties={P.TOPIC_ALIAS: 10})
        self.pub.publish("", b"4", properties={P.TOPIC_ALIAS: 10})
        self.pub.publish("", b"5", properties={P.TOPIC_ALIAS: 1})
        self.env.flush()
        self.assertEqual([(p.topic, p.payload) for p in self.sub.publishes()],
                         [("a/one", b"1"), ("a/one", b"2"), ("a/ten", b"3"), ("a/ten", b"4"),
                          ("a/one", b"5")])
        self.assertTrue(alive(self.pub))

    def test_aliasRemapped(self) -> None:
        """A topic + an alias already set replaces the mapping."""
        self.pub.publish("a/x", b"1", properties={P.TOPIC_ALIAS: 2})
        self.pub.publish("a/y", b"2", properties={P.TOPIC_ALIAS: 2})
        self.pub.publish("", b"3", properties={P.TOPIC_ALIAS: 2})
        self.env.flush()
        self.assertEqual([(p.topic, p.payload) for p in self.sub.publishes()],
                         [("a/x", b"1"), ("a/y", b"2"), ("a/y", b"3")])

    def test_aliasAboveMaximum(self) -> None:
        """An alias above the advertised maximum (10): DISCONNECT 0x94 [MQTT-3.3.2-9]."""
        self.pub.publish("a/x", b"1", properties={P.TOPIC_ALIAS: 11})
        self.env.flush()
        self.assertDisconnected(self.pub, 0x94)
        self.assertEqual(self.sub.publishes(), [])

    def test_aliasZero(self) -> None:
        """Topic Alias 0: DISCONNECT 0x94 [MQTT-3.3.2-8]."""
        self.pub.send(Publish("a/x", b"1", properties={P.TOPIC_ALIAS: 0}))
        self.env.flush()
        self.assertDisconnected(self.pub, 0x94)

    def test_unknownAlias(self) -> None:
        """An empty topic with an alias never set: DISCONNECT 0x82 (section 3.3.4)."""
        self.pub.publish("", b"1", properties={P.TOPIC_ALIAS: 4})
        self.env.flush()
        self.assertDisconnected(self.pub, 0x82)
        self.assertEqual(self.sub.publishes(), [])

    def test_aliasDoesNotSurviveConnection(self) -> None:
        """Aliases belong to one connection: after a reconnect (session kept) an alias of the old one is unknown [MQTT-3.3.2-7]."""
        pub = v5(self.env, "keeper", properties={P.SESSION_EXPIRY_INTERVAL: 100})
        pub.publish("a/x", b"1", properties={P.TOPIC_ALIAS: 1})
        self.env.flush()
        drop(self.env, pub)
        again = v5(self.env, "keeper", cleanStart=False,
                   properties={P.SESSION_EXPIRY_INTERVAL: 100})
        self.assertTrue(again.connack.sessionPresent)
        again.publish("", b"2", properties={P.TOPIC_ALIAS: 1})
        self.env.flush()
        self.assertDisconnected(again, 0x82)
        self.assertEqual([p.payload for p in self.sub.publishes()], [b"1"])

    def test_aliasesDisabled(self) -> None:
        """topic-alias-maximum 0: no Topic Alias Maximum in CONNACK; any alias gets DISCONNECT 0x94."""
        self.newBroker(topicAliasMaximum=0)
        pub = v5(self.env, "pub")
        self.assertNotIn(P.TOPIC_ALIAS_MAXIMUM, pub.connack.properties)
        pub.publish("a/x", b"1", properties={P.TOPIC_ALIAS: 1})
        self.env.flush()
        self.assertDisconnected(pub, 0x94)

    def test_configuredMaximum(self) -> None:
        """topic-alias-maximum 3 is advertised, 3 accepted and 4 refused with 0x94."""
        self.newBroker(topicAliasMaximum=3)
        sub = v5(self.env, "sub")
        subscribe(self.env, sub, "a/#", 0)
        pub = v5(self.env, "pub")
        self.assertEqual(pub.connack.properties[P.TOPIC_ALIAS_MAXIMUM], 3)
        pub.publish("a/x", b"1", properties={P.TOPIC_ALIAS: 3})
        pub.publish("a/y", b"2", properties={P.TOPIC_ALIAS: 4})
        self.env.flush()
        self.assertEqual([p.payload for p in sub.publishes()], [b"1"])
        self.assertDisconnected(pub, 0x94)


class OutboundTopicAliasTests(_Base):
    """
    Topic aliases from the broker to a client that advertised a Topic Alias
    Maximum (section 3.3.2.3.4): the first topics sent get aliases 1..max,
    the first PUBLISH of each carries topic and alias, later ones an empty
    topic and the alias.
    """

    def subscriber(self, clientId: str = "sub", aliasMaximum: int | None = 2,
                   **props: Any) -> MQTTTestClient:
        properties = {getattr(P, k): v for k, v in props.items()}
        if aliasMaximum is not None:
            properties[P.TOPIC_ALIAS_MAXIMUM] = aliasMaximum
        sub = v5(self.env, clientId, properties=properties)
        subscribe(self.env, sub, "o/#", 0)
        return sub

    def publishTopics(self, *topics: str, payload: bytes = b"p", qos: int = 0) -> None:
        for topic in topics:
            self.env.broker.publish(topic, payload, qos=qos)
        self.env.flush()

    def test_aliasesAssignedInOrder(self) -> None:
        """Maximum 2: o/a and o/b get aliases 1 and 2, o/c none; repeats use an empty topic and the alias."""
        sub = self.subscriber()
        self.publishTopics("o/a", "o/b", "o/c", "o/a", "o/b", "o/c", "o/a")
        self.assertEqual(
            [(p.topic, p.properties.get(P.TOPIC_ALIAS)) for p in sub.publishes()],
            [("o/a", 1), ("o/b", 2), ("o/c", None), ("", 1), ("", 2), ("o/c", None), ("", 1)],
        )

    def test_noAliasesWithoutClientMaximum(self) -> None:
        """A client that sent no Topic Alias Maximum never gets a Topic Alias [MQTT-3.3.2-11]."""
        sub = self.subscriber(aliasMaximum=None)
        self.publishTopics("o/a", "o/a", "o/b")
        received = sub.publishes()
        self.assertEqual([p.topic for p in received], ["o/a", "o/a", "o/b"])
        self.assertEqual([dict(p.properties) for p in received], [{}, {}, {}])

    def test_newAliasesAfterReconnect(self) -> None:
        """Aliases start again on a new connection: the first PUBLISH of a topic carries it again [MQTT-3.3.2-7]."""
        sub = self.subscriber(SESSION_EXPIRY_INTERVAL=100)
        self.publishTopics("o/a", "o/a")
        self.assertEqual([p.topic for p in sub.publishes()], ["o/a", ""])
        drop(self.env, sub)
        again = v5(self.env, "sub", cleanStart=False,
                   properties={P.SESSION_EXPIRY_INTERVAL: 100, P.TOPIC_ALIAS_MAXIMUM: 2})
        self.publishTopics("o/b", "o/a", "o/a")
        self.assertEqual(
            [(p.topic, p.properties.get(P.TOPIC_ALIAS)) for p in again.publishes()],
            [("o/b", 1), ("o/a", 2), ("", 2)],
        )

    def test_resentMessageCarriesTopic(self) -> None:
        """An unacknowledged message resent on a new connection carries its topic name, and later PUBLISHes resolve."""
        sub = v5(self.env, "sub", autoAck=False,
                 properties={P.SESSION_EXPIRY_INTERVAL: 100, P.TOPIC_ALIAS_MAXIMUM: 2})
        subscribe(self.env, sub, "o/#", 1)
        self.publishTopics("o/a", qos=1)
        [first] = sub.publishes()
        self.assertEqual((first.topic, first.properties.get(P.TOPIC_ALIAS)), ("o/a", 1))
        drop(self.env, sub)
        again = v5(self.env, "sub", cleanStart=False,
                   properties={P.SESSION_EXPIRY_INTERVAL: 100, P.TOPIC_ALIAS_MAXIMUM: 2})
        self.publishTopics("o/a", "o/a", qos=1)
        received = again.publishes()
        self.assertEqual((received[0].topic, received[0].dup), ("o/a", True))
        self.assertEqual(resolveAliases(received), ["o/a", "o/a", "o/a"])

    def test_droppedForSizeConsumesNoAlias(self) -> None:
        """A message too large for the client is dropped without using an alias: the next topics get 1 and 2 [MQTT-3.1.2-24, -25]."""
        sub = self.subscriber(aliasMaximum=5, MAXIMUM_PACKET_SIZE=64)
        self.env.broker.publish("o/big", b"x" * 100)
        self.publishTopics("o/small", "o/big", "o/big")
        received = sub.publishes()
        self.assertEqual(
            [(p.topic, p.properties.get(P.TOPIC_ALIAS), p.payload) for p in received],
            [("o/small", 1, b"p"), ("o/big", 2, b"p"), ("", 2, b"p")],
        )
        self.assertTrue(alive(sub))

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(min_value=0, max_value=3),
           st.lists(st.sampled_from(["o/a", "o/b", "o/c", "o/d", "o/e"]), max_size=15))
    def test_aliasModel(self, maximum: int, topics: list[str]) -> None:
        """For any topic sequence, aliases follow the model (first topics get 1..max) and every PUBLISH resolves to its topic."""
        self.env = InMemoryBroker()
        sub = self.subscriber(aliasMaximum=maximum or None)
        self.publishTopics(*topics)
        received = sub.publishes()
        self.assertEqual(resolveAliases(received), topics)
        assigned: dict[str, int] = {}
        expected = []
        for topic in topics:
            if topic in assigned:
                expected.append(("", assigned[topic]))
            elif len(assigned) < maximum:
                assigned[topic] = len(assigned) + 1
                expected.append((topic, assigned[topic]))
            else:
                expected.append((topic, None))
        self.assertEqual([(p.topic, p.properties.get(P.TOPIC_ALIAS)) for p in received], expected)


# ---------------------------------------------------------------------------
# Subscription options and identifiers
# ---------------------------------------------------------------------------


class SubscriptionOptionTests(_Base):
    """
    No Local, Retain As Published, Retain Handling (section 3.8.3.1) and
    Subscription Identifiers (section 3.8.2.1.2, 3.3.4).
    """

    def test_noLocal(self) -> None:
        """No Local: the client's own messages are not delivered to it, others' are [MQTT-3.8.3-3]."""
        client = v5(self.env, "me")
        subscribe(self.env, client, "n/t", 1, noLocal=True)
        other = v5(self.env, "other")
        client.publish("n/t", b"mine", qos=1)
        other.publish("n/t", b"theirs", qos=1)
        self.env.flush()
        self.assertEqual([p.payload for p in client.publishes()], [b"theirs"])

    def test_noLocalOnlyForThatSubscription(self) -> None:
        """An overlapping subscription without No Local still delivers the client's own message, with only its identifier."""
        client = v5(self.env, "me")
        subscribe(self.env, client, "n/#", 1, subscriptionId=1, noLocal=True)
        subscribe(self.env, client, "n/t", 1, subscriptionId=2)
        client.publish("n/t", b"mine", qos=1)
        self.env.flush()
        [received] = client.publishes()
        self.assertEqual(dict(received.properties), {P.SUBSCRIPTION_IDENTIFIER: (2,)})

    def test_retainAsPublished(self) -> None:
        """Retain As Published 1 keeps RETAIN on a live delivery; 0 clears it [MQTT-3.3.1-12, -13]."""
        kept = v5(self.env, "kept")
        subscribe(self.env, kept, "r/t", 1, retainAsPublished=True)
        cleared = v5(self.env, "cleared")
        subscribe(self.env, cleared, "r/t", 1)
        pub = v5(self.env, "pub")
        pub.publish("r/t", b"live", qos=1, retain=True)
        pub.publish("r/t", b"plain", qos=1)
        self.env.flush()
        self.assertEqual([(p.payload, p.retain) for p in kept.publishes()],
                         [(b"live", True), (b"plain", False)])
        self.assertEqual([(p.payload, p.retain) for p in cleared.publishes()],
                         [(b"live", False), (b"plain", False)])

    def retainedSetup(self) -> MQTTTestClient:
        self.env.broker.publish("r/t", b"retained", qos=1, retain=True)
        return v5(self.env, "sub")

    def subscribeTwice(self, retainHandling: int) -> tuple[list[Publish], list[Publish]]:
        sub = self.retainedSetup()
        subscribe(self.env, sub, "r/#", 1, retainHandling=retainHandling)
        first = sub.publishes()
        subscribe(self.env, sub, "r/#", 1, retainHandling=retainHandling)
        return first, sub.publishes()

    def test_retainHandling0(self) -> None:
        """Retain Handling 0: retained messages at every SUBSCRIBE, with RETAIN 1 [MQTT-3.3.1-9]."""
        first, second = self.subscribeTwice(0)
        self.assertEqual([(p.payload, p.retain) for p in first], [(b"retained", True)])
        self.assertEqual([(p.payload, p.retain) for p in second], [(b"retained", True)])

    def test_retainHandling1(self) -> None:
        """Retain Handling 1: retained messages only when the subscription is new [MQTT-3.3.1-10]."""
        first, second = self.subscribeTwice(1)
        self.assertEqual([(p.payload, p.retain) for p in first], [(b"retained", True)])
        self.assertEqual(second, [])

    def test_retainHandling2(self) -> None:
        """Retain Handling 2: no retained messages at SUBSCRIBE [MQTT-3.3.1-11]."""
        first, second = self.subscribeTwice(2)
        self.assertEqual((first, second), ([], []))

    def test_retainHandling2StillGetsLiveMessages(self) -> None:
        """Retain Handling 2 only affects the replay: live messages arrive."""
        sub = self.retainedSetup()
        subscribe(self.env, sub, "r/#", 1, retainHandling=2)
        self.env.broker.publish("r/t", b"live", qos=1)
        self.env.flush()
        self.assertEqual([p.payload for p in sub.publishes()], [b"live"])

    def test_subscriptionIdentifier(self) -> None:
        """A matching subscription's identifier is in the PUBLISH [MQTT-3.3.4-3]; one without none."""
        withId = v5(self.env, "with")
        subscribe(self.env, withId, "i/#", 1, subscriptionId=268435455)
        withoutId = v5(self.env, "without")
        subscribe(self.env, withoutId, "i/#", 1)
        self.env.broker.publish("i/t", b"x", qos=1)
        self.env.flush()
        [a] = withId.publishes()
        [b] = withoutId.publishes()
        self.assertEqual(dict(a.properties), {P.SUBSCRIPTION_IDENTIFIER: (268435455,)})
        self.assertEqual(dict(b.properties), {})

    def test_overlappingSubscriptionIdentifiers(self) -> None:
        """Overlapping subscriptions of one client: one PUBLISH carrying every matching identifier [MQTT-3.3.4-4, -5]."""
        sub = v5(self.env, "sub")
        subscribe(self.env, sub, "i/#", 0, subscriptionId=1)
        subscribe(self.env, sub, "i/+", 2, subscriptionId=2)
        subscribe(self.env, sub, "i/t", 1)
        subscribe(self.env, sub, "i/x", 1, subscriptionId=3)
        self.env.broker.publish("i/t", b"x", qos=2)
        self.env.flush()
        [received] = sub.publishes()
        self.assertEqual(received.qos, 2)
        self.assertEqual(set(received.properties), {P.SUBSCRIPTION_IDENTIFIER})
        self.assertEqual(sorted(received.properties[P.SUBSCRIPTION_IDENTIFIER]), [1, 2])

    def test_identifierReplacedByNewSubscribe(self) -> None:
        """Subscribing again to a filter with another identifier replaces it."""
        sub = v5(self.env, "sub")
        subscribe(self.env, sub, "i/t", 1, subscriptionId=5)
        subscribe(self.env, sub, "i/t", 1, subscriptionId=6)
        self.env.broker.publish("i/t", b"x", qos=1)
        self.env.flush()
        [received] = sub.publishes()
        self.assertEqual(dict(received.properties), {P.SUBSCRIPTION_IDENTIFIER: (6,)})

    def test_identifierOnRetainedReplay(self) -> None:
        """A retained message sent because of a subscription carries its identifier."""
        sub = self.retainedSetup()
        subscribe(self.env, sub, "r/+", 1, subscriptionId=9)
        [replay] = sub.publishes()
        self.assertEqual((replay.retain, dict(replay.properties)),
                         (True, {P.SUBSCRIPTION_IDENTIFIER: (9,)}))

    def test_identifiersNotSupported(self) -> None:
        """subscription-identifiers no: CONNACK says 0, and a SUBSCRIBE with one gets DISCONNECT 0xA1 (sections 3.2.2.3.13, 3.8.2.1.2)."""
        self.newBroker(subscriptionIdentifiers=False)
        sub = v5(self.env, "sub")
        self.assertEqual(dict(sub.connack.properties),
                         {**DEFAULT_CONNACK, P.SUBSCRIPTION_IDENTIFIER_AVAILABLE: 0})
        sub.subscribe("i/t", 1, {P.SUBSCRIPTION_IDENTIFIER: (1,)})
        self.env.flush()
        self.assertDisconnected(sub, 0xA1)

    def test_subackReasonCodesPerFilter(self) -> None:
        """SUBACK has one reason code per filter: the granted QoS, or 0x8F for an invalid filter [MQTT-3.9.3-1]."""
        sub = v5(self.env, "sub")
        requests = (
            SubscriptionRequest("f/a", 0),
            SubscriptionRequest("f/+", 1),
            SubscriptionRequest("f/#", 2),
            SubscriptionRequest("f/#/x", 1),
            SubscriptionRequest("$share/g/f/s", 1),
            SubscriptionRequest("$share/g", 1),
            SubscriptionRequest("f/x+", 0),
        )
        sub.send(Subscribe(7, requests))
        self.env.flush()
        [suback] = sub.take()
        self.assertIsInstance(suback, Suback)
        assert isinstance(suback, Suback)
        self.assertEqual((suback.packetId, suback.reasonCodes),
                         (7, (0, 1, 2, 0x8F, 1, 0x8F, 0x8F)))
        self.assertIn(P.REASON_STRING, suback.properties)

    def test_unsubackReasonCodes(self) -> None:
        """UNSUBACK: 0x00 for a filter that was subscribed, 0x11 for one that was not [MQTT-3.11.3-1]."""
        sub = v5(self.env, "sub")
        subscribe(self.env, sub, "u/a", 1)
        subscribe(self.env, sub, "$share/g/u/b", 1)
        packetId = sub.unsubscribe("u/a", "u/none", "$share/g/u/b", "$share/h/u/b")
        self.env.flush()
        self.assertEqual(sub.take(), [Unsuback(packetId, (0x00, 0x11, 0x00, 0x11))])


# ---------------------------------------------------------------------------
# Shared subscriptions
# ---------------------------------------------------------------------------


class SharedSubscriptionTests(_Base):
    """
    Shared subscriptions C{$share/{group}/{filter}} (section 4.8.2).
    """

    def members(self, *clientIds: str, expiry: int = 0, autoAck: bool = True,
                group: str = "g", **props: Any) -> list[MQTTTestClient]:
        clients = []
        properties = {getattr(P, k): v for k, v in props.items()}
        if expiry:
            properties[P.SESSION_EXPIRY_INTERVAL] = expiry
        for clientId in clientIds:
            client = v5(self.env, clientId, autoAck=autoAck, properties=properties)
            self.assertEqual(subscribe(self.env, client, f"$share/{group}/sh/#", 1).reasonCodes,
                             (1,))
            clients.append(client)
        return clients

    def publishNumbered(self, count: int, qos: int = 1, start: int = 0) -> None:
        for i in range(start, start + count):
            self.env.broker.publish("sh/t", b"%d" % i, qos=qos)
        self.env.flush()

    @staticmethod
    def numbers(client: MQTTTestClient) -> list[int]:
        return [int(p.payload) for p in client.publishes()]

    def test_roundRobin(self) -> None:
        """Each message goes to exactly one member, in turn: with 3 members each gets every third message."""
        clients = self.members("a", "b", "c")
        self.publishNumbered(9)
        got = [self.numbers(c) for c in clients]
        self.assertEqual(sorted(n for g in got for n in g), list(range(9)))
        for numbers in got:
            self.assertEqual(len(numbers), 3, got)
            self.assertEqual({n % 3 for n in numbers}.__len__(), 1, got)

    def test_qos0RoundRobin(self) -> None:
        """QoS 0 messages are shared the same way."""
        clients = self.members("a", "b")
        self.publishNumbered(4, qos=0)
        got = sorted(self.numbers(c) for c in clients)
        self.assertEqual(got, [[0, 2], [1, 3]])

    def test_groupAndPlainSubscribers(self) -> None:
        """A non-shared subscriber and every group each get every message once."""
        g1 = self.members("a", "b", group="one")
        g2 = self.members("c", group="two")
        plain = v5(self.env, "plain")
        subscribe(self.env, plain, "sh/#", 1)
        self.publishNumbered(4)
        self.assertEqual(sorted(n for c in g1 for n in self.numbers(c)), [0, 1, 2, 3])
        self.assertEqual(self.numbers(g2[0]), [0, 1, 2, 3])
        self.assertEqual(self.numbers(plain), [0, 1, 2, 3])

    def test_onlyConnectedMembers(self) -> None:
        """A member whose session is offline is skipped: the connected one gets everything."""
        a, b = self.members("a", "b", expiry=100)
        drop(self.env, b)
        self.publishNumbered(4)
        self.assertEqual(self.numbers(a), [0, 1, 2, 3])

    def test_noRetainedForSharedSubscription(self) -> None:
        """A new shared subscription gets no retained messages (section 4.8.2)."""
        self.env.broker.publish("sh/t", b"retained", qos=1, retain=True)
        [a] = self.members("a")
        self.assertEqual(a.publishes(), [])

    def test_groupQueueDrainedByNextMember(self) -> None:
        """With no member connected, QoS 1/2 messages wait in the group; QoS 0 is dropped; the next member to connect gets them."""
        a, b = self.members("a", "b", expiry=100)
        drop(self.env, a)
        drop(self.env, b)
        self.env.broker.publish("sh/t", b"q0", qos=0)
        self.env.broker.publish("sh/t", b"q1", qos=1)
        self.env.broker.publish("sh/t", b"q2", qos=2)
        self.env.flush()
        again = v5(self.env, "b", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 100})
        self.assertEqual([(p.payload, p.qos) for p in again.publishes()],
                         [(b"q1", 1), (b"q2", 1)])
        other = v5(self.env, "a", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 100})
        self.assertEqual(other.publishes(), [])

    def test_groupQueueDrainedByNewSubscriber(self) -> None:
        """A client that joins the group by SUBSCRIBE gets the group's queued messages."""
        [a] = self.members("a", expiry=100)
        drop(self.env, a)
        self.publishNumbered(2)
        [b] = self.members("b")
        self.assertEqual(self.numbers(b), [0, 1])

    def test_groupQueueBounded(self) -> None:
        """The group queue holds at most max-queued-messages (here 3): the oldest are kept."""
        self.newBroker(maxQueuedMessages=3)
        [a] = self.members("a", expiry=100)
        drop(self.env, a)
        self.publishNumbered(5)
        again = v5(self.env, "a", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 100})
        self.assertEqual(self.numbers(again), [0, 1, 2])

    def test_groupQueueMessageExpiry(self) -> None:
        """A message that expires in the group queue is not delivered."""
        [a] = self.members("a", expiry=100)
        drop(self.env, a)
        self.env.broker.publish("sh/t", b"short", qos=1,
                                properties={P.MESSAGE_EXPIRY_INTERVAL: 2})
        self.env.broker.publish("sh/t", b"long", qos=1,
                                properties={P.MESSAGE_EXPIRY_INTERVAL: 20})
        self.env.advance(5)
        again = v5(self.env, "a", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 100})
        self.assertEqual([(p.payload, dict(p.properties)) for p in again.publishes()],
                         [(b"long", {P.MESSAGE_EXPIRY_INTERVAL: 15})])

    def heldByA(self, bExpiry: int = 0) -> tuple[MQTTTestClient, MQTTTestClient, list[Publish]]:
        """
        a (Receive Maximum 1, never acking, session expiry 10) holds message
        0 in flight and 2 queued; b got 1; then a's connection drops.
        """
        a = v5(self.env, "a", autoAck=False,
               properties={P.SESSION_EXPIRY_INTERVAL: 10, P.RECEIVE_MAXIMUM: 1})
        subscribe(self.env, a, "$share/g/sh/#", 1)
        b = v5(self.env, "b", properties={P.SESSION_EXPIRY_INTERVAL: bExpiry} if bExpiry else {})
        subscribe(self.env, b, "$share/g/sh/#", 1)
        self.publishNumbered(3)
        aGot = a.publishes()
        self.assertEqual([int(p.payload) for p in aGot], [0])
        self.assertEqual(self.numbers(b), [1])
        drop(self.env, a)
        return a, b, aGot

    def test_heldMessagesStayWhileSessionLives(self) -> None:
        """A member's unacknowledged and queued messages stay with its session: the others do not get them, it does on reconnect."""
        _, b, aGot = self.heldByA()
        self.publishNumbered(1, start=3)
        self.env.advance(9)
        self.assertEqual(self.numbers(b), [3])
        again = v5(self.env, "a", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 10})
        received = again.publishes()
        self.assertEqual([(int(p.payload), p.dup) for p in received], [(0, True), (2, False)])
        self.assertEqual(received[0].packetId, aGot[0].packetId)
        self.assertEqual(self.numbers(b), [])

    def test_heldMessagesRedistributedWhenSessionEnds(self) -> None:
        """When a member's session expires, its unacknowledged and queued messages go to another member (section 4.8.2)."""
        _, b, _ = self.heldByA()
        self.env.advance(9.9)
        self.assertEqual(self.numbers(b), [])
        self.env.advance(0.1)
        self.assertEqual(sorted(self.numbers(b)), [0, 2])

    def test_heldMessagesRedistributedOnCleanStartTakeover(self) -> None:
        """A member that reconnects with Clean Start 1 ends its old session: its held messages go to another member."""
        _, b, _ = self.heldByA()
        again = v5(self.env, "a", cleanStart=True)
        self.assertEqual(again.publishes(), [])
        self.assertEqual(sorted(self.numbers(b)), [0, 2])

    def test_heldMessagesQueuedInGroupWhenNoMemberConnected(self) -> None:
        """Held messages of an ending session with no other member connected wait in the group queue for the next one."""
        _, b, _ = self.heldByA(bExpiry=100)
        drop(self.env, b)
        self.env.advance(10)
        again = v5(self.env, "b", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 100})
        self.assertEqual(sorted(self.numbers(again)), [0, 2])

    def test_noLocalOnSharedSubscription(self) -> None:
        """No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82 [MQTT-3.8.3-4]."""
        client = v5(self.env, "a")
        client.subscribe("$share/g/sh/#", 1, noLocal=True)
        self.env.flush()
        self.assertDisconnected(client, 0x82)

    def test_sharedSubscriptionsDisabled(self) -> None:
        """shared-subscriptions no: CONNACK says 0, other filters are granted, and a SUBSCRIBE with a shared filter is a Protocol Error: DISCONNECT 0x9E (section 3.2.2.3.13)."""
        self.newBroker(sharedSubscriptions=False)
        client = v5(self.env, "a")
        self.assertEqual(dict(client.connack.properties),
                         {**DEFAULT_CONNACK, P.SHARED_SUBSCRIPTION_AVAILABLE: 0})
        self.assertEqual(subscribe(self.env, client, "sh/#", 1).reasonCodes, (1,))
        client.send(Subscribe(2, (SubscriptionRequest("$share/g/sh/#", 1),
                                  SubscriptionRequest("sh/t", 1))))
        self.env.flush()
        self.assertDisconnected(client, 0x9E)


# ---------------------------------------------------------------------------
# Flow control
# ---------------------------------------------------------------------------


class FlowControlTests(_Base):
    """
    Receive Maximum (section 4.9) and Maximum Packet Size (3.1.2.11.4,
    3.2.2.3.6) in both directions.
    """

    def test_receiveMaximumTowardsClient(self) -> None:
        """Receive Maximum 2: never more than 2 unacknowledged QoS 1 PUBLISHes; each PUBACK lets one more go [MQTT-3.3.4-9]."""
        sub = v5(self.env, "sub", autoAck=False, properties={P.RECEIVE_MAXIMUM: 2})
        subscribe(self.env, sub, "f/#", 1)
        for i in range(5):
            self.env.broker.publish("f/t", b"%d" % i, qos=1)
        self.env.flush()
        outstanding = sub.publishes()
        self.assertEqual([p.payload for p in outstanding], [b"0", b"1"])
        delivered = [b"0", b"1"]
        while outstanding:
            sub.send(Puback(outstanding.pop(0).packetId))  # type: ignore[arg-type]
            self.env.flush()
            more = sub.publishes()
            self.assertLessEqual(len(more), 1)
            outstanding.extend(more)
            delivered.extend(p.payload for p in more)
            self.assertLessEqual(len(outstanding), 2)
        self.assertEqual(delivered, [b"0", b"1", b"2", b"3", b"4"])

    def test_receiveMaximumCountsQos2UntilPubcomp(self) -> None:
        """Receive Maximum 1: a QoS 2 message occupies the window until PUBCOMP, not PUBREC."""
        sub = v5(self.env, "sub", autoAck=False, properties={P.RECEIVE_MAXIMUM: 1})
        subscribe(self.env, sub, "f/#", 2)
        self.env.broker.publish("f/t", b"a", qos=2)
        self.env.broker.publish("f/t", b"b", qos=2)
        self.env.flush()
        [first] = sub.take()
        assert isinstance(first, Publish) and first.packetId is not None
        self.assertEqual(first.payload, b"a")
        sub.send(Pubrec(first.packetId))
        self.env.flush()
        self.assertEqual(sub.take(), [Pubrel(first.packetId)])
        sub.send(Pubcomp(first.packetId))
        self.env.flush()
        self.assertEqual([p.payload for p in sub.publishes()], [b"b"])

    def test_receiveMaximumAdvertised(self) -> None:
        """The broker's Receive Maximum (receive-maximum, default 20) is in CONNACK; 65535 is the default and omitted."""
        self.assertEqual(v5(self.env, "a").connack.properties[P.RECEIVE_MAXIMUM], 20)
        self.newBroker(receiveMaximum=5)
        self.assertEqual(v5(self.env, "a").connack.properties[P.RECEIVE_MAXIMUM], 5)
        self.newBroker(receiveMaximum=65535)
        self.assertNotIn(P.RECEIVE_MAXIMUM, v5(self.env, "a").connack.properties)

    def sendQos2(self, client: MQTTTestClient, count: int) -> None:
        for i in range(count):
            client.publish("f/t", b"%d" % i, qos=2)
        self.env.flush()

    def test_clientExceedingReceiveMaximum(self) -> None:
        """A client with 21 QoS 2 messages unfinished (ours is 20): DISCONNECT 0x93 [section 3.3.4]."""
        pub = v5(self.env, "pub", autoAck=False)
        self.sendQos2(pub, 21)
        packets = pub.received[:]
        # 0x10: no matching subscribers (section 3.5.2.1).
        self.assertEqual([p for p in packets if isinstance(p, Pubrec)],
                         [Pubrec(i, 0x10) for i in range(1, 21)])
        self.assertDisconnected(pub, 0x93)

    def test_clientWithinReceiveMaximum(self) -> None:
        """Exactly Receive Maximum (20) QoS 2 messages unfinished is allowed; finishing one allows another."""
        pub = v5(self.env, "pub", autoAck=False)
        self.sendQos2(pub, 20)
        pub.take()
        pub.send(Pubrel(1))
        self.env.flush()
        self.assertEqual(pub.take(), [Pubcomp(1)])
        pub.publish("f/t", b"more", qos=2, packetId=1)
        self.env.flush()
        self.assertEqual(pub.take(), [Pubrec(1, 0x10)])
        self.assertTrue(alive(pub))

    def test_configuredReceiveMaximumEnforced(self) -> None:
        """receive-maximum 2: the third unfinished QoS 2 message gets DISCONNECT 0x93."""
        self.newBroker(receiveMaximum=2)
        pub = v5(self.env, "pub", autoAck=False)
        self.sendQos2(pub, 3)
        self.assertDisconnected(pub, 0x93)

    def test_outboundMaximumPacketSize(self) -> None:
        """A message larger than the client's Maximum Packet Size is dropped for it alone; the connection stays [MQTT-3.1.2-24, -25]."""
        small = v5(self.env, "small", properties={P.MAXIMUM_PACKET_SIZE: 64})
        subscribe(self.env, small, "f/t", 0)
        big = v5(self.env, "big")
        subscribe(self.env, big, "f/t", 0)
        # A v5 QoS 0 PUBLISH to "f/t" without properties is 2 + 5 + 1 + len(payload) bytes.
        for size in (56, 57, 10):
            self.env.broker.publish("f/t", b"x" * size)
        self.env.flush()
        self.assertEqual([len(p.payload) for p in small.publishes()], [56, 10])
        self.assertEqual([len(p.payload) for p in big.publishes()], [56, 57, 10])
        self.assertTrue(alive(small))

    def test_outboundMaximumPacketSizeQos1(self) -> None:
        """A QoS 1 message too large for the client is dropped, not left in flight: the next one is sent."""
        sub = v5(self.env, "sub", autoAck=False,
                 properties={P.MAXIMUM_PACKET_SIZE: 64, P.RECEIVE_MAXIMUM: 1})
        subscribe(self.env, sub, "f/t", 1)
        self.env.broker.publish("f/t", b"x" * 100, qos=1)
        self.env.broker.publish("f/t", b"fits", qos=1)
        self.env.flush()
        self.assertEqual([p.payload for p in sub.publishes()], [b"fits"])

    def test_inboundPacketTooLarge(self) -> None:
        """max-packet-size 128: a 129-byte PUBLISH gets DISCONNECT 0x95, a 128-byte one passes [MQTT-3.2.2-15]."""
        self.newBroker(maxPacketSize=128)
        sub = v5(self.env, "sub")
        subscribe(self.env, sub, "f/#", 0)
        pub = v5(self.env, "pub")
        self.assertEqual(pub.connack.properties[P.MAXIMUM_PACKET_SIZE], 128)
        # 2 (fixed header) + 5 ("f/t") + 1 (properties) + payload.
        pub.publish("f/t", b"x" * 120)
        self.env.flush()
        self.assertEqual([len(p.payload) for p in sub.publishes()], [120])
        pub.publish("f/t", b"x" * 121)
        self.env.flush()
        self.assertDisconnected(pub, 0x95)
        self.assertEqual(sub.publishes(), [])

    def test_maximumPacketSizeOmittedWhenProtocolMaximum(self) -> None:
        """max-packet-size at the protocol limit (268435460): no Maximum Packet Size in CONNACK."""
        self.newBroker(maxPacketSize=268435460)
        self.assertNotIn(P.MAXIMUM_PACKET_SIZE, v5(self.env, "a").connack.properties)


# ---------------------------------------------------------------------------
# CONNACK and capabilities
# ---------------------------------------------------------------------------


class TinyMaximumPacketSizeTests(_Base):
    """
    A client whose Maximum Packet Size is too small for any CONNACK
    [MQTT-3.1.2-24].
    """

    def test_refusedBeforeTouchingTheSession(self) -> None:
        """It is closed without a CONNACK and does not take over the live session of its id."""
        live = v5(self.env, "same", will=Will("w/same", b"gone"))
        watcher = v5(self.env, "watcher")
        subscribe(self.env, watcher, "w/#", 0)
        tiny = self.openV5("same", properties={P.MAXIMUM_PACKET_SIZE: 2})
        self.assertEqual(tiny.take(), [])
        self.assertTrue(tiny.closed)
        self.assertFalse(live.closed)
        self.assertEqual(live.take(), [])
        self.assertEqual(watcher.publishes(), [])
        self.assertIs(self.env.broker.connections["same"], self.env.serverFor(live))


class ConnackTests(_Base):
    """
    CONNACK properties advertised from the configuration (section 3.2.2.3),
    and each capability option's effect.
    """

    def connackWith(self, **settings: Any) -> dict[int, Any]:
        self.newBroker(**settings)
        return dict(v5(self.env, "c").connack.properties)

    def test_defaults(self) -> None:
        """Default settings: Receive Maximum 20, Maximum Packet Size 1 MiB, Topic Alias Maximum 10, nothing else."""
        client = v5(self.env, "c")
        self.assertEqual(client.connack, Connack(False, 0, DEFAULT_CONNACK))

    def test_capabilityAdvertisements(self) -> None:
        """Each capability that differs from the protocol default is advertised, with the configured value."""
        cases = [
            ({"maximumQos": 1}, {P.MAXIMUM_QOS: 1}),
            ({"maximumQos": 0}, {P.MAXIMUM_QOS: 0}),
            ({"retainAvailable": False}, {P.RETAIN_AVAILABLE: 0}),
            ({"wildcardSubscriptions": False}, {P.WILDCARD_SUBSCRIPTION_AVAILABLE: 0}),
            ({"sharedSubscriptions": False}, {P.SHARED_SUBSCRIPTION_AVAILABLE: 0}),
            ({"subscriptionIdentifiers": False}, {P.SUBSCRIPTION_IDENTIFIER_AVAILABLE: 0}),
            ({"topicAliasMaximum": 65535}, {P.TOPIC_ALIAS_MAXIMUM: 65535}),
            ({"receiveMaximum": 1}, {P.RECEIVE_MAXIMUM: 1}),
            ({"maxPacketSize": 4096}, {P.MAXIMUM_PACKET_SIZE: 4096}),
        ]
        for changes, expected in cases:
            self.assertEqual(self.connackWith(**changes), {**DEFAULT_CONNACK, **expected},
                             changes)

    def test_protocolDefaultsNotSent(self) -> None:
        """Maximum QoS 2 and the available flags at 1 are the protocol defaults and are not sent [section 3.2.2.3]."""
        props = self.connackWith(maximumQos=2, retainAvailable=True, wildcardSubscriptions=True,
                                 sharedSubscriptions=True, subscriptionIdentifiers=True)
        for absent in (P.MAXIMUM_QOS, P.RETAIN_AVAILABLE, P.WILDCARD_SUBSCRIPTION_AVAILABLE,
                       P.SHARED_SUBSCRIPTION_AVAILABLE, P.SUBSCRIPTION_IDENTIFIER_AVAILABLE):
            self.assertNotIn(absent, props)

    def test_maximumQos1(self) -> None:
        """maximum-qos 1: a SUBSCRIBE for QoS 2 is granted 1, a QoS 2 PUBLISH gets DISCONNECT 0x9B (section 3.2.2.3.4)."""
        self.newBroker(maximumQos=1)
        client = v5(self.env, "c")
        self.assertEqual(subscribe(self.env, client, "q/t", 2).reasonCodes, (1,))
        client.publish("q/t", b"one", qos=1)
        self.env.flush()
        self.assertEqual([(p.payload, p.qos) for p in client.publishes()], [(b"one", 1)])
        client.publish("q/t", b"two", qos=2)
        self.env.flush()
        self.assertDisconnected(client, 0x9B)

    def test_maximumQos0(self) -> None:
        """maximum-qos 0: a QoS 1 PUBLISH gets DISCONNECT 0x9B."""
        self.newBroker(maximumQos=0)
        client = v5(self.env, "c")
        self.assertEqual(subscribe(self.env, client, "q/t", 1).reasonCodes, (0,))
        client.publish("q/t", b"x", qos=1)
        self.env.flush()
        self.assertDisconnected(client, 0x9B)

    def test_maximumQosWill(self) -> None:
        """maximum-qos 1: a will with QoS 2 gets CONNACK 0x9B (section 3.2.2.3.4)."""
        self.newBroker(maximumQos=1)
        client = self.openV5("c", will=Will("w/t", b"w", qos=2))
        self.assertRefused(client, 0x9B)

    def test_retainNotAvailable(self) -> None:
        """retain-available no: a retained PUBLISH gets DISCONNECT 0x9A, a retained will CONNACK 0x9A (section 3.2.2.3.5)."""
        self.newBroker(retainAvailable=False)
        client = v5(self.env, "c")
        client.publish("r/t", b"x", qos=1, retain=True)
        self.env.flush()
        self.assertDisconnected(client, 0x9A)
        self.assertEqual(self.env.broker.retained(), [])
        willer = self.openV5("w", will=Will("w/t", b"w", retain=True))
        self.assertRefused(willer, 0x9A)

    def test_wildcardsNotAvailable(self) -> None:
        """wildcard-subscriptions no: CONNACK says 0, plain filters are granted, and a SUBSCRIBE with + or # (shared or not) is a Protocol Error: DISCONNECT 0xA2 (section 3.2.2.3.11)."""
        self.newBroker(wildcardSubscriptions=False)
        for clientId, topicFilter in [("c1", "w/+"), ("c2", "w/#"), ("c3", "$share/g/w/+")]:
            client = v5(self.env, clientId)
            self.assertEqual(dict(client.connack.properties),
                             {**DEFAULT_CONNACK, P.WILDCARD_SUBSCRIPTION_AVAILABLE: 0})
            self.assertEqual(subscribe(self.env, client, "w/t", 1).reasonCodes, (1,))
            client.send(Subscribe(2, (SubscriptionRequest("w/u", 1),
                                      SubscriptionRequest(topicFilter, 1))))
            self.env.flush()
            self.assertDisconnected(client, 0xA2)

    def test_serverKeepAlive(self) -> None:
        """max-keepalive 30 and a client asking 60: CONNACK Server Keep Alive 30, and the broker times out at 1.5 x 30 s [MQTT-3.2.2-21]."""
        self.newBroker(maxKeepalive=30)
        client = v5(self.env, "c", keepAlive=60)
        self.assertEqual(dict(client.connack.properties),
                         {**DEFAULT_CONNACK, P.SERVER_KEEP_ALIVE: 30})
        self.env.advance(44.9)
        self.assertTrue(alive(client))
        self.env.advance(0.1)
        self.assertDisconnected(client, 0x8D)

    def test_serverKeepAliveNotSentWhenAccepted(self) -> None:
        """A keep-alive within max-keepalive is accepted as is, without Server Keep Alive."""
        self.newBroker(maxKeepalive=30)
        client = v5(self.env, "c", keepAlive=20)
        self.assertEqual(dict(client.connack.properties), DEFAULT_CONNACK)

    def test_assignedClientIdentifier(self) -> None:
        """An empty client id gets an Assigned Client Identifier [MQTT-3.2.2-16]; a given one none."""
        client = v5(self.env, "")
        assigned = client.connack.properties[P.ASSIGNED_CLIENT_IDENTIFIER]
        self.assertEqual(dict(client.connack.properties),
                         {**DEFAULT_CONNACK, P.ASSIGNED_CLIENT_IDENTIFIER: assigned})
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], [assigned])

    def test_responseInformation(self) -> None:
        """response-information with {clientId}: sent, substituted, only to a client that requests it [MQTT-3.1.2-28]."""
        self.newBroker(responseInformation="reply/{clientId}/")
        asking = v5(self.env, "rq", properties={P.REQUEST_RESPONSE_INFORMATION: 1})
        self.assertEqual(dict(asking.connack.properties),
                         {**DEFAULT_CONNACK, P.RESPONSE_INFORMATION: "reply/rq/"})
        notAsking = v5(self.env, "no", properties={P.REQUEST_RESPONSE_INFORMATION: 0})
        self.assertEqual(dict(notAsking.connack.properties), DEFAULT_CONNACK)
        silent = v5(self.env, "silent")
        self.assertEqual(dict(silent.connack.properties), DEFAULT_CONNACK)

    def test_responseInformationNotConfigured(self) -> None:
        """Without response-information, a request gets no Response Information."""
        asking = v5(self.env, "rq", properties={P.REQUEST_RESPONSE_INFORMATION: 1})
        self.assertEqual(dict(asking.connack.properties), DEFAULT_CONNACK)

    def test_reasonStringOnFailures(self) -> None:
        """By default failure SUBACK, DISCONNECT and CONNACK carry a Reason String."""
        client = v5(self.env, "c")
        self.assertIn(P.REASON_STRING, subscribe(self.env, client, "a/#/b", 1).properties)
        client.publish("", b"x", properties={P.TOPIC_ALIAS: 5})
        self.env.flush()
        disconnect = self.assertDisconnected(client, 0x82)
        self.assertIsInstance(disconnect.properties[P.REASON_STRING], str)
        self.newBroker(maximumQos=0)
        refused = self.assertRefused(self.openV5("r", will=Will("w", b"", qos=1)), 0x9B)
        self.assertIn(P.REASON_STRING, refused.properties)

    def test_noReasonStringWhenNotRequested(self) -> None:
        """Request Problem Information 0: no Reason String on SUBACK [MQTT-3.1.2-29], DISCONNECT or CONNACK."""
        rpi = {P.REQUEST_PROBLEM_INFORMATION: 0}
        client = v5(self.env, "c", properties=rpi)
        self.assertEqual(dict(subscribe(self.env, client, "a/#/b", 1).properties), {})
        client.publish("", b"x", properties={P.TOPIC_ALIAS: 5})
        self.env.flush()
        self.assertEqual(client.take()[-1], Disconnect(0x82))
        self.newBroker(maximumQos=0)
        refused = self.openV5("r", will=Will("w", b"", qos=1), properties=rpi)
        self.assertEqual(refused.take(), [Connack(False, 0x9B)])

    def test_noReasonStringWhenDisabled(self) -> None:
        """reason-strings no: no Reason String at all."""
        self.newBroker(reasonStrings=False)
        client = v5(self.env, "c")
        self.assertEqual(dict(subscribe(self.env, client, "a/#/b", 1).properties), {})
        client.publish("", b"x", properties={P.TOPIC_ALIAS: 5})
        self.env.flush()
        self.assertEqual(client.take()[-1], Disconnect(0x82))

    def test_reasonStringWithinClientMaximumPacketSize(self) -> None:
        """A Reason String that would make the packet exceed the client's Maximum Packet Size is left out [MQTT-3.9.2-1]."""
        client = v5(self.env, "c", properties={P.MAXIMUM_PACKET_SIZE: 16})
        self.assertEqual(subscribe(self.env, client, "a/#/b", 1),
                         Suback(1, (0x8F,)))


# ---------------------------------------------------------------------------
# Wills
# ---------------------------------------------------------------------------


class WillTests(_Base):
    """
    Will Delay Interval and Session Expiry (section 3.1.3.2.2), will
    properties.
    """

    def setUp(self) -> None:
        super().setUp()
        self.watcher = v5(self.env, "watcher")
        subscribe(self.env, self.watcher, "will/#", 1)

    def willClient(self, delay: int | None, expiry: int, clientId: str = "w",
                   **willProps: Any) -> MQTTTestClient:
        props = {getattr(P, k): v for k, v in willProps.items()}
        if delay is not None:
            props[P.WILL_DELAY_INTERVAL] = delay
        return v5(self.env, clientId, will=Will("will/w", b"gone", 1, False, props),
                  properties={P.SESSION_EXPIRY_INTERVAL: expiry} if expiry else {})

    def wills(self) -> list[bytes]:
        return [p.payload for p in self.watcher.publishes()]

    def test_noDelayPublishedAtOnce(self) -> None:
        """Without Will Delay Interval the will is published when the connection fails."""
        drop(self.env, self.willClient(None, 100))
        self.assertEqual(self.wills(), [b"gone"])

    def test_delayed(self) -> None:
        """Will Delay 10 with Session Expiry 100: the will is published 10 s after the failure, not before."""
        drop(self.env, self.willClient(10, 100))
        self.env.advance(9.9)
        self.assertEqual(self.wills(), [])
        self.env.advance(0.1)
        self.assertEqual(self.wills(), [b"gone"])
        self.env.advance(200)
        self.assertEqual(self.wills(), [])

    def test_sessionEndsFirst(self) -> None:
        """Will Delay 10 with Session Expiry 4: the will is published when the session ends, at 4 s [MQTT-3.1.3-9]."""
        drop(self.env, self.willClient(10, 4))
        self.env.advance(3.9)
        self.assertEqual(self.wills(), [])
        self.env.advance(0.1)
        self.assertEqual(self.wills(), [b"gone"])
        self.env.advance(20)
        self.assertEqual(self.wills(), [])

    def test_sessionExpiryZero(self) -> None:
        """Will Delay 10 with Session Expiry 0: the session ends with the connection, so the will goes at once."""
        drop(self.env, self.willClient(10, 0))
        self.assertEqual(self.wills(), [b"gone"])
        self.env.advance(20)
        self.assertEqual(self.wills(), [])

    def test_reconnectWithinDelaySuppressesWill(self) -> None:
        """A reconnect before the Will Delay Interval passes cancels the will [MQTT-3.1.3-9]."""
        drop(self.env, self.willClient(10, 100))
        self.env.advance(5)
        again = v5(self.env, "w", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 100})
        self.assertTrue(again.connack.sessionPresent)
        self.env.advance(100)
        self.assertEqual(self.wills(), [])

    def test_reconnectWithCleanStartWithinDelay(self) -> None:
        """A reconnect with Clean Start 1 within the delay also cancels the pending will."""
        drop(self.env, self.willClient(10, 100))
        self.env.advance(5)
        v5(self.env, "w", cleanStart=True)
        self.env.advance(100)
        self.assertEqual(self.wills(), [])

    def test_normalDisconnectDiscardsWill(self) -> None:
        """DISCONNECT 0x00 discards the will [MQTT-3.1.2-10]."""
        leave(self.env, self.willClient(10, 100))
        self.env.advance(200)
        self.assertEqual(self.wills(), [])

    def test_disconnectWithWillMessage(self) -> None:
        """DISCONNECT 0x04 (Disconnect with Will Message) keeps the will, delay included."""
        client = self.willClient(10, 100)
        client.disconnect(0x04)
        self.env.flush()
        self.assertEqual(self.wills(), [])
        self.env.advance(10)
        self.assertEqual(self.wills(), [b"gone"])

    def test_takeoverCleanStart0WithDelay(self) -> None:
        """Takeover by Clean Start 0 with a will delay: the will is not sent (the session continues) [section 3.1.3.2.2]."""
        old = self.willClient(10, 100)
        v5(self.env, "w", cleanStart=False, properties={P.SESSION_EXPIRY_INTERVAL: 100})
        self.env.advance(200)
        self.assertEqual(self.wills(), [])
        self.assertDisconnected(old, 0x8E)

    def test_takeoverCleanStart1(self) -> None:
        """Takeover by Clean Start 1: the old session ends, so its will is sent [section 3.1.3.2.2]."""
        old = self.willClient(10, 100)
        v5(self.env, "w", cleanStart=True)
        self.env.flush()
        self.assertEqual(self.wills(), [b"gone"])
        self.assertDisconnected(old, 0x8E)

    def test_willPropertiesForwarded(self) -> None:
        """Will properties are forwarded like a PUBLISH's; Will Delay Interval is not (section 3.1.3.2)."""
        client = self.willClient(
            2, 100,
            PAYLOAD_FORMAT_INDICATOR=1,
            MESSAGE_EXPIRY_INTERVAL=60,
            CONTENT_TYPE="application/json",
            RESPONSE_TOPIC="will/reply",
            CORRELATION_DATA=b"\x01\x02",
            USER_PROPERTY=(("k", "v2"), ("k", "v1")),
        )
        drop(self.env, client)
        self.env.advance(2)
        [will] = self.watcher.publishes()
        self.assertEqual((will.topic, will.payload, will.qos), ("will/w", b"gone", 1))
        self.assertEqual(dict(will.properties), {
            P.PAYLOAD_FORMAT_INDICATOR: 1,
            P.MESSAGE_EXPIRY_INTERVAL: 60,
            P.CONTENT_TYPE: "application/json",
            P.RESPONSE_TOPIC: "will/reply",
            P.CORRELATION_DATA: b"\x01\x02",
            P.USER_PROPERTY: (("k", "v2"), ("k", "v1")),
        })


# ---------------------------------------------------------------------------
# Server-initiated DISCONNECT
# ---------------------------------------------------------------------------


class ServerDisconnectTests(_Base):
    """
    The reason codes of a DISCONNECT sent by the broker (section 3.14.2.1),
    and redirection (section 4.11).
    """

    def test_takeover(self) -> None:
        """A second connection with the same client id: the first gets DISCONNECT 0x8E [MQTT-3.1.4-3]."""
        first = v5(self.env, "dup")
        v5(self.env, "dup")
        self.assertDisconnected(first, 0x8E)

    def test_shutdown(self) -> None:
        """Stopping the broker: DISCONNECT 0x8B."""
        client = v5(self.env, "c")
        self.env.broker.stopService()
        self.env.flush()
        self.assertDisconnected(client, 0x8B)

    def test_keepAliveTimeout(self) -> None:
        """No packet within 1.5 x Keep Alive: DISCONNECT 0x8D [MQTT-3.1.2-22]."""
        client = v5(self.env, "c", keepAlive=10)
        self.env.advance(14.9)
        self.assertTrue(alive(client))
        self.env.advance(0.1)
        self.assertDisconnected(client, 0x8D)

    def test_malformedPacket(self) -> None:
        """A PUBLISH whose property length overruns the packet: DISCONNECT 0x81."""
        client = v5(self.env, "c")
        client.sendRaw(bytes.fromhex("30 05 00 01 74 05 01"))
        self.env.flush()
        self.assertDisconnected(client, 0x81)

    def test_protocolError(self) -> None:
        """A PUBLISH with an empty topic and no alias: DISCONNECT 0x82 (section 3.3.2.1)."""
        client = v5(self.env, "c")
        client.sendRaw(bytes.fromhex("30 04 00 00 00 78"))
        self.env.flush()
        self.assertDisconnected(client, 0x82)

    def test_redirectTo(self) -> None:
        """redirect-to: CONNACK 0x9C with the Server Reference, then close (section 4.11)."""
        self.newBroker(redirectTo="other.example:1884")
        self.assertRefused(self.openV5("c"), 0x9C, SERVER_REFERENCE="other.example:1884")

    def test_movedTo(self) -> None:
        """moved-to: CONNACK 0x9D with the Server Reference, then close (section 4.11)."""
        self.newBroker(movedTo="new.example")
        self.assertRefused(self.openV5("c"), 0x9D, SERVER_REFERENCE="new.example")

    def test_redirect311(self) -> None:
        """A 3.1.1 client of a redirecting broker gets 20 02 00 03 (Server unavailable)."""
        self.newBroker(redirectTo="other.example")
        client = self.env.openClient(MQTT_3_1_1)
        client.connect("c")
        self.env.flush()
        self.assertEqual(client.take(), [Connack(False, 0x03)])
        self.assertTrue(client.closed)

    def test_kickWithServerReference(self) -> None:
        """broker.kick(id, 0x9C, serverReference=...): DISCONNECT 0x9C with the Server Reference."""
        client = v5(self.env, "c")
        self.assertTrue(self.env.broker.kick("c", 0x9C, serverReference="b.example:1883"))
        self.env.flush()
        self.assertDisconnected(client, 0x9C, SERVER_REFERENCE="b.example:1883")

    def test_kickMoved(self) -> None:
        """broker.kick(id, 0x9D, serverReference=...): DISCONNECT 0x9D with the Server Reference."""
        client = v5(self.env, "c")
        self.env.broker.kick("c", 0x9D, serverReference="c.example")
        self.env.flush()
        self.assertDisconnected(client, 0x9D, SERVER_REFERENCE="c.example")

    def test_kickDefault(self) -> None:
        """broker.kick(id): DISCONNECT 0x98 Administrative action, no Server Reference."""
        client = v5(self.env, "c")
        self.env.broker.kick("c")
        self.env.flush()
        self.assertDisconnected(client, 0x98)


# ---------------------------------------------------------------------------
# Enhanced authentication
# ---------------------------------------------------------------------------


class Identity:
    """
    The identity the test authenticator gives an authenticated client.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.username = name


@implementer(IAuthExchange)
class ChallengeExchange:
    """
    A two-round challenge/response: C{hello} -> C{challenge-1};
    C{response-1} -> C{challenge-2}; C{response-2} -> success with
    C{welcome <clientId>}.  Anything else fails with the authenticator's
    C{failCode} (0x86 unless changed).
    """

    def __init__(self, authenticator: ChallengeAuthenticator, clientId: str,
                 reauthentication: bool) -> None:
        self.authenticator = authenticator
        self.clientId = clientId
        self.reauthentication = reauthentication
        self.round = 0

    def decide(self, data: bytes | None) -> Any:
        expected = [b"hello", b"response-1", b"response-2"][self.round]
        if data != expected:
            return AuthFailure(self.authenticator.failCode, "wrong answer")
        self.round += 1
        if self.round < 3:
            return AuthContinue(b"challenge-%d" % self.round)
        name = self.authenticator.identityName or self.clientId
        return AuthSuccess(Identity(name), b"welcome " + self.clientId.encode())

    def step(self, data: bytes | None) -> Any:
        auth = self.authenticator
        auth.steps.append((self.reauthentication, data))
        mode = auth.mode
        if mode == "raise":
            raise RuntimeError("authenticator bug")
        if mode == "failDeferred":
            return fail(RuntimeError("backend down"))
        if mode == "bogus":
            return "yes, sure"
        result = self.decide(data)
        if mode == "deferred":
            d: Deferred[Any] = Deferred()
            auth.pending.append((d, result))
            return d
        return result


@implementer(IEnhancedAuthenticator)
class ChallengeAuthenticator:
    """
    An enhanced authenticator for the method C{TEST-CHALLENGE}.

    @ivar mode: C{sync}, C{deferred} (answers wait in C{pending} until
        L{fire}), C{raise}, C{failDeferred}, C{bogus}, or C{newRaises}.
    """

    method = "TEST-CHALLENGE"

    def __init__(self, mode: str = "sync") -> None:
        self.mode = mode
        self.failCode = 0x86
        #: The identity's name, if not the client id.
        self.identityName: str | None = None
        self.steps: list[tuple[bool, bytes | None]] = []
        self.pending: list[tuple[Deferred[Any], Any]] = []
        self.exchanges: list[ChallengeExchange] = []

    def newExchange(self, clientId: str, connect: Any, reauthentication: bool) -> IAuthExchange:
        if self.mode == "newRaises":
            raise RuntimeError("cannot start")
        exchange = ChallengeExchange(self, clientId, reauthentication)
        self.exchanges.append(exchange)
        return exchange

    def fire(self) -> None:
        """
        Answer every pending step.
        """
        pending, self.pending = self.pending, []
        for d, result in pending:
            d.callback(result)


METHOD = ChallengeAuthenticator.method


def authProps(data: bytes | None = None, method: str = METHOD) -> dict[int, Any]:
    props: dict[int, Any] = {P.AUTHENTICATION_METHOD: method}
    if data is not None:
        props[P.AUTHENTICATION_DATA] = data
    return props


class EnhancedAuthenticationTests(_Base):
    """
    The AUTH packet flow (section 4.12) with a challenge/response
    authenticator written here.
    """

    def setUp(self) -> None:
        super().setUp()
        self.install()

    def install(self, mode: str = "sync") -> ChallengeAuthenticator:
        self.authenticator = ChallengeAuthenticator(mode)
        self.env.factory.enhancedAuthenticators[METHOD] = self.authenticator
        return self.authenticator

    def start(self, clientId: str = "ea", data: bytes | None = b"hello",
              **props: Any) -> MQTTTestClient:
        extra = {getattr(P, k): v for k, v in props.items()}
        return self.openV5(clientId, properties={**authProps(data), **extra})

    def answer(self, client: MQTTTestClient, data: bytes, reasonCode: int = 0x18) -> list[Packet]:
        client.send(Auth(reasonCode, authProps(data)))
        self.env.flush()
        return client.take()

    def expectedConnack(self, clientId: str = "ea") -> Connack:
        return Connack(False, 0, {**DEFAULT_CONNACK,
                                  **authProps(b"welcome " + clientId.encode())})

    def test_interfaces(self) -> None:
        """The test authenticator and its exchanges provide the interfaces."""
        self.assertTrue(verifyObject(IEnhancedAuthenticator, self.authenticator))
        exchange = self.authenticator.newExchange("x", None, False)
        self.assertTrue(verifyObject(IAuthExchange, exchange))

    def test_successfulExchange(self) -> None:
        """CONNECT with method and data, two AUTH 0x18 rounds, then CONNACK 0 with the method and the final data (section 4.12)."""
        client = self.start()
        self.assertEqual(client.take(), [Auth(0x18, authProps(b"challenge-1"))])
        self.assertEqual(self.answer(client, b"response-1"), [Auth(0x18, authProps(b"challenge-2"))])
        self.assertEqual(self.answer(client, b"response-2"), [self.expectedConnack()])
        self.assertEqual(self.authenticator.steps,
                         [(False, b"hello"), (False, b"response-1"), (False, b"response-2")])
        server = self.env.serverFor(client)
        self.assertEqual(server.identity.name, "ea")
        # The connection works.
        self.assertEqual(subscribe(self.env, client, "ea/t", 1).reasonCodes, (1,))
        client.publish("ea/t", b"hi", qos=1)
        self.env.flush()
        self.assertEqual([p.payload for p in client.publishes()], [b"hi"])

    def test_deferredSteps(self) -> None:
        """Steps returning Deferreds: nothing is sent until each fires, then the flow goes on."""
        auth = self.install("deferred")
        client = self.start()
        self.assertEqual(client.take(), [])
        auth.fire()
        self.env.flush()
        self.assertEqual(client.take(), [Auth(0x18, authProps(b"challenge-1"))])
        self.assertEqual(self.answer(client, b"response-1"), [])
        auth.fire()
        self.env.flush()
        self.assertEqual(client.take(), [Auth(0x18, authProps(b"challenge-2"))])
        self.assertEqual(self.answer(client, b"response-2"), [])
        auth.fire()
        self.env.flush()
        self.assertEqual(client.take(), [self.expectedConnack()])

    def test_failure(self) -> None:
        """A failing step: CONNACK with the authenticator's reason code (0x86), then close."""
        client = self.start()
        client.take()
        client.send(Auth(0x18, authProps(b"wrong")))
        self.env.flush()
        self.assertRefused(client, 0x86)
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_failureAtFirstStep(self) -> None:
        """A CONNECT whose first data is refused gets CONNACK 0x86 without any AUTH."""
        self.assertRefused(self.start(data=b"bad"), 0x86)

    def test_deferredFailure(self) -> None:
        """A Deferred firing with AuthFailure refuses like a plain one."""
        auth = self.install("deferred")
        client = self.start(data=b"bad")
        auth.fire()
        self.env.flush()
        self.assertRefused(client, 0x86)

    def test_stepRaises(self) -> None:
        """A step that raises fails closed: CONNACK 0x87."""
        self.install("raise")
        self.assertRefused(self.start(), 0x87)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_failedDeferred(self) -> None:
        """A step whose Deferred fails: CONNACK 0x87."""
        self.install("failDeferred")
        self.assertRefused(self.start(), 0x87)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_newExchangeRaises(self) -> None:
        """An authenticator that cannot start an exchange: CONNACK 0x87."""
        self.install("newRaises")
        self.assertRefused(self.start(), 0x87)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_notAnAnswer(self) -> None:
        """A step returning something that is not an answer fails closed: CONNACK 0x87."""
        self.install("bogus")
        self.assertRefused(self.start(), 0x87)

    def test_unknownMethod(self) -> None:
        """An Authentication Method nobody handles: CONNACK 0x8C [MQTT-4.12.0-1]."""
        client = self.openV5("c", properties=authProps(b"hello", method="SCRAM-SHA-1"))
        self.assertRefused(client, 0x8C)
        self.assertEqual(self.authenticator.steps, [])

    def test_methodWithoutData(self) -> None:
        """A CONNECT with the method and no data: the first step gets None."""
        client = self.start(data=None)
        self.assertRefused(client, 0x86)
        self.assertEqual(self.authenticator.steps, [(False, None)])

    def test_publishBeforeConnack(self) -> None:
        """A PUBLISH before CONNACK during enhanced authentication: CONNACK 0x82, close, nothing routed [MQTT-3.1.2-30]."""
        watcher = v5(self.env, "watcher")
        subscribe(self.env, watcher, "#", 0)
        client = self.start()
        self.assertEqual(client.take(), [Auth(0x18, authProps(b"challenge-1"))])
        client.publish("sneaky", b"x")
        self.env.flush()
        self.assertRefused(client, 0x82)
        self.assertEqual(watcher.publishes(), [])

    def test_subscribeBeforeConnack(self) -> None:
        """A SUBSCRIBE before CONNACK during enhanced authentication: CONNACK 0x82 and close."""
        client = self.start()
        client.take()
        client.subscribe("t", 0)
        self.env.flush()
        self.assertRefused(client, 0x82)

    def test_disconnectDuringExchange(self) -> None:
        """A DISCONNECT during the exchange closes the connection quietly, no CONNACK."""
        client = self.start()
        client.take()
        client.send(Disconnect(0))
        self.env.flush()
        self.assertEqual(client.take(), [])
        self.assertTrue(client.closed)
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_otherMethodInAuth(self) -> None:
        """An AUTH naming another method during the exchange is a Protocol Error (section 4.12): refused with 0x82."""
        client = self.start()
        client.take()
        client.send(Auth(0x18, authProps(b"response-1", method="OTHER")))
        self.env.flush()
        self.assertRefused(client, 0x82)

    def test_connectTimeoutBoundsExchange(self) -> None:
        """connect-timeout bounds the whole exchange: answering each round in time does not extend it."""
        self.newBroker(connectTimeout=5)
        self.install()
        client = self.start()
        self.assertEqual(client.take(), [Auth(0x18, authProps(b"challenge-1"))])
        self.env.advance(3)
        self.assertEqual(self.answer(client, b"response-1"), [Auth(0x18, authProps(b"challenge-2"))])
        self.env.advance(1.9)
        self.assertFalse(client.closed)
        self.env.advance(0.1)
        self.assertTrue(client.closed)
        self.assertFalse(any(isinstance(p, Connack) and p.reasonCode == 0 for p in client.take()))
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_connectTimeoutWithPendingDeferred(self) -> None:
        """A step still pending at connect-timeout: closed; its late answer sends nothing."""
        self.newBroker(connectTimeout=5)
        auth = self.install("deferred")
        client = self.start()
        self.env.advance(5)
        self.assertTrue(client.closed)
        auth.fire()
        self.env.flush()
        self.assertEqual(client.take(), [])
        self.assertEqual(self.env.broker.listSessions(), [])

    def connected(self, clientId: str = "ea") -> MQTTTestClient:
        client = self.start(clientId)
        client.take()
        self.answer(client, b"response-1")
        [connack] = self.answer(client, b"response-2")
        self.assertEqual(connack, self.expectedConnack(clientId))
        return client

    def test_reauthentication(self) -> None:
        """AUTH 0x19 after CONNACK: AUTH 0x18 rounds, then AUTH 0x00 with the method; the connection goes on [section 4.12.1]."""
        client = self.connected()
        self.assertEqual(self.answer(client, b"hello", 0x19), [Auth(0x18, authProps(b"challenge-1"))])
        self.assertEqual(self.answer(client, b"response-1"), [Auth(0x18, authProps(b"challenge-2"))])
        self.assertEqual(self.answer(client, b"response-2"),
                         [Auth(0x00, authProps(b"welcome ea"))])
        self.assertEqual(self.authenticator.steps[3:],
                         [(True, b"hello"), (True, b"response-1"), (True, b"response-2")])
        self.assertTrue(alive(client))
        self.assertEqual(subscribe(self.env, client, "t", 1).reasonCodes, (1,))

    def test_reauthenticationAsAnotherIdentity(self) -> None:
        """A re-authentication that proves another identity: DISCONNECT 0x87; the session stays the first identity's."""
        client = self.connected()
        server = self.env.serverFor(client)
        self.authenticator.identityName = "mallory"
        self.answer(client, b"hello", 0x19)
        self.answer(client, b"response-1")
        client.send(Auth(0x18, authProps(b"response-2")))
        self.env.flush()
        self.assertDisconnected(client, 0x87)
        self.assertEqual(server.identity.name, "ea")
        self.assertEqual(server.clientInfo.username, "ea")

    def test_reauthenticationDeferred(self) -> None:
        """Re-authentication with Deferred steps."""
        client = self.connected()
        self.authenticator.mode = "deferred"
        self.assertEqual(self.answer(client, b"hello", 0x19), [])
        self.authenticator.fire()
        self.env.flush()
        self.assertEqual(client.take(), [Auth(0x18, authProps(b"challenge-1"))])
        self.answer(client, b"response-1")
        self.authenticator.fire()
        self.env.flush()
        client.take()
        self.answer(client, b"response-2")
        self.authenticator.fire()
        self.env.flush()
        self.assertEqual(client.take(), [Auth(0x00, authProps(b"welcome ea"))])

    def test_packetsDuringReauthenticationKeepOrder(self) -> None:
        """Packets sent while a re-authentication step is pending are handled after it, in order."""
        client = self.connected()
        subscribe(self.env, client, "t", 1)
        self.authenticator.mode = "deferred"
        client.send(Auth(0x19, authProps(b"hello")))
        client.publish("t", b"during", qos=1)
        self.env.flush()
        self.assertEqual(client.take(), [])
        self.authenticator.fire()
        self.env.flush()
        packets = client.take()
        self.assertEqual(packets[0], Auth(0x18, authProps(b"challenge-1")))
        self.assertEqual([p.payload for p in packets if isinstance(p, Publish)], [b"during"])

    def test_reauthenticationFailure(self) -> None:
        """A failed re-authentication: DISCONNECT with the authenticator's reason code (here 0x87) (section 4.12.1)."""
        client = self.connected()
        self.authenticator.failCode = 0x87
        self.answer(client, b"hello", 0x19)
        client.send(Auth(0x18, authProps(b"wrong")))
        self.env.flush()
        self.assertDisconnected(client, 0x87)

    def test_reauthenticationFailureConnackOnlyCode(self) -> None:
        """A re-authentication refused with 0x86 (a CONNACK-only code): the DISCONNECT still carries a DISCONNECT reason code (section 3.14.2.1), 0x87."""
        client = self.connected()
        self.answer(client, b"hello", 0x19)
        client.send(Auth(0x18, authProps(b"wrong")))
        self.env.flush()
        self.assertIsNone(client.decodeError)
        self.assertDisconnected(client, 0x87)

    def test_reauthenticationRaises(self) -> None:
        """A re-authentication step that raises: DISCONNECT 0x87."""
        client = self.connected()
        self.authenticator.mode = "raise"
        client.send(Auth(0x19, authProps(b"hello")))
        self.env.flush()
        self.assertDisconnected(client, 0x87)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_reauthenticationOtherMethod(self) -> None:
        """Re-authentication with another method: DISCONNECT 0x82 [MQTT-4.12.1-1]."""
        client = self.connected()
        client.send(Auth(0x19, authProps(b"hello", method="OTHER")))
        self.env.flush()
        self.assertDisconnected(client, 0x82)

    def test_reauthenticationTimeout(self) -> None:
        """A re-authentication left unanswered is bounded by connect-timeout: the client is disconnected."""
        self.newBroker(connectTimeout=5)
        self.install()
        client = self.connected()
        self.answer(client, b"hello", 0x19)
        self.env.advance(4.9)
        self.assertTrue(alive(client))
        self.env.advance(0.1)
        packets = client.take()
        self.assertIsInstance(packets[-1], Disconnect)
        self.assertGreaterEqual(packets[-1].reasonCode, 0x80)  # type: ignore[union-attr]
        self.assertTrue(client.closed)

    def test_authContinueWithoutExchange(self) -> None:
        """AUTH 0x18 after CONNACK with no re-authentication under way: DISCONNECT 0x82."""
        client = self.connected()
        client.send(Auth(0x18, authProps(b"response-1")))
        self.env.flush()
        self.assertDisconnected(client, 0x82)

    def test_reauthenticationWithoutEnhancedAuth(self) -> None:
        """AUTH 0x19 from a client that connected without an Authentication Method: DISCONNECT 0x82 [MQTT-4.12.1-1]."""
        client = v5(self.env, "plain")
        client.send(Auth(0x19, authProps(b"hello")))
        self.env.flush()
        self.assertDisconnected(client, 0x82)


# ---------------------------------------------------------------------------
# Mixed protocol versions
# ---------------------------------------------------------------------------


def recordBytes(client: MQTTTestClient) -> bytearray:
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


class MixedVersionTests(_Base):
    """
    Messages between 3.1.1 and 5.0 clients.
    """

    def test_v311ToV5(self) -> None:
        """A 3.1.1 publisher's message reaches a 5.0 subscriber without invented properties."""
        sub = v5(self.env, "sub")
        subscribe(self.env, sub, "mix/#", 2)
        pub = self.env.connect("pub", protocolLevel=MQTT_3_1_1)
        pub.publish("mix/a", b"from 3.1.1", qos=1)
        pub.publish("mix/b", b"retained", qos=0, retain=True)
        self.env.flush()
        received = sub.publishes()
        self.assertEqual([(p.topic, p.payload, p.qos, p.retain) for p in received],
                         [("mix/a", b"from 3.1.1", 1, False), ("mix/b", b"retained", 0, False)])
        self.assertEqual([dict(p.properties) for p in received], [{}, {}])

    def test_v5ToV311(self) -> None:
        """A 5.0 publisher's message with properties reaches a 3.1.1 subscriber as a plain 3.1.1 PUBLISH."""
        sub = self.env.connect("sub", protocolLevel=MQTT_3_1_1, autoAck=False)
        sub.subscribe("mix/#", 1)
        self.env.flush()
        sub.take()
        wire = recordBytes(sub)
        pub = v5(self.env, "pub")
        pub.publish("mix/t", b"hello", qos=1,
                    properties={**FORWARDED, P.MESSAGE_EXPIRY_INTERVAL: 30, P.TOPIC_ALIAS: 1})
        pub.publish("mix/t", b"qos0", qos=0, properties=FORWARDED)
        self.env.flush()
        # Section 3.3 (3.1.1): 32 0E 00 05 "mix/t" 00 01 "hello"; 30 0B 00 05 "mix/t" "qos0".
        self.assertEqual(bytes(wire),
                         bytes.fromhex("32 0E 00 05") + b"mix/t" + b"\x00\x01" + b"hello"
                         + bytes.fromhex("30 0B 00 05") + b"mix/t" + b"qos0")

    def test_v5ToBothVersions(self) -> None:
        """One 5.0 message to a 3.1.1 and a 5.0 subscriber: same topic and payload; properties only for 5.0."""
        old = self.env.connect("old", protocolLevel=MQTT_3_1_1)
        old.subscribe("mix/#", 1)
        new = v5(self.env, "new")
        subscribe(self.env, new, "mix/#", 1)
        self.env.flush()
        old.take()
        self.env.broker.publish("mix/t", b"both", qos=1, properties=dict(FORWARDED))
        self.env.flush()
        [a] = old.publishes()
        [b] = new.publishes()
        self.assertEqual((a.topic, a.payload, dict(a.properties)), ("mix/t", b"both", {}))
        self.assertEqual((b.topic, b.payload, dict(b.properties)), ("mix/t", b"both", FORWARDED))


# ---------------------------------------------------------------------------
# Regressions found by the audit against the server MUSTs
# ---------------------------------------------------------------------------


@implementer(IAuthExchange)
class SizedChallengeExchange:
    """
    One step: C{hello} gets AUTH 0x18 with the authenticator's
    C{challengeSize} bytes of data, or success at once if that is 0;
    C{response} succeeds; anything else fails with 0x86.
    """

    def __init__(self, authenticator: SizedChallengeAuthenticator) -> None:
        self.authenticator = authenticator

    def step(self, data: bytes | None) -> Any:
        size = self.authenticator.challengeSize
        if data == b"hello":
            return AuthContinue(b"c" * size) if size else AuthSuccess(Identity("sized"))
        if data == b"response":
            return AuthSuccess(Identity("sized"))
        return AuthFailure(0x86, "wrong answer")


@implementer(IEnhancedAuthenticator)
class SizedChallengeAuthenticator:
    """
    An enhanced authenticator (method C{TEST-CHALLENGE}) whose challenge
    has a chosen size.
    """

    method = METHOD

    def __init__(self, challengeSize: int) -> None:
        self.challengeSize = challengeSize

    def newExchange(self, clientId: str, connect: Any, reauthentication: bool) -> IAuthExchange:
        return SizedChallengeExchange(self)


class AuditRegressionTests(_Base):
    """
    Problems an audit of mqttd against the MQTT 5.0 server MUSTs found; the
    expectations come from the statements cited.
    """

    def watch(self, topicFilter: str = "will/#") -> MQTTTestClient:
        watcher = v5(self.env, "watcher")
        subscribe(self.env, watcher, topicFilter, 1)
        return watcher

    @staticmethod
    def payloads(client: MQTTTestClient) -> list[bytes]:
        return [p.payload for p in client.publishes()]

    # [MQTT-3.1.2-8], [MQTT-3.1.2-10]

    def test_willKeptUnlessNormalDisconnect(self) -> None:
        """A v5 DISCONNECT with any reason code but 0x00 keeps the will, published after the close [MQTT-3.1.2-8]; 0x00 and a 3.1.1 DISCONNECT discard it [MQTT-3.1.2-10]."""
        watcher = self.watch()
        for code in (0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x93):
            name = f"{code:02x}"
            client = v5(self.env, name, will=Will("will/" + name, name.encode(), 1))
            client.disconnect(code)
            self.env.flush()
            self.assertTrue(client.closed)
            self.assertEqual(self.payloads(watcher), [name.encode()] if code else [],
                             f"DISCONNECT 0x{name}")
        old = self.env.connect("v311", protocolLevel=MQTT_3_1_1,
                               will=Will("will/v311", b"v311", 1))
        old.disconnect()
        self.env.flush()
        self.assertTrue(old.closed)
        self.assertEqual(self.payloads(watcher), [])

    # [MQTT-3.1.2-24], [MQTT-3.1.2-25]

    def test_resentMessageTooLargeForNewMaximumPacketSize(self) -> None:
        """An unacknowledged 2,000-byte QoS 1 message of a session resumed with Maximum Packet Size 100 is not resent but dropped as if sent [MQTT-3.1.2-25]; later messages still flow."""
        sub = v5(self.env, "s", autoAck=False, properties={P.SESSION_EXPIRY_INTERVAL: 300})
        subscribe(self.env, sub, "big/t", 1)
        self.env.broker.publish("big/t", b"x" * 2000, qos=1)
        self.env.flush()
        self.assertEqual([len(p.payload) for p in sub.publishes()], [2000])
        drop(self.env, sub)
        dropped = self.env.broker.stats()["messagesDropped"]
        again = v5(self.env, "s", cleanStart=False,
                   properties={P.SESSION_EXPIRY_INTERVAL: 300, P.MAXIMUM_PACKET_SIZE: 100,
                               P.RECEIVE_MAXIMUM: 1})
        self.assertTrue(again.connack.sessionPresent)
        self.assertEqual(again.take(), [])
        self.assertEqual(self.env.broker.stats()["messagesDropped"], dropped + 1)
        for payload in (b"later-1", b"later-2"):
            self.env.broker.publish("big/t", payload, qos=1)
        self.env.flush()
        self.assertEqual(self.payloads(again), [b"later-1", b"later-2"])
        self.assertTrue(alive(again))

    def assertAllWithin(self, packets: list[Packet], limit: int) -> None:
        sizes = [(type(p).__name__, len(encode(p, MQTT_5))) for p in packets]
        self.assertTrue(all(size <= limit for _, size in sizes), sizes)

    def test_authContinueTooLargeBeforeConnack(self) -> None:
        """An AuthContinue with more data than the client's Maximum Packet Size (100) allows is not sent [MQTT-3.1.2-24]: CONNACK 0x95 instead."""
        self.env.factory.enhancedAuthenticators[METHOD] = SizedChallengeAuthenticator(200)
        client = self.openV5("sized", properties={**authProps(b"hello"),
                                                  P.MAXIMUM_PACKET_SIZE: 100})
        self.assertIsNone(client.decodeError)
        self.assertAllWithin(client.received, 100)
        self.assertRefused(client, 0x95)

    def test_authContinueTooLargeOnReauthentication(self) -> None:
        """The same during a re-authentication: no AUTH larger than the limit, DISCONNECT 0x95 [MQTT-3.1.2-24]."""
        authenticator = SizedChallengeAuthenticator(0)
        self.env.factory.enhancedAuthenticators[METHOD] = authenticator
        client = v5(self.env, "sized", properties={**authProps(b"hello"),
                                                   P.MAXIMUM_PACKET_SIZE: 100})
        authenticator.challengeSize = 200
        client.send(Auth(0x19, authProps(b"hello")))
        self.env.flush()
        self.assertIsNone(client.decodeError)
        self.assertAllWithin(client.received, 100)
        self.assertDisconnected(client, 0x95)

    # [MQTT-3.3.4-10], [MQTT-4.9.0-1]

    def test_resendWithinReceiveMaximumPubrelNotHeldBack(self) -> None:
        """Resuming with Receive Maximum 1 two unacknowledged QoS 1 PUBLISHes and a QoS 2 message awaiting PUBCOMP: the PUBREL goes at once with the first PUBLISH [MQTT-3.3.4-10]; one PUBLISH outstanding at a time, the next after each PUBACK, not after the PUBCOMP [MQTT-3.3.4-9]."""
        sub = v5(self.env, "s", autoAck=False, properties={P.SESSION_EXPIRY_INTERVAL: 300})
        subscribe(self.env, sub, "f/t", 2)
        self.env.broker.publish("f/t", b"two", qos=2)
        self.env.flush()
        [two] = sub.publishes()
        assert two.packetId is not None
        sub.send(Pubrec(two.packetId))
        self.env.flush()
        self.assertEqual(sub.take(), [Pubrel(two.packetId)])
        self.env.broker.publish("f/t", b"one-a", qos=1)
        self.env.broker.publish("f/t", b"one-b", qos=1)
        self.env.flush()
        a, b = sub.publishes()
        drop(self.env, sub)

        again = v5(self.env, "s", autoAck=False, cleanStart=False,
                   properties={P.SESSION_EXPIRY_INTERVAL: 300, P.RECEIVE_MAXIMUM: 1})
        self.assertTrue(again.connack.sessionPresent)
        packets = again.take()
        self.assertEqual(len(packets), 2, packets)
        self.assertIn(Pubrel(two.packetId), packets)
        [resent] = [p for p in packets if isinstance(p, Publish)]
        self.assertEqual((resent.payload, resent.packetId, resent.dup),
                         (b"one-a", a.packetId, True))
        # The PUBCOMP completes a message sent on the old connection: the
        # PUBLISH sent on this one is still unacknowledged.
        again.send(Pubcomp(two.packetId))
        self.env.flush()
        self.assertEqual(again.take(), [])
        again.send(Puback(a.packetId))  # type: ignore[arg-type]
        self.env.flush()
        [resent] = again.publishes()
        self.assertEqual((resent.payload, resent.packetId, resent.dup),
                         (b"one-b", b.packetId, True))
        self.env.broker.publish("f/t", b"new", qos=1)
        self.env.flush()
        self.assertEqual(again.take(), [])
        again.send(Puback(b.packetId))  # type: ignore[arg-type]
        self.env.flush()
        self.assertEqual(self.payloads(again), [b"new"])

    # [MQTT-4.5.0-1]

    def assertKeptForClosingConnection(self, close: Any) -> None:
        sub = v5(self.env, "s", properties={P.SESSION_EXPIRY_INTERVAL: 300})
        subscribe(self.env, sub, "c/t", 1)
        close(sub)
        self.assertFalse(sub.closed)
        self.env.broker.publish("c/t", b"in the window", qos=1)
        self.env.flush()
        self.assertTrue(sub.closed)
        self.assertEqual(sub.publishes(), [])
        again = v5(self.env, "s", cleanStart=False,
                   properties={P.SESSION_EXPIRY_INTERVAL: 300})
        self.assertTrue(again.connack.sessionPresent)
        self.assertEqual([(p.topic, p.payload, p.qos) for p in again.publishes()],
                         [("c/t", b"in the window", 1)])

    def test_messageForClosingConnectionAfterDisconnect(self) -> None:
        """A QoS 1 message for a persistent session whose client sent DISCONNECT 0x00, before the transport reports the close, is kept for the session [MQTT-4.5.0-1]."""

        def disconnect(client: MQTTTestClient) -> None:
            client.send(Disconnect(0))
            # Deliver client -> server only: the broker handles the
            # DISCONNECT and starts closing; the close is not reported yet.
            pump = client.pump  # type: ignore[attr-defined]
            pump.serverIO.bufferReceived(pump.clientIO.getOutBuffer())

        self.assertKeptForClosingConnection(disconnect)

    def test_messageForClosingConnectionAfterCloseWith(self) -> None:
        """The same for a connection the broker is closing (closeWith), before the close is reported [MQTT-4.5.0-1]."""
        self.assertKeptForClosingConnection(
            lambda client: self.env.serverFor(client).closeWith(0x98, "closed by the test"))

    # [MQTT-3.2.2-8]

    def test_codecErrorDuringEnhancedAuthentication(self) -> None:
        """A PUBLISH with Topic Alias 0 (0x94) during enhanced authentication: the CONNACK carries a CONNACK reason code, 0x82 [MQTT-3.2.2-8]."""
        self.env.factory.enhancedAuthenticators[METHOD] = ChallengeAuthenticator()
        client = self.openV5("ea", properties=authProps(b"hello"))
        self.assertEqual(client.take(), [Auth(0x18, authProps(b"challenge-1"))])
        client.publish("t", b"x", properties={P.TOPIC_ALIAS: 0})
        self.env.flush()
        self.assertIsNone(client.decodeError)
        self.assertRefused(client, 0x82)

    def test_authFailureWithNonConnackCode(self) -> None:
        """An authenticator's AuthFailure(0x8E), not a CONNACK reason code: CONNACK 0x87 [MQTT-3.2.2-8]."""
        authenticator = ChallengeAuthenticator()
        authenticator.failCode = 0x8E
        self.env.factory.enhancedAuthenticators[METHOD] = authenticator
        client = self.openV5("ea", properties=authProps(b"wrong"))
        self.assertIsNone(client.decodeError)
        self.assertRefused(client, 0x87)

    # Sections 3.2.2.3.11 and 3.2.2.3.13

    def test_unavailableSubscriptionFeaturesV5(self) -> None:
        """wildcard-subscriptions no: SUBSCRIBE to a/# gets DISCONNECT 0xA2; shared-subscriptions no: $share/g/a gets DISCONNECT 0x9E (Protocol Errors, sections 3.2.2.3.11, 3.2.2.3.13)."""
        for changes, topicFilter, code in [({"wildcardSubscriptions": False}, "a/#", 0xA2),
                                           ({"sharedSubscriptions": False}, "$share/g/a", 0x9E)]:
            self.newBroker(**changes)
            client = v5(self.env, "c")
            client.subscribe(topicFilter, 1)
            self.env.flush()
            self.assertDisconnected(client, code)

    def test_unavailableSubscriptionFeaturesV311(self) -> None:
        """A 3.1.1 client gets SUBACK 0x80 for either and stays connected."""
        for changes, topicFilter in [({"wildcardSubscriptions": False}, "a/#"),
                                     ({"sharedSubscriptions": False}, "$share/g/a")]:
            self.newBroker(**changes)
            client = self.env.connect("c", protocolLevel=MQTT_3_1_1)
            packetId = client.subscribe(topicFilter, 1)
            self.env.flush()
            self.assertEqual(client.take(), [Suback(packetId, (0x80,))])
            self.assertFalse(client.closed)

    # [MQTT-3.14.4-3]

    def test_disconnectExpiryAfterExpiryLoweredToZero(self) -> None:
        """max-session-expiry 0: CONNECT asking 100 (CONNACK says 0), then DISCONNECT 0x00 with 50 is no Protocol Error (section 3.14.2.2.2 is about what the client sent): the will is discarded [MQTT-3.14.4-3]."""
        self.newBroker(maxSessionExpiry=0)
        watcher = self.watch()
        client = v5(self.env, "c", will=Will("will/c", b"gone", 1),
                    properties={P.SESSION_EXPIRY_INTERVAL: 100})
        self.assertEqual(dict(client.connack.properties),
                         {**DEFAULT_CONNACK, P.SESSION_EXPIRY_INTERVAL: 0})
        client.send(Disconnect(0, {P.SESSION_EXPIRY_INTERVAL: 50}))
        self.env.flush()
        self.assertEqual(client.take(), [])
        self.assertTrue(client.closed)
        self.assertEqual(self.payloads(watcher), [])
        zero = v5(self.env, "z")
        zero.send(Disconnect(0, {P.SESSION_EXPIRY_INTERVAL: 50}))
        self.env.flush()
        self.assertDisconnected(zero, 0x82)

    # [MQTT-4.6.0-5], [MQTT-4.6.0-6]

    def test_retainedBeforeLaterLiveMessage(self) -> None:
        """Receive Maximum 1, retained s/a, s/b, s/c, and a new QoS 1 s/a published before any PUBACK: every retained message comes before the new one, which arrives last with RETAIN 0 [MQTT-4.6.0-5], [MQTT-4.6.0-6]."""
        for topic in ("s/a", "s/b", "s/c"):
            self.env.broker.publish(topic, b"old " + topic.encode(), qos=1, retain=True)
        sub = v5(self.env, "sub", autoAck=False, properties={P.RECEIVE_MAXIMUM: 1})
        subscribe(self.env, sub, "s/#", 1)
        pub = v5(self.env, "pub")
        pub.publish("s/a", b"new s/a", qos=1, retain=True)
        self.env.flush()
        received: list[Publish] = []
        outstanding = sub.publishes()
        while outstanding:
            self.assertEqual(len(outstanding), 1, outstanding)
            [message] = outstanding
            received.append(message)
            sub.send(Puback(message.packetId))  # type: ignore[arg-type]
            self.env.flush()
            outstanding = sub.publishes()
        self.assertEqual(len(received), 4, received)
        self.assertEqual(sorted((p.topic, p.retain) for p in received[:3]),
                         [("s/a", True), ("s/b", True), ("s/c", True)])
        last = received[-1]
        self.assertEqual((last.topic, last.payload, last.retain), ("s/a", b"new s/a", False))

    # [MQTT-4.1.0-2]

    def test_takeoverEndsSessionWithExpiryZero(self) -> None:
        """A live v5 connection with Session Expiry 0 taken over with Clean Start 0: its session ends with it [MQTT-4.1.0-2] (Session Present 0, subscription gone) and its will is published; with Session Expiry 300 the session continues (Session Present 1) and the undelayed will is still published (section 3.1.3.2.2)."""
        watcher = self.watch()
        old = v5(self.env, "zero", will=Will("will/zero", b"zero", 1))
        subscribe(self.env, old, "zero/t", 1)
        new = v5(self.env, "zero", cleanStart=False)
        self.assertDisconnected(old, 0x8E)
        self.assertFalse(new.connack.sessionPresent)
        self.assertEqual(self.payloads(watcher), [b"zero"])
        self.env.broker.publish("zero/t", b"x", qos=1)
        self.env.flush()
        self.assertEqual(new.take(), [])

        kept = {P.SESSION_EXPIRY_INTERVAL: 300}
        old = v5(self.env, "kept", will=Will("will/kept", b"kept", 1), properties=kept)
        subscribe(self.env, old, "kept/t", 1)
        new = v5(self.env, "kept", cleanStart=False, properties=kept)
        self.assertDisconnected(old, 0x8E)
        self.assertTrue(new.connack.sessionPresent)
        self.assertEqual(self.payloads(watcher), [b"kept"])
        self.env.broker.publish("kept/t", b"x", qos=1)
        self.env.flush()
        self.assertEqual(self.payloads(new), [b"x"])

    def test_takeoverEndsCleanSession311(self) -> None:
        """A 3.1.1 clean session taken over by a Clean Session 0 connection ends with its connection [MQTT-3.1.2-6]: Session Present 0, subscription gone, will published."""
        watcher = self.watch()
        old = self.env.connect("o", protocolLevel=MQTT_3_1_1, cleanStart=True,
                               will=Will("will/o", b"o", 1))
        old.subscribe("o/t", 1)
        self.env.flush()
        old.take()
        new = self.env.connect("o", protocolLevel=MQTT_3_1_1, cleanStart=False)
        self.assertTrue(old.closed)
        self.assertFalse(new.connack.sessionPresent)
        self.assertEqual(self.payloads(watcher), [b"o"])
        self.env.broker.publish("o/t", b"x", qos=1)
        self.env.flush()
        self.assertEqual(new.take(), [])
