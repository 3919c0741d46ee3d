"""
Reliability catalogue conformance for MQTT 5.0 (C{/work/shared/reliability-
catalogue.md} rows CN-14..CN-19, PB-11..PB-16, SB-09, SB-10, AK-07, AK-08):
byte-exact tables of v5 input replayed against the real broker on loopback.

Each case opens a fresh raw connection, sends the catalogue's C{C5} CONNECT
(unless the row is about the CONNECT itself), sends the row's bytes and
checks the exact reply bytes, close versus stay-open (CLOSED within 2 s, or
a PINGREQ still gets C{D0 00}) and that the ALIVE sentinel is still served;
at the end of each class no traceback may be in the broker log.  Failures are
collected per row so that one run names every failing row.

Expected replies come from the MQTT 5.0 specification and C{docs/mqtt5.md}
(0x81 for what cannot be parsed, 0x82 for what parses but is not allowed;
DISCONNECT before the close once CONNACK was sent; CONNACK 0x8x for a v5
CONNECT that breaks a rule after its level byte).  The catalogue pins the
compact forms C{E0 01 rc} and C{20 03 00 rc 00}, so every broker here runs
with C{--reason-strings no}, except L{ReasonStringTests}, which shows that the
same rows with Reason Strings decode to the same reason codes.
"""

from __future__ import annotations

import select
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import psutil
from brokerprocess import C5, CONNACK_OK, BrokerProcess, RawClient, isAlive
from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import Connack, Decoder, Disconnect, ProtocolError, Suback

PINGREQ = bytes.fromhex("C0 00")
PINGRESP = bytes.fromhex("D0 00")
V5_MALFORMED = "E0 01 81"
V5_PROTOCOL = "E0 01 82"
CONNACK_MALFORMED = "20 03 00 81 00"
CONNACK_PROTOCOL = "20 03 00 82 00"
#: Options shared by the brokers of this module: a short connect timeout,
#: Receive Maximum 5 (PB-11 needs R + 1 QoS 2 messages), Topic Alias Maximum
#: 10 (the catalogue's PB-14 numbers; also mqttd's default).
MAIN_OPTIONS = ("--connect-timeout", "2", "--receive-maximum", "5",
                "--topic-alias-maximum", "10")


# -- building packets --------------------------------------------------------------


def varint(n: int) -> bytes:
    """
    Encode a Variable Byte Integer (minimal form).
    """
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    """
    A control packet: first byte, remaining length, body.
    """
    return bytes((first,)) + varint(len(body)) + body


def mqttString(raw: bytes) -> bytes:
    """
    A two-byte length prefix, then the bytes.
    """
    return struct.pack("!H", len(raw)) + raw


def block(body: bytes) -> bytes:
    """
    A property block: its length, then the properties.
    """
    return varint(len(body)) + body


def hexBytes(data: str | bytes) -> bytes:
    """
    Bytes from a spaced hex string (bytes are returned as they are).
    """
    return bytes.fromhex(data) if isinstance(data, str) else data


def connect5(clientId: bytes = b"p", flags: int = 0x02, keepAlive: int = 10,
             props: str | bytes = b"\x00", tail: bytes = b"") -> bytes:
    """
    A v5 CONNECT (C{props} is a whole property block; C{tail} follows the
    client id: will properties, topic and payload, user name, password).
    """
    body = (mqttString(b"MQTT") + bytes((5, flags)) + struct.pack("!H", keepAlive)
            + hexBytes(props) + mqttString(clientId) + tail)
    return packet(0x10, body)


def connect4(clientId: bytes, keepAlive: int = 60) -> bytes:
    """
    A clean 3.1.1 CONNECT without will.
    """
    body = mqttString(b"MQTT") + bytes((4, 0x02)) + struct.pack("!H", keepAlive)
    return packet(0x10, body + mqttString(clientId))


def willTail(topic: bytes, payload: bytes, props: str | bytes = b"\x00") -> bytes:
    """
    The will part of a v5 CONNECT payload.
    """
    return hexBytes(props) + mqttString(topic) + mqttString(payload)


def publish(topic: bytes, payload: bytes = b"", qos: int = 0, mid: int = 0, v5: bool = True,
            retain: bool = False, props: str | bytes = b"\x00") -> bytes:
    """
    A PUBLISH (packet id only for QoS > 0, property block only for v5).
    """
    first = 0x30 | (qos << 1) | (0x01 if retain else 0)
    body = mqttString(topic)
    if qos:
        body += struct.pack("!H", mid)
    if v5:
        body += hexBytes(props)
    return packet(first, body + payload)


def subscribe(mid: int, filters: Sequence[tuple[bytes, int]], v5: bool = True,
              props: str | bytes = b"\x00") -> bytes:
    """
    A SUBSCRIBE of (filter, options byte) pairs.
    """
    body = struct.pack("!H", mid) + (hexBytes(props) if v5 else b"")
    for topicFilter, options in filters:
        body += mqttString(topicFilter) + bytes((options,))
    return packet(0x82, body)


def hexFormat(data: bytes, limit: int = 48) -> str:
    """
    Bytes as spaced hex for failure messages (shortened if long).
    """
    text = data[:limit].hex(" ").upper()
    return text + (f" ...({len(data)} bytes)" if len(data) > limit else "")


# -- reading -------------------------------------------------------------------------


def readPacket(client: RawClient) -> bytes:
    """
    Read one whole control packet (within the client's timeout per part);
    whatever arrived if the connection closes or times out first.
    """
    data = client.recvExactly(1)
    if not data:
        return data
    while True:
        byte = client.recvExactly(1)
        data += byte
        if not byte or not byte[0] & 0x80 or len(data) > 5:
            break
    length, shift = 0, 0
    for b in data[1:]:
        length |= (b & 0x7F) << shift
        shift += 7
    return data + client.recvExactly(length)


