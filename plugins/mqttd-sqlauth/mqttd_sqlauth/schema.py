"""
The database: its schema, and reading users and ACL rows out of it.

Two tables::

    users(username TEXT PRIMARY KEY, password_hash TEXT, banned INTEGER 0|1)
    acl(id INTEGER PRIMARY KEY, username TEXT NULL, pattern TEXT,
        access TEXT read|write|readwrite|deny, priority INTEGER)

C{password_hash} holds the hashes of mosquitto password files
(C{$7$iterations$salt$hash}, PBKDF2-SHA512, or the older C{$6$salt$hash});
an C{acl} row with a NULL user name applies to every client.
C{PRAGMA user_version} is L{SCHEMA_VERSION}.

Reading is strict, as for mqttd's password and ACL files: one damaged row
(an unparsable hash, an unknown access word, an invalid topic filter) makes
the whole database unusable, and the plug-ins keep what they had (it is
never read as "a user without a password").
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from mqttd.passwd import PasswordHash, parseHash
from mqttd.topics import InvalidTopic, validateTopicFilter

#: The schema version this code reads and writes (C{PRAGMA user_version}).
SCHEMA_VERSION = 1

#: The access words of C{acl.access}, as in mosquitto ACL files.
ACCESS_WORDS = ("read", "write", "readwrite", "deny")

SCHEMA_SQL = f"""\
CREATE TABLE IF NOT EXISTS users (
    username      TEXT    NOT NULL PRIMARY KEY CHECK (length(username) > 0),
    password_hash TEXT    NOT NULL,
    banned        INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0, 1))
);
CREATE TABLE IF NOT EXISTS acl (
    id       INTEGER PRIMARY KEY,
    username TEXT    CHECK (username IS NULL OR length(username) > 0),
    pattern  TEXT    NOT NULL CHECK (length(pattern) > 0),
    access   TEXT    NOT NULL CHECK (access IN ('read', 'write', 'readwrite', 'deny')),
    priority INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS acl_by_username ON acl (username);
PRAGMA user_version = {SCHEMA_VERSION};
"""


class SqlAuthError(ValueError):
    """
    A database that cannot be used; the message names the file and, for a
    bad row, the row.
    """


@dataclass(frozen=True)
class User:
    """
    One row of C{users}.

    @ivar passwordHash: the parsed hash.
    @ivar banned: whether the C{sqlacl} authorizer refuses its connections.
    """

    username: str
    passwordHash: PasswordHash
    banned: bool


@dataclass(frozen=True)
class AclRow:
    """
    One row of C{acl}.

    @ivar username: the user it applies to, or L{None} for every client.
    @ivar pattern: a topic filter, where whole C{%c} / C{%u} levels stand
        for the client id / user name.
    @ivar access: C{read}, C{write}, C{readwrite} or C{deny}.
    @ivar priority: higher priorities are decided first (see
        L{mqttd_sqlauth.authorizer}).
    """

    username: str | None
    pattern: str
    access: str
    priority: int


def createSchema(path: str) -> None:
    """
    Create the database at C{path} (readable by its owner only) with the
    tables, or add what is missing to an existing one.

    @raise SqlAuthError: if the file is not an SQLite database or has a
        newer schema version.
    """
    try:
        # O_EXCL: a new file is made with mode 0600 (SQLite gives its journal
        # files the database's mode); an existing one is left as it is.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as e:
        raise SqlAuthError(f"{path}: {e.strerror or e}") from None
    try:
        with closing(sqlite3.connect(path)) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SqlAuthError(
                    f"{path}: schema version {version} is newer than this mqttd-sqlauth "
                    f"({SCHEMA_VERSION})"
                )
            db.executescript(f"BEGIN;\n{SCHEMA_SQL}COMMIT;\n")
    except sqlite3.Error as e:
        raise SqlAuthError(f"{path}: {e}") from None


def connect(path: str, writable: bool = False) -> sqlite3.Connection:
    """
    Open an existing database (never creating one: a missing file is an
    error) and check its schema version.

    @param writable: open it for writing (the admin command) rather than
        read-only (the plug-ins).
    @raise SqlAuthError: if it is missing, unreadable or not made by
        L{createSchema}.
    """
    if not os.path.isfile(path):
        raise SqlAuthError(f"{path}: no such database file")
    uri = f"file:{quote(os.path.abspath(path))}?mode={'rw' if writable else 'ro'}"
    try:
        db = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        raise SqlAuthError(f"{path}: {e}") from None
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as e:
        db.close()
        raise SqlAuthError(f"{path}: {e}") from None
    if version != SCHEMA_VERSION:
        db.close()
        raise SqlAuthError(
            f"{path}: not an mqttd-sqlauth database of schema version {SCHEMA_VERSION} "
            f"(found {version}; create it with 'mqttd-sqlauth init {path}')"
        )
    return db


@contextmanager
def _reading(path: str) -> Iterator[sqlite3.Connection]:
    """
    A read-only connection in one read transaction (a consistent snapshot),
    its SQLite errors reported as L{SqlAuthError}.
    """
    db = connect(path)
    try:
        db.execute("BEGIN")
        yield db
    except sqlite3.Error as e:
        raise SqlAuthError(f"{path}: {e}") from None
    finally:
        db.close()


def readUsers(path: str) -> dict[str, User]:
    """
    Every user of the database, by name.

    @raise SqlAuthError: if the database cannot be read or a row is damaged.
    """
    users: dict[str, User] = {}
    with _reading(path) as db:
        rows = db.execute("SELECT username, password_hash, banned FROM users").fetchall()
    for username, passwordHash, banned in rows:
        if not isinstance(username, str) or not username:
            raise SqlAuthError(f"{path}: users: bad user name {username!r}")
        if not isinstance(passwordHash, str):
            raise SqlAuthError(f"{path}: users: {username!r}: password_hash is not text")
        try:
            parsed = parseHash(passwordHash)
        except ValueError as e:
            raise SqlAuthError(f"{path}: users: bad password hash for {username!r}: {e}")
        users[username] = User(username, parsed, banned not in (0, None))
    return users


def readAcl(path: str) -> tuple[list[AclRow], frozenset[str]]:
    """
    The ACL rows and the names of banned users, read in one transaction.

    @raise SqlAuthError: if the database cannot be read or a row is damaged.
    """
    with _reading(path) as db:
        rows = db.execute("SELECT id, username, pattern, access, priority FROM acl").fetchall()
        banned = frozenset(
            name for (name,) in db.execute("SELECT username FROM users WHERE banned != 0")
        )
    acl = []
    for rowId, username, pattern, access, priority in rows:
        where = f"{path}: acl row {rowId}"
        if username is not None and (not isinstance(username, str) or not username):
            raise SqlAuthError(f"{where}: bad user name {username!r}")
        if access not in ACCESS_WORDS:
            raise SqlAuthError(f"{where}: unknown access {access!r}")
        if not isinstance(priority, int):
            raise SqlAuthError(f"{where}: priority {priority!r} is not an integer")
        if not isinstance(pattern, str):
            raise SqlAuthError(f"{where}: pattern is not text")
        try:
            validateTopicFilter(pattern)
        except InvalidTopic as e:
            raise SqlAuthError(f"{where}: invalid pattern {pattern!r}: {e}")
        acl.append(AclRow(username, pattern, access, priority))
    return acl, banned
