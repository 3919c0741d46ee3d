"""
SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5.0 enhanced authentication
method, and its credential file.

The exchange over the AUTH flow of MQTT 5.0 section 4.12::

    CONNECT  Authentication Method "SCRAM-SHA-256", Data client-first
             (n,,n=user,r=client-nonce)
    AUTH     0x18, server-first (r=client-nonce+server-nonce,s=salt,i=iterations)
    AUTH     0x18, client-final (c=biws,r=nonce,p=proof)
    CONNACK  0x00, server-final (v=server-signature)

and the same rounds after AUTH 0x19 for a re-authentication, which ends
with AUTH 0x00 carrying the server-final message.  Channel binding is not
offered (no C{SCRAM-SHA-256-PLUS}): a client-first message asking for it
(C{p=...}) is refused; C{n} and C{y} are accepted, as RFC 5802 section 6
says a server without channel binding does.

The credential file has one line per user::

    user:iterations:base64(salt):base64(StoredKey):base64(ServerKey)

so no password, nor anything a client could log in with, is kept (the
server verifies a proof against StoredKey; a stolen file lets one
impersonate the server, not the users).  Blank lines and lines starting
with C{#} are skipped; any other bad line makes the whole file invalid,
reported with its line number.  C{mqttd scram} writes it.

An unknown user gets a server-first message like a known one: a salt
derived from the user name and a secret of the authenticator (the same
salt every time, for the life of the process), the usual iteration count,
and a failure at the proof, with the same reason code and string as a
wrong password, after the same work.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stringprep
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zope.interface import implementer

from mqttd.auth import AuthContinue, AuthFailure, AuthResult, AuthSuccess, ClientIdentity
from mqttd.files import UnreadableFile, readTextFile, writePrivateFile
from mqttd.interfaces import IAuthExchange, IEnhancedAuthenticator, IReloadable

#: The MQTT Authentication Method name.
METHOD = "SCRAM-SHA-256"
#: PBKDF2 iterations of new credentials, and the least a file may hold
#: (RFC 7677 section 4: at least 4096).
DEFAULT_ITERATIONS = 4096
MINIMUM_ITERATIONS = 4096
MAXIMUM_ITERATIONS = 100_000_000
SALT_BYTES = 16
#: Random bytes of a server nonce (base64: 24 characters).
NONCE_BYTES = 18

_KEY_BYTES = hashlib.sha256().digest_size


class ScramFileError(ValueError):
    """
    A credential file that cannot be used, with the line at fault.

    @ivar lineNumber: the 1-based line number, or L{None}.
    """

    def __init__(self, message: str, lineNumber: int | None = None) -> None:
        if lineNumber is not None:
            message = f"line {lineNumber}: {message}"
        super().__init__(message)
        self.lineNumber = lineNumber


# -- SASLprep (RFC 4013) ----------------------------------------------------------


def saslprep(text: str, allowUnassigned: bool = False) -> str:
    """
    Prepare a user name or password with the SASLprep profile of
    stringprep (RFC 4013, RFC 3454, Unicode 3.2): map non-ASCII spaces to
    a space and the "commonly mapped to nothing" characters to nothing,
    normalize with NFKC, refuse prohibited characters (controls, private
    use, non-characters, surrogates, ...) and bad bidirectional text.

    @param allowUnassigned: allow code points unassigned in Unicode 3.2
        (a "query", as the server does with a received user name); stored
        strings do not allow them.
    @raise ValueError: if C{text} cannot be prepared.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c
        for c in text if not stringprep.in_table_b1(c)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for c in prepared:
        if (
            stringprep.in_table_c12(c)
            or stringprep.in_table_c21_c22(c)
            or stringprep.in_table_c3(c)
            or stringprep.in_table_c4(c)
            or stringprep.in_table_c5(c)
            or stringprep.in_table_c6(c)
            or stringprep.in_table_c7(c)
            or stringprep.in_table_c8(c)
            or stringprep.in_table_c9(c)
        ):
            raise ValueError(f"prohibited character U+{ord(c):04X}")
        if not allowUnassigned and stringprep.in_table_a1(c):
            raise ValueError(f"unassigned code point U+{ord(c):04X}")
    randAL = [stringprep.in_table_d1(c) for c in prepared]
    if any(randAL) and (
        any(stringprep.in_table_d2(c) for c in prepared) or not (randAL[0] and randAL[-1])
    ):
        raise ValueError("mixed or badly delimited right-to-left text")
    return prepared


