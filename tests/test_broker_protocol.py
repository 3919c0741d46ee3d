"""
Tests for the broker core over in-memory connections: L{mqttd.protocol}
(CONNECT rules, timers, QoS flows, flow control, exception containment)
and the parts of L{mqttd.broker} a network client sees (takeover, wills,
retained messages, sessions, limits).

Expected bytes come from the MQTT 3.1/3.1.1/5.0 specifications and from the
decisions of DESIGN.md section 4 (the bytes mqttd chooses where the
specification allows several), never from mqttd's own output.  v5 failure
replies carry a Reason String whose wording is free text: they are decoded
and checked for packet type, reason code and a non-empty Reason String
(L{assertFailureReply}); the exact bytes are pinned where no text enters.
Time is the driven clock of L{mqttd.testing.InMemoryBroker}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Decoder,
    Disconnect,
    Packet,
    Pingresp,
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
)
from mqttd.testing import InMemoryBroker, MQTTTestClient


def varint(value: int) -> bytes:
    """
    The Variable Byte Integer encoding of MQTT section 1.5.5 / 2.2.3.
    """
    out = bytearray()
    while True:
        byte = value % 128
        value //= 128
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def mqttString(text: bytes) -> bytes:
    """
    A length-prefixed string or binary field.
    """
    return len(text).to_bytes(2, "big") + text


def pid(packetId: int) -> bytes:
    """
    A packet identifier as two bytes.
    """
    return packetId.to_bytes(2, "big")


def connectBytes(
    clientId: bytes = b"c",
    level: int = MQTT_3_1_1,
    flags: int = 0x02,
    keepAlive: int = 0,
    name: bytes | None = None,
    properties: bytes = b"",
    payloadExtra: bytes = b"",
) -> bytes:
    """
    A CONNECT built by hand from section 3.1 (so that it can break rules).
    """
    if name is None:
        name = b"MQIsdp" if level == MQTT_3_1 else b"MQTT"
    body = mqttString(name) + bytes((level, flags)) + keepAlive.to_bytes(2, "big")
    if level == MQTT_5:
        body += varint(len(properties)) + properties
    body += mqttString(clientId) + payloadExtra
    return b"\x10" + varint(len(body)) + body


def publishBytes(
    topic: bytes,
    payload: bytes,
    qos: int = 0,
    packetId: int = 1,
    v5: bool = False,
    properties: bytes = b"",
) -> bytes:
    """
    A PUBLISH built by hand from section 3.3.
    """
    body = mqttString(topic)
    if qos:
        body += pid(packetId)
    if v5:
        body += varint(len(properties)) + properties
    body += payload
    return bytes((0x30 | (qos << 1),)) + varint(len(body)) + body


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


def recordPauses(env: InMemoryBroker, client: MQTTTestClient) -> list[str]:
    """
    Record the C{pauseProducing}/C{resumeProducing} calls the broker makes
    on the transport of C{client}'s connection (whether it reads it).
    """
    calls: list[str] = []
    transport = env.serverFor(client).transport
    pause, resume = transport.pauseProducing, transport.resumeProducing

    def pauseProducing() -> None:
        calls.append("pause")
        pause()

    def resumeProducing() -> None:
        calls.append("resume")
        resume()

    transport.pauseProducing = pauseProducing
    transport.resumeProducing = resumeProducing
    return calls


def subscriber(
    env: InMemoryBroker,
    clientId: str,
    topicFilter: str,
    qos: int = 0,
    protocolLevel: int = MQTT_3_1_1,
    **connectArgs: Any,
) -> MQTTTestClient:
    """
    Connect a client and subscribe it to one filter (SUBACK consumed; any
    retained messages replayed stay in C{received}).
    """
    client = env.connect(clientId, protocolLevel=protocolLevel, **connectArgs)
    client.subscribe(topicFilter, qos)
    env.flush()
    packets = client.take()
    if not packets or not isinstance(packets[0], Suback) or packets[0].reasonCodes != (qos,):
        raise AssertionError(f"subscription refused: {packets!r}")
    client.received.extend(packets[1:])
    return client


def decodeV5(wire: bytes | bytearray) -> list[Packet]:
    """
    Decode what the broker sent to a v5 client, with a client-side decoder
    (every byte must belong to a complete packet).
    """
    decoder = Decoder(isServer=False, protocolLevel=MQTT_5)
    decoder.feed(bytes(wire))
    packets = []
    while (packet := decoder.next()) is not None:
        packets.append(packet)
    if decoder.buffered:
        raise AssertionError(f"{decoder.buffered} bytes after the last packet: {bytes(wire)!r}")
    return packets


def assertFailureReply(
    test: SynchronousTestCase,
    reply: bytes | bytearray | Packet,
    packetType: type,
    reasonCode: int | tuple[int, ...],
    packetId: int | None = None,
) -> Any:
    """
    Assert that C{reply} (the bytes of exactly one v5 packet, or a decoded
    packet) is a C{packetType} with C{reasonCode} (the SUBACK's tuple of
    codes) and, as mqttd sends by default (reason-strings), a Reason String:
    non-empty printable ASCII.

    @return: the packet.
    """
    if isinstance(reply, (bytes, bytearray)):
        packets = decodeV5(reply)
        test.assertEqual(len(packets), 1, packets)
        packet: Any = packets[0]
    else:
        packet = reply
    test.assertIsInstance(packet, packetType)
    if isinstance(packet, Suback):
        test.assertEqual(packet.reasonCodes, reasonCode)
    else:
        test.assertEqual(packet.reasonCode, reasonCode)
    if packetId is not None:
        test.assertEqual(packet.packetId, packetId)
    text = packet.properties.get(PropertyId.REASON_STRING)
    test.assertIsInstance(text, str, packet)
    test.assertTrue(text, packet)
    test.assertTrue(text.isascii() and text.isprintable(), text)
    return packet


def payloads(packets: list[Any]) -> list[bytes]:
    """
    The payloads of the PUBLISH packets among C{packets}.
    """
    return [p.payload for p in packets if isinstance(p, Publish)]


# ---------------------------------------------------------------------------
# CONNECT
# ---------------------------------------------------------------------------


class ConnectTests(SynchronousTestCase):
    """
    The rules for the first packet of a connection (catalogue section 3).
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()

    def rawConnect(self, data: bytes, level: int = MQTT_3_1_1) -> tuple[MQTTTestClient, bytearray]:
        client = self.env.openClient(level)
        wire = record(client)
        client.sendRaw(data)
        self.env.flush()
        return client, wire

    def assertRefusedWith(self, data: bytes, expected: bytes, level: int = MQTT_3_1_1) -> None:
        client, wire = self.rawConnect(data, level)
        self.assertEqual(bytes(wire), expected)
        self.assertTrue(client.closed)

    def assertRefusedV5(self, data: bytes, reasonCode: int) -> None:
        """
        A v5 CONNECT refused after parsing: one CONNACK with the failure
        C{reasonCode} (and a Reason String), then close.
        """
        client, wire = self.rawConnect(data, MQTT_5)
        connack = assertFailureReply(self, wire, Connack, reasonCode)
        self.assertFalse(connack.sessionPresent)
        self.assertTrue(client.closed)

    def test_unsupportedProtocolLevel(self) -> None:
        """An unknown level of protocol "MQTT" gets CONNACK 20 02 00 01, then close."""
        self.assertRefusedWith(connectBytes(level=6, name=b"MQTT"), b"\x20\x02\x00\x01")

    def test_unsupportedLevelForMQIsdp(self) -> None:
        """ "MQIsdp" with a level other than 3 gets CONNACK 20 02 00 01, then close."""
        self.assertRefusedWith(connectBytes(level=4, name=b"MQIsdp"), b"\x20\x02\x00\x01")

    def test_unknownProtocolName(self) -> None:
        """An unknown protocol name is closed without any CONNACK."""
        self.assertRefusedWith(connectBytes(name=b"MQTX"), b"")

    def test_reservedFlagClosesWithoutConnack(self) -> None:
        """A 3.1.1 CONNECT with the reserved flag set is closed, nothing sent [MQTT-3.1.2-3]."""
        self.assertRefusedWith(connectBytes(flags=0x03), b"")

    def test_trailingBytesCloseWithoutConnack(self) -> None:
        """A 3.1.1 CONNECT with bytes after its payload is closed, nothing sent [MQTT-3.1.4-1]."""
        self.assertRefusedWith(connectBytes(payloadExtra=b"\x00"), b"")

    def test_willRetainWithoutWillFlag(self) -> None:
        """A 3.1.1 CONNECT with Will Retain but no will is closed, nothing sent."""
        self.assertRefusedWith(connectBytes(flags=0x22), b"")

    def test_passwordWithoutUserName(self) -> None:
        """A 3.1.1 CONNECT with a password but no user name is closed [MQTT-3.1.2-22]."""
        self.assertRefusedWith(connectBytes(flags=0x42, payloadExtra=mqttString(b"pw")), b"")

    def test_mqtt31MalformedConnect(self) -> None:
        """A malformed 3.1 CONNECT is closed without a CONNACK."""
        self.assertRefusedWith(connectBytes(level=MQTT_3_1, flags=0x03), b"", MQTT_3_1)

    def test_v5ReservedFlag(self) -> None:
        """A v5 CONNECT with the reserved flag set gets CONNACK 0x81 Malformed, then close."""
        self.assertRefusedWith(
            connectBytes(level=MQTT_5, flags=0x03), b"\x20\x03\x00\x81\x00", MQTT_5
        )

    def test_v5ReceiveMaximumZero(self) -> None:
        """A v5 CONNECT with Receive Maximum 0 gets CONNACK 0x82 Protocol Error, then close."""
        self.assertRefusedWith(
            connectBytes(level=MQTT_5, properties=b"\x21\x00\x00"), b"\x20\x03\x00\x82\x00", MQTT_5
        )

    def test_v5AuthenticationMethod(self) -> None:
        """A v5 CONNECT with an unknown Authentication Method gets CONNACK 0x8C, then close."""
        self.assertRefusedV5(
            connectBytes(level=MQTT_5, properties=b"\x15" + mqttString(b"SCRAM-SHA-1")), 0x8C
        )

    def test_nothingProcessedAfterRefusedConnect(self) -> None:
        """Packets sent after a refused CONNECT are not processed [MQTT-3.1.4-5]."""
        watcher = subscriber(self.env, "watcher", "#")
        data = connectBytes(level=MQTT_5, properties=b"\x15" + mqttString(b"X")) + publishBytes(
            b"t", b"sneaky", v5=True
        )
        self.assertRefusedV5(data, 0x8C)
        self.assertEqual(watcher.take(), [])
        self.assertEqual(self.env.broker.stats()["messagesIn"], 0)

    def test_mqtt31ClientIdLength(self) -> None:
        """MQTT 3.1 accepts client ids of 1 to 23 characters and refuses others with 20 02 00 02."""
        for clientId, expected in [
            (b"", b"\x20\x02\x00\x02"),
            (b"x" * 24, b"\x20\x02\x00\x02"),
            (b"y" * 23, b"\x20\x02\x00\x00"),
            (b"z", b"\x20\x02\x00\x00"),
        ]:
            client, wire = self.rawConnect(connectBytes(clientId, level=MQTT_3_1), MQTT_3_1)
            self.assertEqual(bytes(wire), expected, clientId)
            self.assertEqual(client.closed, expected[-1] != 0, clientId)

    def test_emptyClientIdCleanSession(self) -> None:
        """3.1.1: an empty client id with clean session is accepted with a generated id."""
        client, wire = self.rawConnect(connectBytes(b"", flags=0x02))
        self.assertEqual(bytes(wire), b"\x20\x02\x00\x00")
        self.assertFalse(client.closed)
        clientId = self.env.serverFor(client).clientId
        self.assertTrue(clientId)
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], [clientId])
        client.ping()
        self.env.flush()
        self.assertEqual(bytes(wire), b"\x20\x02\x00\x00\xd0\x00")

    def test_generatedClientIdsAreDistinct(self) -> None:
        """Two clients with empty ids get different generated ids."""
        first, _ = self.rawConnect(connectBytes(b""))
        second, _ = self.rawConnect(connectBytes(b""))
        self.assertNotEqual(
            self.env.serverFor(first).clientId, self.env.serverFor(second).clientId
        )
        self.assertFalse(first.closed)
        self.assertFalse(second.closed)

    def test_emptyClientIdPersistentSession(self) -> None:
        """3.1.1: an empty client id with clean session 0 gets 20 02 00 02 [MQTT-3.1.3-8]."""
        self.assertRefusedWith(connectBytes(b"", flags=0x00), b"\x20\x02\x00\x02")
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_v5EmptyClientIdAssigned(self) -> None:
        """v5: an empty client id is accepted and the CONNACK carries the Assigned Client Identifier."""
        first = self.env.connect("", protocolLevel=MQTT_5)
        second = self.env.connect("", protocolLevel=MQTT_5)
        ids = []
        for client in (first, second):
            assigned = client.connack.properties[PropertyId.ASSIGNED_CLIENT_IDENTIFIER]
            self.assertTrue(assigned)
            self.assertEqual(self.env.serverFor(client).clientId, assigned)
            ids.append(assigned)
        self.assertNotEqual(ids[0], ids[1])
        self.assertEqual(sorted(s.clientId for s in self.env.broker.listSessions()), sorted(ids))

    def test_v5GivenClientIdNotAssigned(self) -> None:
        """v5: a non-empty client id is used as is, without Assigned Client Identifier."""
        client = self.env.connect("given", protocolLevel=MQTT_5)
        self.assertNotIn(PropertyId.ASSIGNED_CLIENT_IDENTIFIER, client.connack.properties)
        self.assertEqual(self.env.serverFor(client).clientId, "given")

    def test_firstPacketNotConnect(self) -> None:
        """A first packet other than CONNECT is closed, nothing sent [MQTT-3.1.0-1]."""
        self.assertRefusedWith(b"\xc0\x00", b"")

    def test_secondConnect311(self) -> None:
        """3.1.1: a second CONNECT closes the connection without any reply [MQTT-3.1.0-2]."""
        client = self.env.connect("twice")
        wire = record(client)
        client.sendRaw(connectBytes(b"twice"))
        self.env.flush()
        self.assertEqual(bytes(wire), b"")
        self.assertTrue(client.closed)

    def test_secondConnectV5(self) -> None:
        """v5: a second CONNECT gets DISCONNECT 0x82, then close."""
        client = self.env.connect("twice", protocolLevel=MQTT_5)
        wire = record(client)
        client.sendRaw(connectBytes(b"twice", level=MQTT_5))
        self.env.flush()
        assertFailureReply(self, wire, Disconnect, 0x82)
        self.assertTrue(client.closed)

    def test_authFromClient(self) -> None:
        """v5: AUTH from a client that did not ask for enhanced auth gets DISCONNECT 0x82."""
        client = self.env.connect("auth", protocolLevel=MQTT_5)
        wire = record(client)
        client.sendRaw(b"\xf0\x02\x18\x00")
        self.env.flush()
        assertFailureReply(self, wire, Disconnect, 0x82)
        self.assertTrue(client.closed)

    def test_authFrom311Client(self) -> None:
        """3.1.1 has no AUTH packet: it is closed without a reply."""
        client = self.env.connect("auth")
        wire = record(client)
        client.sendRaw(b"\xf0\x00")
        self.env.flush()
        self.assertEqual(bytes(wire), b"")
        self.assertTrue(client.closed)

    def test_pingResponse(self) -> None:
        """PINGREQ is answered with PINGRESP D0 00 [MQTT-3.12.4-1]."""
        client = self.env.connect("ping")
        wire = record(client)
        client.ping()
        self.env.flush()
        self.assertEqual(bytes(wire), b"\xd0\x00")


