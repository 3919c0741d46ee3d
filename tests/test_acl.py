"""
Tests for mosquitto-format ACL files (L{mqttd.acl}): parsing, the semantics
mosquitto documents (anonymous, user and pattern lines, deny wins, read and
write), subscription coverage, identities that must not widen a pattern
(AU-07, CVE-2017-7650), empty files (CVE-2018-12550) and the C{aclfile}
authorizer with its caches and reload (AU-09).
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import tempfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import mqttd.acl
from mqttd.acl import (
    UNSAFE_IDENTITY_CHARACTERS,
    Access,
    AclFileAuthorizer,
    AclFileError,
    Rule,
    Verdict,
    checkRules,
    covers,
    isSafeIdentity,
    parseAcl,
    readAclFile,
    substitute,
)
from mqttd.auth import ALLOW, DENY, NEXT, ClientInfo, Deny
from mqttd.authorization import AuthorizerChain
from mqttd.interfaces import IAuthorizer, IReloadable

READ, WRITE, SUBSCRIBE = Access.READ, Access.WRITE, Access.SUBSCRIBE
ALLOWED, DENIED, NO_OPINION = Verdict.ALLOW, Verdict.DENY, Verdict.NO_OPINION


def client(clientId: str = "c1", username: str | None = None) -> ClientInfo:
    return ClientInfo(clientId, username, None, 4, "127.0.0.1:5000")


def writeFile(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class ParseTests(SynchronousTestCase):
    """
    L{parseAcl} reads topic, user and pattern lines and refuses others with
    the line number.
    """

    def assertBadLine(self, text: str, lineNumber: int) -> AclFileError:
        with self.assertRaises(AclFileError, msg=text) as caught:
            parseAcl(text)
        self.assertEqual(caught.exception.lineNumber, lineNumber, str(caught.exception))
        self.assertIn(f"line {lineNumber}", str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))
        return caught.exception

    def test_unknownKeyword(self) -> None:
        """An unknown keyword (or a misspelt one) is an error on its line."""
        self.assertBadLine("# c\n\ntopic read a\ntopics read b\n", 4)
        self.assertBadLine("topic a\nallow a\n", 2)
        self.assertBadLine("Topic a\n", 1)

    def test_userWithoutName(self) -> None:
        """C{user} without a name is an error."""
        self.assertBadLine("topic a\nuser\n", 2)
        self.assertBadLine("user   \n", 1)

    def test_topicWithoutTopic(self) -> None:
        """C{topic} or C{pattern} without a topic, or with only an access word, is an error."""
        self.assertBadLine("topic\n", 1)
        self.assertBadLine("\ntopic read\n", 2)
        self.assertBadLine("user a\ntopic deny  \n", 2)
        self.assertBadLine("pattern write\n", 1)

    def test_invalidFilter(self) -> None:
        """Invalid topic filters are errors."""
        self.assertBadLine("topic read a/#/b\n", 1)
        self.assertBadLine("topic ok\ntopic a/b#\n", 2)
        self.assertBadLine("topic ok\n\npattern readwrite dev/+x/%c\n", 3)

    def test_defaultAccess(self) -> None:
        """Without an access word, the access is readwrite."""
        acl = parseAcl("topic a/b\n")
        self.assertEqual(acl.check(None, "c", "a/b", READ), ALLOWED)
        self.assertEqual(acl.check(None, "c", "a/b", WRITE), ALLOWED)
        self.assertEqual(acl.check(None, "c", "a/b", SUBSCRIBE), ALLOWED)

    def test_accessWords(self) -> None:
        """read, write, readwrite and deny each parse to their access."""
        acl = parseAcl("topic read r\ntopic write w\ntopic readwrite rw\ntopic deny d\n")
        self.assertEqual(
            [
                acl.check(None, "c", t, a)
                for t in ("r", "w", "rw", "d")
                for a in (READ, WRITE, SUBSCRIBE)
            ],
            [
                ALLOWED,
                NO_OPINION,
                ALLOWED,
                NO_OPINION,
                ALLOWED,
                NO_OPINION,
                ALLOWED,
                ALLOWED,
                ALLOWED,
                DENIED,
                DENIED,
                DENIED,
            ],
        )

    def test_topicWithSpaces(self) -> None:
        """The topic is the rest of the line, spaces included (as mosquitto reads it)."""
        acl = parseAcl("topic read my topic/x\n  topic   write   other thing  \n")
        self.assertEqual(acl.check(None, "c", "my topic/x", READ), ALLOWED)
        self.assertEqual(acl.check(None, "c", "other thing", WRITE), ALLOWED)

    def test_accessWordAsTopic(self) -> None:
        """C{topic write read} is write access to the topic C{read}."""
        acl = parseAcl("topic write read\n")
        self.assertEqual(acl.check(None, "c", "read", WRITE), ALLOWED)
        self.assertEqual(acl.check(None, "c", "read", READ), NO_OPINION)

    def test_userSections(self) -> None:
        """Topic lines belong to the last C{user} line; a user named twice keeps both parts."""
        acl = parseAcl(
            "topic anon\nuser alice\ntopic a1\nuser bob smith\ntopic b\nuser alice\ntopic a2\n"
        )
        self.assertEqual(acl.check("alice", "c", "a1", READ), ALLOWED)
        self.assertEqual(acl.check("alice", "c", "a2", READ), ALLOWED)
        self.assertEqual(acl.check("alice", "c", "b", READ), NO_OPINION)
        self.assertEqual(acl.check("bob smith", "c", "b", READ), ALLOWED)
        self.assertEqual(acl.check("bob smith", "c", "a2", READ), NO_OPINION)

    def test_comments(self) -> None:
        """Comment and blank lines, also indented, are skipped."""
        acl = parseAcl("# header\n\n   # indented\n\t\ntopic a\n")
        self.assertEqual(acl.check(None, "c", "a", READ), ALLOWED)


class SemanticsTests(SynchronousTestCase):
    """
    The meaning mosquitto documents for ACL files.
    """

    acl = parseAcl(
        "topic read public/#\n"
        "topic write anon/in\n"
        "user alice\n"
        "topic readwrite alice/#\n"
        "topic deny alice/secret\n"
        "topic read shared/+/status\n"
        "user bob\n"
        "topic write shared/bob/status\n"
        "pattern write devices/%c/status\n"
        "pattern readwrite users/%u/#\n"
    )

    def check(self, username: str | None, clientId: str, topic: str, access: Access) -> Verdict:
        return self.acl.check(username, clientId, topic, access)

    def test_anonymousRules(self) -> None:
        """Lines before any C{user} line apply to clients without a user name only."""
        self.assertEqual(self.check(None, "c", "public/news", READ), ALLOWED)
        self.assertEqual(self.check(None, "c", "anon/in", WRITE), ALLOWED)
        for user in ("alice", "bob", "carol"):
            self.assertEqual(self.check(user, "c", "public/news", READ), NO_OPINION, user)
            self.assertEqual(self.check(user, "c", "anon/in", WRITE), NO_OPINION, user)

    def test_userRules(self) -> None:
        """A user's lines apply to that user only, whatever the client id."""
        self.assertEqual(self.check("alice", "any", "alice/x", WRITE), ALLOWED)
        self.assertEqual(self.check("alice", "bob", "alice/x/y", READ), ALLOWED)
        for user in (None, "bob", "Alice", "alice "):
            self.assertEqual(self.check(user, "alice", "alice/x", READ), NO_OPINION, user)

    def test_patternsApplyToEveryone(self) -> None:
        """Pattern lines apply to all clients with their own identity substituted."""
        for user in (None, "alice", "bob", "carol"):
            self.assertEqual(self.check(user, "dev1", "devices/dev1/status", WRITE), ALLOWED)
            self.assertEqual(self.check(user, "dev1", "devices/dev2/status", WRITE), NO_OPINION)
            self.assertEqual(self.check(user, "dev1", "devices/dev1/status", READ), NO_OPINION)
        self.assertEqual(self.check("carol", "x", "users/carol/a/b", READ), ALLOWED)
        self.assertEqual(self.check("carol", "x", "users/carol", WRITE), ALLOWED)
        self.assertEqual(self.check("carol", "x", "users/alice/a", READ), NO_OPINION)

    def test_userPatternNeedsUserName(self) -> None:
        """A pattern with C{%u} does not apply to a client without a user name."""
        for topic in ("users/%u/x", "users//x", "users/None/x", "users/+/x", "users/x"):
            for access in (READ, WRITE, SUBSCRIBE):
                self.assertEqual(self.check(None, "c", topic, access), NO_OPINION, topic)

    def test_substitutionWholeLevelsOnly(self) -> None:
        """C{%c}/C{%u} are substituted only as whole levels."""
        acl = parseAcl("pattern read pre%c/x\npattern read a/%c%u\n")
        self.assertEqual(acl.check("u", "c", "prec/x", READ), NO_OPINION)
        self.assertEqual(acl.check("u", "c", "pre%c/x", READ), ALLOWED)
        self.assertEqual(acl.check("u", "c", "a/cu", READ), NO_OPINION)

    def test_denyWins(self) -> None:
        """A deny line wins over a wider allowing line, whatever the order."""
        self.assertEqual(self.check("alice", "c", "alice/secret", READ), DENIED)
        self.assertEqual(self.check("alice", "c", "alice/secret", WRITE), DENIED)
        self.assertEqual(self.check("alice", "c", "alice/secret", SUBSCRIBE), DENIED)
        self.assertEqual(self.check("alice", "c", "alice/secret/x", READ), ALLOWED)
        acl = parseAcl("topic deny a/b\ntopic readwrite a/#\n")
        self.assertEqual(acl.check(None, "c", "a/b", WRITE), DENIED)
        acl = parseAcl("topic readwrite a/#\npattern deny a/%c\n")
        self.assertEqual(acl.check(None, "me", "a/me", WRITE), DENIED)
        self.assertEqual(acl.check(None, "me", "a/you", WRITE), ALLOWED)

    def test_denyDoesNotBlockWiderSubscription(self) -> None:
        """A deny line inside a subscription does not refuse it; its messages are refused on delivery."""
        self.assertEqual(self.check("alice", "c", "alice/#", SUBSCRIBE), ALLOWED)
        self.assertEqual(self.check("alice", "c", "alice/+", SUBSCRIBE), ALLOWED)
        self.assertEqual(self.check("alice", "c", "alice/secret", READ), DENIED)
        self.assertEqual(self.check("alice", "c", "alice/other", READ), ALLOWED)

    def test_readIsNotWrite(self) -> None:
        """C{read} grants subscribe and receive, not publish."""
        self.assertEqual(self.check("alice", "c", "shared/x/status", READ), ALLOWED)
        self.assertEqual(self.check("alice", "c", "shared/+/status", SUBSCRIBE), ALLOWED)
        self.assertEqual(self.check("alice", "c", "shared/x/status", WRITE), NO_OPINION)

    def test_writeIsOnlyWrite(self) -> None:
        """C{write} grants publish only."""
        self.assertEqual(self.check("bob", "c", "shared/bob/status", WRITE), ALLOWED)
        self.assertEqual(self.check("bob", "c", "shared/bob/status", READ), NO_OPINION)
        self.assertEqual(self.check("bob", "c", "shared/bob/status", SUBSCRIBE), NO_OPINION)

    def test_receiveUsesMatching(self) -> None:
        """Receiving is allowed for topic names the line's filter matches."""
        self.assertEqual(self.check(None, "c", "public", READ), ALLOWED)  # '#' matches the parent
        self.assertEqual(self.check(None, "c", "public/a/b/c", READ), ALLOWED)
        self.assertEqual(self.check(None, "c", "publicity", READ), NO_OPINION)
        self.assertEqual(self.check(None, "c", "x/public", READ), NO_OPINION)
        self.assertEqual(self.check("alice", "c", "shared/a/b/status", READ), NO_OPINION)

    def test_dollarTopics(self) -> None:
        """Wildcards at the first level do not give access to C{$} topics."""
        acl = parseAcl("topic readwrite #\ntopic read +/x\ntopic read $SYS/broker/#\n")
        self.assertEqual(acl.check(None, "c", "a/b", WRITE), ALLOWED)
        self.assertEqual(acl.check(None, "c", "$SYS/x", READ), NO_OPINION)
        self.assertEqual(acl.check(None, "c", "$SYS/x", WRITE), NO_OPINION)
        self.assertEqual(acl.check(None, "c", "$SYS/#", SUBSCRIBE), NO_OPINION)
        self.assertEqual(acl.check(None, "c", "$SYS/broker/load", READ), ALLOWED)
        self.assertEqual(acl.check(None, "c", "$SYS/broker/#", SUBSCRIBE), ALLOWED)


