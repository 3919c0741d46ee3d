"""
Tests for mosquitto-format password files (L{mqttd.passwd}) and the
C{mqttd passwd} command (L{mqttd.cli}): files written by mosquitto_passwd are
read, files written by C{mqttd passwd} are accepted by a real mosquitto, and
damaged files are refused with their line number (AU-08, CVE-2018-12551).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import time
from typing import Any
from unittest import SkipTest

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

import mqttd.files
import mqttd.passwd
from mqttd import cli
from mqttd.interfaces import IReloadable
from mqttd.passwd import (
    PasswordFileChecker,
    PasswordFileError,
    PasswordHash,
    hashPassword,
    parseHash,
    parsePasswordFile,
    readPasswordFile,
)
from tests.clienthelpers import tempDirectory

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PASSWD = os.path.join(DATA, "mosquitto.passwd")

#: The users of tests/data/mosquitto.passwd (see its README).
USERS = {"alice": b"alice-secret", "bob": b"b:b 0b", "carol": b"carol6"}

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MQTTD = os.path.join(os.path.dirname(sys.executable), "mqttd")

#: A valid $7$ hash line's parts, for building damaged ones.
SALT = base64.b64encode(b"0123456789ab").decode()
DIGEST = base64.b64encode(hashlib.pbkdf2_hmac("sha512", b"pw", b"0123456789ab", 5)).decode()
GOOD = f"$7$5${SALT}${DIGEST}"


def writeFile(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def readFile(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def credentials(user: str, password: bytes) -> UsernamePassword:
    return UsernamePassword(user.encode("utf-8"), password)


class MosquittoFileTests(SynchronousTestCase):
    """
    The file Debian's mosquitto_passwd wrote is read and verified.
    """

    def test_parse(self) -> None:
        """Three users: two PBKDF2 ($7$, 101 iterations), one salted SHA-512 ($6$)."""
        users = readPasswordFile(PASSWD)
        self.assertEqual(sorted(users), ["alice", "bob", "carol"])
        self.assertEqual((users["alice"].scheme, users["alice"].iterations), ("7", 101))
        self.assertEqual((users["bob"].scheme, users["bob"].iterations), ("7", 101))
        self.assertEqual(users["carol"].scheme, "6")

    def test_verify(self) -> None:
        """Each user's password verifies."""
        users = readPasswordFile(PASSWD)
        for name, password in USERS.items():
            self.assertTrue(users[name].verify(password), name)

    def test_wrongPasswords(self) -> None:
        """Near misses and other users' passwords fail."""
        users = readPasswordFile(PASSWD)
        for name, password in USERS.items():
            for wrong in (
                b"",
                password[:-1],
                password + b" ",
                password.upper(),
                b"x" + password,
                USERS["alice" if name != "alice" else "bob"],
            ):
                self.assertFalse(users[name].verify(wrong), (name, wrong))

    def test_encodeRoundTrip(self) -> None:
        """Each hash encodes back to the text mosquitto_passwd wrote."""
        lines = dict(line.split(":", 1) for line in readFile(PASSWD).splitlines())
        for name, text in lines.items():
            self.assertEqual(parseHash(text).encode(), text, name)


class HashTests(SynchronousTestCase):
    """
    Hashing new passwords.
    """

    def test_pbkdf2(self) -> None:
        """A new hash is PBKDF2-HMAC-SHA512 with a random salt, 64 bytes."""
        h = hashPassword(b"secret", iterations=7)
        self.assertEqual(h.scheme, "7")
        self.assertEqual(h.iterations, 7)
        self.assertEqual(h.digest, hashlib.pbkdf2_hmac("sha512", b"secret", h.salt, 7))
        self.assertTrue(h.salt)
        self.assertNotEqual(hashPassword(b"secret", 7).salt, h.salt)
        self.assertTrue(h.verify(b"secret"))
        self.assertFalse(h.verify(b"secreT"))
        self.assertEqual(parseHash(h.encode()), h)

    def test_sha512(self) -> None:
        """A $6$ hash is SHA-512 of the password followed by the salt."""
        salt = b"saltsalt"
        text = "$6${}${}".format(
            base64.b64encode(salt).decode(),
            base64.b64encode(hashlib.sha512(b"pw" + salt).digest()).decode(),
        )
        self.assertTrue(parseHash(text).verify(b"pw"))
        self.assertFalse(parseHash(text).verify(b"pw2"))