# ---------------------------------------------------------------------------
# Keep-alive and connect timeout
# ---------------------------------------------------------------------------


class KeepAliveTests(SynchronousTestCase):
    """
    Keep-alive (1.5 x Keep Alive [MQTT-3.1.2-24]) and the connect deadline.
    """

    def test_keepAliveExpiryPublishesWill(self) -> None:
        """3.1.1: silent for 1.5 x keep-alive: bare close and the will is published."""
        env = InMemoryBroker()
        watcher = subscriber(env, "watcher", "will/#")
        client = env.connect("ka", keepAlive=10, will=Will("will/ka", b"gone"))
        wire = record(client)
        env.advance(14)
        self.assertFalse(client.closed)
        self.assertEqual(watcher.take(), [])
        env.advance(1)
        self.assertTrue(client.closed)
        self.assertEqual(bytes(wire), b"")
        self.assertEqual(watcher.publishes(), [Publish("will/ka", b"gone")])

    def test_keepAliveExpiryV5(self) -> None:
        """v5: keep-alive expiry sends DISCONNECT 0x8D and publishes the will."""
        env = InMemoryBroker()
        watcher = subscriber(env, "watcher", "will/#")
        client = env.connect(
            "ka", protocolLevel=MQTT_5, keepAlive=10, will=Will("will/ka", b"gone")
        )
        wire = record(client)
        env.advance(14)
        self.assertFalse(client.closed)
        env.advance(1)
        assertFailureReply(self, wire, Disconnect, 0x8D)
        self.assertTrue(client.closed)
        self.assertEqual(payloads(watcher.take()), [b"gone"])

    def test_activityResetsKeepAlive(self) -> None:
        """A packet restarts the 1.5 x keep-alive period."""
        env = InMemoryBroker()
        client = env.connect("ka", keepAlive=10)
        env.advance(10)
        client.ping()
        env.flush()
        self.assertEqual(client.take(), [Pingresp()])
        env.advance(14)
        self.assertFalse(client.closed)
        env.advance(1)
        self.assertTrue(client.closed)

    def test_keepAliveZeroNeverExpires(self) -> None:
        """Keep Alive 0 disables the keep-alive timeout."""
        env = InMemoryBroker()
        client = env.connect("ka", keepAlive=0)
        env.advance(10**6)
        self.assertFalse(client.closed)

    def test_partialPacketIsNotActivity(self) -> None:
        """Half a packet does not count as a control packet for keep-alive (RX-03)."""
        env = InMemoryBroker()
        client = env.connect("ka", keepAlive=4)
        env.advance(5)
        client.sendRaw(b"\x30\x7f" + b"\x00\x01t" + b"x" * 7)
        env.flush()
        self.assertFalse(client.closed)
        env.advance(1)
        self.assertTrue(client.closed)

    def test_connectTimeoutClosesSilentSocket(self) -> None:
        """A connection that sends nothing is closed at connect-timeout, nothing sent."""
        env = InMemoryBroker(connectTimeout=3)
        client = env.openClient()
        wire = record(client)
        env.advance(2)
        self.assertFalse(client.closed)
        env.advance(1)
        self.assertTrue(client.closed)
        self.assertEqual(bytes(wire), b"")
        self.assertEqual(env.broker.stats()["connections"], 0)

    def test_connectTimeoutIsADeadline(self) -> None:
        """A CONNECT dribbled a byte at a time is cut off at the deadline (RX-02)."""
        env = InMemoryBroker(connectTimeout=3)
        client = env.openClient()
        wire = record(client)
        data = connectBytes(b"dribbler")
        for i in range(6):
            client.sendRaw(data[i : i + 1])
            env.advance(0.5)
        self.assertTrue(client.closed)
        self.assertEqual(bytes(wire), b"")

    def test_connectTimeoutCancelledByConnect(self) -> None:
        """Once CONNECT is accepted the connect deadline no longer applies."""
        env = InMemoryBroker(connectTimeout=3)
        client = env.connect("fine")
        env.advance(100)
        self.assertFalse(client.closed)


# ---------------------------------------------------------------------------
# Takeover and wills
# ---------------------------------------------------------------------------


class TakeoverAndWillTests(SynchronousTestCase):
    """
    Client id takeover [MQTT-3.1.4-2] and will messages.
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()
        self.watcher = subscriber(self.env, "watcher", "will/#")

    def test_takeover311(self) -> None:
        """3.1.1: the old connection is closed without a packet; the new one works."""
        old = self.env.connect("dup")
        wire = record(old)
        new = self.env.connect("dup")
        self.assertTrue(old.closed)
        self.assertEqual(bytes(wire), b"")
        self.assertFalse(new.closed)
        self.assertIs(self.env.broker.connections["dup"], self.env.serverFor(new))
        self.assertEqual(self.env.broker.stats()["connections"], 2)

    def test_takeoverV5(self) -> None:
        """v5: the old connection gets DISCONNECT 0x8E, then close [MQTT-3.1.4-3]."""
        old = self.env.connect("dup", protocolLevel=MQTT_5)
        wire = record(old)
        new = self.env.connect("dup", protocolLevel=MQTT_5)
        assertFailureReply(self, wire, Disconnect, 0x8E)
        self.assertTrue(old.closed)
        self.assertFalse(new.closed)

    def test_takeoverKeepsPersistentSession(self) -> None:
        """A takeover with clean session 0 keeps the subscriptions: Session Present 1."""
        subscriber(self.env, "dup", "s", 1, cleanStart=False)
        new = self.env.connect("dup", cleanStart=False)
        self.assertTrue(new.connack.sessionPresent)
        self.env.broker.publish("s", b"after", qos=1)
        self.env.flush()
        self.assertEqual(payloads(new.take()), [b"after"])

    def willOnTakeover(self, oldClean: bool, newClean: bool) -> list[bytes]:
        self.env.connect("dup", cleanStart=oldClean, will=Will("will/dup", b"w"))
        self.env.connect("dup", cleanStart=newClean)
        return payloads(self.watcher.take())

    def test_willOnTakeoverCleanOld(self) -> None:
        """3.1.x: a clean session taken over by a persistent one publishes the will."""
        self.assertEqual(self.willOnTakeover(True, False), [b"w"])

    def test_willOnTakeoverCleanNew(self) -> None:
        """3.1.x: a persistent session taken over by a clean one publishes the will."""
        self.assertEqual(self.willOnTakeover(False, True), [b"w"])

    def test_willOnTakeoverBothClean(self) -> None:
        """3.1.x: a clean session taken over by a clean one publishes the will."""
        self.assertEqual(self.willOnTakeover(True, True), [b"w"])

    def test_noWillOnTakeoverBothPersistent(self) -> None:
        """3.1.x: a persistent session resumed by a persistent one publishes no will."""
        self.assertEqual(self.willOnTakeover(False, False), [])

    def test_willOnTakeoverV5(self) -> None:
        """v5: a will without delay is published when its connection is taken over."""
        self.env.connect(
            "dup",
            protocolLevel=MQTT_5,
            will=Will("will/dup", b"w"),
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 100},
        )
        self.env.connect(
            "dup",
            protocolLevel=MQTT_5,
            cleanStart=False,
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 100},
        )
        self.assertEqual(payloads(self.watcher.take()), [b"w"])

    def test_delayedWillNotPublishedOnResumingTakeoverV5(self) -> None:
        """v5: a delayed will is not published when the session is resumed within the delay."""
        self.env.connect(
            "dup",
            protocolLevel=MQTT_5,
            will=Will("will/dup", b"w", properties={PropertyId.WILL_DELAY_INTERVAL: 10}),
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 100},
        )
        self.env.connect(
            "dup",
            protocolLevel=MQTT_5,
            cleanStart=False,
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 100},
        )
        self.env.advance(20)
        self.assertEqual(self.watcher.take(), [])

    def test_disconnectDiscardsWill311(self) -> None:
        """3.1.1: DISCONNECT discards the will [MQTT-3.1.2-10]."""
        client = self.env.connect("w", will=Will("will/w", b"w"))
        client.disconnect()
        self.env.flush()
        self.assertTrue(client.closed)
        self.assertEqual(self.watcher.take(), [])

    def test_disconnectDiscardsWillV5(self) -> None:
        """v5: DISCONNECT 0x00 discards the will."""
        client = self.env.connect("w", protocolLevel=MQTT_5, will=Will("will/w", b"w"))
        client.disconnect(0x00)
        self.env.flush()
        self.assertEqual(self.watcher.take(), [])

    def test_disconnectWithWillV5(self) -> None:
        """v5: DISCONNECT 0x04 (Disconnect with Will Message) keeps the will."""
        client = self.env.connect("w", protocolLevel=MQTT_5, will=Will("will/w", b"w"))
        client.disconnect(0x04)
        self.env.flush()
        self.assertEqual(payloads(self.watcher.take()), [b"w"])

    def test_connectionLossPublishesWill(self) -> None:
        """A connection lost without DISCONNECT publishes the will, at its QoS."""
        client = self.env.connect("w", will=Will("will/w", b"lost", qos=1))
        self.watcher.subscribe("will/#", 1)
        self.env.flush()
        self.watcher.take()
        client.transport.loseConnection()
        self.env.flush()
        [will] = self.watcher.publishes()
        self.assertEqual(
            (will.topic, will.payload, will.qos, will.retain), ("will/w", b"lost", 1, False)
        )

    def test_retainedWill(self) -> None:
        """A will with Will Retain is stored as the topic's retained message."""
        client = self.env.connect("w", will=Will("will/r", b"kept", retain=True))
        client.transport.loseConnection()
        self.env.flush()
        [message] = self.env.broker.retained("will/r")
        self.assertEqual(message.payload, b"kept")
        late = subscriber(self.env, "late", "will/r")
        self.assertEqual(late.publishes(), [Publish("will/r", b"kept", retain=True)])

    def test_willDelayV5(self) -> None:
        """v5: the will waits for the Will Delay Interval [MQTT-3.1.3-9]."""
        client = self.env.connect(
            "w",
            protocolLevel=MQTT_5,
            will=Will("will/w", b"late", properties={PropertyId.WILL_DELAY_INTERVAL: 5}),
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 100},
        )
        client.transport.loseConnection()
        self.env.flush()
        self.env.advance(4)
        self.assertEqual(self.watcher.take(), [])
        self.env.advance(1)
        self.assertEqual(payloads(self.watcher.take()), [b"late"])

    def test_reconnectWithinWillDelay(self) -> None:
        """v5: reconnecting within the Will Delay Interval cancels the will."""
        client = self.env.connect(
            "w",
            protocolLevel=MQTT_5,
            will=Will("will/w", b"late", properties={PropertyId.WILL_DELAY_INTERVAL: 5}),
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 100},
        )
        client.transport.loseConnection()
        self.env.advance(3)
        self.env.connect(
            "w",
            protocolLevel=MQTT_5,
            cleanStart=False,
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 100},
        )
        self.env.advance(10)
        self.assertEqual(self.watcher.take(), [])

    def test_willAtSessionEndBeforeDelay(self) -> None:
        """v5: the will goes out when the session ends if that comes before the will delay."""
        client = self.env.connect(
            "w",
            protocolLevel=MQTT_5,
            will=Will("will/w", b"end", properties={PropertyId.WILL_DELAY_INTERVAL: 50}),
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 10},
        )
        client.transport.loseConnection()
        self.env.flush()
        self.env.advance(9)
        self.assertEqual(self.watcher.take(), [])
        self.env.advance(1)
        self.assertEqual(payloads(self.watcher.take()), [b"end"])


# ---------------------------------------------------------------------------
# QoS flows
# ---------------------------------------------------------------------------


