"""
Access control lists in mosquitto's C{acl_file} format.

::

    # anonymous clients (the lines before any "user" line)
    topic read public/#
    user alice
    topic readwrite alice/#
    topic deny alice/secret
    # every client, with %c (client id) and %u (user name) substituted
    pattern write devices/%c/status

An access is C{read}, C{write}, C{readwrite} (the default when omitted) or
C{deny}.  Deny lines win over the others.  An identity (client id or user
name) containing C{+}, C{#}, C{/} or U+0000 never matches a pattern line, so
that it cannot widen its own access (CVE-2017-7650).  The answer for a
request that no line covers is "no opinion": the authorizer chain then
denies unless another authorizer allows, so an empty file denies everything
(CVE-2018-12550).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from zope.interface import implementer

from mqttd.auth import ALLOW, DENY, NEXT
from mqttd.files import UnreadableFile, readTextFile
from mqttd.interfaces import IAuthorizer, IReloadable
from mqttd.topics import InvalidTopic, matches, validateTopicFilter


class AclFileError(ValueError):
    """
    An ACL file that cannot be used, with the line at fault.
    """

    def __init__(self, message: str, lineNumber: int | None = None) -> None:
        if lineNumber is not None:
            message = f"line {lineNumber}: {message}"
        super().__init__(message)
        self.lineNumber = lineNumber


class Access(Enum):
    """
    What a client wants to do with a topic.
    """

    READ = "read"  # receive a message published on a topic
    WRITE = "write"  # publish to a topic
    SUBSCRIBE = "subscribe"  # subscribe to a filter (needs read access)


class Verdict(Enum):
    """
    An ACL's answer.
    """

    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no opinion"


_ACCESS_WORDS = {"read", "write", "readwrite", "deny"}

#: Characters an identity (client id, user name, certificate identity) must
#: not contain to be used where topics are made from it: C{+} and C{#}
#: would be wildcards and C{/} a level separator in an ACL pattern's
#: C{%c}/C{%u} (CVE-2017-7650), and NUL ends a C string (catalogue AU-05).
UNSAFE_IDENTITY_CHARACTERS = frozenset("+#/\x00")


def isSafeIdentity(text: str) -> bool:
    """
    Whether an identity may stand for a topic level: not empty, and none
    of L{UNSAFE_IDENTITY_CHARACTERS} (C{+}, C{#}, C{/}, NUL) in it.
    """
    return bool(text) and UNSAFE_IDENTITY_CHARACTERS.isdisjoint(text)


@dataclass(frozen=True)
class Rule:
    """
    One C{topic} or C{pattern} line.

    @ivar access: C{read}, C{write}, C{readwrite} or C{deny}.
    @ivar topicFilter: the filter (with C{%c}/C{%u} for patterns).
    """

    access: str
    topicFilter: str

    def grants(self, access: Access) -> bool:
        """
        Whether the line allows C{access} (never true for C{deny}).
        """
        if self.access == "readwrite":
            return True
        if access is Access.WRITE:
            return self.access == "write"
        return self.access == "read"


@dataclass
class AccessControlList:
    """
    A parsed ACL file.

    @ivar anonymous: rules for clients without a user name.
    @ivar users: user name -> that user's rules.
    @ivar patterns: rules for every client, with substitution.
    """

    anonymous: list[Rule] = field(default_factory=list)
    users: dict[str, list[Rule]] = field(default_factory=dict)
    patterns: list[Rule] = field(default_factory=list)

    def rulesFor(self, username: str | None, clientId: str) -> list[Rule]:
        """
        The concrete rules that apply to a client: its user's (or the
        anonymous) lines, then the patterns with its identity substituted
        (patterns it cannot safely be substituted into are left out).
        """
        rules = list(self.users.get(username, ())) if username is not None else list(
            self.anonymous
        )
        for rule in self.patterns:
            concrete = substitute(rule.topicFilter, username, clientId)
            if concrete is not None:
                rules.append(Rule(rule.access, concrete))
        return rules

    def check(
        self, username: str | None, clientId: str, topic: str, access: Access
    ) -> Verdict:
        """
        Decide one request: a matching deny line denies; else a matching
        line granting the access allows; else there is no opinion.

        For L{Access.SUBSCRIBE}, C{topic} is the subscription filter and a
        line matches when its filter covers every topic the subscription
        could receive; messages are checked again with L{Access.READ} when
        they are delivered, so a deny line inside a wide subscription still
        holds.
        """
        return checkRules(self.rulesFor(username, clientId), topic, access)


def checkRules(rules: list[Rule], topic: str, access: Access) -> Verdict:
    """
    Decide a request against concrete rules (see L{AccessControlList.check}).
    """
    test = covers if access is Access.SUBSCRIBE else matches
    for rule in rules:
        if rule.access == "deny" and test(rule.topicFilter, topic):
            return Verdict.DENY
    for rule in rules:
        if rule.grants(access) and test(rule.topicFilter, topic):
            return Verdict.ALLOW
    return Verdict.NO_OPINION


def substitute(topicFilter: str, username: str | None, clientId: str) -> str | None:
    """
    Replace C{%c} and C{%u} levels of a pattern.

    @return: the concrete filter, or L{None} if the pattern needs an identity
        the client lacks or whose value contains C{+}, C{#}, C{/} or U+0000.
    """
    levels = topicFilter.split("/")
    for i, level in enumerate(levels):
        if level == "%c":
            value: str | None = clientId
        elif level == "%u":
            value = username
        else:
            continue
        if value is None or not isSafeIdentity(value):
            return None
        levels[i] = value
    return "/".join(levels)


def covers(aclFilter: str, subscription: str) -> bool:
    """
    Whether every topic that subscription C{subscription} can match is
    matched by C{aclFilter}: wildcards in the subscription count as
    themselves, and are covered only by the same or a wider wildcard.
    """
    if subscription.startswith("$") and aclFilter[:1] in ("+", "#"):
        return False  # [MQTT-4.7.2-1], as for matching
    acl = aclFilter.split("/")
    sub = subscription.split("/")
    for i, level in enumerate(acl):
        if level == "#":
            return True
        if i >= len(sub):
            return False
        if level == "+":
            if sub[i] == "#":
                return False
            continue
        if level != sub[i]:
            return False
    return len(acl) == len(sub)


def parseAcl(text: str) -> AccessControlList:
    """
    Parse the contents of an ACL file.

    @raise AclFileError: for the first bad line (unknown keyword, bad
        access word, missing or invalid topic filter, empty user name).
    """
    acl = AccessControlList()
    current: list[Rule] = acl.anonymous
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        rest = rest.strip()
        if keyword == "user":
            if not rest:
                raise AclFileError("'user' without a user name", number)
            current = acl.users.setdefault(rest, [])
            continue
        if keyword not in ("topic", "pattern"):
            raise AclFileError(f"unknown keyword {keyword!r}", number)
        access = "readwrite"
        word, _, topicFilter = rest.partition(" ")
        if word in _ACCESS_WORDS:
            access = word
            topicFilter = topicFilter.strip()
        else:
            topicFilter = rest
        if not topicFilter:
            raise AclFileError(f"'{keyword}' without a topic", number)
        try:
            validateTopicFilter(topicFilter)
        except InvalidTopic as e:
            raise AclFileError(f"invalid topic {topicFilter!r}: {e}", number) from None
        if keyword == "pattern":
            acl.patterns.append(Rule(access, topicFilter))
        else:
            current.append(Rule(access, topicFilter))
    return acl


def readAclFile(path: str) -> AccessControlList:
    """
    Read and parse an ACL file.

    @raise AclFileError: if it cannot be read or parsed (naming the file
        and line).
    """
    try:
        text = readTextFile(path)
    except UnreadableFile as e:
        raise AclFileError(str(e)) from None
    try:
        return parseAcl(text)
    except AclFileError as e:
        raise AclFileError(f"{path}: {e}") from None


@implementer(IAuthorizer, IReloadable)
class AclFileAuthorizer:
    """
    The C{aclfile} authorizer: a mosquitto-format ACL file decides publish
    (write), subscribe and receive (read) requests; a request no line
    covers gets "next".  Connections are allowed (an ACL file does not
    restrict who connects).  Answers are cached per client and topic;
    C{reload()} re-reads the file and empties the caches.
    """

    #: Entries kept per cache before it is emptied.
    CACHE_SIZE = 10_000

    def __init__(self, path: str) -> None:
        self.path = path
        self.acl = readAclFile(path)
        self._rules: dict[tuple[str | None, str], list[Rule]] = {}
        self._answers: dict[tuple[str | None, str, str, Access], Verdict] = {}

    def __repr__(self) -> str:
        return f"<AclFileAuthorizer {self.path!r}>"

    def reload(self) -> None:
        """
        Re-read the file; on any error the old rules stay.
        """
        acl = readAclFile(self.path)
        self.acl = acl
        self._rules = {}
        self._answers = {}

    def _verdict(self, client: object, topic: str, access: Access) -> object:
        username = getattr(client, "username", None)
        clientId = getattr(client, "clientId", "")
        key = (username, clientId, topic, access)
        verdict = self._answers.get(key)
        if verdict is None:
            rulesKey = (username, clientId)
            rules = self._rules.get(rulesKey)
            if rules is None:
                if len(self._rules) >= self.CACHE_SIZE:
                    self._rules.clear()
                rules = self._rules[rulesKey] = self.acl.rulesFor(username, clientId)
            verdict = checkRules(rules, topic, access)
            if len(self._answers) >= self.CACHE_SIZE:
                self._answers.clear()
            self._answers[key] = verdict
        if verdict is Verdict.ALLOW:
            return ALLOW
        if verdict is Verdict.DENY:
            return DENY
        return NEXT

    def authorizeConnect(self, client: object) -> object:
        return ALLOW

    def authorizePublish(self, client: object, topic: str, qos: int, retain: bool) -> object:
        return self._verdict(client, topic, Access.WRITE)

    def authorizeSubscribe(self, client: object, topicFilter: str, qos: int) -> object:
        return self._verdict(client, topicFilter, Access.SUBSCRIBE)

    def authorizeReceive(self, client: object, topic: str, qos: int, retain: bool) -> object:
        return self._verdict(client, topic, Access.READ)