def waitClosed(client: RawClient, timeout: float = 2.0) -> tuple[bool, bytes]:
    """
    Wait for EOF or reset: (closed, bytes received meanwhile).
    """
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, data
        client.sock.settimeout(remaining)
        try:
            chunk = client.sock.recv(65536)
        except TimeoutError:
            return False, data
        except (ConnectionResetError, BrokenPipeError):
            return True, data
        if not chunk:
            return True, data
        data += chunk


def stillOpen(client: RawClient) -> bytes:
    """
    Send PINGREQ and return what arrives (C{D0 00} if the connection is
    open and nothing else was pending).
    """
    try:
        client.send(PINGREQ)
    except OSError:
        return b""
    return client.recvExactly(2)


def connackProperties(data: bytes, present: bool = False) -> dict[int, Any] | None:
    """
    The properties of a successful v5 CONNACK (with Session Present
    C{present}), or L{None} if C{data} is not exactly one.
    """
    try:
        packets = decodeFromServer(data)
    except ProtocolError:
        return None
    if len(packets) != 1 or not isinstance(packets[0], Connack):
        return None
    connack = packets[0]
    if connack.reasonCode != 0 or connack.sessionPresent != present:
        return None
    return dict(connack.properties)


def isV5Connack(data: bytes) -> bool:
    """
    A successful v5 CONNACK without Session Present.
    """
    return connackProperties(data) is not None


def decodeFromServer(data: bytes) -> list[Any]:
    """
    Decode what a v5 server sent, as a client does.

    @raise ProtocolError: if it is not a sequence of whole v5 packets.
    """
    decoder = Decoder(isServer=False, protocolLevel=5)
    decoder.feed(data)
    packets = []
    while (item := decoder.next()) is not None:
        packets.append(item)
    if decoder.buffered:
        raise ProtocolError(f"{decoder.buffered} trailing bytes")
    return packets


def openClient(port: int, connectBytes: bytes = C5, timeout: float = 2.0,
               present: bool = False) -> RawClient:
    """
    Connect and check for a successful CONNACK (3.1.1 or v5).
    """
    client = RawClient(port, timeout)
    client.send(connectBytes)
    connack = readPacket(client)
    if connectBytes[8] == 5:
        ok = connackProperties(connack, present) is not None
    else:
        ok = connack == CONNACK_OK
    if not ok:
        client.close()
        raise AssertionError(f"CONNACK refused or wrong: {hexFormat(connack)}")
    return client


def markerSync(client: RawClient, topic: bytes, v5: bool = False) -> list[bytes]:
    """
    Publish a QoS 0 marker to C{topic} (which C{client} subscribes to) and
    return every packet received before it came back, so that "nothing was
    delivered" needs no sleep.
    """
    marker = publish(topic, b"marker", v5=v5)
    client.send(marker)
    packets: list[bytes] = []
    for _ in range(1000):
        data = readPacket(client)
        if not data or data == marker:
            break
        packets.append(data)
    return packets


# -- tables -----------------------------------------------------------------------------


class Case(NamedTuple):
    """
    One catalogue row: after C{connect} (L{None}: the row's bytes come
    first), send C{send}; expect C{reply} (byte-exact, or decoding to the
    same packets when not C{exact}) after a first packet that C{first}
    accepts (if given), then CLOSED within C{closeWithin} if C{closed},
    else a PINGRESP.
    """

    rowId: str
    send: bytes
    reply: bytes
    closed: bool
    connect: bytes | None = C5
    first: Callable[[bytes], bool] | None = None
    closeWithin: float = 2.0
    exact: bool = True


def row(rowId: str, send: str | bytes, reply: str | bytes = b"", closed: bool = True,
        connect: bytes | None = C5, **kw: Any) -> Case:
    """
    A row after C{connect} (C{C5} by default; hex strings are parsed).
    """
    return Case(rowId, hexBytes(send), hexBytes(reply), closed, connect, **kw)


def pre(rowId: str, send: str | bytes, reply: str | bytes = b"", closed: bool = True,
        **kw: Any) -> Case:
    """
    A row whose bytes are the first on the connection (a CONNECT).
    """
    return row(rowId, send, reply, closed, None, **kw)


def runCase(port: int, case: Case) -> list[str]:
    """
    Run one row; return its problems (empty if it passed).
    """
    problems = []
    client = RawClient(port, 2.0)
    try:
        if case.connect is not None:
            client.send(case.connect)
            connack = readPacket(client)
            if not isV5Connack(connack):
                return [f"CONNECT refused: {hexFormat(connack)}"]
        try:
            client.send(case.send)
        except OSError:
            pass  # closed early: what is read below decides
        if case.first is not None:
            data = readPacket(client)
            if not case.first(data):
                problems.append(f"unexpected first reply {hexFormat(data)}")
        if case.exact:
            got = client.recvExactly(len(case.reply)) if case.reply else b""
            same = got == case.reply
        else:
            expected = decodeFromServer(case.reply)
            got = b"".join(readPacket(client) for _ in expected)
            try:
                same = decodeFromServer(got) == expected
            except ProtocolError:
                same = False
        if not same:
            problems.append(f"expected reply {hexFormat(case.reply) or '(none)'}, "
                            f"got {hexFormat(got) or '(none)'}")
        if case.closed:
            closed, extra = waitClosed(client, case.closeWithin)
            if extra:
                problems.append(f"unexpected bytes {hexFormat(extra)}")
            if not closed:
                problems.append(f"not CLOSED within {case.closeWithin} s")
        else:
            pong = stillOpen(client)
            if pong != PINGRESP:
                problems.append(f"expected to stay open (PINGRESP), got {hexFormat(pong) or 'EOF'}")
    finally:
        client.close()
    if not isAlive(port):
        problems.append("ALIVE sentinel failed afterwards")
    return problems


