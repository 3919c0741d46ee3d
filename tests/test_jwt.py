"""
Tests of the C{jwt} authentication plug-in (L{mqttd.jwtauth} and its
factory): signatures with RS256/PS256/ES256/ES384/EdDSA keys from PEM files,
JWKS files and per-device key files, the time, audience and issuer claims,
the refused algorithms (C{none}, HMAC with a public key), "next" for
passwords that are not tokens, reloading, the factory's one-line errors,
an in-memory broker and a real C{twistd mqttd} process driven by paho-mqtt
and raw sockets.

Keys are made with C{cryptography} and tokens signed with PyJWT here;
expected CONNACK codes come from the MQTT specifications and
C{docs/plugins.md} (a refused password is 3.1.1 return code 4, "bad user
name or password", and v5 reason code 0x86).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, ClassVar
from unittest import mock

import jwt
import paho.mqtt.client as mqtt
from brokerprocess import RawClient
from clienthelpers import TWISTD, WAIT, MqttdProcess, packet, readPacket, uniqueName, waitForLog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.x509.oid import NameOID
from twisted.cred.checkers import ICredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import Portal
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mqttd.auth import (
    ALLOW,
    AuthenticatedIdentity,
    CheckerChain,
    ClientIdentity,
    ConnectUsernamePassword,
    MQTTRealm,
)
from mqttd.authorization import AuthorizerChain
from mqttd.codec import MQTT_3_1_1, MQTT_5, Connack, Decoder
from mqttd.interfaces import IAuthenticatorFactory, IAuthorizer, IReloadable
from mqttd.jwtauth import DEVICE_KIND, JWTChecker, JWTKeyError, isSafeDeviceName, tokenHeader
from mqttd.passwd import hashPassword, writePasswordFile
from mqttd.plugin import AUTH, PluginArguments, PluginError, availablePlugins, makePlugin
from mqttd.plugins.txmqttd_plugin import JWTFactory
from mqttd.testing import AuthenticatorConformanceMixin, InMemoryBroker

# Keys are made once: RSA key generation is the slow part.
RSA_ISSUER = rsa.generate_private_key(65537, 2048)
RSA_OTHER = rsa.generate_private_key(65537, 2048)
EC_ISSUER = ec.generate_private_key(ec.SECP256R1())
EC_OTHER = ec.generate_private_key(ec.SECP256R1())
EC_384 = ec.generate_private_key(ec.SECP384R1())
ED_ISSUER = ed25519.Ed25519PrivateKey.generate()
DEVICE_1 = ec.generate_private_key(ec.SECP256R1())
DEVICE_1_NEXT = ec.generate_private_key(ec.SECP256R1())
DEVICE_3 = ec.generate_private_key(ec.SECP256R1())

AUDIENCE = "mqttd-test"
#: What a token signed with device dev1's own key authenticates.
DEVICE_1_IDENTITY = AuthenticatedIdentity("dev1", "jwt-device")
#: 3.1.1 CONNACKs (section 3.2.2.3): accepted, bad user name or password.
ACCEPTED_V3 = bytes.fromhex("20 02 00 00")
BAD_CREDENTIALS_V3 = bytes.fromhex("20 02 00 04")


def publicPEM(*keys: Any) -> bytes:
    """
    The PEM public keys of private keys, one after the other.
    """
    return b"".join(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for key in keys
    )


def privatePEM(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def makeToken(key: Any, algorithm: str = "ES256", headers: dict[str, Any] | None = None,
              lifetime: int = 300, **claims: Any) -> bytes:
    """
    A token signed with C{key}: C{sub} alice and C{exp} in C{lifetime}
    seconds unless C{claims} say otherwise (a claim given as L{None} is
    left out).
    """
    payload: dict[str, Any] = {"sub": "alice", "exp": int(time.time()) + lifetime}
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers).encode("ascii")


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def forgedToken(header: dict[str, Any], secret: bytes | None = None, **claims: Any) -> bytes:
    """
    A token made by hand: unsigned (an empty signature) or signed with
    HMAC-SHA256 under C{secret}, whatever its header says.
    """
    payload = {"sub": "alice", "exp": int(time.time()) + 300, **claims}
    signingInput = (b64(json.dumps(header).encode()) + b"."
                    + b64(json.dumps(payload).encode()))
    signature = b""
    if secret is not None:
        signature = b64(hmac.new(secret, signingInput, hashlib.sha256).digest())
    return signingInput + b"." + signature


def jwk(key: Any, kid: str | None = None, **extra: Any) -> dict[str, Any]:
    """
    The public JWK of a private key.
    """
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    else:
        data = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public))
    if kid is not None:
        data["kid"] = kid
    data.update(extra)
    return data  # type: ignore[no-any-return]


def credentials(password: bytes, clientId: str = "c1", username: bytes = b"unused") -> Any:
    """
    What the broker passes for a CONNECT with a user name and password.
    """
    return ConnectUsernamePassword(username, password, clientId)


def writeBytes(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def newDirectory(case: SynchronousTestCase) -> str:
    path = tempfile.mkdtemp(prefix="mqttd-jwt-")
    case.addCleanup(shutil.rmtree, path, True)
    return path


class CheckerTestCase(SynchronousTestCase):
    """
    Helpers: a temporary directory, key files, and the checker's answers.
    """

    def setUp(self) -> None:
        self.directory = newDirectory(self)
        self.keyFile = writeBytes(os.path.join(self.directory, "issuer.pem"),
                                  publicPEM(RSA_ISSUER, EC_ISSUER, EC_384, ED_ISSUER))

    def accepted(self, checker: JWTChecker, token: bytes, clientId: str = "c1") -> Any:
        return self.successResultOf(checker.requestAvatarId(credentials(token, clientId)))

    def refused(self, checker: JWTChecker, token: bytes, clientId: str = "c1") -> str:
        failure = self.failureResultOf(
            checker.requestAvatarId(credentials(token, clientId)), UnauthorizedLogin,
            UnhandledCredentials,
        )
        self.assertTrue(failure.check(UnauthorizedLogin), failure)
        return str(failure.value)

    def passed(self, checker: JWTChecker, token: bytes, clientId: str = "c1") -> None:
        failure = self.failureResultOf(
            checker.requestAvatarId(credentials(token, clientId)), UnauthorizedLogin,
            UnhandledCredentials,
        )
        self.assertTrue(failure.check(UnhandledCredentials), failure)


class JWTConformanceTests(AuthenticatorConformanceMixin, CheckerTestCase):
    """
    The conformance suite every authenticator passes.
    """

    def setUp(self) -> None:
        super().setUp()
        self.validCredentials = [
            ("alice", makeToken(RSA_ISSUER, "RS256")),
            ("bob", makeToken(EC_ISSUER, "ES256", sub="bob")),
        ]
        self.wrongPasswords = [
            ("alice", makeToken(RSA_OTHER, "RS256")),
            ("alice", makeToken(EC_ISSUER, lifetime=-100)),
        ]
        self.unknownUsernames = ["carol"]

    def makeAuthenticator(self) -> Any:
        return JWTChecker(self.keyFile)


class SignatureTests(CheckerTestCase):
    """
    Signatures and algorithms.
    """

    def test_interfaces(self) -> None:
        """The checker provides ICredentialsChecker and IReloadable."""
        checker = JWTChecker(self.keyFile)
        verifyObject(ICredentialsChecker, checker)
        verifyObject(IReloadable, checker)

    def test_algorithms(self) -> None:
        """RS256, PS256, ES256, ES384 and EdDSA tokens from the issuer's keys verify."""
        checker = JWTChecker(self.keyFile)
        for key, algorithm in ((RSA_ISSUER, "RS256"), (RSA_ISSUER, "PS256"),
                               (RSA_ISSUER, "RS512"), (EC_ISSUER, "ES256"),
                               (EC_384, "ES384"), (ED_ISSUER, "EdDSA")):
            token = makeToken(key, algorithm, sub=f"user-{algorithm}")
            self.assertEqual(self.accepted(checker, token), f"user-{algorithm}")

    def test_wrongKey(self) -> None:
        """A token signed by a key that is not configured is refused."""
        checker = JWTChecker(self.keyFile)
        self.assertIn("signature", self.refused(checker, makeToken(RSA_OTHER, "RS256")))
        self.refused(checker, makeToken(EC_OTHER, "ES256"))

    def test_tamperedPayload(self) -> None:
        """Claims changed after signing: the signature no longer verifies."""
        checker = JWTChecker(self.keyFile)
        header, _, signature = makeToken(EC_ISSUER).split(b".")
        payload = b64(json.dumps({"sub": "root", "exp": int(time.time()) + 300}).encode())
        self.refused(checker, b".".join([header, payload, signature]))

    def test_algNone(self) -> None:
        """Unsigned tokens (C{alg} none, in any spelling) are refused, not passed on."""
        checker = JWTChecker(self.keyFile)
        for alg in ("none", "None", "NONE", ""):
            token = forgedToken({"alg": alg, "typ": "JWT"})
            self.assertIn("algorithm", self.refused(checker, token))
        self.refused(checker, forgedToken({"typ": "JWT"}))

    def test_hmacWithThePublicKey(self) -> None:
        """
        Algorithm confusion: an HS256 token whose secret is the server's
        public key (PEM or DER) is refused.
        """
        checker = JWTChecker(self.keyFile)
        der = RSA_ISSUER.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        for secret in (publicPEM(RSA_ISSUER), publicPEM(EC_ISSUER), der):
            for alg in ("HS256", "HS384", "HS512"):
                token = forgedToken({"alg": alg, "typ": "JWT"}, secret)
                self.assertIn(repr(alg), self.refused(checker, token))

    def test_configuredAlgorithms(self) -> None:
        """C{algorithms} narrows the accepted ones; HS* and none cannot be configured."""
        checker = JWTChecker(self.keyFile, algorithms=["ES256"])
        self.accepted(checker, makeToken(EC_ISSUER, "ES256"))
        self.refused(checker, makeToken(RSA_ISSUER, "RS256"))
        for bad in (["HS256"], ["none"], ["ES256", "HS512"], []):
            self.assertRaises(ValueError, JWTChecker, self.keyFile, algorithms=bad)

    def test_algorithmWithoutKey(self) -> None:
        """An algorithm no configured key can verify: not ours, the next checker decides."""
        rsaOnly = writeBytes(os.path.join(self.directory, "rsa.pem"), publicPEM(RSA_ISSUER))
        checker = JWTChecker(rsaOnly)
        self.passed(checker, makeToken(EC_ISSUER, "ES256"))

    def test_headerSaysRSAKeyIsEC(self) -> None:
        """The algorithm is tried only with keys of its type: ES256 never uses an RSA key."""
        rsaOnly = writeBytes(os.path.join(self.directory, "rsa.pem"), publicPEM(RSA_ISSUER))
        checker = JWTChecker(rsaOnly)
        # An RS256 signature relabelled ES256 cannot verify with anything.
        _, payload, signature = makeToken(RSA_ISSUER, "RS256").split(b".")
        relabelled = b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
        self.passed(checker, b".".join([relabelled, payload, signature]))

    def test_notAJWT(self) -> None:
        """Passwords that are not JWTs are left to the next checker."""
        checker = JWTChecker(self.keyFile)
        for password in (b"secret", b"", b"a.b", b"a.b.c", b"a..c", b"x.y.z.w",
                         b"\xff\xfe.\x00.z", b"e30.e30", b"W10.e30.sig",
                         b64(b'{"alg":"ES256"}') + b".!!.sig"):
            self.passed(checker, password)
        self.assertIsNone(tokenHeader(b"W10.e30.x"))
        self.assertEqual(tokenHeader(b"e30.e30."), {})

    def test_malformedTokens(self) -> None:
        """JWT-shaped passwords with a bad payload or kid are refused, not passed on."""
        checker = JWTChecker(self.keyFile)
        header = b64(json.dumps({"alg": "ES256"}).encode())
        self.refused(checker, header + b"." + b64(b"not json") + b".c2ln")
        self.refused(checker, b64(json.dumps({"alg": "ES256", "kid": 7}).encode())
                     + b".e30.c2ln")
        self.refused(checker, b64(json.dumps({"alg": 256}).encode()) + b".e30.c2ln")

    def test_plainCredentials(self) -> None:
        """Credentials without a client id (plain UsernamePassword) work too."""
        checker = JWTChecker(self.keyFile)
        token = makeToken(EC_ISSUER)
        self.assertEqual(
            self.successResultOf(checker.requestAvatarId(UsernamePassword(b"x", token))),
            "alice")


