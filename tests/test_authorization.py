"""
Tests for authorization and session ownership over in-memory connections:
L{mqttd.authorization.AuthorizerChain} (order, "next", fail-closed errors,
answers and timeouts of Deferred decisions, the plain-value fast path) and
what the protocol does with its answers (connect, publish, subscribe and
receive denials, revocation of queued, in-flight, retained and resumed
deliveries, per-client ordering while a decision is pending), the binding of
a session to the identity that made it (catalogue AU-11, AU-12) and the
reload of plug-in configuration (AU-09).

Expected bytes and reason codes come from the MQTT 3.1/3.1.1/5.0
specifications, C{docs/plugins.md} and DESIGN.md section 4, never from
mqttd's output.  Time is a driven L{Clock}.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any

from twisted.cred.checkers import AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mqttd.acl import AclFileAuthorizer
from mqttd.auth import ALLOW, DENY, NEXT, CheckerChain, ClientInfo, Deny, MQTTRealm
from mqttd.authorization import AuthorizerChain
from mqttd.broker import Broker
from mqttd.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Puback,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Will,
)
from mqttd.codec.properties import PropertyId
from mqttd.config import BrokerConfig
from mqttd.interfaces import IAuthorizer
from mqttd.passwd import PasswordFileChecker
from mqttd.protocol import MQTTServerFactory, MQTTServerProtocol
from mqttd.testing import MQTTTestClient
from tests.clienthelpers import tempDirectory

#: MQTT 5.0 reason codes (section 2.4).
NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86
BANNED = 0x8A
QUOTA_EXCEEDED = 0x97
PACKET_ID_IN_USE = 0x91

#: The Connect Reason Codes of MQTT 5.0 table 3-1 that refuse a connection.
CONNACK_FAILURE_CODES = frozenset(
    {0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
     0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
)
#: The PUBACK Reason Codes of MQTT 5.0 section 3.4.2.1 that refuse a message.
PUBACK_FAILURE_CODES = frozenset({0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})

#: 3.1.1 CONNACK return codes 4 and 5 (section 3.2.2.3).
CONNACK_BAD_CREDENTIALS = bytes.fromhex("20 02 00 04")
CONNACK_NOT_AUTHORIZED = bytes.fromhex("20 02 00 05")
PINGRESP = bytes.fromhex("d0 00")

PERSISTENT = {PropertyId.SESSION_EXPIRY_INTERVAL: 3600}


def pid(packetId: int) -> bytes:
    """
    A packet identifier as two bytes.
    """
    return packetId.to_bytes(2, "big")


class RecordingClient(MQTTTestClient):
    """
    A test client that also keeps every byte it received (L{raw}).
    """

    def __init__(self, protocolLevel: int = MQTT_3_1_1, autoAck: bool = False) -> None:
        super().__init__(protocolLevel, autoAck)
        self.raw = bytearray()

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        super().dataReceived(data)

    def takeRaw(self) -> bytes:
        """
        The bytes received since the last call; also forgets the decoded
        packets.
        """
        raw = bytes(self.raw)
        self.raw.clear()
        self.received.clear()
        return raw


class Harness:
    """
    A L{Broker} with authorizers on a driven clock, and test clients
    connected to it over C{iosim} through one of its factories.
    """

    def __init__(
        self,
        authorizers: list[Any] | tuple[Any, ...] = (),
        portal: Portal | None = None,
        **settings: Any,
    ) -> None:
        self.clock = Clock()
        config = BrokerConfig().replace(**settings) if settings else BrokerConfig()
        self.broker = Broker(config, clock=self.clock, authorizers=authorizers)
        self.factory = MQTTServerFactory(self.broker, portal=portal)
        self._pumps: list[iosim.IOPump] = []

    def openClient(
        self,
        protocolLevel: int = MQTT_3_1_1,
        autoAck: bool = True,
        factory: MQTTServerFactory | None = None,
    ) -> RecordingClient:
        """
        Open a connection (to C{factory}, by default the broker's first)
        without sending anything.
        """
        client = RecordingClient(protocolLevel, autoAck)
        server = (factory or self.factory).buildProtocol(None)
        assert server is not None
        pump = iosim.connect(
            server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client),
            greet=False, clock=self.clock,
        )
        client.server = server  # type: ignore[attr-defined]
        self._pumps.append(pump)
        return client

    def connect(
        self,
        clientId: str,
        protocolLevel: int = MQTT_3_1_1,
        autoAck: bool = True,
        factory: MQTTServerFactory | None = None,
        **connectArgs: Any,
    ) -> RecordingClient:
        """
        Connect and check that the CONNACK accepts the client (it is
        consumed; its Session Present flag is kept as C{sessionPresent}).
        """
        client = self.openClient(protocolLevel, autoAck, factory)
        client.connect(clientId, **connectArgs)
        self.flush()
        packets = client.take()
        if not packets or not isinstance(packets[0], Connack) or packets[0].reasonCode:
            raise AssertionError(f"CONNECT of {clientId!r} refused: {packets!r}")
        client.sessionPresent = packets[0].sessionPresent  # type: ignore[attr-defined]
        client.received.extend(packets[1:])
        client.raw.clear()
        return client

    def server(self, client: MQTTTestClient) -> MQTTServerProtocol:
        """
        The broker side of a test client's connection.
        """
        server: MQTTServerProtocol = client.server  # type: ignore[attr-defined]
        return server

    def flush(self) -> None:
        """
        Move bytes both ways until nothing moves.
        """
        for _ in range(1000):
            moved = False
            for pump in list(self._pumps):
                if pump.pump():
                    moved = True
            if not moved:
                break
        else:  # pragma: no cover
            raise AssertionError("the connections never became idle")
        self._pumps = [p for p in self._pumps if not p.clientIO.disconnected]

    def advance(self, seconds: float) -> None:
        """
        Let time pass, then flush.
        """
        self.clock.advance(seconds)
        self.flush()

    def drop(self, client: MQTTTestClient) -> None:
        """
        Close a client's connection without DISCONNECT (a network failure).
        """
        client.transport.loseConnection()
        self.flush()


Rule = Any


@implementer(IAuthorizer)
class ScriptedAuthorizer:
    """
    An authorizer whose answers the test sets: C{rules} maps
    C{(kind, subject)} or C{(kind, clientId, subject)} (kind C{connect},
    C{publish}, C{subscribe} or C{receive}; the subject is the client id,
    topic or filter) to an answer, or to a callable making one (or
    raising).  Every question is recorded in C{calls}.
    """

    def __init__(self, default: Rule = ALLOW, name: str = "scripted") -> None:
        self.default = default
        self.name = name
        self.rules: dict[tuple[str, ...], Rule] = {}
        self.calls: list[tuple[Any, ...]] = []

    def __repr__(self) -> str:
        return f"<ScriptedAuthorizer {self.name}>"

    def _answer(self, kind: str, client: Any, subject: str, *facts: Any) -> Any:
        self.calls.append((kind, client.clientId, subject, *facts))
        rule = self.rules.get((kind, client.clientId, subject),
                              self.rules.get((kind, subject), self.default))
        return rule() if callable(rule) else rule

    def asked(self, kind: str | None = None) -> list[tuple[Any, ...]]:
        """
        The questions asked so far (of one kind).
        """
        return [c for c in self.calls if kind is None or c[0] == kind]

    def authorizeConnect(self, client: Any) -> Any:
        return self._answer("connect", client, client.clientId)

    def authorizePublish(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        return self._answer("publish", client, topic, qos, retain)

    def authorizeSubscribe(self, client: Any, topicFilter: str, qos: int) -> Any:
        return self._answer("subscribe", client, topicFilter, qos)

    def authorizeReceive(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        return self._answer("receive", client, topic, qos, retain)


def raising() -> Any:
    """
    A rule that raises.
    """
    raise ZeroDivisionError("authorizer bug")


def later(clock: Clock, seconds: float, result: Any,
          made: list[Deferred[Any]] | None = None) -> Callable[[], Deferred[Any]]:
    """
    A rule answering with a Deferred that fires with C{result} (or fails,
    for an exception) after C{seconds} on C{clock}.
    """

    def rule() -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        if isinstance(result, BaseException):
            clock.callLater(seconds, d.errback, result)
        else:
            clock.callLater(seconds, d.callback, result)
        if made is not None:
            made.append(d)
        return d

    return rule


def never(made: list[Deferred[Any]] | None = None) -> Callable[[], Deferred[Any]]:
    """
    A rule answering with a Deferred that never fires.
    """

    def rule() -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        if made is not None:
            made.append(d)
        return d

    return rule


def client(clientId: str = "c1", username: str | None = "u") -> ClientInfo:
    """
    The facts about a client an authorizer gets.
    """
    return ClientInfo(clientId, username, None, MQTT_3_1_1, "test")


def result(d: Any) -> Any:
    """
    The result a fired Deferred holds (or the value itself).
    """
    if not isinstance(d, Deferred):
        return d
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]



def writeFile(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def captureLog(case: SynchronousTestCase) -> list[dict[str, Any]]:
    """
    Every log event emitted until the end of the test.
    """
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    case.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def publishes(client: MQTTTestClient) -> list[tuple[str, bytes]]:
    """
    Take the received packets: the topic and payload of each PUBLISH.
    """
    return [(p.topic, p.payload) for p in client.take() if isinstance(p, Publish)]


# -- the chain ----------------------------------------------------------------------


class AuthorizerChainTests(SynchronousTestCase):
    """
    L{AuthorizerChain}: the first allow or deny wins, "next" asks on, all
    "next" denies, and every kind of failure denies.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.info = client()

    def chain(self, *authorizers: ScriptedAuthorizer, timeout: float = 10.0) -> AuthorizerChain:
        return AuthorizerChain(authorizers, self.clock, timeout)

    def assertDenied(self, answer: Any, reasonCode: int = NOT_AUTHORIZED) -> None:
        self.assertIsInstance(answer, Deny)
        self.assertEqual(answer.reasonCode, reasonCode)

    def test_scriptedAuthorizerProvidesIAuthorizer(self) -> None:
        """The test double provides L{IAuthorizer}."""
        self.assertTrue(verifyObject(IAuthorizer, ScriptedAuthorizer()))

    def test_allowIsTrue(self) -> None:
        """An ALLOW answer makes the chain's answer exactly C{True}, for every question."""
        chain = self.chain(ScriptedAuthorizer(ALLOW))
        self.assertIs(chain.connect(self.info), True)
        self.assertIs(chain.publish(self.info, "a/b", 1, False), True)
        self.assertIs(chain.subscribe(self.info, "a/#", 1), True)
        self.assertIs(chain.receive(self.info, "a/b", 1, False), True)

    def test_denyIsTheAuthorizersDeny(self) -> None:
        """A L{Deny} answer is the chain's answer, with its reason code and reason."""
        refusal = Deny(QUOTA_EXCEEDED, "quota exceeded")
        chain = self.chain(ScriptedAuthorizer(refusal))
        self.assertEqual(chain.publish(self.info, "a/b", 1, False), refusal)
        self.assertDenied(self.chain(ScriptedAuthorizer(DENY)).subscribe(self.info, "a", 0))

    def test_firstAllowWins(self) -> None:
        """After an ALLOW the following authorizers are not asked."""
        first, second = ScriptedAuthorizer(ALLOW), ScriptedAuthorizer(DENY)
        self.assertIs(self.chain(first, second).publish(self.info, "a/b", 0, False), True)
        self.assertEqual(second.calls, [])

    def test_firstDenyWins(self) -> None:
        """After a deny the following authorizers are not asked."""
        first, second = ScriptedAuthorizer(DENY), ScriptedAuthorizer(ALLOW)
        self.assertDenied(self.chain(first, second).publish(self.info, "a/b", 0, False))
        self.assertEqual(second.calls, [])

    def test_nextAsksTheFollowingAuthorizers(self) -> None:
        """NEXT passes the question on, in order, with the same facts."""
        first, second, third = (ScriptedAuthorizer(NEXT), ScriptedAuthorizer(NEXT),
                                ScriptedAuthorizer(ALLOW))
        self.assertIs(self.chain(first, second, third).receive(self.info, "a/b", 2, True), True)
        expected = [("receive", "c1", "a/b", 2, True)]
        self.assertEqual((first.calls, second.calls, third.calls), (expected,) * 3)
        first.calls.clear()
        second.default = Deny(BANNED, "banned")
        third.calls.clear()
        self.assertDenied(self.chain(first, second, third).publish(self.info, "x", 1, False),
                          BANNED)
        self.assertEqual(third.calls, [])

    def test_allNextDenies(self) -> None:
        """When every authorizer says NEXT the answer is deny (0x87)."""
        chain = self.chain(ScriptedAuthorizer(NEXT), ScriptedAuthorizer(NEXT))
        self.assertDenied(chain.connect(self.info))
        self.assertDenied(chain.publish(self.info, "a", 0, False))
        self.assertDenied(chain.subscribe(self.info, "a", 0))
        self.assertDenied(chain.receive(self.info, "a", 0, False))

    def test_exceptionDenies(self) -> None:
        """An authorizer that raises denies; the following ones are not asked."""
        second = ScriptedAuthorizer(ALLOW)
        chain = self.chain(ScriptedAuthorizer(raising), second)
        self.assertDenied(chain.publish(self.info, "a", 1, False))
        self.assertDenied(chain.connect(self.info))
        self.assertEqual(second.calls, [])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_badAnswerDenies(self) -> None:
        """An answer that is not ALLOW, NEXT or a Deny (None, True, text, a number) denies."""
        for bad in (None, True, "ALLOW", 1, 0, ALLOW.__class__):
            second = ScriptedAuthorizer(ALLOW)
            chain = self.chain(ScriptedAuthorizer(bad), second)
            self.assertDenied(chain.publish(self.info, "a", 0, False))
            self.assertEqual(second.calls, [], bad)

    def test_plainAnswersMakeNoDeferred(self) -> None:
        """Plain answers are the fast path: not a single Deferred is made."""
        made: list[Any] = []
        original = Deferred.__init__

        def counting(self: Deferred[Any], *args: Any, **kwargs: Any) -> None:
            made.append(self)
            original(self, *args, **kwargs)

        self.patch(Deferred, "__init__", counting)
        chain = self.chain(ScriptedAuthorizer(NEXT), ScriptedAuthorizer(ALLOW))
        denying = self.chain(ScriptedAuthorizer(NEXT), ScriptedAuthorizer(Deny(0x97, "q")))
        answers = [
            chain.connect(self.info), chain.publish(self.info, "a", 1, False),
            chain.subscribe(self.info, "a/#", 1), chain.receive(self.info, "a", 1, False),
            denying.publish(self.info, "a", 1, False),
            self.chain(ScriptedAuthorizer(NEXT)).receive(self.info, "a", 0, False),
        ]
        self.assertEqual(made, [])
        self.assertEqual([a is True for a in answers[:4]], [True] * 4)
        self.assertEqual(answers[4], Deny(0x97, "q"))
        self.assertDenied(answers[5])

    # -- Deferred answers --

    def test_deferredAllow(self) -> None:
        """A Deferred ALLOW makes the chain's answer a Deferred firing with C{True}."""
        second = ScriptedAuthorizer(DENY)
        answer = self.chain(ScriptedAuthorizer(later(self.clock, 5, ALLOW)), second).publish(
            self.info, "a", 1, False)
        self.assertIsInstance(answer, Deferred)
        self.assertNoResult(answer)
        self.clock.advance(5)
        self.assertIs(self.successResultOf(answer), True)
        self.assertEqual(second.calls, [])

    def test_deferredDeny(self) -> None:
        """A Deferred deny fires the chain's answer with that L{Deny}."""
        refusal = Deny(BANNED, "banned")
        second = ScriptedAuthorizer(ALLOW)
        answer = self.chain(ScriptedAuthorizer(later(self.clock, 1, refusal)), second).subscribe(
            self.info, "a/#", 1)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(answer), refusal)
        self.assertEqual(second.calls, [])

    def test_deferredNextContinuesDownTheChain(self) -> None:
        """A Deferred NEXT asks the following authorizer only once it fired."""
        second = ScriptedAuthorizer(ALLOW)
        answer = self.chain(ScriptedAuthorizer(later(self.clock, 2, NEXT)), second).receive(
            self.info, "a", 0, False)
        self.clock.advance(1.9)
        self.assertEqual(second.calls, [])
        self.clock.advance(0.1)
        self.assertEqual(second.calls, [("receive", "c1", "a", 0, False)])
        self.assertIs(self.successResultOf(answer), True)

    def test_deferredNextThenDeferredAnswers(self) -> None:
        """Deferred NEXT answers chain into further Deferred answers, and all-NEXT denies."""
        second = ScriptedAuthorizer(later(self.clock, 1, NEXT))
        third = ScriptedAuthorizer(later(self.clock, 1, Deny(0x97, "quota")))
        answer = self.chain(ScriptedAuthorizer(later(self.clock, 1, NEXT)), second,
                            third).publish(self.info, "a", 1, False)
        for _ in range(2):
            self.clock.advance(1)
            self.assertNoResult(answer)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(answer), Deny(0x97, "quota"))
        allNext = self.chain(ScriptedAuthorizer(later(self.clock, 1, NEXT)),
                             ScriptedAuthorizer(later(self.clock, 1, NEXT))).connect(self.info)
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertDenied(self.successResultOf(allNext))

    def test_deferredFailureDenies(self) -> None:
        """A Deferred that fails denies; the following authorizers are not asked."""
        second = ScriptedAuthorizer(ALLOW)
        answer = self.chain(ScriptedAuthorizer(later(self.clock, 1, ZeroDivisionError("x"))),
                            second).publish(self.info, "a", 1, False)
        self.clock.advance(1)
        self.assertDenied(self.successResultOf(answer))
        self.assertEqual(second.calls, [])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_deferredBadAnswerDenies(self) -> None:
        """A Deferred firing with something that is not an answer denies."""
        for bad in (None, True, "ALLOW"):
            answer = self.chain(ScriptedAuthorizer(later(self.clock, 1, bad)),
                                ScriptedAuthorizer(ALLOW)).publish(self.info, "a", 1, False)
            self.clock.advance(1)
            self.assertDenied(self.successResultOf(answer))

    def test_deferredNeverFiringDeniesAfterTheTimeout(self) -> None:
        """A Deferred that never fires denies when the chain's timeout passes, not before."""
        made: list[Deferred[Any]] = []
        second = ScriptedAuthorizer(ALLOW)
        answer = self.chain(ScriptedAuthorizer(never(made)), second, timeout=10).publish(
            self.info, "a", 1, False)
        self.clock.advance(9.9)
        self.assertNoResult(answer)
        self.clock.advance(0.1)
        self.assertDenied(self.successResultOf(answer))
        self.assertEqual(second.calls, [])
        self.assertEqual(len(self.flushLoggedErrors(defer.TimeoutError)), 1)

    def test_authorizersOwnTimeoutWins(self) -> None:
        """An authorizer's own C{timeout} attribute replaces the chain's, shorter or longer."""
        quick = ScriptedAuthorizer(never())
        quick.timeout = 2  # type: ignore[attr-defined]
        answer = self.chain(quick, timeout=10).subscribe(self.info, "a", 0)
        self.clock.advance(1.9)
        self.assertNoResult(answer)
        self.clock.advance(0.1)
        self.assertDenied(self.successResultOf(answer))

        slow = ScriptedAuthorizer(later(self.clock, 20, ALLOW))
        slow.timeout = 30  # type: ignore[attr-defined]
        answer = self.chain(slow, timeout=10).subscribe(self.info, "a", 0)
        self.clock.advance(15)
        self.assertNoResult(answer)
        self.clock.advance(5)
        self.assertIs(self.successResultOf(answer), True)
        self.flushLoggedErrors(defer.TimeoutError)

    def test_timeoutOfALaterAuthorizer(self) -> None:
        """The timeout applies to each Deferred answer, also after a Deferred NEXT."""
        second = ScriptedAuthorizer(never())
        second.timeout = 3  # type: ignore[attr-defined]
        answer = self.chain(ScriptedAuthorizer(later(self.clock, 1, NEXT)), second,
                            ScriptedAuthorizer(ALLOW)).receive(self.info, "a", 0, False)
        self.clock.advance(1)
        self.clock.advance(2.9)
        self.assertNoResult(answer)
        self.clock.advance(0.1)
        self.assertDenied(self.successResultOf(answer))
        self.flushLoggedErrors(defer.TimeoutError)