class CatalogueMixin:
    """
    One broker per test class, started with C{--reason-strings no} (unless
    C{reasonStrings}) and C{brokerOptions}; no traceback may appear in its
    log.
    """

    brokerOptions: tuple[str, ...] = MAIN_OPTIONS
    reasonStrings = False
    broker: BrokerProcess

    @classmethod
    def setUpClass(cls) -> None:
        extra = () if cls.reasonStrings else ("--reason-strings", "no")
        cls.broker = BrokerProcess(*extra, *cls.brokerOptions)

    @classmethod
    def tearDownClass(cls) -> None:
        tracebacks = cls.broker.tracebacks()
        log = cls.broker.log()
        cls.broker.cleanup()
        if tracebacks:
            raise AssertionError(f"{cls.__name__}: traceback in the broker log:\n{log}")

    @property
    def port(self) -> int:
        return self.broker.port

    def checkCases(self, cases: Sequence[Case]) -> None:
        """
        Run every row; fail once, listing every failing row id.
        """
        failures = []
        for case in cases:
            for problem in runCase(self.port, case):
                failures.append(f"{case.rowId} [{hexFormat(case.send, 24)}]: {problem}")
        self.reportFailures(failures)

    def reportFailures(self, failures: list[str]) -> None:
        """
        Add a traceback check, then fail with every collected failure.
        """
        tracebacks = self.broker.tracebacks()
        if tracebacks:
            failures.append(f"traceback in the broker log: {tracebacks}")
        if failures:
            self.fail("\n".join(failures))  # type: ignore[attr-defined]

    def alive(self, failures: list[str], rowId: str) -> None:
        """
        Record a failure if the ALIVE sentinel is not served.
        """
        if not isAlive(self.port):
            failures.append(f"{rowId}: ALIVE sentinel failed")


# -- the rows shared with ReasonStringTests ---------------------------------------------

#: CN-15: CONNECT property blocks that are protocol errors (duplicate,
#: out of range, data without method, not allowed in CONNECT).
CN15_PROTOCOL_ERRORS = (
    "0A 11 00 00 00 01 11 00 00 00 01",
    "03 21 00 00",
    "05 27 00 00 00 00",
    "02 17 02",
    "02 19 02",
    "04 16 00 01 70",
    "02 24 01",
    "05 02 00 00 00 0A",
    "03 23 00 01",
    "02 0B 01",
)

#: CN-16: will property blocks with a non-will property, a duplicate or an
#: out-of-range value (0x82), or truncated (0x81).
CN16_WILL_PROPERTIES = (
    ("02 17 01", CONNACK_PROTOCOL),
    ("02 24 01", CONNACK_PROTOCOL),
    ("05 11 00 00 00 0A", CONNACK_PROTOCOL),
    ("03 23 00 01", CONNACK_PROTOCOL),
    ("02 0B 01", CONNACK_PROTOCOL),
    ("03 21 00 01", CONNACK_PROTOCOL),
    ("02 01 02", CONNACK_PROTOCOL),
    ("0A 18 00 00 00 01 18 00 00 00 01", CONNACK_PROTOCOL),
    ("01 18", CONNACK_MALFORMED),
    ("03 26 00 01", CONNACK_MALFORMED),
)


def cn15Rows() -> list[Case]:
    """
    CN-15 rows: bad v5 CONNECT properties.
    """
    cases = [pre(f"CN-15 {props}", connect5(props=props), CONNACK_PROTOCOL)
             for props in CN15_PROTOCOL_ERRORS]
    cases.append(pre("CN-15 01 11 (truncated)", connect5(props="01 11"), CONNACK_MALFORMED))
    return cases


def cn16Connect(willProps: str, clientId: bytes = b"cn16") -> bytes:
    """
    A v5 CONNECT with a will whose property block is C{willProps}.
    """
    return connect5(clientId, 0x06, tail=willTail(b"cn16/w", b"bye", willProps))


def cn16Rows() -> list[Case]:
    """
    CN-16 rows: bad will properties.
    """
    return [pre(f"CN-16 will {props}", cn16Connect(props), reply)
            for props, reply in CN16_WILL_PROPERTIES]


def cn17Rows() -> list[Case]:
    """
    CN-17 rows: will topics that are not valid topic names.  The codec
    refuses them while parsing the CONNECT (decoder.py
    C{_decodeConnectRest}), a protocol error: 0x82.
    """
    return [
        pre("CN-17 empty will topic", connect5(b"cn17", 0x06, tail=willTail(b"", b"x")),
            CONNACK_PROTOCOL),
        pre("CN-17 will topic a/#", connect5(b"cn17", 0x06, tail=willTail(b"a/#", b"x")),
            CONNACK_PROTOCOL),
        pre("CN-17 will topic a/+", connect5(b"cn17", 0x06, tail=willTail(b"a/+", b"x")),
            CONNACK_PROTOCOL),
    ]


def cn19Rows() -> list[Case]:
    """
    CN-19: the client's Maximum Packet Size 2 leaves no room for a CONNACK
    [MQTT-3.1.2-24]: closed without any byte.
    """
    return [pre("CN-19 Maximum Packet Size 2", connect5(props="05 27 00 00 00 02"))]


def pb11Rows() -> list[Case]:
    """
    PB-11: Receive Maximum 5 (advertised), 6 QoS 2 PUBLISHes without PUBREL:
    5 PUBRECs (0x10, nobody subscribed: docs/mqtt5.md), then 0x93.
    """
    publishes = b"".join(publish(b"pb11", b"x", 2, mid) for mid in range(1, 7))
    pubrecs = b"".join(struct.pack("!BBHB", 0x50, 3, mid, 0x10) for mid in range(1, 6))
    return [row("PB-11 R+1 QoS 2", publishes, pubrecs + bytes.fromhex("E0 01 93"))]


_PAYLOAD = b"payload"


def pb14Rows() -> list[Case]:
    """
    PB-14 rows on one connection: alias 0 and above the maximum (0x94),
    an unknown alias with an empty topic and a duplicate alias (0x82).
    """
    return [
        row("PB-14 alias 0", publish(b"topic", _PAYLOAD, props="03 23 00 00"), "E0 01 94"),
        row("PB-14 alias 11 > 10",
            "30 12 00 05 74 6F 70 69 63 03 23 00 0B 70 61 79 6C 6F 61 64", "E0 01 94"),
        row("PB-14 alias 65535", publish(b"topic", _PAYLOAD, props="03 23 FF FF"), "E0 01 94"),
        row("PB-14 empty topic, alias 3 unset", publish(b"", _PAYLOAD, props="03 23 00 03"),
            V5_PROTOCOL),
        row("PB-14 duplicate alias", publish(b"topic", _PAYLOAD, props="06 23 00 01 23 00 01"),
            V5_PROTOCOL),
        row("PB-14 empty topic, no alias", publish(b"", _PAYLOAD), V5_PROTOCOL),
    ]