class QosFlowTests(SynchronousTestCase):
    """
    QoS 0/1/2 in both directions (section 4.3) and the ack rules.
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()

    def test_qos0(self) -> None:
        """QoS 0 is forwarded once, with no acknowledgement to the publisher."""
        sub = subscriber(self.env, "sub", "a/+", 0)
        pub = self.env.connect("pub")
        wire = record(pub)
        pub.publish("a/b", b"zero")
        self.env.flush()
        self.assertEqual(sub.take(), [Publish("a/b", b"zero")])
        self.assertEqual(bytes(wire), b"")

    def test_qos1(self) -> None:
        """QoS 1: PUBACK 40 02 to the publisher, a QoS 1 PUBLISH to the subscriber."""
        sub = self.env.connect("sub", autoAck=False)
        sub.subscribe("a", 1)
        self.env.flush()
        sub.take()
        pub = self.env.connect("pub")
        wire = record(pub)
        pub.publish("a", b"one", qos=1, packetId=0x1234)
        self.env.flush()
        self.assertEqual(bytes(wire), b"\x40\x02\x12\x34")
        [message] = sub.publishes()
        self.assertEqual(
            (message.topic, message.payload, message.qos, message.dup), ("a", b"one", 1, False)
        )
        self.assertNotIn(message.packetId, (None, 0))
        session = self.env.broker.sessions["sub"]
        self.assertEqual(list(session.inflight), [message.packetId])
        sub.send(Puback(message.packetId))
        self.env.flush()
        self.assertEqual(session.inflight, {})

    def test_v5PubackNoMatchingSubscribers(self) -> None:
        """v5: a QoS 1 PUBLISH nobody subscribes to gets PUBACK 40 03 mid 10."""
        pub = self.env.connect("pub", protocolLevel=MQTT_5)
        wire = record(pub)
        pub.publish("nobody", b"x", qos=1, packetId=5)
        self.env.flush()
        self.assertEqual(bytes(wire), b"\x40\x03\x00\x05\x10")

    def test_v5PubrecNoMatchingSubscribers(self) -> None:
        """v5: a QoS 2 PUBLISH nobody subscribes to gets PUBREC with 0x10."""
        pub = self.env.connect("pub", protocolLevel=MQTT_5)
        wire = record(pub)
        pub.publish("nobody", b"x", qos=2, packetId=5)
        self.env.flush()
        self.assertEqual(bytes(wire), b"\x50\x03\x00\x05\x10")

    def test_311PubackNoMatchingSubscribers(self) -> None:
        """3.1.1 has no reason codes: PUBACK 40 02 mid even with no subscribers."""
        pub = self.env.connect("pub")
        wire = record(pub)
        pub.publish("nobody", b"x", qos=1, packetId=5)
        self.env.flush()
        self.assertEqual(bytes(wire), b"\x40\x02\x00\x05")

    def test_inboundQos2(self) -> None:
        """Inbound QoS 2: PUBREC, duplicates re-acknowledged and not forwarded, PUBREL->PUBCOMP."""
        sub = subscriber(self.env, "sub", "q", 2)
        pub = self.env.connect("pub")
        wire = record(pub)
        pub.publish("q", b"first", qos=2, packetId=7)
        self.env.flush()
        self.assertEqual(bytes(wire), b"\x50\x02\x00\x07")
        self.assertEqual(payloads(sub.take()), [b"first"])
        # The same id before PUBREL, without and with DUP [MQTT-4.3.3-2].
        pub.publish("q", b"first", qos=2, packetId=7)
        pub.publish("q", b"first", qos=2, packetId=7, dup=True)
        self.env.flush()
        self.assertEqual(bytes(wire), b"\x50\x02\x00\x07" * 3)
        self.assertEqual(payloads(sub.take()), [])
        self.assertEqual(self.env.broker.stats()["messagesIn"], 1)
        pub.send(Pubrel(7))
        self.env.flush()
        self.assertEqual(bytes(wire[12:]), b"\x70\x02\x00\x07")
        # After PUBCOMP the identifier is new again.
        pub.publish("q", b"second", qos=2, packetId=7)
        self.env.flush()
        self.assertEqual(payloads(sub.take()), [b"second"])

    def test_inboundQos2DuplicateV5(self) -> None:
        """v5: a QoS 2 duplicate before PUBREL is acknowledged again and not forwarded."""
        sub = subscriber(self.env, "sub", "q", 2)
        pub = self.env.connect("pub", protocolLevel=MQTT_5)
        pub.publish("q", b"m", qos=2, packetId=3)
        pub.publish("q", b"m", qos=2, packetId=3, dup=True)
        self.env.flush()
        self.assertEqual([type(p) for p in pub.take()], [Pubrec, Pubrec])
        self.assertEqual(payloads(sub.take()), [b"m"])

    def test_unknownPubrel311(self) -> None:
        """3.1.1: PUBREL for an unknown id is answered with PUBCOMP 70 02 mid."""
        client = self.env.connect("c")
        wire = record(client)
        client.send(Pubrel(9))
        self.env.flush()
        self.assertEqual(bytes(wire), b"\x70\x02\x00\x09")
        self.assertFalse(client.closed)

    def test_unknownPubrelV5(self) -> None:
        """v5: PUBREL for an unknown id gets PUBCOMP 0x92 (identifier not found)."""
        client = self.env.connect("c", protocolLevel=MQTT_5)
        wire = record(client)
        client.send(Pubrel(9))
        self.env.flush()
        assertFailureReply(self, wire, Pubcomp, 0x92, packetId=9)
        self.assertFalse(client.closed)

    def test_outboundQos2(self) -> None:
        """Outbound QoS 2: PUBLISH, PUBREC -> PUBREL 62 02 mid, PUBCOMP completes it."""
        sub = self.env.connect("sub", autoAck=False)
        sub.subscribe("q", 2)
        self.env.flush()
        sub.take()
        self.env.broker.publish("q", b"two", qos=2)
        self.env.flush()
        [message] = sub.publishes()
        self.assertEqual(message.qos, 2)
        wire = record(sub)
        sub.send(Pubrec(message.packetId))
        self.env.flush()
        self.assertEqual(bytes(wire), b"\x62\x02" + pid(message.packetId))
        session = self.env.broker.sessions["sub"]
        self.assertEqual(len(session.inflight), 1)
        sub.send(Pubcomp(message.packetId))
        self.env.flush()
        self.assertEqual(session.inflight, {})

    def wrongAck(self, level: int, subQos: int, acks: list[Any]) -> tuple[MQTTTestClient, bytes]:
        sub = self.env.connect("sub", protocolLevel=level, autoAck=False)
        sub.subscribe("q", subQos)
        self.env.flush()
        sub.take()
        self.env.broker.publish("q", b"m", qos=subQos)
        self.env.flush()
        [message] = sub.publishes()
        wire = record(sub)
        for ack in acks:
            sub.send(ack(message.packetId))
            self.env.flush()
        return sub, bytes(wire)

    def test_pubrecForQos1(self) -> None:
        """v5: PUBREC for a QoS 1 delivery is a protocol error: DISCONNECT 0x82."""
        sub, wire = self.wrongAck(MQTT_5, 1, [Pubrec])
        assertFailureReply(self, wire, Disconnect, 0x82)
        self.assertTrue(sub.closed)

    def test_pubcompBeforePubrec(self) -> None:
        """v5: PUBCOMP before PUBREC is a protocol error: DISCONNECT 0x82."""
        sub, wire = self.wrongAck(MQTT_5, 2, [Pubcomp])
        assertFailureReply(self, wire, Disconnect, 0x82)
        self.assertTrue(sub.closed)

    def test_pubackForQos2(self) -> None:
        """v5: PUBACK for a QoS 2 delivery is a protocol error: DISCONNECT 0x82."""
        sub, wire = self.wrongAck(MQTT_5, 2, [Puback])
        assertFailureReply(self, wire, Disconnect, 0x82)
        self.assertTrue(sub.closed)

    def test_pubackAfterPubrec(self) -> None:
        """v5: PUBACK for a QoS 2 delivery already released is a protocol error too."""
        sub, wire = self.wrongAck(MQTT_5, 2, [Pubrec, Puback])
        pubrel, disconnect = decodeV5(wire)
        self.assertIsInstance(pubrel, Pubrel)
        assertFailureReply(self, disconnect, Disconnect, 0x82)
        self.assertEqual([type(p) for p in sub.take()], [Pubrel, Disconnect])
        self.assertTrue(sub.closed)

    def test_wrongAck311(self) -> None:
        """3.1.1: a wrong acknowledgement type closes the connection without a packet."""
        sub, wire = self.wrongAck(MQTT_3_1_1, 1, [Pubrec])
        self.assertEqual(wire, b"")
        self.assertTrue(sub.closed)

    def test_unsolicitedAcksIgnored(self) -> None:
        """PUBACK, PUBREC and PUBCOMP for ids not in flight are ignored."""
        for level in (MQTT_3_1_1, MQTT_5):
            client = self.env.connect(f"c{level}", protocolLevel=level)
            wire = record(client)
            client.send(Puback(5))
            client.send(Pubrec(6))
            client.send(Pubcomp(7))
            client.ping()
            self.env.flush()
            self.assertEqual(bytes(wire), b"\xd0\x00")
            self.assertFalse(client.closed)

    def test_overlappingSubscriptionsOneCopy(self) -> None:
        """Overlapping subscriptions give one copy at the highest granted QoS [MQTT-3.3.5-1]."""
        sub = self.env.connect("sub")
        sub.send(
            Subscribe(
                1,
                (
                    SubscriptionRequest("a/#", 1),
                    SubscriptionRequest("a/+", 2),
                    SubscriptionRequest("#", 0),
                ),
            )
        )
        self.env.flush()
        self.assertEqual(sub.take(), [Suback(1, (1, 2, 0))])
        pub = self.env.connect("pub")
        pub.publish("a/b", b"x", qos=2)
        pub.publish("a/b", b"y", qos=1)
        pub.publish("a/b/c", b"z", qos=2)
        self.env.flush()
        received = sub.publishes()
        self.assertEqual([(p.payload, p.qos) for p in received], [(b"x", 2), (b"y", 1), (b"z", 1)])

    def test_deliveryQosIsMinimum(self) -> None:
        """The delivery QoS is min(published QoS, granted QoS)."""
        sub = self.env.connect("sub")
        sub.send(Subscribe(1, tuple(SubscriptionRequest(f"m/{q}", q) for q in range(3))))
        self.env.flush()
        sub.take()
        pub = self.env.connect("pub")
        for granted in range(3):
            for published in range(3):
                pub.publish(f"m/{granted}", b"%d%d" % (granted, published), qos=published)
        self.env.flush()
        got = {p.payload: p.qos for p in sub.publishes()}
        expected = {b"%d%d" % (g, q): min(g, q) for g in range(3) for q in range(3)}
        self.assertEqual(got, expected)

    def test_resendOnlyOnReconnect(self) -> None:
        """Unacknowledged QoS 1 is resent with DUP=1 only on reconnect [MQTT-4.4.0-1]."""
        sub = self.env.connect("sub", autoAck=False, cleanStart=False)
        sub.subscribe("r", 1)
        self.env.flush()
        sub.take()
        self.env.broker.publish("r", b"again", qos=1)
        self.env.flush()
        [first] = sub.publishes()
        self.assertFalse(first.dup)
        self.env.advance(3600)
        self.assertEqual(sub.take(), [])
        sub.transport.loseConnection()
        self.env.flush()
        again = self.env.connect("sub", autoAck=False, cleanStart=False)
        self.assertTrue(again.connack.sessionPresent)
        self.assertEqual(again.take(), [Publish("r", b"again", 1, False, True, first.packetId)])
        again.send(Puback(first.packetId))
        self.env.flush()
        self.assertEqual(self.env.broker.sessions["sub"].inflight, {})

    def test_pubrelResentOnReconnect(self) -> None:
        """A QoS 2 delivery acknowledged with PUBREC is resumed with PUBREL on reconnect."""
        sub = self.env.connect("sub", autoAck=False, cleanStart=False)
        sub.subscribe("r", 2)
        self.env.flush()
        sub.take()
        self.env.broker.publish("r", b"two", qos=2)
        self.env.flush()
        [message] = sub.publishes()
        sub.send(Pubrec(message.packetId))
        self.env.flush()
        self.assertEqual(sub.take(), [Pubrel(message.packetId)])
        self.env.advance(3600)
        self.assertEqual(sub.take(), [])
        sub.transport.loseConnection()
        self.env.flush()
        again = self.env.connect("sub", autoAck=False, cleanStart=False)
        wire = record(again)
        self.assertEqual(again.take(), [Pubrel(message.packetId)])
        again.send(Pubcomp(message.packetId))
        self.env.flush()
        self.assertEqual(bytes(wire), b"")
        self.assertEqual(self.env.broker.sessions["sub"].inflight, {})

    def test_inflightResentBeforeQueued(self) -> None:
        """On reconnect the in-flight messages come first, then the queued ones, in order."""
        sub = self.env.connect("sub", autoAck=False, cleanStart=False)
        sub.subscribe("o", 1)
        self.env.flush()
        sub.take()
        self.env.broker.publish("o", b"1", qos=1)
        self.env.flush()
        sub.transport.loseConnection()
        self.env.flush()
        self.env.broker.publish("o", b"2", qos=1)
        self.env.broker.publish("o", b"3", qos=1)
        again = self.env.connect("sub", autoAck=False, cleanStart=False)
        received = again.publishes()
        self.assertEqual(
            [(p.payload, p.dup) for p in received], [(b"1", True), (b"2", False), (b"3", False)]
        )
        self.assertEqual(len({p.packetId for p in received}), 3)


# ---------------------------------------------------------------------------
# Retained messages
# ---------------------------------------------------------------------------


class RetainedTests(SynchronousTestCase):
    """
    Retained messages (section 3.3.1.3).
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()
        self.pub = self.env.connect("pub")

    def test_liveDeliveryClearsRetain(self) -> None:
        """A live delivery has RETAIN 0 [MQTT-3.3.1-9]; a replay on subscribe has RETAIN 1."""
        live = subscriber(self.env, "live", "r/#", 1)
        self.pub.publish("r/a", b"kept", qos=1, retain=True)
        self.env.flush()
        [message] = live.publishes()
        self.assertFalse(message.retain)
        late = subscriber(self.env, "late", "r/#", 1)
        [replayed] = late.publishes()
        self.assertEqual(
            (replayed.topic, replayed.payload, replayed.retain, replayed.qos),
            ("r/a", b"kept", True, 1),
        )

    def test_replayQosIsMinimum(self) -> None:
        """A retained replay is sent at min(stored QoS, granted QoS)."""
        self.pub.publish("r/2", b"two", qos=2, retain=True)
        self.pub.publish("r/0", b"zero", qos=0, retain=True)
        self.env.flush()
        late = subscriber(self.env, "late", "r/+", 1)
        got = {p.payload: (p.qos, p.retain) for p in late.publishes()}
        self.assertEqual(got, {b"two": (1, True), b"zero": (0, True)})

    def test_replacedRetained(self) -> None:
        """A new retained message replaces the topic's previous one."""
        self.pub.publish("r", b"old", retain=True)
        self.pub.publish("r", b"new", retain=True)
        self.env.flush()
        late = subscriber(self.env, "late", "r")
        self.assertEqual(late.publishes(), [Publish("r", b"new", retain=True)])

    def test_emptyPayloadClears(self) -> None:
        """An empty retained payload clears the topic [MQTT-3.3.1-10] and is delivered live."""
        self.pub.publish("r", b"x", retain=True)
        self.env.flush()
        live = subscriber(self.env, "live", "r")
        self.assertEqual(payloads(live.take()), [b"x"])
        self.pub.publish("r", b"", retain=True)
        self.env.flush()
        self.assertEqual(live.publishes(), [Publish("r", b"")])
        self.assertEqual(self.env.broker.stats()["retained"], 0)
        late = subscriber(self.env, "late", "r")
        self.assertEqual(late.take(), [])

    def test_notRetainedWithoutFlag(self) -> None:
        """A message without RETAIN is not stored."""
        self.pub.publish("r", b"x")
        self.env.flush()
        late = subscriber(self.env, "late", "#")
        self.assertEqual(late.take(), [])

    def test_retainAsPublishedV5(self) -> None:
        """v5 Retain As Published keeps RETAIN 1 on live deliveries."""
        sub = self.env.connect("sub", protocolLevel=MQTT_5)
        sub.send(Subscribe(1, (SubscriptionRequest("r", 0, retainAsPublished=True),)))
        self.env.flush()
        sub.take()
        self.pub.publish("r", b"x", retain=True)
        self.env.flush()
        [message] = sub.publishes()
        self.assertTrue(message.retain)

    def test_retainHandlingV5(self) -> None:
        """v5 Retain Handling 1 replays only for a new subscription, 2 never."""
        self.pub.publish("r", b"x", retain=True)
        self.env.flush()
        sub = self.env.connect("sub", protocolLevel=MQTT_5)
        sub.send(Subscribe(1, (SubscriptionRequest("r", 0, retainHandling=1),)))
        self.env.flush()
        self.assertEqual(payloads(sub.take()), [b"x"])
        sub.send(Subscribe(2, (SubscriptionRequest("r", 0, retainHandling=1),)))
        self.env.flush()
        self.assertEqual(payloads(sub.take()), [])
        sub.send(Subscribe(3, (SubscriptionRequest("r/#", 0, retainHandling=2),)))
        self.env.flush()
        self.assertEqual(payloads(sub.take()), [])


