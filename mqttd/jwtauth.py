"""
JSON Web Tokens as MQTT passwords (the C{jwt} plug-in; needs PyJWT:
C{pip install 'txmqttd[jwt]'}).

A client sends any user name and a signed JWT as its password.  The token is
verified with public keys only (RS*, PS*, ES*, EdDSA: never C{none} or an
HMAC algorithm, so a public key can never be used as an HMAC secret), its
C{exp}, C{nbf}, C{iat}, C{aud} and C{iss} claims are checked, and a claim
(C{sub} by default) becomes the client's user name.

Keys come from three places, in any combination:

  - C{key=FILE}: one or more PEM public keys or X.509 certificates of a
    token issuer (a server that signs tokens for many clients);
  - C{jwks=FILE}: a JSON Web Key Set, keys picked by the token's C{kid};
  - C{keys=DIR}: one file per device, C{DIR/<client id>.pem}, as Google
    Cloud IoT Core did: each device signs its own tokens with its private
    key.  Such a token authenticates the I{client id}: the user name is the
    client id, whatever the token claims (a device could claim anything),
    as an identity of its own kind: a device's sessions are not those of
    a password user of the same name.

A password that is not a JWT at all is left to the next authenticator.
"""

from __future__ import annotations

import binascii
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.utils import base64url_decode
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from mqttd.auth import AuthenticatedIdentity
from mqttd.files import UnreadableFile, readBinaryFile
from mqttd.interfaces import IReloadable

log = Logger(namespace="mqttd")

#: The L{AuthenticatedIdentity} kind of a device authenticated by its own
#: key (C{keys=DIR}): its sessions are never those of a user of the same
#: name authenticated otherwise (catalogue AU-12).
DEVICE_KIND = "jwt-device"

#: The algorithms the plug-in can accept (its default): public-key
#: signatures only.
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
#: RSA keys shorter than this are refused (RFC 7518 section 3.3 requires
#: 2048 bits for RS256).
MINIMUM_RSA_BITS = 2048

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]+={0,2}")


class JWTKeyError(ValueError):
    """
    A key file (PEM or JWKS) that cannot be used; the message names it.
    """


@dataclass(frozen=True)
class PublicKey:
    """
    A verification key.

    @ivar key: the C{cryptography} public key.
    @ivar algorithms: the algorithms it may verify (by its type and curve,
        narrowed by a JWK's C{alg}).
    @ivar kid: its key id (JWKS keys), or L{None}.
    @ivar source: where it was read, for messages.
    """

    key: Any
    algorithms: frozenset[str]
    kid: str | None
    source: str


def algorithmsForKey(key: Any) -> frozenset[str]:
    """
    The JWS algorithms a public key can verify: RS*/PS* for RSA, the ES*
    algorithm of an EC key's curve, EdDSA for Ed25519 and Ed448.

    @raise JWTKeyError: for another kind of key, an unsupported curve or
        an RSA key shorter than L{MINIMUM_RSA_BITS}.
    """
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MINIMUM_RSA_BITS:
            raise JWTKeyError(
                f"an RSA key of {key.key_size} bits (at least {MINIMUM_RSA_BITS} are required)"
            )
        return _RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        if algorithm is None:
            raise JWTKeyError(f"an EC key on the unsupported curve {key.curve.name}")
        return frozenset({algorithm})
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    raise JWTKeyError(f"an unsupported kind of key ({type(key).__name__})")


def parsePEMKeys(data: bytes, source: str) -> list[PublicKey]:
    """
    The public keys of PEM text: C{PUBLIC KEY}, C{RSA PUBLIC KEY} and
    C{CERTIFICATE} blocks (a certificate's key is used; its dates and
    issuer are not checked).  Text outside the blocks is ignored.

    @raise JWTKeyError: if there is no key, a block is damaged, or is a
        private key or anything else.
    """
    keys = []
    for number, match in enumerate(_PEM_BLOCK.finditer(data), 1):
        kind = match.group(1).decode("ascii")
        where = f"{source}: PEM block {number}"
        try:
            if kind in ("PUBLIC KEY", "RSA PUBLIC KEY"):
                key = load_pem_public_key(match.group(0))
            elif kind == "CERTIFICATE":
                key = x509.load_pem_x509_certificate(match.group(0)).public_key()
            elif "PRIVATE KEY" in kind:
                raise JWTKeyError(
                    f"{where} is a private key: give the public key "
                    "(openssl pkey -in private.pem -pubout)"
                )
            else:
                raise JWTKeyError(f"{where} is a {kind}, not a public key or certificate")
        except (ValueError, UnsupportedAlgorithm) as e:
            if isinstance(e, JWTKeyError):
                raise
            raise JWTKeyError(f"{where}: damaged {kind}: {_oneLine(e)}") from None
        try:
            algorithms = algorithmsForKey(key)
        except JWTKeyError as e:
            raise JWTKeyError(f"{where}: {e}") from None
        keys.append(PublicKey(key, algorithms, None, where))
    if not keys:
        raise JWTKeyError(f"{source}: no PEM public key or certificate")
    return keys