class ParseErrorTests(SynchronousTestCase):
    """
    Damaged password files are refused with the line at fault, never read as
    a user without a password (AU-08, CVE-2018-12551).
    """

    def assertBadLine(self, line: str, fragment: str | None = None) -> PasswordFileError:
        """
        Assert that C{line}, as line 5 after a good user, a blank line and
        comments, makes the file invalid with "line 5".
        """
        text = f"alice:{GOOD}\n\n# a comment\n   # indented comment\n{line}\ncarol:{GOOD}\n"
        with self.assertRaises(PasswordFileError, msg=line) as caught:
            parsePasswordFile(text)
        error = caught.exception
        self.assertEqual(error.lineNumber, 5, str(error))
        self.assertIn("line 5", str(error))
        self.assertNotIn("\n", str(error))
        if fragment is not None:
            self.assertIn(fragment, str(error))
        return error

    def test_skippedLines(self) -> None:
        """Blank lines, whitespace-only lines and comments are skipped."""
        text = f"\n# comment\nalice:{GOOD}\n   \n\t\n  # indented\nbob:{GOOD}\n\n"
        users = parsePasswordFile(text)
        self.assertEqual(sorted(users), ["alice", "bob"])
        self.assertTrue(users["alice"].verify(b"pw"))  # type: ignore[union-attr]

    def test_crlf(self) -> None:
        """CRLF line ends are accepted."""
        users = parsePasswordFile(f"alice:{GOOD}\r\nbob:{GOOD}\r\n")
        self.assertEqual(sorted(users), ["alice", "bob"])

    def test_noColon(self) -> None:
        """A line without C{:} is an error."""
        self.assertBadLine("mallory")

    def test_emptyUserName(self) -> None:
        """An empty user name is an error."""
        self.assertBadLine(f":{GOOD}")

    def test_emptyPassword(self) -> None:
        """C{user:} is not a user without a password."""
        self.assertBadLine("mallory:", "mallory")

    def test_plainText(self) -> None:
        """A plain-text password is not accepted as a hash."""
        self.assertBadLine("mallory:secret", "mallory")

    def test_unknownScheme(self) -> None:
        """Hash schemes other than $7$ and $6$ are errors."""
        for scheme in ("$5$", "$1$", "$8$", "$$"):
            self.assertBadLine(f"mallory:{scheme}{SALT}${DIGEST}", "mallory")

    def test_badBase64(self) -> None:
        """Damaged base64 in the salt or the digest is an error."""
        self.assertBadLine(f"mallory:$7$5$!!!!${DIGEST}")
        self.assertBadLine(f"mallory:$7$5${SALT}${DIGEST[:-3]}")
        self.assertBadLine(f"mallory:$6$ü${DIGEST}")
        self.assertBadLine(f"mallory:$6${SALT}$***")

    def test_wrongDigestLength(self) -> None:
        """A digest that is not 64 bytes (SHA-512) is an error."""
        short = base64.b64encode(b"x" * 32).decode()
        self.assertBadLine(f"mallory:$7$5${SALT}${short}")
        self.assertBadLine(f"mallory:$6${SALT}${short}")
        self.assertBadLine(f"mallory:$7$5${SALT}$")

    def test_emptySalt(self) -> None:
        """An empty salt is an error."""
        self.assertBadLine(f"mallory:$7$5$${DIGEST}")
        self.assertBadLine(f"mallory:$6$${DIGEST}")

    def test_badIterations(self) -> None:
        """Zero, negative or non-numeric iteration counts are errors."""
        for iterations in ("0", "-1", "", "many"):
            self.assertBadLine(f"mallory:$7${iterations}${SALT}${DIGEST}")

    def test_badIterationCountSaysSo(self) -> None:
        """An iteration count that is not a number is called one, not a Python error."""
        for iterations in ("many", "x", "-1", " 5", "1_000", "\uff15", "5.0"):
            error = self.assertBadLine(f"mallory:$7${iterations}${SALT}${DIGEST}")
            self.assertIn(f"bad iteration count {iterations!r}", str(error))
            self.assertNotIn("invalid literal", str(error))
        with self.assertRaises(ValueError) as caught:
            parseHash(f"$7$x${SALT}${DIGEST}")
        self.assertEqual(str(caught.exception), "bad iteration count 'x'")

    def test_missingField(self) -> None:
        """A $7$ hash without its iteration count, or with extra fields, is an error."""
        self.assertBadLine(f"mallory:$7${SALT}${DIGEST}")
        self.assertBadLine(f"mallory:{GOOD}$extra")

    def test_duplicateUser(self) -> None:
        """A user that appears twice is an error on its second line."""
        error = self.assertBadLine(f"alice:{GOOD}")
        self.assertIn("alice", str(error))

    def test_readNamesFile(self) -> None:
        """L{readPasswordFile} errors name the file and the line; a missing file is an error."""
        directory = tempDirectory(self)
        path = os.path.join(directory, "passwd")
        writeFile(path, f"alice:{GOOD}\nbob\n")
        with self.assertRaises(PasswordFileError) as caught:
            readPasswordFile(path)
        self.assertIn(path, str(caught.exception))
        self.assertIn("line 2", str(caught.exception))
        with self.assertRaises(PasswordFileError) as caught:
            readPasswordFile(os.path.join(directory, "missing"))
        self.assertIn("missing", str(caught.exception))

    def test_readErrorsNameFileOnce(self) -> None:
        """A missing or non-UTF-8 file: C{PATH: reason}, the path said once."""
        directory = tempDirectory(self)
        missing = os.path.join(directory, "missing")
        with self.assertRaises(PasswordFileError) as caught:
            readPasswordFile(missing)
        self.assertEqual(str(caught.exception), f"{missing}: No such file or directory")
        path = os.path.join(directory, "latin1")
        with open(path, "wb") as f:
            f.write(f"j\xfcrgen:{GOOD}\n".encode("latin-1"))
        with self.assertRaises(PasswordFileError) as caught:
            readPasswordFile(path)
        self.assertEqual(str(caught.exception), f"{path}: not UTF-8")

    def test_checkerRefusesBadFile(self) -> None:
        """A checker cannot be made from a damaged file."""
        directory = tempDirectory(self)
        path = os.path.join(directory, "passwd")
        writeFile(path, f"alice:{GOOD}\nbob:\n")
        self.assertRaises(PasswordFileError, PasswordFileChecker, path, False)