# ---------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------


class SessionTests(SynchronousTestCase):
    """
    Clean, persistent and expiring sessions.
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()

    def leave(self, client: MQTTTestClient) -> None:
        client.disconnect()
        self.env.flush()

    def test_cleanSessionDiscarded(self) -> None:
        """3.1.1: a clean session ends with its connection."""
        sub = subscriber(self.env, "s", "t", 1, cleanStart=True)
        self.leave(sub)
        self.assertEqual(self.env.broker.listSessions(), [])
        again = self.env.connect("s", cleanStart=False)
        self.assertFalse(again.connack.sessionPresent)
        self.env.broker.publish("t", b"x", qos=1)
        self.env.flush()
        self.assertEqual(again.take(), [])

    def test_cleanSessionDiscardsPersistentOne(self) -> None:
        """3.1.1: connecting with clean session 1 discards a stored session."""
        sub = subscriber(self.env, "s", "t", 1, cleanStart=False)
        self.leave(sub)
        again = self.env.connect("s", cleanStart=True)
        self.assertFalse(again.connack.sessionPresent)
        self.env.broker.publish("t", b"x", qos=1)
        self.env.flush()
        self.assertEqual(again.take(), [])

    def test_persistentSessionQueuesQos1And2Only(self) -> None:
        """QoS 0 is not queued for an offline session; QoS 1/2 are, delivered in order."""
        sub = subscriber(self.env, "s", "t/#", 2, cleanStart=False)
        self.leave(sub)
        pub = self.env.connect("pub")
        for i, qos in enumerate([0, 1, 0, 2, 1]):
            pub.publish("t/x", b"%d" % i, qos=qos)
        self.env.flush()
        again = self.env.connect("s", cleanStart=False)
        self.assertTrue(again.connack.sessionPresent)
        received = again.publishes()
        self.assertEqual([(p.payload, p.qos) for p in received], [(b"1", 1), (b"3", 2), (b"4", 1)])
        self.assertEqual(self.env.broker.stats()["messagesDropped"], 0)

    def test_v5SessionExpiry(self) -> None:
        """v5: a session with Session Expiry Interval 10 is gone 10 s after the disconnect."""
        props = {PropertyId.SESSION_EXPIRY_INTERVAL: 10}
        sub = subscriber(self.env, "s", "t", 1, protocolLevel=MQTT_5, properties=props)
        self.leave(sub)
        self.env.advance(9)
        [info] = self.env.broker.listSessions()
        self.assertEqual((info.clientId, info.connected, info.expiryInterval), ("s", False, 10))
        self.env.broker.publish("t", b"kept", qos=1)
        self.env.advance(1)
        self.assertEqual(self.env.broker.listSessions(), [])
        again = self.env.connect("s", protocolLevel=MQTT_5, cleanStart=False, properties=props)
        self.assertFalse(again.connack.sessionPresent)
        self.assertEqual(again.take(), [])

    def test_v5SessionResumedWithinExpiry(self) -> None:
        """v5: reconnecting within the expiry resumes the session with its queued messages."""
        props = {PropertyId.SESSION_EXPIRY_INTERVAL: 10}
        sub = subscriber(self.env, "s", "t", 1, protocolLevel=MQTT_5, properties=props)
        self.leave(sub)
        self.env.broker.publish("t", b"kept", qos=1)
        self.env.advance(9)
        again = self.env.connect("s", protocolLevel=MQTT_5, cleanStart=False, properties=props)
        self.assertTrue(again.connack.sessionPresent)
        self.assertEqual(payloads(again.take()), [b"kept"])
        # The expiry timer of the first connection must not end the resumed session.
        self.env.advance(5)
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], ["s"])

    def test_v5NoExpiryEndsAtDisconnect(self) -> None:
        """v5: without Session Expiry Interval the session ends with the connection."""
        sub = subscriber(self.env, "s", "t", 1, protocolLevel=MQTT_5)
        self.leave(sub)
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_v5CleanStartDiscardsSession(self) -> None:
        """v5: Clean Start 1 discards an existing session: Session Present 0."""
        props = {PropertyId.SESSION_EXPIRY_INTERVAL: 100}
        sub = subscriber(self.env, "s", "t", 1, protocolLevel=MQTT_5, properties=props)
        self.leave(sub)
        again = self.env.connect("s", protocolLevel=MQTT_5, cleanStart=True, properties=props)
        self.assertFalse(again.connack.sessionPresent)
        self.assertEqual(self.env.broker.stats()["subscriptions"], 0)

    def test_v5DisconnectSetsExpiryAfterZero(self) -> None:
        """v5: DISCONNECT with a Session Expiry after CONNECT had 0 gets 0x82; the will is sent."""
        watcher = subscriber(self.env, "watcher", "will")
        client = self.env.connect("s", protocolLevel=MQTT_5, will=Will("will", b"w"))
        wire = record(client)
        client.send(Disconnect(0, {PropertyId.SESSION_EXPIRY_INTERVAL: 60}))
        self.env.flush()
        assertFailureReply(self, wire, Disconnect, 0x82)
        self.assertTrue(client.closed)
        # Not a valid DISCONNECT (section 3.14.2.2.2): the will is not discarded.
        self.assertEqual(payloads(watcher.take()), [b"w"])
        self.assertEqual([s.clientId for s in self.env.broker.listSessions()], ["watcher"])

    def test_v5DisconnectChangesExpiry(self) -> None:
        """v5: DISCONNECT may set the expiry to 0 when CONNECT had a non-zero one."""
        props = {PropertyId.SESSION_EXPIRY_INTERVAL: 100}
        sub = subscriber(self.env, "s", "t", 1, protocolLevel=MQTT_5, properties=props)
        sub.disconnect(0, {PropertyId.SESSION_EXPIRY_INTERVAL: 0})
        self.env.flush()
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_messageExpiryForwardedLive(self) -> None:
        """v5: a live delivery carries the Message Expiry Interval once, with its value."""
        sub = subscriber(self.env, "s", "t", 0, protocolLevel=MQTT_5)
        wire = record(sub)
        pub = self.env.connect("p", protocolLevel=MQTT_5)
        pub.publish("t", b"x", properties={PropertyId.MESSAGE_EXPIRY_INTERVAL: 60})
        self.env.flush()
        # Section 3.3: 30, Remaining Length, topic "t", properties [02 00 00 00 3C], payload.
        self.assertEqual(bytes(wire), b"\x30\x0a\x00\x01t\x05\x02\x00\x00\x00\x3cx")
        self.assertFalse(sub.closed)

    def test_messageExpiryWhileQueued(self) -> None:
        """v5: a queued message is forwarded with its remaining expiry, or dropped once expired."""
        props = {PropertyId.SESSION_EXPIRY_INTERVAL: 100}
        sub = subscriber(self.env, "s", "t", 1, protocolLevel=MQTT_5, properties=props)
        self.leave(sub)
        expiring = {PropertyId.MESSAGE_EXPIRY_INTERVAL: 10}
        self.env.broker.publish(
            "t", b"short", qos=1, properties={PropertyId.MESSAGE_EXPIRY_INTERVAL: 3}
        )
        self.env.broker.publish("t", b"long", qos=1, properties=expiring)
        self.env.advance(4)
        again = self.env.connect("s", protocolLevel=MQTT_5, cleanStart=False, properties=props)
        [message] = again.publishes()
        self.assertEqual(message.payload, b"long")
        # [MQTT-3.3.2-6]: the received value minus the time spent waiting.
        self.assertEqual(message.properties[PropertyId.MESSAGE_EXPIRY_INTERVAL], 6)
        self.assertEqual(self.env.broker.stats()["messagesDropped"], 1)


# ---------------------------------------------------------------------------
# Subscriptions
# ---------------------------------------------------------------------------
# Subscriptions
# ---------------------------------------------------------------------------


class SubscriptionTests(SynchronousTestCase):
    """
    SUBSCRIBE and UNSUBSCRIBE.
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()

    def suback(self, level: int, filters: list[tuple[str, int]]) -> tuple[MQTTTestClient, bytes]:
        client = self.env.connect("sub", protocolLevel=level)
        wire = record(client)
        client.send(Subscribe(0x0102, tuple(SubscriptionRequest(f, q) for f, q in filters)))
        self.env.flush()
        return client, bytes(wire)

    def test_subackGrantsRequestedQos(self) -> None:
        """SUBACK grants each requested QoS, in filter order [MQTT-3.8.4-1]."""
        _, wire = self.suback(MQTT_3_1_1, [("a", 0), ("b", 1), ("c", 2)])
        self.assertEqual(wire, b"\x90\x05\x01\x02\x00\x01\x02")

    def test_invalidFilter311(self) -> None:
        """3.1.1: an invalid filter gets return code 0x80, the others are granted."""
        client, wire = self.suback(MQTT_3_1_1, [("a", 0), ("a/#/b", 1), ("c+", 1), ("d", 1)])
        self.assertEqual(wire, b"\x90\x06\x01\x02\x00\x80\x80\x01")
        self.assertFalse(client.closed)
        self.assertEqual(self.env.broker.stats()["subscriptions"], 2)

    def test_invalidFilterV5(self) -> None:
        """v5: an invalid filter gets reason code 0x8F."""
        client, wire = self.suback(MQTT_5, [("a/#/b", 1)])
        assertFailureReply(self, wire, Suback, (0x8F,), packetId=0x0102)
        self.assertFalse(client.closed)

    def test_invalidFilter31(self) -> None:
        """3.1 has no failure return code: an invalid filter closes the connection."""
        client, wire = self.suback(MQTT_3_1, [("a/#/b", 1)])
        self.assertEqual(wire, b"")
        self.assertTrue(client.closed)

    def test_unsubscribe(self) -> None:
        """UNSUBSCRIBE gets UNSUBACK B0 02 mid and stops delivery."""
        sub = subscriber(self.env, "sub", "u", 0)
        wire = record(sub)
        packetId = sub.unsubscribe("u")
        self.env.flush()
        self.assertEqual(bytes(wire), b"\xb0\x02" + pid(packetId))
        self.env.broker.publish("u", b"x")
        self.env.flush()
        self.assertEqual(sub.take(), [Unsuback(packetId)])
        self.assertEqual(self.env.broker.stats()["subscriptions"], 0)

    def test_unsubscribeV5ReasonCodes(self) -> None:
        """v5: UNSUBACK has 0x00 for a removed subscription and 0x11 for a missing one."""
        sub = subscriber(self.env, "sub", "u", 0, protocolLevel=MQTT_5)
        wire = record(sub)
        packetId = sub.unsubscribe("u", "never")
        self.env.flush()
        self.assertEqual(bytes(wire), b"\xb0\x05" + pid(packetId) + b"\x00\x00\x11")

    def test_resubscribeReplaces(self) -> None:
        """Subscribing to the same filter again replaces the subscription (its QoS)."""
        sub = subscriber(self.env, "sub", "a", 0)
        sub.subscribe("a", 1)
        self.env.flush()
        sub.take()
        self.env.broker.publish("a", b"x", qos=1)
        self.env.flush()
        self.assertEqual([(p.payload, p.qos) for p in sub.publishes()], [(b"x", 1)])
        self.assertEqual(self.env.broker.stats()["subscriptions"], 1)

    def test_noLocalV5(self) -> None:
        """v5 No Local: a client's own messages are not delivered to it."""
        client = self.env.connect("me", protocolLevel=MQTT_5)
        client.send(Subscribe(1, (SubscriptionRequest("n", 0, noLocal=True),)))
        self.env.flush()
        client.take()
        other = self.env.connect("other")
        client.publish("n", b"mine")
        other.publish("n", b"theirs")
        self.env.flush()
        self.assertEqual(payloads(client.take()), [b"theirs"])

    def test_sharedSubscription(self) -> None:
        """v5 $share: each message goes to one member of the group, no retained replay."""
        self.env.broker.publish("job", b"old", retain=True)
        members = [
            subscriber(self.env, f"m{n}", "$share/g/job", 1, protocolLevel=MQTT_5)
            for n in range(2)
        ]
        self.assertEqual([m.take() for m in members], [[], []])
        for i in range(6):
            self.env.broker.publish("job", b"%d" % i, qos=1)
        self.env.flush()
        got = [payloads(m.take()) for m in members]
        self.assertEqual(sorted(got[0] + got[1]), [b"%d" % i for i in range(6)])
        self.assertEqual([len(g) for g in got], [3, 3])
        members[0].unsubscribe("$share/g/job")
        self.env.flush()
        members[0].take()
        self.env.broker.publish("job", b"last", qos=1)
        self.env.flush()
        self.assertEqual([payloads(m.take()) for m in members], [[], [b"last"]])

    def test_dollarTopicsNotMatchedByLeadingWildcard(self) -> None:
        """Topics starting with $ are not matched by # or +/... [MQTT-4.7.2-1]."""
        sub = self.env.connect("sub")
        sub.send(Subscribe(1, (SubscriptionRequest("#"), SubscriptionRequest("+/x"))))
        self.env.flush()
        sub.take()
        self.env.broker.publish("$app/x", b"hidden")
        self.env.broker.publish("app/x", b"seen")
        self.env.flush()
        self.assertEqual(payloads(sub.take()), [b"seen"])


