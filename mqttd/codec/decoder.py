"""
The incremental MQTT decoder: bytes in, packets out.

Feed it whatever the transport delivers (one byte or many packets at a time)
and pull packets with L{Decoder.next}.  It checks each packet's first byte as
soon as it arrives (a server rejects anything but CONNECT as the first packet
[MQTT-3.1.0-1]) and the declared Remaining Length against the size limit as
soon as that Variable Byte Integer is complete, and it never allocates the
declared length up front: chunks of a packet are only joined once the whole
packet is there, which keeps reassembly linear however small the chunks are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqttd.codec.errors import MalformedPacket, ProtocolError, UnsupportedProtocolVersion
from mqttd.codec.packets import (
    AUTH,
    CLIENT_TO_SERVER,
    CONNECT,
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    PUBLISH,
    SERVER_TO_CLIENT,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
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
)
from mqttd.codec.primitives import decodeBinary, decodeString, forbiddenCharacters
from mqttd.codec.properties import NO_PROPERTIES, WILL, PropertyId, decodeProperties
from mqttd.codec.reasons import (
    AUTH_REASONS,
    CONNACK_REASONS,
    DISCONNECT_REASONS,
    PUBACK_REASONS,
    PUBCOMP_REASONS,
    PUBREC_REASONS,
    PUBREL_REASONS,
    SUBACK_REASONS,
    SUBACK_RETURN_CODES_V31,
    SUBACK_RETURN_CODES_V311,
    UNSUBACK_REASONS,
)

#: Default limit on a whole packet (fixed header included), in bytes.
DEFAULT_MAX_PACKET_SIZE = 1024 * 1024
#: Default limit on a CONNECT, which arrives before authentication.
DEFAULT_MAX_CONNECT_SIZE = 100_000
#: The largest packet the protocol can express.
PROTOCOL_MAX_PACKET_SIZE = 268_435_455 + 5

# Fixed-header flags that are not PUBLISH's must have these values
# [MQTT-2.2.2-1], [MQTT-2.1.3-1].
_REQUIRED_FLAGS = {t: 0 for t in range(1, 16)}
_REQUIRED_FLAGS.update({6: 2, 8: 2, 10: 2})
del _REQUIRED_FLAGS[PUBLISH]

# How many decoded topic names to keep (raw bytes -> validated str).
_TOPIC_CACHE_SIZE = 4096
# Only topics up to this many bytes are cached: 4096 topics of 64 KiB would
# keep about 512 MiB per connection.
_TOPIC_CACHE_MAX_LENGTH = 256


def _firstByteVerdicts(
    accepted: frozenset[int],
) -> tuple[frozenset[int], dict[int, tuple[type[ProtocolError], str]]]:
    """
    Classify all 256 first bytes for a decoder that accepts the packet types
    C{accepted}: the set of acceptable bytes, and the error (class and
    message) for each other byte.
    """
    ok = set()
    errors: dict[int, tuple[type[ProtocolError], str]] = {}
    for byte in range(256):
        kind, flags = byte >> 4, byte & 0x0F
        if kind not in accepted:
            errors[byte] = (ProtocolError, f"packet type {kind} is not allowed here")
        elif kind == PUBLISH:
            if flags & 0x06 == 0x06:
                errors[byte] = (MalformedPacket, "PUBLISH with QoS 3")  # [MQTT-3.3.1-4]
            elif flags & 0x08 and not flags & 0x06:
                errors[byte] = (MalformedPacket, "PUBLISH with QoS 0 and DUP set")
            else:
                ok.add(byte)
        elif flags != _REQUIRED_FLAGS[kind]:
            errors[byte] = (MalformedPacket, f"invalid fixed header flags for packet type {kind}")
        else:
            ok.add(byte)
    return frozenset(ok), errors


class Decoder:
    """
    Incremental decoder for one connection.

    A server-side decoder (C{isServer=True}) starts with no protocol level,
    accepts only a CONNECT first, then takes the level of that CONNECT and
    accepts the packets a client may send; a second CONNECT is a protocol
    error [MQTT-3.1.0-2].  A client-side decoder is given its level and
    accepts the packets a server may send.

    @ivar protocolLevel: 3, 4 or 5 once known; L{None} before the CONNECT.
    @ivar maxPacketSize: the largest packet accepted after the CONNECT.
    @ivar maxConnectSize: the largest CONNECT accepted.
    """

    def __init__(
        self,
        *,
        isServer: bool = True,
        protocolLevel: int | None = None,
        maxPacketSize: int = DEFAULT_MAX_PACKET_SIZE,
        maxConnectSize: int = DEFAULT_MAX_CONNECT_SIZE,
        strictStrings: bool = True,
    ) -> None:
        """
        @param isServer: decode what a client sends (C{True}) or what a
            server sends (C{False}).
        @param protocolLevel: the level of a client-side decoder.
        @param maxPacketSize: see L{maxPacketSize}.
        @param maxConnectSize: see L{maxConnectSize}.
        @param strictStrings: reject control characters and non-characters
            in strings, not only U+0000.
        """
        if not isServer and protocolLevel not in (MQTT_3_1, MQTT_3_1_1, MQTT_5):
            raise ValueError("a client-side decoder needs its protocol level")
        self.isServer = isServer
        self.protocolLevel = protocolLevel if not isServer else None
        self.maxPacketSize = maxPacketSize
        self.maxConnectSize = maxConnectSize
        self._forbidden = forbiddenCharacters(strictStrings)
        self._data = b""
        self._pos = 0
        self._chunks: list[bytes] = []
        self._chunksLen = 0
        self._need = 1
        self._topics: dict[bytes, str] = {}
        self._decoders: list[Callable[[int, bytes, int, int], Any]] = [
            self._decodeReserved,
            self._decodeConnect,
            self._decodeConnack,
            self._decodePublish,
            self._decodePuback,
            self._decodePubrec,
            self._decodePubrel,
            self._decodePubcomp,
            self._decodeSubscribe,
            self._decodeSuback,
            self._decodeUnsubscribe,
            self._decodeUnsuback,
            self._decodePingreq,
            self._decodePingresp,
            self._decodeDisconnect,
            self._decodeAuth,
        ]
        if isServer:
            self._setAccepted(frozenset({CONNECT}))
        else:
            self._setLevel(protocolLevel)  # type: ignore[arg-type]

    def _setAccepted(self, accepted: frozenset[int]) -> None:
        self._okFirst, self._badFirst = _firstByteVerdicts(accepted)

    def _setLevel(self, level: int) -> None:
        self.protocolLevel = level
        if self.isServer:
            accepted = CLIENT_TO_SERVER - {CONNECT}
        else:
            accepted = SERVER_TO_CLIENT
        if level != MQTT_5:
            accepted = accepted - {AUTH}
        self._setAccepted(frozenset(accepted))

    @property
    def buffered(self) -> int:
        """
        The number of bytes received but not yet decoded.
        """
        return len(self._data) - self._pos + self._chunksLen

    def feed(self, data: bytes) -> None:
        """
        Add bytes received from the peer.  Nothing is decoded until
        L{next} is called.
        """
        if self._pos >= len(self._data) and not self._chunks:
            self._data = data
            self._pos = 0
        elif data:
            self._chunks.append(data)
            self._chunksLen += len(data)

    def next(self) -> Packet | None:
        """
        Decode the next packet.

        @return: the packet, or L{None} if more bytes are needed.
        @raise ProtocolError: (or its subclass L{MalformedPacket}) if the
            input breaks the protocol; the decoder must not be used again.
        """
        data = self._data
        pos = self._pos
        if len(data) - pos + self._chunksLen < self._need:
            return None
        if self._chunks:
            self._chunks.insert(0, data[pos:])
            data = self._data = b"".join(self._chunks)
            pos = self._pos = 0
            self._chunks = []
            self._chunksLen = 0
        end = len(data)
        first = data[pos]
        if first not in self._okFirst:
            # Before the CONNECT only 0x10 is accepted [MQTT-3.1.0-1]; after
            # it, a second CONNECT is refused here too [MQTT-3.1.0-2].
            errorClass, message = self._badFirst[first]
            raise errorClass(message)
        # The Remaining Length [MQTT-1.5.5-1], checked against the limit as
        # soon as it is complete.
        length = 0
        shift = 0
        i = pos + 1
        while True:
            if i >= end:
                self._need = i - pos + 1
                return None
            byte = data[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift == 28:
                raise MalformedPacket("remaining length longer than four bytes")
        if byte == 0 and i - pos > 2:
            raise MalformedPacket("remaining length is not minimally encoded")
        total = i - pos + length
        limit = self.maxConnectSize if self.protocolLevel is None else self.maxPacketSize
        if total > limit:
            raise ProtocolError(f"packet of {total} bytes exceeds the limit of {limit}", 0x95)
        if total > end - pos:
            self._need = total
            return None
        self._need = 1
        stop = i + length
        self._pos = stop
        packet: Packet = self._decoders[first >> 4](first & 0x0F, data, i, stop)
        return packet

    # -- body decoders: (flags, buffer, start of body, end of body) --------

    def _decodeReserved(self, flags: int, data: bytes, pos: int, end: int) -> Packet:
        raise ProtocolError("reserved packet type")  # pragma: no cover (first byte rejects)

    def _props(self, data: bytes, pos: int, end: int, kind: int) -> tuple[Any, int]:
        return decodeProperties(data, pos, end, kind, self._forbidden)

    def _string(self, data: bytes, pos: int, end: int) -> tuple[str, int]:
        return decodeString(data, pos, end, self._forbidden)

    def _decodeConnect(self, flags: int, data: bytes, pos: int, end: int) -> Connect:
        name, pos = self._string(data, pos, end)
        if pos >= end:
            raise MalformedPacket("CONNECT without a protocol level")
        level = data[pos]
        pos += 1
        if name == "MQTT":
            if level not in (MQTT_3_1_1, MQTT_5):
                raise UnsupportedProtocolVersion(f"protocol level {level} is not supported")
        elif name == "MQIsdp":
            if level != MQTT_3_1:
                raise UnsupportedProtocolVersion(f"protocol level {level} is not supported")
        else:
            raise ProtocolError(f"unknown protocol name {name!r}")
        try:
            packet = self._decodeConnectRest(level, data, pos, end)
        except ProtocolError as e:
            e.protocolLevel = level
            raise
        self._setLevel(level)
        return packet

    def _decodeConnectRest(self, level: int, data: bytes, pos: int, end: int) -> Connect:
        if pos + 3 > end:
            raise MalformedPacket("truncated CONNECT variable header")
        cflags = data[pos]
        keepAlive = (data[pos + 1] << 8) | data[pos + 2]
        pos += 3
        if cflags & 0x01:
            raise MalformedPacket("CONNECT reserved flag is set")  # [MQTT-3.1.2-3]
        cleanStart = bool(cflags & 0x02)
        willFlag = cflags & 0x04
        willQos = (cflags >> 3) & 0x03
        willRetain = bool(cflags & 0x20)
        hasPassword = cflags & 0x40
        hasUsername = cflags & 0x80
        if willQos == 3:
            raise MalformedPacket("will QoS 3")
        if not willFlag and (willQos or willRetain):
            # [MQTT-3.1.2-11], [MQTT-3.1.2-13] (3.1.1: also [MQTT-3.1.2-15])
            raise ProtocolError("will QoS or will retain set without the will flag")
        if hasPassword and not hasUsername and level != MQTT_5:
            raise ProtocolError("password flag without user name flag")  # [MQTT-3.1.2-22]
        props: Any = NO_PROPERTIES
        if level == MQTT_5:
            props, pos = self._props(data, pos, end, CONNECT)
        clientId, pos = self._string(data, pos, end)
        will = None
        if willFlag:
            willProps: Any = NO_PROPERTIES
            if level == MQTT_5:
                willProps, pos = self._props(data, pos, end, WILL)
            willTopic, pos = self._string(data, pos, end)
            if not willTopic or "+" in willTopic or "#" in willTopic:
                raise ProtocolError("the will topic is not a valid topic name")
            willPayload, pos = decodeBinary(data, pos, end)
            will = Will(willTopic, willPayload, willQos, willRetain, willProps)
        username = None
        if hasUsername:
            username, pos = self._string(data, pos, end)
        password = None
        if hasPassword:
            password, pos = decodeBinary(data, pos, end)
        if pos != end:
            raise MalformedPacket("unexpected bytes after the CONNECT payload")
        return Connect(
            clientId, level, cleanStart, keepAlive, will, username, password, props
        )

    def _decodeConnack(self, flags: int, data: bytes, pos: int, end: int) -> Connack:
        if end - pos < 2:
            raise MalformedPacket("truncated CONNACK")
        ackFlags, code = data[pos], data[pos + 1]
        if ackFlags & 0xFE:
            raise MalformedPacket("CONNACK reserved flags set")
        pos += 2
        props: Any = NO_PROPERTIES
        if self.protocolLevel == MQTT_5:
            if code not in CONNACK_REASONS:
                raise ProtocolError(f"invalid CONNACK reason code 0x{code:02X}")
            props, pos = self._props(data, pos, end, 2)
        elif code > 5:
            raise ProtocolError(f"invalid CONNACK return code {code}")
        if pos != end:
            raise MalformedPacket("unexpected bytes after CONNACK")
        return Connack(bool(ackFlags), code, props)

    def _decodePublish(self, flags: int, data: bytes, pos: int, end: int) -> Publish:
        qos = (flags >> 1) & 0x03
        if pos + 2 > end:
            raise MalformedPacket("truncated PUBLISH topic")
        tend = pos + 2 + ((data[pos] << 8) | data[pos + 1])
        if tend > end:
            raise MalformedPacket("PUBLISH topic length exceeds the packet")
        raw = data[pos + 2 : tend]
        topic = self._topics.get(raw)
        if topic is None:
            topic = self._topicName(raw)
        pos = tend
        packetId = None
        if qos:
            if pos + 2 > end:
                raise MalformedPacket("truncated PUBLISH packet identifier")
            packetId = (data[pos] << 8) | data[pos + 1]
            pos += 2
            if not packetId:
                raise ProtocolError("PUBLISH with packet identifier 0")  # [MQTT-2.2.1-3]
        if self.protocolLevel == MQTT_5:
            if pos < end and data[pos] == 0:
                # No properties: the common case, without the general parser.
                if not topic:
                    raise ProtocolError("empty topic name without a topic alias")
                return Publish(topic, data[pos + 1 : end], qos, bool(flags & 1), bool(flags & 8),
                               packetId)
            props, pos = decodeProperties(data, pos, end, PUBLISH, self._forbidden)
            if props:
                if self.isServer and PropertyId.SUBSCRIPTION_IDENTIFIER in props:
                    raise ProtocolError("subscription identifier in a PUBLISH from a client")
            if not topic and PropertyId.TOPIC_ALIAS not in props:
                raise ProtocolError("empty topic name without a topic alias")
            return Publish(
                topic, data[pos:end], qos, bool(flags & 1), bool(flags & 8), packetId, props
            )
        if not topic:
            raise ProtocolError("empty topic name")  # [MQTT-4.7.3-1]
        return Publish(topic, data[pos:end], qos, bool(flags & 1), bool(flags & 8), packetId)

    def _topicName(self, raw: bytes) -> str:
        """
        Decode and validate a PUBLISH topic name, remembering the result.
        """
        try:
            topic = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("topic is not well-formed UTF-8") from None
        if self._forbidden.search(topic) is not None:
            raise MalformedPacket("topic contains a forbidden character")
        if "+" in topic or "#" in topic:
            # [MQTT-3.3.2-2]: it parses, but the data is not allowed, which
            # MQTT 5.0 section 1.2 calls a Protocol Error.
            raise ProtocolError("wildcard in a topic name")
        if topic and len(raw) <= _TOPIC_CACHE_MAX_LENGTH:
            if len(self._topics) >= _TOPIC_CACHE_SIZE:
                self._topics.clear()
            self._topics[raw] = topic
        return topic

    def _decodeAck(
        self, data: bytes, pos: int, end: int, kind: int, reasons: frozenset[int]
    ) -> tuple[int, int, Any]:
        length = end - pos
        if length < 2:
            raise MalformedPacket("truncated acknowledgement")
        packetId = (data[pos] << 8) | data[pos + 1]
        if not packetId:
            raise ProtocolError("acknowledgement with packet identifier 0")
        if self.protocolLevel != MQTT_5:
            if length != 2:
                raise MalformedPacket("acknowledgement longer than two bytes")
            return packetId, 0, NO_PROPERTIES
        if length == 2:
            return packetId, 0, NO_PROPERTIES
        code = data[pos + 2]
        if code not in reasons:
            raise ProtocolError(f"invalid reason code 0x{code:02X}")
        props: Any = NO_PROPERTIES
        if length > 3:
            props, stop = self._props(data, pos + 3, end, kind)
            if stop != end:
                raise MalformedPacket("unexpected bytes after the properties")
        return packetId, code, props

    def _decodePuback(self, flags: int, data: bytes, pos: int, end: int) -> Puback:
        return Puback(*self._decodeAck(data, pos, end, 4, PUBACK_REASONS))

    def _decodePubrec(self, flags: int, data: bytes, pos: int, end: int) -> Pubrec:
        return Pubrec(*self._decodeAck(data, pos, end, 5, PUBREC_REASONS))

    def _decodePubrel(self, flags: int, data: bytes, pos: int, end: int) -> Pubrel:
        return Pubrel(*self._decodeAck(data, pos, end, 6, PUBREL_REASONS))

    def _decodePubcomp(self, flags: int, data: bytes, pos: int, end: int) -> Pubcomp:
        return Pubcomp(*self._decodeAck(data, pos, end, 7, PUBCOMP_REASONS))

    def _packetIdAndProps(
        self, data: bytes, pos: int, end: int, kind: int
    ) -> tuple[int, Any, int]:
        if pos + 2 > end:
            raise MalformedPacket("truncated packet identifier")
        packetId = (data[pos] << 8) | data[pos + 1]
        if not packetId:
            raise ProtocolError("packet identifier 0")  # [MQTT-2.2.1-3]
        pos += 2
        props: Any = NO_PROPERTIES
        if self.protocolLevel == MQTT_5:
            props, pos = self._props(data, pos, end, kind)
        return packetId, props, pos

    def _decodeSubscribe(self, flags: int, data: bytes, pos: int, end: int) -> Subscribe:
        packetId, props, pos = self._packetIdAndProps(data, pos, end, 8)
        v5 = self.protocolLevel == MQTT_5
        requests = []
        while pos < end:
            topicFilter, pos = self._string(data, pos, end)
            if not topicFilter:
                raise ProtocolError("empty topic filter")  # [MQTT-4.7.3-1]
            if pos >= end:
                raise MalformedPacket("topic filter without subscription options")
            options = data[pos]
            pos += 1
            qos = options & 0x03
            if v5:
                if options & 0xC0:
                    raise MalformedPacket("reserved subscription option bits set")
                if qos == 3:
                    raise ProtocolError("subscription QoS 3")
                retainHandling = (options >> 4) & 0x03
                if retainHandling == 3:
                    raise ProtocolError("retain handling 3")
                requests.append(
                    SubscriptionRequest(
                        topicFilter, qos, bool(options & 0x04), bool(options & 0x08),
                        retainHandling,
                    )
                )
            else:
                if options & 0xFC or qos == 3:
                    raise MalformedPacket("invalid requested QoS byte")  # [MQTT-3-8.3-4]
                requests.append(SubscriptionRequest(topicFilter, qos))
        if not requests:
            raise ProtocolError("SUBSCRIBE without topic filters")  # [MQTT-3.8.3-3]
        return Subscribe(packetId, tuple(requests), props)

    def _decodeSuback(self, flags: int, data: bytes, pos: int, end: int) -> Suback:
        packetId, props, pos = self._packetIdAndProps(data, pos, end, 9)
        codes = tuple(data[pos:end])
        if not codes:
            raise ProtocolError("SUBACK without return codes")
        allowed = (
            SUBACK_REASONS
            if self.protocolLevel == MQTT_5
            else SUBACK_RETURN_CODES_V311
            if self.protocolLevel == MQTT_3_1_1
            else SUBACK_RETURN_CODES_V31
        )
        for code in codes:
            if code not in allowed:
                raise ProtocolError(f"invalid SUBACK code 0x{code:02X}")
        return Suback(packetId, codes, props)

    def _decodeUnsubscribe(self, flags: int, data: bytes, pos: int, end: int) -> Unsubscribe:
        packetId, props, pos = self._packetIdAndProps(data, pos, end, 10)
        filters = []
        while pos < end:
            topicFilter, pos = self._string(data, pos, end)
            if not topicFilter:
                raise ProtocolError("empty topic filter")  # [MQTT-4.7.3-1]
            filters.append(topicFilter)
        if not filters:
            raise ProtocolError("UNSUBSCRIBE without topic filters")  # [MQTT-3.10.3-2]
        return Unsubscribe(packetId, tuple(filters), props)

    def _decodeUnsuback(self, flags: int, data: bytes, pos: int, end: int) -> Unsuback:
        if self.protocolLevel != MQTT_5:
            if end - pos != 2:
                raise MalformedPacket("UNSUBACK must be two bytes long")
            packetId = (data[pos] << 8) | data[pos + 1]
            if not packetId:
                raise ProtocolError("packet identifier 0")
            return Unsuback(packetId)
        packetId, props, pos = self._packetIdAndProps(data, pos, end, 11)
        codes = tuple(data[pos:end])
        if not codes:
            raise ProtocolError("UNSUBACK without reason codes")
        for code in codes:
            if code not in UNSUBACK_REASONS:
                raise ProtocolError(f"invalid UNSUBACK reason code 0x{code:02X}")
        return Unsuback(packetId, codes, props)

    def _decodePingreq(self, flags: int, data: bytes, pos: int, end: int) -> Pingreq:
        if pos != end:
            raise MalformedPacket("PINGREQ with a body")
        return _PINGREQ

    def _decodePingresp(self, flags: int, data: bytes, pos: int, end: int) -> Pingresp:
        if pos != end:
            raise MalformedPacket("PINGRESP with a body")
        return _PINGRESP

    def _reasonAndProps(
        self, data: bytes, pos: int, end: int, kind: int, reasons: frozenset[int]
    ) -> tuple[int, Any]:
        code = data[pos]
        if code not in reasons:
            raise ProtocolError(f"invalid reason code 0x{code:02X}")
        props: Any = NO_PROPERTIES
        if end - pos > 1:
            props, stop = self._props(data, pos + 1, end, kind)
            if stop != end:
                raise MalformedPacket("unexpected bytes after the properties")
        return code, props

    def _decodeDisconnect(self, flags: int, data: bytes, pos: int, end: int) -> Disconnect:
        if pos == end:
            return _DISCONNECT
        if self.protocolLevel != MQTT_5:
            raise MalformedPacket("DISCONNECT with a body")
        return Disconnect(*self._reasonAndProps(data, pos, end, 14, DISCONNECT_REASONS))

    def _decodeAuth(self, flags: int, data: bytes, pos: int, end: int) -> Auth:
        if pos == end:
            return _AUTH
        if end - pos < 2:
            raise MalformedPacket("AUTH without a property length")
        return Auth(*self._reasonAndProps(data, pos, end, 15, AUTH_REASONS))


_PINGREQ = Pingreq()
_PINGRESP = Pingresp()
_DISCONNECT = Disconnect()
_AUTH = Auth()


def decodeAll(data: bytes, protocolLevel: int | None = None, isServer: bool = True,
              **kwargs: Any) -> list[Packet]:
    """
    Decode every complete packet in C{data} (a convenience for tests and
    tools).

    @param protocolLevel: for a server-side decoder, pretend a CONNECT of
        this level was already received; for a client-side one, its level.
    @raise ProtocolError: as L{Decoder.next}.
    """
    decoder = Decoder(isServer=isServer, protocolLevel=protocolLevel, **kwargs)
    if isServer and protocolLevel is not None:
        decoder._setLevel(protocolLevel)
    decoder.feed(data)
    out = []
    while (packet := decoder.next()) is not None:
        out.append(packet)
    return out