class CheckerTests(SynchronousTestCase):
    """
    L{PasswordFileChecker} answers without a thread when C{threaded=False}.
    """

    def setUp(self) -> None:
        self.checker = PasswordFileChecker(PASSWD, threaded=False)

    def test_interfaces(self) -> None:
        """The checker is a reloadable C{ICredentialsChecker} for user names and passwords."""
        verifyObject(ICredentialsChecker, self.checker)
        verifyObject(IReloadable, self.checker)

    def test_right(self) -> None:
        """The right password gives the user name as avatar id, synchronously."""
        for name, password in USERS.items():
            d = self.checker.requestAvatarId(credentials(name, password))
            self.assertEqual(self.successResultOf(d), name.encode())

    def test_strPassword(self) -> None:
        """A C{str} password is checked as its UTF-8 bytes."""
        d = self.checker.requestAvatarId(UsernamePassword(b"alice", "alice-secret"))  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(d), b"alice")

    def test_wrong(self) -> None:
        """A known user with a wrong password is refused."""
        for name in USERS:
            d = self.checker.requestAvatarId(credentials(name, b"wrong"))
            self.failureResultOf(d, UnauthorizedLogin)

    def test_unknown(self) -> None:
        """An unknown user is not this checker's: the next may know it."""
        for name in ("mallory", "Alice", "alice ", ""):
            d = self.checker.requestAvatarId(credentials(name, b"alice-secret"))
            failure = self.failureResultOf(d, UnhandledCredentials)
            self.assertFalse(failure.check(UnauthorizedLogin))

    def test_synchronousNoThread(self) -> None:
        """C{threaded=False} never uses C{deferToThread}."""
        calls: list[Any] = []
        self.patch(mqttd.passwd, "deferToThread", lambda *a: calls.append(a))
        self.successResultOf(self.checker.requestAvatarId(credentials("alice", b"alice-secret")))
        self.assertEqual(calls, [])

    def test_threadedUsesDeferToThread(self) -> None:
        """C{threaded=True} verifies through C{deferToThread}, for known and unknown users."""
        calls: list[Any] = []

        def fakeDeferToThread(f: Any, *args: Any) -> Deferred[Any]:
            calls.append((f, args))
            return succeed(f(*args))

        self.patch(mqttd.passwd, "deferToThread", fakeDeferToThread)
        checker = PasswordFileChecker(PASSWD)
        self.assertEqual(
            self.successResultOf(checker.requestAvatarId(credentials("bob", b"b:b 0b"))), b"bob"
        )
        self.failureResultOf(checker.requestAvatarId(credentials("bob", b"x")), UnauthorizedLogin)
        self.failureResultOf(
            checker.requestAvatarId(credentials("zed", b"x")), UnhandledCredentials
        )
        self.assertEqual(len(calls), 3)
        for _, args in calls:
            self.assertIn(args[0], (b"b:b 0b", b"x"))

    def test_constantTimeComparison(self) -> None:
        """Digests are compared with C{hmac.compare_digest}, for $7$ and $6$, right and wrong."""
        calls: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def recording(a: Any, b: Any) -> bool:
            calls.append((a, b))
            return real(a, b)

        self.patch(hmac, "compare_digest", recording)
        users = self.checker.users
        for name, password, expected in (
            ("alice", USERS["alice"], b"alice"),
            ("alice", b"nope", UnauthorizedLogin),
            ("carol", USERS["carol"], b"carol"),
            ("carol", b"nope", UnauthorizedLogin),
        ):
            before = len(calls)
            d = self.checker.requestAvatarId(credentials(name, password))
            if expected is UnauthorizedLogin:
                self.failureResultOf(d, UnauthorizedLogin)
            else:
                self.assertEqual(self.successResultOf(d), expected)
            self.assertEqual(len(calls), before + 1, (name, password))
            self.assertIn(users[name].digest, calls[-1], name)

    def test_unknownUserSameWork(self) -> None:
        """An unknown user costs the same PBKDF2 work as a known one (no user enumeration by timing)."""
        iterations: list[int] = []
        real = hashlib.pbkdf2_hmac

        def recording(name: str, password: bytes, salt: bytes, rounds: int, *rest: Any) -> bytes:
            iterations.append(rounds)
            return real(name, password, salt, rounds, *rest)

        self.patch(hashlib, "pbkdf2_hmac", recording)
        self.failureResultOf(
            self.checker.requestAvatarId(credentials("alice", b"wrong")), UnauthorizedLogin
        )
        known = list(iterations)
        del iterations[:]
        self.failureResultOf(
            self.checker.requestAvatarId(credentials("mallory", b"wrong")), UnhandledCredentials
        )
        self.assertEqual(known, [101])
        self.assertEqual(iterations, known)