#: (ACL filter, subscription filter, covered?): is every topic the
#: subscription can receive matched by the ACL filter?
COVERS = [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("a/+", "a/b", True),
    ("a/+", "a/+", True),
    ("a/+", "a/#", False),
    ("a/+", "a/b/c", False),
    ("a/b", "a/+", False),
    ("a/#", "a/#", True),
    ("a/#", "a", True),
    ("a/#", "a/b/c", True),
    ("a/#", "a/+/x", True),
    ("a/#", "a/+", True),
    ("a/#", "+/b", False),
    ("a/#", "#", False),
    ("a/+/#", "a/b", True),
    ("a/+/#", "a/#", False),
    ("a/+/#", "a/+/#", True),
    ("+/+", "+/#", False),
    ("+/#", "+/b", True),
    ("+", "#", False),
    ("+/#", "#", False),  # the same topics, but docs/plugins.md: "+ never covers #"
    ("+", "+", True),
    ("#", "#", True),
    ("#", "a/b/#", True),
    ("#", "+/+", True),
    ("#", "$SYS/x", False),
    ("#", "$SYS/#", False),
    ("+/x", "$SYS/x", False),
    ("+/#", "$SYS/#", False),
    ("$SYS/#", "$SYS/x", True),
    ("$SYS/#", "$SYS/#", True),
    ("$SYS/+", "$SYS/x", True),
    ("$SYS/#", "#", False),
    ("a/+/b", "a//b", True),
    ("a//b", "a/+/b", False),
    ("/#", "/a", True),
    ("/#", "a", False),
]


