"""
Client-certificate authentication: the C{x509} checker.

On an C{mtls:} listener the TLS layer has already verified the client's
certificate against the listener's CAs (and CRLs); this checker turns the
certificate into an identity: its subject's common name or its whole
distinguished name becomes the user name authorizers and ACLs see
(mosquitto's C{use_identity_as_username} and C{use_subject_as_username}),
and optionally the client id.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from mqttd.acl import isSafeIdentity
from mqttd.auth import AuthenticatedIdentity, ClientIdRefused
from mqttd.interfaces import IX509Certificate

#: The longest identity taken (a UTF-8 string in MQTT is at most 65,535 bytes).
MAX_IDENTITY = 65535

IDENTITIES = ("cn", "dn")
CLIENT_IDS = ("keep", "require", "replace")


def certificateIdentity(certificate: x509.Certificate, identity: str = "cn") -> str:
    """
    The identity a certificate names.

    @param identity: C{"cn"}: the subject's one common name; C{"dn"}: the
        whole subject as an RFC 4514 string (C{CN=dev1,O=Acme}).
    @raise UnauthorizedLogin: when the certificate names no usable
        identity: no common name or several, or one containing C{+},
        C{#}, C{/}, NUL, a character that is not valid UTF-8, or over
        64 KiB.
    """
    try:
        subject = certificate.subject
    except ValueError as e:
        # E.g. a UTF8String that is not UTF-8.
        raise UnauthorizedLogin(f"unreadable certificate subject: {e}") from None
    if identity == "cn":
        try:
            names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        except ValueError as e:
            raise UnauthorizedLogin(f"unreadable certificate subject: {e}") from None
        if len(names) != 1:
            raise UnauthorizedLogin(
                "the certificate has no common name" if not names
                else "the certificate has several common names"
            )
        value = names[0].value
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise UnauthorizedLogin("the certificate's common name is not UTF-8") from None
    else:
        try:
            value = subject.rfc4514_string()
        except ValueError as e:
            raise UnauthorizedLogin(f"unreadable certificate subject: {e}") from None
    if not value:
        raise UnauthorizedLogin("the certificate names an empty identity")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnauthorizedLogin("the certificate's identity is not valid UTF-8") from None
    if size > MAX_IDENTITY:
        raise UnauthorizedLogin("the certificate's identity is longer than 64 KiB")
    if not isSafeIdentity(value):
        # Characters that would be wildcards or level separators in ACL
        # patterns (%u, %c), or end a C string (catalogue AU-05).
        raise UnauthorizedLogin(
            "the certificate's identity contains '+', '#', '/' or NUL"
        )
    return value


@implementer(ICredentialsChecker)
class CertificateChecker:
    """
    Authenticates clients by the certificate their C{mtls:} listener
    verified.

    The user name is the certificate's identity; the CONNECT's user name
    and password, if any, are not used.  Identities from certificates are
    of their own kind: a session made by certificate C{CN=dev1} is not the
    session of password user C{dev1} (catalogue AU-12).
    """

    credentialInterfaces = (IX509Certificate,)

    def __init__(self, identity: str = "cn", clientId: str = "keep") -> None:
        """
        @param identity: C{"cn"} or C{"dn"} (see L{certificateIdentity}).
        @param clientId: what the identity means for the client id:
            C{"keep"} (any client id), C{"require"} (the CONNECT's client
            id must be the identity, else CONNACK 0x85) or C{"replace"}
            (the connection uses the identity as its client id; a v5 client
            learns it from the CONNACK's Assigned Client Identifier).
        """
        if identity not in IDENTITIES:
            raise ValueError(f"identity must be one of {', '.join(IDENTITIES)}")
        if clientId not in CLIENT_IDS:
            raise ValueError(f"clientid must be one of {', '.join(CLIENT_IDS)}")
        self.identity = identity
        self.clientId = clientId

    def __repr__(self) -> str:
        return f"<x509 identity={self.identity} clientid={self.clientId}>"

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        """
        The identity of the credentials' certificate.

        @return: a fired Deferred: an L{AuthenticatedIdentity}, or failing
            with C{UnauthorizedLogin} (the certificate names no usable
            identity) or L{ClientIdRefused} (C{clientid=require} and the
            client id is not the identity).
        """
        try:
            name = certificateIdentity(credentials.certificate, self.identity)
        except UnauthorizedLogin as e:
            return fail(e)
        if self.clientId == "require" and credentials.clientId != name:
            return fail(ClientIdRefused("the client id must be the certificate's identity"))
        imposed = name if self.clientId == "replace" else None
        return succeed(AuthenticatedIdentity(name, "x509", imposed))