class ReloadTests(SynchronousTestCase):
    """
    C{reload()} re-reads the file; a damaged file keeps the old users (AU-09).
    """

    def setUp(self) -> None:
        directory = tempDirectory(self)
        self.path = os.path.join(directory, "passwd")
        self.alice = hashPassword(b"one", iterations=3)
        writeFile(self.path, f"alice:{self.alice.encode()}\n")
        self.checker = PasswordFileChecker(self.path, threaded=False)

    def check(self, user: str, password: bytes) -> Any:
        d = self.checker.requestAvatarId(credentials(user, password))
        results: list[Any] = []
        d.addBoth(results.append)
        return results[0]

    def test_reloadPicksUpChanges(self) -> None:
        """New users, changed and removed passwords take effect on reload, not before."""
        bob = hashPassword(b"two", iterations=3)
        alice = hashPassword(b"uno", iterations=3)
        writeFile(self.path, f"bob:{bob.encode()}\nalice:{alice.encode()}\n")
        self.assertEqual(self.check("alice", b"one"), b"alice")
        self.checker.reload()
        self.assertEqual(self.check("bob", b"two"), b"bob")
        self.assertEqual(self.check("alice", b"uno"), b"alice")
        self.assertTrue(self.check("alice", b"one").check(UnauthorizedLogin))
        writeFile(self.path, f"bob:{bob.encode()}\n")
        self.checker.reload()
        self.assertTrue(self.check("alice", b"uno").check(UnhandledCredentials))

    def test_brokenReloadKeepsUsers(self) -> None:
        """A damaged or missing file on reload raises and the old users stay in force."""
        for damage in (f"alice:{self.alice.encode()}\nbob\n", "alice:\n", "alice:plain\n", None):
            if damage is None:
                os.unlink(self.path)
            else:
                writeFile(self.path, damage)
            self.assertRaises(PasswordFileError, self.checker.reload)
            self.assertEqual(self.check("alice", b"one"), b"alice")
            self.assertTrue(self.check("bob", b"").check(UnhandledCredentials))
            self.assertTrue(self.check("alice", b"").check(UnauthorizedLogin))


class ThreadedCheckerTests(TestCase):
    """
    With the default C{threaded=True}, PBKDF2 runs in the reactor's thread
    pool and the answer arrives through the reactor.
    """

    def test_right(self) -> Deferred[Any]:
        """The Deferred fires with the avatar id once the thread is done."""
        d = PasswordFileChecker(PASSWD).requestAvatarId(credentials("alice", b"alice-secret"))
        return d.addCallback(self.assertEqual, b"alice")

    def test_wrong(self) -> Deferred[Any]:
        """A wrong password fails the Deferred with C{UnauthorizedLogin}."""
        d = PasswordFileChecker(PASSWD).requestAvatarId(credentials("carol", b"carol7"))
        return self.assertFailure(d, UnauthorizedLogin)

    def test_unknown(self) -> Deferred[Any]:
        """An unknown user fails the Deferred with C{UnhandledCredentials}."""
        d = PasswordFileChecker(PASSWD).requestAvatarId(credentials("dave", b"x"))
        return self.assertFailure(d, UnhandledCredentials)


# -- mqttd passwd ------------------------------------------------------------


def runMain(test: SynchronousTestCase, argv: list[str]) -> tuple[int, str]:
    """
    Run L{cli.main} with C{sys.stderr} captured.

    @return: the exit status (from the return value or C{SystemExit}) and
        what was written to stderr.
    """
    stderr = io.StringIO()
    stdout = io.StringIO()
    test.patch(sys, "stderr", stderr)
    test.patch(sys, "stdout", stdout)
    try:
        status: Any = cli.main(argv)
    except SystemExit as e:
        status = e.code
        if isinstance(status, str):
            stderr.write(status + "\n")
            status = 1
    return (0 if status is None else int(status)), stderr.getvalue()