def parseJWKS(data: bytes, source: str) -> list[PublicKey]:
    """
    The public keys of a JSON Web Key Set (C{{"keys": [...]}}, or a single
    JWK).  Keys marked C{"use": "enc"} are skipped; a JWK's C{alg}, if
    any, is the only algorithm it verifies.

    @raise JWTKeyError: for bad JSON, a symmetric (C{oct}) or private key,
        an unsupported key or algorithm.
    """
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise JWTKeyError(f"{source}: not JSON: {_oneLine(e)}") from None
    if isinstance(document, dict) and "kty" in document:
        entries = [document]
    elif isinstance(document, dict) and isinstance(document.get("keys"), list):
        entries = document["keys"]
    else:
        raise JWTKeyError(f'{source}: not a JWKS (a JSON object with a "keys" array)')
    keys = []
    for number, entry in enumerate(entries, 1):
        kid = entry.get("kid") if isinstance(entry, dict) else None
        where = f"{source}: key {number}" + (f" (kid {kid!r})" if kid is not None else "")
        if not isinstance(entry, dict):
            raise JWTKeyError(f"{where}: not a JSON object")
        if kid is not None and not isinstance(kid, str):
            raise JWTKeyError(f"{where}: kid is not a string")
        if entry.get("use", "sig") != "sig":
            continue
        kty = entry.get("kty")
        if kty == "oct":
            raise JWTKeyError(f"{where}: a symmetric (oct) key: only public keys are accepted")
        if "d" in entry or "p" in entry:
            raise JWTKeyError(f"{where}: a private key: publish only the public part")
        key: Any
        try:
            if kty == "RSA":
                key = RSAAlgorithm.from_jwk(entry)
            elif kty == "EC":
                key = ECAlgorithm.from_jwk(entry)
            elif kty == "OKP":
                key = OKPAlgorithm.from_jwk(entry)
            else:
                raise JWTKeyError(f"{where}: unsupported key type {kty!r}")
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as e:
            if isinstance(e, JWTKeyError):
                raise
            raise JWTKeyError(f"{where}: {_oneLine(e)}") from None
        try:
            algorithms = algorithmsForKey(key)
        except JWTKeyError as e:
            raise JWTKeyError(f"{where}: {e}") from None
        alg = entry.get("alg")
        if alg is not None:
            if alg not in algorithms:
                raise JWTKeyError(f"{where}: algorithm {alg!r} is not accepted for this key")
            algorithms = frozenset({alg})
        keys.append(PublicKey(key, algorithms, kid, where))
    if not keys:
        raise JWTKeyError(f"{source}: no signature key")
    return keys


def readKeyFile(path: str, jwks: bool = False) -> list[PublicKey]:
    """
    Read a PEM file (or, with C{jwks}, a JWKS file).

    @raise JWTKeyError: if it cannot be read or used.
    """
    try:
        data = readBinaryFile(path)
    except UnreadableFile as e:
        raise JWTKeyError(str(e)) from None
    return parseJWKS(data, path) if jwks else parsePEMKeys(data, path)


def isSafeDeviceName(clientId: str) -> bool:
    """
    Whether a client id can name a file in the per-device key directory:
    not empty, not starting with C{.}, without C{/}, C{\\} or NUL, and
    short enough for a file name.
    """
    return (
        bool(clientId)
        and not clientId.startswith(".")
        and not any(c in clientId for c in "/\\\x00")
        and len(clientId.encode("utf-8", "surrogatepass")) <= 250
    )