class ClaimTests(CheckerTestCase):
    """
    C{exp}, C{nbf}, C{iat}, C{aud}, C{iss}, required claims, the user name
    and client id claims, the lifetime limit.
    """

    def test_expired(self) -> None:
        """An expired token is refused; within the leeway it is accepted."""
        token = makeToken(EC_ISSUER, lifetime=-30)
        self.assertIn("expired", self.refused(JWTChecker(self.keyFile), token))
        self.assertEqual(self.accepted(JWTChecker(self.keyFile, leeway=120), token), "alice")

    def test_expRequired(self) -> None:
        """A token without C{exp} is refused by default; C{require} can drop it."""
        token = makeToken(EC_ISSUER, exp=None)
        self.assertIn("'exp'", self.refused(JWTChecker(self.keyFile), token))
        self.accepted(JWTChecker(self.keyFile, require=[]), token)
        self.assertIn("'jti'", self.refused(JWTChecker(self.keyFile, require=["exp", "jti"]),
                                            makeToken(EC_ISSUER)))

    def test_expNotANumber(self) -> None:
        """A non-numeric C{exp} is refused."""
        self.refused(JWTChecker(self.keyFile), makeToken(EC_ISSUER, exp="tomorrow"))

    def test_notBefore(self) -> None:
        """A token whose C{nbf} is in the future is refused (unless within the leeway)."""
        token = makeToken(EC_ISSUER, nbf=int(time.time()) + 60)
        self.assertIn("not valid yet", self.refused(JWTChecker(self.keyFile), token))
        self.accepted(JWTChecker(self.keyFile, leeway=300), token)
        self.accepted(JWTChecker(self.keyFile), makeToken(EC_ISSUER, nbf=int(time.time()) - 5))

    def test_issuedInTheFuture(self) -> None:
        """A token whose C{iat} is in the future is refused."""
        self.refused(JWTChecker(self.keyFile), makeToken(EC_ISSUER, iat=int(time.time()) + 600))

    def test_audience(self) -> None:
        """With C{audience}, the token's C{aud} (a string or a list) must contain one of them."""
        checker = JWTChecker(self.keyFile, audience=["mqtt://a", AUDIENCE])
        self.accepted(checker, makeToken(EC_ISSUER, aud=AUDIENCE))
        self.accepted(checker, makeToken(EC_ISSUER, aud=["other", AUDIENCE]))
        self.assertIn("audience", self.refused(checker, makeToken(EC_ISSUER, aud="other")))
        self.assertIn("'aud'", self.refused(checker, makeToken(EC_ISSUER)))

    def test_audienceNotConfigured(self) -> None:
        """Without C{audience}, a token meant for an audience is refused (RFC 7519 4.1.3)."""
        checker = JWTChecker(self.keyFile)
        self.refused(checker, makeToken(EC_ISSUER, aud="someone-else"))
        self.accepted(checker, makeToken(EC_ISSUER))

    def test_issuer(self) -> None:
        """With C{issuer}, C{iss} must be one of them."""
        checker = JWTChecker(self.keyFile, issuer=["https://idp.example", "other"])
        self.accepted(checker, makeToken(EC_ISSUER, iss="https://idp.example"))
        self.assertIn("issuer", self.refused(checker, makeToken(EC_ISSUER, iss="https://evil")))
        self.assertIn("'iss'", self.refused(checker, makeToken(EC_ISSUER)))
        self.accepted(JWTChecker(self.keyFile), makeToken(EC_ISSUER, iss="anyone"))

    def test_usernameClaim(self) -> None:
        """The user name comes from the configured claim, not the CONNECT's user name."""
        checker = JWTChecker(self.keyFile, usernameClaim="email")
        token = makeToken(EC_ISSUER, email="carol@example.com")
        self.assertEqual(self.successResultOf(checker.requestAvatarId(
            credentials(token, username=b"mallory"))), "carol@example.com")
        self.assertIn("'email'", self.refused(checker, makeToken(EC_ISSUER)))
        self.refused(checker, makeToken(EC_ISSUER, email=42))
        self.refused(checker, makeToken(EC_ISSUER, email=""))
        self.refused(JWTChecker(self.keyFile), makeToken(EC_ISSUER, sub=None))

    def test_clientIdClaim(self) -> None:
        """With C{clientIdClaim}, that claim must be the CONNECT's client id."""
        checker = JWTChecker(self.keyFile, clientIdClaim="cid")
        self.assertEqual(self.accepted(checker, makeToken(EC_ISSUER, cid="dev-7"), "dev-7"),
                         "alice")
        self.assertIn("client id",
                      self.refused(checker, makeToken(EC_ISSUER, cid="dev-7"), "dev-8"))
        self.refused(checker, makeToken(EC_ISSUER), "dev-7")
        self.failureResultOf(checker.requestAvatarId(
            UsernamePassword(b"x", makeToken(EC_ISSUER, cid="dev-7"))), UnauthorizedLogin)

    def test_maxLifetime(self) -> None:
        """With C{maxLifetime}, C{iat} is required and C{exp - iat} bounded."""
        checker = JWTChecker(self.keyFile, maxLifetime=3600)
        now = int(time.time())
        self.accepted(checker, makeToken(EC_ISSUER, iat=now, exp=now + 3600))
        self.assertIn("longer", self.refused(checker, makeToken(EC_ISSUER, iat=now,
                                                                exp=now + 3601)))
        self.assertIn("'iat'", self.refused(checker, makeToken(EC_ISSUER, exp=now + 60)))