class PasswdCommandTests(SynchronousTestCase):
    """
    C{mqttd passwd} through L{cli.main} and L{cli.passwd}.
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.path = os.path.join(self.directory, "passwd")

    def runPasswd(self, *argv: str) -> tuple[int, str]:
        return runMain(self, ["passwd", *argv])

    def assertOk(self, *argv: str) -> None:
        status, err = self.runPasswd(*argv)
        self.assertEqual((status, err), (0, ""), argv)

    def assertOneLineError(self, argv: list[str], fragment: str | None = None) -> str:
        status, err = runMain(self, argv)
        self.assertNotEqual(status, 0, argv)
        self.assertEqual(len(err.splitlines()), 1, f"{argv}: {err!r}")
        self.assertTrue(err.startswith("mqttd"), err)
        if fragment is not None:
            self.assertIn(fragment, err)
        return err

    def users(self) -> dict[str, PasswordHash]:
        return readPasswordFile(self.path)

    def test_create(self) -> None:
        """C{-c -b} creates a file with one user, mode 0600, in a format mosquitto reads."""
        self.assertOk("-c", "-b", self.path, "alice", "a:b c")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        users = self.users()
        self.assertEqual(list(users), ["alice"])
        self.assertEqual(users["alice"].scheme, "7")
        self.assertTrue(users["alice"].verify(b"a:b c"))
        self.assertEqual(users["alice"].iterations, mqttd.passwd.DEFAULT_ITERATIONS)
        self.assertEqual(sorted(os.listdir(self.directory)), ["passwd"])

    def test_createOverwrites(self) -> None:
        """C{-c} replaces an existing file, which becomes mode 0600."""
        writeFile(self.path, f"bob:{GOOD}\n")
        os.chmod(self.path, 0o644)
        self.assertOk("-c", "-b", self.path, "alice", "pw")
        self.assertEqual(list(self.users()), ["alice"])
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_iterations(self) -> None:
        """C{-I} sets the PBKDF2 iteration count of new hashes."""
        self.assertOk("-c", "-b", "-I", "101", self.path, "alice", "pw")
        self.assertEqual(self.users()["alice"].iterations, 101)

    def test_batchAddsAndUpdates(self) -> None:
        """C{-b} adds a user and changes an existing one, keeping the others and their order."""
        self.assertOk("-c", "-b", self.path, "alice", "one")
        self.assertOk("-b", self.path, "bob", "two")
        self.assertOk("-b", self.path, "carol", "three")
        bobBefore = self.users()["bob"]
        self.assertOk("-b", self.path, "alice", "uno")
        users = self.users()
        self.assertEqual(list(users), ["alice", "bob", "carol"])
        self.assertTrue(users["alice"].verify(b"uno"))
        self.assertFalse(users["alice"].verify(b"one"))
        self.assertEqual(users["bob"], bobBefore)
        self.assertTrue(users["carol"].verify(b"three"))

    def test_batchKeepsMosquittoHashes(self) -> None:
        """Adding a user to mosquitto_passwd's file keeps its $7$ and $6$ lines as they were."""
        shutil.copy(PASSWD, self.path)
        self.assertOk("-b", self.path, "dave", "d")
        lines = readFile(self.path).splitlines()
        self.assertEqual(lines[:3], readFile(PASSWD).splitlines())
        self.assertTrue(self.users()["dave"].verify(b"d"))

    def test_delete(self) -> None:
        """C{-D} removes a user and keeps the others."""
        shutil.copy(PASSWD, self.path)
        self.assertOk("-D", self.path, "bob")
        users = self.users()
        self.assertEqual(list(users), ["alice", "carol"])
        self.assertTrue(users["carol"].verify(b"carol6"))

    def test_deleteUnknown(self) -> None:
        """C{-D} of a user that is not there is a one-line error; the file is unchanged."""
        shutil.copy(PASSWD, self.path)
        self.assertOneLineError(["passwd", "-D", self.path, "mallory"], "mallory")
        self.assertEqual(readFile(self.path), readFile(PASSWD))

    def test_update(self) -> None:
        """C{-U} hashes plain-text passwords and keeps existing hashes."""
        bob = hashPassword(b"two", iterations=3)
        writeFile(self.path, f"alice:one\nbob:{bob.encode()}\ncarol:t:h r\n")
        self.assertOk("-U", self.path)
        users = self.users()
        self.assertEqual(list(users), ["alice", "bob", "carol"])
        self.assertTrue(users["alice"].verify(b"one"))
        self.assertEqual(users["bob"], bob)
        self.assertTrue(users["carol"].verify(b"t:h r"))
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_missingFile(self) -> None:
        """Without C{-c}, a missing file is a one-line error and is not created."""
        self.assertOneLineError(["passwd", "-b", self.path, "alice", "pw"])
        self.assertFalse(os.path.exists(self.path))

    def test_damagedFile(self) -> None:
        """A damaged file is not rewritten: one-line error with the line number."""
        writeFile(self.path, f"alice:{GOOD}\nbob\n")
        err = self.assertOneLineError(["passwd", "-b", self.path, "carol", "pw"], "line 2")
        self.assertIn(self.path, err)
        self.assertEqual(readFile(self.path), f"alice:{GOOD}\nbob\n")

    def test_atomicReplace(self) -> None:
        """The file is replaced, not rewritten in place: a reader of the old file sees it whole."""
        self.assertOk("-c", "-b", self.path, "alice", "one")
        before = readFile(self.path)
        with open(self.path, encoding="utf-8") as old:
            inode = os.fstat(old.fileno()).st_ino
            self.assertOk("-b", self.path, "bob", "two")
            self.assertEqual(old.read(), before)
        self.assertNotEqual(os.stat(self.path).st_ino, inode)
        self.assertEqual(sorted(os.listdir(self.directory)), ["passwd"])

    def test_failedWriteKeepsFile(self) -> None:
        """A write that fails (disk full) leaves the old file and no temporary file."""
        self.assertOk("-c", "-b", self.path, "alice", "one")
        before = readFile(self.path)

        def diskFull(users: Any) -> str:
            raise OSError(28, "No space left on device")

        self.patch(mqttd.passwd, "formatPasswordFile", diskFull)
        self.assertOneLineError(["passwd", "-b", self.path, "bob", "two"], "No space left")
        self.assertEqual(readFile(self.path), before)
        self.assertEqual(sorted(os.listdir(self.directory)), ["passwd"])

    def test_updateKeepsMode(self) -> None:
        """Changing or deleting a user keeps the file's mode; a new file is 0600."""
        self.assertOk("-c", "-b", self.path, "alice", "one")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        os.chmod(self.path, 0o640)
        self.assertOk("-b", self.path, "bob", "two")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.assertOk("-D", self.path, "alice")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.assertEqual(list(self.users()), ["bob"])

    def test_writeErrorNamesFile(self) -> None:
        """
        A file that cannot be written is named in the error (not the
        temporary file beside it), and no temporary file is left.
        """
        parent = os.path.dirname(self.directory)
        base = os.path.basename(self.directory)
        cwd = os.getcwd()
        os.chdir(self.directory)
        self.addCleanup(os.chdir, cwd)
        status, err = self.runPasswd("-c", "-b", ".", "u", "p")
        self.assertEqual((status, err), (1, "mqttd passwd: .: Is a directory\n"))
        self.assertEqual([n for n in os.listdir(parent) if n.startswith(f".{base}.")], [])
        self.assertEqual(os.listdir(self.directory), [])
        nowhere = os.path.join(self.directory, "nowhere", "passwd")
        status, err = self.runPasswd("-c", "-b", nowhere, "u", "p")
        self.assertEqual((status, err),
                         (1, f"mqttd passwd: {nowhere}: No such file or directory\n"))

    def test_readErrors(self) -> None:
        """A file that cannot be read or is not UTF-8: one line naming it once, with the reason."""
        status, err = self.runPasswd("-b", self.directory, "u", "p")
        self.assertEqual((status, err),
                         (1, f"mqttd passwd: cannot read {self.directory}: Is a directory\n"))
        with open(self.path, "wb") as f:
            f.write(f"j\xfcrgen:{GOOD}\n".encode("latin-1"))
        status, err = self.runPasswd("-b", self.path, "u", "p")
        self.assertEqual((status, err), (1, f"mqttd passwd: cannot read {self.path}: not UTF-8\n"))

    def test_temporaryFileNotFollowed(self) -> None:
        """A symlink planted at the temporary file's name is not written through."""
        self.assertOk("-c", "-b", self.path, "alice", "one")
        victim = os.path.join(self.directory, "victim")
        writeFile(victim, "precious\n")
        planted = os.path.join(self.directory, f".passwd.{os.getpid()}.tmp")
        os.symlink(victim, planted)
        runMain(self, ["passwd", "-b", self.path, "bob", "two"])
        self.assertEqual(readFile(victim), "precious\n")

    def test_userNameRoundTrip(self) -> None:
        """A user name C{mqttd passwd} accepts is in the file afterwards (never read as a comment)."""
        lost = []
        for name in ("#alice", " #bob", "bob smith", "jürgen", "$SYS"):
            status, _ = self.runPasswd("-c", "-b", self.path, name, "pw")
            if status == 0 and name not in readPasswordFile(self.path):
                lost.append(name)
        self.assertEqual(lost, [], "accepted by 'mqttd passwd' but not read back from the file")

    def test_badUserNames(self) -> None:
        """User names with C{:} or control characters, or empty, are one-line errors."""
        for name in ("a:b", "a\nb", "a\x00b", ""):
            self.assertOneLineError(["passwd", "-c", "-b", self.path, name, "pw"])
            self.assertFalse(os.path.exists(self.path), repr(name))

    def test_commandErrors(self) -> None:
        """Inconsistent arguments are one line on stderr and a non-zero status."""
        writeFile(self.path, f"alice:{GOOD}\n")
        for argv in (
            ["passwd", "-b", self.path, "alice"],  # -b without a password
            ["passwd", self.path, "alice", "pw"],  # a password without -b
            ["passwd", "-U", self.path, "alice"],  # -U takes only the file
            ["passwd", "-c", self.path],  # no user name
            ["passwd", "-I", "0", "-b", self.path, "alice", "pw"],
        ):
            self.assertOneLineError(argv)
        self.assertEqual(readFile(self.path), f"alice:{GOOD}\n")

    def test_usageErrors(self) -> None:
        """Bad usage (missing or unknown arguments, -c with -D) is one line and a non-zero status."""
        problems = []
        for argv in (
            [],
            ["passwd"],
            ["passwd", "-c", "-D", self.path, "alice"],
            ["passwd", "--frobnicate", self.path, "alice"],
            ["passwd", "-I", "many", "-b", self.path, "alice", "pw"],
            ["passwd", "-b", self.path, "alice", "pw", "extra"],
        ):
            status, err = runMain(self, argv)
            if status == 0 or len(err.splitlines()) != 1:
                problems.append(f"{argv}: status {status}, stderr {err!r}")
        self.assertEqual(len(problems), 0, "\n".join(problems))

    def test_consoleScript(self) -> None:
        """The C{mqttd} console script is installed and runs C{passwd}."""
        self.assertTrue(os.access(MQTTD, os.X_OK), MQTTD)
        result = subprocess.run(
            [MQTTD, "passwd", "-c", "-b", self.path, "alice", "pw"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertTrue(self.users()["alice"].verify(b"pw"))
        result = subprocess.run(
            [MQTTD, "passwd", "-D", self.path, "nobody"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)


class InteractivePasswdTests(SynchronousTestCase):
    """
    L{cli.passwd} asks twice for the password through its C{prompt}.
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.path = os.path.join(self.directory, "passwd")
        self.prompts: list[str] = []

    def options(self, *argv: str) -> argparse.Namespace:
        return cli._parser().parse_args(["passwd", *argv])

    def prompter(self, *answers: str) -> Any:
        queue = list(answers)

        def prompt(text: str) -> str:
            self.prompts.append(text)
            return queue.pop(0)

        return prompt

    def test_create(self) -> None:
        """Two prompts; matching answers set the password."""
        cli.passwd(
            self.options("-c", self.path, "alice"), prompt=self.prompter("s3 c:r", "s3 c:r")
        )
        self.assertEqual(len(self.prompts), 2)
        for text in self.prompts:
            self.assertIn("assword", text)
        self.assertTrue(readPasswordFile(self.path)["alice"].verify(b"s3 c:r"))

    def test_mismatch(self) -> None:
        """Different answers are an error and nothing is written."""
        with self.assertRaises(cli.CommandError) as caught:
            cli.passwd(self.options("-c", self.path, "alice"), prompt=self.prompter("a", "b"))
        self.assertIn("match", str(caught.exception))
        self.assertEqual(len(self.prompts), 2)
        self.assertFalse(os.path.exists(self.path))

    def test_update(self) -> None:
        """Without C{-c} the prompted password changes one user of an existing file."""
        shutil.copy(PASSWD, self.path)
        cli.passwd(self.options(self.path, "carol"), prompt=self.prompter("new", "new"))
        users = readPasswordFile(self.path)
        self.assertTrue(users["carol"].verify(b"new"))
        self.assertTrue(users["alice"].verify(b"alice-secret"))

    def test_batchDoesNotPrompt(self) -> None:
        """C{-b} and C{-D} never prompt."""
        shutil.copy(PASSWD, self.path)
        cli.passwd(self.options("-b", self.path, "dave", "d"), prompt=self.prompter())
        cli.passwd(self.options("-D", self.path, "dave"), prompt=self.prompter())
        self.assertEqual(self.prompts, [])


# -- a real mosquitto reads files written by mqttd passwd ----------------------


def _freePort() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoRoundTripTests(SynchronousTestCase):
    """
    mosquitto accepts the users of a file written by C{mqttd passwd}.
    """

    def startMosquitto(self, passwordFile: str) -> int:
        """
        Start mosquitto on a free loopback port with C{passwordFile} and no
        anonymous access; stopped at cleanup.

        @return: the port.
        """
        directory = os.path.dirname(passwordFile)
        for _ in range(3):
            port = _freePort()
            if port == 1883:
                continue
            config = os.path.join(directory, "mosquitto.conf")
            writeFile(
                config,
                "\n".join(
                    [
                        f"listener {port} 127.0.0.1",
                        "allow_anonymous false",
                        f"password_file {passwordFile}",
                        "persistence false",
                        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                        "",
                    ]
                ),
            )
            log = open(os.path.join(directory, "mosquitto.log"), "wb")
            self.addCleanup(log.close)
            process = subprocess.Popen([MOSQUITTO, "-c", config], stdout=log, stderr=log)
            self.addCleanup(self.stop, process)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return port
                except OSError:
                    time.sleep(0.05)
        self.fail("mosquitto did not start: " + readFile(os.path.join(directory, "mosquitto.log")))

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def publish(self, port: int, user: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                MOSQUITTO_PUB,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-i",
                "mqttd-test",
                "-u",
                user,
                "-P",
                password,
                "-t",
                "mqttd/test",
                "-m",
                "x",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )

    def test_mosquittoAcceptsFile(self) -> None:
        """Users added by C{mqttd passwd} (default and low iterations) log in; wrong passwords fail."""
        directory = tempDirectory(self)
        path = os.path.join(directory, "passwd")
        for argv in (
            ["-c", "-b", path, "alice", "alice-pw"],
            ["-b", "-I", "101", path, "bob", "b:b 0b"],
        ):
            status, err = runMain(self, ["passwd", *argv])
            self.assertEqual((status, err), (0, ""))
        port = self.startMosquitto(path)
        for user, password in (("alice", "alice-pw"), ("bob", "b:b 0b")):
            result = self.publish(port, user, password)
            self.assertEqual(result.returncode, 0, result.stderr)
        for user, password in (("alice", "alice-pW"), ("bob", "b:b 0"), ("carol", "x")):
            result = self.publish(port, user, password)
            self.assertNotEqual(result.returncode, 0, (user, password))


class PrivateFileTests(SynchronousTestCase):
    """
    L{mqttd.files.writePrivateFile}, the writer of password and SCRAM
    credential files (still importable as C{mqttd.passwd.writePrivateFile}).
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.path = os.path.join(self.directory, "passwd")

    def mode(self) -> int:
        return stat.S_IMODE(os.stat(self.path).st_mode)

    def test_sameFunction(self) -> None:
        """The old import still works."""
        self.assertIs(mqttd.passwd.writePrivateFile, mqttd.files.writePrivateFile)

    def test_flushedToDiskBeforeReplacing(self) -> None:
        """The new text is on disk (fsync) before it takes the old file's place."""
        events: list[tuple[str, Any]] = []
        realFsync, realReplace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            events.append(("fsync", os.pread(fd, 1000, 0)))
            realFsync(fd)

        def replace(source: Any, target: Any) -> None:
            events.append(("replace", target))
            realReplace(source, target)

        self.patch(os, "fsync", fsync)
        self.patch(os, "replace", replace)
        mqttd.files.writePrivateFile(self.path, "alice:x\n")
        self.assertEqual(events, [("fsync", b"alice:x\n"), ("replace", self.path)])
        self.assertEqual(readFile(self.path), "alice:x\n")

    def test_modes(self) -> None:
        """New: 0600; replaced: its mode kept; C{new=True}: 0600 again."""
        mqttd.files.writePrivateFile(self.path, "one\n")
        self.assertEqual(self.mode(), 0o600)
        for mode in (0o640, 0o644, 0o400):
            os.chmod(self.path, mode)
            mqttd.files.writePrivateFile(self.path, "two\n")
            self.assertEqual(self.mode(), mode)
        mqttd.files.writePrivateFile(self.path, "three\n", new=True)
        self.assertEqual(self.mode(), 0o600)
        self.assertEqual(readFile(self.path), "three\n")

    def test_ownerAndGroupKept(self) -> None:
        """Run as root, a replaced file keeps its owner and group."""
        if os.geteuid() != 0:
            raise SkipTest("needs root")
        mqttd.files.writePrivateFile(self.path, "one\n")
        os.chown(self.path, 65534, 65534)
        os.chmod(self.path, 0o640)
        mqttd.files.writePrivateFile(self.path, "two\n")
        info = os.stat(self.path)
        self.assertEqual((info.st_uid, info.st_gid, self.mode()), (65534, 65534, 0o640))
        mqttd.files.writePrivateFile(self.path, "three\n", new=True)
        info = os.stat(self.path)
        self.assertEqual((info.st_uid, info.st_gid, self.mode()), (0, 0, 0o600))

    def test_groupThatCannotBeKeptLosesAccess(self) -> None:
        """
        When the file's group cannot be given to the new file, the group
        bits are dropped: the caller's own group never gets to read it.
        """
        if os.geteuid() != 0:
            raise SkipTest("needs root to give the file another group")
        mqttd.files.writePrivateFile(self.path, "one\n")
        mine = os.stat(self.path)
        other = 65534 if mine.st_gid != 65534 else 65533
        os.chown(self.path, mine.st_uid, other)
        os.chmod(self.path, 0o644)

        def fchown(fd: int, uid: int, gid: int) -> None:
            raise PermissionError(1, "Operation not permitted")

        self.patch(os, "fchown", fchown)
        mqttd.files.writePrivateFile(self.path, "two\n")
        info = os.stat(self.path)
        self.assertEqual((info.st_gid, self.mode()), (mine.st_gid, 0o604))
