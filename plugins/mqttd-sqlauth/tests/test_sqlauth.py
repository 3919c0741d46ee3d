"""
Tests of the mqttd-sqlauth distribution, as installed (they fail, never
skip, when it is not): the conformance suites of C{mqttd.testing}, the
database and the admin command, discovery and activation of the dropin,
the built wheel, and the real broker (C{twistd mqttd}) using both plug-ins.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Iterable
from typing import Any, ClassVar

from mqttd.acl import Access, Verdict
from mqttd.auth import ALLOW, DENY, NEXT, ClientInfo, Deny
from mqttd.interfaces import (
    IAuthenticatorFactory,
    IAuthorizer,
    IAuthorizerFactory,
    IReloadable,
)
from mqttd.passwd import PasswordHash, hashPassword
from mqttd.plugin import (
    AUTH,
    AUTHORIZER,
    PluginError,
    availablePlugins,
    describePlugins,
    makePlugin,
)
from mqttd.testing import AuthenticatorConformanceMixin, AuthorizerConformanceMixin
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, succeed
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import mqttd
from mqttd_sqlauth import SCHEMA_VERSION, SqlAuthError, createSchema
from mqttd_sqlauth.admin import main as adminMain
from mqttd_sqlauth.authorizer import SqlAclAuthorizer
from mqttd_sqlauth.checker import SqlPasswordChecker

#: The distribution's source directory.
DISTRIBUTION = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
#: The console script the distribution installs.
ADMIN = os.path.join(BIN, "mqttd-sqlauth")

#: Few iterations: the tests hash many passwords.
ITERATIONS = 1000


def sha512Hash(password: bytes) -> PasswordHash:
    """
    A mosquitto 1.x C{$6$} hash.
    """
    salt = os.urandom(12)
    return PasswordHash("6", 1, salt, hashlib.sha512(password + salt).digest())


def makeDatabase(
    testCase: SynchronousTestCase,
    users: Iterable[tuple[str, PasswordHash | str, bool]] = (),
    acl: Iterable[tuple[str | None, str, str, int]] = (),
) -> str:
    """
    A new database in a temporary directory (removed after the test), made
    with L{createSchema}, holding these users C{(name, hash, banned)} and
    ACL rows C{(username, pattern, access, priority)}.
    """
    directory = tempfile.mkdtemp(prefix="mqttd-sqlauth-test-")
    testCase.addCleanup(shutil.rmtree, directory, True)
    path = os.path.join(directory, "auth.db")
    createSchema(path)
    addRows(path, users, acl)
    return path


def addRows(
    path: str,
    users: Iterable[tuple[str, PasswordHash | str, bool]] = (),
    acl: Iterable[tuple[str | None, str, str, int]] = (),
) -> None:
    """
    Insert users and ACL rows with plain SQL (a hash given as text is
    inserted as it is).
    """
    db = sqlite3.connect(path)
    try:
        with db:
            db.executemany(
                "INSERT INTO users (username, password_hash, banned) VALUES (?, ?, ?)",
                [
                    (name, h if isinstance(h, str) else h.encode(), int(banned))
                    for name, h, banned in users
                ],
            )
            db.executemany(
                "INSERT INTO acl (username, pattern, access, priority) VALUES (?, ?, ?, ?)",
                list(acl),
            )
    finally:
        db.close()


def client(username: str | None, clientId: str = "c1") -> ClientInfo:
    """
    What an authorizer learns about a 3.1.1 client.
    """
    return ClientInfo(clientId, username, None, 4, "test")


# -- conformance -------------------------------------------------------------------------


class SqlAuthConformanceTests(AuthenticatorConformanceMixin, SynchronousTestCase):
    """
    The sqlauth plug-in (threaded=no) passes mqttd's authenticator suite.
    """

    validCredentials = [
        ("alice", b"alice-secret"),
        ("bob", b"b:b 0b"),
        ("carol", b"carol6"),
        ("\u00e9mile", "\u00e9t\u00e9".encode()),
    ]
    wrongPasswords = [("alice", b"alice-secreT"), ("carol", b""), ("bob", b"b:b 0b ")]
    unknownUsernames = ["zed", "Alice", ""]

    def makeAuthenticator(self) -> SqlPasswordChecker:
        path = makeDatabase(
            self,
            users=[
                ("alice", hashPassword(b"alice-secret", ITERATIONS), False),
                ("bob", hashPassword(b"b:b 0b", ITERATIONS), False),
                ("carol", sha512Hash(b"carol6"), False),
                ("\u00e9mile", hashPassword("\u00e9t\u00e9".encode(), ITERATIONS), False),
            ],
        )
        return makePlugin(AUTH, f"sqlauth:db={path}:threaded=no")


class SqlAclConformanceTests(AuthorizerConformanceMixin, SynchronousTestCase):
    """
    The sqlacl plug-in passes mqttd's authorizer suite.
    """

    cases = [
        ("alice", "c1", "publish", "alice/x", ALLOW),
        ("alice", "c1", "publish", "bob/x", NEXT),
        ("alice", "c1", "receive", "alice/secret", DENY),
        ("alice", "c1", "publish", "alice/secret", DENY),
        ("alice", "c1", "subscribe", "alice/#", ALLOW),
        ("alice", "c1", "subscribe", "alice/+/x", ALLOW),
        ("alice", "c1", "subscribe", "#", NEXT),
        # A subscription needs a row covering all of it: + never covers #.
        ("alice", "c1", "subscribe", "sensors/+", ALLOW),
        ("alice", "c1", "subscribe", "sensors/#", NEXT),
        ("alice", "c1", "receive", "sensors/t", ALLOW),
        ("alice", "c1", "receive", "public/news", ALLOW),
        (None, "anon", "receive", "public/news", ALLOW),
        (None, "anon", "publish", "public/news", NEXT),
        ("bob", "dev7", "publish", "devices/dev7/status", ALLOW),
        ("bob", "a+b", "publish", "devices/a+b/status", NEXT),
        ("bob", "dev7", "publish", "users/bob/x", ALLOW),
        ("bob", "dev7", "publish", "users/alice/x", NEXT),
        # Priority 1 overrides the priority 0 deny.
        ("alice", "c1", "receive", "alice/secret/mine", ALLOW),
        ("alice", "c1", "receive", "alice/secret/other", DENY),
        ("alice", "c1", "subscribe", "alice/secret/#", DENY),
    ]

    def makeAuthorizer(self) -> SqlAclAuthorizer:
        path = makeDatabase(
            self,
            acl=[
                (None, "public/#", "read", 0),
                (None, "sensors/+", "read", 0),
                ("alice", "alice/#", "readwrite", 0),
                ("alice", "alice/secret", "deny", 0),
                ("alice", "alice/secret/#", "deny", 0),
                ("alice", "alice/secret/mine", "read", 1),
                (None, "devices/%c/status", "write", 0),
                (None, "users/%u/#", "readwrite", 0),
            ],
        )
        return makePlugin(AUTHORIZER, f"sqlacl:db={path}")


# -- the authenticator -----------------------------------------------------------------------


class SqlPasswordCheckerTests(SynchronousTestCase):
    """
    L{SqlPasswordChecker} beyond the conformance suite.
    """

    def login(self, checker: SqlPasswordChecker, username: str, password: bytes) -> Deferred[Any]:
        return checker.requestAvatarId(UsernamePassword(username.encode(), password))

    def test_interfaces(self) -> None:
        """It is a reloadable credentials checker."""
        checker = SqlPasswordChecker(makeDatabase(self), threaded=False)
        verifyObject(IReloadable, checker)

    def test_threaded(self) -> None:
        """By default the hash is computed with deferToThread."""
        calls: list[Any] = []

        def fakeDeferToThread(f: Any, *args: Any) -> Deferred[Any]:
            calls.append(f)
            return succeed(f(*args))

        self.patch(sys.modules[SqlPasswordChecker.__module__], "deferToThread", fakeDeferToThread)
        path = makeDatabase(self, users=[("alice", hashPassword(b"pw", ITERATIONS), False)])
        checker = SqlPasswordChecker(path)
        self.assertEqual(self.successResultOf(self.login(checker, "alice", b"pw")), b"alice")
        self.failureResultOf(self.login(checker, "alice", b"no"), UnauthorizedLogin)
        self.failureResultOf(self.login(checker, "zed", b"pw"), UnhandledCredentials)
        self.assertEqual(len(calls), 3)
        calls.clear()
        SqlPasswordChecker(path, threaded=False).requestAvatarId(UsernamePassword(b"alice", b"pw"))
        self.assertEqual(calls, [])

    def test_unknownUserCostsAHash(self) -> None:
        """An unknown user is checked against a hash like the table's (timing)."""
        verified: list[PasswordHash] = []
        original = PasswordHash.verify

        def verify(self: PasswordHash, password: bytes) -> bool:
            verified.append(self)
            return original(self, password)

        self.patch(PasswordHash, "verify", verify)
        path = makeDatabase(self, users=[("alice", hashPassword(b"pw", 1234), False)])
        checker = SqlPasswordChecker(path, threaded=False)
        self.failureResultOf(self.login(checker, "zed", b"pw"), UnhandledCredentials)
        [dummy] = verified
        self.assertEqual((dummy.scheme, dummy.iterations), ("7", 1234))

    def test_bannedUsersAuthenticate(self) -> None:
        """The banned flag is the authorizer's business: the password still checks."""
        path = makeDatabase(self, users=[("mallory", hashPassword(b"pw", ITERATIONS), True)])
        checker = SqlPasswordChecker(path, threaded=False)
        self.assertEqual(self.successResultOf(self.login(checker, "mallory", b"pw")), b"mallory")

    def test_damagedHash(self) -> None:
        """One damaged hash makes the database unusable, naming the user."""
        path = makeDatabase(
            self,
            users=[
                ("alice", hashPassword(b"pw", ITERATIONS), False),
                ("bob", "$7$1000$bm90IGJhc2U2NA$!!!", False),
            ],
        )
        error = self.assertRaises(SqlAuthError, SqlPasswordChecker, path)
        self.assertIn("'bob'", str(error))
        error = self.assertRaises(PluginError, makePlugin, AUTH, f"sqlauth:db={path}")
        self.assertTrue(str(error).startswith("--auth sqlauth: "), str(error))

    def test_plainTextIsNotAPassword(self) -> None:
        """A plain-text password in the table is refused, never compared."""
        path = makeDatabase(self, users=[("alice", "secret", False)])
        self.assertRaises(SqlAuthError, SqlPasswordChecker, path)

    def test_reload(self) -> None:
        """reload() reads new users; a missing or damaged database keeps the old ones."""
        path = makeDatabase(self, users=[("alice", hashPassword(b"pw", ITERATIONS), False)])
        checker = SqlPasswordChecker(path, threaded=False)
        addRows(path, users=[("bob", hashPassword(b"bob-pw", ITERATIONS), False)])
        self.failureResultOf(self.login(checker, "bob", b"bob-pw"), UnhandledCredentials)
        checker.reload()
        self.assertEqual(self.successResultOf(self.login(checker, "bob", b"bob-pw")), b"bob")

        os.rename(path, path + ".moved")
        self.assertRaises(SqlAuthError, checker.reload)
        self.assertFalse(os.path.exists(path), "reload created a database")
        self.assertEqual(self.successResultOf(self.login(checker, "bob", b"bob-pw")), b"bob")

        os.rename(path + ".moved", path)
        addRows(path, users=[("carol", "$6$broken", False)])
        self.assertRaises(SqlAuthError, checker.reload)
        self.assertEqual(self.successResultOf(self.login(checker, "alice", b"pw")), b"alice")