class KeyFileTests(CheckerTestCase):
    """
    PEM files and JWKS files.
    """

    def test_certificate(self) -> None:
        """A PEM certificate's public key verifies tokens."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(EC_OTHER.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(EC_OTHER, hashes.SHA256())
        )
        path = writeBytes(os.path.join(self.directory, "cert.pem"),
                          b"issuer certificate\n"
                          + certificate.public_bytes(serialization.Encoding.PEM))
        self.accepted(JWTChecker(path), makeToken(EC_OTHER))

    def test_badPEMFiles(self) -> None:
        """Missing, empty, private, damaged, short-RSA and odd PEM files are errors."""
        cases = {
            "missing.pem": None,
            "empty.pem": b"",
            "private.pem": privatePEM(EC_ISSUER),
            "damaged.pem": b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "short.pem": publicPEM(rsa.generate_private_key(65537, 1024)),
            "csr.pem": b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                       b"-----END CERTIFICATE REQUEST-----\n",
            "secp256k1.pem": publicPEM(ec.generate_private_key(ec.SECP256K1())),
            "x25519.pem": publicPEM(x25519.X25519PrivateKey.generate()),
        }
        for name, data in cases.items():
            path = os.path.join(self.directory, name)
            if data is not None:
                writeBytes(path, data)
            error = self.assertRaises(JWTKeyError, JWTChecker, path)
            self.assertIn(path, str(error))
            self.assertNotIn("\n", str(error))

    def test_jwks(self) -> None:
        """JWKS keys are picked by the token's C{kid}; a token without one tries them all."""
        path = writeBytes(os.path.join(self.directory, "jwks.json"), json.dumps({"keys": [
            jwk(RSA_ISSUER, "k1"), jwk(EC_ISSUER, "k2", alg="ES256", use="sig"),
            jwk(EC_OTHER, "enc", use="enc"),
        ]}).encode())
        checker = JWTChecker(jwksFile=path)
        self.assertEqual(len(checker.keys), 2)
        self.accepted(checker, makeToken(RSA_ISSUER, "RS256", headers={"kid": "k1"}))
        self.accepted(checker, makeToken(EC_ISSUER, "ES256", headers={"kid": "k2"}))
        self.accepted(checker, makeToken(EC_ISSUER, "ES256"))
        # A kid nobody has: another issuer's token, the next checker decides.
        self.passed(checker, makeToken(EC_ISSUER, "ES256", headers={"kid": "k9"}))
        # The right kid, a forged signature.
        self.refused(checker, makeToken(RSA_OTHER, "RS256", headers={"kid": "k1"}))
        # An encryption key is not a signature key.
        self.passed(checker, makeToken(EC_OTHER, "ES256", headers={"kid": "enc"}))

    def test_jwkAlgorithm(self) -> None:
        """A JWK's C{alg} is the only algorithm its key verifies."""
        path = writeBytes(os.path.join(self.directory, "jwks.json"), json.dumps(
            {"keys": [jwk(RSA_ISSUER, "k1", alg="PS256")]}).encode())
        checker = JWTChecker(jwksFile=path)
        self.accepted(checker, makeToken(RSA_ISSUER, "PS256", headers={"kid": "k1"}))
        self.passed(checker, makeToken(RSA_ISSUER, "RS256", headers={"kid": "k1"}))

    def test_badJWKS(self) -> None:
        """Symmetric, private, unknown and malformed keys make the JWKS file an error."""
        secret = {"kty": "oct", "k": "c2VjcmV0", "kid": "h"}
        private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_ISSUER))
        for document in ({"keys": [secret]}, {"keys": [private]}, {"keys": [{"kty": "XYZ"}]},
                         {"keys": [jwk(EC_ISSUER, alg="HS256")]}, {"keys": []}, [1, 2],
                         {"keys": [jwk(EC_ISSUER, kid=3)]}, {"keys": ["RSA"]},
                         {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]},
                         {"keys": [{"kty": "RSA", "n": 1, "e": 2}]}, "not json"):
            path = writeBytes(os.path.join(self.directory, "bad.json"),
                              json.dumps(document).encode() if document != "not json"
                              else b"{")
            error = self.assertRaises(JWTKeyError, JWTChecker, jwksFile=path)
            self.assertIn(path, str(error))

    def test_singleJWK(self) -> None:
        """A file holding one JWK (not a set) is read as a set of one."""
        path = writeBytes(os.path.join(self.directory, "one.json"),
                          json.dumps(jwk(ED_ISSUER)).encode())
        self.accepted(JWTChecker(jwksFile=path), makeToken(ED_ISSUER, "EdDSA"))

    def test_noKeys(self) -> None:
        """A checker needs at least one source of keys."""
        self.assertRaises(ValueError, JWTChecker)

    def test_reload(self) -> None:
        """
        Reloading reads the new keys; a bad file raises and the old keys
        stay in force.
        """
        path = writeBytes(os.path.join(self.directory, "rotating.pem"), publicPEM(EC_ISSUER))
        checker = JWTChecker(path)
        writeBytes(path, publicPEM(EC_OTHER))
        self.accepted(checker, makeToken(EC_ISSUER))
        checker.reload()
        self.refused(checker, makeToken(EC_ISSUER))
        self.accepted(checker, makeToken(EC_OTHER))
        for bad in (b"garbage", privatePEM(EC_ISSUER)):
            writeBytes(path, bad)
            self.assertRaises(JWTKeyError, checker.reload)
            self.accepted(checker, makeToken(EC_OTHER))
            self.refused(checker, makeToken(EC_ISSUER))
        os.unlink(path)
        self.assertRaises(JWTKeyError, checker.reload)
        self.accepted(checker, makeToken(EC_OTHER))

    def test_reloadJWKS(self) -> None:
        """A JWKS file is re-read too; a broken one keeps the old keys."""
        path = writeBytes(os.path.join(self.directory, "jwks.json"),
                          json.dumps({"keys": [jwk(EC_ISSUER, "a")]}).encode())
        checker = JWTChecker(jwksFile=path)
        writeBytes(path, json.dumps({"keys": [jwk(EC_ISSUER, "a"), jwk(EC_OTHER, "b")]})
                   .encode())
        checker.reload()
        self.accepted(checker, makeToken(EC_OTHER, headers={"kid": "b"}))
        writeBytes(path, b'{"keys": [{"kty": "oct", "k": "AAAA"}]}')
        self.assertRaises(JWTKeyError, checker.reload)
        self.accepted(checker, makeToken(EC_OTHER, headers={"kid": "b"}))


