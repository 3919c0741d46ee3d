"""
The C{sqlacl} authorizer: topic access from the C{acl} table, and the
C{banned} flag of the C{users} table.

Each C{acl} row is C{(username, pattern, access, priority)}.  A row with a
user name applies to that user's clients, a row with a NULL user name to
every client (also clients without a user name); in every row a level that
is exactly C{%c} or C{%u} stands for the client id or the user name, and a
row whose identity is missing or contains C{+}, C{#}, C{/} or U+0000 is
left out for that client (as mqttd's C{aclfile} does for C{pattern} lines).

Rows are decided by priority, highest first.  Within one priority the
mosquitto rules hold: a matching C{deny} row denies, else a matching row
granting the access allows (C{read}: subscribe and receive, C{write}:
publish, C{readwrite}: both); a SUBSCRIBE needs a row whose filter covers
the whole subscription filter (mqttd's L{mqttd.acl.covers}).  When no row
of a priority matches, the next lower priority is asked; when none matches
the answer is NEXT (the authorizer chain then denies, unless another
authorizer allows: an empty table denies everything).  With every row at
the default priority 0 this is exactly mosquitto's "deny wins" ACL; a
higher priority lets an exception override a wider rule
(C{alice readwrite alice/secret/mine} at priority 1 over
C{alice deny alice/secret/#} at 0).
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from mqttd.acl import Access, Rule, Verdict, checkRules, substitute
from mqttd.auth import ALLOW, DENY, NEXT, Deny
from mqttd.interfaces import IAuthorizer, IReloadable
from zope.interface import implementer

from mqttd_sqlauth.schema import AclRow, readAcl

#: What a banned user's CONNECT gets (v5 0x8A Banned; 3.1.x CONNACK 0x05).
BANNED = Deny(0x8A, "banned")

#: Rules grouped by priority, highest first.
Tiers = list[list[Rule]]


@implementer(IAuthorizer, IReloadable)
class SqlAclAuthorizer:
    """
    The C{sqlacl} authorizer over an mqttd-sqlauth database.

    The C{acl} rows and the banned users are read when the authorizer is
    made and on every L{reload} (SIGHUP), never per request: answers are
    plain values (the broker's fast path) and are cached per client and
    topic; L{reload} empties the caches.  A reload that fails (missing or
    damaged database) keeps the old rows.
    """

    #: Entries kept per cache before it is emptied.
    CACHE_SIZE = 10_000

    def __init__(self, path: str) -> None:
        self.path = path
        self.reload()

    def __repr__(self) -> str:
        return f"<SqlAclAuthorizer {self.path!r}: {len(self.rows)} rows>"

    def reload(self) -> None:
        """
        Re-read the C{acl} table and the banned users; on any error the old
        ones stay.

        @raise mqttd_sqlauth.schema.SqlAuthError: if the database cannot be
            read or a row is damaged.
        """
        rows, banned = readAcl(self.path)
        everyone: list[AclRow] = []
        byUser: dict[str, list[AclRow]] = {}
        for row in rows:
            if row.username is None:
                everyone.append(row)
            else:
                byUser.setdefault(row.username, []).append(row)
        self.rows: list[AclRow] = rows
        self.banned: frozenset[str] = banned
        self._everyone = everyone
        self._byUser = byUser
        self._tiers: dict[tuple[str | None, str], Tiers] = {}
        self._answers: dict[tuple[str | None, str, str, Access], Verdict] = {}

    def tiersFor(self, username: str | None, clientId: str) -> Tiers:
        """
        The concrete rules that apply to a client (identities substituted,
        rows that cannot be substituted safely left out), grouped by
        priority, highest first.
        """
        rows = self._everyone
        if username is not None:
            rows = rows + self._byUser.get(username, [])
        concrete: list[tuple[int, Rule]] = []
        for row in rows:
            topicFilter = substitute(row.pattern, username, clientId)
            if topicFilter is not None:
                concrete.append((row.priority, Rule(row.access, topicFilter)))
        concrete.sort(key=lambda item: -item[0])
        return [[rule for _, rule in tier] for _, tier in groupby(concrete, lambda i: i[0])]

    def check(self, username: str | None, clientId: str, topic: str, access: Access) -> Verdict:
        """
        Decide one request (uncached): the first priority with an opinion
        decides.
        """
        return self._decide(self.tiersFor(username, clientId), topic, access)

    @staticmethod
    def _decide(tiers: Tiers, topic: str, access: Access) -> Verdict:
        for tier in tiers:
            verdict = checkRules(tier, topic, access)
            if verdict is not Verdict.NO_OPINION:
                return verdict
        return Verdict.NO_OPINION

    def _verdict(self, client: Any, topic: str, access: Access) -> Any:
        username = client.username
        clientId = client.clientId
        key = (username, clientId, topic, access)
        verdict = self._answers.get(key)
        if verdict is None:
            tiersKey = (username, clientId)
            tiers = self._tiers.get(tiersKey)
            if tiers is None:
                if len(self._tiers) >= self.CACHE_SIZE:
                    self._tiers.clear()
                tiers = self._tiers[tiersKey] = self.tiersFor(username, clientId)
            verdict = self._decide(tiers, topic, access)
            if len(self._answers) >= self.CACHE_SIZE:
                self._answers.clear()
            self._answers[key] = verdict
        if verdict is Verdict.ALLOW:
            return ALLOW
        if verdict is Verdict.DENY:
            return DENY
        return NEXT

    def authorizeConnect(self, client: Any) -> Any:
        """
        Every client may connect, except banned users.
        """
        if client.username is not None and client.username in self.banned:
            return BANNED
        return ALLOW

    def authorizePublish(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        """
        Publishing needs C{write} (or C{readwrite}).
        """
        return self._verdict(client, topic, Access.WRITE)

    def authorizeSubscribe(self, client: Any, topicFilter: str, qos: int) -> Any:
        """
        Subscribing needs C{read} on a filter covering the whole subscription.
        """
        return self._verdict(client, topicFilter, Access.SUBSCRIBE)

    def authorizeReceive(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        """
        Receiving needs C{read}, checked for every delivery.
        """
        return self._verdict(client, topic, Access.READ)