class CoversTests(SynchronousTestCase):
    """
    L{covers}: a subscription is allowed by a line only if the line covers
    everything the subscription can receive.
    """

    def test_table(self) -> None:
        """The table of ACL filters, subscriptions and answers."""
        wrong = [(a, s, e) for a, s, e in COVERS if covers(a, s) is not e]
        self.assertEqual(wrong, [])

    def test_subscribeUsesCovers(self) -> None:
        """A SUBSCRIBE check agrees with the table."""
        wrong = []
        for aclFilter, subscription, expected in COVERS:
            acl = parseAcl(f"topic read {aclFilter}\n")
            verdict = acl.check(None, "c", subscription, SUBSCRIBE)
            if verdict is not (ALLOWED if expected else NO_OPINION):
                wrong.append((aclFilter, subscription, verdict))
        self.assertEqual(wrong, [])


#: Identities that must never be substituted into a pattern.
DANGEROUS = ["#", "+", "a/b", "x\x00y", "/", "a/#", "+/+", "", "dev/+"]

#: What such clients try to reach.
PROBES = [
    ("dev/other/x", (READ, WRITE)),
    ("dev/a/b", (READ, WRITE)),
    ("dev/a/b/x", (READ, WRITE)),
    ("dev/x", (READ, WRITE)),
    ("dev/#", (SUBSCRIBE,)),
    ("dev/+/x", (SUBSCRIBE,)),
    ("dev/+", (SUBSCRIBE,)),
    ("#", (SUBSCRIBE,)),
    ("users/alice/x", (READ, WRITE)),
    ("users/a/b", (READ, WRITE)),
    ("users/a/b/x", (READ, WRITE)),
    ("users/#", (SUBSCRIBE,)),
    ("users/+/x", (SUBSCRIBE,)),
    ("names/a/b", (READ, WRITE)),
    ("names/x\x00y", (READ, WRITE)),
    ("names/+", (SUBSCRIBE,)),
    ("names/#", (SUBSCRIBE,)),
]