# ---------------------------------------------------------------------------
# Limits: one test (at least) per BrokerConfig option
# ---------------------------------------------------------------------------


class LimitTests(SynchronousTestCase):
    """
    Each limit of L{mqttd.config.BrokerConfig}, at and beyond the limit.
    """

    def test_maxPacketSizeV5(self) -> None:
        """v5: a packet of max-packet-size bytes is accepted, one more gets DISCONNECT 0x95."""
        env = InMemoryBroker(maxPacketSize=256)
        sub = subscriber(env, "sub", "t")
        client = env.connect("big", protocolLevel=MQTT_5)
        self.assertEqual(client.connack.properties[PropertyId.MAXIMUM_PACKET_SIZE], 256)
        wire = record(client)
        # 1 + 2 (Remaining Length 253) + 2 + 1 (topic) + 1 (properties) + 249 = 256 bytes.
        exact = publishBytes(b"t", b"x" * 249, v5=True)
        self.assertEqual(len(exact), 256)
        client.sendRaw(exact)
        env.flush()
        self.assertEqual(len(payloads(sub.take())), 1)
        client.sendRaw(publishBytes(b"t", b"x" * 250, v5=True))
        env.flush()
        assertFailureReply(self, wire, Disconnect, 0x95)
        self.assertTrue(client.closed)
        self.assertEqual(sub.take(), [])

    def test_maxPacketSize311(self) -> None:
        """3.1.1: a packet above max-packet-size closes the connection without a packet."""
        env = InMemoryBroker(maxPacketSize=256)
        client = env.connect("big")
        wire = record(client)
        client.sendRaw(publishBytes(b"t", b"x" * 250))
        env.flush()
        self.assertFalse(client.closed)
        client.sendRaw(publishBytes(b"t", b"x" * 251))
        env.flush()
        self.assertEqual(bytes(wire), b"")
        self.assertTrue(client.closed)

    def test_maxPacketSizeDeclaredLength(self) -> None:
        """A too-large declared length is refused before its body arrives."""
        env = InMemoryBroker(maxPacketSize=256)
        client = env.connect("big", protocolLevel=MQTT_5)
        wire = record(client)
        client.sendRaw(b"\x30\xff\xff\xff\x7f")
        env.flush()
        assertFailureReply(self, wire, Disconnect, 0x95)
        self.assertTrue(client.closed)

    def test_clientMaximumPacketSize(self) -> None:
        """A message larger than the client's Maximum Packet Size is dropped for it alone."""
        env = InMemoryBroker()
        small = subscriber(
            env,
            "small",
            "t",
            protocolLevel=MQTT_5,
            properties={PropertyId.MAXIMUM_PACKET_SIZE: 64},
        )
        other = subscriber(env, "other", "t")
        env.broker.publish("t", b"a" * 10)
        env.broker.publish("t", b"b" * 100)
        env.broker.publish("t", b"c" * 10)
        env.flush()
        self.assertEqual(payloads(small.take()), [b"a" * 10, b"c" * 10])
        self.assertEqual(len(payloads(other.take())), 3)
        self.assertEqual(env.broker.stats()["messagesDropped"], 1)
        self.assertFalse(small.closed)

    def test_maxConnectSize(self) -> None:
        """A CONNECT of max-connect-size bytes is accepted, one byte more is closed silently."""
        env = InMemoryBroker(maxConnectSize=64)
        # 2 (fixed header) + 10 (variable header) + 2 + 50 (client id) = 64 bytes.
        exact = connectBytes(b"i" * 50)
        self.assertEqual(len(exact), 64)
        client = env.openClient()
        wire = record(client)
        client.sendRaw(exact)
        env.flush()
        self.assertEqual(bytes(wire), b"\x20\x02\x00\x00")
        # After the CONNECT, max-packet-size applies, not max-connect-size.
        client.publish("t", b"p" * 1000)
        env.flush()
        self.assertFalse(client.closed)
        tooBig = env.openClient()
        tooBigWire = record(tooBig)
        tooBig.sendRaw(connectBytes(b"i" * 51))
        env.flush()
        self.assertEqual(bytes(tooBigWire), b"")
        self.assertTrue(tooBig.closed)

    def test_connectTimeout(self) -> None:
        """connect-timeout sets the deadline for the CONNECT."""
        env = InMemoryBroker(connectTimeout=7)
        client = env.openClient()
        env.advance(6.5)
        self.assertFalse(client.closed)
        env.advance(0.5)
        self.assertTrue(client.closed)

    def test_maxConnections(self) -> None:
        """Beyond max-connections a connection is refused (buildProtocol returns None)."""
        env = InMemoryBroker(maxConnections=2)
        first = env.connect("one")
        env.openClient()
        self.assertIsNone(env.factory.buildProtocol(None))
        self.assertRaises(ConnectionRefusedError, env.openClient)
        self.assertEqual(env.broker.stats()["connectionsRefused"], 2)
        first.disconnect()
        env.flush()
        self.assertIsNotNone(env.connect("three"))

    def test_maxKeepalive311(self) -> None:
        """3.1.x: a keep-alive above max-keepalive gets 20 02 00 02; at the limit it is accepted."""
        env = InMemoryBroker(maxKeepalive=60)
        client = env.openClient()
        wire = record(client)
        client.sendRaw(connectBytes(b"k", keepAlive=61))
        env.flush()
        self.assertEqual(bytes(wire), b"\x20\x02\x00\x02")
        self.assertTrue(client.closed)
        self.assertFalse(env.connect("ok", keepAlive=60).closed)

    def test_maxKeepaliveV5(self) -> None:
        """v5: a keep-alive above max-keepalive is accepted with Server Keep Alive, and used."""
        env = InMemoryBroker(maxKeepalive=60)
        client = env.connect("k", protocolLevel=MQTT_5, keepAlive=100)
        self.assertEqual(client.connack.properties[PropertyId.SERVER_KEEP_ALIVE], 60)
        env.advance(89)
        self.assertFalse(client.closed)
        env.advance(1)
        self.assertTrue(client.closed)

    def test_maxInflight(self) -> None:
        """3.1.1: at most max-inflight unacknowledged QoS 1 deliveries; the next follows an ack."""
        env = InMemoryBroker(maxInflight=3)
        sub = env.connect("sub", autoAck=False)
        sub.subscribe("t", 1)
        env.flush()
        sub.take()
        for i in range(5):
            env.broker.publish("t", b"%d" % i, qos=1)
        env.flush()
        first = sub.publishes()
        self.assertEqual(payloads(first), [b"0", b"1", b"2"])
        sub.send(Puback(first[0].packetId))
        env.flush()
        second = sub.publishes()
        self.assertEqual(payloads(second), [b"3"])
        sub.send(Puback(first[1].packetId))
        sub.send(Puback(first[2].packetId))
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"4"])

    def test_receiveMaximum(self) -> None:
        """v5: receive-maximum is advertised; one more QoS 2 awaiting PUBREL gets 0x93."""
        env = InMemoryBroker(receiveMaximum=3)
        client = env.connect("c", protocolLevel=MQTT_5)
        self.assertEqual(client.connack.properties[PropertyId.RECEIVE_MAXIMUM], 3)
        wire = record(client)
        for packetId in (1, 2, 3):
            client.publish("t", b"x", qos=2, packetId=packetId)
        env.flush()
        self.assertFalse(client.closed)
        # Completing one frees a slot.
        client.send(Pubrel(1))
        client.publish("t", b"x", qos=2, packetId=4)
        env.flush()
        self.assertFalse(client.closed)
        del wire[:]
        client.publish("t", b"x", qos=2, packetId=5)
        env.flush()
        assertFailureReply(self, wire, Disconnect, 0x93)
        self.assertTrue(client.closed)

    def test_maxAwaitingRel(self) -> None:
        """3.1.1: one more QoS 2 awaiting PUBREL than max-awaiting-rel closes the connection."""
        env = InMemoryBroker(maxAwaitingRel=3)
        client = env.connect("c")
        wire = record(client)
        for packetId in (1, 2, 3):
            client.publish("t", b"x", qos=2, packetId=packetId)
        env.flush()
        client.send(Pubrel(2))
        client.publish("t", b"x", qos=2, packetId=4)
        env.flush()
        self.assertFalse(client.closed)
        expected = b"".join(b"\x50\x02" + pid(i) for i in (1, 2, 3)) + b"\x70\x02\x00\x02"
        expected += b"\x50\x02\x00\x04"
        self.assertEqual(bytes(wire), expected)
        client.publish("t", b"x", qos=2, packetId=5)
        env.flush()
        self.assertEqual(bytes(wire), expected)
        self.assertTrue(client.closed)

    def test_maxQueuedMessages(self) -> None:
        """An offline session keeps max-queued-messages QoS 1 messages; the rest are dropped."""
        env = InMemoryBroker(maxQueuedMessages=5)
        sub = subscriber(env, "s", "t", 1, cleanStart=False)
        sub.disconnect()
        env.flush()
        for i in range(8):
            env.broker.publish("t", b"%d" % i, qos=1)
        stats = env.broker.stats()
        self.assertEqual((stats["messagesDropped"], stats["messagesQueued"]), (3, 5))
        [info] = env.broker.listSessions()
        self.assertEqual((info.queuedMessages, info.dropped), (5, 3))
        again = env.connect("s", cleanStart=False)
        self.assertEqual(payloads(again.take()), [b"0", b"1", b"2", b"3", b"4"])

    def test_maxQueuedBytes(self) -> None:
        """An offline session keeps messages up to max-queued-bytes; the newest are dropped."""
        env = InMemoryBroker(maxQueuedBytes=1024)
        sub = subscriber(env, "s", "t", 1, cleanStart=False)
        sub.disconnect()
        env.flush()
        # Each message counts at least its 400-byte payload: two fit in 1024, three do not.
        for i in range(4):
            env.broker.publish("t", bytes([0x30 + i]) * 400, qos=1)
        self.assertEqual(env.broker.stats()["messagesDropped"], 2)
        again = env.connect("s", cleanStart=False)
        self.assertEqual(payloads(again.take()), [b"0" * 400, b"1" * 400])

    def test_maxSubscriptions311(self) -> None:
        """3.1.1: beyond max-subscriptions a filter gets 0x80; replacing one still works."""
        env = InMemoryBroker(maxSubscriptions=2)
        client = env.connect("c")
        wire = record(client)
        client.send(
            Subscribe(
                1,
                (SubscriptionRequest("a"), SubscriptionRequest("b", 1), SubscriptionRequest("c")),
            )
        )
        client.send(Subscribe(2, (SubscriptionRequest("a", 2),)))
        env.flush()
        self.assertEqual(bytes(wire), b"\x90\x05\x00\x01\x00\x01\x80" + b"\x90\x03\x00\x02\x02")
        self.assertEqual(env.broker.stats()["subscriptions"], 2)

    def test_maxSubscriptionsV5(self) -> None:
        """v5: beyond max-subscriptions a filter gets 0x97 Quota exceeded."""
        env = InMemoryBroker(maxSubscriptions=2)
        client = env.connect("c", protocolLevel=MQTT_5)
        wire = record(client)
        client.send(
            Subscribe(
                1, (SubscriptionRequest("a"), SubscriptionRequest("b"), SubscriptionRequest("c"))
            )
        )
        env.flush()
        assertFailureReply(self, wire, Suback, (0, 0, 0x97), packetId=1)
        self.assertEqual(env.broker.stats()["subscriptions"], 2)

    def test_maxTopicLevelsPublishV5(self) -> None:
        """
        v5: a topic with more than max-topic-levels levels is refused with
        PUBACK/PUBREC 0x90 (Topic Name invalid) at QoS 1/2 and dropped at
        QoS 0; the connection stays and nothing is delivered.
        """
        env = InMemoryBroker(maxTopicLevels=3)
        sub = subscriber(env, "sub", "#")
        client = env.connect("c", protocolLevel=MQTT_5)
        wire = record(client)
        client.publish("a/b/c", b"ok")
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"ok"])
        client.publish("a/b/c/d", b"deep0")
        client.publish("a/b/c/d", b"deep1", qos=1, packetId=7)
        client.publish("a/b/c/d", b"deep2", qos=2, packetId=8)
        client.ping()
        env.flush()
        puback, pubrec, pingresp = decodeV5(wire)
        assertFailureReply(self, puback, Puback, 0x90, packetId=7)
        assertFailureReply(self, pubrec, Pubrec, 0x90, packetId=8)
        self.assertEqual(pingresp, Pingresp())
        self.assertFalse(client.closed)
        self.assertEqual(sub.take(), [])
        self.assertEqual(env.broker.stats()["messagesDropped"], 1)

    def test_maxTopicLevelsPublish311(self) -> None:
        """3.1.1: a topic with more than max-topic-levels levels closes the connection."""
        env = InMemoryBroker(maxTopicLevels=3)
        client = env.connect("c")
        wire = record(client)
        client.publish("a/b/c/d", b"deep")
        env.flush()
        self.assertEqual(bytes(wire), b"")
        self.assertTrue(client.closed)

    def test_maxTopicLevelsFilter(self) -> None:
        """A filter with more than max-topic-levels levels is refused like an invalid filter."""
        env = InMemoryBroker(maxTopicLevels=3)
        client = env.connect("c")
        wire = record(client)
        client.send(Subscribe(1, (SubscriptionRequest("a/b/+"), SubscriptionRequest("a/b/c/#"))))
        env.flush()
        self.assertEqual(bytes(wire), b"\x90\x04\x00\x01\x00\x80")

    def test_maxOutboundBuffer(self) -> None:
        """v5: a stalled subscriber whose queued bytes pass max-outbound-buffer gets 0x97."""
        env = InMemoryBroker(maxOutboundBuffer=4096, stallTimeout=1)
        sub = subscriber(env, "sub", "t", 1, protocolLevel=MQTT_5)
        wire = record(sub)
        env.serverFor(sub).pauseProducing()
        pub = env.connect("pub")
        # Two 1100-byte messages reach the high-water mark (2048 bytes); four pass 4096.
        for i in range(6):
            pub.publish("t", bytes([0x30 + i]) * 1100, qos=1)
        env.flush()
        self.assertFalse(sub.closed)
        env.advance(1)
        assertFailureReply(self, wire, Disconnect, 0x97)
        self.assertTrue(sub.closed)
        # The publisher is unaffected.
        self.assertEqual(len([p for p in pub.take() if isinstance(p, Puback)]), 6)
        self.assertFalse(pub.closed)

    def test_stallTimeout(self) -> None:
        """A congested subscriber without progress becomes stalled after exactly stall-timeout."""
        env = InMemoryBroker(maxQueuedMessages=10, stallTimeout=5)
        sub = subscriber(env, "sub", "t", 0)
        env.serverFor(sub).pauseProducing()
        pub = env.connect("pub")
        for i in range(5):
            pub.publish("t", b"%d" % i)
        env.flush()
        env.advance(4)
        self.assertEqual(env.broker.stats()["messagesDropped"], 0)
        env.advance(1)
        # Stalled: its queued QoS 0 messages are dropped.
        self.assertEqual(env.broker.stats()["messagesDropped"], 5)
        self.assertEqual(len(env.broker.sessions["sub"].queue), 0)

    def test_maxRetainedMessagesV5(self) -> None:
        """
        v5: beyond max-retained-messages a retained QoS 1/2 PUBLISH is
        refused as a whole: PUBACK/PUBREC 0x97 Quota exceeded, not delivered,
        not retained; the connection stays.
        """
        # A sequence of acknowledgements pinned byte for byte: without
        # Reason Strings (ReasonStringTests covers them).
        env = InMemoryBroker(maxRetainedMessages=2, reasonStrings=False)
        sub = subscriber(env, "sub", "r/#")
        client = env.connect("c", protocolLevel=MQTT_5)
        wire = record(client)
        client.publish("r/1", b"1", qos=1, retain=True, packetId=1)
        client.publish("r/2", b"2", qos=1, retain=True, packetId=2)
        client.publish("r/3", b"3", qos=1, retain=True, packetId=3)
        client.publish("r/4", b"4", qos=2, retain=True, packetId=4)
        # Replacing a stored topic does not need a new slot.
        client.publish("r/1", b"1b", qos=1, retain=True, packetId=5)
        env.flush()
        self.assertEqual(
            bytes(wire),
            b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x03\x00\x03\x97"
            b"\x50\x03\x00\x04\x97\x40\x02\x00\x05",
        )
        self.assertFalse(client.closed)
        self.assertEqual(payloads(sub.take()), [b"1", b"2", b"1b"])
        self.assertEqual(sorted(m.payload for m in env.broker.retained()), [b"1b", b"2"])
        # The refused QoS 2 message is not awaiting PUBREL.
        self.assertEqual(env.broker.sessions["c"].awaitingRel, set())

    def test_maxRetainedMessagesV5Qos0(self) -> None:
        """v5: beyond max-retained-messages a retained QoS 0 PUBLISH is delivered, not retained."""
        env = InMemoryBroker(maxRetainedMessages=1)
        sub = subscriber(env, "sub", "r/#")
        client = env.connect("c", protocolLevel=MQTT_5)
        wire = record(client)
        client.publish("r/1", b"1", retain=True)
        client.publish("r/2", b"2", retain=True)
        client.ping()
        env.flush()
        self.assertEqual(bytes(wire), b"\xd0\x00")
        self.assertFalse(client.closed)
        self.assertEqual(payloads(sub.take()), [b"1", b"2"])
        self.assertEqual([m.topic for m in env.broker.retained()], ["r/1"])

    def test_maxRetainedMessages311(self) -> None:
        """3.1.1: beyond max-retained-messages the message is acknowledged, delivered, not retained."""
        env = InMemoryBroker(maxRetainedMessages=1)
        sub = subscriber(env, "sub", "r/#")
        client = env.connect("c")
        wire = record(client)
        client.publish("r/1", b"1", qos=1, retain=True, packetId=1)
        client.publish("r/2", b"2", qos=1, retain=True, packetId=2)
        client.publish("r/3", b"3", qos=2, retain=True, packetId=3)
        env.flush()
        self.assertEqual(bytes(wire), b"\x40\x02\x00\x01\x40\x02\x00\x02\x50\x02\x00\x03")
        self.assertFalse(client.closed)
        self.assertEqual(payloads(sub.take()), [b"1", b"2", b"3"])
        self.assertEqual([m.topic for m in env.broker.retained()], ["r/1"])

    def test_topicAliasMaximum(self) -> None:
        """v5: topic-alias-maximum is advertised; an alias set then used with an empty topic works."""
        env = InMemoryBroker(topicAliasMaximum=2)
        sub = subscriber(env, "sub", "#")
        client = env.connect("c", protocolLevel=MQTT_5)
        self.assertEqual(client.connack.properties[PropertyId.TOPIC_ALIAS_MAXIMUM], 2)
        client.publish("x/y", b"1", properties={PropertyId.TOPIC_ALIAS: 2})
        client.publish("", b"2", properties={PropertyId.TOPIC_ALIAS: 2})
        env.flush()
        self.assertEqual(
            [(p.topic, p.payload) for p in sub.publishes()], [("x/y", b"1"), ("x/y", b"2")]
        )
        wire = record(client)
        client.publish("x/z", b"3", properties={PropertyId.TOPIC_ALIAS: 3})
        env.flush()
        assertFailureReply(self, wire, Disconnect, 0x94)
        self.assertTrue(client.closed)
        self.assertEqual(sub.take(), [])

    def test_topicAliasZero(self) -> None:
        """v5: Topic Alias 0 gets DISCONNECT 0x94 [MQTT-3.3.2-8]."""
        env = InMemoryBroker()
        client = env.connect("c", protocolLevel=MQTT_5)
        wire = record(client)
        client.sendRaw(publishBytes(b"t", b"x", v5=True, properties=b"\x23\x00\x00"))
        env.flush()
        assertFailureReply(self, wire, Disconnect, 0x94)
        self.assertTrue(client.closed)

    def test_topicAliasDisabled(self) -> None:
        """v5: with topic-alias-maximum 0 nothing is advertised and any alias gets 0x94."""
        env = InMemoryBroker(topicAliasMaximum=0)
        client = env.connect("c", protocolLevel=MQTT_5)
        self.assertNotIn(PropertyId.TOPIC_ALIAS_MAXIMUM, client.connack.properties)
        wire = record(client)
        client.publish("t", b"x", properties={PropertyId.TOPIC_ALIAS: 1})
        env.flush()
        assertFailureReply(self, wire, Disconnect, 0x94)
        self.assertTrue(client.closed)

    def test_unknownTopicAlias(self) -> None:
        """v5: an empty topic with an alias never set is a Protocol Error (0x82)."""
        env = InMemoryBroker()
        client = env.connect("c", protocolLevel=MQTT_5)
        wire = record(client)
        client.publish("", b"x", properties={PropertyId.TOPIC_ALIAS: 1})
        env.flush()
        assertFailureReply(self, wire, Disconnect, 0x82)
        self.assertTrue(client.closed)

    def test_allowControlCharacters(self) -> None:
        """Control characters in a topic close the connection unless allow-control-characters."""
        strict = InMemoryBroker()
        client = strict.connect("c")
        client.sendRaw(publishBytes(b"a\x01b", b"x"))
        strict.flush()
        self.assertTrue(client.closed)
        lenient = InMemoryBroker(allowControlCharacters=True)
        sub = subscriber(lenient, "sub", "#")
        # (The test client's own decoder is strict: look at the bytes.)
        wire = record(sub)
        client = lenient.connect("c")
        client.sendRaw(publishBytes(b"a\x01b", b"x"))
        lenient.flush()
        self.assertFalse(client.closed)
        self.assertEqual(bytes(wire), publishBytes(b"a\x01b", b"x"))


