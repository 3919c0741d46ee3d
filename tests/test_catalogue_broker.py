"""
Reliability catalogue conformance (C{/work/shared/reliability-catalogue.md}
sections 6.1 to 6.5): byte-exact tables of bad and odd input that depend on
connection state, replayed against the real broker on loopback.

Every table row carries its catalogue id.  Each case opens a fresh raw
connection, sends the catalogue's CONNECT (C{C4} / C{C5}, unless the row is
about the CONNECT itself), sends the row's bytes and checks three things:
the exact reply bytes, close versus stay-open (CLOSED within 2 s, or a
PINGREQ still gets C{D0 00}), and that the ALIVE sentinel is still served.
Failures are collected per table so that one run lists every failing row.

The reply bytes are mqttd's own choices (DESIGN.md section 4): v5 clients
get C{E0 01 rc} after their CONNACK, 3.1.x clients a bare close; a v5
CONNECT that breaks a rule after its level byte gets C{20 03 00 rc 00}.
These are the compact forms, so the broker runs with C{--reason-strings no}
(by default v5 failure replies carry a Reason String property).

Not here: FR-11 (needs authentication, which the broker cannot be given
on the command line yet), and the load parts of PB-10, SB-11 and AK-06
(see C{test_catalogue_resources.py} for section 6.7).
"""

from __future__ import annotations

import random
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from brokerprocess import C4, C5, CONNACK_OK, BrokerProcess, RawClient, isAlive
from twisted.trial.unittest import SynchronousTestCase

PINGREQ = bytes.fromhex("C0 00")
PINGRESP = bytes.fromhex("D0 00")


# -- building packets ----------------------------------------------------------