class IdentityInjectionTests(SynchronousTestCase):
    """
    A client id or user name with C{+}, C{#}, C{/} or U+0000 gains nothing
    through pattern lines (AU-07, CVE-2017-7650).
    """

    acl = parseAcl(
        "pattern readwrite dev/%c/#\n"
        "pattern readwrite users/%u/#\n"
        "pattern readwrite names/%u\n"
        "pattern readwrite names/%c\n"
    )

    def test_dangerousIdentities(self) -> None:
        """No dangerous client id or user name is allowed anything by the patterns."""
        leaks = []
        identities = [(c, "safeuser") for c in DANGEROUS] + [("safeclient", u) for u in DANGEROUS]
        identities += [(v, v) for v in DANGEROUS]
        for clientId, username in identities:
            for topic, accesses in PROBES:
                for access in accesses:
                    verdict = self.acl.check(username, clientId, topic, access)
                    if verdict is ALLOWED:
                        leaks.append((clientId, username, topic, access))
        self.assertEqual(leaks, [])

    def test_authorizer(self) -> None:
        """The same holds through the C{aclfile} authorizer."""
        directory = tempfile.mkdtemp(prefix="mqttd-acl-")
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "acl")
        writeFile(path, "pattern readwrite dev/%c/#\npattern readwrite users/%u/#\n")
        authorizer = AclFileAuthorizer(path)
        for value in DANGEROUS:
            for c in (client(value, "safeuser"), client("safeclient", value)):
                self.assertIsNot(authorizer.authorizeSubscribe(c, "dev/#", 1), ALLOW)
                self.assertIsNot(authorizer.authorizeSubscribe(c, "users/#", 1), ALLOW)
                self.assertIsNot(authorizer.authorizePublish(c, "dev/a/b/x", 0, False), ALLOW)
                self.assertIsNot(authorizer.authorizeReceive(c, "users/a/b", 0, False), ALLOW)

    def test_safeIdentitiesStillWork(self) -> None:
        """Ordinary identities get exactly their own topics."""
        self.assertEqual(self.acl.check("alice", "dev1", "dev/dev1/x", WRITE), ALLOWED)
        self.assertEqual(self.acl.check("alice", "dev1", "dev/dev1/#", SUBSCRIBE), ALLOWED)
        self.assertEqual(self.acl.check("alice", "dev1", "dev/dev2/x", WRITE), NO_OPINION)
        self.assertEqual(self.acl.check("alice", "dev1", "dev/+/x", SUBSCRIBE), NO_OPINION)
        self.assertEqual(self.acl.check("alice", "dev1", "users/alice/x", READ), ALLOWED)
        self.assertEqual(self.acl.check("alice", "dev1", "users/bob/x", READ), NO_OPINION)
        self.assertEqual(self.acl.check("a.b-c d", "id", "users/a.b-c d/x", READ), ALLOWED)

    def test_substitute(self) -> None:
        """L{substitute} refuses dangerous or missing identities and fills in safe ones."""
        self.assertEqual(substitute("dev/%c/%u/#", "u", "c"), "dev/c/u/#")
        self.assertIsNone(substitute("users/%u", None, "c"))
        for value in DANGEROUS:
            self.assertIsNone(substitute("dev/%c", "u", value), repr(value))
            self.assertIsNone(substitute("dev/%u", value, "c"), repr(value))
        self.assertEqual(substitute("plain/topic", None, "#"), "plain/topic")

    def test_oneRuleForUnsafeIdentities(self) -> None:
        """
        One public definition of an unsafe identity (C{+}, C{#}, C{/}, NUL,
        or empty), which pattern substitution and the C{x509} checker share.
        """
        self.assertEqual(UNSAFE_IDENTITY_CHARACTERS, frozenset("+#/\x00"))
        self.assertEqual(UNSAFE_IDENTITY_CHARACTERS, DANGEROUS_CHARACTERS)
        for value in DANGEROUS:
            self.assertFalse(isSafeIdentity(value), repr(value))
        for value in ("dev1", "a.b-c d", "jürgen", "$SYS", "%c"):
            self.assertTrue(isSafeIdentity(value), repr(value))


