"""
Every plug-in point of mqttd, as zope.interface interfaces, in one place.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface


class IMQTTClient(Interface):
    """
    The avatar interface of C{twisted.cred} authentication for MQTT: what a
    realm returns for an authenticated client.
    """

    username = Attribute("The user name the client is known by, or None.")


class IAuthExchange(Interface):
    """
    One MQTT 5.0 enhanced-authentication conversation with one client (the
    CONNECT and its AUTH packets, or a re-authentication started by the
    client with AUTH 0x19).
    """

    def step(data: bytes | None) -> Any:
        """
        Take the next piece of Authentication Data from the client (the
        first call gets the CONNECT's or the re-authenticating AUTH's; then
        each AUTH's) and decide.

        @return: an L{mqttd.auth.AuthContinue} (send this data to the
            client in AUTH 0x18 and wait for its answer), an
            L{mqttd.auth.AuthSuccess} (the client is authenticated) or an
            L{mqttd.auth.AuthFailure} (refuse with its reason code), or a
            C{Deferred} firing with one.  An exception, a failed Deferred or
            anything else fails closed (0x87 Not authorized).
        """


class IEnhancedAuthenticator(Interface):
    """
    An MQTT 5.0 enhanced authentication method (section 4.12), such as
    SCRAM-SHA-256: the broker runs the AUTH packet flow, the authenticator
    decides each step.
    """

    method = Attribute(
        "The Authentication Method name (a str) this authenticator handles, "
        "e.g. 'SCRAM-SHA-256'; CONNECTs naming another method get CONNACK 0x8C."
    )

    def newExchange(clientId: str, connect: Any, reauthentication: bool) -> IAuthExchange:
        """
        Start a conversation.

        @param clientId: the client identifier (assigned by the broker if
            the client sent an empty one).
        @param connect: the L{mqttd.codec.Connect} packet of the connection.
        @param reauthentication: C{True} for a re-authentication after
            CONNACK (section 4.12.1).
        """