class DeviceKeyTests(CheckerTestCase):
    """
    C{keys=DIR}: one key file per device, named by its client id (as Google
    Cloud IoT Core did).
    """

    def setUp(self) -> None:
        super().setUp()
        self.devices = os.path.join(self.directory, "devices")
        os.mkdir(self.devices)
        writeBytes(os.path.join(self.devices, "dev1.pem"), publicPEM(DEVICE_1, DEVICE_1_NEXT))
        writeBytes(os.path.join(self.devices, "dev3.pem"), publicPEM(DEVICE_3))
        # Files a path-traversing client id would reach, holding DEVICE_1's key.
        writeBytes(os.path.join(self.directory, "outside.pem"), publicPEM(DEVICE_1))
        writeBytes(os.path.join(self.devices, ".hidden.pem"), publicPEM(DEVICE_1))
        os.mkdir(os.path.join(self.devices, "sub"))
        writeBytes(os.path.join(self.devices, "sub", "x.pem"), publicPEM(DEVICE_1))

    def test_deviceKey(self) -> None:
        """
        A token signed with a device's key authenticates its client id:
        the user name is the client id, whatever the token claims.
        """
        checker = JWTChecker(deviceDirectory=self.devices, audience=["project-1"])
        for key in (DEVICE_1, DEVICE_1_NEXT):
            token = makeToken(key, sub="admin", aud="project-1")
            self.assertEqual(self.accepted(checker, token, "dev1"), DEVICE_1_IDENTITY)
        self.accepted(checker, makeToken(DEVICE_1, sub=None, aud="project-1"), "dev1")
        # The claims are still checked.
        self.refused(checker, makeToken(DEVICE_1, aud="project-2"), "dev1")
        self.refused(checker, makeToken(DEVICE_1, lifetime=-60, aud="project-1"), "dev1")

    def test_otherDevicesKey(self) -> None:
        """One device's token does not authenticate another device."""
        checker = JWTChecker(deviceDirectory=self.devices)
        self.refused(checker, makeToken(DEVICE_1), "dev3")
        self.refused(checker, makeToken(DEVICE_3), "dev1")

    def test_unknownDevice(self) -> None:
        """A client id without a key file: not ours (the next checker decides)."""
        checker = JWTChecker(deviceDirectory=self.devices)
        self.passed(checker, makeToken(DEVICE_1), "dev2")
        self.passed(checker, makeToken(DEVICE_1), "")
        self.passed(checker, makeToken(DEVICE_1), "dev1.pem")

    def test_pathTraversal(self) -> None:
        """Client ids that are not plain file names are refused, never looked up."""
        checker = JWTChecker(deviceDirectory=self.devices)
        token = makeToken(DEVICE_1)
        for clientId in ("../outside", "..", ".", ".hidden", "sub/x", "/etc/passwd",
                         "a\x00b", "..\\outside", "x" * 300):
            self.assertFalse(isSafeDeviceName(clientId), clientId)
            self.assertIn("client id", self.refused(checker, token, clientId))
        for clientId in ("dev1", "dev 1", "dév-1", "a..b", "a.b"):
            self.assertTrue(isSafeDeviceName(clientId), clientId)

    def test_filesReadAtEachConnect(self) -> None:
        """A device added (or removed) takes effect at its next CONNECT, without a reload."""
        checker = JWTChecker(deviceDirectory=self.devices)
        token = makeToken(EC_OTHER)
        self.passed(checker, token, "new")
        path = writeBytes(os.path.join(self.devices, "new.pem"), publicPEM(EC_OTHER))
        self.assertEqual(self.accepted(checker, token, "new"),
                         AuthenticatedIdentity("new", "jwt-device"))
        os.unlink(path)
        self.passed(checker, token, "new")

    def test_badDeviceFile(self) -> None:
        """A damaged or private device key file refuses the device (never "next")."""
        checker = JWTChecker(deviceDirectory=self.devices)
        writeBytes(os.path.join(self.devices, "broken.pem"), b"nothing here")
        writeBytes(os.path.join(self.devices, "private.pem"), privatePEM(DEVICE_1))
        os.mkdir(os.path.join(self.devices, "adir.pem"))
        for clientId in ("broken", "private", "adir"):
            self.refused(checker, makeToken(DEVICE_1), clientId)

    def test_withIssuerKeys(self) -> None:
        """
        Device and issuer keys together: a device token names the device,
        an issuer token names its subject.
        """
        checker = JWTChecker(self.keyFile, deviceDirectory=self.devices)
        self.assertEqual(self.accepted(checker, makeToken(DEVICE_1), "dev1"), DEVICE_1_IDENTITY)
        self.assertEqual(self.accepted(checker, makeToken(EC_ISSUER, sub="svc"), "dev1"), "svc")
        self.assertEqual(self.accepted(checker, makeToken(EC_ISSUER, sub="svc"), "x"), "svc")
        self.refused(checker, makeToken(DEVICE_1), "dev3")

    def test_directoryMissing(self) -> None:
        """C{keys} must name a directory, at start and on reload."""
        self.assertRaises(JWTKeyError, JWTChecker,
                          deviceDirectory=os.path.join(self.directory, "nope"))
        checker = JWTChecker(deviceDirectory=self.devices)
        shutil.rmtree(self.devices)
        self.assertRaises(JWTKeyError, checker.reload)


