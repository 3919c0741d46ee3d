"""
The C{mqttd-sqlauth} command: create a database and manage its users and
ACL rows.

::

    mqttd-sqlauth init DB
    mqttd-sqlauth adduser [-I ITERATIONS] DB USER [PASSWORD]
    mqttd-sqlauth deluser DB USER
    mqttd-sqlauth ban DB USER
    mqttd-sqlauth unban DB USER
    mqttd-sqlauth acl [-p PRIORITY] DB USER|- read|write|readwrite|deny PATTERN
    mqttd-sqlauth delacl DB USER|- PATTERN
    mqttd-sqlauth list DB

Without PASSWORD, C{adduser} asks for it twice on a terminal, or reads one
line from standard input.  A running broker sees the changes after SIGHUP.
"""

from __future__ import annotations

import argparse
import getpass
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import closing

from mqttd.passwd import DEFAULT_ITERATIONS, hashPassword
from mqttd.topics import InvalidTopic, validateTopicFilter

from mqttd_sqlauth.schema import ACCESS_WORDS, SqlAuthError, connect, createSchema

PROGRAM = "mqttd-sqlauth"


def _fail(message: str) -> SystemExit:
    return SystemExit(f"{PROGRAM}: {message}")


def _checkUsername(username: str) -> str:
    if not username:
        raise _fail("empty user name")
    if "\x00" in username:
        raise _fail("a user name cannot contain U+0000")
    try:
        username.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(f"user name {username!r} is not valid UTF-8")
    return username


def _readPassword(username: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"Password for {username}: ")
        if getpass.getpass("Again: ") != first:
            raise _fail("the passwords differ")
        return first
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def _open(path: str, writable: bool = True) -> sqlite3.Connection:
    try:
        return connect(path, writable)
    except SqlAuthError as e:
        raise _fail(str(e))


def init(path: str) -> None:
    """
    Create the database (or complete an existing one).
    """
    try:
        createSchema(path)
    except SqlAuthError as e:
        raise _fail(str(e))


def addUser(path: str, username: str, password: str | None, iterations: int) -> None:
    """
    Add a user, or change an existing user's password (its ban stays).
    """
    _checkUsername(username)
    if password is None:
        password = _readPassword(username)
    if not password:
        raise _fail("empty password")
    # A password given on a command line arrives as text; surrogateescape
    # gives back the bytes of one that was not valid UTF-8.
    hashed = hashPassword(password.encode("utf-8", "surrogateescape"), iterations=iterations)
    with closing(_open(path)) as db, db:
        db.execute(
            "INSERT INTO users (username, password_hash) VALUES (?, ?) "
            "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
            (username, hashed.encode()),
        )


def delUser(path: str, username: str) -> None:
    """
    Remove a user and the ACL rows naming it.
    """
    with closing(_open(path)) as db, db:
        users = db.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount
        rows = db.execute("DELETE FROM acl WHERE username = ?", (username,)).rowcount
    if not users and not rows:
        raise _fail(f"no user {username!r} in {path}")


def setBanned(path: str, username: str, banned: bool) -> None:
    """
    Set or clear a user's C{banned} flag.
    """
    with closing(_open(path)) as db, db:
        changed = db.execute(
            "UPDATE users SET banned = ? WHERE username = ?", (int(banned), username)
        ).rowcount
    if not changed:
        raise _fail(f"no user {username!r} in {path}")


def _aclUser(user: str) -> str | None:
    return None if user == "-" else _checkUsername(user)


def addAcl(path: str, user: str, access: str, pattern: str, priority: int) -> None:
    """
    Add an ACL row (C{-} as user: every client); the same user, pattern and
    access again only changes the priority.
    """
    username = _aclUser(user)
    if access not in ACCESS_WORDS:
        raise _fail(f"access must be one of {', '.join(ACCESS_WORDS)}, not {access!r}")
    try:
        validateTopicFilter(pattern)
    except InvalidTopic as e:
        raise _fail(f"invalid pattern {pattern!r}: {e}")
    with closing(_open(path)) as db, db:
        changed = db.execute(
            "UPDATE acl SET priority = ? WHERE username IS ? AND pattern = ? AND access = ?",
            (priority, username, pattern, access),
        ).rowcount
        if not changed:
            db.execute(
                "INSERT INTO acl (username, pattern, access, priority) VALUES (?, ?, ?, ?)",
                (username, pattern, access, priority),
            )


