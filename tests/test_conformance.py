"""
The bundled plug-ins pass the conformance suites of mqttd.testing, as any
third-party plug-in should; and the suites cannot be passed vacuously.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from twisted.trial.reporter import TestResult
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from mqttd.acl import AclFileAuthorizer
from mqttd.auth import ALLOW, DENY, NEXT
from mqttd.interfaces import IAuthorizer
from mqttd.passwd import PasswordFileChecker
from mqttd.testing import AuthenticatorConformanceMixin, AuthorizerConformanceMixin

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


class PasswordFileConformanceTests(AuthenticatorConformanceMixin, SynchronousTestCase):
    """
    The passwd plug-in (on the mosquitto_passwd-written fixture).
    """

    validCredentials = [("alice", b"alice-secret"), ("bob", b"b:b 0b"), ("carol", b"carol6")]
    wrongPasswords = [("alice", b"alice-secreT"), ("carol", b"")]
    unknownUsernames = ["zed", "Alice"]

    def makeAuthenticator(self) -> PasswordFileChecker:
        return PasswordFileChecker(os.path.join(DATA, "mosquitto.passwd"), threaded=False)


class AclFileConformanceTests(AuthorizerConformanceMixin, SynchronousTestCase):
    """
    The aclfile plug-in.
    """

    cases = [
        ("alice", "c1", "publish", "alice/x", ALLOW),
        ("alice", "c1", "publish", "bob/x", NEXT),
        ("alice", "c1", "receive", "alice/secret", DENY),
        ("alice", "c1", "subscribe", "alice/#", ALLOW),
        ("alice", "c1", "subscribe", "#", NEXT),
        (None, "anon", "receive", "public/news", ALLOW),
        (None, "anon", "publish", "public/news", NEXT),
        ("bob", "dev7", "publish", "devices/dev7/status", ALLOW),
        ("bob", "a+b", "publish", "devices/a+b/status", NEXT),
    ]

    def makeAuthorizer(self) -> AclFileAuthorizer:
        fd, path = tempfile.mkstemp(suffix=".acl")
        with os.fdopen(fd, "w") as f:
            f.write(
                "topic read public/#\n"
                "user alice\n"
                "topic readwrite alice/#\n"
                "topic deny alice/secret\n"
                "pattern write devices/%c/status\n"
            )
        self.addCleanup(os.unlink, path)
        return AclFileAuthorizer(path)


@implementer(IAuthorizer)
class AlwaysNext:
    """
    An authorizer with no opinion on anything.
    """

    def authorizeConnect(self, client: Any) -> Any:
        return NEXT

    def authorizePublish(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        return NEXT

    def authorizeSubscribe(self, client: Any, topicFilter: str, qos: int) -> Any:
        return NEXT

    def authorizeReceive(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        return NEXT


def runTest(case: SynchronousTestCase) -> TestResult:
    """
    Run one test of a suite (defined inside a test, so that it is not
    collected) and return what happened.
    """
    result = TestResult()
    case.run(result)
    return result


class VacuousPassTests(SynchronousTestCase):
    """
    The conformance mixins fail a plug-in that does not do what its rows
    say, and never pass for want of rows: what every plug-in can provide is
    required, the rest is skipped with a reason.
    """

    def test_alwaysNextAuthorizerFailsThePublishRows(self) -> None:
        """
        An authorizer answering NEXT to everything fails the rows where a
        publish is allowed: nothing after it in the chain allows a publish.
        """

        class Tests(AuthorizerConformanceMixin, SynchronousTestCase):
            cases = AclFileConformanceTests.cases

            def makeAuthorizer(self) -> AlwaysNext:
                return AlwaysNext()

        result = runTest(Tests("test_publishThroughTheBroker"))
        self.assertEqual((len(result.failures), result.errors, result.skips),
                         (1, [], []))
        self.assertIn("alice/x", str(result.failures[0][1].value))

    def test_authorizerWithoutPublishRowsSkips(self) -> None:
        """Without publish rows, the publish test is skipped, saying why."""

        class Tests(AuthorizerConformanceMixin, SynchronousTestCase):
            cases = [row for row in AclFileConformanceTests.cases if row[2] != "publish"]

            def makeAuthorizer(self) -> AlwaysNext:
                return AlwaysNext()

        result = runTest(Tests("test_publishThroughTheBroker"))
        self.assertEqual((result.failures, result.errors), ([], []))
        [(_, reason)] = result.skips
        self.assertIn("no publish rows", reason)

    def test_wrongPasswordsRequired(self) -> None:
        """Without wrongPasswords, the tests that need them fail, saying what to define."""

        class Tests(AuthenticatorConformanceMixin, SynchronousTestCase):
            validCredentials = PasswordFileConformanceTests.validCredentials
            unknownUsernames = PasswordFileConformanceTests.unknownUsernames
            makeAuthenticator = PasswordFileConformanceTests.makeAuthenticator

        for name in ("test_refusesWrongPasswords", "test_connectThroughTheBroker"):
            result = runTest(Tests(name))
            self.assertEqual((len(result.failures), result.errors, result.skips), (1, [], []),
                             name)
            self.assertIn("define wrongPasswords", str(result.failures[0][1].value), name)

    def test_unknownUsernamesOptional(self) -> None:
        """Without unknownUsernames, the test that needs them is skipped, saying why."""

        class Tests(AuthenticatorConformanceMixin, SynchronousTestCase):
            validCredentials = PasswordFileConformanceTests.validCredentials
            wrongPasswords = PasswordFileConformanceTests.wrongPasswords
            makeAuthenticator = PasswordFileConformanceTests.makeAuthenticator

        result = runTest(Tests("test_unknownUsersAreNotHandled"))
        self.assertEqual((result.failures, result.errors), ([], []))
        [(_, reason)] = result.skips
        self.assertIn("unknownUsernames", reason)