#: PB-15: PUBLISH property blocks and the DISCONNECT reason they earn
#: (docs/mqtt5.md: 0x81 what cannot be parsed, 0x82 what parses but is
#: not allowed).
PB15_PROPERTIES = (
    ("02 01 02", "payload format 2", V5_PROTOCOL),
    ("0A 02 00 00 00 0A 02 00 00 00 0A", "duplicate message expiry", V5_PROTOCOL),
    ("02 0B 00", "subscription identifier 0", V5_PROTOCOL),
    ("02 0B 01", "subscription identifier from a client", V5_PROTOCOL),  # [MQTT-3.3.4-6]
    ("06 0B 80 80 80 80 01", "5-byte varint", V5_MALFORMED),
    ("03 0B 80 00", "non-minimal varint", V5_MALFORMED),
    ("06 08 00 03 61 2F 23", "response topic a/#", V5_PROTOCOL),  # [MQTT-3.3.2-14]
    ("06 08 00 03 61 2F 2B", "response topic a/+", V5_PROTOCOL),
    ("03 08 00 00", "empty response topic", V5_PROTOCOL),
    ("05 11 00 00 00 00", "session expiry (not allowed)", V5_PROTOCOL),
    ("02 24 01", "maximum QoS (not allowed)", V5_PROTOCOL),
    ("03 21 00 01", "receive maximum (not allowed)", V5_PROTOCOL),
    ("04 03 00 02 61", "truncated content type", V5_MALFORMED),
    ("01 01", "truncated payload format", V5_MALFORMED),
)


def pb15Rows() -> list[Case]:
    """
    PB-15 rows: a QoS 1 PUBLISH (mid 1) with each bad property block.
    """
    cases = [row(f"PB-15 {props} ({name})", publish(b"pb15", b"x", 1, 1, props=props), reply)
             for props, name, reply in PB15_PROPERTIES]
    # The packet ends inside its property block (3 declared, 2 present).
    cases.append(row("PB-15 block past the end", "32 0B 00 04 70 62 31 35 00 01 03 01 01",
                     V5_MALFORMED))
    return cases


def sb09Rows() -> list[Case]:
    """
    SB-09: No Local on a shared subscription (0x82 [MQTT-3.8.3-4]); invalid
    share names and missing filters (SUBACK 0x8F, the connection stays).
    """
    cases = [row("SB-09 $share/p/t No Local", subscribe(0x1234, [(b"$share/p/t", 0x04)]),
                 V5_PROTOCOL)]
    for name in (b"$share/p/", b"$share/p", b"$share/+/t", b"$share/#/t", b"$share//t"):
        cases.append(row(f"SB-09 {name.decode()}", subscribe(0x1234, [(name, 0)]),
                         "90 04 12 34 00 8F", closed=False))
    return cases


def sb10Rows() -> list[Case]:
    """
    SB-10: Subscription Identifier 0 or duplicated (0x82), a 5-byte or
    non-minimal varint (0x81).
    """
    cases = []
    for props, name, reply in (
        ("02 0B 00", "0", V5_PROTOCOL),
        ("04 0B 01 0B 02", "duplicated", V5_PROTOCOL),
        ("06 0B 80 80 80 80 01", "5-byte varint", V5_MALFORMED),
        ("06 0B FF FF FF FF 7F", "5-byte varint FF", V5_MALFORMED),
        ("03 0B 80 00", "non-minimal 80 00", V5_MALFORMED),
        ("05 0B 80 80 80 00", "non-minimal 80 80 80 00", V5_MALFORMED),
    ):
        cases.append(row(f"SB-10 identifier {name}",
                         subscribe(0x1234, [(b"sb10", 0)], props=props), reply))
    return cases


def ak07ErrorRows(connectBytes: bytes = C5) -> list[Case]:
    """
    AK-07: a DISCONNECT with a truncated property (0x81) and one setting a
    Session Expiry after 0 at CONNECT (0x82, section 3.14.2.2.2).
    """
    return [
        row("AK-07 truncated property", "E0 05 00 03 11 00 00", V5_MALFORMED,
            connect=connectBytes),
        row("AK-07 expiry 1 after 0", "E0 07 00 05 11 00 00 00 01", V5_PROTOCOL,
            connect=connectBytes),
    ]


def ak08Rows() -> list[Case]:
    """
    AK-08: AUTH without an Authentication Method in CONNECT (0x82); a
    CONNECT with a method the listener does not have (CONNACK 0x8C).
    """
    method = bytes.fromhex("0E 15 00 0B") + b"unsupported"
    return [
        row("AK-08 AUTH F0 00", "F0 00", V5_PROTOCOL),
        row("AK-08 AUTH 0x18 no method", "F0 02 18 00", V5_PROTOCOL),
        pre("AK-08 method unsupported", connect5(props=method), "20 03 00 8C 00"),
        # Nothing after a refused CONNECT is processed [MQTT-3.1.4-5].
        pre("AK-08 method unsupported + PINGREQ", connect5(props=method) + PINGREQ,
            "20 03 00 8C 00"),
    ]


# -- 6.2 CONNECT --------------------------------------------------------------------------


