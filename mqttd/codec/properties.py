"""
MQTT 5.0 properties (section 2.2.2): identifiers, value types, which packet
may carry which property, range rules, and their encoding.

Decoded properties are a plain C{dict} mapping the property identifier to its
value.  Values are C{int} (Byte, Two Byte, Four Byte and Variable Byte
Integers), C{str} (UTF-8 Encoded Strings), C{bytes} (Binary Data), except:

  - User Property (0x26): a tuple of C{(name, value)} pairs in wire order
    [MQTT-3.3.2-18];
  - Subscription Identifier (0x0B): a tuple of C{int} (a PUBLISH sent by a
    server carries one per matching subscription).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import IntEnum
from typing import Any, NoReturn

from mqttd.codec.errors import MalformedPacket, ProtocolError
from mqttd.codec.primitives import (
    decodeBinary,
    decodeString,
    decodeVarint,
    encodeBinary,
    encodeString,
    encodeVarint,
)

Properties = Mapping[int, Any]



class _NoProperties(Mapping[int, Any]):
    """
    The empty, immutable and hashable property set (so that it can be the
    default of a frozen dataclass field).
    """

    __slots__ = ()

    def __getitem__(self, key: int) -> NoReturn:
        raise KeyError(key)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "NO_PROPERTIES"


#: The empty property set, shared by every packet that has none.
NO_PROPERTIES: Properties = _NoProperties()


class PropertyId(IntEnum):
    """
    MQTT 5.0 property identifiers (section 2.2.2.2).
    """

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


class PropertyType(IntEnum):
    """
    The wire types of property values.
    """

    BYTE = 1
    TWO_BYTE = 2
    FOUR_BYTE = 4
    VARINT = 5
    STRING = 6
    BINARY = 7
    STRING_PAIR = 8


P = PropertyId
T = PropertyType

#: The wire type of each property.
PROPERTY_TYPES: dict[int, PropertyType] = {
    P.PAYLOAD_FORMAT_INDICATOR: T.BYTE,
    P.MESSAGE_EXPIRY_INTERVAL: T.FOUR_BYTE,
    P.CONTENT_TYPE: T.STRING,
    P.RESPONSE_TOPIC: T.STRING,
    P.CORRELATION_DATA: T.BINARY,
    P.SUBSCRIPTION_IDENTIFIER: T.VARINT,
    P.SESSION_EXPIRY_INTERVAL: T.FOUR_BYTE,
    P.ASSIGNED_CLIENT_IDENTIFIER: T.STRING,
    P.SERVER_KEEP_ALIVE: T.TWO_BYTE,
    P.AUTHENTICATION_METHOD: T.STRING,
    P.AUTHENTICATION_DATA: T.BINARY,
    P.REQUEST_PROBLEM_INFORMATION: T.BYTE,
    P.WILL_DELAY_INTERVAL: T.FOUR_BYTE,
    P.REQUEST_RESPONSE_INFORMATION: T.BYTE,
    P.RESPONSE_INFORMATION: T.STRING,
    P.SERVER_REFERENCE: T.STRING,
    P.REASON_STRING: T.STRING,
    P.RECEIVE_MAXIMUM: T.TWO_BYTE,
    P.TOPIC_ALIAS_MAXIMUM: T.TWO_BYTE,
    P.TOPIC_ALIAS: T.TWO_BYTE,
    P.MAXIMUM_QOS: T.BYTE,
    P.RETAIN_AVAILABLE: T.BYTE,
    P.USER_PROPERTY: T.STRING_PAIR,
    P.MAXIMUM_PACKET_SIZE: T.FOUR_BYTE,
    P.WILDCARD_SUBSCRIPTION_AVAILABLE: T.BYTE,
    P.SUBSCRIPTION_IDENTIFIER_AVAILABLE: T.BYTE,
    P.SHARED_SUBSCRIPTION_AVAILABLE: T.BYTE,
}

#: Properties whose value must be 0 or 1.
BOOLEAN_PROPERTIES = frozenset(
    {
        P.PAYLOAD_FORMAT_INDICATOR,
        P.REQUEST_PROBLEM_INFORMATION,
        P.REQUEST_RESPONSE_INFORMATION,
        P.MAXIMUM_QOS,
        P.RETAIN_AVAILABLE,
        P.WILDCARD_SUBSCRIPTION_AVAILABLE,
        P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        P.SHARED_SUBSCRIPTION_AVAILABLE,
    }
)

#: Properties whose value must not be 0 (Protocol Error).
NONZERO_PROPERTIES = frozenset(
    {P.RECEIVE_MAXIMUM, P.MAXIMUM_PACKET_SIZE, P.SUBSCRIPTION_IDENTIFIER}
)

#: Properties that may appear more than once in one packet.
REPEATABLE = frozenset({P.USER_PROPERTY, P.SUBSCRIPTION_IDENTIFIER})

# Keys of ALLOWED: packet type numbers, plus WILL for the will properties.
WILL = 16

#: Which properties each packet type may carry (section 2.2.2.2).
ALLOWED: dict[int, frozenset[int]] = {
    1: frozenset(  # CONNECT
        {P.SESSION_EXPIRY_INTERVAL, P.AUTHENTICATION_METHOD, P.AUTHENTICATION_DATA,
         P.REQUEST_PROBLEM_INFORMATION, P.REQUEST_RESPONSE_INFORMATION,
         P.RECEIVE_MAXIMUM, P.TOPIC_ALIAS_MAXIMUM, P.USER_PROPERTY, P.MAXIMUM_PACKET_SIZE}
    ),
    2: frozenset(  # CONNACK
        {P.SESSION_EXPIRY_INTERVAL, P.ASSIGNED_CLIENT_IDENTIFIER, P.SERVER_KEEP_ALIVE,
         P.AUTHENTICATION_METHOD, P.AUTHENTICATION_DATA, P.RESPONSE_INFORMATION,
         P.SERVER_REFERENCE, P.REASON_STRING, P.RECEIVE_MAXIMUM, P.TOPIC_ALIAS_MAXIMUM,
         P.MAXIMUM_QOS, P.RETAIN_AVAILABLE, P.USER_PROPERTY, P.MAXIMUM_PACKET_SIZE,
         P.WILDCARD_SUBSCRIPTION_AVAILABLE, P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
         P.SHARED_SUBSCRIPTION_AVAILABLE}
    ),
    3: frozenset(  # PUBLISH
        {P.PAYLOAD_FORMAT_INDICATOR, P.MESSAGE_EXPIRY_INTERVAL, P.CONTENT_TYPE,
         P.RESPONSE_TOPIC, P.CORRELATION_DATA, P.SUBSCRIPTION_IDENTIFIER, P.TOPIC_ALIAS,
         P.USER_PROPERTY}
    ),
    4: frozenset({P.REASON_STRING, P.USER_PROPERTY}),  # PUBACK
    5: frozenset({P.REASON_STRING, P.USER_PROPERTY}),  # PUBREC
    6: frozenset({P.REASON_STRING, P.USER_PROPERTY}),  # PUBREL
    7: frozenset({P.REASON_STRING, P.USER_PROPERTY}),  # PUBCOMP
    8: frozenset({P.SUBSCRIPTION_IDENTIFIER, P.USER_PROPERTY}),  # SUBSCRIBE
    9: frozenset({P.REASON_STRING, P.USER_PROPERTY}),  # SUBACK
    10: frozenset({P.USER_PROPERTY}),  # UNSUBSCRIBE
    11: frozenset({P.REASON_STRING, P.USER_PROPERTY}),  # UNSUBACK
    14: frozenset(  # DISCONNECT
        {P.SESSION_EXPIRY_INTERVAL, P.SERVER_REFERENCE, P.REASON_STRING, P.USER_PROPERTY}
    ),
    15: frozenset(  # AUTH
        {P.AUTHENTICATION_METHOD, P.AUTHENTICATION_DATA, P.REASON_STRING, P.USER_PROPERTY}
    ),
    WILL: frozenset(
        {P.PAYLOAD_FORMAT_INDICATOR, P.MESSAGE_EXPIRY_INTERVAL, P.CONTENT_TYPE,
         P.RESPONSE_TOPIC, P.CORRELATION_DATA, P.WILL_DELAY_INTERVAL, P.USER_PROPERTY}
    ),
}

del P, T


def _hasWildcard(topic: str) -> bool:
    return "+" in topic or "#" in topic


def decodeProperties(
    data: bytes, pos: int, end: int, packetKind: int, forbidden: re.Pattern[str]
) -> tuple[Properties, int]:
    """
    Decode a property block (length, then properties) that must lie within
    C{data[pos:end]}.

    @param packetKind: the packet type number, or L{WILL}, whose allowed
        table applies.
    @param forbidden: the characters rejected in strings (see
        L{mqttd.codec.primitives.forbiddenCharacters}).
    @return: the properties and the offset after the block.
    @raise MalformedPacket: truncated or unparseable properties (0x81).
    @raise ProtocolError: a property not allowed in this packet, a duplicate,
        or a value out of range (0x82).
    """
    length, pos = decodeVarint(data, pos, end)
    if length == 0:
        return NO_PROPERTIES, pos
    stop = pos + length
    if stop > end:
        raise MalformedPacket("property length exceeds the packet")
    allowed = ALLOWED[packetKind]
    props: dict[int, Any] = {}
    while pos < stop:
        ident = data[pos]
        if ident & 0x80:
            # A multi-byte identifier: none is defined.
            raise MalformedPacket(f"unknown property identifier starting 0x{ident:02X}")
        pos += 1
        kind = PROPERTY_TYPES.get(ident)
        if kind is None:
            raise MalformedPacket(f"unknown property identifier 0x{ident:02X}")
        value: Any
        if kind == PropertyType.BYTE:
            if pos >= stop:
                raise MalformedPacket("truncated property")
            value = data[pos]
            pos += 1
        elif kind == PropertyType.TWO_BYTE:
            if pos + 2 > stop:
                raise MalformedPacket("truncated property")
            value = (data[pos] << 8) | data[pos + 1]
            pos += 2
        elif kind == PropertyType.FOUR_BYTE:
            if pos + 4 > stop:
                raise MalformedPacket("truncated property")
            value = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
        elif kind == PropertyType.VARINT:
            value, pos = decodeVarint(data, pos, stop)
        elif kind == PropertyType.STRING:
            value, pos = decodeString(data, pos, stop, forbidden)
        elif kind == PropertyType.BINARY:
            value, pos = decodeBinary(data, pos, stop)
        else:
            name, pos = decodeString(data, pos, stop, forbidden)
            text, pos = decodeString(data, pos, stop, forbidden)
            value = (name, text)
        if ident not in allowed:
            raise ProtocolError(f"property 0x{ident:02X} is not allowed in this packet")
        if ident in REPEATABLE:
            if ident in props:
                if ident == PropertyId.SUBSCRIPTION_IDENTIFIER and packetKind != 3:
                    raise ProtocolError("duplicate subscription identifier")
                # A list while decoding: appending to a tuple is quadratic
                # (CVE-2021-41039 class); tuples are made at the end.
                props[ident].append(value)
            else:
                props[ident] = [value]
            if ident == PropertyId.SUBSCRIPTION_IDENTIFIER and value == 0:
                raise ProtocolError("subscription identifier 0")
            continue
        if ident in props:
            raise ProtocolError(f"duplicate property 0x{ident:02X}")
        if ident in BOOLEAN_PROPERTIES:
            if value > 1:
                raise ProtocolError(f"property 0x{ident:02X} must be 0 or 1")
        elif ident in NONZERO_PROPERTIES:
            if value == 0:
                raise ProtocolError(f"property 0x{ident:02X} must not be 0")
        elif ident == PropertyId.TOPIC_ALIAS:
            if value == 0:
                raise ProtocolError("topic alias 0", 0x94)
        elif ident == PropertyId.RESPONSE_TOPIC:
            if not value or _hasWildcard(value):
                raise ProtocolError("response topic is not a valid topic name")
        props[ident] = value
    if pos != stop:
        raise MalformedPacket("property overruns its block")
    for ident in REPEATABLE.intersection(props):
        props[ident] = tuple(props[ident])
    if PropertyId.AUTHENTICATION_DATA in props and PropertyId.AUTHENTICATION_METHOD not in props:
        raise ProtocolError("authentication data without an authentication method")
    return props, stop


def _encodeValue(kind: PropertyType, value: Any) -> bytes:
    if kind == PropertyType.BYTE:
        return bytes((value,))
    if kind == PropertyType.TWO_BYTE:
        return int(value).to_bytes(2, "big")
    if kind == PropertyType.FOUR_BYTE:
        return int(value).to_bytes(4, "big")
    if kind == PropertyType.VARINT:
        return encodeVarint(value)
    if kind == PropertyType.STRING:
        return encodeString(value)
    if kind == PropertyType.BINARY:
        return encodeBinary(value)
    name, text = value
    return encodeString(name) + encodeString(text)


def encodePropertyBody(props: Properties) -> bytes:
    """
    Encode properties without the length prefix, in mapping order (user
    properties and subscription identifiers in their tuple order).
    """
    out = []
    for ident, value in props.items():
        kind = PROPERTY_TYPES[ident]
        if ident in REPEATABLE:
            for item in value:
                out.append(bytes((ident,)))
                out.append(_encodeValue(kind, item))
        else:
            out.append(bytes((ident,)))
            out.append(_encodeValue(kind, value))
    return b"".join(out)


_EMPTY_BLOCK = b"\x00"


def encodeProperties(props: Properties) -> bytes:
    """
    Encode a property block: its Variable Byte Integer length, then the
    properties.
    """
    if not props:
        return _EMPTY_BLOCK
    body = encodePropertyBody(props)
    return encodeVarint(len(body)) + body
