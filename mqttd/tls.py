"""
TLS listeners that verify client certificates: the C{mtls:} server
endpoint.

Twisted's C{ssl:} endpoint string cannot ask for client certificates; an
C{mtls:} listener does, against the CAs it is given, optionally checks them
against certificate revocation lists, and can re-read its key, certificate,
CAs and CRLs while it runs (SIGHUP, L{mqttd.broker.Broker.reload}) without
dropping anybody: connections made before a reload keep the TLS context
they started with, new ones get the new context, and clients connected
with a certificate that a reloaded CRL revokes are disconnected.
"""

from __future__ import annotations

import ipaddress
import time
import weakref
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL
from OpenSSL.crypto import X509, X509StoreFlags
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from mqttd.config import parseBoolean
from mqttd.files import UnreadableFile, readBinaryFile
from mqttd.interfaces import IReloadable

log = Logger(namespace="mqttd")

class TLSConfigurationError(Exception):
    """
    A key, certificate, CA or CRL file cannot be used (the message says
    which file and why, in one line).
    """


def _read(path: str, what: str) -> bytes:
    try:
        return readBinaryFile(path, what)
    except UnreadableFile as e:
        raise TLSConfigurationError(str(e)) from None


def loadCertificates(path: str, what: str) -> list[x509.Certificate]:
    """
    Every certificate of a PEM file (one or a bundle).

    @raise TLSConfigurationError: if the file cannot be read or has none.
    """
    data = _read(path, what)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise TLSConfigurationError(f"{what} {path}: no PEM certificate in it")
    return certificates


def loadCRLs(path: str) -> list[x509.CertificateRevocationList]:
    """
    The certificate revocation lists of a file: one DER CRL, or any number
    of PEM ones.

    @raise TLSConfigurationError: if the file cannot be read or parsed.
    """
    data = _read(path, "crlFile")
    marker = b"-----BEGIN X509 CRL-----"
    try:
        if marker not in data:
            return [x509.load_der_x509_crl(data)]
        crls = []
        for chunk in data.split(marker)[1:]:
            crls.append(x509.load_pem_x509_crl(marker + chunk))
        return crls
    except ValueError as e:
        raise TLSConfigurationError(f"crlFile {path}: not a CRL ({e})") from None


def isRevoked(certificate: x509.Certificate,
              crls: Sequence[x509.CertificateRevocationList]) -> bool:
    """
    Whether one of C{crls}, from C{certificate}'s issuer, lists it.
    """
    for crl in crls:
        if crl.issuer == certificate.issuer:
            if crl.get_revoked_certificate_by_serial_number(certificate.serial_number):
                return True
    return False


@implementer(IOpenSSLServerConnectionCreator, IReloadable)
class ReloadableServerTLS:
    """
    Makes the server side of TLS connections from files it can re-read.

    @ivar crls: the revocation lists in force.
    """

    def __init__(
        self,
        privateKey: str,
        certKey: str,
        caCerts: str,
        crlFile: str | None = None,
        requireCertificate: bool = True,
        extraCertChain: str | None = None,
    ) -> None:
        """
        Read the files (L{TLSConfigurationError} if one is unusable).

        @param privateKey: the server's private key (PEM).
        @param certKey: the server's certificate (PEM), optionally followed
            by the intermediate certificates of its chain.
        @param caCerts: the CAs client certificates must chain to (PEM,
            one or more).
        @param crlFile: revocation lists of those CAs (PEM or DER); with
            one, every client certificate is checked against the CRL of its
            issuer, which must be in the file.
        @param requireCertificate: whether a client without a certificate
            is refused during the handshake (otherwise it may authenticate
            by other means, e.g. a password).
        @param extraCertChain: more intermediate certificates to send.
        """
        self.privateKey = privateKey
        self.certKey = certKey
        self.caCerts = caCerts
        self.crlFile = crlFile
        self.requireCertificate = requireCertificate
        self.extraCertChain = extraCertChain
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._context, self.crls = self._load()

    def __repr__(self) -> str:
        return f"<mtls listener certKey={self.certKey!r} caCerts={self.caCerts!r}>"

    def _load(self) -> tuple[SSL.Context, list[x509.CertificateRevocationList]]:
        keyData = _read(self.privateKey, "privateKey")
        try:
            key = load_pem_private_key(keyData, password=None)
        except (ValueError, TypeError) as e:
            raise TLSConfigurationError(
                f"privateKey {self.privateKey}: not an unencrypted PEM private key ({e})"
            ) from None
        chain = loadCertificates(self.certKey, "certKey")
        if self.extraCertChain is not None:
            chain += loadCertificates(self.extraCertChain, "extraCertChain")
        certificate, intermediates = chain[0], chain[1:]
        if certificate.public_key() != key.public_key():
            raise TLSConfigurationError(
                f"certKey {self.certKey}: the certificate does not match privateKey "
                f"{self.privateKey}"
            )
        authorities = loadCertificates(self.caCerts, "caCerts")
        crls = loadCRLs(self.crlFile) if self.crlFile is not None else []
        for crl in crls:
            issuers = [ca for ca in authorities if ca.subject == crl.issuer]
            if not any(_signedBy(crl, ca) for ca in issuers):
                raise TLSConfigurationError(
                    f"crlFile {self.crlFile}: a CRL from {crl.issuer.rfc4514_string()} is not "
                    f"signed by a CA of caCerts {self.caCerts}"
                )
            nextUpdate = crl.next_update_utc
            if nextUpdate is not None and nextUpdate.timestamp() < time.time():
                # OpenSSL refuses every certificate of that CA until a
                # fresh CRL is loaded: say so loudly.
                log.warn(
                    "crlFile {path}: the CRL of {issuer} expired on {when}: clients with "
                    "certificates from that CA are refused until a new CRL is loaded",
                    path=self.crlFile, issuer=crl.issuer.rfc4514_string(),
                    when=nextUpdate.isoformat(),
                )
        options = CertificateOptions(
            privateKey=key,  # type: ignore[arg-type]
            certificate=X509.from_cryptography(certificate),
            extraCertChain=[X509.from_cryptography(c) for c in intermediates],
            verify=True,
            caCerts=[X509.from_cryptography(ca) for ca in authorities],
            requireCertificate=self.requireCertificate,
            raiseMinimumTo=TLSVersion.TLSv1_2,
        )
        context = options.getContext()
        # No client-initiated renegotiation (TLS 1.2): a cheap way to make
        # the server do expensive work (catalogue AU-14).
        context.set_options(SSL.OP_NO_RENEGOTIATION)
        if crls:
            store = context.get_cert_store()
            assert store is not None
            for crl in crls:
                store.add_crl(crl)
            store.set_flags(X509StoreFlags.CRL_CHECK)
        return context, crls

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """
        A connection on the context in force now.
        """
        self._connections.add(tlsProtocol)
        return SSL.Connection(self._context, None)

    def reload(self) -> None:
        """
        Re-read every file; on success new connections use them and
        clients connected with a certificate one of the new CRLs revokes
        are disconnected (v5 DISCONNECT 0x87).  On failure nothing changes.

        @raise TLSConfigurationError: if a file is unusable.
        """
        self._context, self.crls = self._load()
        if not self.crls:
            return
        for tlsProtocol in list(self._connections):
            mqtt: Any = getattr(tlsProtocol, "wrappedProtocol", None)
            certificate = getattr(mqtt, "peerCertificate", None)
            if certificate is None or not isRevoked(certificate, self.crls):
                continue
            log.info("{clientId!r} disconnected: its certificate ({subject}, serial {serial}) "
                     "is revoked", clientId=mqtt.clientId,
                     subject=certificate.subject.rfc4514_string(),
                     serial=certificate.serial_number)
            mqtt.closeWith(0x87, "certificate revoked")


