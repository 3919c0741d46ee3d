"""
The MQTT encoder: C{encode(packet, protocolLevel) -> bytes}.

Properties and MQTT 5.0-only fields are left out for 3.1.x peers, so a packet
built for one version can be encoded for another without leaking anything
[MQTT-3.3.2-*]: the broker relies on this when it forwards between versions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqttd.codec.packets import (
    MQTT_3_1,
    MQTT_5,
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
    Unsuback,
    Unsubscribe,
)
from mqttd.codec.primitives import encodeBinary, encodeString, encodeVarint
from mqttd.codec.properties import encodeProperties


def _frame(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encodeVarint(len(body)) + body


def _encodeConnect(p: Connect, level: int) -> bytes:
    v5 = level == MQTT_5
    flags = 0
    if p.cleanStart:
        flags |= 0x02
    will = p.will
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if p.password is not None:
        flags |= 0x40
    if p.username is not None:
        flags |= 0x80
    name = "MQIsdp" if level == MQTT_3_1 else "MQTT"
    parts = [encodeString(name), bytes((level, flags)), p.keepAlive.to_bytes(2, "big")]
    if v5:
        parts.append(encodeProperties(p.properties))
    parts.append(encodeString(p.clientId))
    if will is not None:
        if v5:
            parts.append(encodeProperties(will.properties))
        parts.append(encodeString(will.topic))
        parts.append(encodeBinary(will.payload))
    if p.username is not None:
        parts.append(encodeString(p.username))
    if p.password is not None:
        parts.append(encodeBinary(p.password))
    return _frame(0x10, b"".join(parts))


def _encodeConnack(p: Connack, level: int) -> bytes:
    body = bytes((1 if p.sessionPresent else 0, p.reasonCode))
    if level == MQTT_5:
        body += encodeProperties(p.properties)
    return _frame(0x20, body)


def publishFirstByte(qos: int, retain: bool, dup: bool) -> int:
    """
    The first byte of a PUBLISH with these flags.
    """
    return 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)


def _encodePublish(p: Publish, level: int) -> bytes:
    topic = p.topic.encode("utf-8")
    if len(topic) > 0xFFFF:
        raise ValueError("topic longer than 65535 bytes")
    head = len(topic).to_bytes(2, "big") + topic
    if p.qos:
        if not p.packetId:
            raise ValueError("a QoS 1 or 2 PUBLISH needs a packet identifier")
        head += p.packetId.to_bytes(2, "big")
    if level == MQTT_5:
        head += encodeProperties(p.properties)
    payload = p.payload
    return b"".join(
        (
            bytes((publishFirstByte(p.qos, p.retain, p.dup),)),
            encodeVarint(len(head) + len(payload)),
            head,
            payload,
        )
    )


def encodeAck(first: int, packetId: int, reasonCode: int = 0) -> bytes:
    """
    A PUBACK, PUBREC, PUBREL or PUBCOMP without properties, the form the
    broker sends on every QoS 1/2 flow: 4 bytes, or 5 with a (v5 only)
    reason code other than 0.

    @param first: the fixed header's first byte (0x40, 0x50, 0x62, 0x70).
    """
    if reasonCode:
        return bytes((first, 3, packetId >> 8, packetId & 0xFF, reasonCode))
    return bytes((first, 2, packetId >> 8, packetId & 0xFF))


def _ack(first: int, packetId: int, reasonCode: int, props: Any, level: int) -> bytes:
    if level != MQTT_5 or not props:
        return encodeAck(first, packetId, reasonCode if level == MQTT_5 else 0)
    pid = packetId.to_bytes(2, "big")
    return _frame(first, pid + bytes((reasonCode,)) + encodeProperties(props))


def _encodePuback(p: Puback, level: int) -> bytes:
    return _ack(0x40, p.packetId, p.reasonCode, p.properties, level)


def _encodePubrec(p: Pubrec, level: int) -> bytes:
    return _ack(0x50, p.packetId, p.reasonCode, p.properties, level)


def _encodePubrel(p: Pubrel, level: int) -> bytes:
    return _ack(0x62, p.packetId, p.reasonCode, p.properties, level)


def _encodePubcomp(p: Pubcomp, level: int) -> bytes:
    return _ack(0x70, p.packetId, p.reasonCode, p.properties, level)


def _encodeSubscribe(p: Subscribe, level: int) -> bytes:
    parts = [p.packetId.to_bytes(2, "big")]
    v5 = level == MQTT_5
    if v5:
        parts.append(encodeProperties(p.properties))
    for request in p.subscriptions:
        parts.append(encodeString(request.topicFilter))
        options = request.qos
        if v5:
            options |= (
                (0x04 if request.noLocal else 0)
                | (0x08 if request.retainAsPublished else 0)
                | (request.retainHandling << 4)
            )
        parts.append(bytes((options,)))
    return _frame(0x82, b"".join(parts))


def _encodeSuback(p: Suback, level: int) -> bytes:
    body = p.packetId.to_bytes(2, "big")
    if level == MQTT_5:
        body += encodeProperties(p.properties)
    return _frame(0x90, body + bytes(p.reasonCodes))


def _encodeUnsubscribe(p: Unsubscribe, level: int) -> bytes:
    parts = [p.packetId.to_bytes(2, "big")]
    if level == MQTT_5:
        parts.append(encodeProperties(p.properties))
    parts.extend(encodeString(f) for f in p.topicFilters)
    return _frame(0xA2, b"".join(parts))


def _encodeUnsuback(p: Unsuback, level: int) -> bytes:
    body = p.packetId.to_bytes(2, "big")
    if level == MQTT_5:
        body += encodeProperties(p.properties) + bytes(p.reasonCodes)
    return _frame(0xB0, body)


_PINGREQ_BYTES = b"\xc0\x00"
_PINGRESP_BYTES = b"\xd0\x00"


def _encodePingreq(p: Pingreq, level: int) -> bytes:
    return _PINGREQ_BYTES


def _encodePingresp(p: Pingresp, level: int) -> bytes:
    return _PINGRESP_BYTES


def _encodeDisconnect(p: Disconnect, level: int) -> bytes:
    if level != MQTT_5 or (p.reasonCode == 0 and not p.properties):
        return b"\xe0\x00"
    if not p.properties:
        return bytes((0xE0, 1, p.reasonCode))
    return _frame(0xE0, bytes((p.reasonCode,)) + encodeProperties(p.properties))


def _encodeAuth(p: Auth, level: int) -> bytes:
    if level != MQTT_5:
        raise ValueError("AUTH exists only in MQTT 5.0")
    if p.reasonCode == 0 and not p.properties:
        return b"\xf0\x00"
    return _frame(0xF0, bytes((p.reasonCode,)) + encodeProperties(p.properties))


_ENCODERS: dict[type, Callable[[Any, int], bytes]] = {
    Connect: _encodeConnect,
    Connack: _encodeConnack,
    Publish: _encodePublish,
    Puback: _encodePuback,
    Pubrec: _encodePubrec,
    Pubrel: _encodePubrel,
    Pubcomp: _encodePubcomp,
    Subscribe: _encodeSubscribe,
    Suback: _encodeSuback,
    Unsubscribe: _encodeUnsubscribe,
    Unsuback: _encodeUnsuback,
    Pingreq: _encodePingreq,
    Pingresp: _encodePingresp,
    Disconnect: _encodeDisconnect,
    Auth: _encodeAuth,
}


def encode(packet: Packet, protocolLevel: int) -> bytes:
    """
    Encode a packet for a peer speaking C{protocolLevel} (3, 4 or 5).

    MQTT 5.0-only content (properties, reason codes other than the 3.1.x
    return codes) is left out for levels 3 and 4.

    @raise ValueError: for a packet that cannot be expressed (a string
        longer than 65,535 bytes, a QoS 1 PUBLISH without packet identifier,
        AUTH for 3.1.x).
    """
    return _ENCODERS[type(packet)](packet, protocolLevel)
