"""
The bundled plug-ins pass the conformance suites of mqttd.testing, as any
third-party plug-in should.
"""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from mqttd.acl import AclFileAuthorizer
from mqttd.auth import ALLOW, DENY, NEXT
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
