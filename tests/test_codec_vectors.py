"""
Byte-exact vectors for every MQTT control packet at every protocol level
where it exists (3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0).

Each vector was written by hand from the specification's packet layouts
(MQTT 3.1 section 3, 3.1.1 section 3, 5.0 section 3) and checked in both
directions: the bytes decode to the packet, and the packet encodes to the
bytes.  A few non-canonical forms the specification allows are decode-only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Decoder,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
)

SR = SubscriptionRequest

#: Client to server (decoded by a server-side decoder), server to client
#: (decoded by a client-side decoder), or either.
C2S, S2C, BOTH = "c2s", "s2c", "both"

#: The CONNECT that puts a server-side decoder at each level.
CONNECT_BYTES = {
    MQTT_3_1: bytes.fromhex("10 0F 00 06 4D 51 49 73 64 70 03 02 00 0A 00 01 70"),
    MQTT_3_1_1: bytes.fromhex("10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 70"),
    MQTT_5: bytes.fromhex("10 0E 00 04 4D 51 54 54 05 02 00 0A 00 00 01 70"),
}


class Vector(NamedTuple):
    """
    Bytes and the packet they stand for at C{level}; C{canonical} vectors
    are also what L{encode} must produce.
    """

    name: str
    level: int
    direction: str
    hexBytes: str
    packet: Any
    canonical: bool = True


def acks(level: int, packetId: int, hexId: str) -> list[Vector]:
    """
    The four plain acknowledgements (no reason code): C{40/50/62/70 02 id}.
    """
    return [
        Vector(f"PUBACK v{level}", level, BOTH, f"40 02 {hexId}", Puback(packetId)),
        Vector(f"PUBREC v{level}", level, BOTH, f"50 02 {hexId}", Pubrec(packetId)),
        Vector(f"PUBREL v{level}", level, BOTH, f"62 02 {hexId}", Pubrel(packetId)),
        Vector(f"PUBCOMP v{level}", level, BOTH, f"70 02 {hexId}", Pubcomp(packetId)),
    ]


def pings(level: int) -> list[Vector]:
    """
    PINGREQ, PINGRESP and the bare DISCONNECT, the same at every level.
    """
    return [
        Vector(f"PINGREQ v{level}", level, C2S, "C0 00", Pingreq()),
        Vector(f"PINGRESP v{level}", level, S2C, "D0 00", Pingresp()),
        Vector(f"DISCONNECT v{level}", level, BOTH, "E0 00", Disconnect()),
    ]


VECTORS: list[Vector] = [
    # ---- MQTT 3.1 (protocol name MQIsdp, level 3) ------------------------
    Vector(
        "CONNECT 3.1",
        MQTT_3_1,
        C2S,
        "10 0F 00 06 4D 51 49 73 64 70 03 02 00 0A 00 01 70",
        Connect("p", MQTT_3_1, True, 10),
    ),
    Vector(
        "CONNECT 3.1 will QoS 1 retain, user name, password",
        MQTT_3_1,
        C2S,
        "10 1F 00 06 4D 51 49 73 64 70 03 EE 00 3C 00 02 63 31"
        " 00 01 77 00 03 62 79 65 00 01 75 00 02 70 77",
        Connect("c1", MQTT_3_1, True, 60, Will("w", b"bye", 1, True), "u", b"pw"),
    ),
    Vector("CONNACK 3.1 accepted", MQTT_3_1, S2C, "20 02 00 00", Connack()),
    Vector("CONNACK 3.1 identifier rejected", MQTT_3_1, S2C, "20 02 00 02", Connack(False, 2)),
    Vector(
        "PUBLISH 3.1 QoS 0",
        MQTT_3_1,
        BOTH,
        "30 0A 00 03 61 2F 62 68 65 6C 6C 6F",
        Publish("a/b", b"hello"),
    ),
    Vector(
        "PUBLISH 3.1 QoS 1 retain",
        MQTT_3_1,
        BOTH,
        "33 0C 00 03 61 2F 62 00 07 68 65 6C 6C 6F",
        Publish("a/b", b"hello", 1, True, False, 7),
    ),
    *acks(MQTT_3_1, 7, "00 07"),
    Vector(
        "SUBSCRIBE 3.1 two filters",
        MQTT_3_1,
        C2S,
        "82 0C 00 0A 00 03 61 2F 2B 01 00 01 23 02",
        Subscribe(10, (SR("a/+", 1), SR("#", 2))),
    ),
    Vector("SUBACK 3.1", MQTT_3_1, S2C, "90 04 00 0A 01 02", Suback(10, (1, 2))),
    Vector(
        "UNSUBSCRIBE 3.1",
        MQTT_3_1,
        C2S,
        "A2 07 00 0B 00 03 61 2F 2B",
        Unsubscribe(11, ("a/+",)),
    ),
    Vector("UNSUBACK 3.1", MQTT_3_1, S2C, "B0 02 00 0B", Unsuback(11)),
    *pings(MQTT_3_1),
    # ---- MQTT 3.1.1 (level 4) ----------------------------------------------
    Vector(
        "CONNECT 3.1.1 (catalogue C4)",
        MQTT_3_1_1,
        C2S,
        "10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 70",
        Connect("p", MQTT_3_1_1, True, 10),
    ),
    Vector(
        "CONNECT 3.1.1 will QoS 1 retain, user name, password",
        MQTT_3_1_1,
        C2S,
        "10 1D 00 04 4D 51 54 54 04 EE 00 3C 00 02 63 31"
        " 00 01 77 00 03 62 79 65 00 01 75 00 02 70 77",
        Connect("c1", MQTT_3_1_1, True, 60, Will("w", b"bye", 1, True), "u", b"pw"),
    ),
    Vector(
        "CONNECT 3.1.1 empty client id, user name only, keep alive 0",
        MQTT_3_1_1,
        C2S,
        "10 12 00 04 4D 51 54 54 04 82 00 00 00 00 00 04 75 73 65 72",
        Connect("", MQTT_3_1_1, True, 0, None, "user"),
    ),
    Vector(
        "CONNECT 3.1.1 persistent session, will QoS 2",
        MQTT_3_1_1,
        C2S,
        "10 17 00 04 4D 51 54 54 04 14 FF FF 00 02 69 64 00 03 61 2F 77 00 02 00 FF",
        Connect("id", MQTT_3_1_1, False, 0xFFFF, Will("a/w", b"\x00\xff", 2, False)),
    ),
    Vector("CONNACK 3.1.1 accepted", MQTT_3_1_1, S2C, "20 02 00 00", Connack()),
    Vector("CONNACK 3.1.1 session present", MQTT_3_1_1, S2C, "20 02 01 00", Connack(True, 0)),
    Vector("CONNACK 3.1.1 not authorized", MQTT_3_1_1, S2C, "20 02 00 05", Connack(False, 5)),
    Vector(
        "PUBLISH 3.1.1 QoS 2 DUP",
        MQTT_3_1_1,
        BOTH,
        "3C 0C 00 03 61 2F 62 12 34 68 65 6C 6C 6F",
        Publish("a/b", b"hello", 2, False, True, 0x1234),
    ),
    Vector(
        "PUBLISH 3.1.1 retained, empty payload",
        MQTT_3_1_1,
        BOTH,
        "31 05 00 03 61 2F 62",
        Publish("a/b", b"", 0, True),
    ),
    *acks(MQTT_3_1_1, 0xFFFF, "FF FF"),
    Vector(
        "SUBSCRIBE 3.1.1",
        MQTT_3_1_1,
        C2S,
        "82 06 00 01 00 01 70 00",
        Subscribe(1, (SR("p", 0),)),
    ),
    Vector("SUBACK 3.1.1 (FR-10)", MQTT_3_1_1, S2C, "90 03 00 01 01", Suback(1, (1,))),
    Vector(
        "SUBACK 3.1.1 with failure",
        MQTT_3_1_1,
        S2C,
        "90 05 00 0A 00 02 80",
        Suback(10, (0, 2, 0x80)),
    ),
    Vector(
        "UNSUBSCRIBE 3.1.1 two filters",
        MQTT_3_1_1,
        C2S,
        "A2 0C 00 0B 00 03 61 2F 2B 00 03 61 2F 23",
        Unsubscribe(11, ("a/+", "a/#")),
    ),
    Vector("UNSUBACK 3.1.1", MQTT_3_1_1, S2C, "B0 02 12 34", Unsuback(0x1234)),
    *pings(MQTT_3_1_1),
    # ---- MQTT 5.0 ------------------------------------------------------------
    Vector(
        "CONNECT 5.0 (catalogue C5)",
        MQTT_5,
        C2S,
        "10 0E 00 04 4D 51 54 54 05 02 00 0A 00 00 01 70",
        Connect("p", MQTT_5, True, 10),
    ),
    Vector(
        "CONNECT 5.0 properties, will properties, user name, password",
        MQTT_5,
        C2S,
        "10 42 00 04 4D 51 54 54 05 F6 00 1E"
        " 0F 11 00 00 0E 10 21 00 14 26 00 01 6B 00 01 76"
        " 00 01 63"
        " 0E 18 00 00 00 05 01 01 03 00 04 74 65 78 74"
        " 00 03 77 2F 74 00 04 67 6F 6E 65"
        " 00 04 75 73 65 72 00 03 01 02 03",
        Connect(
            "c",
            MQTT_5,
            True,
            30,
            Will("w/t", b"gone", 2, True, {0x18: 5, 0x01: 1, 0x03: "text"}),
            "user",
            b"\x01\x02\x03",
            {0x11: 3600, 0x21: 20, 0x26: (("k", "v"),)},
        ),
    ),
    Vector(
        "CONNECT 5.0 password without user name",
        MQTT_5,
        C2S,
        "10 13 00 04 4D 51 54 54 05 42 00 0A 00 00 01 70 00 03 73 65 63",
        Connect("p", MQTT_5, True, 10, None, None, b"sec"),
    ),
    Vector(
        "CONNECT 5.0 authentication method and data",
        MQTT_5,
        C2S,
        "10 1B 00 04 4D 51 54 54 05 00 00 00 0D 15 00 05 53 43 52 41 4D 16 00 02 01 02"
        " 00 01 70",
        Connect("p", MQTT_5, False, 0, properties={0x15: "SCRAM", 0x16: b"\x01\x02"}),
    ),
    Vector("CONNACK 5.0 success", MQTT_5, S2C, "20 03 00 00 00", Connack()),
    Vector("CONNACK 5.0 not authorized", MQTT_5, S2C, "20 03 00 87 00", Connack(False, 0x87)),
    Vector(
        "CONNACK 5.0 session present with properties",
        MQTT_5,
        S2C,
        "20 0E 01 00 0B 21 00 0A 12 00 02 69 64 22 00 05",
        Connack(True, 0, {0x21: 10, 0x12: "id", 0x22: 5}),
    ),
    Vector(
        "PUBLISH 5.0 QoS 1 with several properties and two user properties",
        MQTT_5,
        BOTH,
        "32 37 00 03 61 2F 62 00 01 2D"
        " 01 01 02 00 00 00 3C 03 00 0A 74 65 78 74 2F 70 6C 61 69 6E"
        " 08 00 03 72 2F 31 09 00 02 AB CD"
        " 26 00 01 61 00 01 31 26 00 01 61 00 01 32"
        " 68 69",
        Publish(
            "a/b",
            b"hi",
            1,
            False,
            False,
            1,
            {
                0x01: 1,
                0x02: 60,
                0x03: "text/plain",
                0x08: "r/1",
                0x09: b"\xab\xcd",
                0x26: (("a", "1"), ("a", "2")),
            },
        ),
    ),
    Vector(
        "PUBLISH 5.0 user properties keep wire order",
        MQTT_5,
        BOTH,
        "30 12 00 01 74 0E 26 00 01 62 00 01 32 26 00 01 61 00 01 31",
        Publish("t", b"", properties={0x26: (("b", "2"), ("a", "1"))}),
    ),
    Vector(
        "PUBLISH 5.0 to a client: two subscription identifiers and an alias",
        MQTT_5,
        S2C,
        "30 0D 00 01 74 08 0B 01 0B 80 01 23 00 02 78",
        Publish("t", b"x", properties={0x0B: (1, 128), 0x23: 2}),
    ),
    Vector(
        "PUBLISH 5.0 empty topic with a topic alias",
        MQTT_5,
        BOTH,
        "30 07 00 00 03 23 00 05 7A",
        Publish("", b"z", properties={0x23: 5}),
    ),
    Vector("PUBACK 5.0 success", MQTT_5, BOTH, "40 02 00 01", Puback(1)),
    Vector("PUBACK 5.0 no matching subscribers", MQTT_5, BOTH, "40 03 00 01 10", Puback(1, 0x10)),
    Vector(
        "PUBACK 5.0 with reason string",
        MQTT_5,
        BOTH,
        "40 0A 00 01 80 06 1F 00 03 62 61 64",
        Puback(1, 0x80, {0x1F: "bad"}),
    ),
    Vector(
        "PUBACK 5.0 success with a user property",
        MQTT_5,
        BOTH,
        "40 0B 00 02 00 07 26 00 01 6B 00 01 76",
        Puback(2, 0, {0x26: (("k", "v"),)}),
    ),
    Vector(
        "PUBACK 5.0 with an empty property block",
        MQTT_5,
        BOTH,
        "40 04 00 01 00 00",
        Puback(1),
        canonical=False,
    ),
    Vector(
        "PUBACK 5.0 with an explicit success code",
        MQTT_5,
        BOTH,
        "40 03 00 01 00",
        Puback(1),
        canonical=False,
    ),
    Vector("PUBREC 5.0", MQTT_5, BOTH, "50 03 00 05 10", Pubrec(5, 0x10)),
    Vector("PUBREL 5.0 id not found", MQTT_5, BOTH, "62 03 00 05 92", Pubrel(5, 0x92)),
    Vector("PUBCOMP 5.0", MQTT_5, BOTH, "70 02 00 05", Pubcomp(5)),
    Vector("PUBCOMP 5.0 id not found", MQTT_5, BOTH, "70 03 00 05 92", Pubcomp(5, 0x92)),
    Vector(
        "SUBSCRIBE 5.0 options and subscription identifier",
        MQTT_5,
        C2S,
        "82 0F 00 0A 02 0B 05 00 03 61 2F 2B 1D 00 01 23 20",
        Subscribe(10, (SR("a/+", 1, True, True, 1), SR("#", 0, False, False, 2)), {0x0B: (5,)}),
    ),
    Vector(
        "SUBSCRIBE 5.0 maximum subscription identifier",
        MQTT_5,
        C2S,
        "82 0C 12 34 05 0B FF FF FF 7F 00 01 70 00",
        Subscribe(0x1234, (SR("p"),), {0x0B: (268_435_455,)}),
    ),
    Vector("SUBACK 5.0", MQTT_5, S2C, "90 04 00 01 00 01", Suback(1, (1,))),
    Vector(
        "SUBACK 5.0 with reason string",
        MQTT_5,
        S2C,
        "90 0B 00 0A 05 1F 00 02 6E 6F 00 02 8F",
        Suback(10, (0, 2, 0x8F), {0x1F: "no"}),
    ),
    Vector(
        "UNSUBSCRIBE 5.0",
        MQTT_5,
        C2S,
        "A2 08 00 0B 00 00 03 61 2F 2B",
        Unsubscribe(11, ("a/+",)),
    ),
    Vector(
        "UNSUBSCRIBE 5.0 with a user property",
        MQTT_5,
        C2S,
        "A2 0F 00 0B 07 26 00 01 6B 00 01 76 00 03 61 2F 2B",
        Unsubscribe(11, ("a/+",), {0x26: (("k", "v"),)}),
    ),
    Vector(
        "UNSUBACK 5.0",
        MQTT_5,
        S2C,
        "B0 05 00 0B 00 00 11",
        Unsuback(11, (0x00, 0x11)),
    ),
    Vector("PINGREQ 5.0", MQTT_5, C2S, "C0 00", Pingreq()),
    Vector("PINGRESP 5.0", MQTT_5, S2C, "D0 00", Pingresp()),
    Vector("DISCONNECT 5.0 normal", MQTT_5, BOTH, "E0 00", Disconnect()),
    Vector("DISCONNECT 5.0 session taken over", MQTT_5, S2C, "E0 01 8E", Disconnect(0x8E)),
    Vector("DISCONNECT 5.0 with will", MQTT_5, C2S, "E0 01 04", Disconnect(0x04)),
    Vector(
        "DISCONNECT 5.0 session expiry and reason string",
        MQTT_5,
        C2S,
        "E0 0C 00 0A 11 00 00 00 00 1F 00 02 6F 6B",
        Disconnect(0, {0x11: 0, 0x1F: "ok"}),
    ),
    Vector(
        "DISCONNECT 5.0 with an empty property block",
        MQTT_5,
        S2C,
        "E0 02 8B 00",
        Disconnect(0x8B),
        canonical=False,
    ),
    Vector("AUTH 5.0 bare", MQTT_5, BOTH, "F0 00", Auth()),
    Vector(
        "AUTH 5.0 continue with method and data",
        MQTT_5,
        BOTH,
        "F0 0F 18 0D 15 00 05 53 43 52 41 4D 16 00 02 01 02",
        Auth(0x18, {0x15: "SCRAM", 0x16: b"\x01\x02"}),
    ),
]


def decoderFor(vector: Vector, side: str) -> Decoder:
    """
    A decoder ready to receive C{vector}'s packet from C{side}.
    """
    if side == S2C:
        return Decoder(isServer=False, protocolLevel=vector.level)
    decoder = Decoder(isServer=True)
    if not isinstance(vector.packet, Connect):
        decoder.feed(CONNECT_BYTES[vector.level])
        assert isinstance(decoder.next(), Connect)
    return decoder


class VectorTests(SynchronousTestCase):
    """
    Hand-written byte vectors, decoded and encoded.
    """

    def sides(self, vector: Vector) -> list[str]:
        return [C2S, S2C] if vector.direction == BOTH else [vector.direction]

    def test_coverage(self) -> None:
        """
        The table has a canonical vector for each of the 15 packet types at
        every level where the type exists (AUTH only in 5.0).
        """
        for level in (MQTT_3_1, MQTT_3_1_1, MQTT_5):
            types = {v.packet.packetType for v in VECTORS if v.level == level and v.canonical}
            expected = set(range(1, 16 if level == MQTT_5 else 15))
            self.assertEqual(types, expected, level)

    def test_decode(self) -> None:
        """
        Each vector decodes, in one chunk, to its packet on the side(s) that
        may receive it, leaving nothing buffered.
        """
        for vector in VECTORS:
            for side in self.sides(vector):
                decoder = decoderFor(vector, side)
                decoder.feed(bytes.fromhex(vector.hexBytes))
                self.assertEqual(decoder.next(), vector.packet, (vector.name, side))
                self.assertIsNone(decoder.next())
                self.assertEqual(decoder.buffered, 0)

    def test_decodeByteAtATime(self) -> None:
        """
        Fed one byte at a time, each vector yields nothing until its last
        byte, then its packet.
        """
        for vector in VECTORS:
            data = bytes.fromhex(vector.hexBytes)
            for side in self.sides(vector):
                decoder = decoderFor(vector, side)
                for byte in data[:-1]:
                    decoder.feed(bytes((byte,)))
                    self.assertIsNone(decoder.next(), vector.name)
                decoder.feed(data[-1:])
                self.assertEqual(decoder.next(), vector.packet, (vector.name, side))

    def test_encode(self) -> None:
        """
        Each canonical vector's packet encodes to exactly its bytes.
        """
        for vector in VECTORS:
            if vector.canonical:
                self.assertEqual(
                    encode(vector.packet, vector.level).hex(" ").upper(),
                    bytes.fromhex(vector.hexBytes).hex(" ").upper(),
                    vector.name,
                )

    def test_decodedConnectSetsLevel(self) -> None:
        """
        After decoding a CONNECT vector a server-side decoder is at that
        CONNECT's level (PUBACK with a reason code is then v5-only).
        """
        for level, data in CONNECT_BYTES.items():
            decoder = Decoder(isServer=True)
            self.assertIsNone(decoder.protocolLevel)
            decoder.feed(data)
            self.assertEqual(decoder.next().protocolName, "MQIsdp" if level == 3 else "MQTT")
            self.assertEqual(decoder.protocolLevel, level)


class CrossVersionEncodingTests(SynchronousTestCase):
    """
    A packet carrying MQTT 5.0 content, encoded for 3.1.x, leaves that
    content out (hand-written expected bytes).
    """

    def test_v5ContentDropped(self) -> None:
        """
        Properties, reason codes and v5 subscription options are not encoded
        for levels 3 and 4.
        """
        cases = [
            (
                Publish("a/b", b"hi", 1, False, False, 1, {0x02: 60, 0x26: (("a", "1"),)}),
                "32 09 00 03 61 2F 62 00 01 68 69",
            ),
            (Puback(1, 0x80, {0x1F: "bad"}), "40 02 00 01"),
            (Pubrel(1, 0x92), "62 02 00 01"),
            (Disconnect(0x8E, {0x1F: "x"}), "E0 00"),
            (
                Subscribe(10, (SR("a/+", 1, True, True, 1),), {0x0B: (5,)}),
                "82 08 00 0A 00 03 61 2F 2B 01",
            ),
            (Unsubscribe(11, ("a/+",), {0x26: (("k", "v"),)}), "A2 07 00 0B 00 03 61 2F 2B"),
            (Unsuback(11, (0x11,), {0x1F: "x"}), "B0 02 00 0B"),
            (Connack(True, 0, {0x21: 10}), "20 02 01 00"),
            (Suback(1, (1,), {0x1F: "x"}), "90 03 00 01 01"),
            (
                Connect("p", MQTT_5, True, 10, Will("w", b"", 0, False, {0x18: 5}), None, None,
                        {0x11: 10}),
                "10 12 00 04 4D 51 54 54 04 06 00 0A 00 01 70 00 01 77 00 00",
            ),
        ]
        for packet, hexBytes in cases:
            self.assertEqual(encode(packet, MQTT_3_1_1), bytes.fromhex(hexBytes), packet)

    def test_authNeedsV5(self) -> None:
        """
        AUTH cannot be encoded for 3.1 or 3.1.1.
        """
        for level in (MQTT_3_1, MQTT_3_1_1):
            self.assertRaises(ValueError, encode, Auth(), level)


class EncoderLimitTests(SynchronousTestCase):
    """
    Packets the wire format cannot express raise L{ValueError}.
    """

    def test_qosWithoutPacketId(self) -> None:
        """
        A QoS 1 or 2 PUBLISH needs a packet identifier.
        """
        for qos in (1, 2):
            self.assertRaises(ValueError, encode, Publish("t", b"", qos), MQTT_3_1_1)

    def test_longStrings(self) -> None:
        """
        Strings of more than 65,535 bytes raise L{ValueError}: client id,
        topic filter and PUBLISH topic alike.
        """
        tooLong = "a" * 0x10000
        for packet in (
            Connect(tooLong),
            Subscribe(1, (SR(tooLong),)),
            Unsubscribe(1, (tooLong,)),
            Publish(tooLong, b"x"),
            Publish("é" * 0x8000, b"x"),
        ):
            self.assertRaises(ValueError, encode, packet, MQTT_3_1_1)

    def test_longestTopic(self) -> None:
        """
        A PUBLISH topic of exactly 65,535 bytes is encoded with length
        C{FF FF}.
        """
        data = encode(Publish("a" * 0xFFFF, b""), MQTT_3_1_1)
        self.assertEqual(data[:6], bytes.fromhex("30 81 80 04 FF FF"))
        self.assertEqual(len(data), 4 + 0x10001)