# -- credentials ----------------------------------------------------------------


@dataclass(frozen=True)
class ScramCredential:
    """
    What the server keeps of a user's password (RFC 5802 section 3).

    @ivar iterations: the PBKDF2-HMAC-SHA256 iteration count.
    @ivar salt: the salt.
    @ivar storedKey: H(ClientKey).
    @ivar serverKey: HMAC(SaltedPassword, "Server Key").
    """

    iterations: int
    salt: bytes
    storedKey: bytes
    serverKey: bytes

    def encode(self) -> str:
        """
        The credential as it appears in the file (after C{user:}).
        """
        return ":".join(
            [str(self.iterations), _b64(self.salt), _b64(self.storedKey), _b64(self.serverKey)]
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def makeCredential(
    password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> ScramCredential:
    """
    The credential of a password: SaltedPassword = PBKDF2-HMAC-SHA256 of
    the SASLprep-ed password, then StoredKey and ServerKey.

    @param salt: the salt (random, L{SALT_BYTES} long, by default).
    @raise ValueError: if the password cannot be prepared or the
        iteration count is out of range.
    """
    if not MINIMUM_ITERATIONS <= iterations <= MAXIMUM_ITERATIONS:
        raise ValueError(
            f"iterations must be between {MINIMUM_ITERATIONS} and {MAXIMUM_ITERATIONS}"
        )
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    try:
        prepared = saslprep(password)
    except ValueError as e:
        raise ValueError(f"the password cannot be used with SCRAM: {e}") from None
    salted = hashlib.pbkdf2_hmac("sha256", prepared.encode("utf-8"), salt, iterations)
    clientKey = _hmac(salted, b"Client Key")
    return ScramCredential(
        iterations, salt, hashlib.sha256(clientKey).digest(), _hmac(salted, b"Server Key")
    )


def checkUsername(username: str) -> None:
    """
    Refuse a user name the file cannot hold or SCRAM cannot match: empty,
    with C{:}, starting with C{#} or blank (it would read as a comment or a
    blank line), or not already in SASLprep form.

    @raise ValueError: saying why.
    """
    if not username:
        raise ValueError("empty user name")
    if ":" in username:
        raise ValueError("a user name cannot contain ':'")
    if not username.strip() or username.lstrip().startswith("#"):
        raise ValueError("a user name cannot be blank or start with '#'")
    try:
        prepared = saslprep(username)
    except ValueError as e:
        raise ValueError(f"user name {username!r} cannot be used with SCRAM: {e}") from None
    if prepared != username:
        raise ValueError(f"user name {username!r} is not in SASLprep form ({prepared!r})")


def parseCredentialFile(text: str) -> dict[str, ScramCredential]:
    """
    Parse the contents of a credential file.

    @return: user name -> credential, in file order.
    @raise ScramFileError: for the first bad line.
    """
    users: dict[str, ScramCredential] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split(":")
        if len(fields) != 5:
            raise ScramFileError(
                f"{len(fields)} ':'-separated fields instead of 5 "
                "(user:iterations:salt:StoredKey:ServerKey)", number
            )
        username, iterations, salt, storedKey, serverKey = fields
        try:
            checkUsername(username)
        except ValueError as e:
            raise ScramFileError(str(e), number) from None
        if username in users:
            raise ScramFileError(f"user {username!r} appears twice", number)
        if not iterations.isdigit() or not (
            MINIMUM_ITERATIONS <= int(iterations) <= MAXIMUM_ITERATIONS
        ):
            raise ScramFileError(
                f"bad iteration count for {username!r}: {iterations!r} (an integer from "
                f"{MINIMUM_ITERATIONS} to {MAXIMUM_ITERATIONS})", number
            )
        try:
            keys = [_unb64(field) for field in (salt, storedKey, serverKey)]
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise ScramFileError(f"bad credential for {username!r}: invalid base64", number) \
                from None
        if not keys[0]:
            raise ScramFileError(f"bad credential for {username!r}: empty salt", number)
        if len(keys[1]) != _KEY_BYTES or len(keys[2]) != _KEY_BYTES:
            raise ScramFileError(
                f"bad credential for {username!r}: StoredKey and ServerKey must be "
                f"{_KEY_BYTES} bytes", number
            )
        users[username] = ScramCredential(int(iterations), *keys)
    return users


def readCredentialFile(path: str) -> dict[str, ScramCredential]:
    """
    Read and parse a credential file.

    @raise ScramFileError: if it cannot be read or parsed (the message
        names the file and line).
    """
    try:
        text = readTextFile(path)
    except UnreadableFile as e:
        raise ScramFileError(str(e)) from None
    try:
        return parseCredentialFile(text)
    except ScramFileError as e:
        raise ScramFileError(f"{path}: {e}") from None


def formatCredentialFile(
    users: Mapping[str, ScramCredential] | Iterable[tuple[str, ScramCredential]]
) -> str:
    """
    The text of a credential file for these users, in the given order.
    """
    items = users.items() if isinstance(users, Mapping) else users
    return "".join(f"{name}:{credential.encode()}\n" for name, credential in items)


def writeCredentialFile(
    path: str, users: Mapping[str, ScramCredential], new: bool = False
) -> None:
    """
    Replace a credential file atomically: a new one (or any, with C{new})
    readable by its owner only, an existing one keeping its mode, owner and
    group (see L{mqttd.files.writePrivateFile}).

    @raise OSError: naming C{path}.
    """
    writePrivateFile(path, formatCredentialFile(users), new)


# -- messages (RFC 5802 section 7) --------------------------------------------------


class ScramError(Exception):
    """
    A SCRAM message the server refuses before checking any proof.

    @ivar reasonCode: the MQTT reason code of the refusal.
    """

    def __init__(self, reason: str, reasonCode: int = 0x87) -> None:
        super().__init__(reason)
        self.reasonCode = reasonCode


def _decodeSaslname(value: str) -> str:
    """
    A C{saslname}: C{=2C} is C{,} and C{=3D} is C{=}; any other C{=} is
    an error.
    """
    if not value:
        raise ScramError("malformed SCRAM message: empty name")
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "=":
            escape = value[i + 1:i + 3].upper()
            if escape == "2C":
                out.append(",")
            elif escape == "3D":
                out.append("=")
            else:
                raise ScramError("malformed SCRAM message: bad '=' escape in a name")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _checkNonce(nonce: str) -> None:
    # printable = %x21-2B / %x2D-7E
    if not nonce or any(not ("\x21" <= c <= "\x7e") or c == "," for c in nonce):
        raise ScramError("malformed SCRAM message: bad nonce")


def _checkExtensions(attributes: list[str]) -> None:
    for attribute in attributes:
        if len(attribute) < 3 or not attribute[0].isascii() or not attribute[0].isalpha() \
                or attribute[1] != "=":
            raise ScramError("malformed SCRAM message: bad attribute")


def _text(data: bytes | None) -> str:
    if not data:
        raise ScramError("malformed SCRAM message: no authentication data")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError("malformed SCRAM message: not UTF-8") from None
    if "\x00" in text:
        raise ScramError("malformed SCRAM message: NUL character")
    return text


@dataclass(frozen=True)
class ClientFirst:
    """
    A parsed client-first message.

    @ivar gs2Header: the GS2 header (C{n,,}, C{y,,} or with C{a=}).
    @ivar username: the user name as sent (decoded, not yet prepared).
    @ivar nonce: the client's nonce.
    @ivar bare: the client-first-message-bare (for the AuthMessage).
    """

    gs2Header: str
    username: str
    nonce: str
    bare: str


def parseClientFirst(data: bytes | None) -> ClientFirst:
    """
    Parse a client-first message.

    @raise ScramError: if it is malformed, asks for channel binding, or
        names an authorization identity other than the user.
    """
    text = _text(data)
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise ScramError("malformed SCRAM message: no GS2 header")
    flag, authzid, bare = parts
    if flag.startswith("p="):
        # SCRAM-SHA-256-PLUS is not offered (RFC 5802 section 6).
        raise ScramError("channel binding is not supported", 0x8C)
    if flag not in ("n", "y"):
        raise ScramError("malformed SCRAM message: bad channel binding flag")
    gs2Header = f"{flag},{authzid},"
    attributes = bare.split(",")
    if attributes[0].startswith("m="):
        raise ScramError("unsupported mandatory SCRAM extension")
    if len(attributes) < 2 or not attributes[0].startswith("n=") \
            or not attributes[1].startswith("r="):
        raise ScramError("malformed SCRAM message: expected n=...,r=...")
    username = _decodeSaslname(attributes[0][2:])
    nonce = attributes[1][2:]
    _checkNonce(nonce)
    _checkExtensions(attributes[2:])
    if authzid:
        if not authzid.startswith("a="):
            raise ScramError("malformed SCRAM message: bad authorization identity")
        if _decodeSaslname(authzid[2:]) != username:
            raise ScramError("an authorization identity other than the user is not supported")
    return ClientFirst(gs2Header, username, nonce, bare)


@dataclass(frozen=True)
class ClientFinal:
    """
    A parsed client-final message.

    @ivar channelBinding: the decoded C{c=} attribute.
    @ivar nonce: the combined nonce.
    @ivar proof: the ClientProof.
    @ivar withoutProof: client-final-message-without-proof.
    """

    channelBinding: bytes
    nonce: str
    proof: bytes
    withoutProof: str


def parseClientFinal(data: bytes | None) -> ClientFinal:
    """
    Parse a client-final message.

    @raise ScramError: if it is malformed.
    """
    text = _text(data)
    attributes = text.split(",")
    if len(attributes) < 3 or not attributes[0].startswith("c=") \
            or not attributes[1].startswith("r=") or not attributes[-1].startswith("p="):
        raise ScramError("malformed SCRAM message: expected c=...,r=...,p=...")
    _checkExtensions(attributes[2:-1])
    try:
        channelBinding = _unb64(attributes[0][2:])
        proof = _unb64(attributes[-1][2:])
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ScramError("malformed SCRAM message: invalid base64") from None
    if len(proof) != _KEY_BYTES:
        raise ScramError("malformed SCRAM message: the proof has the wrong length")
    return ClientFinal(channelBinding, attributes[1][2:], proof, ",".join(attributes[:-1]))


# -- the authenticator ----------------------------------------------------------


def _derive(secret: bytes, label: bytes, name: bytes, length: int) -> bytes:
    """
    C{length} bytes determined by C{secret}, C{label} and C{name}.
    """
    out = b""
    counter = 0
    while len(out) < length:
        out += _hmac(secret, label + counter.to_bytes(4, "big") + b"\x00" + name)
        counter += 1
    return out[:length]


_BAD_CREDENTIALS = AuthFailure(0x86, "bad user name or password")


@implementer(IAuthExchange)
class ScramExchange:
    """
    One SCRAM-SHA-256 conversation: client-first, then client-final.
    """

    def __init__(self, authenticator: ScramAuthenticator) -> None:
        self.authenticator = authenticator
        self._state = "first"
        self._first: ClientFirst | None = None
        self._serverFirst = ""
        self._nonce = ""
        self._username = ""
        self._known = False
        self._credential: ScramCredential | None = None

    def step(self, data: bytes | None) -> AuthResult:
        """
        Answer the client-first message with the server-first one, then
        the client-final message with success (and the server-final
        message) or failure.
        """
        state, self._state = self._state, "done"
        try:
            if state == "first":
                return self._clientFirst(data)
            if state == "final":
                return self._clientFinal(data)
        except ScramError as e:
            return AuthFailure(e.reasonCode, str(e))
        return AuthFailure(0x87, "unexpected SCRAM message after the exchange")

    def _clientFirst(self, data: bytes | None) -> AuthResult:
        first = parseClientFirst(data)
        try:
            # A received name is a "query": unassigned code points allowed.
            username = saslprep(first.username, allowUnassigned=True)
        except ValueError as e:
            raise ScramError(f"user name cannot be prepared: {e}") from None
        if not username:
            raise ScramError("malformed SCRAM message: empty user name")
        known, credential = self.authenticator.lookup(username)
        self._first, self._username = first, username
        self._known, self._credential = known, credential
        self._nonce = first.nonce + self.authenticator.newNonce()
        self._serverFirst = (
            f"r={self._nonce},s={_b64(credential.salt)},i={credential.iterations}"
        )
        self._state = "final"
        return AuthContinue(self._serverFirst.encode("utf-8"))

    def _clientFinal(self, data: bytes | None) -> AuthResult:
        final = parseClientFinal(data)
        first, credential = self._first, self._credential
        assert first is not None and credential is not None
        if final.channelBinding != first.gs2Header.encode("utf-8"):
            raise ScramError("SCRAM channel binding does not match the GS2 header")
        if not hmac.compare_digest(final.nonce.encode("utf-8"), self._nonce.encode("utf-8")):
            raise ScramError("SCRAM nonce mismatch")
        authMessage = ",".join((first.bare, self._serverFirst, final.withoutProof))
        authMessageBytes = authMessage.encode("utf-8")
        clientSignature = _hmac(credential.storedKey, authMessageBytes)
        clientKey = bytes(a ^ b for a, b in zip(final.proof, clientSignature, strict=True))
        matched = hmac.compare_digest(hashlib.sha256(clientKey).digest(), credential.storedKey)
        # An unknown user's made-up key matches nothing; both fail alike.
        if not (matched and self._known):
            return _BAD_CREDENTIALS
        serverSignature = _hmac(credential.serverKey, authMessageBytes)
        return AuthSuccess(
            ClientIdentity(self._username.encode("utf-8")),
            b"v=" + base64.b64encode(serverSignature),
        )


@implementer(IEnhancedAuthenticator, IReloadable)
class ScramAuthenticator:
    """
    The C{SCRAM-SHA-256} enhanced authentication method over a credential
    file (the C{scram} plug-in).  A client that authenticates becomes the
    user it named (an identity whose C{username} authorizers see).

    @ivar path: the credential file, or L{None} for fixed C{credentials}.
    @ivar users: user name -> L{ScramCredential}.
    """

    method = METHOD

    def __init__(
        self,
        path: str | None = None,
        credentials: Mapping[str, ScramCredential] | None = None,
        nonceFactory: Callable[[], str] | None = None,
        secret: bytes | None = None,
    ) -> None:
        """
        @param path: the credential file (re-read by L{reload}).
        @param credentials: users to serve instead of a file's.
        @param nonceFactory: makes the server's part of each nonce (random
            by default; tests inject a fixed one).
        @param secret: derives unknown users' salts (random by default).
        @raise ScramFileError: if the file cannot be read or parsed.
        """
        if (path is None) == (credentials is None):
            raise TypeError("give a credential file or credentials, not both")
        self.path = path
        self._nonceFactory = nonceFactory
        self._secret = secret if secret is not None else os.urandom(32)
        self.users: dict[str, ScramCredential] = {}
        self._fakeIterations = DEFAULT_ITERATIONS
        self._fakeSaltBytes = SALT_BYTES
        if credentials is not None:
            self._use(dict(credentials))
        else:
            self.reload()

    def __repr__(self) -> str:
        return f"<ScramAuthenticator {self.path!r}: {len(self.users)} users>"

    def _use(self, users: dict[str, ScramCredential]) -> None:
        # Made-up credentials look like the most common real ones.
        shapes = Counter((c.iterations, len(c.salt)) for c in users.values())
        iterations, saltBytes = (
            shapes.most_common(1)[0][0] if shapes else (DEFAULT_ITERATIONS, SALT_BYTES)
        )
        self.users, self._fakeIterations, self._fakeSaltBytes = users, iterations, saltBytes

    def reload(self) -> None:
        """
        Re-read the credential file; on any error the old users stay.

        @raise ScramFileError: if the file cannot be read or parsed.
        """
        if self.path is not None:
            self._use(readCredentialFile(self.path))

    def lookup(self, username: str) -> tuple[bool, ScramCredential]:
        """
        A user's credential, or a made-up one for an unknown user (its
        salt always the same for the same name, its keys matching no
        proof), computed either way so both take as long.

        @return: whether the user is known, and the credential to use.
        """
        name = username.encode("utf-8")
        fake = ScramCredential(
            self._fakeIterations,
            _derive(self._secret, b"salt", name, self._fakeSaltBytes),
            _derive(self._secret, b"stored-key", name, _KEY_BYTES),
            _derive(self._secret, b"server-key", name, _KEY_BYTES),
        )
        credential = self.users.get(username)
        if credential is None:
            return False, fake
        return True, credential

    def newNonce(self) -> str:
        """
        The server's part of a nonce: random printable characters without
        C{,}.
        """
        if self._nonceFactory is not None:
            return self._nonceFactory()
        return base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode("ascii")

    def newExchange(self, clientId: str, connect: Any, reauthentication: bool) -> IAuthExchange:
        return ScramExchange(self)
