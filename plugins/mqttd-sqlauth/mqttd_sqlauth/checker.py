"""
The C{sqlauth} authenticator: user names and password hashes from the
C{users} table.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from mqttd.interfaces import IReloadable
from mqttd.passwd import DEFAULT_ITERATIONS, SALT_BYTES, PasswordHash, hashPassword
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from mqttd_sqlauth.schema import User, readUsers


@implementer(ICredentialsChecker, IReloadable)
class SqlPasswordChecker:
    """
    A C{twisted.cred} checker of user names and passwords against the
    C{users} table of an mqttd-sqlauth database.

    The table is read when the checker is made and on every L{reload}
    (SIGHUP), not per login: a login costs no database access, and a
    database that goes missing or gets damaged leaves the last good copy in
    force.  An unknown user name is "not mine" (C{UnhandledCredentials}:
    the next authenticator may know it); a known one with a wrong password
    is refused (C{UnauthorizedLogin}).  Both cost one hash computation and
    a constant-time comparison, so that timing does not tell which user
    names exist.  The hash runs in Twisted's thread pool unless
    C{threaded} is false.  The C{banned} flag is not looked at here: the
    C{sqlacl} authorizer refuses banned users (CONNACK 0x8A / 0x05).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, path: str, threaded: bool = True) -> None:
        self.path = path
        self.threaded = threaded
        self.reload()

    def __repr__(self) -> str:
        return f"<SqlPasswordChecker {self.path!r}: {len(self.users)} users>"

    def reload(self) -> None:
        """
        Re-read the C{users} table; on any error the old users stay.

        @raise mqttd_sqlauth.schema.SqlAuthError: if the database cannot be
            read or a row is damaged.
        """
        users = readUsers(self.path)
        # An unknown user is checked against a hash like the table's own, so
        # that it costs as much as a known user with a wrong password.
        kinds = Counter((u.passwordHash.scheme, u.passwordHash.iterations) for u in users.values())
        scheme, iterations = kinds.most_common(1)[0][0] if kinds else ("7", DEFAULT_ITERATIONS)
        if scheme == "6":
            dummy = PasswordHash("6", 1, os.urandom(SALT_BYTES), bytes(64))
        else:
            dummy = hashPassword(os.urandom(16), iterations=iterations)
        self.users: dict[str, User] = users
        self._dummy: PasswordHash = dummy

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        """
        Check a user name and password.

        @return: a Deferred firing with the user name (UTF-8 bytes), or
            failing with C{UnhandledCredentials} (unknown user) or
            C{UnauthorizedLogin} (wrong password).
        """
        raw = credentials.username
        try:
            username: str | None = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            username = None
        password = credentials.password
        if isinstance(password, str):
            password = password.encode("utf-8")
        user = self.users.get(username) if username is not None else None
        check = user.passwordHash if user is not None else self._dummy

        def decided(matched: bool) -> bytes:
            if user is None:
                raise UnhandledCredentials(f"unknown user {username!r}")
            if not matched:
                raise UnauthorizedLogin(f"wrong password for {username!r}")
            return user.username.encode("utf-8")

        if self.threaded:
            return deferToThread(check.verify, password).addCallback(decided)
        return succeed(check.verify(password)).addCallback(decided)
