"""
MQTTServerProtocol on a StringTransport with a driven clock: the exact bytes
it writes, its timers, and how it drives the transport's producer/consumer
interfaces.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from mqttd.broker import Broker
from mqttd.codec import MQTT_5, Decoder, Disconnect, PropertyId
from mqttd.config import BrokerConfig
from mqttd.message import Message
from mqttd.protocol import MQTTServerFactory, MQTTServerProtocol

C4 = bytes.fromhex("10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 70")  # id "p", keepalive 10


def connect(clientId: bytes, keepAlive: int = 0, level: int = 4, will: bool = False) -> bytes:
    """
    A CONNECT (clean session) with an optional will "w/<id>" -> b"gone".
    """
    flags = 0x02 | (0x04 if will else 0)
    body = b"\x00\x04MQTT" + bytes((level, flags)) + keepAlive.to_bytes(2, "big")
    if level == 5:
        body += b"\x00"
    body += len(clientId).to_bytes(2, "big") + clientId
    if will:
        if level == 5:
            body += b"\x00"
        topic = b"w/" + clientId
        body += len(topic).to_bytes(2, "big") + topic + b"\x00\x04gone"
    return b"\x10" + bytes((len(body),)) + body


def assertServerDisconnect(test: SynchronousTestCase, data: bytes, reasonCode: int) -> None:
    """
    Assert that C{data} is exactly one v5 DISCONNECT with C{reasonCode} and,
    as mqttd sends by default (reason-strings), a non-empty printable ASCII
    Reason String as its only property: E0, length, reason code, property
    length, 1F, string.
    """
    decoder = Decoder(isServer=False, protocolLevel=MQTT_5)
    decoder.feed(data)
    packet = decoder.next()
    test.assertIsInstance(packet, Disconnect, data)
    assert isinstance(packet, Disconnect)
    test.assertEqual(packet.reasonCode, reasonCode)
    text = packet.properties.get(PropertyId.REASON_STRING)
    test.assertIsInstance(text, str, packet)
    assert isinstance(text, str)
    test.assertTrue(text and text.isascii() and text.isprintable(), text)
    prop = b"\x1f" + len(text).to_bytes(2, "big") + text.encode("ascii")
    body = bytes((reasonCode, len(prop))) + prop
    test.assertEqual(data, b"\xe0" + bytes((len(body),)) + body)


class Harness:
    """
    A broker on a clock, and protocols on string transports.
    """

    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.broker = Broker(BrokerConfig().replace(**settings), clock=self.clock)
        self.factory = MQTTServerFactory(self.broker)
        self.messages: list[Message] = []
        self.broker.subscribe("#", self.messages.append)

    def open(self) -> tuple[MQTTServerProtocol, StringTransportWithDisconnection]:
        protocol = self.factory.buildProtocol(None)
        assert protocol is not None
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return protocol, transport

    def connected(
        self, clientId: bytes, keepAlive: int = 0, level: int = 4, will: bool = False
    ) -> tuple[MQTTServerProtocol, StringTransportWithDisconnection]:
        protocol, transport = self.open()
        protocol.dataReceived(connect(clientId, keepAlive, level, will))
        reply = transport.value()
        assert reply[:1] == b"\x20" and reply[3:4] == b"\x00", reply
        transport.clear()
        return protocol, transport


class LifecycleTests(SynchronousTestCase):
    def test_registersAsStreamingProducer(self) -> None:
        """The protocol registers itself as a push producer on its transport."""
        protocol, transport = Harness().open()
        self.assertIs(transport.producer, protocol)
        self.assertTrue(transport.streaming)

    def test_connack(self) -> None:
        """The catalogue's C4 gets exactly 20 02 00 00."""
        protocol, transport = Harness().open()
        protocol.dataReceived(C4)
        self.assertEqual(transport.value(), bytes.fromhex("20 02 00 00"))
        self.assertTrue(transport.connected)

    def test_connectTimeoutIsADeadline(self) -> None:
        """A CONNECT dribbled byte by byte is closed at connect-timeout, silently."""
        harness = Harness(connectTimeout=5.0)
        protocol, transport = harness.open()
        for byte in C4[:-1]:
            protocol.dataReceived(bytes((byte,)))
            harness.clock.advance(0.3)
        self.assertTrue(transport.connected)
        harness.clock.advance(5.0 - 0.3 * (len(C4) - 1) - 0.01)
        self.assertTrue(transport.connected)
        harness.clock.advance(0.02)
        self.assertFalse(transport.connected)
        self.assertEqual(transport.value(), b"")

    def test_connectTimeoutCancelledByConnack(self) -> None:
        """Once connected, the connect timeout no longer applies (keep-alive 0)."""
        harness = Harness(connectTimeout=5.0)
        _protocol, transport = harness.connected(b"c")
        harness.clock.advance(3600)
        self.assertTrue(transport.connected)
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    def test_keepAliveExpiry(self) -> None:
        """No packet for 1.5 x keep-alive closes the connection and publishes the will."""
        harness = Harness()
        _protocol, transport = harness.connected(b"k", keepAlive=10, will=True)
        harness.clock.advance(14.99)
        self.assertTrue(transport.connected)
        harness.clock.advance(0.02)
        self.assertFalse(transport.connected)
        self.assertEqual([(m.topic, m.payload) for m in harness.messages], [("w/k", b"gone")])

    def test_keepAliveV5Disconnect(self) -> None:
        """A v5 client timed out by keep-alive is told 0x8D first."""
        harness = Harness()
        _protocol, transport = harness.connected(b"k5", keepAlive=2, level=5)
        harness.clock.advance(3.01)
        assertServerDisconnect(self, transport.value(), 0x8D)
        self.assertFalse(transport.connected)

    def test_pingreqRestartsKeepAlive(self) -> None:
        """Each packet restarts the 1.5 x keep-alive interval."""
        harness = Harness()
        protocol, transport = harness.connected(b"k", keepAlive=10)
        harness.clock.advance(10)
        protocol.dataReceived(b"\xc0\x00")
        self.assertEqual(transport.value(), b"\xd0\x00")
        harness.clock.advance(14.9)
        self.assertTrue(transport.connected)
        harness.clock.advance(0.2)
        self.assertFalse(transport.connected)

    def test_halfAPacketIsNotActivity(self) -> None:
        """Bytes of an incomplete packet do not keep the connection alive."""
        harness = Harness()
        protocol, transport = harness.connected(b"k", keepAlive=2)
        harness.clock.advance(2)
        protocol.dataReceived(bytes.fromhex("30 7F 00 03 61 2F 62"))
        harness.clock.advance(1.01)
        self.assertFalse(transport.connected)

    def test_takeover(self) -> None:
        """A second connection with the same id closes the first (v5: 0x8E)."""
        harness = Harness()
        _first, firstTransport = harness.connected(b"same", level=5)
        second, secondTransport = harness.connected(b"same", level=5)
        assertServerDisconnect(self, firstTransport.value(), 0x8E)
        self.assertFalse(firstTransport.connected)
        self.assertTrue(secondTransport.connected)
        self.assertIs(harness.broker.connections["same"], second)

    def test_maxConnections(self) -> None:
        """Past max-connections the factory builds no protocol (the socket is closed)."""
        harness = Harness(maxConnections=2)
        harness.open()
        harness.open()
        self.assertIsNone(harness.factory.buildProtocol(None))
        self.assertEqual(harness.broker.stats()["connectionsRefused"], 1)

    def test_maxPacketSizeV5(self) -> None:
        """A declared length over max-packet-size is refused before the body: DISCONNECT 0x95."""
        harness = Harness(maxPacketSize=1024)
        protocol, transport = harness.connected(b"big", level=5)
        protocol.dataReceived(bytes.fromhex("30 FF FF FF 7F"))
        assertServerDisconnect(self, transport.value(), 0x95)
        self.assertFalse(transport.connected)

    def test_stopServiceSendsServerShuttingDown(self) -> None:
        """Stopping the broker tells v5 clients 0x8B and leaves no timer behind."""
        harness = Harness()
        harness.broker.startService()
        _protocol, transport = harness.connected(b"s", keepAlive=30, level=5)
        harness.broker.stopService()
        assertServerDisconnect(self, transport.value(), 0x8B)
        self.assertFalse(transport.connected)
        self.assertEqual(harness.clock.getDelayedCalls(), [])