# -- connect --------------------------------------------------------------------------


class ConnectAuthorizationTests(SynchronousTestCase):
    """
    A denied connect: 3.1.x CONNACK 0x05, v5 CONNACK 0x87 or the
    authorizer's own code; the client is never attached to a session.
    """

    def setUp(self) -> None:
        self.authorizer = ScriptedAuthorizer()
        self.env = Harness([self.authorizer])

    def refusedConnect(self, level: int, clientId: str = "dev1", **args: Any) -> RecordingClient:
        client = self.env.openClient(level)
        client.connect(clientId, **args)
        self.env.flush()
        return client

    def assertV5Refused(self, client: RecordingClient, code: int, reason: str | None) -> None:
        packets = client.take()
        self.assertEqual(len(packets), 1, packets)
        connack = packets[0]
        assert isinstance(connack, Connack)
        self.assertEqual((connack.sessionPresent, connack.reasonCode), (False, code))
        text = connack.properties.get(PropertyId.REASON_STRING)
        if reason is None:
            self.assertTrue(text, connack)
        else:
            self.assertEqual(text, reason)
        self.assertTrue(client.closed)

    def test_deniedV311(self) -> None:
        """3.1.1: C{20 02 00 05}, then the connection is closed; no session is made."""
        self.authorizer.rules[("connect", "dev1")] = DENY
        client = self.refusedConnect(MQTT_3_1_1, cleanStart=False)
        self.assertEqual(bytes(client.raw), CONNACK_NOT_AUTHORIZED)
        self.assertTrue(client.closed)
        self.assertNotIn("dev1", self.env.broker.sessions)

    def test_deniedV31(self) -> None:
        """3.1 (MQIsdp): C{20 02 00 05} too."""
        self.authorizer.rules[("connect", "dev1")] = DENY
        client = self.refusedConnect(MQTT_3_1)
        self.assertEqual(bytes(client.raw), CONNACK_NOT_AUTHORIZED)
        self.assertTrue(client.closed)

    def test_deniedV311WithOwnCode(self) -> None:
        """3.1.1 has no codes beyond 5: an authorizer's own code still gives C{20 02 00 05}."""
        self.authorizer.rules[("connect", "dev1")] = Deny(BANNED, "banned")
        client = self.refusedConnect(MQTT_3_1_1)
        self.assertEqual(bytes(client.raw), CONNACK_NOT_AUTHORIZED)

    def test_deniedV5(self) -> None:
        """v5: CONNACK 0x87 (Not authorized) with a Reason String, then close."""
        self.authorizer.rules[("connect", "dev1")] = DENY
        client = self.refusedConnect(MQTT_5, properties=PERSISTENT)
        self.assertV5Refused(client, NOT_AUTHORIZED, None)
        self.assertNotIn("dev1", self.env.broker.sessions)

    def test_deniedV5WithOwnCode(self) -> None:
        """v5: the authorizer's own CONNACK code and reason reach the client."""
        self.authorizer.rules[("connect", "dev1")] = Deny(BANNED, "you are banned")
        client = self.refusedConnect(MQTT_5)
        self.assertV5Refused(client, BANNED, "you are banned")

    def test_deniedV5WithNonConnackCode(self) -> None:
        """v5: a code CONNACK cannot carry (0x91) becomes a valid CONNACK failure code."""
        self.authorizer.rules[("connect", "dev1")] = Deny(PACKET_ID_IN_USE, "odd")
        client = self.refusedConnect(MQTT_5)
        [connack] = client.take()
        assert isinstance(connack, Connack)
        self.assertIn(connack.reasonCode, CONNACK_FAILURE_CODES)
        self.assertTrue(client.closed)

    def test_authorizerRaisingRefuses(self) -> None:
        """An authorizer that raises on connect refuses the client (fail closed)."""
        self.authorizer.rules[("connect", "dev1")] = raising
        v3 = self.refusedConnect(MQTT_3_1_1)
        self.assertEqual(bytes(v3.raw), CONNACK_NOT_AUTHORIZED)
        v5 = self.refusedConnect(MQTT_5)
        self.assertV5Refused(v5, NOT_AUTHORIZED, None)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_connectFacts(self) -> None:
        """The authorizer learns the client id, user name and protocol level."""
        seen: list[ClientInfo] = []
        original = self.authorizer.authorizeConnect

        def spy(info: Any) -> Any:
            seen.append(info)
            return original(info)

        self.authorizer.authorizeConnect = spy  # type: ignore[method-assign]
        self.env.connect("dev1", MQTT_5, username="alice", password=b"x")
        [info] = seen
        self.assertEqual((info.clientId, info.username, info.protocolLevel),
                         ("dev1", "alice", MQTT_5))

    def test_deferredDecision(self) -> None:
        """A Deferred connect decision: the CONNACK waits for it."""
        self.authorizer.rules[("connect", "dev1")] = later(self.env.clock, 5, ALLOW)
        self.authorizer.rules[("connect", "dev2")] = later(self.env.clock, 5, DENY)
        accepted = self.refusedConnect(MQTT_3_1_1, "dev1")
        refused = self.refusedConnect(MQTT_3_1_1, "dev2")
        self.env.advance(4.9)
        self.assertEqual((bytes(accepted.raw), bytes(refused.raw)), (b"", b""))
        self.env.advance(0.1)
        self.assertEqual(bytes(accepted.raw), bytes.fromhex("20 02 00 00"))
        self.assertEqual(bytes(refused.raw), CONNACK_NOT_AUTHORIZED)
        self.assertFalse(accepted.closed)
        self.assertTrue(refused.closed)

    def test_neverFiringDecisionRefusesAtThePluginTimeout(self) -> None:
        """A connect decision that never comes refuses the client at plugin-timeout."""
        env = Harness([ScriptedAuthorizer(never())], pluginTimeout=3.0)
        client = env.openClient(MQTT_5)
        client.connect("dev1")
        env.flush()
        env.advance(2.9)
        self.assertEqual(client.take(), [])
        env.advance(0.1)
        self.assertV5Refused(client, NOT_AUTHORIZED, None)
        self.flushLoggedErrors(defer.TimeoutError)

    def test_deniedConnectLeavesTheLiveClientAlone(self) -> None:
        """A denied CONNECT with a connected client's id neither takes over nor ends it."""
        owner = self.env.connect("dev1", MQTT_3_1_1, cleanStart=False)
        owner.subscribe("t/#", 1)
        self.env.flush()
        session = self.env.broker.sessions["dev1"]
        self.authorizer.rules[("connect", "dev1")] = DENY
        for cleanStart in (False, True):
            intruder = self.refusedConnect(MQTT_3_1_1, cleanStart=cleanStart)
            self.assertEqual(bytes(intruder.raw), CONNACK_NOT_AUTHORIZED)
        self.assertFalse(owner.closed)
        self.assertIs(self.env.broker.sessions["dev1"], session)
        self.assertIs(self.env.broker.connections["dev1"], self.env.server(owner))
        self.env.broker.publish("t/x", b"still here", 1)
        self.env.flush()
        self.assertEqual(publishes(owner), [("t/x", b"still here")])