def tokenHeader(password: bytes) -> dict[str, Any] | None:
    """
    The JOSE header of a password shaped like a compact JWS (three
    base64url parts separated by dots, the first a JSON object), or
    L{None} if it is not a JWT.  Nothing is verified.
    """
    parts = password.split(b".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    if not all(_BASE64URL.fullmatch(part) for part in parts if part):
        return None
    try:
        header = json.loads(base64url_decode(parts[0]))
    except (ValueError, binascii.Error, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def _oneLine(error: object) -> str:
    return " ".join(str(error).split())


def _describe(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return f"the token is not valid yet ({_oneLine(error)})"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the token has no {error.claim!r} claim"
    if isinstance(error, jwt.InvalidAudienceError):
        return f"wrong audience ({_oneLine(error)})"
    if isinstance(error, jwt.InvalidIssuerError):
        return f"wrong issuer ({_oneLine(error)})"
    return _oneLine(error) or type(error).__name__


@implementer(ICredentialsChecker, IReloadable)
class JWTChecker:
    """
    A C{twisted.cred} checker of JWTs sent as the CONNECT's password (the
    C{jwt} plug-in).

    Answers, when the token verifies: the user name (C{str}, an identity
    of kind C{"user"}) for a token of an issuer key, or an
    L{AuthenticatedIdentity} of kind L{DEVICE_KIND} naming the client id
    for a token of a device's own key.  C{UnauthorizedLogin} for a token
    that is refused (bad signature, algorithm not accepted, expired, not
    yet valid, wrong audience or issuer, a required claim missing);
    C{UnhandledCredentials} ("next authenticator") when the password is
    not a JWT or no configured key could have signed it (another C{kid},
    no file for the device).

    Tokens are verified in the reactor thread (a signature check takes
    about 0.1 ms); nothing is cached between connections.

    @ivar algorithms: the accepted algorithms.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(
        self,
        keyFile: str | None = None,
        jwksFile: str | None = None,
        deviceDirectory: str | None = None,
        *,
        usernameClaim: str = "sub",
        clientIdClaim: str | None = None,
        audience: Sequence[str] = (),
        issuer: Sequence[str] = (),
        require: Iterable[str] = ("exp",),
        leeway: float = 0.0,
        maxLifetime: float | None = None,
        algorithms: Iterable[str] = ASYMMETRIC_ALGORITHMS,
    ) -> None:
        """
        @param keyFile: a PEM file of issuer keys or certificates.
        @param jwksFile: a JWKS file of issuer keys.
        @param deviceDirectory: a directory of C{<client id>.pem} files.
        @param usernameClaim: the claim naming the user (issuer keys only).
        @param clientIdClaim: a claim that must equal the client id.
        @param audience: accepted C{aud} values; empty: a token with an
            C{aud} claim is refused.
        @param issuer: accepted C{iss} values; empty: not checked.
        @param require: claims a token must have.
        @param leeway: seconds of clock skew allowed for C{exp}, C{nbf},
            C{iat}.
        @param maxLifetime: if set, tokens need C{iat} and C{exp} at most
            this many seconds apart.
        @param algorithms: the accepted algorithms, a subset of
            L{ASYMMETRIC_ALGORITHMS}.
        @raise ValueError: for an algorithm outside L{ASYMMETRIC_ALGORITHMS}
            or no key source.
        @raise JWTKeyError: for a key file that cannot be used.
        """
        self.algorithms = frozenset(algorithms)
        unknown = sorted(self.algorithms - set(ASYMMETRIC_ALGORITHMS))
        if unknown:
            raise ValueError(
                f"algorithm {unknown[0]!r} is not accepted "
                f"(accepted: {', '.join(ASYMMETRIC_ALGORITHMS)})"
            )
        if not self.algorithms:
            raise ValueError("no algorithm is accepted")
        if keyFile is None and jwksFile is None and deviceDirectory is None:
            raise ValueError("no keys: give key=FILE, jwks=FILE or keys=DIR")
        self.keyFile = keyFile
        self.jwksFile = jwksFile
        self.deviceDirectory = deviceDirectory
        self.usernameClaim = usernameClaim
        self.clientIdClaim = clientIdClaim
        self.audience = list(audience) or None
        self.issuer = list(issuer) or None
        self.leeway = leeway
        self.maxLifetime = maxLifetime
        required = list(dict.fromkeys(require))
        if maxLifetime is not None:
            required += [claim for claim in ("iat", "exp") if claim not in required]
        self.required = required
        self._decoder = jwt.PyJWT({"require": required, "verify_signature": True,
                                   "enforce_minimum_key_length": True})
        self.keys: list[PublicKey] = []
        self.reload()

    def __repr__(self) -> str:
        sources = [s for s in (self.keyFile, self.jwksFile, self.deviceDirectory) if s]
        return f"<JWTChecker {', '.join(sources)}: {len(self.keys)} issuer keys>"

    def reload(self) -> None:
        """
        Re-read the key files (and check the device directory); on any
        error the old keys stay.

        @raise JWTKeyError: naming the file at fault.
        """
        keys: list[PublicKey] = []
        if self.keyFile is not None:
            keys += readKeyFile(self.keyFile)
        if self.jwksFile is not None:
            keys += readKeyFile(self.jwksFile, jwks=True)
        if self.deviceDirectory is not None and not os.path.isdir(self.deviceDirectory):
            raise JWTKeyError(f"{self.deviceDirectory}: not a directory")
        self.keys = keys

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        try:
            return succeed(self._check(credentials))
        except Exception:
            return fail()

    def _refused(self, clientId: str | None, reason: str) -> UnauthorizedLogin:
        log.info("jwt: token of {clientId!r} refused: {reason}", clientId=clientId,
                 reason=reason)
        return UnauthorizedLogin(f"jwt: {reason}")

    def _check(self, credentials: Any) -> str | AuthenticatedIdentity:
        password = credentials.password
        if isinstance(password, str):
            password = password.encode("utf-8")
        header = tokenHeader(password)
        if header is None:
            raise UnhandledCredentials("jwt: the password is not a JSON Web Token")
        token = password.decode("ascii")
        clientId: str | None = getattr(credentials, "clientId", None)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            # "none", HS256 (a public key used as an HMAC secret), ...:
            # refused before any key is looked at.
            raise self._refused(clientId, f"algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise self._refused(clientId, "the kid header is not a string")
        candidates = [(key, True) for key in self._deviceKeys(clientId)]
        candidates += [
            (key, False) for key in self.keys
            if kid is None or key.kid is None or key.kid == kid
        ]
        candidates = [(key, device) for key, device in candidates if alg in key.algorithms]
        if not candidates:
            raise UnhandledCredentials(f"jwt: no {alg} key for this token")
        for key, device in candidates:
            try:
                claims = self._decoder.decode(
                    token, key.key, algorithms=[alg], audience=self.audience,
                    issuer=self.issuer, leeway=self.leeway,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as e:
                raise self._refused(clientId, _describe(e)) from None
            return self._identity(claims, device, clientId)
        raise self._refused(clientId, "the signature does not verify with any key")

    def _deviceKeys(self, clientId: str | None) -> list[PublicKey]:
        if self.deviceDirectory is None or not clientId:
            return []
        if not isSafeDeviceName(clientId):
            raise self._refused(clientId, "the client id cannot name a device key file")
        path = os.path.join(self.deviceDirectory, clientId + ".pem")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            log.error("jwt: cannot read the key of device {clientId!r}: {error}",
                      clientId=clientId, error=_oneLine(e))
            raise self._refused(clientId, "the device key cannot be read") from None
        try:
            return parsePEMKeys(data, path)
        except JWTKeyError as e:
            log.error("jwt: bad key file for device {clientId!r}: {error}",
                      clientId=clientId, error=str(e))
            raise self._refused(clientId, "the device key cannot be used") from None

    def _identity(
        self, claims: dict[str, Any], device: bool, clientId: str | None
    ) -> str | AuthenticatedIdentity:
        if self.maxLifetime is not None:
            iat, exp = claims.get("iat"), claims.get("exp")
            if not all(isinstance(v, int | float) and not isinstance(v, bool)
                       for v in (iat, exp)):
                raise self._refused(clientId, "iat and exp must be numbers")
            if exp - iat > self.maxLifetime:  # type: ignore[operator]
                raise self._refused(
                    clientId, f"the token lives longer than {self.maxLifetime:g} seconds"
                )
        if self.clientIdClaim is not None:
            value = claims.get(self.clientIdClaim)
            if clientId is None or value != clientId:
                raise self._refused(
                    clientId, f"the {self.clientIdClaim!r} claim is not the client id"
                )
        if device:
            # The device signed its own token: its claims cannot name
            # anyone else; the key file names the device.  A device is an
            # identity of its own kind: its sessions are not those of a
            # password (or issuer-token) user of the same name (AU-12).
            assert clientId is not None
            return AuthenticatedIdentity(clientId, DEVICE_KIND)
        username = claims.get(self.usernameClaim)
        if not isinstance(username, str) or not username:
            raise self._refused(clientId, f"the token has no {self.usernameClaim!r} claim")
        return username