class EmptyAclTests(SynchronousTestCase):
    """
    An empty ACL (or comments only) has no opinion on anything, so the
    authorizer chain denies everything (AU-08, CVE-2018-12550).
    """

    requests = [("a", READ), ("a/b", WRITE), ("#", SUBSCRIBE), ("$SYS/x", READ)]

    def test_noOpinion(self) -> None:
        """Every request to an empty or comment-only ACL is "no opinion"."""
        for text in ("", "\n\n", "# nothing\n  # at all\n\n"):
            acl = parseAcl(text)
            for user in (None, "alice"):
                for topic, access in self.requests:
                    self.assertIs(acl.check(user, "c", topic, access), NO_OPINION, text)

    def test_chainDenies(self) -> None:
        """The chain with only an empty ACL file denies publish, subscribe and receive."""
        for text in ("", "# only a comment\n"):
            directory = tempfile.mkdtemp(prefix="mqttd-acl-")
            self.addCleanup(shutil.rmtree, directory)
            path = os.path.join(directory, "acl")
            writeFile(path, text)
            chain = AuthorizerChain([AclFileAuthorizer(path)], Clock())
            for c in (client("c1"), client("c2", "alice")):
                self.assertIsInstance(chain.publish(c, "a/b", 0, False), Deny)
                self.assertIsInstance(chain.subscribe(c, "#", 0), Deny)
                self.assertIsInstance(chain.subscribe(c, "a", 0), Deny)
                self.assertIsInstance(chain.receive(c, "a", 0, False), Deny)
                self.assertEqual(chain.publish(c, "a/b", 0, False), DENY)

    def test_userOnlyAcl(self) -> None:
        """Clients the file says nothing about are denied by the chain."""
        directory = tempfile.mkdtemp(prefix="mqttd-acl-")
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "acl")
        writeFile(path, "user alice\ntopic a/#\n")
        chain = AuthorizerChain([AclFileAuthorizer(path)], Clock())
        self.assertIs(chain.publish(client("c", "alice"), "a/x", 0, False), True)
        self.assertIsInstance(chain.publish(client("c"), "a/x", 0, False), Deny)
        self.assertIsInstance(chain.publish(client("c", "bob"), "a/x", 0, False), Deny)


