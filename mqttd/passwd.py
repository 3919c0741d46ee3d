"""
Password files in mosquitto's C{password_file} format, and their hashes.

Each line is C{username:hash}.  Two hash forms are read, as mosquitto writes
them:

  - C{$7$iterations$salt$hash}: PBKDF2-HMAC-SHA512 (mosquitto 2's default,
    and what mqttd writes);
  - C{$6$salt$hash}: SHA-512 of the password followed by the salt
    (mosquitto 1.6 and earlier);

salt and hash in base64.  Anything else (a blank user name, a line without
a colon, an unknown or damaged hash, a duplicate user) makes the whole file
invalid, reported with its line number: it is never read as "a user without
a password" (CVE-2018-12551).  Comparisons take constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from mqttd.files import UnreadableFile, readTextFile, writePrivateFile
from mqttd.interfaces import IReloadable

#: PBKDF2 iterations for new hashes.  mosquitto_passwd uses 101; mqttd
#: verifies in a thread, so it can afford a stronger default.
DEFAULT_ITERATIONS = 10_000
SALT_BYTES = 12


class PasswordFileError(ValueError):
    """
    A password file that cannot be used, with the line at fault.

    @ivar lineNumber: the 1-based line number, or L{None}.
    """

    def __init__(self, message: str, lineNumber: int | None = None) -> None:
        if lineNumber is not None:
            message = f"line {lineNumber}: {message}"
        super().__init__(message)
        self.lineNumber = lineNumber


@dataclass(frozen=True)
class PasswordHash:
    """
    A parsed password hash.

    @ivar scheme: C{"7"} (PBKDF2-SHA512) or C{"6"} (salted SHA-512).
    @ivar iterations: PBKDF2 iterations (1 for C{"6"}).
    """

    scheme: str
    iterations: int
    salt: bytes
    digest: bytes

    def verify(self, password: bytes) -> bool:
        """
        Whether C{password} matches, compared in constant time.
        """
        if self.scheme == "7":
            candidate = hashlib.pbkdf2_hmac("sha512", password, self.salt, self.iterations)
        else:
            candidate = hashlib.sha512(password + self.salt).digest()
        return hmac.compare_digest(candidate, self.digest)

    def encode(self) -> str:
        """
        The hash as it appears in the file.
        """
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        if self.scheme == "7":
            return f"$7${self.iterations}${salt}${digest}"
        return f"$6${salt}${digest}"


def hashPassword(
    password: bytes, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> PasswordHash:
    """
    A new PBKDF2-SHA512 hash of C{password} with a random salt.
    """
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password, salt, iterations)
    return PasswordHash("7", iterations, salt, digest)


def _b64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def dummyHashLike(hashes: Iterable[PasswordHash]) -> PasswordHash:
    """
    A hash of the most common scheme and iteration count among C{hashes}
    that matches no password: check unknown users against it, so that an
    unknown user costs as much as a known one with a wrong password (no
    user enumeration by timing).
    """
    kinds = Counter((h.scheme, h.iterations) for h in hashes)
    scheme, iterations = kinds.most_common(1)[0][0] if kinds else ("7", DEFAULT_ITERATIONS)
    if scheme == "6":
        return PasswordHash("6", 1, os.urandom(SALT_BYTES), os.urandom(64))
    return PasswordHash("7", iterations, os.urandom(SALT_BYTES), os.urandom(64))


def parseHash(text: str) -> PasswordHash:
    """
    Parse a C{$7$...} or C{$6$...} hash.

    @raise ValueError: if it is neither, or damaged.
    """
    parts = text.split("$")
    try:
        if len(parts) == 5 and parts[0] == "" and parts[1] == "7":
            if not (parts[2].isascii() and parts[2].isdigit()):
                raise ValueError(f"bad iteration count {parts[2]!r}")
            iterations = int(parts[2])
            if not 1 <= iterations <= 100_000_000:
                raise ValueError("iteration count out of range")
            salt, digest = _b64(parts[3]), _b64(parts[4])
            if len(digest) != 64 or not salt:
                raise ValueError("wrong hash or salt length")
            return PasswordHash("7", iterations, salt, digest)
        if len(parts) == 4 and parts[0] == "" and parts[1] == "6":
            salt, digest = _b64(parts[2]), _b64(parts[3])
            if len(digest) != 64 or not salt:
                raise ValueError("wrong hash or salt length")
            return PasswordHash("6", 1, salt, digest)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("invalid base64") from None
    raise ValueError("not a $7$ (PBKDF2-SHA512) or $6$ (SHA-512) hash")


def parsePasswordFile(text: str, allowPlain: bool = False) -> dict[str, PasswordHash | str]:
    """
    Parse the contents of a password file.

    Blank lines and lines starting with C{#} are skipped.

    @param allowPlain: accept plain-text passwords (only to convert them
        with C{mqttd passwd -U}); they are returned as C{str}.
    @return: user name -> hash (or plain password).
    @raise PasswordFileError: for the first bad line.
    """
    users: dict[str, PasswordHash | str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        username, colon, secret = line.rstrip("\r\n").partition(":")
        if not colon:
            raise PasswordFileError("no ':' between user name and password hash", number)
        if not username:
            raise PasswordFileError("empty user name", number)
        if username in users:
            raise PasswordFileError(f"user {username!r} appears twice", number)
        if allowPlain and not secret.startswith("$"):
            users[username] = secret
            continue
        try:
            users[username] = parseHash(secret)
        except ValueError as e:
            raise PasswordFileError(f"bad password hash for {username!r}: {e}", number) from None
    return users


def readPasswordFile(path: str) -> dict[str, PasswordHash]:
    """
    Read and parse a password file.

    @raise PasswordFileError: if it cannot be read or parsed (the message
        names the file and line).
    """
    try:
        text = readTextFile(path)
    except UnreadableFile as e:
        raise PasswordFileError(str(e)) from None
    try:
        parsed = parsePasswordFile(text)
    except PasswordFileError as e:
        raise PasswordFileError(f"{path}: {e}") from None
    return {name: h for name, h in parsed.items() if isinstance(h, PasswordHash)}


def formatPasswordFile(users: Mapping[str, PasswordHash] | Iterable[tuple[str, PasswordHash]]
                       ) -> str:
    """
    The text of a password file for these users, in the given order.
    """
    items = users.items() if isinstance(users, Mapping) else users
    return "".join(f"{name}:{h.encode()}\n" for name, h in items)


def writePasswordFile(
    path: str, users: Mapping[str, PasswordHash], new: bool = False
) -> None:
    """
    Replace a password file atomically: a new one (or any, with C{new})
    readable by its owner only, an existing one keeping its mode, owner and
    group (see L{mqttd.files.writePrivateFile}).

    @raise OSError: naming C{path}.
    """
    writePrivateFile(path, formatPasswordFile(users), new)


@implementer(ICredentialsChecker, IReloadable)
class PasswordFileChecker:
    """
    A C{twisted.cred} checker of user names and passwords against a
    mosquitto-format password file (the C{passwd} plug-in).

    An unknown user name is "not mine" (C{UnhandledCredentials}: the next
    authenticator may know it); a known one with a wrong password is
    refused (C{UnauthorizedLogin}).  Both take as long as a real check.
    PBKDF2 runs in Twisted's thread pool unless C{threaded} is false.
    """

    def __init__(self, path: str, threaded: bool = True) -> None:
        self.credentialInterfaces = (IUsernamePassword,)
        self.path = path
        self.threaded = threaded
        self._load()

    def _load(self) -> None:
        users = readPasswordFile(self.path)
        dummy = dummyHashLike(users.values())
        self.users = users
        self._dummy = dummy

    def __repr__(self) -> str:
        return f"<PasswordFileChecker {self.path!r}: {len(self.users)} users>"

    def reload(self) -> None:
        """
        Re-read the file; on any error the old users stay.
        """
        self._load()

    def requestAvatarId(self, credentials: object) -> Deferred[Any]:
        raw = credentials.username  # type: ignore[attr-defined]
        username = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        password = credentials.password  # type: ignore[attr-defined]
        if isinstance(password, str):
            password = password.encode("utf-8")
        entry = self.users.get(username)
        known = entry is not None
        check = entry if entry is not None else self._dummy

        def decided(matched: bool) -> bytes:
            if not known:
                raise UnhandledCredentials(f"unknown user {username!r}")
            if not matched:
                raise UnauthorizedLogin(f"wrong password for {username!r}")
            return username.encode("utf-8")

        if self.threaded:
            return deferToThread(check.verify, password).addCallback(decided)
        return succeed(check.verify(password)).addCallback(decided)
