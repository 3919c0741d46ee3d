"""
The application message as the broker routes it, with the encoded forms
cached so that a PUBLISH is encoded once per fan-out.
"""

from __future__ import annotations

from typing import Any

from mqttd.codec.encoder import publishFirstByte
from mqttd.codec.packets import MQTT_5
from mqttd.codec.primitives import encodeVarint
from mqttd.codec.properties import (
    NO_PROPERTIES,
    Properties,
    PropertyId,
    encodePropertyBody,
)

# Properties a server forwards with a message unchanged (MQTT 5.0 section
# 3.3.2.3).  Message Expiry Interval is forwarded too, but as the time left
# (kept as Message.expiresAt); Topic Alias and Subscription Identifier are
# per connection / subscription.
_FORWARDED = frozenset(
    {
        PropertyId.PAYLOAD_FORMAT_INDICATOR,
        PropertyId.CONTENT_TYPE,
        PropertyId.RESPONSE_TOPIC,
        PropertyId.CORRELATION_DATA,
        PropertyId.USER_PROPERTY,
    }
)

# Rough per-message bookkeeping cost, counted in queue byte limits.
_OVERHEAD = 64


def forwardedProperties(props: Properties) -> Properties:
    """
    The properties of an incoming PUBLISH (or will) that travel with the
    message unchanged, in their original order [MQTT-3.3.2-18].
    """
    if not props:
        return NO_PROPERTIES
    kept = {k: v for k, v in props.items() if k in _FORWARDED}
    return kept if kept else NO_PROPERTIES


class Message:
    """
    An application message inside the broker.

    @ivar topic: the topic name.
    @ivar payload: the payload.
    @ivar qos: the QoS it was published with.
    @ivar retain: the RETAIN flag it was published with.
    @ivar properties: MQTT 5.0 properties that travel with it (without
        Message Expiry Interval, which is kept as C{expiresAt}).
    @ivar senderId: the client id of the publisher (L{None} for messages
        published in-process), for No Local.
    @ivar expiresAt: when the message expires, in the broker clock's
        seconds, or L{None}.
    @ivar size: what the message counts for in queue byte limits.
    """

    __slots__ = (
        "topic",
        "payload",
        "qos",
        "retain",
        "properties",
        "senderId",
        "expiresAt",
        "size",
        "_cache",
        "_propertyBody",
        "_topicBytes",
    )

    def __init__(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = NO_PROPERTIES,
        senderId: str | None = None,
        expiresAt: float | None = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.senderId = senderId
        self.expiresAt = expiresAt
        self._topicBytes = topic.encode("utf-8")
        self.size = len(payload) + len(self._topicBytes) + _OVERHEAD
        self._cache: dict[int, Any] | None = None
        # The message's own properties encoded, once for all deliveries
        # (per-subscriber ones are added around it).
        self._propertyBody: bytes | None = None

    def __repr__(self) -> str:
        return (
            f"<Message {self.topic!r} qos={self.qos} retain={self.retain} "
            f"{len(self.payload)} bytes>"
        )

    def replace(
        self,
        *,
        topic: str | None = None,
        payload: bytes | None = None,
        qos: int | None = None,
        retain: bool | None = None,
        properties: Properties | None = None,
    ) -> Message:
        """
        A copy with some fields changed (what a hook returns to change a
        message; the original is never modified, its encodings are cached).
        """
        return Message(
            self.topic if topic is None else topic,
            self.payload if payload is None else payload,
            self.qos if qos is None else qos,
            self.retain if retain is None else retain,
            self.properties if properties is None else properties,
            self.senderId,
            self.expiresAt,
        )

    def remainingExpiry(self, now: float) -> int | None:
        """
        The Message Expiry Interval to forward at C{now}: whole seconds left,
        at least 1 while the message is alive; L{None} if it has no expiry.
        """
        if self.expiresAt is None:
            return None
        return max(1, int(self.expiresAt - now + 0.999))

    def _propertyBlock(
        self, subscriptionIds: tuple[int, ...], expiry: int | None, topicAlias: int
    ) -> bytes:
        props = self.properties
        if not subscriptionIds and expiry is None and not props and not topicAlias:
            return b"\x00"
        body = self._propertyBody
        if body is None:
            body = self._propertyBody = encodePropertyBody(props) if props else b""
        if expiry is not None:
            body = bytes((PropertyId.MESSAGE_EXPIRY_INTERVAL,)) + expiry.to_bytes(4, "big") + body
        if topicAlias:
            body += bytes((PropertyId.TOPIC_ALIAS,)) + topicAlias.to_bytes(2, "big")
        for sid in subscriptionIds:
            body += bytes((PropertyId.SUBSCRIPTION_IDENTIFIER,)) + encodeVarint(sid)
        return encodeVarint(len(body)) + body

    def encodeParts(
        self,
        level: int,
        qos: int,
        retain: bool,
        subscriptionIds: tuple[int, ...] = (),
        now: float | None = None,
        dup: bool = False,
        topicAlias: int = 0,
        omitTopic: bool = False,
    ) -> tuple[bytes, bytes]:
        """
        Encode the message as a PUBLISH for one delivery, in two parts:
        a QoS 1 or 2 PUBLISH is C{prefix + packetId + suffix}, a QoS 0 one
        C{prefix + suffix}.  Results that do not depend on the subscriber
        (no subscription identifiers, no expiry, no DUP) are cached, so a
        fan-out encodes once per (level, QoS, retain, topic alias).

        @param now: the clock's time, needed if the message expires.
        @param topicAlias: a v5 Topic Alias to send (0: none).
        @param omitTopic: send an empty topic name (the alias stands for it).
        """
        cacheable = not subscriptionIds and self.expiresAt is None and not dup
        key = (level << 3) | (qos << 1) | retain | (topicAlias << 9) | (omitTopic << 8)
        if cacheable:
            cache = self._cache
            if cache is None:
                cache = self._cache = {}
            else:
                cached: tuple[bytes, bytes] | None = cache.get(key)
                if cached is not None:
                    return cached
        topic = b"" if omitTopic else self._topicBytes
        if level == MQTT_5:
            expiry = None
            if self.expiresAt is not None:
                expiry = self.remainingExpiry(now if now is not None else 0.0)
            suffix = self._propertyBlock(subscriptionIds, expiry, topicAlias) + self.payload
        else:
            suffix = self.payload
        remaining = 2 + len(topic) + (2 if qos else 0) + len(suffix)
        prefix = (
            bytes((publishFirstByte(qos, retain, dup),))
            + encodeVarint(remaining)
            + len(topic).to_bytes(2, "big")
            + topic
        )
        parts = (prefix, suffix)
        if cacheable:
            self._cache[key] = parts  # type: ignore[index]
        return parts