class ConnectV5Tests(CatalogueMixin, SynchronousTestCase):
    """
    Catalogue section 6.2, v5 rows: many user properties, bad CONNECT and
    will properties, bad will topics, the will delay and the session end,
    a Maximum Packet Size too small for the CONNACK.
    """

    def test_manyUserProperties(self) -> None:
        """CN-14: 5,001 user properties are accepted in time; a 65,000-char id is served."""
        failures: list[str] = []
        userProperty = bytes.fromhex("26 00 03 6B 65 79 00 05 76 61 6C 75 65")
        many = connect5(b"cn14", props=block(userProperty * 5001))
        longId = connect5(b"i" * 65000)
        for rowId, connectBytes, allowRefusal in (
            ("CN-14 5,001 user properties", many, False),
            ("CN-14 65,000-char client id", longId, True),
        ):
            client = RawClient(self.port, 10.0)
            try:
                start = time.monotonic()
                client.send(connectBytes)
                connack = readPacket(client)
                elapsed = time.monotonic() - start
                if isV5Connack(connack):
                    if stillOpen(client) != PINGRESP:
                        failures.append(f"{rowId}: not open after the CONNACK")
                elif allowRefusal and connack == bytes.fromhex("20 03 00 85 00"):
                    pass  # a server MAY refuse a long id [MQTT-3.1.3-5]
                else:
                    failures.append(f"{rowId}: no CONNACK within 10 s "
                                    f"({elapsed:.1f} s): {hexFormat(connack) or '(none)'}")
            finally:
                client.close()
            self.alive(failures, rowId)
        self.reportFailures(failures)

    def test_connectProperties(self) -> None:
        """CN-15: bad v5 CONNECT properties: 20 03 00 82 00 (truncated 0x81), CLOSED."""
        self.checkCases(cn15Rows())

    def test_willProperties(self) -> None:
        """CN-16: bad will properties: 0x82/0x81 and CLOSED; a valid one is accepted."""
        cases = cn16Rows()
        cases.append(pre("CN-16 will delay 0 (valid)", cn16Connect("05 18 00 00 00 00"),
                         closed=False, first=isV5Connack))
        self.checkCases(cases)

    def test_willPropertiesRepeated(self) -> None:
        """CN-16: 1,000 refused CONNECTs with bad will properties: RSS grows < 20 MiB."""
        failures: list[str] = []
        process = psutil.Process(self.broker.process.pid)
        rows = [(cn16Connect(props), bytes.fromhex(reply))
                for props, reply in CN16_WILL_PROPERTIES]

        def refuse(count: int) -> None:
            for i in range(count):
                connectBytes, reply = rows[i % len(rows)]
                client = RawClient(self.port, 2.0)
                try:
                    client.send(connectBytes)
                    got = client.recvExactly(len(reply))
                    closed, extra = waitClosed(client)
                finally:
                    client.close()
                if (got != reply or not closed or extra) and len(failures) < 10:
                    failures.append(f"CN-16 repeat {i}: expected {hexFormat(reply)} + CLOSED, "
                                    f"got {hexFormat(got + extra)}, closed={closed}")

        refuse(100)  # warm-up: first-use allocations are not growth
        before = process.memory_info().rss
        refuse(1000)
        growth = process.memory_info().rss - before
        if growth >= 20 * 1024 * 1024:
            failures.append(f"CN-16 repeat: broker RSS grew by {growth / 2**20:.1f} MiB")
        self.alive(failures, "CN-16 repeat")
        self.reportFailures(failures)

    def test_invalidWillTopics(self) -> None:
        """CN-17: an empty or wildcard will topic gets CONNACK 0x82, CLOSED."""
        self.checkCases(cn17Rows())

    def test_willDelayAndSessionExpiry(self) -> None:
        """CN-18: will delay 10 s, session expiry 2 s: the will comes at the session end."""
        failures: list[str] = []
        sub = openClient(self.port, connect4(b"cn18-sub"))
        sub.send(subscribe(1, [(b"cn18/#", 0)], v5=False))
        if readPacket(sub) != bytes.fromhex("90 03 00 01 00"):
            failures.append("CN-18: subscriber SUBACK wrong")
        expiry2 = block(bytes.fromhex("11 00 00 00 02"))
        delay10 = block(bytes.fromhex("18 00 00 00 0A"))
        clients = {}
        for name in (b"a", b"b"):
            clients[name] = openClient(self.port, connect5(
                b"cn18-" + name, 0x06, props=expiry2,
                tail=willTail(b"cn18/" + name, b"gone-" + name, delay10)))
        droppedAt = time.monotonic()
        for client in clients.values():
            client.close()  # the network connection ends, no DISCONNECT
        time.sleep(1.0)
        # b resumes its session within the will delay and the session
        # expiry: its will must never be sent [MQTT-3.1.3-9].
        resumed = openClient(self.port, connect5(b"cn18-b", 0x00), present=True)
        resumedAt = time.monotonic()
        arrivals: dict[bytes, float] = {}
        buffer = b""
        while time.monotonic() < max(droppedAt + 8.0, resumedAt + 5.0):
            if b"a" in arrivals and time.monotonic() > resumedAt + 5.0:
                break
            if not select.select([sub.sock], [], [], 0.1)[0]:
                continue
            chunk = sub.sock.recv(4096)
            if not chunk:
                failures.append("CN-18: subscriber closed")
                break
            buffer += chunk
            for name in (b"a", b"b"):
                will = publish(b"cn18/" + name, b"gone-" + name, v5=False)
                if will in buffer and name not in arrivals:
                    arrivals[name] = time.monotonic() - droppedAt
        if b"a" not in arrivals:
            failures.append("CN-18: the will of cn18-a did not arrive within 8 s")
        elif not 1.5 <= arrivals[b"a"] < 8.0:
            failures.append(f"CN-18: the will of cn18-a arrived after {arrivals[b'a']:.2f} s, "
                            "not at the session end (~2 s)")
        if b"b" in arrivals:
            failures.append(f"CN-18: the will of cn18-b (reconnected at ~1 s) arrived after "
                            f"{arrivals[b'b']:.2f} s")
        expected = {publish(b"cn18/a", b"gone-a", v5=False)}
        if buffer and buffer not in expected:
            failures.append(f"CN-18: subscriber got {hexFormat(buffer)}")
        resumed.send(bytes.fromhex("E0 00"))
        resumed.close()
        sub.close()
        self.alive(failures, "CN-18")
        self.reportFailures(failures)

    def test_tinyClientMaximumPacketSize(self) -> None:
        """CN-19: Maximum Packet Size 2: CLOSED without a CONNACK."""
        self.checkCases(cn19Rows())