def _signedBy(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@implementer(IStreamServerEndpoint, IReloadable)
class MutualTLSServerEndpoint:
    """
    A TCP listener whose connections speak TLS with client certificates
    (see L{ReloadableServerTLS}).
    """

    def __init__(self, reactor: Any, port: int, tls: ReloadableServerTLS,
                 interface: str = "", backlog: int = 50) -> None:
        self.tls = tls
        endpointClass: Any = TCP4ServerEndpoint
        if interface and ":" in interface:
            endpointClass = TCP6ServerEndpoint
        self._tcp = endpointClass(reactor, port, backlog, interface)

    def listen(self, protocolFactory: IProtocolFactory) -> Any:
        """
        Listen; each connection is TLS around C{protocolFactory}'s protocol.

        @return: a Deferred firing with the L{IListeningPort}.
        """
        result: Any = self._tcp.listen(TLSMemoryBIOFactory(self.tls, False, protocolFactory))
        return result

    def reload(self) -> None:
        """
        Re-read the key, certificates and CRLs (L{ReloadableServerTLS.reload}).
        """
        self.tls.reload()

    def __repr__(self) -> str:
        return repr(self.tls)


def parseMutualTLS(reactor: Any, port: str | None = None, *args: str,
                   **kwargs: str) -> MutualTLSServerEndpoint:
    """
    Make an endpoint from the arguments of an C{mtls:} endpoint string:
    C{mtls:PORT:privateKey=KEY.pem:certKey=CERT.pem:caCerts=CA.pem}
    [C{:crlFile=CRL.pem}] [C{:requireCertificate=yes|no}]
    [C{:extraCertChain=CHAIN.pem}] [C{:interface=ADDRESS}] [C{:backlog=N}].

    @raise ValueError: for a missing or bad argument, or an unusable file
        (the message is one line).
    """
    if args:
        raise ValueError(f"mtls: unexpected argument {args[0]!r}")
    if port is None:
        port = kwargs.pop("port", None)
    if port is None:
        raise ValueError("mtls: a port is required (mtls:8883:...)")
    try:
        portNumber = int(port)
    except ValueError:
        raise ValueError(f"mtls: bad port {port!r}") from None
    if not 0 <= portNumber <= 65535:
        raise ValueError(f"mtls: bad port {port!r}")
    known = {"privateKey", "certKey", "caCerts", "crlFile", "requireCertificate",
             "extraCertChain", "interface", "backlog"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"mtls: unknown argument {unknown[0]!r} (known: "
                         f"{', '.join(sorted(known))})")
    for required in ("privateKey", "certKey", "caCerts"):
        if not kwargs.get(required):
            raise ValueError(f"mtls: {required}= is required")
    try:
        requireCertificate = parseBoolean(kwargs.get("requireCertificate", "yes"))
    except ValueError as e:
        raise ValueError(f"mtls: requireCertificate {e}") from None
    interface = kwargs.get("interface", "").strip("[]")
    if interface:
        try:
            ipaddress.ip_address(interface)
        except ValueError:
            if interface != "localhost":
                raise ValueError(f"mtls: bad interface {interface!r}") from None
    try:
        backlog = int(kwargs.get("backlog", "50"))
    except ValueError:
        raise ValueError(f"mtls: bad backlog {kwargs['backlog']!r}") from None
    try:
        tls = ReloadableServerTLS(
            kwargs["privateKey"], kwargs["certKey"], kwargs["caCerts"],
            kwargs.get("crlFile"), requireCertificate, kwargs.get("extraCertChain"),
        )
    except TLSConfigurationError as e:
        raise ValueError(f"mtls: {e}") from None
    return MutualTLSServerEndpoint(reactor, portNumber, tls, interface, backlog)
