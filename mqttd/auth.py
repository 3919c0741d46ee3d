"""
Authentication glue: C{twisted.cred} credentials from a CONNECT, and the
answers of MQTT 5.0 enhanced authentication steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.cred.checkers import ANONYMOUS, ICredentialsChecker
from twisted.cred.credentials import Anonymous, ICredentials, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from mqttd.codec import Connect
from mqttd.interfaces import IClientInfo, IMQTTClient, IX509Certificate

log = Logger(namespace="mqttd")


class ClientIdRefused(UnauthorizedLogin):
    """
    A checker's refusal of the client id the CONNECT uses (e.g. not the one
    its certificate names): CONNACK 0x85 (3.1.x: 2, identifier rejected).
    """


class ConnectUsernamePassword(UsernamePassword):
    """
    The user name and password of a CONNECT, with what else the client
    presented: its client id and, on an C{mtls:} listener, its verified
    certificate (then the object also provides L{IX509Certificate}).
    """

    def __init__(self, username: bytes, password: bytes, clientId: str,
                 certificate: Any = None) -> None:
        super().__init__(username, password)
        self.clientId = clientId
        self.certificate = certificate


class ConnectAnonymous(Anonymous):
    """
    A CONNECT without a user name (see L{ConnectUsernamePassword}).
    """

    def __init__(self, clientId: str, certificate: Any = None) -> None:
        self.clientId = clientId
        self.certificate = certificate


def credentialsFromConnect(packet: Connect, certificate: Any = None,
                           clientId: str | None = None) -> ICredentials:
    """
    The C{twisted.cred} credentials a CONNECT presents: C{UsernamePassword}
    when it has a user name, C{Anonymous} otherwise; either also provides
    L{IX509Certificate} when the client presented a verified certificate
    (so an C{x509} checker, a password checker or anonymous access may
    decide, in the configured order).

    @param certificate: the client's verified TLS certificate (a
        C{cryptography.x509.Certificate}), if any.
    @param clientId: the client id in use (the one the broker assigned when
        the CONNECT had none); by default the CONNECT's.
    """
    if clientId is None:
        clientId = packet.clientId
    credentials: ICredentials
    if packet.username is not None:
        credentials = ConnectUsernamePassword(
            packet.username.encode("utf-8"),
            packet.password if packet.password is not None else b"",
            clientId,
            certificate,
        )
    else:
        credentials = ConnectAnonymous(clientId, certificate)
    if certificate is not None:
        alsoProvides(credentials, IX509Certificate)
    return credentials


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


@implementer(IMQTTClient)
class UnauthenticatedClient:
    """
    The identity of a client accepted on a listener without authentication.

    @ivar username: the user name it claimed, unchecked.
    """

    #: Sessions are not bound to unauthenticated identities.
    key = None

    def __init__(self, username: str | None) -> None:
        self.username = username

    def __repr__(self) -> str:
        return f"<unauthenticated {self.username!r}>"


class AuthenticatedIdentity:
    """
    An avatar id a checker may return instead of a plain user name, to say
    more: what kind of identity it is (identities of different kinds never
    share sessions, catalogue AU-12) and a client id the client must use.

    @ivar username: the user name authorizers and ACLs see.
    @ivar kind: C{"user"} for identities proven by a password or token,
        C{"x509"} for certificates, or a plug-in's own word.
    @ivar clientId: the client id the connection gets (replacing the
        CONNECT's), or L{None} to keep it.
    """

    __slots__ = ("username", "kind", "clientId")

    def __init__(self, username: str, kind: str = "user", clientId: str | None = None) -> None:
        self.username = username
        self.kind = kind
        self.clientId = clientId

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuthenticatedIdentity):
            return NotImplemented
        return (self.username, self.kind, self.clientId) == (
            other.username, other.kind, other.clientId)

    def __hash__(self) -> int:
        return hash((self.username, self.kind, self.clientId))

    def __repr__(self) -> str:
        return f"<{self.kind} identity {self.username!r}>"


@implementer(IMQTTClient)
class ClientIdentity:
    """
    The identity of an authenticated client: what the realm makes of the
    avatar id its checker returned.

    @ivar username: the user name (the avatar id as text), or L{None} for an
        anonymous client.
    @ivar key: what a session is bound to: the same key may resume it.
    """

    def __init__(self, avatarId: Any) -> None:
        self.avatarId = avatarId
        #: The client id the connection must use (see L{AuthenticatedIdentity}).
        self.clientId: str | None = None
        self.username: str | None
        self.key: Any
        if isinstance(avatarId, AuthenticatedIdentity):
            self.username = avatarId.username
            self.clientId = avatarId.clientId
            self.key = (avatarId.kind, avatarId.username.encode("utf-8"))
        elif avatarId is ANONYMOUS or avatarId == ANONYMOUS:
            self.username = None
            self.key = ("anonymous",)
        else:
            if isinstance(avatarId, bytes):
                self.username = avatarId.decode("utf-8", "replace")
            else:
                self.username = str(avatarId)
            # By the raw bytes of the id (a str id as UTF-8): the same user
            # from any checker has one key, and two byte ids that decode
            # alike stay apart.
            raw = avatarId if isinstance(avatarId, bytes) else self.username.encode("utf-8")
            self.key = ("user", raw)

    def __repr__(self) -> str:
        return f"<ClientIdentity {self.username!r}>"


@implementer(IRealm)
class MQTTRealm:
    """
    The realm of MQTT clients: every avatar id becomes a L{ClientIdentity}.
    """

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IMQTTClient in interfaces:
            return IMQTTClient, ClientIdentity(avatarId), lambda: None
        raise NotImplementedError("mqttd's realm only makes IMQTTClient avatars")


@implementer(ICredentialsChecker)
class CheckerChain:
    """
    Several credentials checkers asked in order (Twisted's C{Portal} keeps
    one checker per credentials interface; this is one that chains).

    A checker's C{UnhandledCredentials} means "next"; C{UnauthorizedLogin}
    means deny; any other error is logged and denies (fail closed); when
    every checker passed, C{UnhandledCredentials} is the answer.
    """

    def __init__(self, checkers: Iterable[ICredentialsChecker]) -> None:
        self.checkers = list(checkers)
        interfaces: list[Any] = []
        for checker in self.checkers:
            for interface in checker.credentialInterfaces:
                if interface not in interfaces:
                    interfaces.append(interface)
        self.credentialInterfaces = tuple(interfaces)

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        candidates = [
            checker for checker in self.checkers
            if any(i.providedBy(credentials) for i in checker.credentialInterfaces)
        ]
        return self._ask(candidates, 0, credentials)

    def _ask(self, candidates: list[Any], index: int, credentials: Any) -> Deferred[Any]:
        if index >= len(candidates):
            return fail(UnhandledCredentials("no authenticator knows these credentials"))
        d = maybeDeferred(candidates[index].requestAvatarId, credentials)

        def failed(failure: Failure) -> Any:
            if failure.check(UnhandledCredentials):
                return self._ask(candidates, index + 1, credentials)
            if failure.check(UnauthorizedLogin):
                return failure
            log.failure("authenticator {checker!r} failed", failure, checker=candidates[index])
            return Failure(UnauthorizedLogin("authentication error"))

        return d.addErrback(failed)


# -- authorization decisions ----------------------------------------------------


class _Allow:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ALLOW"


class _Next:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEXT"


#: An authorizer's "yes".
ALLOW = _Allow()
#: An authorizer's "no opinion: ask the next one" (all "next" means deny).
NEXT = _Next()


@dataclass(frozen=True)
class Deny:
    """
    An authorizer's "no", with the v5 reason code the client gets (0x87
    Not authorized by default) and a Reason String.
    """

    reasonCode: int = 0x87
    reason: str = "not authorized"


#: The default refusal.
DENY = Deny()


@implementer(IClientInfo)
class ClientInfo:
    """
    What authorizers and hooks learn about a connected client.
    """

    __slots__ = ("clientId", "username", "identity", "protocolLevel", "peer")

    def __init__(
        self, clientId: str, username: str | None, identity: Any, protocolLevel: int, peer: str
    ) -> None:
        self.clientId = clientId
        self.username = username
        self.identity = identity
        self.protocolLevel = protocolLevel
        self.peer = peer

    def __repr__(self) -> str:
        return f"<ClientInfo {self.clientId!r} user={self.username!r}>"