# -- 6.3 PUBLISH -----------------------------------------------------------------------------


class PublishV5Tests(CatalogueMixin, SynchronousTestCase):
    """
    Catalogue section 6.3, v5 rows: Receive Maximum, a subscriber's Maximum
    Packet Size, topic aliases, PUBLISH properties.
    """

    def test_receiveMaximum(self) -> None:
        """PB-11: the 6th QoS 2 PUBLISH without PUBREL (Receive Maximum 5) gets 0x93."""
        failures: list[str] = []
        client = RawClient(self.port)
        try:
            client.send(C5)
            props = connackProperties(readPacket(client))
            if props is None or props.get(0x21) != 5:
                failures.append(f"PB-11: CONNACK without Receive Maximum 5: {props}")
        finally:
            client.close()
        self.reportFailures(failures)
        publishes = b"".join(publish(b"pb11", b"x", 2, mid) for mid in range(1, 6))
        pubrecs = b"".join(struct.pack("!BBHB", 0x50, 3, mid, 0x10) for mid in range(1, 6))
        self.checkCases([
            *pb11Rows(),
            # At the limit, a PUBREL frees a slot: the next QoS 2 is taken.
            row("PB-11 R, PUBREL, 1 more", publishes + bytes.fromhex("62 02 00 01")
                + publish(b"pb11", b"x", 2, 6),
                pubrecs + bytes.fromhex("70 02 00 01 50 03 00 06 10"), closed=False,
                exact=False),
            # QoS 1 is acknowledged at once and never counts.
            row("PB-11 QoS 1 x 6", b"".join(publish(b"pb11", b"x", 1, m) for m in range(1, 7)),
                b"".join(struct.pack("!BBHB", 0x40, 3, m, 0x10) for m in range(1, 7)),
                closed=False),
        ])

    def test_subscriberMaximumPacketSize(self) -> None:
        """PB-13: a message above the subscriber's Maximum Packet Size 40 is skipped for it."""
        failures: list[str] = []
        topic = b"pb13/max/packet/size"
        sub = openClient(self.port, connect5(b"pb13-sub", props="05 27 00 00 00 28"))
        pub = openClient(self.port, connect5(b"pb13-pub"))
        try:
            sub.send(subscribe(1, [(b"pb13/#", 1)]))
            if readPacket(sub) != bytes.fromhex("90 04 00 01 00 01"):
                failures.append("PB-13: SUBACK wrong")
            # 2 + 2 + 20 + 2 + 1 + 20 = 47 bytes to the subscriber; then 31.
            pub.send(publish(topic, b"L" * 20, 1, 1) + publish(topic, b"ssss", 1, 2))
            acks = decodeFromServer(readPacket(pub) + readPacket(pub))
            expectedAcks = decodeFromServer(bytes.fromhex("40 02 00 01 40 02 00 02"))
            if acks != expectedAcks:
                failures.append(f"PB-13: publisher acks {acks}")
            small = readPacket(sub)
            received = decodeFromServer(small) if small else []
            if (len(received) != 1 or received[0].topic != topic.decode()
                    or received[0].payload != b"ssss" or received[0].qos != 1):
                failures.append(f"PB-13: expected only the 4-byte message first, got "
                                f"{hexFormat(small)}")
            else:
                if len(small) > 40:
                    failures.append(f"PB-13: {len(small)}-byte PUBLISH to a 40-byte client")
                sub.send(struct.pack("!BBH", 0x40, 2, received[0].packetId))
            others = markerSync(sub, b"pb13/m", v5=True)
            if others:
                failures.append(f"PB-13: subscriber also got {[hexFormat(p) for p in others]}")
            if stillOpen(sub) != PINGRESP or stillOpen(pub) != PINGRESP:
                failures.append("PB-13: a client was closed")
        finally:
            sub.close()
            pub.close()
        self.alive(failures, "PB-13")
        self.reportFailures(failures)

    def test_topicAliases(self) -> None:
        """PB-14: alias 0 and 11 > 10 get 0x94; unknown or duplicate alias 0x82."""
        failures: list[str] = []
        client = RawClient(self.port)
        try:
            client.send(C5)
            props = connackProperties(readPacket(client))
            if props is None or props.get(0x22) != 10:
                failures.append(f"PB-14: CONNACK without Topic Alias Maximum 10: {props}")
        finally:
            client.close()
        self.reportFailures(failures)
        self.checkCases([
            *pb14Rows(),
            row("PB-14 alias 10 (= maximum)", publish(b"topic", _PAYLOAD, props="03 23 00 0A"),
                closed=False),
        ])

    def test_topicAliasNotCarriedOver(self) -> None:
        """PB-14: an alias set on one connection is unknown on the next (0x82)."""
        failures: list[str] = []
        sub = openClient(self.port, connect4(b"pb14-sub"))
        sub.send(subscribe(1, [(b"pb14/#", 0)], v5=False))
        readPacket(sub)
        durable = connect5(b"pb14", 0x02, props="05 11 00 00 00 3C")
        client = openClient(self.port, durable)
        try:
            client.send(publish(b"pb14/a", b"1", props="03 23 00 01")
                        + publish(b"", b"2", props="03 23 00 01"))
            got = markerSync(sub, b"pb14/marker")
            expected = [publish(b"pb14/a", b"1", v5=False), publish(b"pb14/a", b"2", v5=False)]
            if got != expected:
                failures.append(f"PB-14 alias within a connection: got "
                                f"{[hexFormat(p) for p in got]}")
            client.send(bytes.fromhex("E0 00"))
            waitClosed(client)
        finally:
            client.close()
        # The session lives on (expiry 60 s); the alias must not [MQTT-3.3.2-7].
        resume = connect5(b"pb14", 0x00, props="05 11 00 00 00 00")
        client = RawClient(self.port)
        try:
            client.send(resume)
            if connackProperties(readPacket(client), present=True) is None:
                failures.append("PB-14: the session was not resumed")
            client.send(publish(b"", b"3", props="03 23 00 01"))
            got = client.recvExactly(3)
            closed, extra = waitClosed(client)
            if got != bytes.fromhex(V5_PROTOCOL) or not closed or extra:
                failures.append(f"PB-14 alias after reconnect: expected {V5_PROTOCOL} + CLOSED, "
                                f"got {hexFormat(got + extra)}, closed={closed}")
            if markerSync(sub, b"pb14/marker"):
                failures.append("PB-14: the unknown alias was delivered")
        finally:
            client.close()
            sub.close()
        self.alive(failures, "PB-14 reconnect")
        self.reportFailures(failures)

    def test_publishProperties(self) -> None:
        """PB-15: bad PUBLISH properties: 0x82, or 0x81 when they cannot be parsed."""
        self.checkCases([
            *pb15Rows(),
            row("PB-15 02 01 01 (valid)", publish(b"pb15", b"x", 1, 1, props="02 01 01"),
                "40 03 00 01 10", closed=False),
        ])


