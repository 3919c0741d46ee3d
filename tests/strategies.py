"""
Hypothesis strategies for MQTT packets, built from the specification tables.

Every strategy produces only packets that a conforming peer may send: valid
UTF-8 strings without U+0000, controls or non-characters (mqttd's strict
default), topic names without wildcards, properties drawn from the packet's
allowed set (MQTT 5.0 section 2.2.2.2, mirrored by
L{mqttd.codec.properties.ALLOWED}) with values in range, and reason codes
from the MQTT 5.0 tables (section 2.4 and each packet's reason code table),
written out here from the specification rather than taken from the codec.

Direction matters: L{clientPackets} are what a client sends (decoded by a
server-side decoder), L{serverPackets} what a server sends (decoded by a
client-side decoder).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mqttd.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    NO_PROPERTIES,
    Auth,
    Connack,
    Connect,
    Disconnect,
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
from mqttd.codec.properties import ALLOWED, PROPERTY_TYPES, WILL, PropertyId, PropertyType

P = PropertyId

#: The largest Variable Byte Integer (MQTT 5.0 section 1.5.5).
MAX_VARINT = 268_435_455

# Reason codes per packet type, from MQTT 5.0 sections 3.2.2.2 (CONNACK),
# 3.4.2.1 (PUBACK), 3.5.2.1 (PUBREC), 3.6.2.1 (PUBREL), 3.7.2.1 (PUBCOMP),
# 3.9.3 (SUBACK), 3.11.3 (UNSUBACK), 3.14.2.1 (DISCONNECT), 3.15.2.1 (AUTH).
CONNACK_CODES_V5 = (
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
    0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
)
PUBACK_CODES_V5 = (0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
PUBREC_CODES_V5 = PUBACK_CODES_V5
PUBREL_CODES_V5 = (0x00, 0x92)
PUBCOMP_CODES_V5 = PUBREL_CODES_V5
SUBACK_CODES_V5 = (0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
UNSUBACK_CODES_V5 = (0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
DISCONNECT_CODES_V5 = (
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90,
    0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F,
    0xA0, 0xA1, 0xA2,
)
AUTH_CODES_V5 = (0x00, 0x18, 0x19)
#: MQTT 3.1.1 section 3.2.2.3: return codes 0 to 5.
CONNACK_CODES_V3 = (0, 1, 2, 3, 4, 5)
#: MQTT 3.1.1 section 3.9.3 (0x80 is Failure); MQTT 3.1 has no failure code.
SUBACK_CODES = {MQTT_3_1: (0, 1, 2), MQTT_3_1_1: (0, 1, 2, 0x80), MQTT_5: SUBACK_CODES_V5}

#: Byte properties whose only valid values are 0 and 1 (every Byte property).
_BOOLEAN = {
    P.PAYLOAD_FORMAT_INDICATOR, P.REQUEST_PROBLEM_INFORMATION,
    P.REQUEST_RESPONSE_INFORMATION, P.MAXIMUM_QOS, P.RETAIN_AVAILABLE,
    P.WILDCARD_SUBSCRIPTION_AVAILABLE, P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    P.SHARED_SUBSCRIPTION_AVAILABLE,
}
#: Integer properties for which 0 is a Protocol Error.
_NONZERO = {P.RECEIVE_MAXIMUM, P.MAXIMUM_PACKET_SIZE, P.TOPIC_ALIAS}


def isDisallowedCodePoint(cp: int) -> bool:
    """
    Whether mqttd's strict strings reject code point C{cp}: U+0000 always
    [MQTT-1.5.4-2], and the controls U+0001..U+001F, U+007F..U+009F and the
    Unicode non-characters (U+FDD0..U+FDEF and the last two code points of
    every plane) that MQTT 5.0 section 1.5.4 says a receiver MAY reject.
    """
    return (
        cp <= 0x1F
        or 0x7F <= cp <= 0x9F
        or 0xFDD0 <= cp <= 0xFDEF
        or (cp & 0xFFFE) == 0xFFFE
    )


#: Characters allowed in strict strings (no surrogates: they cannot be UTF-8).
validCharacters = st.characters(exclude_categories=("Cs",)).filter(
    lambda c: not isDisallowedCodePoint(ord(c))
)

#: Mostly ASCII with the occasional multi-byte character, so that '/' and
#: the MQTT-specific characters come up often.
_stringCharacters = st.one_of(
    st.sampled_from("abcxyz/ $-_.09AZ"), validCharacters, st.sampled_from("é€𪛔\u00a0\ufeff")
)
_topicCharacters = _stringCharacters.filter(lambda c: c not in "+#")


def strings(minSize: int = 0, maxSize: int = 12) -> st.SearchStrategy[str]:
    """
    Valid UTF-8 Encoded Strings for a strict receiver.
    """
    return st.text(_stringCharacters, min_size=minSize, max_size=maxSize)


#: Topic names: non-empty, no wildcards [MQTT-3.3.2-2], [MQTT-4.7.3-1].
topicNames = st.text(_topicCharacters, min_size=1, max_size=12)

#: Topic filters: non-empty strings; the codec leaves wildcard placement to
#: L{mqttd.topics}, so well-placed wildcards are enough here.
topicFilters = st.one_of(
    st.text(_topicCharacters, min_size=1, max_size=12),
    st.sampled_from(["#", "+", "a/+", "a/#", "+/b/#", "$share/g/a/+", "/"]),
)

packetIds = st.integers(1, 0xFFFF)
payloads = st.binary(max_size=40)
userProperties = st.lists(st.tuples(strings(), strings()), min_size=1, max_size=4).map(tuple)


def propertyValues(ident: int, subscriptionIds: int = 1) -> st.SearchStrategy[Any]:
    """
    Valid values of property C{ident}.

    @param subscriptionIds: how many Subscription Identifiers one packet may
        carry (a PUBLISH from a server carries one per matching subscription,
        a SUBSCRIBE at most one).
    """
    kind = PROPERTY_TYPES[ident]
    if ident == P.USER_PROPERTY:
        return userProperties
    if ident == P.SUBSCRIPTION_IDENTIFIER:
        return st.lists(
            st.integers(1, MAX_VARINT), min_size=1, max_size=subscriptionIds
        ).map(tuple)
    if ident == P.RESPONSE_TOPIC:
        return topicNames
    low = 1 if ident in _NONZERO else 0
    if kind == PropertyType.BYTE:
        return st.integers(0, 1) if ident in _BOOLEAN else st.integers(0, 0xFF)
    if kind == PropertyType.TWO_BYTE:
        return st.integers(low, 0xFFFF)
    if kind == PropertyType.FOUR_BYTE:
        return st.integers(low, 0xFFFFFFFF)
    if kind == PropertyType.STRING:
        return strings()
    if kind == PropertyType.BINARY:
        return st.binary(max_size=12)
    raise AssertionError(f"no strategy for property 0x{ident:02X}")  # pragma: no cover


@st.composite
def properties(
    draw: st.DrawFn,
    kind: int,
    exclude: frozenset[int] = frozenset(),
    require: frozenset[int] = frozenset(),
    subscriptionIds: int = 1,
) -> Any:
    """
    A random property set for packet type C{kind} (or L{WILL}), in random
    order, each property at most once except User Property (several pairs,
    order kept) and, where allowed, Subscription Identifier.

    @param exclude: properties never to draw.
    @param require: properties always to draw.
    @return: a C{dict}, or L{NO_PROPERTIES} if empty.
    """
    allowed = sorted(ALLOWED[kind] - exclude)
    idents = draw(st.lists(st.sampled_from(allowed), unique=True, max_size=len(allowed)))
    for ident in sorted(require - set(idents)):
        idents.insert(draw(st.integers(0, len(idents))), ident)
    if P.AUTHENTICATION_DATA in idents and P.AUTHENTICATION_METHOD not in idents:
        # Authentication Data without a method is a Protocol Error
        # (MQTT 5.0 section 3.1.2.11.10).
        idents.remove(P.AUTHENTICATION_DATA)
    if not idents:
        return NO_PROPERTIES
    return {ident: draw(propertyValues(ident, subscriptionIds)) for ident in idents}


def _props(level: int, kind: int, **kwargs: Any) -> st.SearchStrategy[Any]:
    if level != MQTT_5:
        return st.just(NO_PROPERTIES)
    return properties(kind, **kwargs)


@st.composite
def wills(draw: st.DrawFn, level: int) -> Will:
    """
    A will message for a CONNECT at C{level}.
    """
    return Will(
        draw(topicNames),
        draw(payloads),
        draw(st.integers(0, 2)),
        draw(st.booleans()),
        draw(_props(level, WILL)),
    )


@st.composite
def connects(draw: st.DrawFn, level: int) -> Connect:
    """
    A CONNECT at C{level}.  Before MQTT 5.0 a password needs a user name
    [MQTT-3.1.2-22].
    """
    username = draw(st.none() | strings())
    if username is None and level != MQTT_5:
        password = None
    else:
        password = draw(st.none() | st.binary(max_size=12))
    return Connect(
        clientId=draw(strings(maxSize=23)),
        protocolLevel=level,
        cleanStart=draw(st.booleans()),
        keepAlive=draw(st.integers(0, 0xFFFF)),
        will=draw(st.none() | wills(level)),
        username=username,
        password=password,
        properties=draw(_props(level, 1)),
    )


@st.composite
def connacks(draw: st.DrawFn, level: int) -> Connack:
    """
    A CONNACK.  Session Present is only set on success [MQTT-3.2.2-4]
    (MQTT 3.1 has no Session Present flag at all).
    """
    codes = CONNACK_CODES_V5 if level == MQTT_5 else CONNACK_CODES_V3
    code = draw(st.sampled_from(codes))
    present = draw(st.booleans()) if code == 0 and level != MQTT_3_1 else False
    return Connack(present, code, draw(_props(level, 2)))


@st.composite
def publishes(draw: st.DrawFn, level: int, toServer: bool) -> Publish:
    """
    A PUBLISH.  QoS 0 has no packet identifier and DUP 0 [MQTT-3.3.1-2]; in
    MQTT 5.0 an empty topic comes with a Topic Alias, and a client never
    sends a Subscription Identifier [MQTT-3.3.4-6].
    """
    qos = draw(st.integers(0, 2))
    packetId = draw(packetIds) if qos else None
    dup = draw(st.booleans()) if qos else False
    props: Any = NO_PROPERTIES
    topic = draw(topicNames)
    if level == MQTT_5:
        exclude = frozenset({P.SUBSCRIPTION_IDENTIFIER}) if toServer else frozenset()
        if draw(st.integers(0, 4)) == 0:
            topic = ""
            props = draw(properties(3, exclude, frozenset({P.TOPIC_ALIAS}), 3))
        else:
            props = draw(properties(3, exclude, subscriptionIds=3))
    return Publish(topic, draw(payloads), qos, draw(st.booleans()), dup, packetId, props)


@st.composite
def acks(draw: st.DrawFn, level: int, cls: type, codes: tuple[int, ...], kind: int) -> Any:
    """
    A PUBACK, PUBREC, PUBREL or PUBCOMP (reason codes and properties only in
    MQTT 5.0).
    """
    if level != MQTT_5:
        return cls(draw(packetIds))
    return cls(draw(packetIds), draw(st.sampled_from(codes)), draw(properties(kind)))


@st.composite
def subscribes(draw: st.DrawFn, level: int) -> Subscribe:
    """
    A SUBSCRIBE with one to four filters; the No Local, Retain As Published
    and Retain Handling options exist only in MQTT 5.0 (Retain Handling 3
    is a Protocol Error).
    """
    v5 = level == MQTT_5
    requests = draw(
        st.lists(
            st.builds(
                SubscriptionRequest,
                topicFilters,
                st.integers(0, 2),
                st.booleans() if v5 else st.just(False),
                st.booleans() if v5 else st.just(False),
                st.integers(0, 2) if v5 else st.just(0),
            ),
            min_size=1,
            max_size=4,
        )
    )
    return Subscribe(draw(packetIds), tuple(requests), draw(_props(level, 8)))


@st.composite
def subacks(draw: st.DrawFn, level: int) -> Suback:
    """
    A SUBACK with one to four codes valid at C{level}.
    """
    codes = draw(st.lists(st.sampled_from(SUBACK_CODES[level]), min_size=1, max_size=4))
    return Suback(draw(packetIds), tuple(codes), draw(_props(level, 9)))


@st.composite
def unsubscribes(draw: st.DrawFn, level: int) -> Unsubscribe:
    """
    An UNSUBSCRIBE with one to four filters.
    """
    filters = draw(st.lists(topicFilters, min_size=1, max_size=4))
    return Unsubscribe(draw(packetIds), tuple(filters), draw(_props(level, 10)))


@st.composite
def unsubacks(draw: st.DrawFn, level: int) -> Unsuback:
    """
    An UNSUBACK: before MQTT 5.0 it has no reason codes.
    """
    if level != MQTT_5:
        return Unsuback(draw(packetIds))
    codes = draw(st.lists(st.sampled_from(UNSUBACK_CODES_V5), min_size=1, max_size=4))
    return Unsuback(draw(packetIds), tuple(codes), draw(properties(11)))


@st.composite
def disconnects(draw: st.DrawFn, level: int, toServer: bool) -> Disconnect:
    """
    A DISCONNECT (reason code and properties only in MQTT 5.0).  A server
    never sends a Session Expiry Interval in it [MQTT-3.14.2-2].
    """
    if level != MQTT_5:
        return Disconnect()
    exclude = frozenset() if toServer else frozenset({P.SESSION_EXPIRY_INTERVAL})
    return Disconnect(
        draw(st.sampled_from(DISCONNECT_CODES_V5)), draw(properties(14, exclude))
    )


@st.composite
def auths(draw: st.DrawFn) -> Auth:
    """
    An MQTT 5.0 AUTH: either the bare C{F0 00} form or a reason code with an
    Authentication Method (MQTT 5.0 section 3.15.2.2.2).
    """
    if draw(st.booleans()):
        return Auth()
    return Auth(
        draw(st.sampled_from(AUTH_CODES_V5)),
        draw(properties(15, require=frozenset({P.AUTHENTICATION_METHOD}))),
    )


def clientPackets(level: int) -> st.SearchStrategy[Any]:
    """
    Any packet a client may send after its CONNECT at C{level}.
    """
    options = [
        publishes(level, True),
        acks(level, Puback, PUBACK_CODES_V5, 4),
        acks(level, Pubrec, PUBREC_CODES_V5, 5),
        acks(level, Pubrel, PUBREL_CODES_V5, 6),
        acks(level, Pubcomp, PUBCOMP_CODES_V5, 7),
        subscribes(level),
        unsubscribes(level),
        st.just(Pingreq()),
        disconnects(level, True),
    ]
    if level == MQTT_5:
        options.append(auths())
    return st.one_of(options)


def serverPackets(level: int) -> st.SearchStrategy[Any]:
    """
    Any packet a server may send to a client at C{level}.
    """
    options = [
        connacks(level),
        publishes(level, False),
        acks(level, Puback, PUBACK_CODES_V5, 4),
        acks(level, Pubrec, PUBREC_CODES_V5, 5),
        acks(level, Pubrel, PUBREL_CODES_V5, 6),
        acks(level, Pubcomp, PUBCOMP_CODES_V5, 7),
        subacks(level),
        unsubacks(level),
        st.just(Pingresp()),
        disconnects(level, False),
    ]
    if level == MQTT_5:
        options.append(auths())
    return st.one_of(options)


levels = st.sampled_from((MQTT_3_1, MQTT_3_1_1, MQTT_5))