def varint(n: int) -> bytes:
    """
    Encode a Variable Byte Integer (remaining length).
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


def connect(
    clientId: bytes = b"p", level: int = 4, flags: int = 0x02, keepAlive: int = 10,
    props: bytes = b"\x00", tail: bytes = b"", rawId: bytes | None = None,
) -> bytes:
    """
    A CONNECT with protocol name C{MQTT} (C{props} only for level 5;
    C{tail} is appended after the client id: will, user name, password).
    """
    body = mqttString(b"MQTT") + bytes((level, flags)) + struct.pack("!H", keepAlive)
    if level == 5:
        body += props
    body += rawId if rawId is not None else mqttString(clientId)
    return packet(0x10, body + tail)


def publish(
    topic: bytes, payload: bytes = b"", qos: int = 0, mid: int = 0, v5: bool = False,
    dup: bool = False, retain: bool = False, props: bytes = b"\x00",
) -> bytes:
    """
    A PUBLISH (packet id only for QoS > 0, property block only for v5).
    """
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = mqttString(topic)
    if qos:
        body += struct.pack("!H", mid)
    if v5:
        body += props
    return packet(first, body + payload)


def subscribe(mid: int, filters: Sequence[tuple[bytes, int]], v5: bool = False) -> bytes:
    """
    A SUBSCRIBE of (filter, options byte) pairs.
    """
    body = struct.pack("!H", mid) + (b"\x00" if v5 else b"")
    for topicFilter, options in filters:
        body += mqttString(topicFilter) + bytes((options,))
    return packet(0x82, body)


def unsubscribe(mid: int, filters: Sequence[bytes], v5: bool = False) -> bytes:
    """
    An UNSUBSCRIBE.
    """
    body = struct.pack("!H", mid) + (b"\x00" if v5 else b"")
    for topicFilter in filters:
        body += mqttString(topicFilter)
    return packet(0xA2, body)


def suback(mid: int, codes: Sequence[int], v5: bool = False) -> bytes:
    """
    The SUBACK the broker should send.
    """
    return packet(0x90, struct.pack("!H", mid) + (b"\x00" if v5 else b"") + bytes(codes))


def hexFormat(data: bytes, limit: int = 48) -> str:
    """
    Bytes as spaced hex for failure messages (shortened if long).
    """
    text = data[:limit].hex(" ").upper()
    return text + (f" ...({len(data)} bytes)" if len(data) > limit else "")


# -- reading ---------------------------------------------------------------------


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


def headerLength(data: bytes) -> int:
    """
    The size of a packet's fixed header.
    """
    i = 1
    while i < len(data) and data[i] & 0x80:
        i += 1
    return i + 1


def publishParts(data: bytes) -> tuple[bytes, int | None, bytes]:
    """
    Split a PUBLISH from the broker into (topic, packet id, rest after the
    packet id).
    """
    pos = headerLength(data)
    tlen = struct.unpack("!H", data[pos : pos + 2])[0]
    topic = data[pos + 2 : pos + 2 + tlen]
    pos += 2 + tlen
    mid = None
    if data[0] & 0x06:
        mid = struct.unpack("!H", data[pos : pos + 2])[0]
        pos += 2
    return topic, mid, data[pos:]


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


def isV5Connack(data: bytes) -> bool:
    """
    A successful v5 CONNACK: byte 1 is the remaining length, session present
    0, reason 0, and the property block fills the rest.
    """
    return (
        len(data) >= 5
        and data[0] == 0x20
        and data[1] == len(data) - 2
        and data[2] == 0x00
        and data[3] == 0x00
        and data[4] == len(data) - 5
    )


_FIXED_SIZE_PROPERTIES = {
    0x11: 4, 0x13: 2, 0x21: 2, 0x22: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1,
}
_STRING_PROPERTIES = {0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}


def connackProperties(data: bytes) -> dict[int, bytes] | None:
    """
    The properties of a successful v5 CONNACK (identifier to raw value,
    strings without their length prefix), or L{None} if it is not one.
    """
    if not isV5Connack(data):
        return None
    props: dict[int, bytes] = {}
    pos = 5
    while pos < len(data):
        ident = data[pos]
        pos += 1
        if ident in _FIXED_SIZE_PROPERTIES:
            size = _FIXED_SIZE_PROPERTIES[ident]
            props[ident] = data[pos : pos + size]
            pos += size
        elif ident in _STRING_PROPERTIES:
            size = struct.unpack("!H", data[pos : pos + 2])[0]
            props[ident] = data[pos + 2 : pos + 2 + size]
            pos += 2 + size
        else:
            return None
    return props if pos == len(data) else None


def connackWith(ident: int, check: Callable[[bytes], bool]) -> Callable[[bytes], bool]:
    """
    A check for a successful v5 CONNACK with property C{ident} whose raw
    value passes C{check}.
    """

    def accept(data: bytes) -> bool:
        props = connackProperties(data)
        return props is not None and ident in props and check(props[ident])

    return accept


#: A v5 CONNACK with a non-empty Assigned Client Identifier [MQTT-3.1.3-7].
assignedId = connackWith(0x12, lambda value: len(value) > 0)


def openClient(port: int, connectBytes: bytes = C4, timeout: float = 2.0) -> RawClient:
    """
    Connect and check the CONNACK (exact for 3.1.x, L{isV5Connack} for v5).
    """
    client = RawClient(port, timeout)
    client.send(connectBytes)
    connack = readPacket(client)
    ok = isV5Connack(connack) if connectBytes[8:9] == b"\x05" else connack == CONNACK_OK
    if not ok:
        client.close()
        raise AssertionError(f"CONNACK refused or wrong: {hexFormat(connack)}")
    return client


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


def markerSync(client: RawClient, topic: bytes) -> list[bytes]:
    """
    Publish a QoS 0 marker to C{topic} (which C{client} subscribes to) and
    return every packet received before the marker came back, so that a
    negative check ("nothing delivered") does not need a sleep.
    """
    marker = publish(topic, b"marker")
    client.send(marker)
    packets: list[bytes] = []
    while True:
        data = readPacket(client)
        if not data or data == marker:
            return packets
        packets.append(data)


# -- tables ----------------------------------------------------------------------


class Case(NamedTuple):
    """
    One catalogue row: after C{connect} (L{None}: nothing first), send
    C{send}; expect exactly C{reply} (after a first packet that C{first}
    accepts, if given), then CLOSED within C{closeWithin} if C{closed}, else
    a PINGRESP.
    """

    rowId: str
    send: bytes
    reply: bytes
    closed: bool
    connect: bytes | None = C4
    first: Callable[[bytes], bool] | None = None
    closeWithin: float = 2.0


def v3(rowId: str, send: str | bytes, reply: str | bytes = b"", closed: bool = True,
       **kw: object) -> Case:
    """
    A row after C{C4} (hex strings are parsed).
    """
    return _case(rowId + " v3", send, reply, closed, C4, **kw)


def v5(rowId: str, send: str | bytes, reply: str | bytes = b"", closed: bool = True,
       **kw: object) -> Case:
    """
    A row after C{C5}.
    """
    return _case(rowId + " v5", send, reply, closed, C5, **kw)


def pre(rowId: str, send: str | bytes, reply: str | bytes = b"", closed: bool = True,
        **kw: object) -> Case:
    """
    A row with no CONNECT first (the row's bytes are the first bytes).
    """
    return _case(rowId, send, reply, closed, None, **kw)


def _case(rowId: str, send: str | bytes, reply: str | bytes, closed: bool,
          connectBytes: bytes | None, **kw: object) -> Case:
    if isinstance(send, str):
        send = bytes.fromhex(send)
    if isinstance(reply, str):
        reply = bytes.fromhex(reply)
    return Case(rowId, send, reply, closed, connectBytes, **kw)  # type: ignore[arg-type]


V5_MALFORMED = "E0 01 81"
V5_PROTOCOL = "E0 01 82"
#: mqttd's choice where the catalogue allows 0x81 or 0x82: a wildcard in a
#: topic name and an empty topic filter parse, but the data is not allowed,
#: which MQTT 5.0 section 1.2 calls a Protocol Error (commit 5a2b7e4).
V5_WILDCARD_TOPIC = V5_PROTOCOL
V5_EMPTY_FILTER = V5_PROTOCOL


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
            ok = isV5Connack(connack) if case.connect[8] == 5 else connack == CONNACK_OK
            if not ok:
                return [f"CONNECT refused: {hexFormat(connack)}"]
        try:
            client.send(case.send)
        except OSError:
            pass  # closed early: what was read below decides
        if case.first is not None:
            data = readPacket(client)
            if not case.first(data):
                problems.append(f"unexpected first reply {hexFormat(data)}")
        got = client.recvExactly(len(case.reply)) if case.reply else b""
        if got != case.reply:
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


class BrokerTestMixin:
    """
    One broker per test class, started with C{--reason-strings no} and
    C{brokerOptions}; every case is followed by the ALIVE check; no
    traceback may appear in its log.
    """

    brokerOptions: tuple[str, ...] = ()
    broker: BrokerProcess

    @classmethod
    def setUpClass(cls) -> None:
        # The catalogue pins the compact v5 failure replies (E0 01 rc,
        # 20 03 00 rc 00): Reason Strings are off here and tested in
        # test_broker_protocol.ReasonStringTests.
        cls.broker = BrokerProcess("--reason-strings", "no", *cls.brokerOptions)

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


# -- 6.1 framing and fixed header ------------------------------------------------

_PUBLISH_TOPIC = "30 0E 00 05 74 6F 70 69 63 70 61 79 6C 6F 61 64"

FR_BAD_FLAGS = (
    [f"{b:02X} 02 00 01" for b in (0x63, 0x64, 0x66, 0x6A)]
    + [f"{b:02X} 06 12 34 00 01 70 00" for b in (0x80, 0x83, 0x84, 0x86, 0x8A)]
    + [f"{b:02X} 05 12 34 00 01 70" for b in (0xA0, 0xA3, 0xA4, 0xA6, 0xAA)]
    + [f"{b:02X} 00" for b in (0xC1, 0xC2, 0xC4, 0xC8)]
    + [f"{b:02X} 00" for b in (0xE1, 0xE2, 0xE4, 0xE8)]
    + [f"{b:02X} 02 00 01" for b in (0x41, 0x42, 0x44, 0x48)]
    + ["51 02 00 01", "71 02 00 01"]
)


class FramingTests(BrokerTestMixin, SynchronousTestCase):
    """
    Catalogue section 6.1 (FR): packets before CONNECT, reserved types, bad
    flags, wrong lengths, truncated bodies, pipelining, non-MQTT bytes.
    """

    brokerOptions = ("--connect-timeout", "2")

    def test_packetsBeforeConnect(self) -> None:
        """FR-04: any packet but CONNECT first is CLOSED with zero bytes."""
        self.checkCases([
            pre("FR-04", "C0 00"),
            pre("FR-04", "E0 00"),
            pre("FR-04", "40 02 00 01"),
            pre("FR-04", "62 02 00 01"),
            pre("FR-04", "82 06 12 34 00 01 70 00"),
            pre("FR-04", _PUBLISH_TOPIC),
        ])

    def test_reservedPacketTypes(self) -> None:
        """FR-05: packet types 0 and 15 (v3) close; v5 type 0 gets 0x82."""
        self.checkCases([
            v3("FR-05", "00 00"),
            v3("FR-05", "00 01 00"),
            v3("FR-05", "F0 00"),
            v5("FR-05", "00 00", V5_PROTOCOL),
            v5("FR-05", "00 01 00", V5_PROTOCOL),
        ])

    def test_badFixedHeaderFlags(self) -> None:
        """FR-06: invalid fixed-header flags close; v5 gets 0x81."""
        cases = []
        for hexBytes in FR_BAD_FLAGS:
            cases.append(v3("FR-06", hexBytes))
            cases.append(v5("FR-06", hexBytes, V5_MALFORMED))
        self.checkCases(cases)

    def test_wrongFixedLengths(self) -> None:
        """FR-07: wrong remaining lengths close; v5 gets 0x81."""
        self.checkCases([
            v3("FR-07", "C0 01 00"),
            v5("FR-07", "C0 01 00", V5_MALFORMED),
            v3("FR-07", "E0 01 00"),
            v3("FR-07", "40 03 00 01 00"),
            v3("FR-07", "40 00"),
            v5("FR-07", "40 00", V5_MALFORMED),
            v3("FR-07", "40 01 01"),
            v5("FR-07", "40 01 01", V5_MALFORMED),
            v3("FR-07", "62 00"),
            v5("FR-07", "62 00", V5_MALFORMED),
            v3("FR-07", "62 01 01"),
            v5("FR-07", "62 01 01", V5_MALFORMED),
            v5("FR-07", "40 05 00 01 00 00 00", V5_MALFORMED),
        ])

    def test_truncatedBodies(self) -> None:
        """FR-08: truncated bodies close (v5 0x81), other clients ALIVE."""
        self.checkCases([
            v5("FR-08", "30 00", V5_MALFORMED),
            v5("FR-08", "30 02 00 00", V5_MALFORMED),
            v5("FR-08", "30 03 00 01 61", V5_MALFORMED),
            v5("FR-08", "32 03 00 01 61", V5_MALFORMED),
            v5("FR-08", "32 05 00 01 61 00 01", V5_MALFORMED),
            v3("FR-08", "30 00"),
            v3("FR-08", "32 03 00 01 61"),
            v3("FR-08", "82 05 12 34 00 01 70"),
            v5("FR-08", "82 05 12 34 00 01 70", V5_MALFORMED),
            v3("FR-08", "30 05 00 FF 61 62 63"),
            v5("FR-08", "30 05 00 FF 61 62 63", V5_MALFORMED),
        ])

    def test_pipelinedBeforeConnack(self) -> None:
        """FR-10: CONNECT+SUBSCRIBE+PUBLISH in one write, answered in order."""
        failures: list[str] = []
        client = RawClient(self.port)
        try:
            client.send(C4 + bytes.fromhex("82 06 00 01 00 01 70 01")
                        + bytes.fromhex("32 0C 00 01 70 00 02 6D 65 73 73 61 67 65"))
            got = [readPacket(client) for _ in range(4)]
            expected = [CONNACK_OK, bytes.fromhex("90 03 00 01 01"),
                        bytes.fromhex("40 02 00 02")]
            if got[:3] != expected:
                failures.append(
                    "FR-10: expected CONNACK, SUBACK 90 03 00 01 01, PUBACK 40 02 00 02 "
                    f"then the PUBLISH; got {[hexFormat(p) for p in got]}"
                )
            publishes = [p for p in got if p[:1] == b"\x32"]
            if len(publishes) != 1:
                failures.append(f"FR-10: expected one own PUBLISH, got {len(publishes)}")
            else:
                topic, mid, rest = publishParts(publishes[0])
                if (topic, rest) != (b"p", b"message") or not mid:
                    failures.append(f"FR-10: wrong own PUBLISH {hexFormat(publishes[0])}")
            if stillOpen(client) != PINGRESP:
                failures.append("FR-10: connection not open afterwards")
        finally:
            client.close()
        self.alive(failures, "FR-10")
        self.reportFailures(failures)

    def test_nonMqttBytes(self) -> None:
        """FR-12: HTTP, a TLS ClientHello, random bytes, FIN and RST are CLOSED."""
        rng = random.Random(12)
        junk = bytes(rng.randrange(256) for _ in range(1024))
        junk = b"\x47" + junk[1:]  # never a CONNECT first byte
        clientHello = (bytes.fromhex("16 03 01 00 31 01 00 00 2D 03 03")
                       + bytes(range(32)) + bytes.fromhex("00 00 02 00 2F 01 00"))
        cases = [
            pre("FR-12 HTTP", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            pre("FR-12 TLS ClientHello", clientHello),
            pre("FR-12 random 1 KiB", junk),
        ]
        # These must close at once, not at the 2 s connect timeout.
        cases = [c._replace(closeWithin=1.0) for c in cases]
        self.checkCases(cases)
        failures: list[str] = []
        # FIN after one byte.
        client = RawClient(self.port)
        try:
            client.send(b"\x10")
            client.sock.shutdown(socket.SHUT_WR)
            closed, extra = waitClosed(client, 2.0)
            if not closed or extra:
                failures.append(f"FR-12 FIN: closed={closed}, bytes {hexFormat(extra)}")
        finally:
            client.close()
        self.alive(failures, "FR-12 FIN")
        # RST in the middle of a packet.
        client = RawClient(self.port)
        client.send(C4[:8])
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        self.alive(failures, "FR-12 RST")
        self.reportFailures(failures)


# -- 6.2 CONNECT ---------------------------------------------------------------------

_WILL_V3 = mqttString(b"w/t") + mqttString(b"")


def _v5Connect(flags: int = 0x02, props: bytes = b"\x00", tail: bytes = b"",
               keepAlive: int = 10, clientId: bytes = b"p") -> bytes:
    return connect(clientId, 5, flags, keepAlive, props, tail)


class ConnectTests(BrokerTestMixin, SynchronousTestCase):
    """
    Catalogue section 6.2 (CN): protocol name and level, flags, client ids,
    keep-alive, second CONNECT, oversize CONNECT, v5 CONNECT properties.
    """

    brokerOptions = ("--connect-timeout", "2", "--max-keepalive", "100")

    def test_protocolNameAndLevel(self) -> None:
        """CN-01..CN-03: wrong name closes, wrong level 20 02 00 01, 3.1 works."""
        self.checkCases([
            pre("CN-01 MQTU", "10 0D 00 04 4D 51 54 55 04 02 00 0A 00 01 70"),
            pre("CN-01 MQT", "10 0C 00 03 4D 51 54 04 02 00 0A 00 01 70"),
            pre("CN-01 empty name", "10 09 00 00 04 02 00 0A 00 01 70"),
            pre("CN-02 level 6", "10 0D 00 04 4D 51 54 54 06 00 00 0A 00 01 70", "20 02 00 01"),
            pre("CN-02 level 2", "10 0D 00 04 4D 51 54 54 02 02 00 0A 00 01 70", "20 02 00 01"),
            pre("CN-02 level 0", "10 0D 00 04 4D 51 54 54 00 02 00 0A 00 01 70", "20 02 00 01"),
            pre("CN-02 MQIsdp level 4",
                "10 0F 00 06 4D 51 49 73 64 70 04 02 00 0A 00 01 70", "20 02 00 01"),
            pre("CN-03 3.1", "10 0F 00 06 4D 51 49 73 64 70 03 02 00 0A 00 01 70",
                "20 02 00 00", closed=False),
            pre("CN-03 3.1 empty id", "10 0E 00 06 4D 51 49 73 64 70 03 02 00 0A 00 00",
                "20 02 00 02"),
        ])

    def test_connectFlags(self) -> None:
        """CN-04..CN-06: reserved flag, will and user name/password flags."""
        self.checkCases([
            pre("CN-04 flags 01 v3", "10 0D 00 04 4D 51 54 54 04 01 00 0A 00 01 70"),
            pre("CN-04 flags 03 v3", "10 0D 00 04 4D 51 54 54 04 03 00 0A 00 01 70"),
            pre("CN-04 flags 03 v5", _v5Connect(0x03), "20 03 00 81 00"),
            pre("CN-05 flags 0A v3", connect(flags=0x0A)),
            pre("CN-05 flags 12 v3", connect(flags=0x12)),
            pre("CN-05 flags 22 v3", connect(flags=0x22)),
            pre("CN-05 flags 06 no will v3", connect(flags=0x06)),
            pre("CN-05 flags 1E will QoS 3 v3", connect(flags=0x1E, tail=_WILL_V3)),
            pre("CN-05 flags 0A v5", _v5Connect(0x0A), "20 03 00 82 00"),
            pre("CN-05 flags 12 v5", _v5Connect(0x12), "20 03 00 82 00"),
            pre("CN-05 flags 22 v5", _v5Connect(0x22), "20 03 00 82 00"),
            pre("CN-05 flags 06 no will v5", _v5Connect(0x06), "20 03 00 81 00"),
            pre("CN-05 flags 1E v5", _v5Connect(0x1E, tail=b"\x00" + _WILL_V3),
                "20 03 00 81 00"),
            pre("CN-06 flags 82 no user name v3", connect(flags=0x82)),
            pre("CN-06 user name bytes, flag 0 v3",
                "10 10 00 04 4D 51 54 54 04 02 00 0A 00 01 70 00 01 70"),
            pre("CN-06 flags 42 v3", connect(flags=0x42, tail=mqttString(b"pw"))),
            pre("CN-06 flags C2 no password v5",
                "10 11 00 04 4D 51 54 54 05 C2 00 0A 00 00 01 70 00 01 75", "20 03 00 81 00"),
            pre("CN-06 flags 42 with password v5", _v5Connect(0x42, tail=mqttString(b"pw")),
                closed=False, first=isV5Connack),
        ])

    def test_badStrings(self) -> None:
        """CN-07: ill-formed or forbidden UTF-8 in client id, user name, will topic."""
        ids = {
            "NUL": "00 05 74 6F 70 00 00",
            "surrogate": "00 03 ED A0 80",
            "overlong NUL": "00 02 C0 80",
            "U+0001": "00 01 01",
            "U+001F": "00 01 1F",
            "U+007F": "00 01 7F",
            "U+009F": "00 02 C2 9F",
            "U+FFFF": "00 03 EF BF BF",
        }
        cases = []
        for name, raw in ids.items():
            rawId = bytes.fromhex(raw)
            cases.append(pre(f"CN-07 id {name} v3", connect(rawId=rawId)))
            cases.append(pre(f"CN-07 id {name} v5", connect(level=5, rawId=rawId),
                             "20 03 00 81 00"))
        for name in ("NUL", "surrogate", "overlong NUL"):
            rawString = bytes.fromhex(ids[name])
            cases.append(pre(f"CN-07 user name {name} v3", connect(flags=0x82, tail=rawString)))
            cases.append(pre(f"CN-07 user name {name} v5",
                             _v5Connect(0x82, tail=rawString), "20 03 00 81 00"))
            cases.append(pre(f"CN-07 will topic {name} v3",
                             connect(flags=0x06, tail=rawString + mqttString(b""))))
            cases.append(pre(f"CN-07 will topic {name} v5",
                             _v5Connect(0x06, tail=b"\x00" + rawString + mqttString(b"")),
                             "20 03 00 81 00"))
        self.checkCases(cases)

    def test_clientIds(self) -> None:
        """CN-08, CN-09: empty and missing client ids."""
        self.checkCases([
            pre("CN-08 empty id clean v3", "10 0C 00 04 4D 51 54 54 04 02 00 0A 00 00",
                "20 02 00 00", closed=False),
            pre("CN-08 empty id not clean v3", "10 0C 00 04 4D 51 54 54 04 00 00 0A 00 00",
                "20 02 00 02"),
            pre("CN-08 empty id v5", "10 0D 00 04 4D 51 54 54 05 02 00 0A 00 00 00",
                closed=False, first=assignedId),
            pre("CN-09 id missing", "10 0A 00 04 4D 51 54 54 04 02 00 0A"),
            # The PINGREQ after the bad CONNECT must never be answered.
            pre("CN-09 id missing + PINGREQ", "10 0A 00 04 4D 51 54 54 04 02 00 0A C0 00"),
            pre("CN-09 NanoMQ sample",
                "10 07 00 04 4D 51 54 54 04 C2 00 3C 00 0B 61 62 63 64 65 66 67 68 69 6A 6B "
                "C0 00"),
        ])

    def test_keepAliveAboveMaximum(self) -> None:
        """CN-10: keep-alive 101 above --max-keepalive 100."""
        self.checkCases([
            pre("CN-10 keepalive 101 v3", connect(keepAlive=101), "20 02 00 02"),
            pre("CN-10 keepalive 101 v5", _v5Connect(keepAlive=101), closed=False,
                first=connackWith(0x13, lambda v: v == b"\x00\x64")),
            pre("CN-10 keepalive 100 v3", connect(keepAlive=100), CONNACK_OK, closed=False),
        ])

    def test_keepAliveExpiry(self) -> None:
        """CN-10: silent keep-alive 2 closes in [2.9, 4.5] s with the will; pingers stay."""
        failures: list[str] = []
        port = self.port
        sub = openClient(port, connect(b"ka-sub"))
        sub.send(subscribe(1, [(b"ka/#", 0)]))
        if readPacket(sub) != suback(1, [0]):
            failures.append("CN-10: subscriber SUBACK wrong")
        will3 = mqttString(b"ka/v3") + mqttString(b"gone3")
        will5 = b"\x00" + mqttString(b"ka/v5") + mqttString(b"gone5")
        silent3 = RawClient(port)
        silent3.send(connect(b"ka3", flags=0x06, keepAlive=2, tail=will3))
        silent5 = RawClient(port)
        silent5.send(_v5Connect(0x06, keepAlive=2, tail=will5, clientId=b"ka5"))
        connacked = {}
        for name, client in (("v3", silent3), ("v5", silent5)):
            data = readPacket(client)
            connacked[name] = time.monotonic()
            if not (data == CONNACK_OK if name == "v3" else isV5Connack(data)):
                failures.append(f"CN-10 silent {name}: CONNACK {hexFormat(data)}")
        pinger = openClient(port, connect(b"ka-ping", keepAlive=2))
        idle = openClient(port, connect(b"ka-zero", keepAlive=0))
        received = {"v3": b"", "v5": b""}
        closedAt: dict[str, float] = {}
        start = time.monotonic()
        nextPing = start + 1.5
        sockets = {silent3.sock: "v3", silent5.sock: "v5"}
        while time.monotonic() - start < 6.0:
            open_ = [s for s, name in sockets.items() if name not in closedAt]
            timeout = max(0.0, min(nextPing - time.monotonic(), 0.1))
            ready = select.select(open_, [], [], timeout)[0] if open_ else []
            if not open_:
                time.sleep(timeout)
            for s in ready:
                name = sockets[s]
                try:
                    chunk = s.recv(4096)
                except OSError:
                    chunk = b""
                if chunk:
                    received[name] += chunk
                else:
                    closedAt[name] = time.monotonic()
            if time.monotonic() >= nextPing:
                nextPing += 1.5
                if stillOpen(pinger) != PINGRESP:
                    failures.append("CN-10: the pinging client was dropped")
                    break
        for name, expected in (("v3", b""), ("v5", bytes.fromhex("E0 01 8D"))):
            if name not in closedAt:
                failures.append(f"CN-10 silent {name}: not closed within 6 s")
                continue
            elapsed = closedAt[name] - connacked[name]
            if not 2.9 <= elapsed <= 4.5:
                failures.append(f"CN-10 silent {name}: closed after {elapsed:.2f} s, "
                                "not in [2.9, 4.5]")
            if received[name] != expected:
                failures.append(f"CN-10 silent {name}: expected {hexFormat(expected) or '(none)'}"
                                f" before the close, got {hexFormat(received[name])}")
        if stillOpen(idle) != PINGRESP:
            failures.append("CN-10 keepalive 0: dropped")
        wills = markerSync(sub, b"ka/marker")
        expectedWills = {publish(b"ka/v3", b"gone3"), publish(b"ka/v5", b"gone5")}
        if set(wills) != expectedWills or len(wills) != 2:
            failures.append(f"CN-10: wills received {[hexFormat(w) for w in wills]}")
        for client in (sub, silent3, silent5, pinger, idle):
            client.close()
        self.alive(failures, "CN-10")
        self.reportFailures(failures)

    def test_secondConnect(self) -> None:
        """CN-11: a second CONNECT closes (v5 0x82)."""
        self.checkCases([
            v3("CN-11", C4),
            v5("CN-11", C5, V5_PROTOCOL),
        ])

    def test_connectTooLarge(self) -> None:
        """CN-12: a CONNECT claiming 200,000 bytes is CLOSED once the length is read."""
        self.checkCases([
            pre("CN-12", bytes.fromhex("10 C0 9A 0C") + bytes(1024), closeWithin=1.0),
        ])

    def test_v5ConnectProperties(self) -> None:
        """CN-15: bad v5 CONNECT properties get 20 03 00 82 00 (truncated 0x81)."""
        protocolErrors = [
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
        ]
        cases = [pre(f"CN-15 {props}", _v5Connect(props=bytes.fromhex(props)), "20 03 00 82 00")
                 for props in protocolErrors]
        cases.append(pre("CN-15 01 11", _v5Connect(props=bytes.fromhex("01 11")),
                         "20 03 00 81 00"))
        self.checkCases(cases)


# -- 6.3 PUBLISH --------------------------------------------------------------------


class PublishTests(BrokerTestMixin, SynchronousTestCase):
    """
    Catalogue section 6.3 (PB): bad QoS and flags, packet id 0, bad topics,
    long topics, QoS 2 duplicates and reuse, the inbound QoS 2 limit.
    """

    brokerOptions = ("--connect-timeout", "2", "--max-awaiting-rel", "5")

    def test_badPublishes(self) -> None:
        """PB-01..PB-06: QoS 3, QoS 0 + DUP, mid 0, wildcards, empty topic, bad UTF-8."""
        cases = [
            v3("PB-01", "36 0E 00 05 74 6F 70 69 63 70 61 79 6C 6F 61 64"),
            v5("PB-01", "36 0E 00 05 74 6F 70 69 63 70 61 79 6C 6F 61 64", V5_MALFORMED),
            v3("PB-01 mid", "36 10 00 05 74 6F 70 69 63 12 34 70 61 79 6C 6F 61 64"),
            v5("PB-01 mid", "36 11 00 05 74 6F 70 69 63 12 34 00 70 61 79 6C 6F 61 64",
               V5_MALFORMED),
            v3("PB-02", "38 0E 00 05 74 6F 70 69 63 70 61 79 6C 6F 61 64"),
            v5("PB-02", "38 0F 00 05 74 6F 70 69 63 00 70 61 79 6C 6F 61 64", V5_MALFORMED),
            v3("PB-03 QoS 1", "32 10 00 05 74 6F 70 69 63 00 00 70 61 79 6C 6F 61 64"),
            v3("PB-03 QoS 2", "34 10 00 05 74 6F 70 69 63 00 00 70 61 79 6C 6F 61 64"),
            v5("PB-03 QoS 1", "32 11 00 05 74 6F 70 69 63 00 00 00 70 61 79 6C 6F 61 64",
               V5_PROTOCOL),
            v5("PB-03 QoS 2", "34 11 00 05 74 6F 70 69 63 00 00 00 70 61 79 6C 6F 61 64",
               V5_PROTOCOL),
            v3("PB-05", "30 09 00 00 70 61 79 6C 6F 61 64"),
            v5("PB-05", "30 0A 00 00 00 70 61 79 6C 6F 61 64", V5_PROTOCOL),
        ]
        for topic in (b"+opic", b"#opic", b"a/+", b"a/#"):
            cases.append(v3(f"PB-04 {topic.decode()}", publish(topic, b"x", 1, 1)))
            cases.append(v5(f"PB-04 {topic.decode()}", publish(topic, b"x", 1, 1, v5=True),
                            V5_WILDCARD_TOPIC))
        for name, raw in (("NUL", "61 00 00"), ("surrogate", "ED A0 80"),
                          ("overlong", "C0 80"), ("U+009F", "C2 9F"), ("U+FFFF", "EF BF BF")):
            topic = bytes.fromhex(raw)
            cases.append(v3(f"PB-06 {name}", publish(topic, b"x", 1, 1)))
            cases.append(v5(f"PB-06 {name}", publish(topic, b"x", 1, 1, v5=True),
                            V5_MALFORMED))
        self.checkCases(cases)

    def test_supplementaryCharacterTopic(self) -> None:
        """PB-06: U+2A6D4 in a topic is accepted and delivered byte-exact."""
        failures: list[str] = []
        topic = bytes.fromhex("74 2F F0 AA 9B 94")
        client = openClient(self.port)
        try:
            client.send(subscribe(1, [(topic, 0)]))
            if readPacket(client) != suback(1, [0]):
                failures.append("PB-06 U+2A6D4: SUBACK wrong")
            client.send(publish(topic, b"hi", 1, 7))
            got = {readPacket(client), readPacket(client)}
            expected = {publish(topic, b"hi"), bytes.fromhex("40 02 00 07")}
            if got != expected:
                failures.append(f"PB-06 U+2A6D4: got {[hexFormat(p) for p in got]}")
        finally:
            client.close()
        self.alive(failures, "PB-06 U+2A6D4")
        self.reportFailures(failures)

    def test_dollarTopics(self) -> None:
        """PB-07: $-topics from a client are not delivered to # or +/x subscribers."""
        failures: list[str] = []
        for version, connectBytes in (("v3", C4), ("v5", C5)):
            isV5 = version == "v5"
            sub = openClient(self.port, connect(b"pb7-sub"))
            sub.send(subscribe(1, [(b"#", 0), (b"+/x", 0)]))
            if readPacket(sub) != suback(1, [0, 0]):
                failures.append(f"PB-07 {version}: SUBACK wrong")
            client = openClient(self.port, connectBytes)
            for mid, topic in enumerate((b"$foo", b"$", b"$SYS/x", b"$share/g/t", b"$foo/x"), 1):
                client.send(publish(topic, b"x", 1, mid, v5=isV5))
                ack = readPacket(client)
                # v3 gets a positive PUBACK; v5 says "no matching subscribers".
                expected = (struct.pack("!BBHB", 0x40, 3, mid, 0x10) if isV5
                            else struct.pack("!BBH", 0x40, 2, mid))
                if ack != expected:
                    failures.append(f"PB-07 {version} {topic!r}: expected {hexFormat(expected)},"
                                    f" got {hexFormat(ack)}")
            if stillOpen(client) != PINGRESP:
                failures.append(f"PB-07 {version}: publisher not open")
            delivered = markerSync(sub, b"m/x")
            if delivered:
                failures.append(f"PB-07 {version}: delivered to # or +/x: "
                                f"{[hexFormat(p) for p in delivered]}")
            sub.close()
            client.close()
            self.alive(failures, f"PB-07 {version}")
        self.reportFailures(failures)

    def test_longTopic(self) -> None:
        """PB-08: topic '/'*65535 with QoS 1 mid 19: CLOSED or PUBACK, no crash, ALIVE."""
        failures: list[str] = []
        for version, connectBytes in (("v3", C4), ("v5", C5)):
            isV5 = version == "v5"
            client = openClient(self.port, connectBytes, timeout=10.0)
            try:
                client.send(publish(b"/" * 65535, b"", 1, 19, v5=isV5))
                reply = readPacket(client)
                if isV5:
                    allowed = {bytes.fromhex("E0 01 81"): True,
                               bytes.fromhex("40 03 00 13 90"): False}
                else:
                    allowed = {b"": True, bytes.fromhex("40 02 00 13"): False}
                if reply not in allowed:
                    failures.append(f"PB-08 {version}: expected one of "
                                    f"{[hexFormat(a) or 'close' for a in allowed]}, "
                                    f"got {hexFormat(reply)}")
                elif allowed[reply]:
                    closed, extra = waitClosed(client, 2.0)
                    if not closed or extra:
                        failures.append(f"PB-08 {version}: not CLOSED after {hexFormat(reply)}")
                elif stillOpen(client) != PINGRESP:
                    failures.append(f"PB-08 {version}: not open after the PUBACK")
            finally:
                client.close()
            self.alive(failures, f"PB-08 {version}")
        self.reportFailures(failures)

    def _subscriber(self, clientId: bytes, topicFilter: bytes) -> RawClient:
        sub = openClient(self.port, connect(clientId))
        sub.send(subscribe(1, [(topicFilter, 0)]))
        if readPacket(sub) != suback(1, [0]):
            sub.close()
            self.fail("subscriber SUBACK wrong")
        return sub

    def test_qos2ReusedPacketId(self) -> None:
        """PB-09: QoS 2 mid 312 topic A, then topic B before PUBREL: exactly one delivered."""
        failures: list[str] = []
        sub = self._subscriber(b"pb9-sub", b"pb9/#")
        client = openClient(self.port)
        try:
            steps = [
                (publish(b"pb9/a", b"A", 2, 312), "50 02 01 38"),
                (publish(b"pb9/b", b"B", 2, 312), "50 02 01 38"),
                (bytes.fromhex("62 02 01 38"), "70 02 01 38"),
            ]
            for send, reply in steps:
                client.send(send)
                got = readPacket(client)
                if got != bytes.fromhex(reply):
                    failures.append(f"PB-09: expected {reply}, got {hexFormat(got)}")
            delivered = markerSync(sub, b"pb9/marker")
            if delivered not in ([publish(b"pb9/a", b"A")], [publish(b"pb9/b", b"B")]):
                failures.append(f"PB-09: expected exactly one of A/B, got "
                                f"{[hexFormat(p) for p in delivered]}")
        finally:
            sub.close()
            client.close()
        self.alive(failures, "PB-09")
        self.reportFailures(failures)

    def test_qos2Duplicates(self) -> None:
        """PB-10: QoS 2 DUP=1 mid 1 three times: 50 02 00 01 each, one delivery."""
        failures: list[str] = []
        sub = self._subscriber(b"pb10-sub", b"pb10/#")
        client = openClient(self.port)
        try:
            for i in range(3):
                client.send(publish(b"pb10/d", b"D", 2, 1, dup=True))
                got = readPacket(client)
                if got != bytes.fromhex("50 02 00 01"):
                    failures.append(f"PB-10 dup {i + 1}: expected 50 02 00 01, got "
                                    f"{hexFormat(got)}")
            delivered = markerSync(sub, b"pb10/marker")
            if delivered != [publish(b"pb10/d", b"D")]:
                failures.append(f"PB-10: expected one delivery, got "
                                f"{[hexFormat(p) for p in delivered]}")
            client.send(bytes.fromhex("62 02 00 01"))
            if readPacket(client) != bytes.fromhex("70 02 00 01"):
                failures.append("PB-10: PUBREL not answered with 70 02 00 01")
        finally:
            sub.close()
            client.close()
        self.alive(failures, "PB-10")
        self.reportFailures(failures)

    def test_awaitingRelLimit(self) -> None:
        """PB-11: QoS 2 above --max-awaiting-rel 5 (v3) / Receive Maximum 20 (v5) closes."""
        v3Publishes = b"".join(publish(b"pb11", b"x", 2, mid) for mid in range(1, 7))
        v3Acks = b"".join(struct.pack("!BBH", 0x50, 2, mid) for mid in range(1, 6))
        v5Publishes = b"".join(publish(b"pb11", b"x", 2, mid, v5=True) for mid in range(1, 22))
        # Nobody subscribes to pb11: v5 PUBREC says 0x10 "no matching subscribers".
        v5Acks = b"".join(struct.pack("!BBHB", 0x50, 3, mid, 0x10) for mid in range(1, 21))
        self.checkCases([
            v3("PB-11", v3Publishes, v3Acks),
            v5("PB-11", v5Publishes, v5Acks + bytes.fromhex("E0 01 93")),
        ])


# -- 6.4 SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------


class SubscribeTests(BrokerTestMixin, SynchronousTestCase):
    """
    Catalogue section 6.4 (SB): bad SUBSCRIBE and UNSUBSCRIBE packets,
    invalid filters, long filters, many filters, subscription churn.
    """

    brokerOptions = ("--connect-timeout", "2")

    def test_badSubscribes(self) -> None:
        """SB-01..SB-05, SB-07: flags, options, no filter, empty filter, mid 0, bad UTF-8."""
        cases = []
        for first in ("80", "83", "84", "86", "8A"):
            cases.append(v3(f"SB-01 {first}", f"{first} 06 12 34 00 01 70 00"))
            cases.append(v5(f"SB-01 {first}", f"{first} 07 12 34 00 00 01 70 00", V5_MALFORMED))
        for options in ("03", "04", "08", "10", "20", "40", "80"):
            cases.append(v3(f"SB-02 options {options}", f"82 06 12 34 00 01 70 {options}"))
        for options, reply in (("03", V5_PROTOCOL), ("30", V5_PROTOCOL), ("40", V5_MALFORMED),
                               ("80", V5_MALFORMED), ("F0", V5_MALFORMED)):
            cases.append(v5(f"SB-02 options {options}", f"82 07 12 34 00 00 01 70 {options}",
                            reply))
        for options in ("04", "08", "10", "20"):
            cases.append(v5(f"SB-02 options {options} valid",
                            f"82 07 12 34 00 00 01 70 {options}", "90 04 12 34 00 00",
                            closed=False))
        cases += [
            v3("SB-03", "82 02 12 34"),
            # The codec raises ProtocolError for "no filters" (decoder.py).
            v5("SB-03", "82 03 12 34 00", V5_PROTOCOL),
            v3("SB-04", "82 05 12 34 00 00 00"),
            v5("SB-04", "82 06 12 34 00 00 00 00", V5_EMPTY_FILTER),
            v3("SB-04 1st of 2", "82 09 12 34 00 00 00 00 01 70 00"),
            v3("SB-04 2nd of 2", "82 09 12 34 00 01 70 00 00 00 00"),
            v5("SB-04 2nd of 2", "82 0A 12 34 00 00 01 70 00 00 00 00", V5_EMPTY_FILTER),
            v3("SB-05", "82 06 00 00 00 01 70 00"),
            v5("SB-05", "82 07 00 00 00 00 01 70 00", V5_PROTOCOL),
        ]
        for name, raw in (("NUL", "61 00 62"), ("surrogate", "ED A0 80"),
                          ("overlong", "C0 80")):
            topicFilter = bytes.fromhex(raw)
            cases.append(v3(f"SB-07 {name}", subscribe(0x1234, [(topicFilter, 0)])))
            cases.append(v5(f"SB-07 {name}", subscribe(0x1234, [(topicFilter, 0)], v5=True),
                            V5_MALFORMED))
        self.checkCases(cases)

    def test_emptyFilterRegistersNothing(self) -> None:
        """SB-04: a SUBSCRIBE with an empty 2nd filter registers no subscription."""
        failures: list[str] = []
        durable = connect(b"sb4", flags=0x00)
        client = RawClient(self.port)
        client.send(durable)
        readPacket(client)
        client.send(bytes.fromhex("82 0B 12 34 00 03 73 62 34 01 00 00 01"))
        closed, extra = waitClosed(client)
        client.close()
        if not closed or extra:
            failures.append(f"SB-04: closed={closed}, bytes {hexFormat(extra)}")
        publisher = openClient(self.port, connect(b"sb4-pub"))
        publisher.send(publish(b"sb4", b"x", 1, 1))
        if readPacket(publisher) != bytes.fromhex("40 02 00 01"):
            failures.append("SB-04: PUBACK wrong")
        publisher.close()
        client = RawClient(self.port)
        client.send(durable)
        connack = readPacket(client)
        if connack != bytes.fromhex("20 02 01 00"):
            failures.append(f"SB-04: expected session present, got {hexFormat(connack)}")
        queued = client.recvAvailable(0.5)
        if queued:
            failures.append(f"SB-04: a subscription was registered: got {hexFormat(queued)}")
        client.close()
        # Clean up the durable session.
        openClient(self.port, connect(b"sb4")).close()
        self.alive(failures, "SB-04")
        self.reportFailures(failures)

    def test_invalidWildcards(self) -> None:
        """SB-06: invalid filters get SUBACK 80 (v5 8F) and are never stored."""
        cases = []
        for topicFilter in (b"a/#/b", b"a#", b"a/b+", b"#/test/topic", b"+a"):
            name = topicFilter.decode()
            cases.append(v3(f"SB-06 {name}", subscribe(0x1234, [(topicFilter, 0)]),
                            "90 03 12 34 80", closed=False))
            # v5: an UNSUBSCRIBE of the same filter shows it was not stored
            # (0x11 "no subscription existed").
            cases.append(v5(f"SB-06 {name}", subscribe(0x1234, [(topicFilter, 0)], v5=True)
                            + unsubscribe(0x1235, [topicFilter], v5=True),
                            "90 04 12 34 00 8F B0 04 12 35 00 11", closed=False))
        self.checkCases(cases)

    def test_longFilters(self) -> None:
        """SB-08: filters '/'*65535 and '+/'*21845: CLOSED or SUBACK failure, ALIVE."""
        failures: list[str] = []
        for name, topicFilter in (("/*65535", b"/" * 65535), ("+/*21845", b"+/" * 21845)):
            for version, connectBytes in (("v3", C4), ("v5", C5)):
                isV5 = version == "v5"
                client = openClient(self.port, connectBytes, timeout=10.0)
                try:
                    client.send(subscribe(1, [(topicFilter, 0)], v5=isV5))
                    reply = readPacket(client)
                    if isV5:
                        allowed = {bytes.fromhex("E0 01 81"): True,
                                   bytes.fromhex("90 04 00 01 00 8F"): False}
                    else:
                        allowed = {b"": True, bytes.fromhex("90 03 00 01 80"): False}
                    if reply not in allowed:
                        failures.append(f"SB-08 {name} {version}: got {hexFormat(reply)}")
                    elif allowed[reply]:
                        closed, extra = waitClosed(client, 2.0)
                        if not closed or extra:
                            failures.append(f"SB-08 {name} {version}: not CLOSED")
                    elif stillOpen(client) != PINGRESP:
                        failures.append(f"SB-08 {name} {version}: not open after SUBACK")
                finally:
                    client.close()
                self.alive(failures, f"SB-08 {name} {version}")
        self.reportFailures(failures)

    def test_thousandFilters(self) -> None:
        """SB-11: one SUBSCRIBE with 1,000 filters gets 1,000 codes in order."""
        failures: list[str] = []
        filters = [(f"sb11/{i}".encode(), i % 3) for i in range(1000)]
        client = openClient(self.port, timeout=10.0)
        try:
            client.send(subscribe(0x0B0B, filters))
            reply = readPacket(client)
            expected = suback(0x0B0B, [qos for _, qos in filters])
            if reply != expected:
                failures.append(f"SB-11: expected {hexFormat(expected)}, got {hexFormat(reply)}")
            if stillOpen(client) != PINGRESP:
                failures.append("SB-11: not open afterwards")
        finally:
            client.close()
        self.alive(failures, "SB-11")
        self.reportFailures(failures)

    def test_subscriptionChurn(self) -> None:
        """SB-12: subscribe/unsubscribe churn (shared and plain) is all acked, ALIVE."""
        failures: list[str] = []
        c1 = openClient(self.port, connect(b"sb12-1"))
        c2 = openClient(self.port, connect(b"sb12-2"), timeout=10.0)
        try:
            c1.send(subscribe(1, [(b"crash/1/#", 0), (b"erash/2/#", 0), (b"crash/3/#", 0)]))
            c1.send(unsubscribe(2, [b"crash/1/#"]))
            got = [readPacket(c1), readPacket(c1)]
            if got != [suback(1, [0, 0, 0]), bytes.fromhex("B0 02 00 02")]:
                failures.append(f"SB-12 crash/n: got {[hexFormat(p) for p in got]}")
            c2.send(subscribe(1, [(b"crash/3/#", 0)]))
            if readPacket(c2) != suback(1, [0]):
                failures.append("SB-12: second client's SUBACK wrong")
            c2.send(publish(b"crash/3/x", b"3") + publish(b"crash/1/x", b"1"))
            if readPacket(c2) != publish(b"crash/3/x", b"3"):
                failures.append("SB-12: crash/3/x not delivered to the second client")
            if markerSync(c1, b"erash/2/m") != [publish(b"crash/3/x", b"3")]:
                failures.append("SB-12: first client got the wrong messages")
            # SUB $share/sharename/test + SUB test + UNSUB test, 1000 times.
            batch, expected = [], []
            for i in range(1000):
                mid = 3 * i + 1
                batch += [subscribe(mid, [(b"$share/sharename/test", 0)]),
                          subscribe(mid + 1, [(b"test", 0)]),
                          unsubscribe(mid + 2, [b"test"])]
                expected += [suback(mid, [0]), suback(mid + 1, [0]),
                             struct.pack("!BBH", 0xB0, 2, mid + 2)]
            c2.send(b"".join(batch))
            got = [readPacket(c2) for _ in expected]
            bad = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
            if bad:
                failures.append(f"SB-12 shared churn: {len(bad)} wrong acks, first at {bad[0]}: "
                                f"{hexFormat(got[bad[0]])}")
            # The shared subscription remains: one copy of a message to test.
            c2.send(publish(b"test", b"t"))
            if readPacket(c2) != publish(b"test", b"t"):
                failures.append("SB-12: shared subscription not delivering")
            # SUB a, SUB b, UNSUB a, twice.
            for round_ in range(2):
                base = 10000 + 3 * round_
                c1.send(subscribe(base, [(b"a", 0)]) + subscribe(base + 1, [(b"b", 0)])
                        + unsubscribe(base + 2, [b"a"]))
                got = [readPacket(c1) for _ in range(3)]
                if got != [suback(base, [0]), suback(base + 1, [0]),
                           struct.pack("!BBH", 0xB0, 2, base + 2)]:
                    failures.append(f"SB-12 a/b round {round_}: {[hexFormat(p) for p in got]}")
        finally:
            c1.close()
            c2.close()
        self.alive(failures, "SB-12")
        self.reportFailures(failures)

    def test_badUnsubscribes(self) -> None:
        """SB-13: UNSUBSCRIBE flags, no filter, empty filter, mid 0, unknown filter."""
        cases = []
        for first in ("A0", "A3", "A4", "A6", "AA"):
            cases.append(v3(f"SB-13 {first}", f"{first} 05 12 34 00 01 70"))
            cases.append(v5(f"SB-13 {first}", f"{first} 06 12 34 00 00 01 70", V5_MALFORMED))
        cases += [
            v3("SB-13 no filter", "A2 02 12 34"),
            v5("SB-13 no filter", "A2 03 12 34 00", V5_PROTOCOL),
            v3("SB-13 empty filter", "A2 04 12 34 00 00"),
            v5("SB-13 empty filter", "A2 05 12 34 00 00 00", V5_EMPTY_FILTER),
            v3("SB-13 mid 0", "A2 05 00 00 00 01 70"),
            v5("SB-13 mid 0", "A2 06 00 00 00 00 01 70", V5_PROTOCOL),
            v3("SB-13 unknown filter", "A2 05 12 34 00 01 70", "B0 02 12 34", closed=False),
            v5("SB-13 unknown filter", "A2 06 12 34 00 00 01 70", "B0 04 12 34 00 11",
               closed=False),
        ]
        self.checkCases(cases)


# -- 6.5 acknowledgements, server-only packets, DISCONNECT, AUTH --------------------


class AckTests(BrokerTestMixin, SynchronousTestCase):
    """
    Catalogue section 6.5 (AK): unsolicited and invalid acks, wrong ack types
    for broker-to-client flows, server-only packets, DISCONNECT and wills,
    AUTH without a method.
    """

    brokerOptions = ("--connect-timeout", "2")

    def test_unsolicitedAcks(self) -> None:
        """AK-01..AK-03: unsolicited acks ignored; bad acks close; unknown PUBREL answered."""
        self.checkCases([
            v3("AK-01 PUBACK", "40 02 00 01", closed=False),
            v3("AK-01 PUBREC", "50 02 00 01", closed=False),
            v3("AK-01 PUBCOMP", "70 02 00 01", closed=False),
            v5("AK-01 PUBACK", "40 02 00 01", closed=False),
            v5("AK-01 PUBACK 80", "40 03 00 01 80", closed=False),
            v5("AK-01 PUBREC 80", "50 03 00 01 80", closed=False),
            v5("AK-01 PUBCOMP 00", "70 03 00 01 00", closed=False),
            v3("AK-02 PUBACK mid 0", "40 02 00 00"),
            v3("AK-02 PUBREC mid 0", "50 02 00 00"),
            v3("AK-02 PUBREL mid 0", "62 02 00 00"),
            v3("AK-02 PUBCOMP mid 0", "70 02 00 00"),
            v5("AK-02 PUBACK mid 0", "40 02 00 00", V5_PROTOCOL),
            v5("AK-02 PUBACK reason FF", "40 04 00 01 FF 00", V5_PROTOCOL),
            v5("AK-02 PUBACK truncated property", "40 04 00 01 00 01", V5_MALFORMED),
            v3("AK-03", "62 02 00 01", "70 02 00 01", closed=False),
            v5("AK-03", "62 02 00 01", "70 03 00 01 92", closed=False),
        ])

    def _flow(self, version: str, qos: int, steps: Sequence[tuple[str, str]],
              closed: bool, rowId: str, failures: list[str]) -> None:
        """
        Make the broker send this client a PUBLISH of C{qos} (it subscribes
        to its own topic), then run C{steps} of (send, expected reply) hex
        templates where C{{mid}} is the broker's packet id; then expect
        CLOSED (C{closed}) or PINGRESP.
        """
        isV5 = version == "v5"
        client = openClient(self.port, C5 if isV5 else C4)
        try:
            client.send(subscribe(1, [(b"ak/q", 2)], v5=isV5))
            readPacket(client)
            client.send(publish(b"ak/q", b"hi", qos, 5, v5=isV5))
            got = [readPacket(client), readPacket(client)]
            publishes = [p for p in got if p[:1] in (b"\x32", b"\x34")]
            if len(publishes) != 1:
                failures.append(f"{rowId}: no PUBLISH from the broker: "
                                f"{[hexFormat(p) for p in got]}")
                return
            _, mid, _ = publishParts(publishes[0])
            midHex = struct.pack("!H", mid or 0).hex(" ")
            for send, reply in steps:
                client.send(bytes.fromhex(send.format(mid=midHex)))
                expected = bytes.fromhex(reply.format(mid=midHex))
                answer = client.recvExactly(len(expected)) if expected else b""
                if answer != expected:
                    failures.append(f"{rowId}: after {send.format(mid=midHex)} expected "
                                    f"{hexFormat(expected) or '(none)'}, got {hexFormat(answer)}")
            if closed:
                isClosed, extra = waitClosed(client)
                if not isClosed or extra:
                    failures.append(f"{rowId}: expected CLOSED, closed={isClosed}, "
                                    f"bytes {hexFormat(extra)}")
            elif stillOpen(client) != PINGRESP:
                failures.append(f"{rowId}: expected to stay open")
        finally:
            client.close()
        self.alive(failures, rowId)

    def test_wrongAckTypes(self) -> None:
        """AK-04: wrong ack type for a broker-to-client flow closes (v5 0x82)."""
        failures: list[str] = []
        for version in ("v3", "v5"):
            closeReply = V5_PROTOCOL if version == "v5" else ""
            self._flow(version, 1, [("50 02 {mid}", closeReply)], True,
                       f"AK-04 PUBREC to QoS 1 {version}", failures)
            self._flow(version, 1, [("70 02 {mid}", closeReply)], True,
                       f"AK-04 PUBCOMP to QoS 1 {version}", failures)
            self._flow(version, 2, [("40 02 {mid}", closeReply)], True,
                       f"AK-04 PUBACK to QoS 2 {version}", failures)
            self._flow(version, 2, [("50 02 {mid}", "62 02 {mid}"), ("40 02 {mid}", closeReply)],
                       True, f"AK-04 PUBACK after PUBREL {version}", failures)
            self._flow(version, 2, [("50 02 {mid}", "62 02 {mid}"), ("50 02 {mid}", "62 02 {mid}"),
                                    ("70 02 {mid}", "")],
                       False, f"AK-04 duplicate PUBREC {version}", failures)
        self.reportFailures(failures)

    def test_serverOnlyPackets(self) -> None:
        """AK-05: CONNACK, SUBACK, UNSUBACK, PINGRESP from a client close (v5 0x82)."""
        cases = []
        for send in ("20 02 00 00", "90 03 12 34 00", "B0 02 12 34", "D0 00"):
            cases.append(v3(f"AK-05 {send[:2]}", send))
            cases.append(v5(f"AK-05 {send[:2]}", send, V5_PROTOCOL))
        cases.append(v5("AK-05 29 02 00 01", "29 02 00 01", V5_PROTOCOL))
        cases.append(pre(
            "AK-05 CVE-2021-28166 sequence",
            "10 10 00 04 4D 51 54 54 05 02 00 3C 03 21 00 14 00 00 29 02 00 01 E0 00",
            V5_PROTOCOL, first=assignedId,
        ))
        self.checkCases(cases)

    def test_pingBurst(self) -> None:
        """AK-06: 100 PINGREQs back-to-back get 100 PINGRESPs."""
        self.checkCases([v3("AK-06", PINGREQ * 100, PINGRESP * 100, closed=False)])

    def test_disconnectAndWill(self) -> None:
        """AK-07: DISCONNECT variants close; the will is published as the row states."""
        will3 = connect(b"w3", flags=0x06, tail=mqttString(b"will/3") + mqttString(b"bye"))
        will5 = _v5Connect(0x06, tail=b"\x00" + mqttString(b"will/5") + mqttString(b"bye"),
                           clientId=b"w5")
        expireZero5 = _v5Connect(0x06, props=bytes.fromhex("05 11 00 00 00 00"),
                                 tail=b"\x00" + mqttString(b"will/5") + mqttString(b"bye"),
                                 clientId=b"w5")
        rows = [
            ("AK-07 E0 00 v3", will3, "E0 00", "", False),
            ("AK-07 E0 01 00 v3", will3, "E0 01 00", "", True),
            ("AK-07 E0 00 v5", will5, "E0 00", "", False),
            ("AK-07 E0 01 04 v5", will5, "E0 01 04", "", True),
            ("AK-07 truncated property v5", will5, "E0 05 00 03 11 00 00", V5_MALFORMED, True),
            ("AK-07 expiry after 0 v5", expireZero5, "E0 07 00 05 11 00 00 00 01",
             V5_PROTOCOL, True),
        ]
        failures: list[str] = []
        sub = openClient(self.port, connect(b"will-sub"))
        sub.send(subscribe(1, [(b"will/#", 0)]))
        readPacket(sub)
        try:
            for rowId, connectBytes, send, reply, willExpected in rows:
                topic = b"will/5" if b"w5" in connectBytes else b"will/3"
                case = Case(rowId, bytes.fromhex(send), bytes.fromhex(reply), True, connectBytes)
                failures += [f"{rowId}: {p}" for p in runCase(self.port, case)]
                wills = markerSync(sub, b"will/marker")
                expected = [publish(topic, b"bye")] if willExpected else []
                if wills != expected:
                    failures.append(f"{rowId}: will expected={willExpected}, got "
                                    f"{[hexFormat(w) for w in wills]}")
        finally:
            sub.close()
        self.reportFailures(failures)

    def test_authWithoutMethod(self) -> None:
        """AK-08: AUTH without a method gets 0x82; an unknown method CONNACK 0x8C."""
        method = bytes.fromhex("0E 15 00 0B") + b"unsupported"
        self.checkCases([
            v5("AK-08 AUTH F0 00", "F0 00", V5_PROTOCOL),
            pre("AK-08 method unsupported", _v5Connect(props=method), "20 03 00 8C 00"),
        ])