class MaximumPacketSizeTests(CatalogueMixin, SynchronousTestCase):
    """
    PB-12 (and CN-17's oversize will) with C{--max-packet-size 40}.
    """

    brokerOptions = (*MAIN_OPTIONS, "--max-packet-size", "40")

    def test_advertisedAndEnforced(self) -> None:
        """PB-12: CONNACK carries 27 00 00 00 28; a 72-byte PUBLISH gets 0x95."""
        failures: list[str] = []
        client = RawClient(self.port)
        try:
            client.send(C5)
            props = connackProperties(readPacket(client))
            if props is None or props.get(0x27) != 40:
                failures.append(f"PB-12: CONNACK without Maximum Packet Size 40: {props}")
        finally:
            client.close()
        self.reportFailures(failures)
        big = publish(b"12/max/packet/size/broker/test/topic", b"x" * 31)
        assert len(big) == 72
        self.checkCases([
            row("PB-12 72 bytes", big, "E0 01 95"),
            row("PB-12 41 bytes", publish(b"t", b"x" * 35), "E0 01 95"),
            row("PB-12 40 bytes (at the limit)", publish(b"t", b"x" * 34), closed=False),
            # Declared 200 bytes, only the start sent: refused on the length.
            row("PB-12 length only", bytes.fromhex("30 C8 01 00 01 74"), "E0 01 95"),
        ])

    def test_willOverMaxPacketSize(self) -> None:
        """CN-17: a CONNECT whose will payload exceeds 40 bytes: CONNACK 0x95 or CLOSED."""
        failures: list[str] = []
        sub = openClient(self.port, connect4(b"cn17-sub"))
        sub.send(subscribe(1, [(b"w/#", 0)], v5=False))
        readPacket(sub)
        connectBytes = connect5(b"w", 0x06, tail=willTail(b"w/t", b"y" * 64))
        client = RawClient(self.port)
        try:
            client.send(connectBytes)
            closed, got = waitClosed(client)
            if got not in (b"", bytes.fromhex("20 03 00 95 00")) or not closed:
                failures.append(f"CN-17 will payload 64 > 40: expected CONNACK 0x95 or a bare "
                                f"close, got {hexFormat(got) or '(none)'}, closed={closed}")
        finally:
            client.close()
        wills = markerSync(sub, b"w/marker")
        if wills:
            failures.append(f"CN-17: the oversize will was published: "
                            f"{[hexFormat(w) for w in wills]}")
        sub.close()
        self.alive(failures, "CN-17 oversize will")
        self.reportFailures(failures)


class CapabilityTests(CatalogueMixin, SynchronousTestCase):
    """
    PB-16 with C{--retain-available no --maximum-qos 1}.
    """

    brokerOptions = (*MAIN_OPTIONS, "--retain-available", "no", "--maximum-qos", "1")

    def test_retainAndQosNotAvailable(self) -> None:
        """PB-16: CONNACK has 24 01 and 25 00; retained gets 0x9A, QoS 2 gets 0x9B."""
        failures: list[str] = []
        client = RawClient(self.port)
        try:
            client.send(C5)
            props = connackProperties(readPacket(client))
            if props is None or props.get(0x24) != 1 or props.get(0x25) != 0:
                failures.append(f"PB-16: CONNACK without Maximum QoS 1 and Retain Available 0: "
                                f"{props}")
        finally:
            client.close()
        self.reportFailures(failures)
        self.checkCases([
            row("PB-16 retained QoS 0", publish(b"pb16", b"r", retain=True), "E0 01 9A"),
            row("PB-16 retained QoS 1", publish(b"pb16", b"r", 1, 1, retain=True), "E0 01 9A"),
            row("PB-16 QoS 2", publish(b"pb16", b"q", 2, 1), "E0 01 9B"),
            row("PB-16 QoS 1 (allowed)", publish(b"pb16", b"q", 1, 1), "40 03 00 01 10",
                closed=False),
            # docs/mqtt5.md "Will": a will above the maximum QoS 0x9B, a
            # retained will 0x9A [MQTT-3.2.2-13].
            pre("PB-16 will QoS 2", connect5(b"pb16w", 0x16, tail=willTail(b"w", b"x")),
                "20 03 00 9B 00"),
            pre("PB-16 will retain", connect5(b"pb16w", 0x26, tail=willTail(b"w", b"x")),
                "20 03 00 9A 00"),
            # A subscription is granted at most the maximum QoS.
            row("PB-16 SUBSCRIBE QoS 2", subscribe(1, [(b"pb16", 2)]), "90 04 00 01 00 01",
                closed=False),
        ])


# -- 6.4 SUBSCRIBE and 6.5 DISCONNECT, AUTH ----------------------------------------------------