# -- the authorizer -----------------------------------------------------------------------


class SqlAclAuthorizerTests(SynchronousTestCase):
    """
    L{SqlAclAuthorizer} beyond the conformance suite.
    """

    def test_interfaces(self) -> None:
        """It is a reloadable authorizer."""
        authorizer = SqlAclAuthorizer(makeDatabase(self))
        verifyObject(IAuthorizer, authorizer)
        verifyObject(IReloadable, authorizer)

    def test_banned(self) -> None:
        """A banned user's CONNECT gets Deny(0x8A, 'banned'); others are allowed."""
        path = makeDatabase(
            self,
            users=[
                ("mallory", hashPassword(b"pw", ITERATIONS), True),
                ("alice", hashPassword(b"pw", ITERATIONS), False),
            ],
        )
        authorizer = SqlAclAuthorizer(path)
        self.assertEqual(authorizer.authorizeConnect(client("mallory")), Deny(0x8A, "banned"))
        self.assertIs(authorizer.authorizeConnect(client("alice")), ALLOW)
        self.assertIs(authorizer.authorizeConnect(client("stranger")), ALLOW)
        self.assertIs(authorizer.authorizeConnect(client(None)), ALLOW)

    def test_emptyTableHasNoOpinion(self) -> None:
        """Without rows every request is NEXT (the chain then denies)."""
        authorizer = SqlAclAuthorizer(makeDatabase(self))
        self.assertIs(authorizer.authorizePublish(client("alice"), "a", 0, False), NEXT)
        self.assertIs(authorizer.authorizeSubscribe(client("alice"), "#", 0), NEXT)
        self.assertIs(authorizer.authorizeReceive(client(None), "a", 0, False), NEXT)

    def test_dangerousIdentities(self) -> None:
        """Identities with + # / or NUL are never substituted."""
        path = makeDatabase(
            self,
            acl=[
                (None, "devices/%c/#", "readwrite", 0),
                (None, "users/%u/#", "readwrite", 0),
            ],
        )
        authorizer = SqlAclAuthorizer(path)
        self.assertIs(
            authorizer.authorizePublish(client("u", "dev"), "devices/dev/x", 0, False), ALLOW
        )
        for clientId in ("#", "+", "a/b", "a\x00"):
            self.assertIs(
                authorizer.authorizeSubscribe(client("u", clientId), "devices/#", 0),
                NEXT,
                clientId,
            )
            self.assertIs(
                authorizer.authorizeSubscribe(client(clientId, "c"), "users/#", 0), NEXT, clientId
            )
        self.assertIs(authorizer.authorizeSubscribe(client(None, "c"), "users/+/#", 0), NEXT)

    def test_userRowsApplyToThatUserOnly(self) -> None:
        """A row with a user name is that user's; anonymous clients get only NULL rows."""
        path = makeDatabase(self, acl=[("alice", "x/#", "readwrite", 0), (None, "p", "read", 0)])
        authorizer = SqlAclAuthorizer(path)
        self.assertIs(authorizer.authorizePublish(client("alice"), "x/1", 0, False), ALLOW)
        self.assertIs(authorizer.authorizePublish(client("bob"), "x/1", 0, False), NEXT)
        self.assertIs(authorizer.authorizePublish(client(None), "x/1", 0, False), NEXT)
        self.assertIs(authorizer.authorizeReceive(client(None), "p", 0, False), ALLOW)
        self.assertIs(authorizer.authorizePublish(client(None), "p", 0, False), NEXT)

    def test_priorities(self) -> None:
        """The highest priority with an opinion decides; deny first within one."""
        path = makeDatabase(
            self,
            acl=[
                (None, "a/#", "deny", 5),
                (None, "a/b", "readwrite", 5),
                (None, "a/b", "readwrite", 9),
                (None, "c/#", "readwrite", -1),
                (None, "c/d", "deny", -2),
            ],
        )
        authorizer = SqlAclAuthorizer(path)
        self.assertEqual(authorizer.check("u", "c", "a/b", Access.WRITE), Verdict.ALLOW)
        self.assertEqual(authorizer.check("u", "c", "a/c", Access.WRITE), Verdict.DENY)
        self.assertEqual(authorizer.check("u", "c", "c/d", Access.WRITE), Verdict.ALLOW)
        self.assertEqual(authorizer.check("u", "c", "e", Access.WRITE), Verdict.NO_OPINION)

    def test_reload(self) -> None:
        """Answers are cached until reload(); a missing database keeps the old rows."""
        path = makeDatabase(self, acl=[("alice", "a", "write", 0)])
        authorizer = SqlAclAuthorizer(path)
        alice = client("alice")
        self.assertIs(authorizer.authorizePublish(alice, "a", 0, False), ALLOW)
        self.assertIs(authorizer.authorizePublish(alice, "b", 0, False), NEXT)
        addRows(
            path,
            acl=[("alice", "b", "write", 0), ("alice", "a", "deny", 0)],
            users=[("alice", hashPassword(b"pw", ITERATIONS), True)],
        )
        self.assertIs(authorizer.authorizePublish(alice, "b", 0, False), NEXT)
        authorizer.reload()
        self.assertIs(authorizer.authorizePublish(alice, "b", 0, False), ALLOW)
        self.assertIsInstance(authorizer.authorizePublish(alice, "a", 0, False), Deny)
        self.assertEqual(authorizer.authorizeConnect(alice), Deny(0x8A, "banned"))

        os.unlink(path)
        self.assertRaises(SqlAuthError, authorizer.reload)
        self.assertFalse(os.path.exists(path), "reload created a database")
        self.assertIs(authorizer.authorizePublish(alice, "b", 0, False), ALLOW)
        self.assertEqual(authorizer.authorizeConnect(alice), Deny(0x8A, "banned"))

    def test_badRows(self) -> None:
        """An invalid pattern or access word makes the database unusable."""
        for row in [
            (None, "a/#/b", "read", 0),
            ("alice", "a", "all", 0),
            ("alice", "a", "read", "high"),
        ]:
            path = makeDatabase(self)
            db = sqlite3.connect(path)
            with db:
                # Bypass the CHECK constraints, as a hand-made table would.
                db.execute("PRAGMA ignore_check_constraints = ON")
                db.execute(
                    "INSERT INTO acl (username, pattern, access, priority) VALUES (?, ?, ?, ?)",
                    row,
                )
            db.close()
            error = self.assertRaises(SqlAuthError, SqlAclAuthorizer, path)
            self.assertIn("acl row 1", str(error))