# ---------------------------------------------------------------------------
# Flow control and back-pressure
# ---------------------------------------------------------------------------


class FlowControlTests(SynchronousTestCase):
    """
    Back-pressure (protocol module docstring, DESIGN.md section 4): a
    subscriber whose socket buffer is full is simulated by pausing its
    connection as a producer, as a real transport would.
    """

    def setUp(self) -> None:
        # High-water mark 10 messages, low-water mark 5.
        self.env = InMemoryBroker(maxQueuedMessages=20, stallTimeout=30)

    def pubacks(self, client: MQTTTestClient) -> list[int]:
        return [p.packetId for p in client.take() if isinstance(p, Puback)]

    def test_publisherPausedAtHighWater(self) -> None:
        """The publisher is paused when the subscriber's queue reaches half max-queued-messages."""
        env = self.env
        sub = subscriber(env, "sub", "t", 1)
        pub = env.connect("pub")
        pauses = recordPauses(env, pub)
        env.serverFor(sub).pauseProducing()
        for i in range(1, 10):
            pub.publish("t", b"%d" % i, qos=1, packetId=i)
            env.flush()
        self.assertEqual(pauses, [])
        self.assertEqual(self.pubacks(pub), list(range(1, 10)))
        pub.publish("t", b"10", qos=1, packetId=10)
        env.flush()
        self.assertEqual(pauses, ["pause"])
        self.assertEqual(self.pubacks(pub), [10])
        # Further packets from the publisher stay buffered, unprocessed.
        for i in range(11, 16):
            pub.publish("t", b"%d" % i, qos=1, packetId=i)
        pub.ping()
        env.flush()
        self.assertEqual(pub.take(), [])
        self.assertEqual(env.broker.stats()["messagesIn"], 10)
        self.assertEqual(len(env.broker.sessions["sub"].queue), 10)
        self.assertEqual(sub.take(), [])

    def test_publisherResumedOnNextTurn(self) -> None:
        """Once the queue drains the publisher is resumed on the next clock turn, not before."""
        env = self.env
        sub = subscriber(env, "sub", "t", 1)
        pub = env.connect("pub")
        pauses = recordPauses(env, pub)
        subServer = env.serverFor(sub)
        subServer.pauseProducing()
        for i in range(1, 16):
            pub.publish("t", b"%d" % i, qos=1, packetId=i)
        env.flush()
        self.assertEqual(env.broker.stats()["messagesIn"], 10)
        subServer.resumeProducing()
        self.assertEqual(env.broker.stats()["messagesIn"], 10)
        self.assertEqual(pauses, ["pause"])
        env.clock.advance(0)
        self.assertEqual(pauses, ["pause", "resume"])
        self.assertEqual(env.broker.stats()["messagesIn"], 15)
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"%d" % i for i in range(1, 16)])
        self.assertEqual(self.pubacks(pub), list(range(1, 16)))
        self.assertEqual(env.broker.stats()["messagesDropped"], 0)

    def test_resumedAtLowWater(self) -> None:
        """The publisher stays paused until the queue is down to the low-water mark."""
        env = InMemoryBroker(maxQueuedMessages=20, maxInflight=2)
        sub = env.connect("sub", autoAck=False)
        sub.subscribe("t", 1)
        env.flush()
        sub.take()
        pub = env.connect("pub")
        pauses = recordPauses(env, pub)
        # Two go in flight, ten queue up (the high-water mark): the publisher is paused.
        for i in range(1, 16):
            pub.publish("t", b"%d" % i, qos=1, packetId=i)
        env.flush()
        self.assertEqual(pauses, ["pause"])
        self.assertEqual(env.broker.stats()["messagesIn"], 12)
        session = env.broker.sessions["sub"]
        outstanding = [p.packetId for p in sub.publishes()]
        self.assertEqual(len(outstanding), 2)
        # Four acks bring the queue to 6: still above the low-water mark (5).
        for _ in range(4):
            sub.send(Puback(outstanding.pop(0)))
            env.flush()
            outstanding.extend(p.packetId for p in sub.publishes())
        self.assertEqual(len(session.queue), 6)
        self.assertEqual(pauses, ["pause"])
        self.assertEqual(env.broker.stats()["messagesIn"], 12)
        # The fifth brings it to 5: resumed on the next turn.
        sub.send(Puback(outstanding.pop(0)))
        sub.pump.pump(advanceClock=False)
        self.assertEqual(len(session.queue), 5)
        self.assertEqual(env.broker.stats()["messagesIn"], 12)
        env.clock.advance(0)
        self.assertEqual(pauses, ["pause", "resume"])
        self.assertEqual(env.broker.stats()["messagesIn"], 15)

    def test_bytesHighWater(self) -> None:
        """The publisher is also paused at half max-outbound-buffer queued bytes."""
        env = InMemoryBroker(maxOutboundBuffer=8192, maxQueuedMessages=1000)
        sub = subscriber(env, "sub", "t", 1)
        pub = env.connect("pub")
        pauses = recordPauses(env, pub)
        env.serverFor(sub).pauseProducing()
        # Each message counts at least 1001 bytes: the fifth reaches 4096 at the latest.
        for i in range(1, 7):
            pub.publish("t", b"x" * 1000, qos=1, packetId=i)
            env.flush()
            if pauses:
                break
        self.assertEqual(pauses, ["pause"])
        self.assertLessEqual(i, 5)
        self.assertGreaterEqual(env.broker.sessions["sub"].queuedBytes, 4096)

    def test_nothingDroppedForReadingSubscriber(self) -> None:
        """A subscriber that keeps reading gets every QoS 1 message, however fast the publisher."""
        env = self.env
        sub = subscriber(env, "sub", "t", 1)
        pubs = [env.connect(f"pub{n}") for n in range(3)]
        subServer = env.serverFor(sub)
        sent = 0
        for burst in range(40):
            if burst % 2 == 0:
                subServer.pauseProducing()
            for pub in pubs:
                for _ in range(7):
                    pub.publish("t", b"%d" % sent, qos=1)
                    sent += 1
            env.flush()
            if burst % 2 == 0:
                subServer.resumeProducing()
            env.flush()
        env.flush()
        received = payloads(sub.take())
        self.assertEqual(len(received), sent)
        self.assertEqual(sorted(received, key=int), [b"%d" % i for i in range(sent)])
        self.assertEqual(env.broker.stats()["messagesDropped"], 0)
        self.assertEqual(sum(len(self.pubacks(p)) for p in pubs), sent)

    def test_orderKeptPerPublisher(self) -> None:
        """Throttling keeps the order of each publisher's messages."""
        env = self.env
        sub = subscriber(env, "sub", "t", 0)
        pub = env.connect("pub")
        subServer = env.serverFor(sub)
        for i in range(100):
            if i % 25 == 0:
                subServer.pauseProducing()
            pub.publish("t", b"%d" % i)
            env.flush()
            if i % 25 == 24:
                subServer.resumeProducing()
                env.flush()
        self.assertEqual(payloads(sub.take()), [b"%d" % i for i in range(100)])
        self.assertEqual(env.broker.stats()["messagesDropped"], 0)

    def test_qos0NotDroppedForReadingSubscriber(self) -> None:
        """QoS 0 to a briefly paused subscriber is queued and delivered, not dropped."""
        env = self.env
        sub = subscriber(env, "sub", "t", 0)
        pub = env.connect("pub")
        subServer = env.serverFor(sub)
        subServer.pauseProducing()
        for i in range(15):
            pub.publish("t", b"%d" % i)
        env.flush()
        env.advance(10)
        subServer.resumeProducing()
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"%d" % i for i in range(15)])
        self.assertEqual(env.broker.stats()["messagesDropped"], 0)

    def test_stalledSubscriber(self) -> None:
        """Stalled: publishers released, queued QoS 0 dropped, QoS 1 kept to the limit, newest dropped."""
        env = InMemoryBroker(maxQueuedMessages=10, stallTimeout=5)
        sub = subscriber(env, "sub", "t/#", 1)
        pub = env.connect("pub")
        pauses = recordPauses(env, pub)
        subServer = env.serverFor(sub)
        subServer.pauseProducing()
        for i in range(3):
            pub.publish("t/0", b"q0-%d" % i, qos=0)
        pub.publish("t/1", b"a", qos=1, packetId=1)
        pub.publish("t/1", b"b", qos=1, packetId=2)
        for i in range(10):
            pub.publish("t/1", b"c%d" % i, qos=1, packetId=10 + i)
        env.flush()
        # The fifth message reached the high-water mark (5): the publisher is paused.
        self.assertEqual(pauses, ["pause"])
        self.assertEqual(self.pubacks(pub), [1, 2])
        env.advance(4)
        self.assertEqual(pauses, ["pause"])
        env.advance(1)
        self.assertEqual(pauses, ["pause", "resume"])
        self.assertEqual(self.pubacks(pub), list(range(10, 20)))
        stats = env.broker.stats()
        # 3 QoS 0 dropped at the stall, then 2 of the 10 later QoS 1 beyond the 10-message limit.
        self.assertEqual(stats["messagesDropped"], 5)
        session = env.broker.sessions["sub"]
        self.assertEqual(len(session.queue), 10)
        self.assertEqual(session.dropped, 5)
        # While stalled, QoS 0 is dropped on arrival and the publisher is not paused again.
        pub.publish("t/0", b"late")
        env.flush()
        self.assertEqual(env.broker.stats()["messagesDropped"], 6)
        self.assertEqual(pauses, ["pause", "resume"])
        subServer.resumeProducing()
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"a", b"b"] + [b"c%d" % i for i in range(8)])

    def test_progressPostponesStall(self) -> None:
        """The stall timeout counts from the subscriber's last progress, not from the congestion."""
        env = InMemoryBroker(maxQueuedMessages=10, stallTimeout=5, maxInflight=1)
        sub = env.connect("sub", autoAck=False)
        sub.subscribe("t", 1)
        env.flush()
        sub.take()
        pub = env.connect("pub")
        pauses = recordPauses(env, pub)
        # One in flight and five queued (the high-water mark) at t=0.
        for i in range(1, 9):
            pub.publish("t", b"%d" % i, qos=1, packetId=i)
        env.flush()
        self.assertEqual(pauses, ["pause"])
        env.advance(3)
        [first] = sub.publishes()
        sub.send(Puback(first.packetId))
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"2"])
        # Progress at t=3: not stalled at t=5 nor just before t=8.
        env.advance(4.5)
        self.assertEqual(pauses, ["pause"])
        env.advance(0.5)
        self.assertEqual(pauses, ["pause", "resume"])
        self.assertEqual(env.broker.stats()["messagesDropped"], 0)

    def test_stalledSubscriberRecovers(self) -> None:
        """A stalled subscriber that drains its queue throttles publishers again, without drops."""
        env = InMemoryBroker(maxQueuedMessages=10, stallTimeout=5)
        sub = subscriber(env, "sub", "t", 0)
        pub = env.connect("pub")
        subServer = env.serverFor(sub)
        subServer.pauseProducing()
        for i in range(5):
            pub.publish("t", b"%d" % i)
        env.flush()
        env.advance(5)
        self.assertEqual(env.broker.stats()["messagesDropped"], 5)
        subServer.resumeProducing()
        env.flush()
        pauses = recordPauses(env, pub)
        subServer.pauseProducing()
        for i in range(5, 12):
            pub.publish("t", b"%d" % i)
        env.flush()
        self.assertEqual(pauses, ["pause"])
        subServer.resumeProducing()
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"%d" % i for i in range(5, 12)])
        self.assertEqual(env.broker.stats()["messagesDropped"], 5)

    def test_publisherWaitsForEveryCongestedSubscriber(self) -> None:
        """A publisher paused by two congested subscribers resumes only when both drain."""
        env = self.env
        subs = [subscriber(env, f"sub{n}", "t", 1) for n in range(2)]
        pub = env.connect("pub")
        pauses = recordPauses(env, pub)
        servers = [env.serverFor(s) for s in subs]
        for server in servers:
            server.pauseProducing()
        for i in range(1, 14):
            pub.publish("t", b"%d" % i, qos=1, packetId=i)
        env.flush()
        self.assertEqual(pauses, ["pause"])
        self.assertEqual(env.broker.stats()["messagesIn"], 10)
        servers[0].resumeProducing()
        env.flush()
        self.assertEqual(pauses, ["pause"])
        self.assertEqual(env.broker.stats()["messagesIn"], 10)
        servers[1].resumeProducing()
        env.flush()
        self.assertEqual(pauses, ["pause", "resume"])
        for sub in subs:
            self.assertEqual(payloads(sub.take()), [b"%d" % i for i in range(1, 14)])

    def test_departingSubscriberReleasesPublisher(self) -> None:
        """A congested subscriber that disconnects stops throttling its publishers."""
        env = self.env
        sub = subscriber(env, "sub", "t", 1)
        pub = env.connect("pub")
        pauses = recordPauses(env, pub)
        env.serverFor(sub).pauseProducing()
        for i in range(1, 14):
            pub.publish("t", b"%d" % i, qos=1, packetId=i)
        env.flush()
        self.assertEqual(pauses, ["pause"])
        sub.transport.loseConnection()
        env.flush()
        self.assertEqual(pauses, ["pause", "resume"])
        self.assertEqual(self.pubacks(pub), list(range(1, 14)))

    def neverReading(self, payloadSize: int, **settings: Any) -> InMemoryBroker:
        """
        Two publishers send 3,000 messages, QoS 0 and 1 alternately, to a
        subscriber that never reads; check the session's queue against
        max-queued-messages and max-queued-bytes after every change.
        """
        env = InMemoryBroker(stallTimeout=1, **settings)
        maxMessages = env.broker.config.maxQueuedMessages
        maxBytes = env.broker.config.maxQueuedBytes
        sub = subscriber(env, "sub", "#", 1)
        env.serverFor(sub).pauseProducing()
        session = env.broker.sessions["sub"]
        peak = [0, 0]

        def watch(method: Any) -> Any:
            def wrapper(*args: Any) -> Any:
                result = method(*args)
                peak[0] = max(peak[0], len(session.queue))
                peak[1] = max(peak[1], session.queuedBytes)
                return result

            return wrapper

        session.enqueue = watch(session.enqueue)  # type: ignore[method-assign]
        session.forceEnqueue = watch(session.forceEnqueue)  # type: ignore[method-assign]
        pubs = [env.connect(f"pub{n}") for n in range(2)]
        qos1 = 0
        total = 0
        for burst in range(60):
            for n, pub in enumerate(pubs):
                for i in range(25):
                    qos = (burst + n + i) % 2
                    pub.publish(f"m/{n}", b"p" * payloadSize, qos=qos)
                    qos1 += qos
                    total += 1
            env.advance(0.5)
        env.advance(2)
        self.assertEqual(total, 3000)
        self.assertLessEqual(peak[0], maxMessages)
        self.assertLessEqual(peak[1], maxBytes)
        self.assertFalse(sub.closed)
        # Every message was accepted and acknowledged, nothing written to the
        # subscriber: all but what is queued was dropped and counted.
        stats = env.broker.stats()
        self.assertEqual(stats["messagesIn"], total)
        self.assertEqual(stats["messagesDropped"], total - len(session.queue))
        # Queue entries: (message, qos, retain, subscriptionIds, group).
        self.assertTrue(all(entry[1] == 1 for entry in session.queue))
        acked = sum(len(self.pubacks(p)) for p in pubs)
        self.assertEqual(acked, qos1)
        return env

    def test_memoryBoundedByMessageCount(self) -> None:
        """A subscriber that never reads: its queue never exceeds max-queued-messages."""
        env = self.neverReading(100, maxQueuedMessages=100)
        self.assertEqual(len(env.broker.sessions["sub"].queue), 100)

    def test_memoryBoundedByBytes(self) -> None:
        """A subscriber that never reads: its queued bytes never exceed max-queued-bytes."""
        env = self.neverReading(1000, maxQueuedBytes=40_000, maxOutboundBuffer=65_536)
        # Full to within one message.
        self.assertGreater(env.broker.sessions["sub"].queuedBytes, 40_000 - 1100)

    def test_memoryBoundedBySmallQueuedBytes(self) -> None:
        """max-queued-bytes holds even when it is below half of max-outbound-buffer."""
        self.neverReading(1000, maxQueuedBytes=20_000, maxOutboundBuffer=65_536)

    def test_throttledPublisherNotTimedOut(self) -> None:
        """A publisher paused by the broker is not disconnected for keep-alive meanwhile."""
        env = self.env
        sub = subscriber(env, "sub", "t", 1)
        pub = env.connect("pub", keepAlive=4)
        pauses = recordPauses(env, pub)
        env.serverFor(sub).pauseProducing()
        for i in range(1, 11):
            pub.publish("t", b"%d" % i, qos=1, packetId=i)
        env.flush()
        self.assertEqual(pauses, ["pause"])
        # The client keeps pinging; the broker chose not to read it (stall-timeout is 30 s).
        for _ in range(5):
            pub.ping()
            env.advance(2)
        self.assertFalse(pub.closed)