class SubscribeAndDisconnectV5Tests(CatalogueMixin, SynchronousTestCase):
    """
    Catalogue sections 6.4 and 6.5, v5 rows: shared subscriptions,
    subscription identifiers, DISCONNECT and wills, AUTH.
    """

    def test_sharedSubscriptions(self) -> None:
        """SB-09: No Local on $share gets 0x82; invalid share names SUBACK 0x8F."""
        self.checkCases([
            *sb09Rows(),
            row("SB-09 $share/p/t (valid)", subscribe(0x1234, [(b"$share/p/t", 0)]),
                "90 04 12 34 00 00", closed=False),
        ])

    def test_subscriptionIdentifiers(self) -> None:
        """SB-10: identifier 0 or duplicated 0x82; bad varints 0x81; 268,435,455 accepted."""
        self.checkCases(sb10Rows())
        failures: list[str] = []
        sub = openClient(self.port, connect5(b"sb10-sub"))
        pub = openClient(self.port, connect5(b"sb10-pub"))
        try:
            sub.send(subscribe(7, [(b"sb10/t", 0)], props="05 0B FF FF FF 7F"))
            suback = readPacket(sub)
            if suback != bytes.fromhex("90 04 00 07 00 00"):
                failures.append(f"SB-10 max identifier: SUBACK {hexFormat(suback)}")
            pub.send(publish(b"sb10/t", b"x"))
            got = readPacket(sub)
            expected = publish(b"sb10/t", b"x", props="05 0B FF FF FF 7F")
            if got != expected:
                failures.append(f"SB-10 max identifier: expected {hexFormat(expected)}, "
                                f"got {hexFormat(got)}")
            if stillOpen(sub) != PINGRESP:
                failures.append("SB-10 max identifier: subscriber closed")
        finally:
            sub.close()
            pub.close()
        self.alive(failures, "SB-10 max identifier")
        self.reportFailures(failures)

    def test_disconnectAndWill(self) -> None:
        """AK-07: DISCONNECT 0x04 publishes the will; bad DISCONNECTs get 0x81/0x82."""
        will = willTail(b"ak7/w", b"bye")
        withWill = connect5(b"ak7", 0x06, tail=will)
        expiryZero = connect5(b"ak7", 0x06, props="05 11 00 00 00 00", tail=will)
        rows = [
            (row("AK-07 E0 01 04", "E0 01 04", connect=withWill), True),
            (row("AK-07 E0 00", "E0 00", connect=withWill), False),
            (row("AK-07 E0 02 00 00", "E0 02 00 00", connect=withWill), False),
        ]
        # A protocol error publishes the will (docs/mqtt5.md, "Will").
        rows += [(case, True) for case in ak07ErrorRows(withWill)[:1]]
        rows += [(case, True) for case in ak07ErrorRows(expiryZero)[1:]]
        failures: list[str] = []
        sub = openClient(self.port, connect4(b"ak7-sub"))
        sub.send(subscribe(1, [(b"ak7/#", 0)], v5=False))
        readPacket(sub)
        try:
            for case, willExpected in rows:
                failures += [f"{case.rowId}: {p}" for p in runCase(self.port, case)]
                wills = markerSync(sub, b"ak7/marker")
                expected = [publish(b"ak7/w", b"bye", v5=False)] if willExpected else []
                if wills != expected:
                    failures.append(f"{case.rowId}: will expected={willExpected}, got "
                                    f"{[hexFormat(w) for w in wills]}")
        finally:
            sub.close()
        self.reportFailures(failures)

    def test_auth(self) -> None:
        """AK-08: AUTH without a method gets 0x82; an unknown method CONNACK 0x8C."""
        self.checkCases(ak08Rows())


# -- the same rows with Reason Strings ----------------------------------------------------------


def _codes(item: Any) -> tuple[str, Any]:
    """
    A decoded packet's kind and reason code(s).
    """
    codes = item.reasonCodes if isinstance(item, Suback) else getattr(item, "reasonCode", None)
    return type(item).__name__, codes


class ReasonStringTests(CatalogueMixin, SynchronousTestCase):
    """
    The failure rows above against a broker that sends Reason Strings (the
    default): the replies decode to the same packets and reason codes, and
    the DISCONNECTs carry a Reason String (docs/mqtt5.md).
    """

    reasonStrings = True

    def test_sameReasonCodes(self) -> None:
        """The failure rows with Reason Strings decode to the same reason codes."""
        cases = (cn15Rows() + cn16Rows() + cn17Rows() + pb11Rows() + pb14Rows() + pb15Rows()
                 + sb09Rows() + sb10Rows() + ak07ErrorRows(connect5(b"rs", 0x02)) + ak08Rows())
        failures: list[str] = []
        for case in cases:
            for problem in self._runDecoded(case):
                failures.append(f"{case.rowId}: {problem}")
        self.reportFailures(failures)

    def _runDecoded(self, case: Case) -> list[str]:
        expected = [_codes(p) for p in decodeFromServer(case.reply)]
        client = RawClient(self.port, 2.0)
        problems = []
        try:
            if case.connect is not None:
                client.send(case.connect)
                if not isV5Connack(readPacket(client)):
                    return ["CONNECT refused"]
            client.send(case.send)
            if case.closed:
                closed, data = waitClosed(client)
                if not closed:
                    problems.append("not CLOSED within 2 s")
            else:
                data = b"".join(readPacket(client) for _ in expected)
                if stillOpen(client) != PINGRESP:
                    problems.append("expected to stay open")
        finally:
            client.close()
        try:
            packets = decodeFromServer(data)
        except ProtocolError as e:
            return [*problems, f"reply {hexFormat(data)} does not decode: {e}"]
        if [_codes(p) for p in packets] != expected:
            problems.append(f"expected {expected}, got {[_codes(p) for p in packets]} "
                            f"({hexFormat(data)})")
        for item in packets:
            if isinstance(item, Disconnect) and 0x1F not in item.properties:
                problems.append(f"DISCONNECT 0x{item.reasonCode:02X} without a Reason String")
        if not isAlive(self.port):
            problems.append("ALIVE sentinel failed afterwards")
        return problems