class ProducerTests(SynchronousTestCase):
    def test_outputFullPausesReading(self) -> None:
        """When the transport's buffer is full, the connection is not read either."""
        harness = Harness()
        protocol, transport = harness.connected(b"c")
        protocol.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        protocol.dataReceived(b"\xc0\x00")
        self.assertEqual(transport.value(), b"")
        protocol.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(transport.value(), b"\xd0\x00")

    def test_congestedSubscriberPausesPublisher(self) -> None:
        """
        A publisher feeding a subscriber above its high-water mark stops
        being read; it is resumed on the next turn after the queue drains.
        """
        harness = Harness(maxQueuedMessages=10)
        subscriber, subscriberTransport = harness.connected(b"sub")
        subscriber.dataReceived(bytes.fromhex("82 06 00 01 00 01 74 00"))  # "t" QoS 0
        subscriberTransport.clear()
        subscriber.pauseProducing()
        publisher, publisherTransport = harness.connected(b"pub")
        publish = bytes.fromhex("30 04 00 01 74 78")  # "t" <- "x"
        publisher.dataReceived(publish * 20)
        self.assertEqual(publisherTransport.producerState, "paused")
        session = subscriber.session
        assert session is not None
        # Paused at the high-water mark (half of max-queued-messages); the
        # rest of the chunk stays unread.
        self.assertEqual(len(session.queue), 5)
        subscriber.resumeProducing()
        self.assertEqual(len(session.queue), 0)
        self.assertEqual(publisherTransport.producerState, "paused")
        harness.clock.advance(0)
        self.assertEqual(publisherTransport.producerState, "producing")
        self.assertEqual(subscriberTransport.value(), publish * 20)


class ContainmentTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.binary(min_size=1, max_size=200), st.sampled_from([4, 5]))
    def test_noExceptionEscapes(self, garbage: bytes, level: int) -> None:
        """Whatever follows a CONNECT, dataReceived never raises."""
        harness = Harness()
        protocol, transport = harness.connected(b"g", level=level)
        protocol.dataReceived(garbage)
        for i in range(0, len(garbage), 7):
            protocol.dataReceived(garbage[i : i + 7])
        self.assertIsInstance(transport.value(), bytes)


class RefusalTests(SynchronousTestCase):
    def test_refusedConnectClosesOnce(self) -> None:
        """
        A refused CONNECT closes the connection once: the connect timer is
        cancelled and only the abort timer (for a peer that never reads)
        remains until the connection is gone.
        """
        harness = Harness(connectTimeout=5.0)
        protocol = harness.factory.buildProtocol(None)
        assert protocol is not None
        # A plain StringTransport: the connection does not go away by itself,
        # as with a peer that never reads.
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(bytes.fromhex("10 0C 00 04 4D 51 54 54 04 00 00 0A 00 00"))
        self.assertEqual(transport.value(), bytes.fromhex("20 02 00 02"))
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(transport.producer)
        [abort] = harness.clock.getDelayedCalls()
        harness.clock.advance(60)
        self.assertFalse(abort.active())
        self.assertEqual(harness.clock.getDelayedCalls(), [])
