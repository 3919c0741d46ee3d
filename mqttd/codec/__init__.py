"""
The MQTT codec: pure, no I/O, no Twisted.

Bytes in, packet objects out (L{Decoder}); packet objects in, bytes out
(L{encode}).  One set of packet classes serves MQTT 3.1 (protocol level 3,
C{MQIsdp}), 3.1.1 (level 4) and 5.0 (level 5); the level is a parameter.
Every wire-rule violation raises L{ProtocolError} (or its subclass
L{MalformedPacket}) carrying the MQTT 5.0 reason code.
"""

from mqttd.codec.decoder import (
    DEFAULT_MAX_CONNECT_SIZE,
    DEFAULT_MAX_PACKET_SIZE,
    PROTOCOL_MAX_PACKET_SIZE,
    Decoder,
    decodeAll,
)
from mqttd.codec.encoder import encode, encodeAck, publishFirstByte
from mqttd.codec.errors import MalformedPacket, ProtocolError, UnsupportedProtocolVersion
from mqttd.codec.packets import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    PROTOCOL_LEVELS,
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
from mqttd.codec.properties import NO_PROPERTIES, Properties, PropertyId
from mqttd.codec.reasons import ConnackReturnCode, ReasonCode

__all__ = [
    "DEFAULT_MAX_CONNECT_SIZE",
    "DEFAULT_MAX_PACKET_SIZE",
    "MQTT_3_1",
    "MQTT_3_1_1",
    "MQTT_5",
    "NO_PROPERTIES",
    "PROTOCOL_LEVELS",
    "PROTOCOL_MAX_PACKET_SIZE",
    "Auth",
    "Connack",
    "ConnackReturnCode",
    "Connect",
    "Decoder",
    "Disconnect",
    "MalformedPacket",
    "Packet",
    "Pingreq",
    "Pingresp",
    "Properties",
    "PropertyId",
    "ProtocolError",
    "Puback",
    "Pubcomp",
    "Publish",
    "Pubrec",
    "Pubrel",
    "ReasonCode",
    "Suback",
    "Subscribe",
    "SubscriptionRequest",
    "Unsuback",
    "Unsubscribe",
    "UnsupportedProtocolVersion",
    "Will",
    "decodeAll",
    "encode",
    "encodeAck",
    "publishFirstByte",
]
