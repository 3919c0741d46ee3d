"""
Authentication glue: C{twisted.cred} credentials from a CONNECT, and the
answers of MQTT 5.0 enhanced authentication steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.cred.credentials import Anonymous, ICredentials, UsernamePassword

from mqttd.codec import Connect


def credentialsFromConnect(packet: Connect) -> ICredentials:
    """
    The C{twisted.cred} credentials a CONNECT presents: C{UsernamePassword}
    when it has a user name, C{Anonymous} otherwise.
    """
    if packet.username is not None:
        return UsernamePassword(
            packet.username.encode("utf-8"),
            packet.password if packet.password is not None else b"",
        )
    return Anonymous()


@dataclass(frozen=True)
class AuthContinue:
    """
    An enhanced-authentication step wants another round: C{data} goes to the
    client in AUTH with reason code 0x18 (Continue authentication).
    """

    data: bytes = b""


@dataclass(frozen=True)
class AuthSuccess:
    """
    The client is authenticated as C{identity}; C{data}, if any, goes to the
    client in the CONNACK (or the AUTH 0x00 that ends a re-authentication).
    """

    identity: Any = None
    data: bytes | None = None


@dataclass(frozen=True)
class AuthFailure:
    """
    The client is refused with C{reasonCode} (0x86 Bad user name or
    password, 0x87 Not authorized, 0x8A Banned, ...); C{reason} becomes the
    v5 Reason String.
    """

    reasonCode: int = 0x87
    reason: str = "not authorized"


AuthResult = AuthContinue | AuthSuccess | AuthFailure


class UnauthenticatedClient:
    """
    The identity of a client accepted on a listener without authentication.

    @ivar username: the user name it claimed, unchecked.
    """

    def __init__(self, username: str | None) -> None:
        self.username = username

    def __repr__(self) -> str:
        return f"<unauthenticated {self.username!r}>"