class PasswordChainTests(CheckerTestCase):
    """
    In a chain with a password file after it: tokens are decided by the
    jwt checker, other passwords by the password file.
    """

    def setUp(self) -> None:
        super().setUp()
        passwd = os.path.join(self.directory, "passwd")
        writePasswordFile(passwd, {"carol": hashPassword(b"carol-pw", iterations=10)})
        from mqttd.passwd import PasswordFileChecker
        self.chain = CheckerChain([JWTChecker(self.keyFile),
                                   PasswordFileChecker(passwd, threaded=False)])

    def login(self, username: bytes, password: bytes) -> Any:
        return self.chain.requestAvatarId(credentials(password, username=username))

    def test_passwordAfterJWT(self) -> None:
        """A plain password reaches the password file."""
        self.assertEqual(self.successResultOf(self.login(b"carol", b"carol-pw")), b"carol")
        self.failureResultOf(self.login(b"carol", b"wrong"), UnauthorizedLogin)
        self.failureResultOf(self.login(b"dave", b"x"), UnhandledCredentials)

    def test_tokenBeforePassword(self) -> None:
        """A token is decided by the jwt checker: good ones accepted, bad ones refused."""
        self.assertEqual(self.successResultOf(self.login(b"carol", makeToken(EC_ISSUER))),
                         "alice")
        self.failureResultOf(self.login(b"carol", makeToken(EC_OTHER)), UnauthorizedLogin)


