"""
Tests for L{mqttd.codec.primitives}: Variable Byte Integers (MQTT 5.0
section 1.5.5, 3.1.1 section 2.2.3), UTF-8 Encoded Strings (section 1.5.4)
and Binary Data (section 1.5.6), and the same rules as seen through the
L{Decoder} (Remaining Length, property lengths, strings in packets).

Expected encodings are the specification's table of Variable Byte Integer
sizes and hand-written UTF-8; the differential tests compare with Python's
strict UTF-8 codec and a forbidden-character predicate written here.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import isDisallowedCodePoint
from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connect,
    Decoder,
    MalformedPacket,
    Publish,
    encode,
)
from mqttd.codec.primitives import (
    MAX_VARINT,
    decodeBinary,
    decodeString,
    decodeVarint,
    encodeBinary,
    encodeString,
    encodeVarint,
    forbiddenCharacters,
)

PROPERTY = settings(max_examples=300, deadline=None)

STRICT = forbiddenCharacters(True)
LENIENT = forbiddenCharacters(False)

C4 = bytes.fromhex("10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 70")
C5 = bytes.fromhex("10 0E 00 04 4D 51 54 54 05 02 00 0A 00 00 01 70")


def minimalLength(value: int) -> int:
    """
    The size table of MQTT 5.0 section 1.5.5.
    """
    if value <= 127:
        return 1
    if value <= 16_383:
        return 2
    if value <= 2_097_151:
        return 3
    return 4


def referenceVarint(data: bytes) -> tuple[int, int] | None:
    """
    Decode a Variable Byte Integer at the start of C{data} following the
    specification's algorithm; L{None} if it is truncated, longer than four
    bytes, or not in its minimal form.
    """
    multiplier = 1
    value = 0
    for index, byte in enumerate(data[:4]):
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            size = index + 1
            if size > 1 and byte == 0:
                return None
            return value, size
    return None


def connectedDecoder(level: int, strict: bool = True) -> Decoder:
    """
    A server-side decoder that has decoded C4 or C5.
    """
    decoder = Decoder(isServer=True, strictStrings=strict)
    decoder.feed(C5 if level == MQTT_5 else C4)
    assert isinstance(decoder.next(), Connect)
    return decoder


def withLength(raw: bytes) -> bytes:
    """
    C{raw} with its two-byte big-endian length prefix.
    """
    return len(raw).to_bytes(2, "big") + raw


class VarintTests(SynchronousTestCase):
    """
    Variable Byte Integer encoding and decoding.
    """

    @PROPERTY
    @given(st.integers(0, MAX_VARINT), st.binary(max_size=4), st.binary(max_size=4))
    def test_roundTrip(self, value: int, before: bytes, after: bytes) -> None:
        """
        Every value from 0 to 268,435,455 decodes back from its encoding,
        which has the minimal length, wherever it sits in a buffer.
        """
        encoded = encodeVarint(value)
        self.assertEqual(len(encoded), minimalLength(value))
        data = before + encoded + after
        self.assertEqual(
            decodeVarint(data, len(before), len(data)), (value, len(before) + len(encoded))
        )

    def test_boundaries(self) -> None:
        """
        The lengths change exactly at 127/128, 16,383/16,384 and
        2,097,151/2,097,152, with the encodings of section 1.5.5.
        """
        table = {
            0: "00",
            127: "7F",
            128: "80 01",
            16_383: "FF 7F",
            16_384: "80 80 01",
            2_097_151: "FF FF 7F",
            2_097_152: "80 80 80 01",
            268_435_455: "FF FF FF 7F",
        }
        for value, hexBytes in table.items():
            encoded = bytes.fromhex(hexBytes)
            self.assertEqual(encodeVarint(value), encoded, value)
            self.assertEqual(decodeVarint(encoded, 0, len(encoded)), (value, len(encoded)))

    def test_outOfRange(self) -> None:
        """
        Negative values and values above 268,435,455 cannot be encoded.
        """
        self.assertRaises(ValueError, encodeVarint, -1)
        self.assertRaises(ValueError, encodeVarint, MAX_VARINT + 1)

    def test_fifthByteRejected(self) -> None:
        """
        A fifth byte (a fourth continuation bit) is Malformed, whatever
        follows.
        """
        for hexBytes in ("80 80 80 80 01", "FF FF FF FF 7F", "FF FF FF FF"):
            data = bytes.fromhex(hexBytes)
            self.assertRaises(MalformedPacket, decodeVarint, data, 0, len(data))

    def test_nonMinimalRejected(self) -> None:
        """
        Non-minimal encodings such as C{80 00} are Malformed [MQTT-1.5.5-1].
        """
        for hexBytes in ("80 00", "FF 00", "80 80 00", "81 80 80 00"):
            data = bytes.fromhex(hexBytes)
            self.assertRaises(MalformedPacket, decodeVarint, data, 0, len(data))

    def test_truncated(self) -> None:
        """
        A continuation bit on the last byte before C{end} is Malformed: the
        decoder never reads past C{end}.
        """
        data = bytes.fromhex("80 01")
        self.assertRaises(MalformedPacket, decodeVarint, data, 0, 1)
        self.assertRaises(MalformedPacket, decodeVarint, data, 0, 0)

    @PROPERTY
    @given(st.binary(min_size=1, max_size=6))
    def test_acceptsExactlyCanonical(self, data: bytes) -> None:
        """
        For random bytes the decoder agrees with the specification's
        algorithm: it accepts exactly the minimal encodings of up to four
        bytes.
        """
        expected = referenceVarint(data)
        if expected is None:
            self.assertRaises(MalformedPacket, decodeVarint, data, 0, len(data))
        else:
            self.assertEqual(decodeVarint(data, 0, len(data)), expected)


class VarintInPacketTests(SynchronousTestCase):
    """
    The Variable Byte Integer rules where the decoder meets them: the
    Remaining Length and MQTT 5.0 property lengths and values.
    """

    def assertMalformed(self, level: int, hexBytes: str) -> None:
        decoder = connectedDecoder(level)
        decoder.feed(bytes.fromhex(hexBytes))
        with self.assertRaises(MalformedPacket) as caught:
            decoder.next()
        self.assertEqual(caught.exception.reasonCode, 0x81)

    def test_remainingLengthNonMinimal(self) -> None:
        """
        A Remaining Length of C{80 00} is Malformed, at every level.
        """
        for level in (MQTT_3_1_1, MQTT_5):
            self.assertMalformed(level, "C0 80 00")
            self.assertMalformed(level, "E0 80 00")
        decoder = Decoder(isServer=True)
        decoder.feed(bytes.fromhex("10 8D 00") + C4[2:])
        self.assertRaises(MalformedPacket, decoder.next)

    def test_remainingLengthFifthByte(self) -> None:
        """
        A fifth Remaining Length byte is Malformed as soon as it arrives.
        """
        self.assertMalformed(MQTT_3_1_1, "30 80 80 80 80 01")
        decoder = Decoder(isServer=True)
        decoder.feed(bytes.fromhex("10 FF FF FF FF"))
        self.assertRaises(MalformedPacket, decoder.next)

    def test_remainingLengthIncremental(self) -> None:
        """
        Fed one byte at a time, a two-byte Remaining Length yields nothing
        until the packet's last byte.
        """
        decoder = connectedDecoder(MQTT_3_1_1)
        packet = Publish("t", b"x" * 200)
        data = bytes.fromhex("30 CB 01 00 01 74") + b"x" * 200
        for byte in data[:-1]:
            decoder.feed(bytes((byte,)))
            self.assertIsNone(decoder.next())
        decoder.feed(data[-1:])
        self.assertEqual(decoder.next(), packet)

    def test_propertyLengthNonMinimal(self) -> None:
        """
        A property length of C{80 00} is Malformed (v5 PUBACK).
        """
        self.assertMalformed(MQTT_5, "40 05 00 01 00 80 00")

    def test_propertyVarintNonMinimal(self) -> None:
        """
        A Subscription Identifier encoded as C{80 00} is Malformed.
        """
        self.assertMalformed(MQTT_5, "82 0A 00 01 03 0B 80 00 00 01 70 00")


class StringTests(SynchronousTestCase):
    """
    UTF-8 Encoded Strings and Binary Data.
    """

    def decode(self, raw: bytes, strict: bool = True) -> str:
        data = withLength(raw)
        text, stop = decodeString(data, 0, len(data), STRICT if strict else LENIENT)
        self.assertEqual(stop, len(data))
        return text

    def test_wellFormed(self) -> None:
        """
        Well-formed UTF-8 of one to four bytes per character decodes.
        """
        self.assertEqual(self.decode(b""), "")
        self.assertEqual(self.decode(b"a/b"), "a/b")
        self.assertEqual(self.decode(bytes.fromhex("C3 A9 E2 82 AC")), "é€")
        self.assertEqual(self.decode(bytes.fromhex("EF BB BF")), "\ufeff")

    def test_supplementaryPreservedByteExact(self) -> None:
        """
        U+2A6D4 (C{F0 AA 9B 94}) is accepted and encodes back to the same
        bytes (no normalization [MQTT-1.5.4-3]).
        """
        raw = bytes.fromhex("F0 AA 9B 94")
        for strict in (True, False):
            text = self.decode(raw, strict)
            self.assertEqual(text, "\U0002a6d4")
            self.assertEqual(encodeString(text), bytes.fromhex("00 04 F0 AA 9B 94"))

    def test_alwaysRejected(self) -> None:
        """
        A surrogate (C{ED A0 80}), an overlong NUL (C{C0 80}), U+0000,
        truncated and stray continuation bytes are Malformed even when not
        strict [MQTT-1.5.4-1], [MQTT-1.5.4-2].
        """
        for hexBytes in ("ED A0 80", "C0 80", "00", "61 00 62", "E2 82", "80", "F8 88 80 80 80"):
            for strict in (True, False):
                self.assertRaises(
                    MalformedPacket, self.decode, bytes.fromhex(hexBytes), strict
                )

    def test_controlsAndNonCharacters(self) -> None:
        """
        U+0001, U+001F, U+007F, U+009F, U+FFFF and U+FDD0 are rejected when
        strict and accepted when not.
        """
        for hexBytes, char in (
            ("01", "\x01"),
            ("1F", "\x1f"),
            ("7F", "\x7f"),
            ("C2 9F", "\x9f"),
            ("EF BF BF", "\uffff"),
            ("EF B7 90", "\ufdd0"),
            ("F4 8F BF BE", "\U0010fffe"),
        ):
            raw = bytes.fromhex(hexBytes)
            self.assertRaises(MalformedPacket, self.decode, raw, True)
            self.assertEqual(self.decode(raw, False), char)

    def test_neighboursOfForbidden(self) -> None:
        """
        The characters just outside the forbidden ranges are accepted when
        strict: U+0020, U+007E, U+00A0, U+FDCF, U+FDF0, U+FFFD.
        """
        for char in " ~\u00a0\ufdcf\ufdf0\ufffd":
            self.assertEqual(self.decode(char.encode("utf-8")), char)

    def test_truncatedLength(self) -> None:
        """
        A length prefix that is cut short or points past C{end} is Malformed.
        """
        data = bytes.fromhex("00 03 61 62 63")
        self.assertRaises(MalformedPacket, decodeString, data, 0, 1, STRICT)
        self.assertRaises(MalformedPacket, decodeString, data, 0, 4, STRICT)
        self.assertRaises(MalformedPacket, decodeBinary, data, 0, 1)
        self.assertRaises(MalformedPacket, decodeBinary, data, 0, 4)
        self.assertEqual(decodeBinary(data, 0, 5), (b"abc", 5))

    def test_binaryIsNotUTF8Checked(self) -> None:
        """
        Binary Data may hold any bytes, including C{00} and C{ED A0 80}.
        """
        raw = bytes.fromhex("00 ED A0 80 FF")
        data = encodeBinary(raw)
        self.assertEqual(data, bytes.fromhex("00 05 00 ED A0 80 FF"))
        self.assertEqual(decodeBinary(data, 0, len(data)), (raw, len(data)))

    def test_encodeTooLong(self) -> None:
        """
        Strings and binary data longer than 65,535 bytes cannot be encoded;
        65,535 bytes can.
        """
        self.assertEqual(len(encodeString("a" * 0xFFFF)), 0x10001)
        self.assertRaises(ValueError, encodeString, "a" * 0x10000)
        self.assertRaises(ValueError, encodeString, "é" * 0x8000)
        self.assertRaises(ValueError, encodeBinary, b"a" * 0x10000)

    @PROPERTY
    @given(
        st.one_of(
            st.binary(max_size=12),
            st.lists(st.integers(0, 0x10FFFF), max_size=6).map(
                lambda cps: "".join(map(chr, cps)).encode("utf-8", "surrogatepass")
            ),
            st.lists(
                st.sampled_from(
                    [b"a", b"\x00", b"\xc0\x80", b"\xed\xa0\x80", b"\xc2\x9f", b"\xef\xbf\xbf",
                     b"\xf0\xaa\x9b\x94", b"\xef\xb7\x90", b"\x7f", b"\xe2\x82", b"\xf4\x90\x80\x80"]
                ),
                max_size=4,
            ).map(b"".join),
        )
    )
    def test_differentialAgainstPython(self, raw: bytes) -> None:
        """
        The strict decoder accepts exactly when C{raw.decode('utf-8')}
        succeeds and the text has no forbidden character; the lenient one
        when it succeeds and has no U+0000.
        """
        try:
            text: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        for strict in (True, False):
            if strict:
                accept = text is not None and not any(isDisallowedCodePoint(ord(c)) for c in text)
            else:
                accept = text is not None and "\x00" not in text
            if accept:
                self.assertEqual(self.decode(raw, strict), text)
            else:
                self.assertRaises(MalformedPacket, self.decode, raw, strict)


class StringsInPacketsTests(SynchronousTestCase):
    """
    The string rules applied by the decoder to a PUBLISH topic (which has a
    cached fast path of its own) and to a CONNECT client identifier.
    """

    def publish(self, topic: bytes, strict: bool = True) -> Publish:
        decoder = connectedDecoder(MQTT_3_1_1, strict)
        body = withLength(topic) + b"x"
        decoder.feed(bytes((0x30, len(body))) + body)
        packet = decoder.next()
        assert isinstance(packet, Publish)
        return packet

    def test_topicSupplementaryByteExact(self) -> None:
        """
        A topic with U+2A6D4 is accepted twice (the second time through the
        topic cache) and re-encoded byte for byte.
        """
        topic = bytes.fromhex("61 2F F0 AA 9B 94")
        decoder = connectedDecoder(MQTT_3_1_1)
        data = bytes.fromhex("30 09 00 06 61 2F F0 AA 9B 94 78")
        decoder.feed(data * 2)
        for _ in range(2):
            packet = decoder.next()
            self.assertEqual(packet, Publish(topic.decode("utf-8"), b"x"))
        self.assertEqual(encode(Publish(topic.decode("utf-8"), b"x"), MQTT_3_1_1), data)

    def test_topicRejections(self) -> None:
        """
        Topics with a surrogate, overlong NUL or NUL are Malformed even when
        not strict; controls and non-characters only when strict.
        """
        for hexBytes in ("ED A0 80", "C0 80", "61 00 62"):
            for strict in (True, False):
                self.assertRaises(MalformedPacket, self.publish, bytes.fromhex(hexBytes), strict)
        for hexBytes in ("01", "1F", "7F", "C2 9F", "EF BF BF", "EF B7 90"):
            raw = b"t" + bytes.fromhex(hexBytes)
            self.assertRaises(MalformedPacket, self.publish, raw, True)
            self.assertEqual(self.publish(raw, False).topic, raw.decode("utf-8"))

    def test_clientIdRejections(self) -> None:
        """
        The same rules hold for a CONNECT's client identifier.
        """

        def connect(clientId: bytes, strict: bool) -> object:
            body = bytes.fromhex("00 04 4D 51 54 54 04 02 00 0A") + withLength(clientId)
            decoder = Decoder(isServer=True, strictStrings=strict)
            decoder.feed(bytes((0x10, len(body))) + body)
            return decoder.next()

        for hexBytes in ("74 6F 70 00", "ED A0 80", "C0 80"):
            for strict in (True, False):
                self.assertRaises(MalformedPacket, connect, bytes.fromhex(hexBytes), strict)
        for hexBytes in ("01", "1F", "7F", "C2 9F", "EF BF BF"):
            raw = bytes.fromhex(hexBytes)
            self.assertRaises(MalformedPacket, connect, raw, True)
            self.assertEqual(connect(raw, False), Connect(raw.decode("utf-8"), 4, True, 10))