class AclFileAuthorizerTests(SynchronousTestCase):
    """
    The C{aclfile} authorizer.
    """

    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="mqttd-acl-")
        self.addCleanup(shutil.rmtree, directory)
        self.path = os.path.join(directory, "acl")
        writeFile(
            self.path, "user alice\ntopic readwrite a/#\ntopic deny a/secret\ntopic read r\n"
        )
        self.authorizer = AclFileAuthorizer(self.path)
        self.alice = client("c1", "alice")

    def countCheckRules(self) -> list[Any]:
        calls: list[Any] = []
        real = mqttd.acl.checkRules

        def counting(*args: Any) -> Verdict:
            calls.append(args)
            return real(*args)

        self.patch(mqttd.acl, "checkRules", counting)
        return calls

    def test_interfaces(self) -> None:
        """The authorizer provides C{IAuthorizer} and C{IReloadable}."""
        verifyObject(IAuthorizer, self.authorizer)
        verifyObject(IReloadable, self.authorizer)

    def test_answers(self) -> None:
        """Answers are the C{ALLOW}, C{DENY}/C{Deny} and C{NEXT} objects."""
        a = self.authorizer
        self.assertIs(a.authorizePublish(self.alice, "a/x", 1, False), ALLOW)
        self.assertIs(a.authorizeSubscribe(self.alice, "a/#", 1), ALLOW)
        self.assertIs(a.authorizeReceive(self.alice, "a/x", 1, True), ALLOW)
        for answer in (
            a.authorizePublish(self.alice, "a/secret", 0, False),
            a.authorizeReceive(self.alice, "a/secret", 0, False),
            a.authorizeSubscribe(self.alice, "a/secret", 0),
        ):
            self.assertIsInstance(answer, Deny)
        self.assertIs(a.authorizePublish(self.alice, "r", 0, False), NEXT)
        self.assertIs(a.authorizeReceive(self.alice, "r", 0, False), ALLOW)
        self.assertIs(a.authorizePublish(self.alice, "b", 0, False), NEXT)
        self.assertIs(a.authorizePublish(client("c1"), "a/x", 0, False), NEXT)

    def test_connect(self) -> None:
        """The ACL file does not restrict who connects."""
        for c in (self.alice, client("c2"), client("#", "nobody")):
            self.assertIs(self.authorizer.authorizeConnect(c), ALLOW)

    def test_cache(self) -> None:
        """A repeated question is answered from the cache; a different one is not."""
        calls = self.countCheckRules()
        self.assertIs(self.authorizer.authorizePublish(self.alice, "a/x", 0, False), ALLOW)
        self.assertEqual(len(calls), 1)
        self.assertIs(self.authorizer.authorizePublish(self.alice, "a/x", 1, True), ALLOW)
        self.assertEqual(len(calls), 1)
        self.authorizer.authorizeReceive(self.alice, "a/x", 0, False)
        self.authorizer.authorizePublish(client("c2", "alice"), "a/x", 0, False)
        self.authorizer.authorizePublish(self.alice, "a/y", 0, False)
        self.assertEqual(len(calls), 4)

    def test_cacheKeepsIdentitiesApart(self) -> None:
        """Cached answers for one client never answer for another."""
        self.assertIs(self.authorizer.authorizePublish(self.alice, "a/x", 0, False), ALLOW)
        self.assertIs(self.authorizer.authorizePublish(client("c1"), "a/x", 0, False), NEXT)
        self.assertIs(self.authorizer.authorizePublish(client("c1", "bob"), "a/x", 0, False), NEXT)

    def test_cacheBounded(self) -> None:
        """Many different questions do not grow the caches past their bound."""
        self.patch(AclFileAuthorizer, "CACHE_SIZE", 50)
        authorizer = AclFileAuthorizer(self.path)
        for i in range(500):
            c = client(f"c{i}", "alice")
            self.assertIs(authorizer.authorizePublish(c, f"a/{i}", 0, False), ALLOW)
        self.assertLessEqual(len(authorizer._answers), 50)
        self.assertLessEqual(len(authorizer._rules), 50)

    def test_reload(self) -> None:
        """C{reload()} applies the new file and clears the caches."""
        self.assertIs(self.authorizer.authorizePublish(self.alice, "a/x", 0, False), ALLOW)
        self.assertIs(self.authorizer.authorizePublish(self.alice, "b/x", 0, False), NEXT)
        writeFile(self.path, "user alice\ntopic deny a/#\ntopic write b/#\n")
        self.assertIs(self.authorizer.authorizePublish(self.alice, "a/x", 0, False), ALLOW)
        calls = self.countCheckRules()
        self.authorizer.reload()
        self.assertIsInstance(self.authorizer.authorizePublish(self.alice, "a/x", 0, False), Deny)
        self.assertIs(self.authorizer.authorizePublish(self.alice, "b/x", 0, False), ALLOW)
        self.assertEqual(len(calls), 2)

    def test_brokenReloadKeepsRules(self) -> None:
        """A damaged, undecodable or missing file on reload raises and the old rules stay (AU-09)."""
        self.assertIs(self.authorizer.authorizePublish(self.alice, "a/x", 0, False), ALLOW)
        for damage in (
            b"user alice\ntopic readwrite a/#/b\n",
            b"user\n",
            b"topic \xff\xfe\n",
            None,
        ):
            if damage is None:
                os.unlink(self.path)
            else:
                with open(self.path, "wb") as f:
                    f.write(damage)
            self.assertRaises(AclFileError, self.authorizer.reload)
            self.assertIs(self.authorizer.authorizePublish(self.alice, "a/x", 0, False), ALLOW)
            self.assertIs(self.authorizer.authorizePublish(self.alice, "a/z/q", 0, False), ALLOW)
            self.assertIsInstance(
                self.authorizer.authorizePublish(self.alice, "a/secret", 0, False), Deny
            )

    def test_brokenFileAtStart(self) -> None:
        """A damaged file cannot be loaded at all, naming the file and line."""
        writeFile(self.path, "topic a\nbogus line\n")
        with self.assertRaises(AclFileError) as caught:
            AclFileAuthorizer(self.path)
        self.assertIn(self.path, str(caught.exception))
        self.assertIn("line 2", str(caught.exception))

    def test_unreadableFile(self) -> None:
        """A missing or non-UTF-8 file: C{PATH: reason}, the path said once."""
        missing = self.path + ".missing"
        with self.assertRaises(AclFileError) as caught:
            readAclFile(missing)
        self.assertEqual(str(caught.exception), f"{missing}: No such file or directory")
        with open(self.path, "wb") as f:
            f.write(b"topic \xff\xfe\n")
        with self.assertRaises(AclFileError) as caught:
            readAclFile(self.path)
        self.assertEqual(str(caught.exception), f"{self.path}: not UTF-8")