# -- publish --------------------------------------------------------------------------


class PublishAuthorizationTests(SynchronousTestCase):
    """
    A denied PUBLISH: v5 QoS 1/2 get 0x87, v5 QoS 0 is dropped, 3.1.1 gets
    a positive acknowledgement [MQTT-3.3.5-2]; it is never delivered and the
    connection stays.
    """

    def setUp(self) -> None:
        self.authorizer = ScriptedAuthorizer()
        self.authorizer.rules[("publish", "t/denied")] = DENY
        self.env = Harness([self.authorizer])
        self.subscriber = self.env.connect("sub")
        self.subscriber.subscribe("t/#", 2)
        self.env.flush()
        self.subscriber.take()

    def assertAlive(self, client: RecordingClient) -> None:
        """The client is still connected: a PINGREQ is answered."""
        client.takeRaw()
        client.ping()
        self.env.flush()
        self.assertEqual(client.takeRaw(), PINGRESP)
        self.assertFalse(client.closed)

    def assertNothingDelivered(self) -> None:
        self.assertEqual(publishes(self.subscriber), [])

    def test_v5Qos1Denied(self) -> None:
        """v5 QoS 1: PUBACK 0x87 with a Reason String; not delivered."""
        client = self.env.connect("pub", MQTT_5)
        client.publish("t/denied", b"no", 1, packetId=7)
        self.env.flush()
        [puback] = client.take()
        assert isinstance(puback, Puback)
        self.assertEqual((puback.packetId, puback.reasonCode), (7, NOT_AUTHORIZED))
        self.assertTrue(puback.properties.get(PropertyId.REASON_STRING))
        self.assertNothingDelivered()
        self.assertAlive(client)

    def test_v5Qos1DeniedWithReason(self) -> None:
        """v5: the authorizer's reason becomes the PUBACK's Reason String."""
        self.authorizer.rules[("publish", "t/ro")] = Deny(NOT_AUTHORIZED, "topic is read-only")
        client = self.env.connect("pub", MQTT_5)
        client.publish("t/ro", b"no", 1, packetId=3)
        self.env.flush()
        [puback] = client.take()
        assert isinstance(puback, Puback)
        self.assertEqual(puback.reasonCode, NOT_AUTHORIZED)
        self.assertEqual(puback.properties.get(PropertyId.REASON_STRING), "topic is read-only")

    def test_v5NonPubackCodeBecomesValid(self) -> None:
        """v5: a deny code PUBACK cannot carry (0x8A) becomes a valid PUBACK failure code."""
        self.authorizer.rules[("publish", "t/banned")] = Deny(BANNED, "banned")
        client = self.env.connect("pub", MQTT_5)
        client.publish("t/banned", b"no", 1, packetId=3)
        self.env.flush()
        [puback] = client.take()
        assert isinstance(puback, Puback)
        self.assertIn(puback.reasonCode, PUBACK_FAILURE_CODES)
        self.assertNothingDelivered()

    def test_v5Qos2Denied(self) -> None:
        """v5 QoS 2: PUBREC 0x87; not delivered."""
        client = self.env.connect("pub", MQTT_5)
        client.publish("t/denied", b"no", 2, packetId=9)
        self.env.flush()
        [pubrec] = client.take()
        assert isinstance(pubrec, Pubrec)
        self.assertEqual((pubrec.packetId, pubrec.reasonCode), (9, NOT_AUTHORIZED))
        self.assertNothingDelivered()
        self.assertAlive(client)

    def test_v5Qos0Dropped(self) -> None:
        """v5 QoS 0: nothing is sent back and nothing delivered."""
        client = self.env.connect("pub", MQTT_5)
        client.publish("t/denied", b"no", 0)
        self.env.flush()
        self.assertEqual(client.takeRaw(), b"")
        self.assertNothingDelivered()
        self.assertAlive(client)

    def test_v311Qos1PositivePuback(self) -> None:
        """3.1.1 QoS 1: C{40 02 mid} (a positive PUBACK); not delivered."""
        client = self.env.connect("pub", MQTT_3_1_1)
        client.publish("t/denied", b"no", 1, packetId=0x1234)
        self.env.flush()
        self.assertEqual(client.takeRaw(), bytes.fromhex("40 02 12 34"))
        self.assertNothingDelivered()
        self.assertAlive(client)

    def test_v311Qos2CompletesWithoutDelivery(self) -> None:
        """3.1.1 QoS 2: C{50 02 mid}, then PUBREL gets C{70 02 mid}; not delivered."""
        client = self.env.connect("pub", MQTT_3_1_1)
        client.publish("t/denied", b"no", 2, packetId=5)
        self.env.flush()
        self.assertEqual(client.takeRaw(), bytes.fromhex("50 02") + pid(5))
        client.send(Pubrel(5))
        self.env.flush()
        self.assertEqual(client.takeRaw(), bytes.fromhex("70 02") + pid(5))
        self.assertNothingDelivered()
        self.assertAlive(client)

    def test_v311Qos0Dropped(self) -> None:
        """3.1.1 QoS 0: dropped silently; the connection stays."""
        client = self.env.connect("pub", MQTT_3_1_1)
        client.publish("t/denied", b"no", 0)
        self.env.flush()
        self.assertEqual(client.takeRaw(), b"")
        self.assertNothingDelivered()
        self.assertAlive(client)

    def test_onlyAllowedTopicsDelivered(self) -> None:
        """In one stream of PUBLISHes, the allowed ones are delivered in order."""
        client = self.env.connect("pub", MQTT_3_1_1)
        client.publish("t/a", b"1", 1)
        client.publish("t/denied", b"2", 1)
        client.publish("t/b", b"3", 0)
        self.env.flush()
        self.assertEqual(publishes(self.subscriber), [("t/a", b"1"), ("t/b", b"3")])

    def test_deniedRetainedIsNotStored(self) -> None:
        """A denied retained PUBLISH does not become the topic's retained message."""
        client = self.env.connect("pub", MQTT_5)
        client.publish("t/denied", b"no", 1, retain=True)
        self.env.flush()
        self.assertEqual(self.env.broker.retained("#"), [])

    def test_willOnDeniedTopicNeverPublished(self) -> None:
        """
        A will on a topic the client may not publish to refuses the CONNECT
        (3.1.1 return code 5, v5 0x87, then the connection is closed, as
        mosquitto does); the will is never delivered nor retained.
        """
        for level in (MQTT_3_1_1, MQTT_5):
            client = self.env.openClient(level)
            client.connect(f"w{level}", will=Will("t/denied", b"last words", 1, True))
            self.env.flush()
            raw = bytes(client.raw)
            [connack] = client.take()
            assert isinstance(connack, Connack)
            if level == MQTT_3_1_1:
                self.assertEqual(raw, CONNACK_NOT_AUTHORIZED)
            else:
                self.assertEqual(connack.reasonCode, NOT_AUTHORIZED)
            self.assertTrue(client.closed, level)
            self.assertNotIn(f"w{level}", [s.clientId for s in self.env.broker.listSessions()])
            self.env.advance(3600)
            self.assertNothingDelivered()
            self.assertEqual(self.env.broker.retained("#"), [])

    def test_publishFacts(self) -> None:
        """The authorizer is asked with the topic, QoS and retain flag."""
        client = self.env.connect("pub", MQTT_3_1_1)
        client.publish("t/x", b"1", 2, retain=True)
        self.env.flush()
        self.assertIn(("publish", "pub", "t/x", 2, True), self.authorizer.asked("publish"))

    def test_raisingAuthorizerIsADenial(self) -> None:
        """PL-02: an authorizer raising on publish is a denial; the connection stays."""
        self.authorizer.rules[("publish", "t/bug")] = raising
        v5 = self.env.connect("pub5", MQTT_5)
        v5.publish("t/bug", b"no", 1, packetId=2)
        self.env.flush()
        [puback] = v5.take()
        assert isinstance(puback, Puback)
        self.assertEqual((puback.packetId, puback.reasonCode), (2, NOT_AUTHORIZED))
        v3 = self.env.connect("pub3", MQTT_3_1_1)
        v3.publish("t/bug", b"no", 1, packetId=2)
        self.env.flush()
        self.assertEqual(v3.takeRaw(), bytes.fromhex("40 02 00 02"))
        self.assertNothingDelivered()
        self.assertAlive(v5)
        self.assertAlive(v3)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)


