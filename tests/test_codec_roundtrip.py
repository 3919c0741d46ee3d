"""
Property tests for L{mqttd.codec}: encode/decode round trips for every packet
type at every protocol level, chunking invariance of the incremental
L{Decoder}, its bounded buffering, and that it never allocates a declared
Remaining Length up front (catalogue FR-02, section 7 items 1 to 3).

Packets come from L{strategies}, which builds them from the specification
tables; the expected values are the generated packets themselves.
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    clientPackets,
    connects,
    levels,
    publishes,
    serverPackets,
    subscribes,
    unsubscribes,
)
from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import (
    DEFAULT_MAX_PACKET_SIZE,
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    NO_PROPERTIES,
    PROTOCOL_MAX_PACKET_SIZE,
    Connect,
    Decoder,
    Disconnect,
    ProtocolError,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    SubscriptionRequest,
    Unsubscribe,
    decodeAll,
    encode,
)
from mqttd.codec.primitives import encodeString, encodeVarint

PROPERTY = settings(max_examples=200, deadline=None)
STREAM = settings(max_examples=100, deadline=None)

#: A minimal CONNECT per level (client id "p", clean, keep alive 10).
CONNECTS = {level: Connect("p", level, True, 10) for level in (MQTT_3_1, MQTT_3_1_1, MQTT_5)}


def connectedDecoder(level: int, **kwargs: Any) -> Decoder:
    """
    A server-side decoder that has decoded a real CONNECT at C{level}.
    """
    decoder = Decoder(isServer=True, **kwargs)
    decoder.feed(encode(CONNECTS[level], level))
    packet = decoder.next()
    assert packet == CONNECTS[level], packet
    assert decoder.protocolLevel == level
    return decoder


def decodeOne(data: bytes, level: int, toServer: bool) -> Any:
    """
    Decode exactly one packet from C{data}, which must hold exactly one.
    """
    if toServer:
        decoder = connectedDecoder(level)
    else:
        decoder = Decoder(isServer=False, protocolLevel=level)
    decoder.feed(data)
    packet = decoder.next()
    assert packet is not None, data.hex(" ")
    assert decoder.next() is None
    assert decoder.buffered == 0
    return packet


def drain(decoder: Decoder, out: list[Any]) -> None:
    """
    Append every complete packet the decoder holds to C{out}.
    """
    while (packet := decoder.next()) is not None:
        out.append(packet)


def levelAnd(strategy: Any, *args: Any) -> st.SearchStrategy[tuple[int, Any]]:
    """
    A protocol level and a value drawn from C{strategy(level, *args)}.
    """
    return levels.flatmap(lambda level: st.tuples(st.just(level), strategy(level, *args)))


def levelAndMany(strategy: Any) -> st.SearchStrategy[tuple[int, list[Any]]]:
    """
    A protocol level and one to eight packets drawn from C{strategy(level)}.
    """
    return levels.flatmap(
        lambda level: st.tuples(st.just(level), st.lists(strategy(level), min_size=1, max_size=8))
    )


class RoundTripTests(SynchronousTestCase):
    """
    C{decode(encode(p)) == p} and C{encode(decode(b)) == b} for every packet
    type at protocol levels 3, 4 and 5.
    """

    def assertRoundTrip(self, packet: Any, level: int, toServer: bool) -> None:
        data = encode(packet, level)
        decoded = decodeOne(data, level, toServer)
        self.assertEqual(decoded, packet)
        self.assertEqual(encode(decoded, level), data)

    @PROPERTY
    @given(levelAnd(connects))
    def test_connect(self, levelAndPacket: tuple[int, Connect]) -> None:
        """
        A CONNECT survives a round trip through a fresh server-side decoder,
        which then takes the CONNECT's protocol level.
        """
        level, packet = levelAndPacket
        data = encode(packet, level)
        decoder = Decoder(isServer=True)
        decoder.feed(data)
        decoded = decoder.next()
        self.assertEqual(decoded, packet)
        self.assertEqual(decoder.protocolLevel, level)
        self.assertEqual(encode(decoded, level), data)

    @PROPERTY
    @given(st.data())
    def test_clientPacketsV31(self, data: st.DataObject) -> None:
        """
        Every packet a 3.1 client may send round-trips.
        """
        self.assertRoundTrip(data.draw(clientPackets(MQTT_3_1)), MQTT_3_1, True)

    @PROPERTY
    @given(st.data())
    def test_clientPacketsV311(self, data: st.DataObject) -> None:
        """
        Every packet a 3.1.1 client may send round-trips.
        """
        self.assertRoundTrip(data.draw(clientPackets(MQTT_3_1_1)), MQTT_3_1_1, True)

    @settings(max_examples=300, deadline=None)
    @given(st.data())
    def test_clientPacketsV5(self, data: st.DataObject) -> None:
        """
        Every packet a 5.0 client may send, with random allowed properties,
        round-trips (user properties repeated and in order).
        """
        self.assertRoundTrip(data.draw(clientPackets(MQTT_5)), MQTT_5, True)

    @PROPERTY
    @given(st.data())
    def test_serverPacketsV31(self, data: st.DataObject) -> None:
        """
        Every packet a server may send to a 3.1 client round-trips through a
        client-side decoder.
        """
        self.assertRoundTrip(data.draw(serverPackets(MQTT_3_1)), MQTT_3_1, False)

    @PROPERTY
    @given(st.data())
    def test_serverPacketsV311(self, data: st.DataObject) -> None:
        """
        Every packet a server may send to a 3.1.1 client round-trips.
        """
        self.assertRoundTrip(data.draw(serverPackets(MQTT_3_1_1)), MQTT_3_1_1, False)

    @settings(max_examples=300, deadline=None)
    @given(st.data())
    def test_serverPacketsV5(self, data: st.DataObject) -> None:
        """
        Every packet a server may send to a 5.0 client round-trips,
        including PUBLISH with several Subscription Identifiers.
        """
        self.assertRoundTrip(data.draw(serverPackets(MQTT_5)), MQTT_5, False)

    @PROPERTY
    @given(st.data())
    def test_v5OnlyContentDropped(self, data: st.DataObject) -> None:
        """
        A packet built with MQTT 5.0 content and encoded for 3.1 / 3.1.1
        decodes there as the same packet without properties, reason codes
        or v5 subscription options.
        """
        level = data.draw(st.sampled_from((MQTT_3_1, MQTT_3_1_1)))
        packet = data.draw(
            st.one_of(
                publishes(MQTT_5, True).filter(lambda p: p.topic != ""),
                subscribes(MQTT_5),
                unsubscribes(MQTT_5),
                st.builds(Disconnect, st.sampled_from((0x00, 0x04, 0x80)), st.just({0x1F: "x"})),
                *(
                    st.builds(cls, st.integers(1, 0xFFFF), st.just(0x80), st.just({0x1F: "r"}))
                    for cls in (Puback, Pubrec)
                ),
                *(
                    st.builds(cls, st.integers(1, 0xFFFF), st.just(0x92), st.just({0x1F: "r"}))
                    for cls in (Pubrel, Pubcomp)
                ),
            )
        )
        if isinstance(packet, Subscribe):
            expected: Any = Subscribe(
                packet.packetId,
                tuple(SubscriptionRequest(r.topicFilter, r.qos) for r in packet.subscriptions),
            )
        elif isinstance(packet, Disconnect):
            expected = Disconnect()
        elif isinstance(packet, (Puback, Pubrec, Pubrel, Pubcomp)):
            expected = type(packet)(packet.packetId)
        else:
            expected = dataclasses.replace(packet, properties=NO_PROPERTIES)
        self.assertEqual(decodeOne(encode(packet, level), level, True), expected)


class ChunkingTests(SynchronousTestCase):
    """
    The decoder yields the same packets however the stream is split, and
    holds no more than the packet it is waiting for.
    """

    def assertStream(self, decoder: Decoder, encodings: list[bytes], cuts: list[int]) -> list[Any]:
        """
        Feed the concatenation of C{encodings} cut at C{cuts}, draining after
        every chunk; check that the undecoded bytes are always a strict
        prefix of the next packet and that packets come out exactly when
        their last byte arrives.
        """
        stream = b"".join(encodings)
        ends = []
        offset = 0
        for chunk in encodings:
            offset += len(chunk)
            ends.append(offset)
        out: list[Any] = []
        previous = 0
        for cut in [*sorted(set(cuts)), len(stream)]:
            if cut == previous:
                continue
            decoder.feed(stream[previous:cut])
            previous = cut
            drain(decoder, out)
            complete = sum(1 for end in ends if end <= cut)
            self.assertEqual(len(out), complete)
            if complete < len(encodings):
                self.assertEqual(decoder.buffered, cut - (ends[complete - 1] if complete else 0))
                self.assertLess(decoder.buffered, len(encodings[complete]))
            else:
                self.assertEqual(decoder.buffered, 0)
        return out

    @STREAM
    @given(levelAndMany(clientPackets), st.data())
    def test_clientStreamSplitAnywhere(
        self, levelAndPackets: tuple[int, list[Any]], data: st.DataObject
    ) -> None:
        """
        A CONNECT followed by client packets, cut at random points, decodes
        to the same packets as the unsplit stream.
        """
        level, packets = levelAndPackets
        packets = [CONNECTS[level], *packets]
        encodings = [encode(p, level) for p in packets]
        total = sum(map(len, encodings))
        cuts = data.draw(st.lists(st.integers(0, total), max_size=12))
        out = self.assertStream(Decoder(isServer=True), encodings, cuts)
        self.assertEqual(out, packets)

    @STREAM
    @given(levelAndMany(serverPackets), st.data())
    def test_serverStreamSplitAnywhere(
        self, levelAndPackets: tuple[int, list[Any]], data: st.DataObject
    ) -> None:
        """
        Server packets cut at random points decode, on the client side, to
        the same packets.
        """
        level, packets = levelAndPackets
        encodings = [encode(p, level) for p in packets]
        total = sum(map(len, encodings))
        cuts = data.draw(st.lists(st.integers(0, total), max_size=12))
        decoder = Decoder(isServer=False, protocolLevel=level)
        self.assertEqual(self.assertStream(decoder, encodings, cuts), packets)

    @settings(max_examples=50, deadline=None)
    @given(levelAndMany(clientPackets))
    def test_clientStreamByteAtATime(self, levelAndPackets: tuple[int, list[Any]]) -> None:
        """
        Fed one byte at a time, the decoder returns nothing until the last
        byte of each packet and then exactly that packet.
        """
        level, packets = levelAndPackets
        packets = [CONNECTS[level], *packets]
        encodings = [encode(p, level) for p in packets]
        total = sum(map(len, encodings))
        out = self.assertStream(Decoder(isServer=True), encodings, list(range(total)))
        self.assertEqual(out, packets)

    @settings(max_examples=50, deadline=None)
    @given(levelAndMany(serverPackets))
    def test_serverStreamByteAtATime(self, levelAndPackets: tuple[int, list[Any]]) -> None:
        """
        The same one byte at a time on the client side.
        """
        level, packets = levelAndPackets
        encodings = [encode(p, level) for p in packets]
        total = sum(map(len, encodings))
        decoder = Decoder(isServer=False, protocolLevel=level)
        self.assertEqual(self.assertStream(decoder, encodings, list(range(total))), packets)

    def test_decodeAllMatchesIncremental(self) -> None:
        """
        L{decodeAll} with a protocol level decodes a stream of packets as if
        the CONNECT had been seen.
        """
        packets = [
            Publish("a/b", b"x", 1, packetId=3),
            Puback(3),
            Subscribe(4, (SubscriptionRequest("a/#", 2),)),
            Unsubscribe(5, ("a/#",)),
            Disconnect(),
        ]
        for level in (MQTT_3_1, MQTT_3_1_1, MQTT_5):
            data = b"".join(encode(p, level) for p in packets)
            self.assertEqual(decodeAll(data, protocolLevel=level), packets)


class LargeLengthTests(SynchronousTestCase):
    """
    A declared Remaining Length is checked before the body arrives and is
    never allocated up front (CVE-2017-7651, catalogue FR-02).
    """

    HUGE_HEADER = bytes.fromhex("30 FF FF FF 7F")

    def test_hugeDeclaredLengthNotAllocated(self) -> None:
        """
        With a limit that admits it, C{30 FF FF FF 7F} plus 16 bytes after a
        CONNECT allocates a few KiB at most, not the declared 256 MiB.
        """
        decoder = connectedDecoder(MQTT_3_1_1, maxPacketSize=PROTOCOL_MAX_PACKET_SIZE)
        tracemalloc.start()
        try:
            decoder.feed(self.HUGE_HEADER)
            self.assertIsNone(decoder.next())
            decoder.feed(bytes.fromhex("00 05 74 6F 70 69 63") + b"p" * 9)
            self.assertIsNone(decoder.next())
            decoder.feed(b"q" * 64)
            self.assertIsNone(decoder.next())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertLess(peak, 64 * 1024)
        self.assertEqual(decoder.buffered, 5 + 16 + 64)

    def test_hugeDeclaredLengthRejected(self) -> None:
        """
        With the default 1 MiB limit, the error (reason code 0x95) comes as
        soon as the last length byte is in, before any body byte.
        """
        for level in (MQTT_3_1_1, MQTT_5):
            decoder = connectedDecoder(level)
            for byte in self.HUGE_HEADER[:-1]:
                decoder.feed(bytes((byte,)))
                self.assertIsNone(decoder.next())
            decoder.feed(self.HUGE_HEADER[-1:])
            with self.assertRaises(ProtocolError) as caught:
                decoder.next()
            self.assertIs(type(caught.exception), ProtocolError)
            self.assertEqual(caught.exception.reasonCode, 0x95)

    def test_packetSizeLimitBoundary(self) -> None:
        """
        A packet of exactly maxPacketSize bytes (fixed header included) is
        accepted; one byte more is refused with 0x95 once its length is read.
        """
        limit = 1000
        for size, accepted in ((limit, True), (limit + 1, False)):
            # 1 type byte + 2 length bytes + 2 + 1 topic bytes + payload.
            payload = b"z" * (size - 6)
            data = encode(Publish("t", payload), MQTT_3_1_1)
            self.assertEqual(len(data), size)
            decoder = connectedDecoder(MQTT_3_1_1, maxPacketSize=limit)
            decoder.feed(data[:3])
            if accepted:
                self.assertIsNone(decoder.next())
                decoder.feed(data[3:])
                self.assertEqual(decoder.next(), Publish("t", payload))
            else:
                with self.assertRaises(ProtocolError) as caught:
                    decoder.next()
                self.assertEqual(caught.exception.reasonCode, 0x95)

    def test_oneMebibyteIn64ByteChunks(self) -> None:
        """
        A PUBLISH of the default maximum size (1 MiB with its header) fed in
        64-byte chunks is reassembled exactly, followed by a PINGREQ.
        """
        topic = "big/one"
        payload = bytes(range(256)) * (DEFAULT_MAX_PACKET_SIZE // 256)
        overhead = 1 + 3 + 2 + len(topic) + 2  # header, length, topic, packet id
        payload = payload[: DEFAULT_MAX_PACKET_SIZE - overhead]
        packet = Publish(topic, payload, qos=1, packetId=9)
        data = encode(packet, MQTT_3_1_1)
        self.assertEqual(len(data), DEFAULT_MAX_PACKET_SIZE)
        data += bytes.fromhex("C0 00")
        decoder = connectedDecoder(MQTT_3_1_1)
        out: list[Any] = []
        for start in range(0, len(data), 64):
            decoder.feed(data[start : start + 64])
            drain(decoder, out)
        self.assertEqual(len(out), 2)
        self.assertEqual(out[0], packet)
        self.assertEqual(out[1].packetType, 12)
        self.assertEqual(decoder.buffered, 0)

    def test_reassemblyIsLinear(self) -> None:
        """
        A 4 MiB PUBLISH fed in 64-byte chunks is reassembled well within a
        generous deadline: chunks are joined once, not once per chunk.
        """
        payload = b"\xa5" * (4 * 1024 * 1024)
        packet = Publish("t", payload)
        data = encode(packet, MQTT_3_1_1)
        decoder = connectedDecoder(MQTT_3_1_1, maxPacketSize=8 * 1024 * 1024)
        out: list[Any] = []
        deadline = time.perf_counter() + 5.0
        for start in range(0, len(data), 64):
            decoder.feed(data[start : start + 64])
            drain(decoder, out)
            if time.perf_counter() > deadline:
                self.fail(f"still reassembling after 5 s, at byte {start}")
        self.assertEqual(out, [packet])


class LinearTimeTests(SynchronousTestCase):
    """
    Repeated properties decode in linear time: a packet within the default
    1 MiB limit must not block the reactor (CVE-2021-41039, catalogue CN-14).
    The deadline is a generous liveness bound, not a performance assertion.
    """

    DEADLINE = 5.0

    def decodeTimed(self, data: bytes, decoder: Decoder) -> Any:
        start = time.perf_counter()
        decoder.feed(data)
        packet = decoder.next()
        self.assertLess(time.perf_counter() - start, self.DEADLINE)
        return packet

    def test_manyUserProperties(self) -> None:
        """
        A v5 PUBLISH with 150,000 user properties (about 900 KB) decodes
        promptly, every pair kept in wire order.
        """
        count = 150_000
        pairs = [("a", "")] * (count - 1) + [("z", "9")]
        props = b"".join(b"\x26" + encodeString(k) + encodeString(v) for k, v in pairs)
        body = bytes.fromhex("00 01 74") + encodeVarint(len(props)) + props + b"x"
        data = b"\x30" + encodeVarint(len(body)) + body
        self.assertLess(len(data), DEFAULT_MAX_PACKET_SIZE)
        packet = self.decodeTimed(data, connectedDecoder(MQTT_5))
        self.assertEqual(packet.properties[0x26], tuple(pairs))
        self.assertEqual(packet.payload, b"x")

    def test_manySubscriptionIdentifiers(self) -> None:
        """
        A PUBLISH to a client with 100,000 subscription identifiers decodes
        promptly, in wire order.
        """
        ids = list(range(1, 100_001))
        props = b"".join(b"\x0b" + encodeVarint(i) for i in ids)
        body = bytes.fromhex("00 01 74") + encodeVarint(len(props)) + props
        data = b"\x30" + encodeVarint(len(body)) + body
        packet = self.decodeTimed(data, Decoder(isServer=False, protocolLevel=MQTT_5))
        self.assertEqual(packet.properties[0x0B], tuple(ids))

    def test_connectWith5001UserProperties(self) -> None:
        """
        CN-14: a v5 CONNECT with 5,001 user properties C{26 00 03 6B 65 79
        00 05 76 61 6C 75 65} decodes, all of them kept.
        """
        props = bytes.fromhex("26 00 03 6B 65 79 00 05 76 61 6C 75 65") * 5001
        body = (
            bytes.fromhex("00 04 4D 51 54 54 05 02 00 0A")
            + encodeVarint(len(props))
            + props
            + bytes.fromhex("00 01 70")
        )
        data = b"\x10" + encodeVarint(len(body)) + body
        packet = self.decodeTimed(data, Decoder(isServer=True))
        self.assertEqual(packet.properties, {0x26: (("key", "value"),) * 5001})


class RetainedMemoryTests(SynchronousTestCase):
    """
    What a decoder keeps between packets stays small however many distinct
    topics a client publishes to (catalogue RX-04, RX-20: memory never grows
    without bound).
    """

    def retainedAfter(self, topics: list[str]) -> int:
        """
        Bytes still allocated after decoding a PUBLISH to each topic (the
        packets themselves are dropped).
        """
        decoder = connectedDecoder(MQTT_3_1_1)
        encoded = [encode(Publish(topic, b"p"), MQTT_3_1_1) for topic in topics]
        tracemalloc.start()
        try:
            for data in encoded:
                decoder.feed(data)
                self.assertIsNotNone(decoder.next())
            current, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return current

    def test_longTopicsNotKept(self) -> None:
        """
        200 PUBLISHes to distinct 32 KiB topics (6.4 MB of topic names)
        leave less than 1 MiB behind.
        """
        topics = [f"{i:05d}/" + "x" * (32 * 1024) for i in range(200)]
        self.assertLess(self.retainedAfter(topics), 1024 * 1024)

    def test_manyShortTopicsBounded(self) -> None:
        """
        12,000 distinct 200-byte topics (2.4 MB of names) leave less than
        4 MiB behind.
        """
        topics = [f"{i:06d}/" + "y" * 193 for i in range(12_000)]
        self.assertLess(self.retainedAfter(topics), 4 * 1024 * 1024)
