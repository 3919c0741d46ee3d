"""
The C{http} authenticator and authorizer (L{mqttd.httpauth}), against a real
C{twisted.web} service on 127.0.0.1 (HTTP and HTTPS, with certificates made
here), an in-memory one (C{treq.testing.StubTreq}) for the conformance
suites, and a real broker process driven by paho-mqtt.

The service's answers come from the request: the first word (up to C{/} or
C{-}) of the topic, or else of the user name, or else of the client id,
names the behaviour (C{allow}, C{deny}, C{ignore}, C{status500},
C{badjson}, C{unknown}, C{notobject}, C{redirect}, C{big}, C{slow}; anything
else is ignored).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable
from typing import Any
from unittest import mock

import paho.mqtt.client as mqtt
from brokerprocess import BrokerProcess
from certs import CertificateAuthority
from clienthelpers import WAIT, PahoClient, tempDirectory, uniqueName
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL
from treq.testing import StubTreq
from twisted.cred.checkers import ANONYMOUS, ICredentialsChecker
from twisted.cred.credentials import IAnonymous, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher
from twisted.plugin import IPlugin
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mqttd.auth import ALLOW, DENY, NEXT, ClientInfo, ConnectAnonymous, ConnectUsernamePassword
from mqttd.auth import Deny as DenyAnswer
from mqttd.httpauth import (
    HTTPAuthorizer,
    HTTPChecker,
    HTTPDecisionService,
)
from mqttd.interfaces import (
    IAuthenticatorFactory,
    IAuthorizer,
    IAuthorizerFactory,
    IReloadable,
)
from mqttd.plugin import AUTH, AUTHORIZER, PluginError, availablePlugins, makePlugin
from mqttd.testing import AuthenticatorConformanceMixin, AuthorizerConformanceMixin

# -- the web service ----------------------------------------------------------------

BEHAVIOURS = {
    "allow", "deny", "ignore", "status500", "badjson", "unknown", "notobject", "redirect",
    "big", "slow",
}


def prefixPolicy(body: dict[str, Any]) -> str:
    """
    The behaviour a request asks for (see the module docstring).
    """
    for field in ("topic", "username", "clientid"):
        value = body.get(field)
        if value:
            word = re.split(r"[/-]", value)[0]
            return word if word in BEHAVIOURS else "ignore"
    return "ignore"


class DecisionResource(Resource):
    """
    A decision service: records every request and answers as its policy
    says.

    @ivar bodies: the JSON bodies received, in order.
    @ivar headers: their request headers.
    """

    isLeaf = True

    def __init__(self, policy: Callable[[dict[str, Any]], str] = prefixPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[Any] = []
        self.paths: list[bytes] = []
        self.peers: list[Any] = []
        self.later: list[Any] = []
        self._lock = threading.Lock()

    def render_POST(self, request: Any) -> Any:
        body = json.loads(request.content.read())
        with self._lock:
            self.bodies.append(body)
            self.headers.append(request.requestHeaders)
            self.paths.append(request.path)
            self.peers.append(request.getClientAddress().port)
        behaviour = self.policy(body)
        request.setHeader(b"content-type", b"application/json")
        if behaviour in ("slow", "later"):
            # "later": the test answers (request.write, request.finish).
            request.notifyFinish().addErrback(lambda failure: None)
            if behaviour == "later":
                self.later.append(request)
            return NOT_DONE_YET
        if behaviour == "status500":
            # A failing service that says "allow" in its body is still a failure.
            request.setResponseCode(500)
            return b'{"result": "allow"}'
        if behaviour == "redirect":
            request.setResponseCode(302)
            request.setHeader(b"location", b"/elsewhere")
            return b'{"result": "allow"}'
        if behaviour == "badjson":
            return b'{"result": "allow"'
        if behaviour == "unknown":
            return b'{"result": "yes"}'
        if behaviour == "notobject":
            return b'["allow"]'
        if behaviour == "big":
            return b'{"result": "allow", "padding": "' + b"x" * 70_000 + b'"}'
        return json.dumps({"result": behaviour}).encode()

    def actions(self) -> list[tuple[Any, ...]]:
        """
        The C{(action, username, topic)} of every request so far.
        """
        with self._lock:
            return [(b["action"], b["username"], b["topic"]) for b in self.bodies]


class _QuietSite(Site):
    noisy = False

    def log(self, request: Any) -> None:
        pass


class _TrackingFactory(WrappingFactory):
    """
    Keeps the server's connections so that the test can close them all.
    """

    noisy = False

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self.lost: dict[Any, Deferred[None]] = {}

    def registerProtocol(self, p: Any) -> None:
        super().registerProtocol(p)
        self.lost[p] = Deferred()

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        d = self.lost.pop(p, None)
        if d is not None:
            d.callback(None)


def startService(case: TestCase, resource: Resource, tls: ServerTLS | None = None,
                 path: str = "/decide") -> str:
    """
    Serve C{resource} on 127.0.0.1 (with TLS if C{tls} is given) until the
    test ends.

    @return: its URL.
    """
    factory = _TrackingFactory(_QuietSite(resource))
    if tls is None:
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        scheme = "http"
    else:
        port = reactor.listenSSL(0, factory, tls, interface="127.0.0.1")
        scheme = "https"

    def stop() -> Deferred[Any]:
        waits = [port.stopListening(), *factory.lost.values()]
        for protocol in list(factory.protocols):
            protocol.transport.abortConnection()
        return gatherResults([d for d in waits if d is not None])

    case.addCleanup(stop)
    return f"{scheme}://127.0.0.1:{port.getHost().port}{path}"


def makeService(case: TestCase, url: str, **kwargs: Any) -> HTTPDecisionService:
    """
    An L{HTTPDecisionService} on the real reactor, closed when the test ends
    (register the web service first: cleanups run last first).
    """
    service = HTTPDecisionService(url, reactor=reactor, **kwargs)
    case.addCleanup(service.close)
    return service


def client(clientId: str = "c1", username: str | None = None) -> ClientInfo:
    return ClientInfo(clientId, username, None, 5, "127.0.0.1:4242")


class LogCapture:
    """
    The C{http: ... failed to decide} events logged while it is installed.
    """

    def __init__(self, case: TestCase) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self)
        case.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict[str, Any]) -> None:
        if "failed to decide" in (event.get("log_format") or ""):
            self.events.append(event)


# -- certificates ---------------------------------------------------------------------

@implementer(IOpenSSLContextFactory)
class ServerTLS:
    """
    The service's TLS context (made from C{cryptography} objects directly,
    which Twisted's C{CertificateOptions} would convert with deprecated
    pyOpenSSL calls).
    """

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.context.use_certificate(certificate)
        self.context.use_privatekey(key)

    def getContext(self) -> SSL.Context:
        return self.context


LOCALHOST_IP = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


def serverTLS(ca: CertificateAuthority, names: list[x509.GeneralName]) -> ServerTLS:
    """
    A TLS context with a new certificate of C{ca} for C{names}.
    """
    issued = ca.server("decision-service", names)
    return ServerTLS(issued.certificate, issued.key)


# -- interfaces and plug-in factories -------------------------------------------------


class InterfaceTests(SynchronousTestCase):
    """
    Everything provides its interfaces; the factories are installed.
    """

    def test_checker(self) -> None:
        checker = HTTPChecker(HTTPDecisionService("http://127.0.0.1:9/x"))
        verifyObject(ICredentialsChecker, checker)
        verifyObject(IReloadable, checker)
        self.assertEqual(set(checker.credentialInterfaces), {IUsernamePassword, IAnonymous})

    def test_authorizer(self) -> None:
        authorizer = HTTPAuthorizer(HTTPDecisionService("http://127.0.0.1:9/x", timeout=2))
        verifyObject(IAuthorizer, authorizer)
        verifyObject(IReloadable, authorizer)
        # The broker's bound is looser than the service's own.
        self.assertGreater(authorizer.timeout, 2)

    def test_factories(self) -> None:
        authenticators = availablePlugins(AUTH)
        authorizers = availablePlugins(AUTHORIZER)
        verifyObject(IPlugin, authenticators["http"])
        verifyObject(IAuthenticatorFactory, authenticators["http"])
        verifyObject(IPlugin, authorizers["http"])
        verifyObject(IAuthorizerFactory, authorizers["http"])

    def test_makingDoesNotImportTheReactor(self) -> None:
        """
        Making the plug-ins connects nothing and builds no HTTP client yet.
        """
        authorizer = makePlugin(AUTHORIZER, "http:url=http\\://127.0.0.1\\:9/x")
        self.assertIsNone(authorizer.service._http)
        self.assertIsNone(authorizer.service._pool)


class ArgumentTests(SynchronousTestCase):
    """
    The C{--auth http:...} and C{--authorizer http:...} arguments.
    """

    def test_escapedURL(self) -> None:
        checker = makePlugin(AUTH, "http:url=https\\://auth.example\\:8443/mqtt?x=1")
        self.assertIsInstance(checker, HTTPChecker)
        self.assertEqual(checker.service.url, "https://auth.example:8443/mqtt?x=1")

    def test_unescapedURL(self) -> None:
        """
        An URL without '=' may keep its colons; other arguments may follow.
        """
        authorizer = makePlugin(
            AUTHORIZER, "http:url=http://127.0.0.1:8080/authz:timeout=2:receive=next"
        )
        self.assertIsInstance(authorizer, HTTPAuthorizer)
        self.assertEqual(authorizer.service.url, "http://127.0.0.1:8080/authz")
        self.assertEqual(authorizer.service.timeout, 2)
        self.assertEqual(authorizer.receive, "next")
        checker = makePlugin(AUTH, "http:url=http://auth.example/check")
        self.assertEqual(checker.service.url, "http://auth.example/check")

    def test_unescapedURLWithEquals(self) -> None:
        """
        An unescaped URL with '=' cannot be told from arguments: an error.
        """
        error = self.assertRaises(
            PluginError, makePlugin, AUTH, "http:url=http://h:8080/a?x=1"
        )
        self.assertIn("unknown argument", str(error))

    def test_options(self) -> None:
        directory = tempDirectory(self)
        token = os.path.join(directory, "token")
        with open(token, "w") as f:
            f.write("s3cret-token\n")
        checker = makePlugin(
            AUTH,
            "http:url=http\\://h/a:timeout=0.5:cache-ttl=0:cache-size=7:connections=3"
            ":bearer-file=token:header=X-Api-Key=k=1",
            directory,
        )
        service = checker.service
        self.assertEqual(service.timeout, 0.5)
        self.assertEqual(service.cache.ttl, 0)
        self.assertEqual(service.cache.size, 7)
        self.assertFalse(service.cache.enabled)
        self.assertEqual(service.connections, 3)
        self.assertEqual(service._headers[b"Authorization"], [b"Bearer s3cret-token"])
        self.assertEqual(service._headers[b"X-Api-Key"], [b"k=1"])

    def test_errors(self) -> None:
        directory = tempDirectory(self)
        empty = os.path.join(directory, "empty")
        open(empty, "w").close()
        cases = [
            ("http", "missing argument url"),
            ("http:url=ftp\\://h/x", "http:// or https://"),
            ("http:url=http\\://h/x:cafile=" + empty, "cafile= needs an https"),
            ("http:url=https\\://h/x:cafile=" + empty, "no PEM certificate"),
            ("http:url=https\\://h/x:cafile=/nonexistent/ca.pem", "No such file"),
            ("http:url=http\\://h/x:bearer-file=" + empty, "token file is empty"),
            ("http:url=http\\://h/x:timeout=0", "timeout must be more than 0"),
            ("http:url=http\\://h/x:timeout=soon", "timeout must be a number"),
            ("http:url=http\\://h/x:cache-size=2.5", "cache-size must be a whole number"),
            ("http:url=http\\://h/x:connections=0", "connections must be at least 1"),
            ("http:url=http\\://h/x:header=X", "header must be NAME=VALUE"),
            ("http:url=http\\://h/x:header=Bad Name=v", "bad header field"),
            ("http:url=http\\://h/x:receive=ask", "unknown argument 'receive'"),
            ("http:url=http\\://h/x:bogus=1", "unknown argument 'bogus'"),
        ]
        for spec, expected in cases:
            error = self.assertRaises(PluginError, makePlugin, AUTH, spec)
            self.assertIn(expected, str(error), spec)
            self.assertTrue(str(error).startswith("--auth http: "), str(error))
        error = self.assertRaises(
            PluginError, makePlugin, AUTHORIZER, "http:url=http\\://h/x:receive=sometimes"
        )
        self.assertIn("receive must be ask, allow or next", str(error))

    def test_badPort(self) -> None:
        """A URL whose port is not 1 to 65535, escaped or not, is a one-line error."""
        for url in ("http\\://127.0.0.1\\:99999/a", "http://127.0.0.1:99999/a",
                    "https\\://h\\:0/a", "http\\://h\\:8o/a", "http://[::1]:65536/a"):
            error = self.assertRaises(PluginError, makePlugin, AUTH, f"http:url={url}")
            self.assertTrue(str(error).startswith("--auth http: url has a bad port"), str(error))
            self.assertNotIn("\n", str(error))
        checker = makePlugin(AUTH, "http:url=http://127.0.0.1:65535/a")
        self.assertEqual(checker.service.url, "http://127.0.0.1:65535/a")

    def test_urlComeApart(self) -> None:
        """
        A URL split at its colons that cannot be joined back: the error says
        to escape them.
        """
        for spec in ("http:url=http", "http:url=https:/h/a", "http:url=http:h:80/a",
                     "http:url=http://h:8080/a?x=1"):
            error = self.assertRaises(PluginError, makePlugin, AUTH, spec)
            self.assertIn("escape the URL's colons as \\:", str(error), spec)
            self.assertTrue(str(error).startswith("--auth http: "), str(error))
        # An argument that is not part of the URL gets no such hint.
        error = self.assertRaises(PluginError, makePlugin, AUTH, "http:url=http\\://h/x:bogus=1")
        self.assertNotIn("escape", str(error))

    def test_fileErrorsNameArgumentAndFile(self) -> None:
        """Unreadable cafile and bearer-file: C{--auth http: ARGUMENT PATH: reason}."""
        directory = tempDirectory(self)
        missing = os.path.join(directory, "missing")
        token = os.path.join(directory, "token")
        with open(token, "wb") as f:
            f.write(b"s\xe9cret\n")
        for spec, expected in (
            ("http:url=https\\://h/x:cafile=" + missing,
             f"--auth http: cafile {missing}: No such file or directory"),
            ("http:url=https\\://h/x:cafile=" + directory,
             f"--auth http: cafile {directory}: Is a directory"),
            ("http:url=https\\://h/x:bearer-file=" + missing,
             f"--auth http: bearer-file {missing}: No such file or directory"),
            ("http:url=https\\://h/x:bearer-file=" + token,
             f"--auth http: bearer-file {token}: not UTF-8"),
        ):
            error = self.assertRaises(PluginError, makePlugin, AUTH, spec)
            self.assertEqual(str(error), expected)

    def test_treqMissing(self) -> None:
        with mock.patch.dict(sys.modules, {"treq": None}):
            for kind in (AUTH, AUTHORIZER):
                error = self.assertRaises(PluginError, makePlugin, kind, "http:url=http\\://h/x")
                self.assertEqual(
                    str(error), f"--{kind.option} http: needs treq: pip install 'txmqttd[http]'"
                )


# -- conformance (in-memory service) ----------------------------------------------------


def stubService(resource: DecisionResource, **kwargs: Any) -> HTTPDecisionService:
    """
    A service answering in memory, synchronously (C{StubTreq}).
    """
    return HTTPDecisionService(
        "http://decisions.example/decide", clock=Clock(), httpClient=StubTreq(resource),
        **kwargs,
    )


class CheckerConformanceTests(AuthenticatorConformanceMixin, SynchronousTestCase):
    validCredentials = [("allow-alice", b"secret"), ("allow-bob", b"\xff\xfe")]
    wrongPasswords = [("deny-mallory", b"secret")]
    unknownUsernames = ["ignore-carol", "someone"]

    def makeAuthenticator(self) -> HTTPChecker:
        return HTTPChecker(stubService(DecisionResource()))


class AuthorizerConformanceTests(AuthorizerConformanceMixin, SynchronousTestCase):
    cases = [
        ("u", "c1", "publish", "allow/x", ALLOW),
        ("u", "c1", "publish", "deny/x", DENY),
        ("u", "c1", "publish", "ignore/x", NEXT),
        ("u", "c1", "subscribe", "allow/#", ALLOW),
        ("u", "c1", "subscribe", "deny/#", DENY),
        (None, "c2", "receive", "allow/y", ALLOW),
        (None, "c2", "receive", "deny/y", DENY),
        (None, "c2", "receive", "other/y", NEXT),
        ("u", "c1", "publish", "status500/x", DENY),
    ]

    def makeAuthorizer(self) -> HTTPAuthorizer:
        return HTTPAuthorizer(stubService(DecisionResource()))


class InMemoryTests(SynchronousTestCase):
    """
    Details that need no sockets: the JSON body, headers, the cache and its
    bounds, coalescing.
    """

    def test_bodies(self) -> None:
        """
        Every request has all seven fields, null where they do not apply.
        """
        resource = DecisionResource()
        service = stubService(resource, cacheTTL=0)
        checker = HTTPChecker(service)
        authorizer = HTTPAuthorizer(service)
        self.successResultOf(checker.requestAvatarId(
            ConnectUsernamePassword(b"allow-alice", "pässword".encode(), "dev7")))
        self.successResultOf(checker.requestAvatarId(ConnectAnonymous("allow-anon")))
        info = client("dev7", "alice")
        self.successResultOf(authorizer.authorizeConnect(info))
        self.successResultOf(authorizer.authorizePublish(info, "a/b", 1, True))
        self.successResultOf(authorizer.authorizeSubscribe(info, "a/#", 2))
        self.successResultOf(authorizer.authorizeReceive(info, "a/c", 0, False))
        base = {"clientid": "dev7", "username": "alice", "password": None,
                "topic": None, "qos": None, "retain": None}
        self.assertEqual(resource.bodies, [
            dict(base, action="authenticate", username="allow-alice", password="pässword"),
            dict(base, action="authenticate", clientid="allow-anon", username=None),
            dict(base, action="connect"),
            dict(base, action="publish", topic="a/b", qos=1, retain=True),
            dict(base, action="subscribe", topic="a/#", qos=2),
            dict(base, action="receive", topic="a/c", qos=0, retain=False),
        ])
        headers = resource.headers[0]
        self.assertIn(b"application/json", headers.getRawHeaders(b"content-type")[0])
        self.assertEqual(headers.getRawHeaders(b"accept"), [b"application/json"])

    def test_binaryPassword(self) -> None:
        """
        A password that is not UTF-8 is sent in base64, and says so.
        """
        resource = DecisionResource()
        checker = HTTPChecker(stubService(resource))
        avatar = self.successResultOf(checker.requestAvatarId(
            ConnectUsernamePassword(b"allow-alice", b"\x00\xff\xc3", "c")))
        self.assertEqual(avatar, b"allow-alice")
        [body] = resource.bodies
        self.assertEqual(body["password"], base64.b64encode(b"\x00\xff\xc3").decode())
        self.assertIs(body["password_base64"], True)

    def test_nonUTF8UserName(self) -> None:
        """
        A user name that is not UTF-8 is refused without asking.
        """
        resource = DecisionResource()
        checker = HTTPChecker(stubService(resource))
        self.failureResultOf(checker.requestAvatarId(
            ConnectUsernamePassword(b"allow-\xff", b"x", "c")), UnauthorizedLogin)
        self.assertEqual(resource.bodies, [])

    def test_headers(self) -> None:
        directory = tempDirectory(self)
        token = os.path.join(directory, "token")
        with open(token, "w") as f:
            f.write("first\n")
        resource = DecisionResource()
        service = stubService(resource, bearerFile=token, headers={"X-Api-Key": "k1"})
        authorizer = HTTPAuthorizer(service)
        self.successResultOf(authorizer.authorizeConnect(client("allow")))
        headers = resource.headers[-1]
        self.assertEqual(headers.getRawHeaders(b"authorization"), [b"Bearer first"])
        self.assertEqual(headers.getRawHeaders(b"x-api-key"), [b"k1"])
        # SIGHUP re-reads the token and forgets cached answers.
        with open(token, "w") as f:
            f.write("second")
        authorizer.reload()
        self.successResultOf(authorizer.authorizeConnect(client("allow")))
        self.assertEqual(len(resource.bodies), 2)
        self.assertEqual(resource.headers[-1].getRawHeaders(b"authorization"), [b"Bearer second"])
        # A reload that fails keeps the old token.
        os.unlink(token)
        self.assertRaises(OSError, authorizer.reload)
        self.assertEqual(service._headers[b"Authorization"], [b"Bearer second"])

    def test_cacheHit(self) -> None:
        """
        A cached answer is a plain value (no Deferred): the fast path.
        """
        resource = DecisionResource()
        authorizer = HTTPAuthorizer(stubService(resource))
        info = client("c1", "u")
        first = authorizer.authorizeReceive(info, "allow/x", 1, False)
        self.assertIs(self.successResultOf(first), ALLOW)
        self.assertIs(authorizer.authorizeReceive(info, "allow/x", 1, False), ALLOW)
        self.assertIsInstance(authorizer.authorizeReceive(info, "deny/x", 1, False), Deferred)
        self.assertIsInstance(authorizer.authorizeReceive(info, "deny/x", 1, False), DenyAnswer)
        self.assertIsInstance(authorizer.authorizeReceive(info, "ignore/x", 1, False), Deferred)
        self.assertIs(authorizer.authorizeReceive(info, "ignore/x", 1, False), NEXT)
        # Any other field makes another question.
        self.successResultOf(authorizer.authorizeReceive(info, "allow/x", 2, False))
        self.successResultOf(authorizer.authorizeReceive(info, "allow/x", 1, True))
        self.successResultOf(authorizer.authorizeReceive(client("c2", "u"), "allow/x", 1, False))
        self.successResultOf(authorizer.authorizeReceive(client("c1", "v"), "allow/x", 1, False))
        self.successResultOf(authorizer.authorizePublish(info, "allow/x", 1, False))
        self.assertEqual(len(resource.bodies), 8)

    def test_cacheTTL(self) -> None:
        resource = DecisionResource()
        service = stubService(resource, cacheTTL=10)
        authorizer = HTTPAuthorizer(service)
        info = client("c1", "u")
        self.successResultOf(authorizer.authorizePublish(info, "allow/x", 0, False))
        service.clock.advance(9.9)  # type: ignore[attr-defined]
        self.assertIs(authorizer.authorizePublish(info, "allow/x", 0, False), ALLOW)
        service.clock.advance(0.1)  # type: ignore[attr-defined]
        answer = authorizer.authorizePublish(info, "allow/x", 0, False)
        self.assertIs(self.successResultOf(answer), ALLOW)
        self.assertEqual(len(resource.bodies), 2)

    def test_cacheOff(self) -> None:
        for kwargs in ({"cacheTTL": 0}, {"cacheSize": 0}):
            resource = DecisionResource()
            service = stubService(resource, **kwargs)
            authorizer = HTTPAuthorizer(service)
            for _ in range(3):
                self.successResultOf(authorizer.authorizeConnect(client("allow")))
            self.assertEqual(len(resource.bodies), 3)
            self.assertEqual(len(service.cache), 0)

    def test_cacheSize(self) -> None:
        """
        The least recently used answer goes first.
        """
        resource = DecisionResource()
        service = stubService(resource, cacheSize=2)
        authorizer = HTTPAuthorizer(service)
        info = client()
        for topic in ("allow/1", "allow/2", "allow/1", "allow/3"):
            answer = authorizer.authorizePublish(info, topic, 0, False)
            if isinstance(answer, Deferred):
                self.successResultOf(answer)
        self.assertEqual(len(service.cache), 2)
        self.assertIs(authorizer.authorizePublish(info, "allow/1", 0, False), ALLOW)
        self.assertIsInstance(authorizer.authorizePublish(info, "allow/2", 0, False), Deferred)
        self.assertEqual(len(resource.bodies), 4)

    def test_failuresAreNotCached(self) -> None:
        for behaviour in ("status500", "badjson", "unknown", "notobject", "redirect", "big"):
            resource = DecisionResource()
            service = stubService(resource)
            authorizer = HTTPAuthorizer(service)
            checker = HTTPChecker(service)
            for _ in range(2):
                answer = self.successResultOf(
                    authorizer.authorizePublish(client(), behaviour + "/x", 0, False))
                self.assertIsInstance(answer, DenyAnswer, behaviour)
                self.failureResultOf(checker.requestAvatarId(
                    ConnectUsernamePassword(behaviour.encode(), b"pw", "c")), UnauthorizedLogin)
            self.assertEqual(len(resource.bodies), 4, behaviour)
            self.assertEqual(len(service.cache), 0, behaviour)

    def test_passwordNotStored(self) -> None:
        """
        The cache keeps a keyed hash of the password, never the password
        (nor its plain hash); another password is another question.
        """
        resource = DecisionResource()
        service = stubService(resource)
        checker = HTTPChecker(service)
        password = b"correct horse battery staple"
        for _ in range(2):
            self.successResultOf(checker.requestAvatarId(
                ConnectUsernamePassword(b"allow-alice", password, "c")))
        self.assertEqual(len(resource.bodies), 1)
        self.successResultOf(checker.requestAvatarId(
            ConnectUsernamePassword(b"allow-alice", password + b"!", "c")))
        self.assertEqual(len(resource.bodies), 2)
        stored = repr(service.cache.items()).encode() + repr(service._pending).encode()
        for secret in (password, hashlib.sha256(password).digest(),
                       hashlib.sha256(password).hexdigest().encode()):
            self.assertNotIn(secret, stored)
            for key, _ in service.cache.items():
                self.assertNotIn(secret, key)

    def test_pendingQuestionsShared(self) -> None:
        """
        Identical questions asked while one is pending make one request;
        the others are still asked.
        """
        resource = DecisionResource(lambda body: "slow" if body["topic"] else "allow")
        service = stubService(resource, timeout=3)
        authorizer = HTTPAuthorizer(service)
        first = authorizer.authorizeReceive(client(), "t", 1, False)
        second = authorizer.authorizeReceive(client(), "t", 1, False)
        self.assertNoResult(first)
        self.assertNoResult(second)
        self.assertEqual(len(resource.bodies), 1)
        # Other questions are answered meanwhile.
        self.assertIs(self.successResultOf(authorizer.authorizeConnect(client())), ALLOW)
        service.clock.advance(3)  # type: ignore[attr-defined]
        self.assertIsInstance(self.successResultOf(first), DenyAnswer)
        self.assertIsInstance(self.successResultOf(second), DenyAnswer)
        # The timeout is not cached.
        third = authorizer.authorizeReceive(client(), "t", 1, False)
        self.assertNoResult(third)
        self.assertEqual(len(resource.bodies), 3)
        service.clock.advance(3)  # type: ignore[attr-defined]
        self.successResultOf(third)

    def test_reloadWhilePending(self) -> None:
        """
        An answer to a question asked before a reload is not cached.
        """
        resource = DecisionResource(lambda body: "later")
        stub = StubTreq(resource)
        service = HTTPDecisionService("http://decisions.example/", clock=Clock(),
                                      httpClient=stub)
        authorizer = HTTPAuthorizer(service)
        answer = authorizer.authorizeConnect(client())
        self.assertNoResult(answer)
        authorizer.reload()
        [request] = resource.later
        request.write(b'{"result": "allow"}')
        request.finish()
        stub.flush()
        self.assertIs(self.successResultOf(answer), ALLOW)
        self.assertEqual(len(service.cache), 0)

    def test_receiveOption(self) -> None:
        resource = DecisionResource()
        for receive, expected in (("allow", ALLOW), ("next", NEXT)):
            authorizer = HTTPAuthorizer(stubService(resource), receive)
            self.assertIs(authorizer.authorizeReceive(client(), "deny/x", 0, False), expected)
        self.assertEqual(resource.bodies, [])


# -- a real web service ---------------------------------------------------------------------


class HTTPServiceTests(TestCase):
    """
    The plug-ins against a C{twisted.web} service on 127.0.0.1.
    """

    timeout = 20

    def setUp(self) -> None:
        self.resource = DecisionResource()
        self.url = startService(self, self.resource)
        self.logged = LogCapture(self)

    @inlineCallbacks
    def test_checker(self) -> Any:
        service = makeService(self, self.url)
        checker = HTTPChecker(service)
        avatar = yield checker.requestAvatarId(
            ConnectUsernamePassword(b"allow-alice", b"pw", "c1"))
        self.assertEqual(avatar, b"allow-alice")
        avatar = yield checker.requestAvatarId(ConnectAnonymous("allow-device"))
        self.assertIs(avatar, ANONYMOUS)
        yield self.assertFailure(checker.requestAvatarId(
            ConnectUsernamePassword(b"deny-mallory", b"pw", "c1")), UnauthorizedLogin)
        yield self.assertFailure(checker.requestAvatarId(
            ConnectUsernamePassword(b"ignore-carol", b"pw", "c1")), UnhandledCredentials)
        yield self.assertFailure(checker.requestAvatarId(
            ConnectAnonymous("deny-device")), UnauthorizedLogin)
        yield self.assertFailure(checker.requestAvatarId(
            ConnectAnonymous("ignore-device")), UnhandledCredentials)
        self.assertEqual(len(self.resource.bodies), 6)
        self.assertEqual(self.resource.paths, [b"/decide"] * 6)
        self.assertEqual(self.logged.events, [])

    @inlineCallbacks
    def test_authorizer(self) -> Any:
        authorizer = HTTPAuthorizer(makeService(self, self.url))
        info = client("c1", "u")
        self.assertIs((yield authorizer.authorizeConnect(client("allow-c"))), ALLOW)
        self.assertIsInstance((yield authorizer.authorizeConnect(client("deny-c"))), DenyAnswer)
        self.assertIs((yield authorizer.authorizeConnect(client("ignore-c"))), NEXT)
        self.assertIs((yield authorizer.authorizePublish(info, "allow/x", 1, False)), ALLOW)
        answer = yield authorizer.authorizePublish(info, "deny/x", 1, False)
        self.assertEqual(answer, DenyAnswer(0x87, "not authorized"))
        self.assertIs((yield authorizer.authorizeSubscribe(info, "ignore/#", 1)), NEXT)
        self.assertIs((yield authorizer.authorizeReceive(info, "allow/y", 0, True)), ALLOW)
        self.assertEqual(self.logged.events, [])

    @inlineCallbacks
    def test_failuresFailClosed(self) -> Any:
        """
        Another status, a redirect, bad or unknown answers, and a service
        that is not there deny, each logged once, never cached.
        """
        service = makeService(self, self.url)
        authorizer = HTTPAuthorizer(service)
        checker = HTTPChecker(service)
        behaviours = ["status500", "redirect", "badjson", "unknown", "notobject", "big"]
        for behaviour in behaviours:
            answer = yield authorizer.authorizePublish(client(), behaviour + "/x", 0, False)
            self.assertIsInstance(answer, DenyAnswer, behaviour)
            self.assertIn("failed", answer.reason)
            yield self.assertFailure(checker.requestAvatarId(
                ConnectUsernamePassword(behaviour.encode(), b"pw", "c")), UnauthorizedLogin)
        self.assertEqual(len(self.resource.bodies), 2 * len(behaviours))
        self.assertEqual(len(self.logged.events), 2 * len(behaviours))
        self.assertEqual(len(service.cache), 0)
        whys = [event["why"] for event in self.logged.events]
        self.assertIn("answered status 500", whys)
        self.assertIn("answered status 302", whys)
        self.assertIn("the answer is not JSON", whys)
        self.assertIn("unknown result 'yes'", whys)
        self.assertIn("answer longer than 65536 bytes", whys)
        # The service is still fine for the next question.
        self.assertIs((yield authorizer.authorizeConnect(client("allow-c"))), ALLOW)

    @inlineCallbacks
    def test_connectionRefused(self) -> Any:
        # A port that was free a moment ago: nothing listens there.
        from clienthelpers import freePort

        service = makeService(self, f"http://127.0.0.1:{freePort()}/x")
        answer = yield HTTPAuthorizer(service).authorizeConnect(client("allow"))
        self.assertIsInstance(answer, DenyAnswer)
        [event] = self.logged.events
        self.assertIn("ConnectionRefused", event["why"])

    @inlineCallbacks
    def test_timeout(self) -> Any:
        """
        A service that does not answer within the timeout (0.2 s, real
        reactor) denies; the request is not cached.
        """
        service = makeService(self, self.url, timeout=0.2)
        authorizer = HTTPAuthorizer(service)
        checker = HTTPChecker(service)
        answer = yield authorizer.authorizeSubscribe(client(), "slow/#", 0)
        self.assertEqual(answer.reason, "not authorized (authorization service failed)")
        yield self.assertFailure(checker.requestAvatarId(
            ConnectUsernamePassword(b"slow-user", b"pw", "c")), UnauthorizedLogin)
        self.assertEqual(len(self.logged.events), 2)
        self.assertEqual(self.logged.events[0]["why"], "no answer within 0.2 s")
        self.assertEqual(len(service.cache), 0)
        # Still usable.
        self.assertIs((yield authorizer.authorizeConnect(client("allow-c"))), ALLOW)

    @inlineCallbacks
    def test_othersServedWhileOnePends(self) -> Any:
        """
        While one question waits for a slow answer, others are answered.
        """
        clock = Clock()
        service = makeService(self, self.url, timeout=5, clock=clock)
        authorizer = HTTPAuthorizer(service)
        slow = authorizer.authorizePublish(client(), "slow/x", 1, False)
        slowToo = authorizer.authorizePublish(client(), "slow/x", 1, False)
        for n in range(3):
            answer = yield authorizer.authorizePublish(client(), f"allow/{n}", 1, False)
            self.assertIs(answer, ALLOW)
        self.assertNoResult(slow)
        clock.advance(5)
        self.assertIsInstance((yield slow), DenyAnswer)
        self.assertIsInstance((yield slowToo), DenyAnswer)
        # One request for the two identical questions; one log line.
        self.assertEqual(self.resource.actions().count(("publish", None, "slow/x")), 1)
        self.assertEqual(len(self.logged.events), 1)

    @inlineCallbacks
    def test_connectionsLimit(self) -> Any:
        """
        With connections=1 a second question waits for the first to end
        (here: its timeout), then is asked.
        """
        clock = Clock()
        service = makeService(self, self.url, timeout=5, clock=clock, connections=1)
        authorizer = HTTPAuthorizer(service)
        slow = authorizer.authorizePublish(client(), "slow/x", 1, False)
        clock.advance(3)
        waiting = authorizer.authorizePublish(client(), "allow/x", 1, False)
        yield deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(self.resource.actions(), [("publish", None, "slow/x")])
        self.assertNoResult(waiting)
        clock.advance(2)
        self.assertIsInstance((yield slow), DenyAnswer)
        self.assertIs((yield waiting), ALLOW)
        self.assertEqual(len(self.resource.bodies), 2)

    @inlineCallbacks
    def test_cache(self) -> Any:
        """
        Two identical checks make one request; after the TTL, another.
        """
        clock = Clock()
        service = makeService(self, self.url, cacheTTL=30, clock=clock)
        checker = HTTPChecker(service)
        authorizer = HTTPAuthorizer(service)
        credentials = ConnectUsernamePassword(b"allow-alice", b"pw", "c1")
        for _ in range(2):
            self.assertEqual((yield checker.requestAvatarId(credentials)), b"allow-alice")
            yield self.assertFailure(checker.requestAvatarId(
                ConnectUsernamePassword(b"deny-mallory", b"pw", "c1")), UnauthorizedLogin)
            self.assertIs((yield authorizer.authorizeSubscribe(client(), "allow/#", 1)), ALLOW)
        self.assertEqual(len(self.resource.bodies), 3)
        self.assertEqual(service.cache.hits, 3)
        clock.advance(30)
        self.assertEqual((yield checker.requestAvatarId(credentials)), b"allow-alice")
        self.assertEqual(len(self.resource.bodies), 4)

    @inlineCallbacks
    def test_persistentConnections(self) -> Any:
        """
        Requests reuse the pool's connections.
        """
        service = makeService(self, self.url, cacheTTL=0)
        authorizer = HTTPAuthorizer(service)
        for _ in range(5):
            self.assertIs((yield authorizer.authorizeConnect(client("allow-c"))), ALLOW)
        self.assertEqual(len(set(self.resource.peers)), 1)
        assert service._pool is not None
        self.assertEqual(sum(len(c) for c in service._pool._connections.values()), 1)


class HTTPSTests(TestCase):
    """
    C{https://} services: verified against a CA file, by host name.
    """

    timeout = 20

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.ca = CertificateAuthority(self.directory, "decision CA")
        self.cafile = shutil.copyfile(self.ca.certPath, os.path.join(self.directory, "ca.pem"))
        self.otherCA = CertificateAuthority(self.directory, "another CA")
        self.resource = DecisionResource()
        self.logged = LogCapture(self)

    @inlineCallbacks
    def test_trustedCA(self) -> Any:
        url = startService(self, self.resource, serverTLS(self.ca, LOCALHOST_IP))
        self.assertTrue(url.startswith("https://127.0.0.1:"))
        checker = makePlugin(AUTH, "http:url=" + url + ":cafile=ca.pem", self.directory)
        self.addCleanup(checker.close)
        avatar = yield checker.requestAvatarId(ConnectUsernamePassword(b"allow-a", b"pw", "c"))
        self.assertEqual(avatar, b"allow-a")
        yield self.assertFailure(checker.requestAvatarId(
            ConnectUsernamePassword(b"deny-a", b"pw", "c")), UnauthorizedLogin)
        self.assertEqual(len(self.resource.bodies), 2)
        self.assertEqual(self.logged.events, [])

    @inlineCallbacks
    def _refused(self, server: ServerTLS, cafile: str | None) -> Any:
        url = startService(self, self.resource, server)
        service = makeService(self, url, cafile=cafile)
        answer = yield HTTPAuthorizer(service).authorizeConnect(client("allow"))
        self.assertIsInstance(answer, DenyAnswer)
        yield self.assertFailure(HTTPChecker(service).requestAvatarId(
            ConnectAnonymous("allow")), UnauthorizedLogin)
        # The TLS handshake failed: the service saw nothing.
        self.assertEqual(self.resource.bodies, [])
        self.assertEqual(len(self.logged.events), 2)

    def test_wrongHostName(self) -> Any:
        """
        A certificate of the trusted CA for another name is refused.
        """
        return self._refused(serverTLS(self.ca, [x509.DNSName("other.example")]), self.cafile)

    def test_untrustedCA(self) -> Any:
        """
        A certificate for 127.0.0.1 from a CA not in the CA file is refused.
        """
        return self._refused(serverTLS(self.otherCA, LOCALHOST_IP), self.cafile)

    def test_systemTrustStore(self) -> Any:
        """
        Without a CA file the system's trust store decides: a private CA is
        not in it.
        """
        return self._refused(serverTLS(self.ca, LOCALHOST_IP), None)

    def test_reloadReadsTheCAFile(self) -> Any:
        """
        SIGHUP re-reads the CA file; new connections use it.
        """
        url = startService(self, self.resource, serverTLS(self.otherCA, LOCALHOST_IP))
        service = makeService(self, url, cafile=self.cafile)
        authorizer = HTTPAuthorizer(service)

        @inlineCallbacks
        def run() -> Any:
            answer = yield authorizer.authorizeConnect(client("allow"))
            self.assertIsInstance(answer, DenyAnswer)
            shutil.copyfile(self.otherCA.certPath, self.cafile)
            authorizer.reload()
            self.assertIs((yield authorizer.authorizeConnect(client("allow"))), ALLOW)

        return run()


# -- end to end: a broker process, paho-mqtt, the web service --------------------------------


def brokerPolicy(body: dict[str, Any]) -> str:
    """
    alice (password "right") may connect, publish and subscribe under
    alice/, and receive all of it but alice/hidden; mallory is refused;
    nobody else is known.
    """
    action, user, topic = body["action"], body["username"], body["topic"]
    if action == "authenticate":
        if user == "alice":
            return "allow" if body["password"] == "right" else "deny"
        return "deny" if user == "mallory" else "ignore"
    if user != "alice":
        return "deny"
    if action == "connect":
        return "allow"
    if topic.startswith("secret/"):
        return "deny"
    if action == "receive" and topic == "alice/hidden":
        return "deny"
    return "allow" if topic.startswith("alice/") else "ignore"


class BrokerTests(TestCase):
    """
    A real broker (C{twistd mqttd --auth http:... --authorizer http:...})
    asks the web service, which runs in this test's reactor; paho-mqtt runs
    in threads.
    """

    timeout = 30

    @inlineCallbacks
    def test_endToEnd(self) -> Any:
        resource = DecisionResource(brokerPolicy)
        url = startService(self, resource)
        broker = yield deferToThread(
            BrokerProcess,
            # The authenticator's URL unescaped, the authorizer's escaped.
            "--auth", f"http:url={url}:timeout=3",
            "--authorizer", "http:url=" + url.replace(":", "\\:") + ":timeout=3",
        )
        self.addCleanup(lambda: deferToThread(broker.cleanup))
        result = yield deferToThread(self._clients, broker.port)
        refusals, subacks, received = result
        self.assertEqual(refusals, {"mallory": 0x86, "wrong": 0x86, "stranger": 0x86})
        self.assertEqual(subacks, [1, 0x87])
        self.assertEqual([m.topic for m in received], ["alice/x", "alice/y"])
        actions = resource.actions()
        for expected in [
            ("authenticate", "alice", None),
            ("authenticate", "mallory", None),
            ("connect", "alice", None),
            ("subscribe", "alice", "alice/#"),
            ("subscribe", "alice", "secret/#"),
            ("publish", "alice", "alice/x"),
            ("receive", "alice", "alice/x"),
            ("publish", "alice", "alice/hidden"),
            ("receive", "alice", "alice/hidden"),
            ("publish", "alice", "secret/z"),
        ]:
            self.assertIn(expected, actions)
        self.assertEqual(broker.tracebacks(), [])

    def _clients(self, port: int) -> Any:
        """
        The MQTT side, blocking (in a thread).
        """
        refusals = {}
        for name, user, password in [
            ("mallory", "mallory", "right"), ("wrong", "alice", "wrong"),
            ("stranger", "stranger", "x"),
        ]:
            refused = PahoClient(port, uniqueName(name), protocol=mqtt.MQTTv5)
            refused.client.username_pw_set(user, password)
            try:
                self.assertRaises(AssertionError, refused.connect)
                refusals[name] = refused.connectReason
            finally:
                refused.close()
        alice = PahoClient(port, uniqueName("alice"), protocol=mqtt.MQTTv5)
        alice.client.username_pw_set("alice", "right")
        alice.connect()
        try:
            subacks = alice.subscribe(("alice/#", 1), ("secret/#", 1))
            alice.publish("alice/x", b"1", qos=1)
            alice.publish("alice/hidden", b"2", qos=1)
            alice.publish("secret/z", b"3", qos=1)
            alice.publish("alice/y", b"4", qos=1)
            alice.waitForTopic("alice/y", WAIT)
            # Anything more would have come before alice/y (per-client order).
            received = list(alice.messages)
        finally:
            alice.close()
        return refusals, subacks, received