class RuleTests(SynchronousTestCase):
    """
    L{Rule}: an access word and a filter, nothing else.
    """

    def test_denyGrantsNothing(self) -> None:
        """A C{deny} line grants no access (so only the deny pass of L{checkRules} sees it)."""
        for access in Access:
            self.assertFalse(Rule("deny", "#").grants(access), access)
        self.assertIs(checkRules([Rule("deny", "a/#")], "a/b", READ), DENIED)
        self.assertIs(checkRules([Rule("deny", "a/#")], "b", READ), NO_OPINION)


# -- a reference implementation from the documentation -----------------------


def referenceMatches(topicFilter: str, topic: str) -> bool:
    """
    MQTT 4.7 matching, recursively: C{+} one level, C{#} the rest (including
    the parent level), wildcards at the first level never match C{$} topics.
    """
    if topic.startswith("$") and topicFilter[:1] in ("+", "#"):
        return False

    def match(f: list[str], t: list[str]) -> bool:
        if not f:
            return not t
        if f[0] == "#":
            return True
        if not t:
            return False
        return (f[0] == "+" or f[0] == t[0]) and match(f[1:], t[1:])

    return match(topicFilter.split("/"), topic.split("/"))


#: Every topic of up to 4 levels over the literals the generated filters use
#: plus fresh ones ("z", "$z"): enough to decide coverage by brute force.
LEVELS = ["a", "b", "$s", "z", "$z"]
UNIVERSE = [
    "/".join(levels) for n in range(1, 5) for levels in itertools.product(LEVELS, repeat=n)
]


@functools.cache
def matchedTopics(topicFilter: str) -> frozenset[str]:
    return frozenset(t for t in UNIVERSE if referenceMatches(topicFilter, t))


def referenceCovers(aclFilter: str, subscription: str) -> bool:
    """
    Every topic the subscription can receive is matched by the ACL filter,
    and (as docs/plugins.md says) a C{+} never covers a C{#}: this matters
    only for C{+/#}, which matches the same topics as C{#}.
    """
    acl, sub = aclFilter.split("/"), subscription.split("/")
    if any(a == "+" and s == "#" for a, s in zip(acl, sub, strict=False)):
        return False
    return matchedTopics(subscription) <= matchedTopics(aclFilter)


DANGEROUS_CHARACTERS = frozenset("+#/\x00")


def referenceCheck(
    rules: list[tuple[str, str, str, str | None]],
    username: str | None,
    clientId: str,
    topic: str,
    access: Access,
) -> Verdict:
    """
    The documented decision: the client's section (anonymous or its user's)
    and the patterns with %c/%u substituted as whole levels (skipped when the
    identity is missing or contains + # / NUL); a matching deny line denies,
    else a matching line granting the access allows, else no opinion.
    """
    concrete = []
    for kind, accessWord, topicFilter, section in rules:
        if kind == "topic":
            if section != username:
                continue
            concrete.append((accessWord, topicFilter))
        else:
            levels = []
            for level in topicFilter.split("/"):
                if level in ("%c", "%u"):
                    value = clientId if level == "%c" else username
                    if not value or DANGEROUS_CHARACTERS & set(value):
                        break
                    level = value
                levels.append(level)
            else:
                concrete.append((accessWord, "/".join(levels)))
    test = referenceCovers if access is SUBSCRIBE else referenceMatches
    granting = {
        READ: ("read", "readwrite"),
        SUBSCRIBE: ("read", "readwrite"),
        WRITE: ("write", "readwrite"),
    }[access]
    if any(a == "deny" and test(f, topic) for a, f in concrete):
        return DENIED
    if any(a in granting and test(f, topic) for a, f in concrete):
        return ALLOWED
    return NO_OPINION