# -- subscribe ------------------------------------------------------------------------


class SubscribeAuthorizationTests(SynchronousTestCase):
    """
    A denied filter: SUBACK 0x87 (v5) / 0x80 (3.1.1) for it, the others
    granted; 3.1 has no failure code, so the connection is closed.
    """

    def setUp(self) -> None:
        self.authorizer = ScriptedAuthorizer()
        self.authorizer.rules[("subscribe", "secret/#")] = DENY
        self.env = Harness([self.authorizer])

    def subscribeThree(self, client: RecordingClient) -> None:
        client.send(Subscribe(0x0102, (
            SubscriptionRequest("a/#", 1),
            SubscriptionRequest("secret/#", 2),
            SubscriptionRequest("b", 2),
        )))
        self.env.flush()

    def assertSubscriptions(self, clientId: str, expected: set[str]) -> None:
        self.assertEqual(set(self.env.broker.sessions[clientId].subscriptions), expected)

    def test_v5(self) -> None:
        """v5: SUBACK (1, 0x87, 2); the denied filter is not subscribed."""
        client = self.env.connect("c", MQTT_5)
        self.subscribeThree(client)
        [suback] = client.take()
        assert isinstance(suback, Suback)
        self.assertEqual((suback.packetId, suback.reasonCodes), (0x0102, (1, NOT_AUTHORIZED, 2)))
        self.assertSubscriptions("c", {"a/#", "b"})
        self.env.broker.publish("secret/x", b"s", 1)
        self.env.broker.publish("a/x", b"a", 1)
        self.env.flush()
        self.assertEqual(publishes(client), [("a/x", b"a")])

    def test_v311(self) -> None:
        """3.1.1: SUBACK C{90 05 01 02 01 80 02}."""
        client = self.env.connect("c", MQTT_3_1_1)
        self.subscribeThree(client)
        self.assertEqual(client.takeRaw(), bytes.fromhex("90 05 01 02 01 80 02"))
        self.assertSubscriptions("c", {"a/#", "b"})
        self.assertFalse(client.closed)

    def test_v31ClosesTheConnection(self) -> None:
        """3.1: no SUBACK, the connection is closed (3.1 has no failure return code)."""
        client = self.env.connect("c", MQTT_3_1, cleanStart=False)
        self.subscribeThree(client)
        self.assertEqual(client.takeRaw(), b"")
        self.assertTrue(client.closed)
        self.assertNotIn("secret/#", self.env.broker.sessions["c"].subscriptions)

    def test_raisingAuthorizerIsADenial(self) -> None:
        """PL-02: an authorizer raising on subscribe is a denial; the connection stays."""
        self.authorizer.rules[("subscribe", "secret/#")] = raising
        v5 = self.env.connect("c5", MQTT_5)
        self.subscribeThree(v5)
        [suback] = v5.take()
        assert isinstance(suback, Suback)
        self.assertEqual(suback.reasonCodes, (1, NOT_AUTHORIZED, 2))
        v5.takeRaw()
        v3 = self.env.connect("c3", MQTT_3_1_1)
        self.subscribeThree(v3)
        self.assertEqual(v3.takeRaw(), bytes.fromhex("90 05 01 02 01 80 02"))
        v3.ping()
        v5.ping()
        self.env.flush()
        self.assertEqual((v3.takeRaw(), v5.takeRaw()), (PINGRESP, PINGRESP))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_subscribeFacts(self) -> None:
        """The authorizer is asked with each filter and its QoS."""
        client = self.env.connect("c", MQTT_3_1_1)
        self.subscribeThree(client)
        self.assertEqual(self.authorizer.asked("subscribe"), [
            ("subscribe", "c", "a/#", 1), ("subscribe", "c", "secret/#", 2),
            ("subscribe", "c", "b", 2),
        ])