def delAcl(path: str, user: str, pattern: str) -> None:
    """
    Remove the ACL rows of a user (C{-}: every client) with this pattern.
    """
    username = _aclUser(user)
    with closing(_open(path)) as db, db:
        removed = db.execute(
            "DELETE FROM acl WHERE username IS ? AND pattern = ?", (username, pattern)
        ).rowcount
    if not removed:
        raise _fail(f"no ACL row for {user!r} with pattern {pattern!r} in {path}")


def listAll(path: str) -> str:
    """
    The users and ACL rows, as text.
    """
    with closing(_open(path, writable=False)) as db:
        users = db.execute(
            "SELECT username, password_hash, banned FROM users ORDER BY username"
        ).fetchall()
        rows = db.execute(
            "SELECT username, priority, access, pattern FROM acl "
            "ORDER BY username IS NOT NULL, username, priority DESC, id"
        ).fetchall()
    lines = ["users:"]
    for username, passwordHash, banned in users:
        scheme = str(passwordHash).split("$")[1:2] or ["?"]
        lines.append(f"  {username}  ${scheme[0]}${'  banned' if banned else ''}")
    lines.append("acl (user, priority, access, pattern):")
    for username, priority, access, pattern in rows:
        lines.append(f"  {'-' if username is None else username}  {priority}  {access}  {pattern}")
    return "\n".join(lines) + "\n"


def makeParser() -> argparse.ArgumentParser:
    """
    The command line of C{mqttd-sqlauth}.
    """
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Manage the SQLite database of the mqttd sqlauth and sqlacl plug-ins. "
        "A running broker applies changes after SIGHUP.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    command = commands.add_parser("init", help="create the database (mode 0600)")
    command.add_argument("db", metavar="DB")

    command = commands.add_parser("adduser", help="add a user or change its password")
    command.add_argument(
        "-I",
        "--iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS})",
    )
    command.add_argument("db", metavar="DB")
    command.add_argument("user", metavar="USER")
    command.add_argument(
        "password",
        metavar="PASSWORD",
        nargs="?",
        help="asked for (or read from standard input) when omitted",
    )

    command = commands.add_parser("deluser", help="remove a user and its ACL rows")
    command.add_argument("db", metavar="DB")
    command.add_argument("user", metavar="USER")

    for name, help in (
        ("ban", "refuse a user's connections (sqlacl)"),
        ("unban", "let a banned user connect again"),
    ):
        command = commands.add_parser(name, help=help)
        command.add_argument("db", metavar="DB")
        command.add_argument("user", metavar="USER")

    command = commands.add_parser("acl", help="add an ACL row ('-' as USER: every client)")
    command.add_argument(
        "-p",
        "--priority",
        type=int,
        default=0,
        help="higher priorities are decided first (default 0)",
    )
    command.add_argument("db", metavar="DB")
    command.add_argument("user", metavar="USER|-")
    command.add_argument(
        "access", metavar="ACCESS", choices=ACCESS_WORDS, help="read, write, readwrite or deny"
    )
    command.add_argument(
        "pattern",
        metavar="PATTERN",
        help="a topic filter; whole %%c / %%u levels are the client id / user",
    )

    command = commands.add_parser("delacl", help="remove ACL rows of USER (or '-') with PATTERN")
    command.add_argument("db", metavar="DB")
    command.add_argument("user", metavar="USER|-")
    command.add_argument("pattern", metavar="PATTERN")

    command = commands.add_parser("list", help="show the users and ACL rows")
    command.add_argument("db", metavar="DB")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """
    Run C{mqttd-sqlauth}.

    @raise SystemExit: with a one-line message on errors.
    """
    options = makeParser().parse_args(argv)
    try:
        if options.command == "init":
            init(options.db)
        elif options.command == "adduser":
            if not 1 <= options.iterations <= 100_000_000:
                raise _fail("iterations must be between 1 and 100000000")
            addUser(options.db, options.user, options.password, options.iterations)
        elif options.command == "deluser":
            delUser(options.db, options.user)
        elif options.command in ("ban", "unban"):
            setBanned(options.db, options.user, options.command == "ban")
        elif options.command == "acl":
            addAcl(options.db, options.user, options.access, options.pattern, options.priority)
        elif options.command == "delacl":
            delAcl(options.db, options.user, options.pattern)
        elif options.command == "list":
            sys.stdout.write(listAll(options.db))
    except sqlite3.Error as e:
        raise _fail(f"{options.db}: {e}")