FILTER_LEVEL = st.sampled_from(["a", "b", "$s", "+"])


@st.composite
def filters(draw: Any, identities: bool = False) -> str:
    levelChoices = (
        st.sampled_from(["a", "b", "$s", "+", "%c", "%u"]) if identities else FILTER_LEVEL
    )
    levels = draw(st.lists(levelChoices, min_size=1, max_size=3))
    if draw(st.booleans()) and len(levels) < 3:
        levels.append("#")
    if levels == ["#"] or draw(st.integers(0, 9)) == 0:
        levels = ["#"] if draw(st.booleans()) else levels
    return "/".join(levels)


ACCESS_WORDS = st.sampled_from(["read", "write", "readwrite", "deny", ""])
SECTIONS = st.sampled_from([None, "u", "v"])


@st.composite
def ruleSets(draw: Any) -> list[tuple[str, str, str, str | None]]:
    rules = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 3)) == 0:
            rules.append(("pattern", draw(ACCESS_WORDS), draw(filters(identities=True)), None))
        else:
            rules.append(("topic", draw(ACCESS_WORDS), draw(filters()), draw(SECTIONS)))
    return rules


def aclText(rules: list[tuple[str, str, str, str | None]]) -> str:
    """
    The ACL file for C{rules}: anonymous lines first, then each user's.
    """
    lines = []
    for section in (None, "u", "v"):
        if section is not None:
            lines.append(f"user {section}")
        for kind, access, topicFilter, ruleSection in rules:
            if kind == "topic" and ruleSection == section:
                lines.append(" ".join(w for w in ("topic", access, topicFilter) if w))
    lines += [
        " ".join(w for w in (kind, access, f) if w)
        for kind, access, f, _ in rules
        if kind == "pattern"
    ]
    return "\n".join(lines) + "\n"


def normalized(
    rules: list[tuple[str, str, str, str | None]],
) -> list[tuple[str, str, str, str | None]]:
    return [(k, a or "readwrite", f, s) for k, a, f, s in rules]


TOPIC_LEVEL = st.sampled_from(["a", "b", "$s", "z", "c", "u"])


class ReferenceTests(SynchronousTestCase):
    """
    L{AccessControlList.check} agrees with a reference written from the
    documentation.
    """

    def test_referenceCoversTable(self) -> None:
        """The brute-force reference agrees with the hand-written table (checks the reference)."""
        for aclFilter, subscription, expected in COVERS:
            if set(aclFilter.split("/") + subscription.split("/")) <= set(LEVELS) | {"+", "#"}:
                self.assertEqual(
                    referenceCovers(aclFilter, subscription), expected, (aclFilter, subscription)
                )

    @settings(max_examples=300, deadline=None)
    @given(
        rules=ruleSets(),
        username=st.sampled_from([None, "u", "v", "w", "#", "a/b", ""]),
        clientId=st.sampled_from(["c", "a", "+", "x/y", "$s"]),
        topicLevels=st.lists(TOPIC_LEVEL, min_size=1, max_size=4),
        access=st.sampled_from([READ, WRITE]),
    )
    def test_topicsAgree(
        self,
        rules: Any,
        username: str | None,
        clientId: str,
        topicLevels: list[str],
        access: Access,
    ) -> None:
        """Publish and receive decisions agree with the reference."""
        topic = "/".join(topicLevels)
        acl = parseAcl(aclText(rules))
        self.assertEqual(
            acl.check(username, clientId, topic, access),
            referenceCheck(normalized(rules), username, clientId, topic, access),
            aclText(rules),
        )

    @settings(max_examples=300, deadline=None)
    @given(
        rules=ruleSets(),
        username=st.sampled_from([None, "u", "v", "#"]),
        clientId=st.sampled_from(["a", "b", "+"]),
        subscription=filters(),
    )
    def test_subscriptionsAgree(
        self, rules: Any, username: str | None, clientId: str, subscription: str
    ) -> None:
        """Subscribe decisions agree with the reference (coverage by brute force)."""
        acl = parseAcl(aclText(rules))
        self.assertEqual(
            acl.check(username, clientId, subscription, SUBSCRIBE),
            referenceCheck(normalized(rules), username, clientId, subscription, SUBSCRIBE),
            aclText(rules),
        )

    @settings(max_examples=200, deadline=None)
    @given(aclFilter=filters(), subscription=filters())
    def test_coversAgrees(self, aclFilter: str, subscription: str) -> None:
        """L{covers} agrees with brute-force coverage."""
        self.assertEqual(covers(aclFilter, subscription), referenceCovers(aclFilter, subscription))