# -- receive --------------------------------------------------------------------------


class ReceiveAuthorizationTests(SynchronousTestCase):
    """
    Every delivery is checked: a client denied receive does not get the
    message (others do), also for messages queued or in flight before the
    revocation, retained messages and resumed subscriptions (AU-10).
    """

    def setUp(self) -> None:
        self.authorizer = ScriptedAuthorizer()
        self.env = Harness([self.authorizer])
        self.publisher = self.env.connect("pub")

    def test_deniedForOneClientOnly(self) -> None:
        """The denied client does not get the message; another subscriber does."""
        self.authorizer.rules[("receive", "x", "t/secret")] = DENY
        x = self.env.connect("x", MQTT_5)
        y = self.env.connect("y", MQTT_3_1_1)
        for c in (x, y):
            c.subscribe("t/#", 1)
        self.env.flush()
        x.take()
        y.take()
        self.publisher.publish("t/secret", b"s", 1)
        self.publisher.publish("t/open", b"o", 1)
        self.env.flush()
        self.assertEqual(publishes(x), [("t/open", b"o")])
        self.assertEqual(publishes(y), [("t/secret", b"s"), ("t/open", b"o")])
        self.assertIn(("receive", "x", "t/secret", 1, False), self.authorizer.asked("receive"))

    def test_deniedDeliveryTakesNoInflightSlot(self) -> None:
        """Denied QoS 1 deliveries do not use the in-flight window of the client."""
        env = Harness([self.authorizer], maxInflight=2)
        self.authorizer.rules[("receive", "x", "t/secret")] = DENY
        publisher = env.connect("pub")
        x = env.connect("x", MQTT_3_1_1, autoAck=False)
        x.subscribe("t/#", 1)
        env.flush()
        x.take()
        for _ in range(3):
            publisher.publish("t/secret", b"s", 1)
        publisher.publish("t/open", b"o", 1)
        env.flush()
        self.assertEqual(publishes(x), [("t/open", b"o")])
        self.assertEqual(len(env.broker.sessions["x"].inflight), 1)

    def persistentSubscriber(self, autoAck: bool = True) -> RecordingClient:
        x = self.env.connect("x", MQTT_3_1_1, autoAck=autoAck, cleanStart=False)
        x.subscribe("t/#", 1)
        self.env.flush()
        x.take()
        return x

    def test_queuedWhileOfflineNotDeliveredAfterRevocation(self) -> None:
        """AU-10: messages queued for an offline session are checked again on delivery."""
        x = self.persistentSubscriber()
        x.disconnect()
        self.env.flush()
        self.publisher.publish("t/secret", b"s", 1)
        self.publisher.publish("t/open", b"o", 1)
        self.env.flush()
        self.assertEqual(len(self.env.broker.sessions["x"].queue), 2)
        self.authorizer.rules[("receive", "x", "t/secret")] = DENY
        x = self.env.connect("x", MQTT_3_1_1, cleanStart=False)
        self.env.flush()
        self.assertTrue(x.sessionPresent)  # type: ignore[attr-defined]
        self.assertEqual(publishes(x), [("t/open", b"o")])
        session = self.env.broker.sessions["x"]
        self.assertEqual((len(session.queue), len(session.inflight)), (0, 0))

    def test_inflightNotResentAfterRevocation(self) -> None:
        """AU-10: an unacknowledged QoS 1 delivery is not resent once receive is revoked."""
        x = self.persistentSubscriber(autoAck=False)
        self.publisher.publish("t/secret", b"s", 1)
        self.publisher.publish("t/open", b"o", 1)
        self.env.flush()
        self.assertEqual(publishes(x), [("t/secret", b"s"), ("t/open", b"o")])
        self.env.drop(x)
        self.assertEqual(len(self.env.broker.sessions["x"].inflight), 2)
        self.authorizer.rules[("receive", "x", "t/secret")] = DENY
        x = self.env.connect("x", MQTT_3_1_1, autoAck=False, cleanStart=False)
        self.env.flush()
        resent = [p for p in x.take() if isinstance(p, Publish)]
        self.assertEqual([(p.topic, p.payload, p.dup) for p in resent], [("t/open", b"o", True)])
        self.assertEqual(list(self.env.broker.sessions["x"].inflight), [resent[0].packetId])

    def test_resumedSubscriptionDeniedIsRemoved(self) -> None:
        """AU-10: a resumed session's subscription now denied is removed, and delivers nothing."""
        x = self.env.connect("x", MQTT_5, properties=PERSISTENT)
        x.send(Subscribe(1, (SubscriptionRequest("t/#", 1), SubscriptionRequest("u/#", 1))))
        self.env.flush()
        x.disconnect()
        self.env.flush()
        [info] = [s for s in self.env.broker.listSessions() if s.clientId == "x"]
        self.assertEqual(set(info.subscriptions), {"t/#", "u/#"})
        self.authorizer.rules[("subscribe", "x", "t/#")] = DENY
        x = self.env.connect("x", MQTT_5, cleanStart=False, properties=PERSISTENT)
        self.assertTrue(x.sessionPresent)  # type: ignore[attr-defined]
        [info] = [s for s in self.env.broker.listSessions() if s.clientId == "x"]
        self.assertEqual(info.subscriptions, ("u/#",))
        self.assertEqual(set(self.env.broker.sessions["x"].subscriptions), {"u/#"})
        self.publisher.publish("t/a", b"t", 1)
        self.publisher.publish("u/a", b"u", 1)
        self.env.flush()
        self.assertEqual(publishes(x), [("u/a", b"u")])

    def test_retainedNotReplayedWhenDenied(self) -> None:
        """AU-10: a retained message is not replayed to a client denied receive."""
        self.publisher.publish("r/secret", b"s", 1, retain=True)
        self.publisher.publish("r/open", b"o", 1, retain=True)
        self.env.flush()
        self.authorizer.rules[("receive", "x", "r/secret")] = DENY
        x = self.env.connect("x", MQTT_5)
        x.subscribe("r/#", 1)
        self.env.flush()
        replayed = [p for p in x.take() if isinstance(p, Publish)]
        self.assertEqual([(p.topic, p.retain) for p in replayed], [("r/open", True)])
        y = self.env.connect("y", MQTT_5)
        y.subscribe("r/#", 1)
        self.env.flush()
        self.assertEqual(sorted(publishes(y)), [("r/open", b"o"), ("r/secret", b"s")])

    def test_raisingReceiveAuthorizerIsADenial(self) -> None:
        """An authorizer raising on receive denies that delivery; the client stays."""
        self.authorizer.rules[("receive", "x", "t/bug")] = raising
        x = self.env.connect("x", MQTT_3_1_1)
        x.subscribe("t/#", 0)
        self.env.flush()
        x.take()
        self.publisher.publish("t/bug", b"b", 0)
        self.publisher.publish("t/ok", b"k", 0)
        self.env.flush()
        self.assertEqual(publishes(x), [("t/ok", b"k")])
        self.assertFalse(x.closed)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


# -- Deferred decisions and per-client order --------------------------------------------