# -- the schema and the admin command ----------------------------------------------------


class SchemaTests(SynchronousTestCase):
    """
    L{createSchema} and opening databases.
    """

    def test_createSchema(self) -> None:
        """It makes an owner-only file with the schema version; again changes nothing."""
        path = makeDatabase(self, users=[("alice", hashPassword(b"pw", ITERATIONS), False)])
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        createSchema(path)
        db = sqlite3.connect(path)
        try:
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION)
            self.assertEqual(db.execute("SELECT username FROM users").fetchall(), [("alice",)])
        finally:
            db.close()

    def test_refusesOtherFiles(self) -> None:
        """Not SQLite, another schema version or a missing file: SqlAuthError."""
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        text = os.path.join(directory, "text")
        with open(text, "w") as f:
            f.write("alice:$7$...\n" * 100)
        self.assertRaises(SqlAuthError, createSchema, text)
        self.assertRaises(SqlAuthError, SqlPasswordChecker, text)
        other = os.path.join(directory, "other.db")
        db = sqlite3.connect(other)
        db.execute("PRAGMA user_version = 7")
        db.close()
        self.assertRaises(SqlAuthError, createSchema, other)
        error = self.assertRaises(SqlAuthError, SqlAclAuthorizer, other)
        self.assertIn("mqttd-sqlauth init", str(error))
        empty = os.path.join(directory, "empty.db")
        sqlite3.connect(empty).close()
        self.assertRaises(SqlAuthError, SqlAclAuthorizer, empty)
        self.assertRaises(SqlAuthError, SqlAclAuthorizer, os.path.join(directory, "missing.db"))
        self.assertFalse(os.path.exists(os.path.join(directory, "missing.db")))


