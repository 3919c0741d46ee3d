"""
The fifteen MQTT control packets as frozen, slotted dataclasses.

One set of classes serves every protocol level: fields that exist only in
MQTT 5.0 (properties, most reason codes) keep their defaults for 3.1.x and
are neither encoded for nor decoded from 3.1.x peers.
"""

from __future__ import annotations

from dataclasses import dataclass

from mqttd.codec.properties import NO_PROPERTIES, Properties

#: Protocol levels.
MQTT_3_1 = 3
MQTT_3_1_1 = 4
MQTT_5 = 5
PROTOCOL_LEVELS = (MQTT_3_1, MQTT_3_1_1, MQTT_5)

# Control packet type numbers (the high nibble of the first byte).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15


@dataclass(frozen=True, slots=True)
class Will:
    """
    The will message carried by a CONNECT.
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Connect:
    """
    CONNECT.  C{cleanStart} is 3.1.x's Clean Session flag.  The protocol
    name follows from the level (see L{protocolName}).
    """

    clientId: str
    protocolLevel: int = MQTT_3_1_1
    cleanStart: bool = True
    keepAlive: int = 0
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    properties: Properties = NO_PROPERTIES

    packetType = CONNECT

    @property
    def protocolName(self) -> str:
        """
        C{"MQIsdp"} for MQTT 3.1, C{"MQTT"} for later levels.
        """
        return "MQIsdp" if self.protocolLevel == MQTT_3_1 else "MQTT"


@dataclass(frozen=True, slots=True)
class Connack:
    """
    CONNACK.  C{reasonCode} holds the 3.1.x return code for 3.1.x peers.
    """

    sessionPresent: bool = False
    reasonCode: int = 0
    properties: Properties = NO_PROPERTIES

    packetType = CONNACK


@dataclass(frozen=True, slots=True)
class Publish:
    """
    PUBLISH.  C{packetId} is L{None} for QoS 0.  In MQTT 5.0 C{topic} may be
    empty when a Topic Alias property stands for it.
    """

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packetId: int | None = None
    properties: Properties = NO_PROPERTIES

    packetType = PUBLISH


@dataclass(frozen=True, slots=True)
class Puback:
    """PUBACK."""

    packetId: int
    reasonCode: int = 0
    properties: Properties = NO_PROPERTIES

    packetType = PUBACK


@dataclass(frozen=True, slots=True)
class Pubrec:
    """PUBREC."""

    packetId: int
    reasonCode: int = 0
    properties: Properties = NO_PROPERTIES

    packetType = PUBREC


@dataclass(frozen=True, slots=True)
class Pubrel:
    """PUBREL."""

    packetId: int
    reasonCode: int = 0
    properties: Properties = NO_PROPERTIES

    packetType = PUBREL


@dataclass(frozen=True, slots=True)
class Pubcomp:
    """PUBCOMP."""

    packetId: int
    reasonCode: int = 0
    properties: Properties = NO_PROPERTIES

    packetType = PUBCOMP


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """
    One topic filter of a SUBSCRIBE with its options.  C{qos} is the
    maximum QoS the client asks for; the other options are MQTT 5.0 only.
    """

    topicFilter: str
    qos: int = 0
    noLocal: bool = False
    retainAsPublished: bool = False
    retainHandling: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE."""

    packetId: int
    subscriptions: tuple[SubscriptionRequest, ...]
    properties: Properties = NO_PROPERTIES

    packetType = SUBSCRIBE


@dataclass(frozen=True, slots=True)
class Suback:
    """SUBACK: one reason code (3.1.x: return code) per requested filter."""

    packetId: int
    reasonCodes: tuple[int, ...]
    properties: Properties = NO_PROPERTIES

    packetType = SUBACK


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE."""

    packetId: int
    topicFilters: tuple[str, ...]
    properties: Properties = NO_PROPERTIES

    packetType = UNSUBSCRIBE


@dataclass(frozen=True, slots=True)
class Unsuback:
    """UNSUBACK.  C{reasonCodes} is empty for 3.1.x (which has none)."""

    packetId: int
    reasonCodes: tuple[int, ...] = ()
    properties: Properties = NO_PROPERTIES

    packetType = UNSUBACK


@dataclass(frozen=True, slots=True)
class Pingreq:
    """PINGREQ."""

    packetType = PINGREQ


@dataclass(frozen=True, slots=True)
class Pingresp:
    """PINGRESP."""

    packetType = PINGRESP


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT.  Reason code and properties are MQTT 5.0 only."""

    reasonCode: int = 0
    properties: Properties = NO_PROPERTIES

    packetType = DISCONNECT


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH (MQTT 5.0 only)."""

    reasonCode: int = 0
    properties: Properties = NO_PROPERTIES

    packetType = AUTH


Packet = (
    Connect | Connack | Publish | Puback | Pubrec | Pubrel | Pubcomp | Subscribe | Suback
    | Unsubscribe | Unsuback | Pingreq | Pingresp | Disconnect | Auth
)

#: Packet types a client may send to a server.
CLIENT_TO_SERVER = frozenset(
    {CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, PINGREQ,
     DISCONNECT, AUTH}
)
#: Packet types a server may send to a client.
SERVER_TO_CLIENT = frozenset(
    {CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP,
     DISCONNECT, AUTH}
)