@implementer(IAuthorizer)
class RecordingAuthorizer:
    """
    Allows everything and records the clients it was asked about.
    """

    def __init__(self) -> None:
        self.clients: list[Any] = []

    def authorizeConnect(self, client: Any) -> Any:
        self.clients.append(client)
        return ALLOW

    def authorizePublish(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        return ALLOW

    def authorizeSubscribe(self, client: Any, topicFilter: str, qos: int) -> Any:
        return ALLOW

    def authorizeReceive(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        return ALLOW


class InMemoryBrokerTests(CheckerTestCase):
    """
    Through an in-memory broker: CONNACK codes and the identity authorizers
    see.
    """

    def setUp(self) -> None:
        super().setUp()
        self.env = InMemoryBroker()
        self.env.factory.portal = Portal(MQTTRealm(), [CheckerChain([JWTChecker(self.keyFile)])])
        self.authorizer = RecordingAuthorizer()
        self.env.broker.authorizer = AuthorizerChain([self.authorizer], self.env.clock)

    def test_identity(self) -> None:
        """The token's subject is the client's user name, for authorizers too."""
        client = self.env.connect("c1", username="ignored", password=makeToken(EC_ISSUER),
                                  protocolLevel=MQTT_5)
        self.assertEqual(self.env.serverFor(client).clientInfo.username, "alice")
        [info] = self.authorizer.clients
        self.assertEqual((info.clientId, info.username), ("c1", "alice"))

    def test_refused(self) -> None:
        """A bad token: CONNACK 0x86 (v5) or return code 4 (3.1.1), then close."""
        for level, code in ((MQTT_5, 0x86), (MQTT_3_1_1, 0x04)):
            for token in (makeToken(EC_OTHER), makeToken(EC_ISSUER, lifetime=-60),
                          b"not-a-token"):
                client = self.env.openClient(level)
                client.connect("c2", username="alice", password=token)
                self.env.flush()
                [connack] = client.take()
                assert isinstance(connack, Connack)
                self.assertEqual(connack.reasonCode, code, (level, token))
                self.assertTrue(client.closed)
        self.assertEqual(self.authorizer.clients, [])


class DeviceSessionTests(CheckerTestCase):
    """
    A device authenticated by its own key is an identity of its own kind
    (C{jwt-device}): its sessions are not those of a password user, or of
    an issuer token's subject, with the same name (catalogue AU-12).
    """

    def setUp(self) -> None:
        super().setUp()
        devices = os.path.join(self.directory, "devices")
        os.mkdir(devices)
        writeBytes(os.path.join(devices, "dev1.pem"), publicPEM(DEVICE_1))
        self.checker = JWTChecker(self.keyFile, deviceDirectory=devices)
        self.env = InMemoryBroker()
        passwords = InMemoryUsernamePasswordDatabaseDontUse(dev1=b"pw")
        self.env.factory.portal = Portal(MQTTRealm(), [CheckerChain([self.checker, passwords])])

    def connack(self, cleanStart: bool, password: bytes) -> Connack:
        client = self.env.openClient(MQTT_3_1_1)
        client.connect("dev1", cleanStart=cleanStart, username="dev1", password=password)
        self.env.flush()
        [connack] = client.take()[:1]
        assert isinstance(connack, Connack)
        if not connack.reasonCode:
            client.disconnect()
            self.env.flush()
        return connack

    def test_deviceIdentity(self) -> None:
        """A device token's identity is of kind C{jwt-device}; an issuer token's is a user."""
        device = self.accepted(self.checker, makeToken(DEVICE_1), "dev1")
        self.assertEqual(device, AuthenticatedIdentity("dev1", "jwt-device"))
        self.assertEqual(device.kind, DEVICE_KIND)
        self.assertIsNone(device.clientId)
        self.assertEqual(self.accepted(self.checker, makeToken(EC_ISSUER, sub="dev1"), "dev1"),
                         "dev1")
        self.assertNotEqual(ClientIdentity(device).key, ClientIdentity("dev1").key)
        self.assertNotEqual(ClientIdentity(device).key, ClientIdentity(b"dev1").key)
        self.assertEqual(ClientIdentity(device).username, "dev1")

    def test_deviceSessionNotResumedByPassword(self) -> None:
        """
        The session a device made is refused to password user C{dev1} and
        to an issuer token for C{dev1}; the device gets it back.
        """
        device = makeToken(DEVICE_1)
        self.assertEqual(self.connack(False, device).reasonCode, 0)
        self.assertEqual(self.connack(False, b"pw").reasonCode, 0x05)
        self.assertEqual(self.connack(True, b"pw").reasonCode, 0x05)
        self.assertEqual(self.connack(False, makeToken(EC_ISSUER, sub="dev1")).reasonCode, 0x05)
        again = self.connack(False, device)
        self.assertEqual((again.reasonCode, again.sessionPresent), (0, True))

    def test_passwordSessionNotResumedByDevice(self) -> None:
        """The other way round: password user C{dev1}'s session is not the device's."""
        self.assertEqual(self.connack(False, b"pw").reasonCode, 0)
        self.assertEqual(self.connack(False, makeToken(DEVICE_1)).reasonCode, 0x05)
        again = self.connack(False, b"pw")
        self.assertEqual((again.reasonCode, again.sessionPresent), (0, True))


class FactoryTests(SynchronousTestCase):
    """
    The C{jwt} factory: discovery, arguments, one-line errors.
    """

    def setUp(self) -> None:
        self.directory = newDirectory(self)
        self.keyFile = writeBytes(os.path.join(self.directory, "issuer.pem"),
                                  publicPEM(EC_ISSUER))

    def make(self, spec: str, baseDirectory: str | None = None) -> Any:
        return makePlugin(AUTH, spec, baseDirectory)

    def error(self, spec: str) -> str:
        error = self.assertRaises(PluginError, self.make, spec, self.directory)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith("--auth jwt: "), message)
        return message

    def test_interfaces(self) -> None:
        """The factory provides IPlugin and IAuthenticatorFactory and is found by name."""
        factory = availablePlugins(AUTH)["jwt"]
        self.assertIsInstance(factory, JWTFactory)
        verifyObject(IPlugin, factory)
        verifyObject(IAuthenticatorFactory, factory)

    def test_argumentsHelp(self) -> None:
        """Every argument the factory accepts is in its help."""
        factory = availablePlugins(AUTH)["jwt"]
        arguments = PluginArguments("jwt", options={"bogus": "1"})
        error = self.assertRaises(PluginError, factory.makeAuthenticator, arguments)
        known = re.search(r"\(known: (.*)\)", str(error))
        assert known is not None
        for name in known.group(1).split(", "):
            self.assertRegex(factory.argumentsHelp, rf"(?m)^{re.escape(name)}=", name)

    def test_make(self) -> None:
        """The arguments reach the checker; relative paths are relative to the base."""
        checker = self.make(
            "jwt:key=issuer.pem:keys=.:username-claim=email:clientid-claim=cid:"
            r"audience=mqtt\://broker,b:issuer=i1, i2:require=exp,iat:max-lifetime=600:"
            "leeway=5:algorithms=ES256,RS256", self.directory)
        self.assertIsInstance(checker, JWTChecker)
        self.assertEqual(checker.keyFile, self.keyFile)
        self.assertEqual(os.path.normpath(checker.deviceDirectory), self.directory)
        self.assertEqual(checker.usernameClaim, "email")
        self.assertEqual(checker.clientIdClaim, "cid")
        self.assertEqual(checker.audience, ["mqtt://broker", "b"])
        self.assertEqual(checker.issuer, ["i1", "i2"])
        self.assertEqual(checker.required, ["exp", "iat"])
        self.assertEqual((checker.maxLifetime, checker.leeway), (600, 5))
        self.assertEqual(checker.algorithms, {"ES256", "RS256"})
        defaults = self.make(f"jwt:key={self.keyFile}")
        self.assertEqual((defaults.usernameClaim, defaults.clientIdClaim), ("sub", None))
        self.assertEqual((defaults.audience, defaults.issuer, defaults.required),
                         (None, None, ["exp"]))
        self.assertEqual(self.make(f"jwt:key={self.keyFile}:require=").required, [])

    def test_errors(self) -> None:
        """Bad arguments and files are one-line errors naming the plug-in."""
        missing = os.path.join(self.directory, "missing.pem")
        self.assertIn(missing, self.error("jwt:key=missing.pem"))
        self.assertIn("'bogus'", self.error(f"jwt:key={self.keyFile}:bogus=1"))
        self.assertIn("no keys", self.error("jwt"))
        self.assertIn("'HS256'", self.error(f"jwt:key={self.keyFile}:algorithms=HS256"))
        self.assertIn("'none'", self.error(f"jwt:key={self.keyFile}:algorithms=ES256,none"))
        self.assertIn("leeway", self.error(f"jwt:key={self.keyFile}:leeway=soon"))
        self.assertIn("max-lifetime", self.error(f"jwt:key={self.keyFile}:max-lifetime=0"))
        self.assertIn("username-claim", self.error(f"jwt:key={self.keyFile}:username-claim="))
        self.assertIn("not a directory", self.error("jwt:keys=nowhere"))
        self.assertIn("private key", self.error(
            "jwt:key=" + writeBytes(os.path.join(self.directory, "p.pem"),
                                    privatePEM(EC_ISSUER))))
        self.error(f"jwt:key={self.keyFile}:extra")

    def test_withoutPyJWT(self) -> None:
        """Without PyJWT the plug-in stops the broker with one line saying what to install."""
        with mock.patch.dict(sys.modules, {"jwt": None}):
            message = self.error(f"jwt:key={self.keyFile}")
        self.assertEqual(message, "--auth jwt: needs PyJWT: pip install 'txmqttd[jwt]'")


# -- a real broker ----------------------------------------------------------------


def _string(data: str | bytes) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return len(raw).to_bytes(2, "big") + raw


def connectPacket(clientId: str, username: str, password: bytes, level: int = 4) -> bytes:
    """
    A clean CONNECT with a user name and password (keep-alive 30).
    """
    header = _string("MQTT") + bytes((level, 0xC2)) + (30).to_bytes(2, "big")
    if level == 5:
        header += b"\x00"
    return packet(0x10, header + _string(clientId) + _string(username) + _string(password))


def rawConnack(port: int, clientId: str, username: str, password: bytes, level: int = 4) -> Any:
    """
    The CONNACK a raw client gets (bytes for 3.1.1, a decoded packet for 5.0).
    """
    client = RawClient(port, timeout=WAIT)
    try:
        client.send(connectPacket(clientId, username, password, level))
        reply = readPacket(client.recvExactly)
    finally:
        client.close()
    if level == 4:
        return reply
    decoder = Decoder(isServer=False, protocolLevel=MQTT_5)
    decoder.feed(reply)
    return decoder.next()


def pahoSession(port: int, clientId: str, username: str, password: bytes,
                protocol: int, topicFilters: tuple[str, ...] = ()) -> tuple[int, list[int]]:
    """
    Connect with paho-mqtt and subscribe to C{topicFilters} (one at a
    time, QoS 1) if accepted.

    @return: the CONNACK reason code paho reports and the SUBACK codes.
    """
    reasons: list[int] = []
    subacks: dict[int, int] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=clientId,
                         protocol=protocol)
    client.username_pw_set(username, password)
    client.on_connect = lambda c, u, flags, reason, props: reasons.append(reason.value)
    client.on_subscribe = lambda c, u, mid, codes, props: subacks.update(
        {mid: codes[0].value})
    client.connect("127.0.0.1", port, keepalive=30)
    deadline = time.monotonic() + WAIT
    codes: list[int] = []
    try:
        while not reasons and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        if reasons and reasons[0] == 0:
            for topicFilter in topicFilters:
                _, mid = client.subscribe(topicFilter, 1)
                while mid not in subacks and time.monotonic() < deadline:
                    client.loop(timeout=0.05)
                codes.append(subacks.get(mid, -1))
    finally:
        client.disconnect()
        for _ in range(5):
            if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
    assert reasons, "no CONNACK"
    return reasons[0], codes