class InflightWindowTests(SynchronousTestCase):
    """
    The outbound in-flight window: v5 Receive Maximum [MQTT-3.3.4-9] (RX-07).
    """

    def receiveMaximum(self, limit: int) -> None:
        env = InMemoryBroker()
        sub = env.connect(
            "sub",
            protocolLevel=MQTT_5,
            autoAck=False,
            properties={PropertyId.RECEIVE_MAXIMUM: limit},
        )
        sub.subscribe("t", 2)
        env.flush()
        sub.take()
        pub = env.connect("pub")
        for i in range(5):
            pub.publish("t", b"%d" % i, qos=2, packetId=i + 1)
        env.flush()
        for p in pub.take():
            pub.send(Pubrel(p.packetId))
        env.flush()
        outstanding = sub.publishes()
        self.assertEqual(payloads(outstanding), [b"%d" % i for i in range(limit)])
        # PINGRESP and SUBACK are not held back by the full window [MQTT-3.3.4-10].
        sub.ping()
        packetId = sub.subscribe("other", 0)
        env.flush()
        self.assertEqual(sub.take(), [Pingresp(), Suback(packetId, (0,))])
        received = [p.payload for p in outstanding]
        completed = 0
        while outstanding:
            first = outstanding.pop(0)
            sub.send(Pubrec(first.packetId))
            env.flush()
            # PUBREC does not free the slot: only PUBREL comes back.
            self.assertEqual(sub.take(), [Pubrel(first.packetId)])
            sub.send(Pubcomp(first.packetId))
            env.flush()
            completed += 1
            more = sub.publishes()
            self.assertLessEqual(len(more), 1)
            outstanding.extend(more)
            received.extend(p.payload for p in more)
            self.assertEqual(len(outstanding), min(limit, 5 - completed))
        self.assertEqual(received, [b"%d" % i for i in range(5)])

    def test_receiveMaximumOne(self) -> None:
        """v5 Receive Maximum 1: exactly one unacknowledged QoS 2 PUBLISH at a time."""
        self.receiveMaximum(1)

    def test_receiveMaximumTwo(self) -> None:
        """v5 Receive Maximum 2: exactly two unacknowledged QoS 2 PUBLISH at a time."""
        self.receiveMaximum(2)

    def test_resendOnReconnectRespectsReceiveMaximum(self) -> None:
        """v5: on reconnect no more than the new Receive Maximum are outstanding [MQTT-3.3.4-9]."""
        props = {PropertyId.SESSION_EXPIRY_INTERVAL: 100, PropertyId.RECEIVE_MAXIMUM: 5}
        env = InMemoryBroker()
        sub = env.connect("sub", protocolLevel=MQTT_5, autoAck=False, properties=props)
        sub.subscribe("t", 1)
        env.flush()
        sub.take()
        for i in range(5):
            env.broker.publish("t", b"%d" % i, qos=1)
        env.flush()
        self.assertEqual(len(sub.publishes()), 5)
        sub.transport.loseConnection()
        env.flush()
        props[PropertyId.RECEIVE_MAXIMUM] = 2
        again = env.connect(
            "sub", protocolLevel=MQTT_5, autoAck=False, cleanStart=False, properties=props
        )
        resent = again.publishes()
        self.assertEqual(payloads(resent), [b"0", b"1"])
        self.assertTrue(all(p.dup for p in resent))
        again.send(Puback(resent[0].packetId))
        env.flush()
        self.assertEqual(payloads(again.take()), [b"2"])

    def test_retainedReplayFollowsWindow(self) -> None:
        """Retained replays respect the Receive Maximum too (RX-13), all arriving in the end."""
        env = InMemoryBroker()
        for i in range(5):
            env.broker.publish(f"r/{i}", b"%d" % i, qos=1, retain=True)
        sub = env.connect(
            "sub", protocolLevel=MQTT_5, autoAck=False, properties={PropertyId.RECEIVE_MAXIMUM: 1}
        )
        sub.subscribe("r/#", 1)
        env.flush()
        received: list[bytes] = []
        for _ in range(5):
            packets = [p for p in sub.take() if isinstance(p, Publish)]
            self.assertEqual(len(packets), 1)
            self.assertTrue(packets[0].retain)
            received.append(packets[0].payload)
            sub.send(Puback(packets[0].packetId))
            env.flush()
        self.assertEqual(sub.take(), [])
        self.assertEqual(sorted(received), [b"%d" % i for i in range(5)])

    def test_qos0NotLimitedByWindow(self) -> None:
        """QoS 0 is not held back by a full Receive Maximum window (it counts QoS 1/2 only)."""
        env = InMemoryBroker()
        sub = env.connect(
            "sub", protocolLevel=MQTT_5, autoAck=False, properties={PropertyId.RECEIVE_MAXIMUM: 1}
        )
        sub.send(Subscribe(1, (SubscriptionRequest("q1", 1), SubscriptionRequest("q0", 0))))
        env.flush()
        sub.take()
        env.broker.publish("q1", b"held", qos=1)
        env.flush()
        [held] = sub.publishes()
        self.assertEqual(held.payload, b"held")
        env.broker.publish("q0", b"free", qos=0)
        env.flush()
        self.assertEqual(sub.take(), [Publish("q0", b"free")])
        # A second QoS 1 waits for the window, and follows the acknowledgement.
        env.broker.publish("q1", b"waiting", qos=1)
        env.flush()
        self.assertEqual(sub.take(), [])
        sub.send(Puback(held.packetId))
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"waiting"])