class PendingDecisionTests(SynchronousTestCase):
    """
    While a Deferred decision is pending, that client's later packets and
    deliveries wait in order; everybody else is served (PL-03, PL-04).
    """

    def setUp(self) -> None:
        self.authorizer = ScriptedAuthorizer()
        self.env = Harness([self.authorizer])
        self.clock = self.env.clock
        self.subscriber = self.env.connect("sub")
        self.subscriber.subscribe("t/#", 1)
        self.env.flush()
        self.subscriber.take()

    def assertOtherClientsServed(self) -> None:
        """Another client connects, pings, publishes and is delivered to meanwhile."""
        other = self.env.connect(f"other{len(self.env._pumps)}", MQTT_3_1_1)
        other.ping()
        other.publish("t/other", b"x", 1, packetId=1)
        self.env.flush()
        self.assertEqual(other.takeRaw(), PINGRESP + bytes.fromhex("40 02 00 01"))
        self.assertEqual(publishes(self.subscriber), [("t/other", b"x")])
        other.disconnect()
        self.env.flush()

    def test_slowPublishDecisionKeepsOrder(self) -> None:
        """PL-03: a 5 s publish decision holds the client's PINGREQ and next PUBLISH, in order."""
        self.authorizer.rules[("publish", "t/slow")] = later(self.clock, 5, ALLOW)
        client = self.env.connect("slow", MQTT_3_1_1)
        client.publish("t/slow", b"1", 1, packetId=1)
        client.ping()
        client.publish("t/fast", b"2", 1, packetId=2)
        self.env.flush()
        self.assertEqual(client.takeRaw(), b"")
        self.assertOtherClientsServed()
        self.env.advance(4.9)
        self.assertEqual(client.takeRaw(), b"")
        self.assertEqual(publishes(self.subscriber), [])
        self.env.advance(0.1)
        self.assertEqual(client.takeRaw(),
                         bytes.fromhex("40 02 00 01") + PINGRESP + bytes.fromhex("40 02 00 02"))
        self.assertEqual(publishes(self.subscriber), [("t/slow", b"1"), ("t/fast", b"2")])

    def test_slowPublishDenialKeepsOrder(self) -> None:
        """A Deferred publish denial: v5 PUBACK 0x87 first, then the later packets' answers."""
        self.authorizer.rules[("publish", "t/slow")] = later(self.clock, 5, DENY)
        client = self.env.connect("slow", MQTT_5)
        client.publish("t/slow", b"1", 1, packetId=1)
        client.ping()
        client.publish("t/fast", b"2", 0)
        self.env.flush()
        self.assertEqual(client.take(), [])
        self.env.advance(5)
        packets = client.take()
        self.assertEqual([type(p).__name__ for p in packets], ["Puback", "Pingresp"])
        self.assertEqual((packets[0].packetId, packets[0].reasonCode),  # type: ignore[union-attr]
                         (1, NOT_AUTHORIZED))
        self.assertEqual(publishes(self.subscriber), [("t/fast", b"2")])

    def test_neverFiringPublishDecisionDeniesAtThePluginTimeout(self) -> None:
        """A publish decision that never comes denies at plugin-timeout; later packets follow."""
        env = Harness([self.authorizer], pluginTimeout=4.0)
        self.authorizer.rules[("publish", "t/stuck")] = never()
        client = env.connect("c", MQTT_5)
        client.publish("t/stuck", b"1", 1, packetId=1)
        client.ping()
        env.flush()
        env.advance(3.9)
        self.assertEqual(client.take(), [])
        env.advance(0.1)
        packets = client.take()
        self.assertEqual([type(p).__name__ for p in packets], ["Puback", "Pingresp"])
        self.assertEqual(packets[0].reasonCode, NOT_AUTHORIZED)  # type: ignore[union-attr]
        self.assertFalse(client.closed)
        self.flushLoggedErrors(defer.TimeoutError)

    def test_slowSubscribeDecisionHoldsSubackAndLaterPackets(self) -> None:
        """A pending subscribe decision holds the SUBACK and the packets after it."""
        self.authorizer.rules[("subscribe", "s/#")] = later(self.clock, 5, ALLOW)
        client = self.env.connect("slow", MQTT_3_1_1)
        client.subscribe("s/#", 1)
        client.ping()
        client.publish("t/after", b"2", 1, packetId=9)
        self.env.flush()
        self.assertEqual(client.takeRaw(), b"")
        self.assertOtherClientsServed()
        self.env.advance(5)
        self.assertEqual(client.takeRaw(), bytes.fromhex("90 03 00 01 01") + PINGRESP
                         + bytes.fromhex("40 02 00 09"))
        self.assertEqual(publishes(self.subscriber), [("t/after", b"2")])
        self.env.broker.publish("s/x", b"s", 1)
        self.env.flush()
        self.assertEqual(publishes(client), [("s/x", b"s")])

    def test_slowSubscribeDenial(self) -> None:
        """A Deferred subscribe denial gives SUBACK 0x80 (3.1.1) when it arrives."""
        self.authorizer.rules[("subscribe", "s/#")] = later(self.clock, 5, DENY)
        client = self.env.connect("slow", MQTT_3_1_1)
        client.subscribe("s/#", 1)
        self.env.flush()
        self.env.advance(5)
        self.assertEqual(client.takeRaw(), bytes.fromhex("90 03 00 01 80"))

    def test_slowReceiveDecisionHoldsLaterDeliveries(self) -> None:
        """A pending receive decision holds the later deliveries to that client, in order."""
        self.authorizer.rules[("receive", "slow", "t/slow")] = later(self.clock, 5, ALLOW)
        client = self.env.connect("slow", MQTT_3_1_1)
        client.subscribe("t/#", 1)
        self.env.flush()
        client.take()
        publisher = self.env.connect("pub")
        publisher.publish("t/slow", b"1", 1)
        publisher.publish("t/fast", b"2", 0)
        publisher.publish("t/fast", b"3", 1)
        self.env.flush()
        self.assertEqual(publishes(client), [])
        expected = [("t/slow", b"1"), ("t/fast", b"2"), ("t/fast", b"3")]
        self.assertEqual(publishes(self.subscriber), expected)
        self.env.advance(5)
        self.assertEqual(publishes(client), expected)

    def test_slowReceiveDenialKeepsOrderOfTheRest(self) -> None:
        """A Deferred receive denial drops that message; the ones held behind it follow in order."""
        self.authorizer.rules[("receive", "slow", "t/slow")] = later(self.clock, 5, DENY)
        client = self.env.connect("slow", MQTT_5)
        client.subscribe("t/#", 1)
        self.env.flush()
        client.take()
        publisher = self.env.connect("pub")
        for topic, payload in (("t/a", b"1"), ("t/slow", b"2"), ("t/b", b"3"), ("t/c", b"4")):
            publisher.publish(topic, payload, 1)
        self.env.flush()
        self.assertEqual(publishes(client), [("t/a", b"1")])
        self.env.advance(5)
        self.assertEqual(publishes(client), [("t/b", b"3"), ("t/c", b"4")])

    def test_alreadyFiredReceiveDecisionDeliversAtOnce(self) -> None:
        """A receive decision returned as an already-fired Deferred delivers without delay."""
        self.authorizer.rules[("receive", "c", "t/x")] = lambda: succeed(ALLOW)
        client = self.env.connect("c", MQTT_3_1_1)
        client.subscribe("t/#", 0)
        self.env.flush()
        client.take()
        self.env.broker.publish("t/x", b"1", 0)
        self.env.flush()
        self.assertEqual(publishes(client), [("t/x", b"1")])

    def test_alreadyFiredReceiveDecisionsForQueuedAndRetained(self) -> None:
        """Already-fired Deferred receive decisions release queued and retained deliveries."""
        self.authorizer.rules[("receive", "c", "t/q")] = lambda: succeed(ALLOW)
        self.authorizer.rules[("receive", "c", "r/a")] = lambda: succeed(ALLOW)
        self.authorizer.rules[("receive", "c", "r/b")] = lambda: succeed(DENY)
        client = self.env.connect("c", MQTT_3_1_1, cleanStart=False)
        client.subscribe("t/#", 1)
        self.env.flush()
        client.disconnect()
        self.env.flush()
        self.env.broker.publish("t/q", b"queued", 1)
        self.env.broker.publish("r/a", b"a", 1, retain=True)
        self.env.broker.publish("r/b", b"b", 1, retain=True)
        client = self.env.connect("c", MQTT_3_1_1, cleanStart=False)
        self.env.flush()
        self.assertEqual(publishes(client), [("t/q", b"queued")])
        client.subscribe("r/#", 1)
        self.env.flush()
        self.assertEqual(publishes(client), [("r/a", b"a")])

    def test_alreadyFiredSubscribeDecision(self) -> None:
        """A subscribe decision returned as an already-fired Deferred is used at once."""
        self.authorizer.rules[("subscribe", "s/#")] = lambda: succeed(ALLOW)
        self.authorizer.rules[("subscribe", "x/#")] = lambda: succeed(DENY)
        client = self.env.connect("c", MQTT_3_1_1)
        client.send(Subscribe(4, (SubscriptionRequest("s/#", 1), SubscriptionRequest("x/#", 1))))
        client.ping()
        self.env.flush()
        self.assertEqual(client.takeRaw(), bytes.fromhex("90 04 00 04 01 80") + PINGRESP)

    def test_alreadyFiredPublishDecision(self) -> None:
        """A publish decision returned as an already-fired Deferred is used at once."""
        self.authorizer.rules[("publish", "t/x")] = lambda: succeed(ALLOW)
        self.authorizer.rules[("publish", "t/y")] = lambda: succeed(DENY)
        client = self.env.connect("c", MQTT_5)
        client.publish("t/x", b"1", 1, packetId=1)
        client.publish("t/y", b"2", 1, packetId=2)
        self.env.flush()
        packets = client.take()
        self.assertEqual([(p.packetId, p.reasonCode) for p in packets],  # type: ignore[union-attr]
                         [(1, 0), (2, NOT_AUTHORIZED)])
        self.assertEqual(publishes(self.subscriber), [("t/x", b"1")])

    # -- PL-04: chains of plug-ins --

    def chainEnv(self, *authorizers: ScriptedAuthorizer) -> tuple[Harness, RecordingClient]:
        env = Harness(list(authorizers))
        return env, env.connect("c", MQTT_5)

    def publishAnswer(self, env: Harness, client: RecordingClient, seconds: float) -> int:
        client.publish("t/x", b"1", 1, packetId=1)
        env.flush()
        if seconds:
            env.advance(seconds - 0.1)
            self.assertEqual(client.take(), [])
            env.advance(0.1)
        [puback] = client.take()
        assert isinstance(puback, Puback)
        return puback.reasonCode

    def test_chainAllDeferDenies(self) -> None:
        """PL-04: every plug-in defers (NEXT) → denied, also when each answers later."""
        first, second = ScriptedAuthorizer(), ScriptedAuthorizer()
        env, client = self.chainEnv(first, second)
        for a in (first, second):
            a.rules[("publish", "t/x")] = NEXT
        self.assertEqual(self.publishAnswer(env, client, 0), NOT_AUTHORIZED)
        authorizers = [ScriptedAuthorizer(ALLOW, f"a{i}") for i in range(3)]
        env = Harness(authorizers)
        for a in authorizers:
            a.rules[("publish", "t/x")] = later(env.clock, 1, NEXT)
        client = env.connect("c", MQTT_5)
        client.publish("t/x", b"1", 1, packetId=1)
        env.flush()
        for _ in range(2):
            env.advance(1)
            self.assertEqual(client.take(), [])
        env.advance(1)
        [puback] = client.take()
        assert isinstance(puback, Puback)
        self.assertEqual(puback.reasonCode, NOT_AUTHORIZED)
        self.assertEqual([len(a.asked("publish")) for a in authorizers], [1, 1, 1])

    def test_chainFirstDenies(self) -> None:
        """PL-04: the first plug-in denies (later) → denied; the next one is not asked."""
        first, second = ScriptedAuthorizer(), ScriptedAuthorizer()
        env, client = self.chainEnv(first, second)
        first.rules[("publish", "t/x")] = later(env.clock, 2, DENY)
        self.assertEqual(self.publishAnswer(env, client, 2), NOT_AUTHORIZED)
        self.assertEqual(second.asked("publish"), [])

    def test_chainFirstErrors(self) -> None:
        """PL-04: the first plug-in fails (later) → denied; the next one is not asked."""
        first, second = ScriptedAuthorizer(), ScriptedAuthorizer()
        env, client = self.chainEnv(first, second)
        first.rules[("publish", "t/x")] = later(env.clock, 2, ZeroDivisionError("bug"))
        self.assertEqual(self.publishAnswer(env, client, 2), NOT_AUTHORIZED)
        self.assertEqual(second.asked("publish"), [])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_plainAnswersMakeNoDeferredPerMessage(self) -> None:
        """With plain answers, routing a QoS 1 message to a subscriber makes no Deferred."""
        client = self.env.connect("c", MQTT_3_1_1)
        made: list[Any] = []
        original = Deferred.__init__

        def counting(self: Deferred[Any], *args: Any, **kwargs: Any) -> None:
            made.append(self)
            original(self, *args, **kwargs)

        self.patch(Deferred, "__init__", counting)
        client.publish("t/x", b"1", 1)
        self.env.flush()
        self.assertEqual(publishes(self.subscriber), [("t/x", b"1")])
        self.assertEqual(made, [])