class BrokerProcessTests(SynchronousTestCase):
    """
    C{twistd -n --pidfile= mqttd --auth jwt:... --auth passwd:...
    --authorizer aclfile:...} on loopback, one broker for the class.
    """

    directory: ClassVar[str]
    broker: ClassVar[MqttdProcess]
    port: ClassVar[int]
    keyFile: ClassVar[str]

    @classmethod
    def setUpClass(cls) -> None:
        cls.directory = tempfile.mkdtemp(prefix="mqttd-jwt-")
        try:
            cls.keyFile = writeBytes(os.path.join(cls.directory, "issuer.pem"),
                                     publicPEM(RSA_ISSUER, EC_ISSUER))
            devices = os.path.join(cls.directory, "devices")
            os.mkdir(devices)
            writeBytes(os.path.join(devices, "dev1.pem"), publicPEM(DEVICE_1))
            passwd = os.path.join(cls.directory, "passwd")
            writePasswordFile(passwd, {"carol": hashPassword(b"carol-pw", iterations=10)})
            acl = os.path.join(cls.directory, "acl")
            with open(acl, "w") as f:
                f.write("user alice\ntopic readwrite alice/#\n"
                        "pattern readwrite users/%u/#\n")
            cls.broker = MqttdProcess([
                "--listen", "tcp:0:interface=127.0.0.1",
                "--auth", f"jwt:key={cls.keyFile}:keys={devices}:audience={AUDIENCE}",
                "--auth", f"passwd:file={passwd}:threaded=no",
                "--authorizer", f"aclfile:file={acl}",
            ])
            cls.broker.waitListening(1)
        except BaseException:
            if hasattr(cls, "broker"):
                cls.broker.cleanup()
            shutil.rmtree(cls.directory, True)
            raise
        cls.port = cls.broker.tcpPort()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.broker.cleanup()
        shutil.rmtree(cls.directory, True)

    def tearDown(self) -> None:
        self.assertIsNone(self.broker.process.poll(), "the broker exited")
        self.assertEqual(self.broker.tracebacks(), [])

    def test_validToken(self) -> None:
        """
        paho (3.1.1 and 5.0) with a token as password is accepted, and is
        the token's subject for the ACL: alice/# is granted, bob/# is not.
        """
        token = makeToken(RSA_ISSUER, "RS256", aud=AUDIENCE).decode()
        for protocol, refusedCode in ((mqtt.MQTTv311, 0x80), (mqtt.MQTTv5, 0x87)):
            reason, codes = pahoSession(self.port, uniqueName("p"), "unused", token.encode(),
                                        protocol, ("alice/#", "bob/#", "users/alice/x"))
            self.assertEqual(reason, 0)
            self.assertEqual(codes, [1, refusedCode, 1])

    def test_badToken(self) -> None:
        """
        Wrong key, expired, wrong audience, alg none: 3.1.1 CONNACK return
        code 4 (bad user name or password), v5 reason code 0x86.
        """
        bad = [
            makeToken(RSA_OTHER, "RS256", aud=AUDIENCE),
            makeToken(EC_ISSUER, lifetime=-60, aud=AUDIENCE),
            makeToken(EC_ISSUER, aud="someone-else"),
            forgedToken({"alg": "none"}, aud=AUDIENCE),
        ]
        for token in bad:
            self.assertEqual(rawConnack(self.port, uniqueName("r"), "alice", token),
                             BAD_CREDENTIALS_V3, token)
            connack = rawConnack(self.port, uniqueName("r"), "alice", token, level=5)
            self.assertIsInstance(connack, Connack)
            self.assertEqual(connack.reasonCode, 0x86, token)
        reason, _ = pahoSession(self.port, uniqueName("p"), "alice", bad[0], mqtt.MQTTv5)
        self.assertEqual(reason, 0x86)
        self.assertIn("jwt: token of", self.broker.log())

    def test_passwordFallback(self) -> None:
        """A password that is not a token goes to the passwd plug-in after jwt."""
        self.assertEqual(rawConnack(self.port, uniqueName("r"), "carol", b"carol-pw"),
                         ACCEPTED_V3)
        self.assertEqual(rawConnack(self.port, uniqueName("r"), "carol", b"nope"),
                         BAD_CREDENTIALS_V3)

    def test_deviceKey(self) -> None:
        """A device's own token: its client id is its user name."""
        token = makeToken(DEVICE_1, sub="alice", aud=AUDIENCE)
        reason, codes = pahoSession(self.port, "dev1", "unused", token, mqtt.MQTTv5,
                                    ("users/dev1/#", "alice/#"))
        self.assertEqual((reason, codes), (0, [1, 0x87]))
        self.assertEqual(rawConnack(self.port, "dev2", "unused", token), BAD_CREDENTIALS_V3)
        self.assertEqual(rawConnack(self.port, "../devices/dev1", "unused", token),
                         BAD_CREDENTIALS_V3)

    def test_sighupReadsNewKeys(self) -> None:
        """A key added to the file is used after SIGHUP."""
        token = makeToken(EC_OTHER, aud=AUDIENCE)
        self.assertEqual(rawConnack(self.port, uniqueName("r"), "x", token), BAD_CREDENTIALS_V3)
        with open(self.keyFile, "ab") as f:
            f.write(publicPEM(EC_OTHER))
        before = self.broker.log().count("configuration reloaded")
        self.broker.process.send_signal(signal.SIGHUP)
        self.assertTrue(waitForLog(
            lambda: str(self.broker.log().count("configuration reloaded") > before),
            "True"))
        self.assertEqual(rawConnack(self.port, uniqueName("r"), "x", token), ACCEPTED_V3)


class StartupTests(SynchronousTestCase):
    """
    A jwt plug-in that cannot start stops the broker with one line.
    """

    def test_missingKeyFile(self) -> None:
        """A key file that does not exist is named on stderr; the broker exits."""
        directory = newDirectory(self)
        missing = os.path.join(directory, "missing.pem")
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "mqttd", "--listen", "tcp:0:interface=127.0.0.1",
             "--auth", f"jwt:key={missing}:audience=x"],
            capture_output=True, timeout=30, cwd=directory, stdin=subprocess.DEVNULL,
        )
        stderr = result.stderr.decode("utf-8", "replace")
        self.assertNotEqual(result.returncode, 0, stderr)
        self.assertEqual(stderr.splitlines(), [
            f"mqttd: --auth jwt: {missing}: No such file or directory"])