# ---------------------------------------------------------------------------
# Exception containment
# ---------------------------------------------------------------------------


class ContainmentTests(SynchronousTestCase):
    """
    An unexpected exception while handling a packet closes only that
    connection.
    """

    def test_handlerExceptionClosesOnlyThatConnection(self) -> None:
        """A handler raising closes its connection; the broker keeps serving the others."""
        env = InMemoryBroker()
        sub = subscriber(env, "sub", "t", 1)
        bad = env.connect("bad", protocolLevel=MQTT_5)
        good = env.connect("good")
        wire = record(bad)

        def explode(packet: Any) -> None:
            raise RuntimeError("boom")

        env.serverFor(bad)._handlers[Publish] = explode
        bad.publish("t", b"never", qos=1)
        env.flush()
        self.assertTrue(bad.closed)
        [disconnect] = [p for p in bad.take() if isinstance(p, Disconnect)]
        self.assertIn(disconnect.reasonCode, (0x80, 0x83))
        assertFailureReply(self, wire, Disconnect, disconnect.reasonCode)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        good.publish("t", b"still", qos=1)
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"still"])
        self.assertEqual([type(p) for p in good.take()], [Puback])
        self.assertFalse(good.closed)
        self.assertFalse(sub.closed)
        self.assertEqual(env.broker.stats()["connections"], 2)
        self.assertNotIn("bad", env.broker.connections)
        # The client id is free again.
        self.assertFalse(env.connect("bad").closed)

    def test_exceptionInOneChunkDoesNotAffectOthers(self) -> None:
        """Packets of other connections in the same turn are still handled."""
        env = InMemoryBroker()
        sub = subscriber(env, "sub", "t")
        bad = env.connect("bad")
        good = env.connect("good")

        def explode(packet: Any) -> None:
            raise ValueError("unexpected")

        env.serverFor(bad)._handlers[Publish] = explode
        bad.publish("t", b"1")
        good.publish("t", b"2")
        env.flush()
        self.assertEqual(payloads(sub.take()), [b"2"])
        self.assertTrue(bad.closed)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class ConnackTests(SynchronousTestCase):
    """
    The CONNACK of an accepted connection.
    """

    def test_connack311(self) -> None:
        """3.1.1: an accepted CONNECT gets 20 02 00 00 (Session Present 0 for a new session)."""
        env = InMemoryBroker()
        client = env.openClient()
        wire = record(client)
        client.sendRaw(connectBytes(b"x", flags=0x00))
        env.flush()
        self.assertEqual(bytes(wire), b"\x20\x02\x00\x00")
        client.disconnect()
        env.flush()
        again = env.openClient()
        wire = record(again)
        again.sendRaw(connectBytes(b"x", flags=0x00))
        env.flush()
        self.assertEqual(bytes(wire), b"\x20\x02\x01\x00")

    def test_connackV5Properties(self) -> None:
        """v5: the CONNACK advertises the broker's limits."""
        env = InMemoryBroker(receiveMaximum=7, maxPacketSize=5000, topicAliasMaximum=4)
        client = env.connect("x", protocolLevel=MQTT_5)
        self.assertEqual(client.connack.reasonCode, 0)
        props = client.connack.properties
        self.assertEqual(
            (
                props[PropertyId.RECEIVE_MAXIMUM],
                props[PropertyId.MAXIMUM_PACKET_SIZE],
                props[PropertyId.TOPIC_ALIAS_MAXIMUM],
            ),
            (7, 5000, 4),
        )
        self.assertIsInstance(client.connack, Connack)


# ---------------------------------------------------------------------------
# Reason Strings (MQTT 5.0 property 0x1F)
# ---------------------------------------------------------------------------


def reasonStringProperties(text: str) -> bytes:
    """
    A property block holding only a Reason String (section 2.2.2, 3.1.2.11).
    """
    prop = b"\x1f" + mqttString(text.encode("ascii"))
    return varint(len(prop)) + prop


class ReasonStringTests(SynchronousTestCase):
    """
    v5 failure replies carry a Reason String by default (reason-strings),
    unless the client set Request Problem Information to 0, the broker is
    configured without them, or the packet would exceed the client's
    Maximum Packet Size [MQTT-3.1.2-25]; never on 3.1.x.

    Each scenario returns the bytes the broker sent: a takeover (server
    DISCONNECT 0x8E), a CONNECT with an unknown Authentication Method
    (CONNACK 0x8C), a topic deeper than max-topic-levels (PUBACK 0x90) and
    a SUBSCRIBE with an invalid filter next to a valid one (SUBACK 1, 0x8F).
    """

    def broker(self, **settings: Any) -> InMemoryBroker:
        return InMemoryBroker(maxTopicLevels=3, **settings)

    def takeover(self, env: InMemoryBroker, level: int = MQTT_5, **connectArgs: Any) -> bytes:
        old = env.connect("dup", protocolLevel=level, **connectArgs)
        wire = record(old)
        env.connect("dup", protocolLevel=level)
        self.assertTrue(old.closed)
        return bytes(wire)

    def refusedConnect(self, env: InMemoryBroker, properties: Any = None) -> bytes:
        client = env.openClient(MQTT_5)
        wire = record(client)
        props = {PropertyId.AUTHENTICATION_METHOD: "NO-SUCH-METHOD"}
        props.update(properties or {})
        client.connect("c", properties=props)
        env.flush()
        self.assertTrue(client.closed)
        return bytes(wire)

    def refusedPublish(
        self, env: InMemoryBroker, level: int = MQTT_5, **connectArgs: Any
    ) -> bytes:
        sub = subscriber(env, "sub", "#")
        client = env.connect("pub", protocolLevel=level, **connectArgs)
        wire = record(client)
        client.publish("a/b/c/d", b"deep", qos=1, packetId=7)
        env.flush()
        self.assertEqual(sub.take(), [])
        return bytes(wire)

    def refusedFilter(self, env: InMemoryBroker, level: int = MQTT_5, **connectArgs: Any) -> bytes:
        client = env.connect("s", protocolLevel=level, **connectArgs)
        wire = record(client)
        client.send(Subscribe(1, (SubscriptionRequest("ok", 1), SubscriptionRequest("a/#/b"))))
        env.flush()
        self.assertFalse(client.closed)
        self.assertEqual(env.broker.stats()["subscriptions"], 1)
        return bytes(wire)

    def assertReasonString(
        self, wire: bytes, packetType: type, reasonCode: Any, head: bytes, tail: bytes = b""
    ) -> None:
        """
        C{wire} is one packet: C{head} (after the fixed header), then a
        property block with only a non-empty Reason String, then C{tail}.
        """
        packet = assertFailureReply(self, wire, packetType, reasonCode)
        text = packet.properties[PropertyId.REASON_STRING]
        self.assertEqual(dict(packet.properties), {PropertyId.REASON_STRING: text})
        body = head + reasonStringProperties(text) + tail
        self.assertEqual(wire, bytes((wire[0],)) + varint(len(body)) + body)

    def test_onByDefault(self) -> None:
        """reason-strings is on by default."""
        self.assertIs(InMemoryBroker().broker.config.reasonStrings, True)

    def test_serverDisconnect(self) -> None:
        """A server DISCONNECT (takeover, 0x8E) carries a Reason String."""
        wire = self.takeover(self.broker())
        self.assertEqual(wire[0], 0xE0)
        self.assertReasonString(wire, Disconnect, 0x8E, b"\x8e")

    def test_protocolErrorDisconnect(self) -> None:
        """The Reason String of a protocol-error DISCONNECT is the error, without a prefix."""
        env = self.broker()
        client = env.connect("c", protocolLevel=MQTT_5)
        wire = record(client)
        client.sendRaw(b"\xf0\x02\x18\x00")
        env.flush()
        disconnect = assertFailureReply(self, wire, Disconnect, 0x82)
        self.assertNotIn("protocol error", disconnect.properties[PropertyId.REASON_STRING].lower())
        self.assertTrue(client.closed)

    def test_refusedConnack(self) -> None:
        """A refused CONNACK (unknown Authentication Method, 0x8C) carries a Reason String."""
        wire = self.refusedConnect(self.broker())
        self.assertEqual(wire[0], 0x20)
        self.assertReasonString(wire, Connack, 0x8C, b"\x00\x8c")

    def test_failurePuback(self) -> None:
        """A PUBACK with a failure code (0x90) carries a Reason String; nothing is delivered."""
        wire = self.refusedPublish(self.broker())
        self.assertEqual(wire[0], 0x40)
        self.assertReasonString(wire, Puback, 0x90, b"\x00\x07\x90")

    def test_failureSuback(self) -> None:
        """A SUBACK with a failure code carries a Reason String; the other filter is granted."""
        wire = self.refusedFilter(self.broker())
        self.assertEqual(wire[0], 0x90)
        self.assertReasonString(wire, Suback, (1, 0x8F), b"\x00\x01", b"\x01\x8f")

    def test_successfulSubackHasNone(self) -> None:
        """A SUBACK granting every filter has no Reason String."""
        env = self.broker()
        client = env.connect("s", protocolLevel=MQTT_5)
        wire = record(client)
        client.subscribe("ok", 1)
        env.flush()
        self.assertEqual(bytes(wire), b"\x90\x04\x00\x01\x00\x01")

    def assertCompact(self, make: Callable[[], InMemoryBroker], **connectArgs: Any) -> None:
        """
        The four failure replies keep their reason codes but have no
        properties, each on a broker made by C{make}, the client connecting
        with C{connectArgs}.
        """
        self.assertEqual(self.takeover(make(), **connectArgs), b"\xe0\x01\x8e")
        self.assertEqual(
            self.refusedConnect(make(), connectArgs.get("properties")),
            b"\x20\x03\x00\x8c\x00",
        )
        self.assertEqual(self.refusedPublish(make(), **connectArgs), b"\x40\x03\x00\x07\x90")
        self.assertEqual(
            self.refusedFilter(make(), **connectArgs), b"\x90\x05\x00\x01\x00\x01\x8f"
        )

    def test_requestProblemInformationZero(self) -> None:
        """A client whose CONNECT has Request Problem Information 0 gets none."""
        self.assertCompact(self.broker, properties={PropertyId.REQUEST_PROBLEM_INFORMATION: 0})

    def test_requestProblemInformationOne(self) -> None:
        """Request Problem Information 1 (the default, given explicitly) gets them."""
        wire = self.takeover(self.broker(), properties={PropertyId.REQUEST_PROBLEM_INFORMATION: 1})
        self.assertReasonString(wire, Disconnect, 0x8E, b"\x8e")

    def test_configuredOff(self) -> None:
        """With reason-strings off (reasonStrings=False) no reply carries one."""
        self.assertCompact(lambda: self.broker(reasonStrings=False))

    def test_clientMaximumPacketSize(self) -> None:
        """
        A Reason String that would make the packet exceed the client's
        Maximum Packet Size is left out; the reason code still arrives.
        """
        # 20 bytes: room for the CONNACK of an accepted connection (16
        # bytes) and the compact failure replies, not for a Reason String.
        self.assertCompact(self.broker, properties={PropertyId.MAXIMUM_PACKET_SIZE: 20})
        # Within a larger limit the Reason String is sent, and every packet fits.
        limit = 128
        props = {PropertyId.MAXIMUM_PACKET_SIZE: limit}
        for wire, packetType, code in [
            (self.takeover(self.broker(), properties=props), Disconnect, 0x8E),
            (self.refusedConnect(self.broker(), props), Connack, 0x8C),
            (self.refusedPublish(self.broker(), properties=props), Puback, 0x90),
            (self.refusedFilter(self.broker(), properties=props), Suback, (1, 0x8F)),
        ]:
            assertFailureReply(self, wire, packetType, code)
            self.assertLessEqual(len(wire), limit)

    def test_never311(self) -> None:
        """A 3.1.1 connection never gets one: its failure replies have no properties."""
        env = self.broker()
        self.assertEqual(self.takeover(env, MQTT_3_1_1), b"")
        client = env.openClient(MQTT_3_1_1)
        wire = record(client)
        client.connect("", cleanStart=False)
        env.flush()
        self.assertEqual(bytes(wire), b"\x20\x02\x00\x02")
        self.assertEqual(self.refusedFilter(env, MQTT_3_1_1), b"\x90\x04\x00\x01\x01\x80")
        sub = subscriber(env, "watcher", "#")
        client = env.connect("pub")
        wire = record(client)
        client.publish("a/b/c/d", b"deep", qos=1, packetId=7)
        env.flush()
        # 3.1.1 has no failure PUBACK: the connection is closed without a packet.
        self.assertEqual(bytes(wire), b"")
        self.assertTrue(client.closed)
        self.assertEqual(sub.take(), [])