# -- sessions belong to identities (AU-11, AU-12) ---------------------------------------


@implementer(ICredentialsChecker)
class PairChecker:
    """
    Accepts user name and password pairs; an unknown user is "not mine".
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, **pairs: str) -> None:
        self.pairs = {name.encode(): secret.encode() for name, secret in pairs.items()}

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        expected = self.pairs.get(credentials.username)
        if expected is None:
            return fail(UnhandledCredentials())
        if not hmac.compare_digest(expected, credentials.password):
            return fail(UnauthorizedLogin())
        return succeed(credentials.username)


@implementer(ICredentialsChecker)
class BrokenChecker:
    """
    A checker with a bug.
    """

    credentialInterfaces = (IUsernamePassword,)

    def requestAvatarId(self, credentials: Any) -> Any:
        raise ZeroDivisionError("checker bug")


def portal(*checkers: Any) -> Portal:
    """
    The portal mqttd builds for an authenticating listener.
    """
    return Portal(MQTTRealm(), [CheckerChain(checkers)])


class AuthenticationTests(SynchronousTestCase):
    """
    How authentication failures are answered (docs/plugins.md,
    "Authentication"; DESIGN.md section 2).
    """

    def setUp(self) -> None:
        self.env = Harness(portal=portal(PairChecker(alice="a-pw")))

    def attempt(self, level: int, **args: Any) -> RecordingClient:
        client = self.env.openClient(level)
        client.connect("c1", **args)
        self.env.flush()
        return client

    def assertV5Code(self, client: RecordingClient, code: int) -> None:
        [connack] = client.take()
        assert isinstance(connack, Connack)
        self.assertEqual(connack.reasonCode, code)
        self.assertTrue(client.closed)

    def test_rightPassword(self) -> None:
        """The right password connects, as the user."""
        client = self.env.connect("c1", MQTT_3_1_1, username="alice", password=b"a-pw")
        self.assertEqual(self.env.server(client).clientInfo.username, "alice")

    def test_wrongPassword(self) -> None:
        """A wrong password: 3.1.1 C{20 02 00 04}, v5 0x86."""
        client = self.attempt(MQTT_3_1_1, username="alice", password=b"wrong")
        self.assertEqual(bytes(client.raw), CONNACK_BAD_CREDENTIALS)
        self.assertTrue(client.closed)
        self.assertV5Code(self.attempt(MQTT_5, username="alice", password=b"wrong"),
                          BAD_CREDENTIALS)

    def test_unknownUser(self) -> None:
        """A user name no plug-in knows: 3.1.1 C{20 02 00 04}, v5 0x86 (docs/plugins.md)."""
        client = self.attempt(MQTT_3_1_1, username="zed", password=b"x")
        self.assertEqual(bytes(client.raw), CONNACK_BAD_CREDENTIALS)
        self.assertV5Code(self.attempt(MQTT_5, username="zed", password=b"x"), BAD_CREDENTIALS)

    def test_noUserName(self) -> None:
        """No user name and no anonymous access: 3.1.1 C{20 02 00 05}, v5 0x87."""
        client = self.attempt(MQTT_3_1_1)
        self.assertEqual(bytes(client.raw), CONNACK_NOT_AUTHORIZED)
        self.assertV5Code(self.attempt(MQTT_5), NOT_AUTHORIZED)

    def test_checkerErrorRefuses(self) -> None:
        """PL-01: an authenticator that raises refuses the client (fail closed)."""
        self.env.factory.portal = portal(BrokenChecker(), PairChecker(alice="a-pw"))
        client = self.attempt(MQTT_3_1_1, username="alice", password=b"a-pw")
        self.assertIn(bytes(client.raw), (CONNACK_BAD_CREDENTIALS, CONNACK_NOT_AUTHORIZED))
        self.assertTrue(client.closed)
        self.assertNotIn("c1", self.env.broker.sessions)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class SessionOwnershipTests(SynchronousTestCase):
    """
    AU-11, AU-12: a session made by an authenticated identity can be
    resumed, taken over or wiped only by that identity.
    """

    def setUp(self) -> None:
        self.env = Harness(
            portal=portal(PairChecker(alice="a-pw", bob="b-pw"), AllowAnonymousAccess())
        )
        self.plain = MQTTServerFactory(self.env.broker)

    def ownSession(self, level: int) -> RecordingClient:
        """
        Alice connects as C{dev1} with a persistent session subscribed to C{t/#}.
        """
        args: dict[str, Any] = {"cleanStart": False}
        if level == MQTT_5:
            args["properties"] = PERSISTENT
        alice = self.env.connect("dev1", level, username="alice", password=b"a-pw", **args)
        alice.subscribe("t/#", 1)
        self.env.flush()
        alice.take()
        return alice

    def intrude(self, level: int, cleanStart: bool, factory: MQTTServerFactory | None = None,
                **credentials: Any) -> RecordingClient:
        client = self.env.openClient(level, factory=factory)
        args: dict[str, Any] = {}
        if level == MQTT_5:
            args["properties"] = PERSISTENT
        client.connect("dev1", cleanStart=cleanStart, **credentials, **args)
        self.env.flush()
        return client

    def assertRefused(self, client: RecordingClient) -> None:
        if client.protocolLevel == MQTT_5:
            packets = client.take()
            self.assertEqual([(type(p), p.reasonCode) for p in packets],  # type: ignore[attr-defined]
                             [(Connack, NOT_AUTHORIZED)])
        else:
            self.assertEqual(bytes(client.raw), CONNACK_NOT_AUTHORIZED)
        self.assertTrue(client.closed)

    def intruders(self) -> list[tuple[int, bool, MQTTServerFactory | None, dict[str, Any]]]:
        """
        Every other identity, with clean start 0 and 1, 3.1.1 and v5: bob,
        an anonymous client, and a client of a listener without
        authentication claiming to be alice.
        """
        who: list[tuple[MQTTServerFactory | None, dict[str, Any]]] = [
            (None, {"username": "bob", "password": b"b-pw"}),
            (None, {}),
            (self.plain, {"username": "alice", "password": b"a-pw"}),
            (self.plain, {}),
        ]
        return [(level, clean, factory, creds) for level in (MQTT_3_1_1, MQTT_5)
                for clean in (False, True) for factory, creds in who]

    def test_otherIdentityCannotTakeOverOnlineSession(self) -> None:
        """While alice is connected, nobody else can use her client id; her session is intact."""
        for level in (MQTT_3_1_1, MQTT_5):
            alice = self.ownSession(level)
            session = self.env.broker.sessions["dev1"]
            for intruderLevel, clean, factory, creds in self.intruders():
                intruder = self.intrude(intruderLevel, clean, factory, **creds)
                self.assertRefused(intruder)
                self.assertFalse(alice.closed, (intruderLevel, clean, creds))
            self.assertIs(self.env.broker.sessions["dev1"], session)
            self.assertIs(self.env.broker.connections["dev1"], self.env.server(alice))
            self.assertEqual(set(session.subscriptions), {"t/#"})
            self.env.broker.publish("t/x", b"mine", 1)
            self.env.flush()
            self.assertEqual(publishes(alice), [("t/x", b"mine")])
            alice.disconnect()
            self.env.flush()
            self.env.broker.endSession(self.env.broker.sessions["dev1"])

    def test_otherIdentityCannotResumeOrWipeOfflineSession(self) -> None:
        """While alice is away, nobody else can resume or wipe her session; she can resume it."""
        for level in (MQTT_3_1_1, MQTT_5):
            alice = self.ownSession(level)
            alice.disconnect()
            self.env.flush()
            self.env.broker.publish("t/x", b"queued", 1)
            session = self.env.broker.sessions["dev1"]
            self.assertEqual(len(session.queue), 1)
            for intruderLevel, clean, factory, creds in self.intruders():
                self.assertRefused(self.intrude(intruderLevel, clean, factory, **creds))
            self.assertIs(self.env.broker.sessions["dev1"], session)
            self.assertEqual((set(session.subscriptions), len(session.queue)), ({"t/#"}, 1))
            args: dict[str, Any] = {"properties": PERSISTENT} if level == MQTT_5 else {}
            alice = self.env.connect("dev1", level, username="alice", password=b"a-pw",
                                     cleanStart=False, **args)
            self.assertTrue(alice.sessionPresent)  # type: ignore[attr-defined]
            self.env.flush()
            self.assertEqual(publishes(alice), [("t/x", b"queued")])
            alice.disconnect()
            self.env.flush()
            self.env.broker.endSession(self.env.broker.sessions["dev1"])

    def test_ownerCanTakeOverItself(self) -> None:
        """Alice connecting again with her client id takes her own session over."""
        first = self.ownSession(MQTT_3_1_1)
        second = self.env.connect("dev1", MQTT_3_1_1, username="alice", password=b"a-pw",
                                  cleanStart=False)
        self.assertTrue(second.sessionPresent)  # type: ignore[attr-defined]
        self.assertTrue(first.closed)
        self.assertEqual(set(self.env.broker.sessions["dev1"].subscriptions), {"t/#"})


# -- pattern substitution (AU-07) and empty ACL (AU-08) -----------------------------------


class AclFileThroughTheBrokerTests(SynchronousTestCase):
    """
    The C{aclfile} authorizer seen by clients: pattern substitution cannot
    be abused with wildcard client ids or user names (AU-07); an empty file
    denies everything (AU-08).
    """

    def envWith(self, text: str) -> Harness:
        path = writeFile(os.path.join(tempDirectory(self), "acl"), text)
        return Harness([AclFileAuthorizer(path)])

    def test_wildcardIdentitiesGetNoPatternAccess(self) -> None:
        """AU-07: client ids C{+}, C{#}, C{a/b} and user name C{#} gain nothing from patterns."""
        env = self.envWith("pattern readwrite dev/%c/#\npattern readwrite users/%u/#\n")
        probes = [("+", None, "dev/+/#"), ("#", None, "dev/#"), ("a/b", None, "dev/a/b/#"),
                  ("u1", "#", "users/#"), ("u2", "+", "users/+/x")]
        for clientId, username, topicFilter in probes:
            c = env.connect(clientId, MQTT_3_1_1, username=username,
                            password=b"x" if username else None)
            c.subscribe(topicFilter, 1)
            c.publish(topicFilter.replace("#", "x").replace("+", "y"), b"p", 1, packetId=7)
            env.flush()
            raw = c.takeRaw()
            self.assertEqual(raw, bytes.fromhex("90 03 00 01 80 40 02 00 07"),
                             (clientId, username))
            c.disconnect()
            env.flush()
        # The literal identity still works: dev/c1/... for client c1.
        c1 = env.connect("c1", MQTT_3_1_1)
        c1.subscribe("dev/c1/#", 1)
        c1.publish("dev/c1/status", b"ok", 1, packetId=2)
        env.flush()
        self.assertEqual(publishes(c1), [("dev/c1/status", b"ok")])

    def test_emptyAclDeniesEverything(self) -> None:
        """AU-08: an empty (comments only) ACL file denies publish and subscribe."""
        env = self.envWith("# nothing here\n\n")
        c = env.connect("c", MQTT_3_1_1, username="alice", password=b"x")
        c.subscribe("a/#", 0)
        c.publish("a/b", b"p", 1, packetId=3)
        env.flush()
        self.assertEqual(c.takeRaw(), bytes.fromhex("90 03 00 01 80 40 02 00 03"))
        self.assertEqual(env.broker.retained("#"), [])


# -- reload (AU-09) ------------------------------------------------------------------------


class ReloadTests(SynchronousTestCase):
    """
    C{Broker.reload}: a plug-in whose reload fails keeps its old
    configuration, the error is logged, and the others reload (AU-09).
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.aclPath = writeFile(os.path.join(self.directory, "acl"),
                                 "user alice\ntopic readwrite a/#\n")
        self.acl = AclFileAuthorizer(self.aclPath)
        self.env = Harness([self.acl])
        self.env.broker.addReloadable(self.acl)
        self.events = captureLog(self)

    def subackFor(self, topicFilter: str) -> bytes:
        c = self.env.connect("alice1", MQTT_3_1_1, username="alice", password=b"x")
        c.subscribe(topicFilter, 0)
        self.env.flush()
        raw = c.takeRaw()
        c.disconnect()
        self.env.flush()
        return raw

    def errors(self) -> list[str]:
        return [formatEvent(e) for e in self.events if e.get("log_level") == LogLevel.error]

    def test_brokenFileKeepsTheOldRules(self) -> None:
        """A malformed ACL: reload() is False, the error is logged, the old rules hold."""
        writeFile(self.aclPath, "user alice\ntopic readwrite b/#\ntopik read c\n")
        self.assertIs(self.env.broker.reload(), False)
        [error] = self.errors()
        self.assertIn(self.aclPath, error)
        self.assertIn("line 3", error)
        self.assertEqual(self.subackFor("a/#"), bytes.fromhex("90 03 00 01 00"))
        self.assertEqual(self.subackFor("b/#"), bytes.fromhex("90 03 00 01 80"))

    def test_missingFileKeepsTheOldRules(self) -> None:
        """An unreadable ACL file: reload() is False and the old rules hold."""
        os.unlink(self.aclPath)
        self.assertIs(self.env.broker.reload(), False)
        self.assertEqual(len(self.errors()), 1)
        self.assertEqual(self.subackFor("a/#"), bytes.fromhex("90 03 00 01 00"))

    def test_goodFileReplacesTheRules(self) -> None:
        """A valid new ACL: reload() is True and the new rules apply at once."""
        writeFile(self.aclPath, "user alice\ntopic readwrite b/#\n")
        self.assertIs(self.env.broker.reload(), True)
        self.assertEqual(self.errors(), [])
        self.assertEqual(self.subackFor("a/#"), bytes.fromhex("90 03 00 01 80"))
        self.assertEqual(self.subackFor("b/#"), bytes.fromhex("90 03 00 01 00"))

    def test_oneFailureDoesNotStopTheOthers(self) -> None:
        """A reloadable that raises does not keep the following ones from reloading."""

        class Failing:
            def reload(self) -> None:
                raise ValueError("bad configuration")

        class Counting:
            count = 0

            def reload(self) -> None:
                self.count += 1

        first, last = Counting(), Counting()
        broker = Harness().broker
        for plugin in (first, Failing(), last):
            broker.addReloadable(plugin)  # type: ignore[arg-type]
        self.assertIs(broker.reload(), False)
        self.assertEqual((first.count, last.count), (1, 1))
        [error] = self.errors()
        self.assertIn("bad configuration", error)


# -- password checks (AU-13) ---------------------------------------------------------------


class PasswordCheckTests(SynchronousTestCase):
    """
    The C{passwd} checker compares in constant time and does the same work
    for unknown users (AU-13).
    """

    def setUp(self) -> None:
        source = os.path.join(os.path.dirname(__file__), "data", "mosquitto.passwd")
        self.checker = PasswordFileChecker(source, threaded=False)
        self.compared: list[tuple[bytes, bytes]] = []
        original = hmac.compare_digest

        def spy(a: Any, b: Any) -> bool:
            self.compared.append((a, b))
            return original(a, b)

        self.patch(hmac, "compare_digest", spy)

    def test_knownUsers(self) -> None:
        """alice, bob (password with colon and space) and carol ($6$) are accepted."""
        for user, password in ((b"alice", b"alice-secret"), (b"bob", b"b:b 0b"),
                               (b"carol", b"carol6")):
            d = self.checker.requestAvatarId(UsernamePassword(user, password))
            self.assertEqual(self.successResultOf(d), user)

    def test_constantTimeComparison(self) -> None:
        """Right, wrong and unknown-user checks each make one C{hmac.compare_digest} call."""
        self.successResultOf(self.checker.requestAvatarId(UsernamePassword(b"alice",
                                                                           b"alice-secret")))
        self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(b"alice", b"alicf")),
                             UnauthorizedLogin)
        self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(b"zed", b"x")),
                             UnhandledCredentials)
        self.assertEqual(len(self.compared), 3)
        self.assertEqual({len(a) for a, _ in self.compared}, {64})


class PipelinedRefusalTests(SynchronousTestCase):
    """
    Catalogue FR-11: nothing sent after a refused CONNECT is processed
    [MQTT-3.1.4-5].
    """

    def test_wrongPasswordThenRetainedPublish(self) -> None:
        """A wrong password and a retained PUBLISH in one write: 0x04, closed, nothing stored."""
        from mqttd.testing import InMemoryBroker

        env = InMemoryBroker()
        env.factory.portal = Portal(MQTTRealm(), [CheckerChain([PasswordFileChecker(
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mosquitto.passwd"),
            threaded=False,
        )])])
        client = env.openClient()
        connect = bytes.fromhex("10 1B 00 04 4D 51 54 54 04 C2 00 0A 00 01 70 00 05") + b"alice"
        connect += bytes.fromhex("00 05") + b"wrong"
        publish = bytes.fromhex("31 07 00 01 72") + b"kept"
        self.assertEqual(connect[1], len(connect) - 2)
        client.sendRaw(connect + publish)
        env.flush()
        self.assertEqual([p.reasonCode for p in client.take()], [0x04])  # type: ignore[union-attr]
        self.assertTrue(client.closed)
        self.assertEqual(env.broker.retained("#"), [])
