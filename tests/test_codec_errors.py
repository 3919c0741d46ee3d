"""
The codec-level rows of the reliability catalogue (FR, CN, PB, SB, AK in
C{reliability-catalogue.md} section 6) as one table driven through a
server-side L{Decoder}: which bytes must be refused, with which error class
and MQTT 5.0 reason code, and which look-alikes must be accepted.

Where the catalogue allows "0x81|0x82", the table pins mqttd's choice.  The
reason codes follow the specification text where it names one (for example
"A SUBSCRIBE packet with no Payload is a Protocol Error", MQTT 5.0 section
3.8.3, although the catalogue lists 0x81 for SB-03).

A row's level is the protocol level of a CONNECT fed first (the catalogue's
C3/C4/C5), or L{None} when the bytes are the first thing on the connection.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import clientPackets, levels, serverPackets
from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Auth,
    Connect,
    Decoder,
    Disconnect,
    MalformedPacket,
    Pingreq,
    ProtocolError,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    SubscriptionRequest,
    UnsupportedProtocolVersion,
    Will,
    encode,
)

SR = SubscriptionRequest

#: The catalogue's CONNECTs (section 4): C4, C5, and the 3.1 CONNECT of CN-03.
C3 = "10 0F 00 06 4D 51 49 73 64 70 03 02 00 0A 00 01 70"
C4 = "10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 70"
C5 = "10 0E 00 04 4D 51 54 54 05 02 00 0A 00 00 01 70"
CONNECT_BYTES = {MQTT_3_1: C3, MQTT_3_1_1: C4, MQTT_5: C5}

V3, V4, V5 = MQTT_3_1, MQTT_3_1_1, MQTT_5
PRE = None


class Refused(NamedTuple):
    """
    Bytes that must raise C{error} with C{reasonCode}.
    """

    caseId: str
    level: int | None
    hexBytes: str
    error: type[ProtocolError]
    reasonCode: int
    strict: bool = True
    #: The protocol level the error must carry (a CONNECT refused after its
    #: level byte was read), else L{None}.
    inConnect: int | None = None


class Accepted(NamedTuple):
    """
    Bytes that must decode to exactly C{packet}.
    """

    caseId: str
    level: int | None
    hexBytes: str
    packet: Any
    strict: bool = True


M, P, U = MalformedPacket, ProtocolError, UnsupportedProtocolVersion

REFUSED: list[Refused] = [
    # ---- 6.1 Framing and fixed header -------------------------------------
    Refused("FR-01 five-byte remaining length", PRE,
            "10 FF FF FF FF 7F 00 04 4D 51 54 54 06 00 00 0A 00 01 70", M, 0x81),
    # FR-03: every non-CONNECT first byte, refused on that byte alone.
    *(
        Refused(f"FR-03 first byte {first:02X}", PRE, f"{first:02X}", P, 0x82)
        for first in range(0x20, 0x100, 0x10)
    ),
    Refused("FR-04 PINGREQ before CONNECT", PRE, "C0 00", P, 0x82),
    Refused("FR-04 DISCONNECT before CONNECT", PRE, "E0 00", P, 0x82),
    Refused("FR-04 PUBACK before CONNECT", PRE, "40 02 00 01", P, 0x82),
    Refused("FR-04 PUBREL before CONNECT", PRE, "62 02 00 01", P, 0x82),
    Refused("FR-04 SUBSCRIBE before CONNECT", PRE, "82 06 12 34 00 01 70 00", P, 0x82),
    Refused("FR-04 PUBLISH before CONNECT", PRE,
            "30 0E 00 05 74 6F 70 69 63 70 61 79 6C 6F 61 64", P, 0x82),
    Refused("FR-05 reserved type 0 (v3.1.1)", V4, "00 00", P, 0x82),
    Refused("FR-05 reserved type 0 with body (v3.1.1)", V4, "00 01 00", P, 0x82),
    Refused("FR-05 AUTH in 3.1.1", V4, "F0 00", P, 0x82),
    Refused("FR-05 AUTH in 3.1", V3, "F0 00", P, 0x82),
    Refused("FR-05 reserved type 0 (v5)", V5, "00 00", P, 0x82),
    *(
        Refused(f"FR-06 bad flags {hexBytes[:2]} (v{level})", level, hexBytes, M, 0x81)
        for level in (V4, V5)
        for hexBytes in (
            "63 02 00 01", "64 02 00 01", "66 02 00 01", "6A 02 00 01",
            "80 06 12 34 00 01 70 00", "83 06 12 34 00 01 70 00", "84 06 12 34 00 01 70 00",
            "86 06 12 34 00 01 70 00", "8A 06 12 34 00 01 70 00",
            "A0 05 12 34 00 01 70", "A3 05 12 34 00 01 70", "A4 05 12 34 00 01 70",
            "A6 05 12 34 00 01 70", "AA 05 12 34 00 01 70",
            "C1 00", "C2 00", "C4 00", "C8 00",
            "E1 00", "E2 00", "E4 00", "E8 00",
            "41 02 00 01", "42 02 00 01", "44 02 00 01", "48 02 00 01",
            "51 02 00 01", "71 02 00 01",
        )
    ),
    Refused("FR-06 AUTH flags (v5)", V5, "F1 00", M, 0x81),
    *(
        Refused(f"FR-07 wrong length {hexBytes} (v{level})", level, hexBytes, M, 0x81)
        for level in (V4, V5)
        for hexBytes in ("C0 01 00", "40 00", "40 01 01", "62 00", "62 01 01")
    ),
    Refused("FR-07 DISCONNECT with a body (v3.1.1)", V4, "E0 01 00", M, 0x81),
    Refused("FR-07 PUBACK of 3 bytes (v3.1.1)", V4, "40 03 00 01 00", M, 0x81),
    Refused("FR-07 PUBACK trailing byte (v5)", V5, "40 05 00 01 00 00 00", M, 0x81),
    Refused("FR-08 PUBLISH without topic (v5)", V5, "30 00", M, 0x81),
    Refused("FR-08 PUBLISH without property length (v5)", V5, "30 02 00 00", M, 0x81),
    Refused("FR-08 PUBLISH topic, no properties (v5)", V5, "30 03 00 01 61", M, 0x81),
    Refused("FR-08 QoS 1 without packet id (v5)", V5, "32 03 00 01 61", M, 0x81),
    Refused("FR-08 QoS 1 without property length (v5)", V5, "32 05 00 01 61 00 01", M, 0x81),
    Refused("FR-08 QoS 1 without packet id (v3.1.1)", V4, "32 03 00 01 61", M, 0x81),
    Refused("FR-08 SUBSCRIBE without options (v3.1.1)", V4, "82 05 12 34 00 01 70", M, 0x81),
    Refused("FR-08 SUBSCRIBE truncated (v5)", V5, "82 05 12 34 00 01 70", M, 0x81),
    Refused("FR-08 string length past the end (v3.1.1)", V4, "30 05 00 FF 61 62 63", M, 0x81),
    Refused("FR-08 string length past the end (v5)", V5, "30 05 00 FF 61 62 63", M, 0x81),
    Refused("FR-12 HTTP request", PRE,
            "47 45 54 20 2F 20 48 54 54 50 2F 31 2E 31 0D 0A", P, 0x82),
    Refused("FR-12 TLS ClientHello", PRE, "16 03 01 00 A5 01 00 00 A1 03 03", M, 0x81),
    # ---- 6.2 CONNECT ----------------------------------------------------------
    Refused("CN-01 protocol name MQTU", PRE,
            "10 0D 00 04 4D 51 54 55 04 02 00 0A 00 01 70", P, 0x82),
    Refused("CN-01 protocol name MQT", PRE,
            "10 0C 00 03 4D 51 54 04 02 00 0A 00 01 70", P, 0x82),
    Refused("CN-01 empty protocol name", PRE, "10 09 00 00 04 02 00 0A 00 01 70", P, 0x82),
    Refused("CN-01 lower-case protocol name", PRE,
            "10 0D 00 04 6D 71 74 74 04 02 00 0A 00 01 70", P, 0x82),
    Refused("CN-01 protocol name not UTF-8", PRE,
            "10 0D 00 04 4D 51 ED A0 04 02 00 0A 00 01 70", M, 0x81),
    Refused("CN-01 no protocol level", PRE, "10 06 00 04 4D 51 54 54", M, 0x81),
    Refused("CN-02 level 6", PRE, "10 0D 00 04 4D 51 54 54 06 00 00 0A 00 01 70", U, 0x84),
    Refused("CN-02 level 2", PRE, "10 0D 00 04 4D 51 54 54 02 02 00 0A 00 01 70", U, 0x84),
    Refused("CN-02 MQTT with level 3", PRE,
            "10 0D 00 04 4D 51 54 54 03 02 00 0A 00 01 70", U, 0x84),
    Refused("CN-02 MQIsdp with level 4", PRE,
            "10 0F 00 06 4D 51 49 73 64 70 04 02 00 0A 00 01 70", U, 0x84),
    Refused("CN-04 reserved flag 0x01 (v3.1.1)", PRE,
            "10 0D 00 04 4D 51 54 54 04 01 00 0A 00 01 70", M, 0x81, inConnect=V4),
    Refused("CN-04 reserved flag 0x03 (v3.1.1)", PRE,
            "10 0D 00 04 4D 51 54 54 04 03 00 0A 00 01 70", M, 0x81, inConnect=V4),
    Refused("CN-04 reserved flag 0x03 (v5)", PRE,
            "10 0E 00 04 4D 51 54 54 05 03 00 0A 00 00 01 70", M, 0x81, inConnect=V5),
    Refused("CN-04 reserved flag 0x01 (3.1)", PRE,
            "10 0F 00 06 4D 51 49 73 64 70 03 01 00 0A 00 01 70", M, 0x81, inConnect=V3),
    Refused("CN-05 will QoS 1 without will (v3.1.1)", PRE,
            "10 0D 00 04 4D 51 54 54 04 0A 00 0A 00 01 70", P, 0x82, inConnect=V4),
    Refused("CN-05 will QoS 2 without will (v3.1.1)", PRE,
            "10 0D 00 04 4D 51 54 54 04 12 00 0A 00 01 70", P, 0x82, inConnect=V4),
    Refused("CN-05 will retain without will (v3.1.1)", PRE,
            "10 0D 00 04 4D 51 54 54 04 22 00 0A 00 01 70", P, 0x82, inConnect=V4),
    Refused("CN-05 will flag without will fields (v3.1.1)", PRE,
            "10 0D 00 04 4D 51 54 54 04 06 00 0A 00 01 70", M, 0x81, inConnect=V4),
    Refused("CN-05 will QoS 3 (v3.1.1)", PRE,
            "10 0D 00 04 4D 51 54 54 04 1E 00 0A 00 01 70", M, 0x81, inConnect=V4),
    Refused("CN-05 will QoS 3 with a complete will (v3.1.1)", PRE,
            "10 12 00 04 4D 51 54 54 04 1E 00 0A 00 01 70 00 01 77 00 00", M, 0x81,
            inConnect=V4),
    Refused("CN-05 will QoS 3 with a complete will (v5)", PRE,
            "10 14 00 04 4D 51 54 54 05 1E 00 0A 00 00 01 70 00 00 01 77 00 00", M, 0x81,
            inConnect=V5),
    Refused("CN-05 will QoS 1 without will (v5)", PRE,
            "10 0E 00 04 4D 51 54 54 05 0A 00 0A 00 00 01 70", P, 0x82, inConnect=V5),
    Refused("CN-05 will retain without will (v5)", PRE,
            "10 0E 00 04 4D 51 54 54 05 22 00 0A 00 00 01 70", P, 0x82, inConnect=V5),
    Refused("CN-05 will flag without will fields (v5)", PRE,
            "10 0E 00 04 4D 51 54 54 05 06 00 0A 00 00 01 70", M, 0x81, inConnect=V5),
    Refused("CN-05 will QoS 3 (v5)", PRE,
            "10 0E 00 04 4D 51 54 54 05 1E 00 0A 00 00 01 70", M, 0x81, inConnect=V5),
    Refused("CN-06 user name flag without user name (v3.1.1)", PRE,
            "10 0D 00 04 4D 51 54 54 04 82 00 0A 00 01 70", M, 0x81, inConnect=V4),
    Refused("CN-06 user name without its flag (v3.1.1)", PRE,
            "10 10 00 04 4D 51 54 54 04 02 00 0A 00 01 70 00 01 70", M, 0x81, inConnect=V4),
    Refused("CN-06 password without user name (v3.1.1)", PRE,
            "10 12 00 04 4D 51 54 54 04 42 00 0A 00 01 70 00 03 73 65 63", P, 0x82,
            inConnect=V4),
    Refused("CN-06 password without user name (3.1)", PRE,
            "10 14 00 06 4D 51 49 73 64 70 03 42 00 0A 00 01 70 00 03 73 65 63", P, 0x82,
            inConnect=V3),
    Refused("CN-06 password flag without password (v5)", PRE,
            "10 13 00 04 4D 51 54 54 05 C2 00 0A 00 00 01 70 00 03 75 73 72", M, 0x81,
            inConnect=V5),
    # CN-07: bad client identifiers, user names and will topics (C4 shape).
    *(
        Refused(f"CN-07 client id {name} (strict={strict})", PRE, hexBytes, M, 0x81,
                strict=strict, inConnect=V4)
        for strict in (True, False)
        for name, hexBytes in (
            ("NUL", "10 11 00 04 4D 51 54 54 04 02 00 0A 00 05 74 6F 70 00 00"),
            ("surrogate", "10 0F 00 04 4D 51 54 54 04 02 00 0A 00 03 ED A0 80"),
            ("overlong NUL", "10 0E 00 04 4D 51 54 54 04 02 00 0A 00 02 C0 80"),
        )
    ),
    *(
        Refused(f"CN-07 client id {name} (strict)", PRE, hexBytes, M, 0x81, inConnect=V4)
        for name, hexBytes in (
            ("U+0001", "10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 01"),
            ("U+001F", "10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 1F"),
            ("U+007F", "10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 7F"),
            ("U+009F", "10 0E 00 04 4D 51 54 54 04 02 00 0A 00 02 C2 9F"),
            ("U+FFFF", "10 0F 00 04 4D 51 54 54 04 02 00 0A 00 03 EF BF BF"),
        )
    ),
    Refused("CN-07 user name surrogate", PRE,
            "10 12 00 04 4D 51 54 54 04 82 00 0A 00 01 70 00 03 ED A0 80", M, 0x81,
            strict=False, inConnect=V4),
    Refused("CN-07 user name U+0001 (strict)", PRE,
            "10 10 00 04 4D 51 54 54 04 82 00 0A 00 01 70 00 01 01", M, 0x81, inConnect=V4),
    Refused("CN-07 will topic surrogate", PRE,
            "10 14 00 04 4D 51 54 54 04 06 00 0A 00 01 70 00 03 ED A0 80 00 00", M, 0x81,
            strict=False, inConnect=V4),
    Refused("CN-07 will topic U+009F (strict)", PRE,
            "10 13 00 04 4D 51 54 54 04 06 00 0A 00 01 70 00 02 C2 9F 00 00", M, 0x81,
            inConnect=V4),
    Refused("CN-07 client id surrogate (v5)", PRE,
            "10 10 00 04 4D 51 54 54 05 02 00 0A 00 00 03 ED A0 80", M, 0x81, inConnect=V5),
    Refused("CN-09 client id missing", PRE, "10 0A 00 04 4D 51 54 54 04 02 00 0A", M, 0x81,
            inConnect=V4),
    Refused("CN-09 remaining length shorter than the fields", PRE,
            "10 07 00 04 4D 51 54 54 04 C2 00 3C 00 0B", M, 0x81, inConnect=V4),
    Refused("CN-11 second CONNECT (3.1)", V3, C3, P, 0x82),
    Refused("CN-11 second CONNECT (v3.1.1)", V4, C4, P, 0x82),
    Refused("CN-11 second CONNECT (v5)", V5, C5, P, 0x82),
    Refused("CN-12 CONNECT of 200,000 bytes", PRE, "10 C0 9A 0C", P, 0x95),
    # CN-15: v5 CONNECT properties (C5 with a property block).
    *(
        Refused(f"CN-15 {name}", PRE, hexBytes, error, code, inConnect=V5)
        for name, hexBytes, error, code in (
            ("duplicate session expiry",
             "10 18 00 04 4D 51 54 54 05 02 00 0A 0A 11 00 00 00 01 11 00 00 00 01 00 01 70",
             P, 0x82),
            ("receive maximum 0",
             "10 11 00 04 4D 51 54 54 05 02 00 0A 03 21 00 00 00 01 70", P, 0x82),
            ("maximum packet size 0",
             "10 13 00 04 4D 51 54 54 05 02 00 0A 05 27 00 00 00 00 00 01 70", P, 0x82),
            ("request problem information 2",
             "10 10 00 04 4D 51 54 54 05 02 00 0A 02 17 02 00 01 70", P, 0x82),
            ("request response information 2",
             "10 10 00 04 4D 51 54 54 05 02 00 0A 02 19 02 00 01 70", P, 0x82),
            ("authentication data without method",
             "10 12 00 04 4D 51 54 54 05 02 00 0A 04 16 00 01 70 00 01 70", P, 0x82),
            ("maximum QoS not allowed",
             "10 10 00 04 4D 51 54 54 05 02 00 0A 02 24 01 00 01 70", P, 0x82),
            ("message expiry not allowed",
             "10 13 00 04 4D 51 54 54 05 02 00 0A 05 02 00 00 00 01 00 01 70", P, 0x82),
            ("topic alias not allowed",
             "10 11 00 04 4D 51 54 54 05 02 00 0A 03 23 00 01 00 01 70", P, 0x82),
            ("subscription identifier not allowed",
             "10 10 00 04 4D 51 54 54 05 02 00 0A 02 0B 01 00 01 70", P, 0x82),
            ("truncated session expiry",
             "10 0F 00 04 4D 51 54 54 05 02 00 0A 01 11 00 01 70", M, 0x81),
            ("unknown property 0x00",
             "10 10 00 04 4D 51 54 54 05 02 00 0A 02 00 00 00 01 70", M, 0x81),
        )
    ),
    # CN-16: v5 will properties (will topic "w", empty will payload).
    *(
        Refused(f"CN-16 will {name}", PRE, hexBytes, error, code, inConnect=V5)
        for name, hexBytes, error, code in (
            ("request problem information",
             "10 16 00 04 4D 51 54 54 05 06 00 0A 00 00 01 70 02 17 01 00 01 77 00 00",
             P, 0x82),
            ("maximum QoS",
             "10 16 00 04 4D 51 54 54 05 06 00 0A 00 00 01 70 02 24 01 00 01 77 00 00",
             P, 0x82),
            ("session expiry",
             "10 19 00 04 4D 51 54 54 05 06 00 0A 00 00 01 70 05 11 00 00 00 0A"
             " 00 01 77 00 00",
             P, 0x82),
            ("truncated will delay",
             "10 15 00 04 4D 51 54 54 05 06 00 0A 00 00 01 70 01 18 00 01 77 00 00",
             M, 0x81),
            ("property length past the packet",
             "10 16 00 04 4D 51 54 54 05 06 00 0A 00 00 01 70 0A 01 01 00 01 77 00 00",
             M, 0x81),
        )
    ),
    Refused("CN-17 empty will topic (v3.1.1)", PRE,
            "10 11 00 04 4D 51 54 54 04 06 00 0A 00 01 70 00 00 00 00", P, 0x82, inConnect=V4),
    Refused("CN-17 will topic a/# (v3.1.1)", PRE,
            "10 14 00 04 4D 51 54 54 04 06 00 0A 00 01 70 00 03 61 2F 23 00 00", P, 0x82,
            inConnect=V4),
    Refused("CN-17 will topic + (v3.1.1)", PRE,
            "10 12 00 04 4D 51 54 54 04 06 00 0A 00 01 70 00 01 2B 00 00", P, 0x82,
            inConnect=V4),
    Refused("CN-17 empty will topic (v5)", PRE,
            "10 13 00 04 4D 51 54 54 05 06 00 0A 00 00 01 70 00 00 00 00 00", P, 0x82,
            inConnect=V5),
    # ---- 6.3 PUBLISH ------------------------------------------------------------
    *(
        Refused(f"PB-01 QoS 3 {hexBytes[:5]} (v{level})", level, hexBytes, M, 0x81)
        for level in (V4, V5)
        for hexBytes in (
            "36 0E 00 05 74 6F 70 69 63 70 61 79 6C 6F 61 64",
            "36 10 00 05 74 6F 70 69 63 12 34 70 61 79 6C 6F 61 64",
            "37 10 00 05 74 6F 70 69 63 12 34 70 61 79 6C 6F 61 64",
            "3E 10 00 05 74 6F 70 69 63 12 34 70 61 79 6C 6F 61 64",
        )
    ),
    *(
        Refused(f"PB-02 QoS 0 with DUP {hexBytes[:2]} (v{level})", level, hexBytes, M, 0x81)
        for level in (V4, V5)
        for hexBytes in (
            "38 0E 00 05 74 6F 70 69 63 70 61 79 6C 6F 61 64",
            "39 0E 00 05 74 6F 70 69 63 70 61 79 6C 6F 61 64",
        )
    ),
    Refused("PB-03 QoS 1 packet id 0 (v3.1.1)", V4,
            "32 10 00 05 74 6F 70 69 63 00 00 70 61 79 6C 6F 61 64", P, 0x82),
    Refused("PB-03 QoS 2 packet id 0 (v3.1.1)", V4,
            "34 10 00 05 74 6F 70 69 63 00 00 70 61 79 6C 6F 61 64", P, 0x82),
    Refused("PB-03 QoS 1 packet id 0 (3.1)", V3,
            "32 10 00 05 74 6F 70 69 63 00 00 70 61 79 6C 6F 61 64", P, 0x82),
    Refused("PB-03 QoS 1 packet id 0 (v5)", V5,
            "32 11 00 05 74 6F 70 69 63 00 00 00 70 61 79 6C 6F 61 64", P, 0x82),
    *(
        Refused(f"PB-04 topic {name} (v3.1.1)", V4, hexBytes, P, 0x82)
        for name, hexBytes in (
            ("+opic", "30 0E 00 05 2B 6F 70 69 63 70 61 79 6C 6F 61 64"),
            ("#opic", "30 0E 00 05 23 6F 70 69 63 70 61 79 6C 6F 61 64"),
            ("a/+", "30 0C 00 03 61 2F 2B 70 61 79 6C 6F 61 64"),
            ("a/#", "30 0C 00 03 61 2F 23 70 61 79 6C 6F 61 64"),
        )
    ),
    Refused("PB-04 topic +opic (v5)", V5,
            "30 0F 00 05 2B 6F 70 69 63 00 70 61 79 6C 6F 61 64", P, 0x82),
    Refused("PB-04 topic a/# (v5)", V5, "30 0D 00 03 61 2F 23 00 70 61 79 6C 6F 61 64", P, 0x82),
    Refused("PB-05 empty topic (3.1)", V3, "30 09 00 00 70 61 79 6C 6F 61 64", P, 0x82),
    Refused("PB-05 empty topic (v3.1.1)", V4, "30 09 00 00 70 61 79 6C 6F 61 64", P, 0x82),
    Refused("PB-05 empty topic without alias (v5)", V5,
            "30 0A 00 00 00 70 61 79 6C 6F 61 64", P, 0x82),
    *(
        Refused(f"PB-06 topic {name} (strict={strict})", V4, hexBytes, M, 0x81, strict=strict)
        for strict in (True, False)
        for name, hexBytes in (
            ("with NUL", "30 06 00 03 61 00 62 70"),
            ("surrogate", "30 06 00 03 ED A0 80 70"),
            ("overlong NUL", "30 05 00 02 C0 80 70"),
        )
    ),
    Refused("PB-06 topic U+009F (strict)", V4, "30 05 00 02 C2 9F 70", M, 0x81),
    Refused("PB-06 topic U+FFFF (strict)", V4, "30 06 00 03 EF BF BF 70", M, 0x81),
    Refused("PB-06 topic surrogate (v5)", V5, "30 07 00 03 ED A0 80 00 70", M, 0x81),
    Refused("PB-06 topic U+FFFF (v5, strict)", V5, "30 07 00 03 EF BF BF 00 70", M, 0x81),
    Refused("PB-14 topic alias 0", V5, "30 0A 00 01 74 03 23 00 00 70 61 79", P, 0x94),
    Refused("PB-14 duplicate topic alias", V5,
            "30 0D 00 01 74 06 23 00 01 23 00 02 70 61 79", P, 0x82),
    Refused("PB-14 empty topic without alias", V5, "30 06 00 00 00 70 61 79", P, 0x82),
    Refused("PB-14 empty topic, other properties, no alias", V5,
            "30 08 00 00 02 01 01 70 61 79", P, 0x82),
    # PB-15: v5 PUBLISH properties (topic "t", payload "p").
    *(
        Refused(f"PB-15 {name}", V5, hexBytes, error, code)
        for name, hexBytes, error, code in (
            ("payload format 2", "30 07 00 01 74 02 01 02 70", P, 0x82),
            ("duplicate message expiry",
             "30 0F 00 01 74 0A 02 00 00 00 01 02 00 00 00 01 70", P, 0x82),
            ("subscription identifier 0", "30 07 00 01 74 02 0B 00 70", P, 0x82),
            ("subscription identifier from a client", "30 07 00 01 74 02 0B 01 70", P, 0x82),
            ("five-byte subscription identifier",
             "30 0B 00 01 74 06 0B 80 80 80 80 01 70", M, 0x81),
            ("non-minimal subscription identifier", "30 08 00 01 74 03 0B 80 00 70", M, 0x81),
            ("response topic a/#", "30 0B 00 01 74 06 08 00 03 61 2F 23 70", P, 0x82),
            ("empty response topic", "30 08 00 01 74 03 08 00 00 70", P, 0x82),
            ("session expiry not allowed", "30 0A 00 01 74 05 11 00 00 00 01 70", P, 0x82),
            ("maximum QoS not allowed", "30 07 00 01 74 02 24 01 70", P, 0x82),
            ("truncated payload format", "30 06 00 01 74 01 01 70", M, 0x81),
            ("property length past the packet", "30 06 00 01 74 09 01 01", M, 0x81),
            ("unknown property 0x00", "30 07 00 01 74 02 00 00 70", M, 0x81),
            ("unknown property 0xFF", "30 07 00 01 74 02 FF 00 70", M, 0x81),
        )
    ),
    # ---- 6.4 SUBSCRIBE / UNSUBSCRIBE ------------------------------------------
    *(
        Refused(f"SB-01 fixed header {first} (v{level})", level,
                f"{first} 06 12 34 00 01 70 00", M, 0x81)
        for level in (V4, V5)
        for first in ("80", "83", "84", "86", "8A")
    ),
    *(
        Refused(f"SB-02 options {options} (v{level})", level,
                f"82 06 12 34 00 01 70 {options}", M, 0x81)
        for level in (V3, V4)
        for options in ("03", "04", "08", "10", "20", "40", "80")
    ),
    Refused("SB-02 options 03 (v5: QoS 3)", V5, "82 07 12 34 00 00 01 70 03", P, 0x82),
    Refused("SB-02 options 30 (v5: retain handling 3)", V5, "82 07 12 34 00 00 01 70 30", P, 0x82),
    Refused("SB-02 options 40 (v5: reserved bit)", V5, "82 07 12 34 00 00 01 70 40", M, 0x81),
    Refused("SB-02 options 80 (v5: reserved bit)", V5, "82 07 12 34 00 00 01 70 80", M, 0x81),
    Refused("SB-02 options F0 (v5: reserved bits)", V5, "82 07 12 34 00 00 01 70 F0", M, 0x81),
    Refused("SB-03 no filters (v3.1.1)", V4, "82 02 12 34", P, 0x82),
    Refused("SB-03 no filters (v5)", V5, "82 03 12 34 00", P, 0x82),
    Refused("SB-04 empty filter (v3.1.1)", V4, "82 05 12 34 00 00 00", P, 0x82),
    Refused("SB-04 empty first of two filters (v3.1.1)", V4,
            "82 09 12 34 00 00 00 00 01 70 00", P, 0x82),
    Refused("SB-04 empty second of two filters (v3.1.1)", V4,
            "82 09 12 34 00 01 70 00 00 00 00", P, 0x82),
    Refused("SB-04 empty filter (v5)", V5, "82 06 12 34 00 00 00 00", P, 0x82),
    Refused("SB-05 packet id 0 (v3.1.1)", V4, "82 06 00 00 00 01 70 00", P, 0x82),
    Refused("SB-05 packet id 0 (v5)", V5, "82 07 00 00 00 00 01 70 00", P, 0x82),
    Refused("SB-07 filter with NUL", V4, "82 08 12 34 00 03 61 00 62 00", M, 0x81),
    Refused("SB-07 filter with NUL (not strict)", V4, "82 08 12 34 00 03 61 00 62 00", M, 0x81,
            strict=False),
    Refused("SB-07 filter surrogate", V4, "82 08 12 34 00 03 ED A0 80 00", M, 0x81),
    Refused("SB-07 filter overlong NUL", V4, "82 07 12 34 00 02 C0 80 00", M, 0x81),
    Refused("SB-07 filter surrogate (v5)", V5, "82 09 12 34 00 00 03 ED A0 80 00", M, 0x81),
    Refused("SB-10 subscription identifier 0", V5, "82 09 12 34 02 0B 00 00 01 70 00", P, 0x82),
    Refused("SB-10 duplicate subscription identifier", V5,
            "82 0B 12 34 04 0B 01 0B 02 00 01 70 00", P, 0x82),
    Refused("SB-10 five-byte subscription identifier", V5,
            "82 0D 12 34 06 0B 80 80 80 80 01 00 01 70 00", M, 0x81),
    Refused("SB-10 non-minimal subscription identifier", V5,
            "82 0A 12 34 03 0B 80 00 00 01 70 00", M, 0x81),
    *(
        Refused(f"SB-13 UNSUBSCRIBE fixed header {first} (v{level})", level,
                f"{first} 05 12 34 00 01 70", M, 0x81)
        for level in (V4, V5)
        for first in ("A0", "A3", "A4", "A6", "AA")
    ),
    Refused("SB-13 UNSUBSCRIBE no filters (v3.1.1)", V4, "A2 02 12 34", P, 0x82),
    Refused("SB-13 UNSUBSCRIBE no filters (v5)", V5, "A2 03 12 34 00", P, 0x82),
    Refused("SB-13 UNSUBSCRIBE empty filter (v3.1.1)", V4, "A2 04 12 34 00 00", P, 0x82),
    Refused("SB-13 UNSUBSCRIBE empty filter (v5)", V5, "A2 05 12 34 00 00 00", P, 0x82),
    Refused("SB-13 UNSUBSCRIBE packet id 0 (v3.1.1)", V4, "A2 05 00 00 00 01 70", P, 0x82),
    Refused("SB-13 UNSUBSCRIBE packet id 0 (v5)", V5, "A2 06 00 00 00 00 01 70", P, 0x82),
    # ---- 6.5 Acks, server-only packets, DISCONNECT, AUTH ------------------------
    *(
        Refused(f"AK-02 {hexBytes[:2]} packet id 0 (v{level})", level, hexBytes, P, 0x82)
        for level in (V4, V5)
        for hexBytes in ("40 02 00 00", "50 02 00 00", "62 02 00 00", "70 02 00 00")
    ),
    Refused("AK-02 PUBACK unknown reason", V5, "40 04 00 01 FF 00", P, 0x82),
    Refused("AK-02 PUBREL with a PUBACK-only reason", V5, "62 03 00 01 10", P, 0x82),
    Refused("AK-02 PUBACK truncated property", V5, "40 04 00 01 00 01", M, 0x81),
    *(
        Refused(f"AK-05 server-only {hexBytes} (v{level})", level, hexBytes, P, 0x82)
        for level in (V4, V5)
        for hexBytes in ("20 02 00 00", "90 03 12 34 00", "B0 02 12 34", "D0 00")
    ),
    Refused("AK-05 CONNACK with bad flags (v5)", V5, "29 02 00 01", P, 0x82),
    Refused("AK-07 DISCONNECT with a body (v3.1.1)", V4, "E0 01 00", M, 0x81),
    Refused("AK-07 DISCONNECT with a body (3.1)", V3, "E0 01 00", M, 0x81),
    Refused("AK-07 DISCONNECT truncated property", V5, "E0 05 00 03 11 00 00", M, 0x81),
    Refused("AK-07 DISCONNECT unknown reason", V5, "E0 01 03", P, 0x82),
    Refused("AK-07 DISCONNECT property not allowed", V5, "E0 04 00 02 01 01", P, 0x82),
    Refused("AK-08 AUTH unknown reason", V5, "F0 02 01 00", P, 0x82),
    Refused("AK-08 AUTH without property length", V5, "F0 01 18", M, 0x81),
    Refused("AK-08 AUTH property not allowed", V5, "F0 04 18 02 01 01", P, 0x82),
    Refused("AK-08 AUTH data without method", V5, "F0 07 18 05 16 00 02 01 02", P, 0x82),
]

ACCEPTED: list[Accepted] = [
    Accepted("CN-03 3.1 CONNECT", PRE, C3, Connect("p", V3, True, 10)),
    Accepted("C4", PRE, C4, Connect("p", V4, True, 10)),
    Accepted("C5", PRE, C5, Connect("p", V5, True, 10)),
    Accepted("CN-06 v5 password without user name", PRE,
             "10 13 00 04 4D 51 54 54 05 42 00 0A 00 00 01 70 00 03 73 65 63",
             Connect("p", V5, True, 10, None, None, b"sec")),
    Accepted("CN-07 password is binary: surrogate bytes kept", PRE,
             "10 15 00 04 4D 51 54 54 04 C2 00 0A 00 01 70 00 01 75 00 03 ED A0 80",
             Connect("p", V4, True, 10, None, "u", bytes.fromhex("ED A0 80"))),
    *(
        Accepted(f"CN-07 client id {name} (not strict)", PRE, hexBytes,
                 Connect(clientId, V4, True, 10), strict=False)
        for name, hexBytes, clientId in (
            ("U+0001", "10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 01", "\x01"),
            ("U+001F", "10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 1F", "\x1f"),
            ("U+007F", "10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 7F", "\x7f"),
            ("U+009F", "10 0E 00 04 4D 51 54 54 04 02 00 0A 00 02 C2 9F", "\x9f"),
            ("U+FFFF", "10 0F 00 04 4D 51 54 54 04 02 00 0A 00 03 EF BF BF", "\uffff"),
        )
    ),
    Accepted("CN-07 will topic U+009F (not strict)", PRE,
             "10 13 00 04 4D 51 54 54 04 06 00 0A 00 01 70 00 02 C2 9F 00 00",
             Connect("p", V4, True, 10, Will("\x9f", b"")), strict=False),
    Accepted("FR-05 bare AUTH (v5)", V5, "F0 00", Auth()),
    Accepted("FR-08 QoS 1 PUBLISH of 5 bytes (v3.1.1)", V4, "32 05 00 01 61 00 01",
             Publish("a", b"", 1, packetId=1)),
    *(Accepted(f"PINGREQ (v{level})", level, "C0 00", Pingreq()) for level in (V3, V4, V5)),
    *(
        Accepted(f"AK-01 unsolicited {name} (v{level})", level, hexBytes, packet)
        for level in (V4, V5)
        for name, hexBytes, packet in (
            ("PUBACK", "40 02 00 01", Puback(1)),
            ("PUBREC", "50 02 00 01", Pubrec(1)),
            ("PUBREL", "62 02 00 01", Pubrel(1)),
            ("PUBCOMP", "70 02 00 01", Pubcomp(1)),
        )
    ),
    Accepted("AK-01 PUBACK with reason 80 (v5)", V5, "40 03 00 01 80", Puback(1, 0x80)),
    Accepted("v5 PUBACK success", V5, "40 02 00 01", Puback(1)),
    Accepted("v5 PUBACK no matching subscribers", V5, "40 03 00 01 10", Puback(1, 0x10)),
    Accepted("AK-07 DISCONNECT with will (v5)", V5, "E0 01 04", Disconnect(4)),
    # 0x8C is in the section 2.4 table for DISCONNECT (not in 3.14.2.1).
    Accepted("DISCONNECT bad authentication method (v5)", V5, "E0 01 8C", Disconnect(0x8C)),
    Accepted("AK-07 DISCONNECT (v3.1.1)", V4, "E0 00", Disconnect()),
    *(
        Accepted(f"SB-02 options {options} (v5)", V5, f"82 07 12 34 00 00 01 70 {options}",
                 Subscribe(0x1234, (request,)))
        for options, request in (
            ("04", SR("p", 0, noLocal=True)),
            ("08", SR("p", 0, retainAsPublished=True)),
            ("10", SR("p", 0, retainHandling=1)),
            ("20", SR("p", 0, retainHandling=2)),
            ("2E", SR("p", 2, True, True, 2)),
        )
    ),
    *(
        Accepted(f"SB-02 options {options} (v{level})", level, f"82 06 12 34 00 01 70 {options}",
                 Subscribe(0x1234, (SR("p", qos),)))
        for level in (V3, V4)
        for options, qos in (("00", 0), ("01", 1), ("02", 2))
    ),
    Accepted("SB-10 maximum subscription identifier", V5,
             "82 0C 12 34 05 0B FF FF FF 7F 00 01 70 00",
             Subscribe(0x1234, (SR("p"),), {0x0B: (268_435_455,)})),
    Accepted("PB-14 empty topic with a topic alias", V5, "30 09 00 00 03 23 00 01 70 61 79",
             Publish("", b"pay", properties={0x23: 1})),
    Accepted("PB-14 alias 11 passes the codec (the session checks the maximum)", V5,
             "30 12 00 05 74 6F 70 69 63 03 23 00 0B 70 61 79 6C 6F 61 64",
             Publish("topic", b"payload", properties={0x23: 11})),
    Accepted("PB-06 topic U+2A6D4", V4, "30 07 00 04 F0 AA 9B 94 70",
             Publish("\U0002a6d4", b"p")),
    Accepted("PB-06 topic U+2A6D4 (v5)", V5, "30 08 00 04 F0 AA 9B 94 00 70",
             Publish("\U0002a6d4", b"p")),
    Accepted("PB-06 topic U+009F (not strict)", V4, "30 05 00 02 C2 9F 70",
             Publish("\x9f", b"p"), strict=False),
    Accepted("PB-06 topic U+FFFF (not strict)", V4, "30 06 00 03 EF BF BF 70",
             Publish("\uffff", b"p"), strict=False),
]


def connectedDecoder(level: int | None, strict: bool) -> Decoder:
    """
    A server-side decoder, after the catalogue CONNECT for C{level} if any.
    """
    decoder = Decoder(isServer=True, strictStrings=strict)
    if level is not None:
        decoder.feed(bytes.fromhex(CONNECT_BYTES[level]))
        packet = decoder.next()
        assert isinstance(packet, Connect) and packet.protocolLevel == level, packet
    return decoder


def describe(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    code = getattr(error, "reasonCode", None)
    level = getattr(error, "protocolLevel", None)
    return f"{type(error).__name__}(0x{code or 0:02X}, protocolLevel={level}): {error}"


def runRefused(row: Refused, chunks: list[bytes]) -> tuple[BaseException | None, Any]:
    """
    Feed C{chunks} to a fresh decoder, calling C{next} after each.

    @return: the error raised (or L{None}) and any packet decoded first.
    """
    decoder = connectedDecoder(row.level, row.strict)
    for chunk in chunks:
        decoder.feed(chunk)
        try:
            packet = decoder.next()
        except ProtocolError as e:
            return e, None
        if packet is not None:
            return None, packet
    return None, None


class CatalogueTableTests(SynchronousTestCase):
    """
    The codec-level catalogue rows, each through a fresh decoder.
    """

    def test_caseIdsUnique(self) -> None:
        """
        Every row has its own name, so that a failure points at one row.
        """
        names = [row.caseId for row in REFUSED] + [row.caseId for row in ACCEPTED]
        self.assertEqual([n for n in names if names.count(n) > 1], [])

    def checkRefused(self, row: Refused, chunks: list[bytes], how: str) -> str | None:
        error, packet = runRefused(row, chunks)
        if (
            error is not None
            and type(error) is row.error
            and error.reasonCode == row.reasonCode
            and error.protocolLevel == row.inConnect
        ):
            return None
        expected = f"{row.error.__name__}(0x{row.reasonCode:02X}, protocolLevel={row.inConnect})"
        got = describe(error) if packet is None else f"packet {packet!r}"
        return f"{row.caseId} [{how}]: expected {expected}, got {got}"

    def test_refusedInOneChunk(self) -> None:
        """
        Each refused row raises exactly the expected error class with the
        expected reason code (and CONNECT level, if any) when fed whole.
        """
        failures = [
            self.checkRefused(row, [bytes.fromhex(row.hexBytes)], "one chunk")
            for row in REFUSED
        ]
        failures = [f for f in failures if f]
        self.assertEqual(failures, [], "\n" + "\n".join(failures))

    def test_refusedByteAtATime(self) -> None:
        """
        The same errors come out when the bytes arrive one at a time, and no
        packet is decoded first.
        """
        failures = []
        for row in REFUSED:
            data = bytes.fromhex(row.hexBytes)
            chunks = [data[i : i + 1] for i in range(len(data))]
            failures.append(self.checkRefused(row, chunks, "byte at a time"))
        failures = [f for f in failures if f]
        self.assertEqual(failures, [], "\n" + "\n".join(failures))

    def test_accepted(self) -> None:
        """
        Each accepted row decodes, whole and byte at a time, to exactly the
        expected packet, with nothing left over.
        """
        failures = []
        for row in ACCEPTED:
            data = bytes.fromhex(row.hexBytes)
            for how, chunks in (
                ("one chunk", [data]),
                ("byte at a time", [data[i : i + 1] for i in range(len(data))]),
            ):
                decoder = connectedDecoder(row.level, row.strict)
                out = []
                try:
                    for chunk in chunks:
                        decoder.feed(chunk)
                        while (packet := decoder.next()) is not None:
                            out.append(packet)
                except ProtocolError as e:
                    failures.append(f"{row.caseId} [{how}]: {describe(e)}")
                    continue
                if out != [row.packet] or decoder.buffered:
                    failures.append(f"{row.caseId} [{how}]: got {out!r}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))


class FirstByteTests(SynchronousTestCase):
    """
    A server refuses a connection on its first byte unless it is C{10}
    (catalogue FR-03, FR-12; CVE-2023-0809).
    """

    def test_everyOtherFirstByte(self) -> None:
        """
        Each of the 255 first bytes other than C{10} raises on that byte
        alone; C{0x10} waits for more.
        """
        for first in range(256):
            decoder = Decoder(isServer=True)
            decoder.feed(bytes((first,)))
            if first == 0x10:
                self.assertIsNone(decoder.next())
                continue
            with self.assertRaises(ProtocolError, msg=f"{first:02X}") as caught:
                decoder.next()
            # Wrong type: Protocol Error; CONNECT with flags: Malformed.
            if first >> 4 == 1:
                self.assertIs(type(caught.exception), MalformedPacket)
            else:
                self.assertIs(type(caught.exception), ProtocolError)
                self.assertEqual(caught.exception.reasonCode, 0x82)

    def test_floodAfterBadFirstByte(self) -> None:
        """
        FR-03 with its body: the first byte C{20} plus a 4 MiB declared
        length and data is refused before the length is even looked at.
        """
        decoder = Decoder(isServer=True)
        decoder.feed(bytes.fromhex("20 80 80 80 74") + b"\x01" * 4096)
        self.assertRaises(ProtocolError, decoder.next)


class ConnectSizeTests(SynchronousTestCase):
    """
    The CONNECT is bounded by maxConnectSize (default 100,000 bytes), checked
    as soon as its Remaining Length is complete (CN-12).
    """

    def test_refusedWhenLengthComplete(self) -> None:
        """
        C{10 C0 9A 0C} (200,000) raises 0x95 on its last length byte, not
        before.
        """
        decoder = Decoder(isServer=True)
        for byte in bytes.fromhex("10 C0 9A"):
            decoder.feed(bytes((byte,)))
            self.assertIsNone(decoder.next())
        decoder.feed(b"\x0c")
        with self.assertRaises(ProtocolError) as caught:
            decoder.next()
        self.assertEqual(caught.exception.reasonCode, 0x95)

    def test_boundary(self) -> None:
        """
        A CONNECT of exactly 100,000 bytes (length C{9C 8D 06} = 99,996) is
        awaited; one of 100,001 bytes (C{9D 8D 06}) is refused.
        """
        decoder = Decoder(isServer=True)
        decoder.feed(bytes.fromhex("10 9C 8D 06 00 04"))
        self.assertIsNone(decoder.next())
        decoder = Decoder(isServer=True)
        decoder.feed(bytes.fromhex("10 9D 8D 06 00 04"))
        with self.assertRaises(ProtocolError) as caught:
            decoder.next()
        self.assertEqual(caught.exception.reasonCode, 0x95)

    def test_configurable(self) -> None:
        """
        A smaller maxConnectSize refuses C4 (15 bytes) at 14 and accepts it
        at 15; the packet limit does not apply to the CONNECT.
        """
        decoder = Decoder(isServer=True, maxConnectSize=14)
        decoder.feed(bytes.fromhex(C4))
        self.assertRaises(ProtocolError, decoder.next)
        decoder = Decoder(isServer=True, maxConnectSize=15, maxPacketSize=5)
        decoder.feed(bytes.fromhex(C4))
        self.assertEqual(decoder.next(), Connect("p", V4, True, 10))


class TotalityTests(SynchronousTestCase):
    """
    Whatever arrives, the decoder returns packets or raises the codec's own
    errors: never C{IndexError}, C{UnicodeDecodeError}, C{ValueError} and
    the like (catalogue section 7 item 4, FR-08).
    """

    def feedAll(self, decoder: Decoder, data: bytes, step: int) -> None:
        try:
            for start in range(0, len(data), step):
                decoder.feed(data[start : start + step])
                while decoder.next() is not None:
                    pass
        except ProtocolError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.data())
    def test_mutatedStreams(self, data: st.DataObject) -> None:
        """
        Valid packet streams with a few bytes changed, removed or inserted,
        fed whole or in small chunks to either side, never raise anything
        but L{ProtocolError}.
        """
        level = data.draw(levels)
        toServer = data.draw(st.booleans())
        packets = data.draw(
            st.lists(clientPackets(level) if toServer else serverPackets(level), max_size=3)
        )
        raw = bytearray(b"".join(encode(p, level) for p in packets))
        for _ in range(data.draw(st.integers(1, 4))):
            index = data.draw(st.integers(0, len(raw)))
            operation = data.draw(st.sampled_from(("replace", "delete", "insert")))
            if operation == "insert" or index == len(raw):
                raw.insert(index, data.draw(st.integers(0, 255)))
            elif operation == "delete":
                del raw[index]
            else:
                raw[index] = data.draw(st.integers(0, 255))
        if toServer:
            decoder = connectedDecoder(level, data.draw(st.booleans()))
        else:
            decoder = Decoder(isServer=False, protocolLevel=level)
        self.feedAll(decoder, bytes(raw), data.draw(st.sampled_from((1, 3, 1 << 20))))

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from((None, V3, V4, V5)), st.binary(max_size=64))
    def test_randomBytes(self, level: int | None, raw: bytes) -> None:
        """
        Random bytes, before or after a CONNECT, never raise anything but
        L{ProtocolError}.
        """
        self.feedAll(connectedDecoder(level, True), raw, 1 << 20)