class AdminTests(SynchronousTestCase):
    """
    The C{mqttd-sqlauth} command (called in-process).
    """

    def setUp(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        self.db = os.path.join(directory, "auth.db")

    def admin(self, *argv: str) -> str:
        output = io.StringIO()
        self.patch(sys, "stdout", output)
        adminMain(list(argv))
        return output.getvalue()

    def failing(self, *argv: str) -> str:
        error = self.assertRaises(SystemExit, self.admin, *argv)
        message = str(error.code)
        self.assertTrue(message.startswith("mqttd-sqlauth: "), message)
        self.assertNotIn("\n", message)
        return message

    def test_usersAndAcl(self) -> None:
        """init, adduser, acl, ban make a database both plug-ins use."""
        self.admin("init", self.db)
        self.admin("adduser", "-I", "1000", self.db, "alice", "pw")
        self.admin("adduser", self.db, "bob", "old")
        self.admin("adduser", "-I", "1000", self.db, "bob", "new")
        self.admin("acl", self.db, "alice", "readwrite", "alice/#")
        self.admin("acl", "-p", "3", self.db, "-", "read", "public/%u/#")
        self.admin("acl", "-p", "4", self.db, "-", "read", "public/%u/#")
        self.admin("ban", self.db, "bob")
        checker = SqlPasswordChecker(self.db, threaded=False)
        self.assertEqual(sorted(checker.users), ["alice", "bob"])
        self.assertEqual(checker.users["alice"].passwordHash.iterations, 1000)
        self.assertEqual(checker.users["bob"].passwordHash.iterations, 1000)
        self.assertTrue(checker.users["bob"].passwordHash.verify(b"new"))
        authorizer = SqlAclAuthorizer(self.db)
        self.assertEqual(len(authorizer.rows), 2)
        self.assertIs(authorizer.authorizePublish(client("alice"), "alice/x", 0, False), ALLOW)
        self.assertIs(authorizer.authorizeReceive(client("bob"), "public/bob/x", 0, False), ALLOW)
        self.assertEqual(authorizer.authorizeConnect(client("bob")), Deny(0x8A, "banned"))
        listing = self.admin("list", self.db)
        self.assertIn("  bob  $7$  banned\n", listing)
        self.assertIn("  -  4  read  public/%u/#\n", listing)

        self.admin("unban", self.db, "bob")
        self.admin("delacl", self.db, "-", "public/%u/#")
        self.admin("deluser", self.db, "alice")
        self.assertEqual(sorted(SqlPasswordChecker(self.db, threaded=False).users), ["bob"])
        authorizer = SqlAclAuthorizer(self.db)
        self.assertEqual(authorizer.rows, [])
        self.assertIs(authorizer.authorizeConnect(client("bob")), ALLOW)

    def test_passwordFromStandardInput(self) -> None:
        """Without PASSWORD, adduser reads one line from a non-terminal stdin."""
        self.admin("init", self.db)
        self.patch(sys, "stdin", io.StringIO("s3cret pw\nignored\n"))
        self.admin("adduser", "-I", "10", self.db, "alice")
        checker = SqlPasswordChecker(self.db, threaded=False)
        self.assertTrue(checker.users["alice"].passwordHash.verify(b"s3cret pw"))

    def test_errors(self) -> None:
        """Mistakes end with one line; a missing database is never created."""
        self.assertIn("no such database file", self.failing("adduser", self.db, "a", "pw"))
        self.assertFalse(os.path.exists(self.db))
        self.admin("init", self.db)
        self.failing("adduser", self.db, "a", "")
        self.failing("adduser", self.db, "", "pw")
        self.failing("deluser", self.db, "nobody")
        self.failing("ban", self.db, "nobody")
        self.failing("acl", self.db, "a", "readwrite", "a/#/b")
        self.failing("delacl", self.db, "a", "a/#")
        # argparse refuses unknown access words (status 2, usage on stderr).
        self.patch(sys, "stderr", io.StringIO())
        error = self.assertRaises(SystemExit, self.admin, "acl", self.db, "a", "all", "a")
        self.assertEqual(error.code, 2)


# -- discovery and activation -------------------------------------------------------------


class DiscoveryTests(SynchronousTestCase):
    """
    The installed dropin is found by mqttd, and only configuration activates it.
    """

    def test_factoriesAreFound(self) -> None:
        """availablePlugins lists sqlauth (AUTH) and sqlacl (AUTHORIZER)."""
        authenticators = availablePlugins(AUTH)
        authorizers = availablePlugins(AUTHORIZER)
        self.assertIn("sqlauth", authenticators, "is mqttd-sqlauth installed?")
        self.assertIn("sqlacl", authorizers, "is mqttd-sqlauth installed?")
        for factory, interface in [
            (authenticators["sqlauth"], IAuthenticatorFactory),
            (authorizers["sqlacl"], IAuthorizerFactory),
        ]:
            self.assertTrue(IPlugin.providedBy(factory))
            verifyObject(interface, factory)
            self.assertEqual(type(factory).__module__, "mqttd.plugins.mqttd_sqlauth_plugin")
        self.assertNotIn("sqlauth", availablePlugins(AUTHORIZER))
        self.assertIn("sqlauth: User names and password hashes", describePlugins(AUTH))
        self.assertIn("sqlacl: Topic ACLs", describePlugins(AUTHORIZER))

    def test_findingImportsNoImplementation(self) -> None:
        """Discovery imports the dropin only: not mqttd_sqlauth, not sqlite3."""
        code = (
            "import json, sys\n"
            "from mqttd.plugin import AUTH, AUTHORIZER, availablePlugins\n"
            "found = sorted(availablePlugins(AUTH)) + sorted(availablePlugins(AUTHORIZER))\n"
            "loaded = sorted(m for m in sys.modules\n"
            "                if m.startswith('mqttd_sqlauth') or m == 'sqlite3')\n"
            "print(json.dumps([found, loaded]))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            cwd=tempfile.gettempdir(),
        )
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        found, loaded = json.loads(result.stdout)
        self.assertIn("sqlauth", found)
        self.assertIn("sqlacl", found)
        self.assertEqual(loaded, [])

    def test_activationOnlyByConfiguration(self) -> None:
        """The database is opened only when configured: a missing one is refused then."""
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        missing = os.path.join(directory, "missing.db")
        availablePlugins(AUTH)
        availablePlugins(AUTHORIZER)
        error = self.assertRaises(PluginError, makePlugin, AUTH, f"sqlauth:db={missing}")
        self.assertEqual(str(error), f"--auth sqlauth: {missing}: no such database file")
        error = self.assertRaises(
            PluginError, makePlugin, AUTHORIZER, "sqlacl:db=missing.db", directory
        )
        self.assertEqual(str(error), f"--authorizer sqlacl: {missing}: no such database file")
        self.assertEqual(os.listdir(directory), [])

    def test_arguments(self) -> None:
        """Bad or unknown arguments are one-line errors naming the plug-in."""
        path = makeDatabase(self)
        for kind, spec, words in [
            (AUTH, f"sqlauth:db={path}:threaded=maybe", "threaded must be yes or no"),
            (AUTH, f"sqlauth:file={path}", "unknown argument 'file'"),
            (AUTH, "sqlauth", "missing argument db"),
            (AUTHORIZER, f"sqlacl:db={path}:threaded=no", "unknown argument 'threaded'"),
        ]:
            error = self.assertRaises(PluginError, makePlugin, kind, spec)
            self.assertIn(words, str(error))
            self.assertTrue(
                str(error).startswith(f"--{kind.option} {spec.split(':')[0]}: "), str(error)
            )
        relative = makePlugin(AUTH, "sqlauth:db=auth.db:threaded=no", os.path.dirname(path))
        self.assertEqual(relative.path, path)
        self.assertFalse(relative.threaded)
        self.assertTrue(makePlugin(AUTH, f"sqlauth:db={path}").threaded)


class WheelTests(SynchronousTestCase):
    """
    The built wheel: the dropin as C{mqttd/plugins/mqttd_sqlauth_plugin.py},
    no C{mqttd/__init__.py}, and discovery from the installed files alone.
    """

    directory: ClassVar[str]
    wheel: ClassVar[str]

    @classmethod
    def setUpClass(cls) -> None:
        cls.directory = tempfile.mkdtemp(prefix="mqttd-sqlauth-wheel-")
        try:
            # Build from a copy, so that the build leaves nothing in the checkout.
            source = os.path.join(cls.directory, "src")
            shutil.copytree(
                DISTRIBUTION,
                source,
                ignore=shutil.ignore_patterns(
                    "*.egg-info", "build", "dist", "__pycache__", "dropin.cache"
                ),
            )
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--no-deps",
                    "--no-build-isolation",
                    "--quiet",
                    "-w",
                    os.path.join(cls.directory, "dist"),
                    source,
                ],
                capture_output=True,
                timeout=300,
                stdin=subprocess.DEVNULL,
            )
            if result.returncode != 0:
                raise RuntimeError(result.stderr.decode())
            [name] = os.listdir(os.path.join(cls.directory, "dist"))
            cls.wheel = os.path.join(cls.directory, "dist", name)
        except BaseException:
            shutil.rmtree(cls.directory, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.directory, ignore_errors=True)

    def test_contents(self) -> None:
        """The dropin and the package; no mqttd/__init__.py, no tests; the console script."""
        self.assertTrue(os.path.basename(self.wheel).startswith("mqttd_sqlauth-"), self.wheel)
        with zipfile.ZipFile(self.wheel) as wheel:
            names = set(wheel.namelist())
            [entryPoints] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
            [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
            entryPointsText = wheel.read(entryPoints).decode()
            metadataText = wheel.read(metadata).decode()
        self.assertIn("mqttd/plugins/mqttd_sqlauth_plugin.py", names)
        self.assertIn("mqttd_sqlauth/checker.py", names)
        self.assertNotIn("mqttd/__init__.py", names)
        self.assertNotIn("mqttd/plugins/__init__.py", names)
        self.assertEqual(
            sorted(n for n in names if n.startswith("mqttd/")),
            ["mqttd/plugins/mqttd_sqlauth_plugin.py"],
        )
        self.assertEqual([n for n in names if n.startswith("tests/")], [])
        self.assertIn("mqttd-sqlauth = mqttd_sqlauth.admin:main", entryPointsText)
        self.assertIn("Requires-Dist: txmqttd", metadataText)

    def test_discoveredFromTheWheel(self) -> None:
        """Unpacked next to mqttd (no .pth files read), the plug-ins are found."""
        target = os.path.join(self.directory, "target")
        with zipfile.ZipFile(self.wheel) as wheel:
            wheel.extractall(target)
        mqttdRoot = os.path.dirname(os.path.dirname(os.path.abspath(mqttd.__file__)))
        sitePackages = sysconfig.get_paths()["purelib"]
        # -S: no site processing, so the editable install's .pth (which puts
        # the checkout's plugins/mqttd-sqlauth on sys.path) is not read.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([target, mqttdRoot, sitePackages]))
        code = (
            "import mqttd, mqttd.plugins, mqttd_sqlauth\n"
            "from mqttd.plugin import AUTH, AUTHORIZER, availablePlugins\n"
            "print(mqttd.__file__)\n"
            "print(mqttd_sqlauth.__file__)\n"
            "print('\\n'.join(mqttd.plugins.__path__))\n"
            "print('FOUND', availablePlugins(AUTH)['sqlauth'].name,"
            " availablePlugins(AUTHORIZER)['sqlacl'].name)\n"
        )
        result = subprocess.run(
            [sys.executable, "-S", "-c", code],
            capture_output=True,
            timeout=60,
            env=env,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        lines = result.stdout.decode().splitlines()
        self.assertFalse(lines[0].startswith(target), "the wheel shadows mqttd")
        self.assertTrue(lines[1].startswith(target), lines[1])
        self.assertIn(os.path.join(target, "mqttd", "plugins"), lines[2:-1])
        self.assertEqual(lines[-1], "FOUND sqlauth sqlacl")


# -- the real broker --------------------------------------------------------------------------


_LISTENING = re.compile(r"mqttd listening on tcp:127\.0\.0\.1:(\d+)")


class BrokerProcess:
    """
    C{twistd -n --pidfile= mqttd} on a free loopback port, logging to a
    temporary file (after mqttd's own C{tests/brokerprocess.py}).

    @ivar port: the TCP port it listens on (read from its log line).
    """

    def __init__(self, *args: str, startTimeout: float = 20.0) -> None:
        self.logFile = tempfile.NamedTemporaryFile(
            "w+", prefix="mqttd-sqlauth-test-", suffix=".log", delete=False
        )
        command = [
            os.path.join(BIN, "twistd"),
            "-n",
            "--pidfile=",
            "mqttd",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            *args,
        ]
        self.process = subprocess.Popen(
            command,
            stdout=self.logFile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            cwd=tempfile.gettempdir(),
        )
        deadline = time.monotonic() + startTimeout
        while True:
            match = _LISTENING.search(self.log())
            if match:
                self.port = int(match.group(1))
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.cleanup()
                raise RuntimeError(f"the broker did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        """
        Everything the broker has logged so far.
        """
        with open(self.logFile.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def waitForLog(self, pattern: str, count: int, timeout: float = 10.0) -> bool:
        """
        Wait until C{pattern} (a regular expression) occurs C{count} times.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.log(), re.MULTILINE)) >= count:
                return True
            time.sleep(0.05)
        return False

    def cleanup(self) -> None:
        """
        Stop it (SIGTERM, then SIGKILL) and remove its log file.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.logFile.close()
        try:
            os.unlink(self.logFile.name)
        except OSError:
            pass


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _packet(header: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        digit, length = length % 128, length // 128
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes([header]) + bytes(encoded) + body


def connectPacket(
    clientId: str, username: str | None = None, password: bytes | None = None, level: int = 4
) -> bytes:
    """
    A clean-session CONNECT (keep-alive 10 s).
    """
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _string(b"MQTT") + bytes([level, flags]) + b"\x00\x0a"
    if level == 5:
        body += b"\x00"  # no properties
    body += _string(clientId.encode())
    if username is not None:
        body += _string(username.encode())
    if password is not None:
        body += _string(password)
    return _packet(0x10, body)


class RawClient:
    """
    A blocking raw-socket MQTT client with bounded waits.
    """

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recvExactly(self, count: int, timeout: float | None = None) -> bytes:
        """
        Read C{count} bytes (fewer if the connection closes or time runs out).
        """
        data = b""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(data) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(count - len(data))
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        return data

    def readPacket(self, timeout: float | None = None) -> bytes | None:
        """
        One whole packet, or L{None} if none arrives in time.
        """
        packet = self.recvExactly(1, timeout)
        if not packet:
            return None
        length, shift = 0, 0
        while True:
            byte = self.recvExactly(1)
            if not byte:
                return None
            packet += byte
            length += (byte[0] & 0x7F) << shift
            shift += 7
            if not byte[0] & 0x80:
                break
        body = self.recvExactly(length)
        return packet + body if len(body) == length else None

    def isClosed(self, timeout: float = 5.0) -> bool:
        """
        Whether the broker closes the connection within C{timeout} seconds.
        """
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                if not self.sock.recv(4096):
                    return True
            except TimeoutError:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
        return False

    def close(self) -> None:
        self.sock.close()


class BrokerTests(SynchronousTestCase):
    """
    C{twistd mqttd --auth sqlauth:db=... --authorizer sqlacl:db=...} (with
    the default threaded=yes), driven over loopback; one broker for the class.
    """

    directory: ClassVar[str]
    db: ClassVar[str]
    broker: ClassVar[BrokerProcess]

    @classmethod
    def setUpClass(cls) -> None:
        cls.directory = tempfile.mkdtemp(prefix="mqttd-sqlauth-broker-")
        try:
            cls.db = os.path.join(cls.directory, "auth.db")
            for argv in [
                ["init", cls.db],
                ["adduser", "-I", "1000", cls.db, "alice", "alice-pw"],
                ["adduser", "-I", "1000", cls.db, "bob", "bob-pw"],
                ["adduser", "-I", "1000", cls.db, "mallory", "mallory-pw"],
                ["ban", cls.db, "mallory"],
                ["acl", cls.db, "alice", "readwrite", "alice/#"],
                ["acl", cls.db, "bob", "write", "alice/inbox"],
                ["acl", cls.db, "-", "readwrite", "users/%u/#"],
            ]:
                adminMain(argv)
            cls.broker = BrokerProcess(
                "--auth", f"sqlauth:db={cls.db}", "--authorizer", f"sqlacl:db={cls.db}"
            )
        except BaseException:
            shutil.rmtree(cls.directory, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.broker.cleanup()
        shutil.rmtree(cls.directory, ignore_errors=True)

    def tearDown(self) -> None:
        self.assertEqual(
            [line for line in self.broker.log().splitlines() if "Traceback" in line],
            [],
            self.broker.log(),
        )

    def connect(
        self, clientId: str, username: str, password: bytes, level: int = 4
    ) -> tuple[RawClient, bytes | None]:
        """
        Connect a raw client; return it and the CONNACK.
        """
        raw = RawClient(self.broker.port)
        self.addCleanup(raw.close)
        raw.send(connectPacket(clientId, username, password, level))
        return raw, raw.readPacket()

    def connackFor(self, username: str, password: bytes) -> bytes | None:
        """
        The CONNACK a 3.1.1 client with these credentials gets.
        """
        raw, connack = self.connect(f"{username}-probe", username, password)
        raw.close()
        return connack

    def restore(self, moved: str) -> None:
        """
        Put a moved database back.
        """
        if os.path.exists(moved):
            os.rename(moved, self.db)

    def test_passwords(self) -> None:
        """Right password: 20 02 00 00; wrong or unknown: 20 02 00 04 and closed."""
        self.assertEqual(self.connackFor("alice", b"alice-pw"), bytes.fromhex("20 02 00 00"))
        for username, password in [("alice", b"alice-PW"), ("zed", b"alice-pw")]:
            raw, connack = self.connect("c", username, password)
            self.assertEqual(connack, bytes.fromhex("20 02 00 04"), username)
            self.assertTrue(raw.isClosed(), username)

    def test_banned(self) -> None:
        """A banned user is refused: 3.1.1 CONNACK 0x05, 5.0 CONNACK 0x8A."""
        _, connack = self.connect("m4", "mallory", b"mallory-pw")
        self.assertEqual(connack, bytes.fromhex("20 02 00 05"))
        _, connack = self.connect("m5", "mallory", b"mallory-pw", level=5)
        assert connack is not None
        self.assertEqual((connack[0], connack[3]), (0x20, 0x8A), connack.hex(" "))

    def test_aclDeniedPublishIsNotDelivered(self) -> None:
        """bob's publish outside his ACL is acknowledged (3.1.1), not delivered."""
        alice, connack = self.connect("alice-sub", "alice", b"alice-pw")
        self.assertEqual(connack, bytes.fromhex("20 02 00 00"))
        alice.send(_packet(0x82, b"\x00\x01" + _string(b"alice/#") + b"\x01"))
        self.assertEqual(alice.readPacket(), bytes.fromhex("90 03 00 01 01"))
        alice.send(_packet(0x82, b"\x00\x02" + _string(b"#") + b"\x01"))
        self.assertEqual(alice.readPacket(), bytes.fromhex("90 03 00 02 80"))

        bob, connack = self.connect("bob-pub", "bob", b"bob-pw")
        self.assertEqual(connack, bytes.fromhex("20 02 00 00"))
        bob.send(_packet(0x32, _string(b"alice/denied") + b"\x00\x07" + b"forbidden"))
        self.assertEqual(bob.readPacket(), bytes.fromhex("40 02 00 07"))
        bob.send(_packet(0x32, _string(b"alice/inbox") + b"\x00\x08" + b"hello"))
        self.assertEqual(bob.readPacket(), bytes.fromhex("40 02 00 08"))

        # bob's messages keep their order: had the denied one been delivered,
        # it would come first.
        delivered = alice.readPacket()
        assert delivered is not None
        self.assertEqual(delivered[0] & 0xF0, 0x30, delivered.hex(" "))
        self.assertIn(b"alice/inbox", delivered)
        self.assertTrue(delivered.endswith(b"hello"), delivered)
        self.assertIsNone(alice.readPacket(timeout=0.3))

    def test_newUserAfterSighup(self) -> None:
        """mqttd-sqlauth adduser + SIGHUP lets a new user in; a missing database keeps the old."""
        reloadedOk = r"configuration reloaded$"
        reloadedBadly = r"configuration reloaded with errors$"
        self.assertEqual(self.connackFor("carol", b"carol-pw"), bytes.fromhex("20 02 00 04"))
        result = subprocess.run(
            [ADMIN, "adduser", "-I", "1000", self.db, "carol", "carol-pw"],
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        # Read at start and on SIGHUP, not per login.
        self.assertEqual(self.connackFor("carol", b"carol-pw"), bytes.fromhex("20 02 00 04"))

        before = len(re.findall(reloadedOk, self.broker.log(), re.MULTILINE))
        self.broker.process.send_signal(signal.SIGHUP)
        self.assertTrue(self.broker.waitForLog(reloadedOk, before + 1), self.broker.log())
        self.assertEqual(self.connackFor("carol", b"carol-pw"), bytes.fromhex("20 02 00 00"))

        moved = self.db + ".moved"
        os.rename(self.db, moved)
        self.addCleanup(self.restore, moved)
        before = len(re.findall(reloadedBadly, self.broker.log(), re.MULTILINE))
        self.broker.process.send_signal(signal.SIGHUP)
        self.assertTrue(self.broker.waitForLog(reloadedBadly, before + 1), self.broker.log())
        self.assertIn("no such database file", self.broker.log())
        self.assertFalse(os.path.exists(self.db), "the reload created a database")
        self.assertEqual(self.connackFor("carol", b"carol-pw"), bytes.fromhex("20 02 00 00"))
        self.assertEqual(self.connackFor("carol", b"wrong"), bytes.fromhex("20 02 00 04"))
        self.assertEqual(self.connackFor("mallory", b"mallory-pw"), bytes.fromhex("20 02 00 05"))


class BrokerStartTests(SynchronousTestCase):
    """
    The broker refuses to start with an unusable database.
    """

    def test_missingDatabase(self) -> None:
        """A missing database stops twistd at start with one line naming the plug-in."""
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        missing = os.path.join(directory, "missing.db")
        result = subprocess.run(
            [
                os.path.join(BIN, "twistd"),
                "-n",
                "--pidfile=",
                "mqttd",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--auth",
                f"sqlauth:db={missing}",
            ],
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            cwd=directory,
        )
        output = (result.stdout + result.stderr).decode()
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn(f"mqttd: --auth sqlauth: {missing}: no such database file", output)
        self.assertEqual(os.listdir(directory), [])
