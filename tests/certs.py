"""
Certificates for the TLS tests, made with C{cryptography}: CAs, server
certificates (for 127.0.0.1, ::1 and localhost, or for given names), client
certificates (valid, expired, not yet valid, odd subjects) and CRLs, written
as PEM files.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_NOW = datetime.datetime.now(datetime.timezone.utc)
_DAY = datetime.timedelta(days=1)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


@dataclass
class Issued:
    """
    A certificate and its key, and the PEM files they are in.
    """

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    certPath: str
    keyPath: str


class CertificateAuthority:
    """
    A CA that issues server and client certificates and CRLs into
    C{directory}.
    """

    def __init__(self, directory: str, name: str = "mqttd test CA") -> None:
        self.directory = directory
        self.name = name
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - _DAY)
            .not_valid_after(_NOW + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        slug = name.replace(" ", "-")
        self.certPath = _write(
            os.path.join(directory, f"{slug}.pem"),
            self.certificate.public_bytes(serialization.Encoding.PEM),
        )
        self._issued: list[x509.Certificate] = []

    def issue(
        self,
        fileName: str,
        subject: x509.Name,
        server: bool = False,
        notBefore: datetime.datetime | None = None,
        notAfter: datetime.datetime | None = None,
        names: Sequence[x509.GeneralName] | None = None,
    ) -> Issued:
        """
        Issue a certificate (a new key) and write C{fileName}.pem and
        C{fileName}.key.

        @param names: a server certificate's subject alternative names
            (by default 127.0.0.1, ::1 and localhost).
        """
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(notBefore or _NOW - _DAY)
            .not_valid_after(notAfter or _NOW + 10 * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(names if names is not None else [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    x509.DNSName("localhost"),
                ]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        self._issued.append(certificate)
        certPath = _write(os.path.join(self.directory, f"{fileName}.pem"),
                          certificate.public_bytes(serialization.Encoding.PEM))
        keyPath = _write(
            os.path.join(self.directory, f"{fileName}.key"),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()),
        )
        return Issued(certificate, key, certPath, keyPath)

    def server(
        self, fileName: str = "server", names: Sequence[x509.GeneralName] | None = None
    ) -> Issued:
        """
        A server certificate for 127.0.0.1, ::1 and localhost, or for
        C{names} (its subject alternative names).
        """
        return self.issue(fileName, cn("localhost"), server=True, names=names)

    def client(self, name: str, **kwargs: datetime.datetime) -> Issued:
        """
        A client certificate with common name C{name}.
        """
        return self.issue(f"client-{len(self._issued)}", cn(name), **kwargs)

    def crl(self, fileName: str, revoked: list[x509.Certificate] = (),  # type: ignore[assignment]
            nextUpdate: datetime.datetime | None = None) -> str:
        """
        Write a CRL revoking C{revoked}; return its path.
        """
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(_NOW - _DAY)
            .next_update(nextUpdate or _NOW + 7 * _DAY)
        )
        for certificate in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(certificate.serial_number)
                .revocation_date(_NOW - datetime.timedelta(minutes=1))
                .build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        return _write(os.path.join(self.directory, fileName),
                      crl.public_bytes(serialization.Encoding.PEM))


def cn(name: str, *more: x509.NameAttribute) -> x509.Name:
    """
    A subject with common name C{name} (and more attributes).
    """
    return x509.Name([*more, x509.NameAttribute(NameOID.COMMON_NAME, name)])


NOW = _NOW
DAY = _DAY
