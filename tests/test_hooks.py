"""
Tests for the message hooks: L{mqttd.hooks.HookChain} (order, changed
copies, L{Drop}, fail-closed errors, wrong answers, Deferred answers and
their timeouts, the plain-value fast path, events), inbound interception
through the protocol (changed, dropped and delayed PUBLISHes for MQTT 3.1.1
and 5.0, in-process publishes and wills), outbound interception per
subscriber (changes, drops, delays, retained replays, offline queues,
resends), the lifecycle events, and a broker without hooks doing no hook
work.

Expected bytes and reason codes come from the MQTT 3.1.1/5.0
specifications, C{docs/plugins.md} ("Message hooks") and DESIGN.md, never
from mqttd's output.  Time is a driven L{Clock}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from mqttd.broker import Broker
from mqttd.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Puback,
    Pubrel,
    Will,
)
from mqttd.codec.properties import PropertyId
from mqttd.config import BrokerConfig
from mqttd.hooks import HOOK_FAILED, Drop, HookChain, MessageHook
from mqttd.interfaces import IClientInfo, IMessageHook
from mqttd.message import Message
from mqttd.protocol import MQTTServerFactory, MQTTServerProtocol
from mqttd.testing import MQTTTestClient

PINGRESP = bytes.fromhex("d0 00")
PERSISTENT = {PropertyId.SESSION_EXPIRY_INTERVAL: 3600}


def pid(packetId: int) -> bytes:
    """
    A packet identifier as two bytes.
    """
    return packetId.to_bytes(2, "big")


def v5Ack(header: int, packetId: int, code: int, reason: str) -> bytes:
    """
    A v5 PUBACK/PUBREC with a reason code and a Reason String (0x1F), built
    from MQTT 5.0 sections 3.4 and 2.2.2 (short enough for one-byte lengths).
    """
    text = reason.encode("utf-8")
    props = bytes((0x1F,)) + len(text).to_bytes(2, "big") + text
    body = pid(packetId) + bytes((code, len(props))) + props
    return bytes((header, len(body))) + body


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
        The bytes received since the last call (the decoded packets are
        forgotten too).
        """
        raw = bytes(self.raw)
        self.raw.clear()
        self.received.clear()
        return raw

    def payloads(self) -> list[bytes]:
        """
        Take the received packets and return the PUBLISH payloads.
        """
        self.raw.clear()
        return [p.payload for p in self.publishes()]


class Harness:
    """
    A L{Broker} built with hooks on a driven clock, and test clients
    connected to it over C{iosim}.
    """

    def __init__(self, hooks: list[Any] | tuple[Any, ...] = (), **settings: Any) -> None:
        self.clock = Clock()
        config = BrokerConfig().replace(**settings) if settings else BrokerConfig()
        self.broker = Broker(config, clock=self.clock, hooks=hooks)
        self.factory = MQTTServerFactory(self.broker)
        self._pumps: list[iosim.IOPump] = []

    def openClient(self, protocolLevel: int = MQTT_3_1_1, autoAck: bool = True) -> RecordingClient:
        """
        Open a connection without sending anything.
        """
        client = RecordingClient(protocolLevel, autoAck)
        server = self.factory.buildProtocol(None)
        assert server is not None
        pump = iosim.connect(
            server,
            iosim.makeFakeServer(server),
            client,
            iosim.makeFakeClient(client),
            greet=False,
            clock=self.clock,
        )
        client.server = server
        self._pumps.append(pump)
        return client

    def connect(
        self,
        clientId: str,
        protocolLevel: int = MQTT_3_1_1,
        autoAck: bool = True,
        **connectArgs: Any,
    ) -> RecordingClient:
        """
        Connect and check that the CONNACK accepts the client (it is
        consumed).
        """
        client = self.openClient(protocolLevel, autoAck)
        client.connect(clientId, **connectArgs)
        self.flush()
        packets = client.take()
        if not packets or not isinstance(packets[0], Connack) or packets[0].reasonCode:
            raise AssertionError(f"CONNECT of {clientId!r} refused: {packets!r}")
        client.connack = packets[0]
        client.received.extend(packets[1:])
        client.raw.clear()
        return client

    def subscriber(
        self,
        clientId: str,
        topicFilter: str,
        qos: int = 1,
        protocolLevel: int = MQTT_3_1_1,
        **connectArgs: Any,
    ) -> RecordingClient:
        """
        A connected client subscribed to one filter (its SUBACK consumed).
        """
        client = self.connect(clientId, protocolLevel, **connectArgs)
        client.subscribe(topicFilter, qos)
        self.flush()
        client.takeRaw()
        return client

    def server(self, client: MQTTTestClient) -> MQTTServerProtocol:
        """
        The broker side of a test client's connection.
        """
        server: MQTTServerProtocol = client.server
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


class Recorder(MessageHook):
    """
    A hook that changes nothing and records every call.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def onPublish(self, client: Any, message: Message) -> Any:
        self.calls.append(("onPublish", client, message))
        return message

    def onDeliver(self, client: Any, message: Message) -> Any:
        self.calls.append(("onDeliver", client, message))
        return message

    def connected(self, client: Any) -> None:
        self.calls.append(("connected", client.clientId))

    def disconnected(self, client: Any, reason: str) -> None:
        self.calls.append(("disconnected", client.clientId, reason))

    def subscribed(self, client: Any, topicFilter: str, qos: int) -> None:
        self.calls.append(("subscribed", client.clientId, topicFilter, qos))

    def unsubscribed(self, client: Any, topicFilter: str) -> None:
        self.calls.append(("unsubscribed", client.clientId, topicFilter))

    def sessionExpired(self, clientId: str) -> None:
        self.calls.append(("sessionExpired", clientId))

    def messageDropped(self, clientId: str, message: Message, reason: str) -> None:
        self.calls.append(("messageDropped", clientId, message, reason))

    def named(self, *names: str) -> list[tuple[Any, ...]]:
        """
        The recorded calls of the given methods.
        """
        return [call for call in self.calls if call[0] in names]

    def events(self) -> list[tuple[Any, ...]]:
        """
        The lifecycle events recorded, except messageDropped (whose
        message object is not comparable).
        """
        return [
            call
            for call in self.calls
            if call[0] not in ("onPublish", "onDeliver", "messageDropped")
        ]

    def drops(self) -> list[tuple[str, bytes, str]]:
        """
        The messageDropped calls as (client id, payload, reason).
        """
        return [(c[1], c[2].payload, c[3]) for c in self.named("messageDropped")]


class Tagger(MessageHook):
    """
    Appends its tag to the payload, recording what it saw.
    """

    def __init__(self, tag: bytes, seen: list[tuple[bytes, bytes]]) -> None:
        self.tag = tag
        self.seen = seen

    def onPublish(self, client: Any, message: Message) -> Any:
        self.seen.append((self.tag, message.payload))
        return message.replace(payload=message.payload + self.tag)

    def onDeliver(self, client: Any, message: Message) -> Any:
        self.seen.append((self.tag, message.payload))
        return message.replace(payload=message.payload + self.tag)


class Answering(MessageHook):
    """
    Answers whatever C{answer(client, message)} returns, to both
    interceptors.
    """

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def onPublish(self, client: Any, message: Message) -> Any:
        return self.answer(client, message)

    def onDeliver(self, client: Any, message: Message) -> Any:
        return self.answer(client, message)


class OnPublish(MessageHook):
    """
    Answers whatever C{answer(client, message)} returns to onPublish only.
    """

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def onPublish(self, client: Any, message: Message) -> Any:
        return self.answer(client, message)


class OnDeliver(MessageHook):
    """
    Answers whatever C{answer(client, message)} returns to onDeliver only.
    """

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def onDeliver(self, client: Any, message: Message) -> Any:
        return self.answer(client, message)


class Failing(MessageHook):
    """
    Raises in every method.
    """

    def _fail(self, *args: Any) -> Any:
        raise ZeroDivisionError("hook bug")

    onPublish = onDeliver = connected = disconnected = _fail
    subscribed = unsubscribed = sessionExpired = messageDropped = _fail


def countDeferreds(case: SynchronousTestCase) -> list[int]:
    """
    Count every Deferred made from now on (the count is C{result[0]}).
    """
    made = [0]
    original = Deferred.__init__

    def counting(self: Deferred[Any], *args: Any, **kwargs: Any) -> None:
        made[0] += 1
        original(self, *args, **kwargs)

    case.patch(Deferred, "__init__", counting)
    return made


# -- HookChain ---------------------------------------------------------------------


class HookChainTests(SynchronousTestCase):
    """
    L{HookChain} on its own.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.message = Message("t/1", b"x", 1)

    def test_messageHookProvidesInterface(self) -> None:
        """MessageHook (and a subclass) provides IMessageHook."""
        verifyObject(IMessageHook, MessageHook())
        verifyObject(IMessageHook, Recorder())

    def test_failedIsDropWith0x80(self) -> None:
        """HOOK_FAILED is a Drop with 0x80 Unspecified error; Drop defaults to 0x83."""
        self.assertIsInstance(HOOK_FAILED, Drop)
        self.assertEqual(HOOK_FAILED.reasonCode, 0x80)
        self.assertEqual(Drop().reasonCode, 0x83)

    def test_doNothingHooksAnswerTheSameMessage(self) -> None:
        """Hooks that change nothing give back the very message object."""
        chain = HookChain([MessageHook(), MessageHook()], self.clock)
        self.assertIs(chain.publish(None, self.message), self.message)
        self.assertIs(chain.deliver(None, self.message), self.message)

    def test_inOrderEachGetsThePreviousAnswer(self) -> None:
        """Hooks run in order; each gets the copy the previous one answered."""
        seen: list[tuple[bytes, bytes]] = []
        chain = HookChain([Tagger(b"1", seen), Tagger(b"2", seen), Tagger(b"3", seen)], self.clock)
        result = chain.publish(None, self.message)
        assert isinstance(result, Message)
        self.assertEqual(result.payload, b"x123")
        self.assertEqual(seen, [(b"1", b"x"), (b"2", b"x1"), (b"3", b"x12")])
        self.assertEqual(self.message.payload, b"x")
        del seen[:]
        result = chain.deliver(None, self.message)
        assert isinstance(result, Message)
        self.assertEqual(result.payload, b"x123")
        self.assertEqual(seen, [(b"1", b"x"), (b"2", b"x1"), (b"3", b"x12")])

    def test_dropStopsTheChain(self) -> None:
        """A Drop is the answer; later hooks are not asked."""
        drop = Drop(0x99, "no")
        later = Recorder()
        chain = HookChain([Answering(lambda c, m: drop), later], self.clock)
        self.assertIs(chain.publish(None, self.message), drop)
        self.assertIs(chain.deliver(None, self.message), drop)
        self.assertEqual(later.calls, [])

    def test_exceptionFailsClosed(self) -> None:
        """An exception gives HOOK_FAILED (logged); later hooks are not asked."""
        later = Recorder()
        chain = HookChain([Failing(), later], self.clock)
        self.assertIs(chain.publish(None, self.message), HOOK_FAILED)
        self.assertIs(chain.deliver(None, self.message), HOOK_FAILED)
        self.assertEqual(later.calls, [])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_wrongAnswerFailsClosed(self) -> None:
        """An answer that is not a Message, a Drop or a Deferred gives HOOK_FAILED."""
        for wrong in (None, True, b"payload", "text", ("t", b"x")):
            later = Recorder()
            chain = HookChain([Answering(lambda c, m, w=wrong: w), later], self.clock)
            self.assertIs(chain.publish(None, self.message), HOOK_FAILED, wrong)
            self.assertIs(chain.deliver(None, self.message), HOOK_FAILED, wrong)
            self.assertEqual(later.calls, [], wrong)

    def test_deferredAnswerContinuesWhenItFires(self) -> None:
        """A Deferred answer: the next hook runs with its result when it fires."""
        pending: Deferred[Any] = Deferred()
        seen: list[tuple[bytes, bytes]] = []
        chain = HookChain([Answering(lambda c, m: pending), Tagger(b"2", seen)], self.clock)
        result = chain.publish(None, self.message)
        assert isinstance(result, Deferred)
        self.assertNoResult(result)
        self.assertEqual(seen, [])
        pending.callback(self.message.replace(payload=b"y"))
        answer = self.successResultOf(result)
        self.assertEqual(answer.payload, b"y2")
        self.assertEqual(seen, [(b"2", b"y")])

    def test_deferredDropStopsTheChain(self) -> None:
        """A Deferred firing with a Drop: that Drop, later hooks not asked."""
        pending: Deferred[Any] = Deferred()
        later = Recorder()
        chain = HookChain([Answering(lambda c, m: pending), later], self.clock)
        result = chain.deliver(None, self.message)
        drop = Drop(0x97, "quota")
        pending.callback(drop)
        self.assertIs(self.successResultOf(result), drop)
        self.assertEqual(later.calls, [])

    def test_twoDeferredAnswers(self) -> None:
        """Two hooks answering Deferreds in a row: the result is the second's."""
        first: Deferred[Any] = Deferred()
        second: Deferred[Any] = Deferred()
        chain = HookChain(
            [Answering(lambda c, m: first), Answering(lambda c, m: second)], self.clock
        )
        result = chain.publish(None, self.message)
        first.callback(self.message.replace(payload=b"1"))
        self.assertNoResult(result)
        second.callback(self.message.replace(payload=b"2"))
        self.assertEqual(self.successResultOf(result).payload, b"2")

    def test_deferredWrongAnswerFailsClosed(self) -> None:
        """A Deferred firing with something that is not a Message or a Drop: HOOK_FAILED."""
        pending: Deferred[Any] = Deferred()
        chain = HookChain([Answering(lambda c, m: pending)], self.clock)
        result = chain.publish(None, self.message)
        pending.callback(True)
        self.assertIs(self.successResultOf(result), HOOK_FAILED)

    def test_failedDeferredFailsClosed(self) -> None:
        """A failed Deferred gives HOOK_FAILED (logged), not a failure."""
        pending: Deferred[Any] = Deferred()
        later = Recorder()
        chain = HookChain([Answering(lambda c, m: pending), later], self.clock)
        result = chain.publish(None, self.message)
        pending.errback(ZeroDivisionError("lookup failed"))
        self.assertIs(self.successResultOf(result), HOOK_FAILED)
        self.assertEqual(later.calls, [])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_timeout(self) -> None:
        """A Deferred that never fires gives HOOK_FAILED at exactly the chain's timeout."""
        later = Recorder()
        chain = HookChain([Answering(lambda c, m: Deferred()), later], self.clock, timeout=5)
        result = chain.publish(None, self.message)
        self.clock.advance(4.9)
        self.assertNoResult(result)
        self.clock.advance(0.1)
        self.assertIs(self.successResultOf(result), HOOK_FAILED)
        self.assertEqual(later.calls, [])
        self.assertEqual(len(self.flushLoggedErrors(defer.TimeoutError)), 1)

    def test_hookTimeoutWinsShorter(self) -> None:
        """A hook's own shorter timeout attribute wins over the chain's."""
        hook = Answering(lambda c, m: Deferred())
        hook.timeout = 1  # type: ignore[attr-defined]
        chain = HookChain([hook], self.clock, timeout=10)
        result = chain.deliver(None, self.message)
        self.clock.advance(0.9)
        self.assertNoResult(result)
        self.clock.advance(0.1)
        self.assertIs(self.successResultOf(result), HOOK_FAILED)
        self.flushLoggedErrors(defer.TimeoutError)

    def test_hookTimeoutWinsLonger(self) -> None:
        """A hook's own longer timeout attribute wins over the chain's."""
        hook = Answering(lambda c, m: Deferred())
        hook.timeout = 20  # type: ignore[attr-defined]
        chain = HookChain([hook], self.clock, timeout=10)
        result = chain.deliver(None, self.message)
        self.clock.advance(19.9)
        self.assertNoResult(result)
        self.clock.advance(0.1)
        self.assertIs(self.successResultOf(result), HOOK_FAILED)
        self.flushLoggedErrors(defer.TimeoutError)

    def test_answerInTimeCancelsTheTimer(self) -> None:
        """An answer before the timeout leaves no timer behind."""
        pending: Deferred[Any] = Deferred()
        chain = HookChain([Answering(lambda c, m: pending)], self.clock, timeout=5)
        result = chain.publish(None, self.message)
        pending.callback(self.message)
        self.assertIs(self.successResultOf(result), self.message)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_plainAnswersMakeNoDeferred(self) -> None:
        """Plain answers (messages, copies, drops, failures) make no Deferred at all."""
        seen: list[tuple[bytes, bytes]] = []
        chains = [
            HookChain([MessageHook(), Tagger(b"1", seen)], self.clock),
            HookChain([Answering(lambda c, m: Drop(0x99, "no"))], self.clock),
            HookChain([Answering(lambda c, m: None)], self.clock),
        ]
        made = countDeferreds(self)
        for chain in chains:
            chain.publish(None, self.message)
            chain.deliver(None, self.message)
            chain.event("connected", None)
        self.assertEqual(made[0], 0)

    def test_eventCallsEveryHook(self) -> None:
        """event() calls every hook in order; one raising is logged, the next still called."""
        first, last = Recorder(), Recorder()
        chain = HookChain([first, Failing(), last], self.clock)
        chain.event("sessionExpired", "gone")
        chain.event("messageDropped", "c", self.message, "queue full")
        self.assertEqual(first.calls[0], ("sessionExpired", "gone"))
        self.assertEqual(last.calls[0], ("sessionExpired", "gone"))
        self.assertEqual(last.calls[1], ("messageDropped", "c", self.message, "queue full"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)


# -- inbound interception -------------------------------------------------------------


class Rewriter(MessageHook):
    """
    Moves C{in/...} to C{out/...}, upper-cases the payload and adds a user
    property; drops C{raw/...} with 0x99; keeps the originals it saw.
    """

    def __init__(self) -> None:
        self.originals: list[Message] = []
        self.clients: list[Any] = []

    def onPublish(self, client: Any, message: Message) -> Any:
        self.originals.append(message)
        self.clients.append(client)
        if message.topic.startswith("raw/"):
            return Drop(0x99, "bad payload")
        if message.topic.startswith("in/"):
            return message.replace(
                topic="out/" + message.topic[3:],
                payload=message.payload.upper(),
                properties={PropertyId.USER_PROPERTY: (("hooked", "yes"),)},
            )
        return message


class InboundTests(SynchronousTestCase):
    """
    onPublish through the protocol.
    """

    def setUp(self) -> None:
        self.hook = Rewriter()
        self.env = Harness([self.hook])

    def test_changedMessageIsDeliveredAndRetained(self) -> None:
        """The hook's copy (topic, payload, properties) is delivered and retained."""
        env = self.env
        sub = env.subscriber("sub", "#", 1, MQTT_5)
        pub = env.connect("pub", MQTT_5)
        pub.publish(
            "in/x",
            b"abc",
            qos=1,
            retain=True,
            packetId=7,
            properties={PropertyId.CONTENT_TYPE: "text/plain"},
        )
        env.flush()
        self.assertEqual(pub.takeRaw(), bytes.fromhex("40 02 00 07"))
        [delivered] = sub.publishes()
        self.assertEqual((delivered.topic, delivered.payload), ("out/x", b"ABC"))
        self.assertEqual(delivered.properties.get(PropertyId.USER_PROPERTY), (("hooked", "yes"),))
        self.assertNotIn(PropertyId.CONTENT_TYPE, delivered.properties)
        self.assertEqual(
            [(m.topic, m.payload) for m in env.broker.retained("#")], [("out/x", b"ABC")]
        )
        # A later subscriber gets the changed message as the retained one.
        late = env.connect("late", MQTT_5)
        late.subscribe("out/#", 1)
        env.flush()
        [replay] = late.publishes()
        self.assertEqual((replay.topic, replay.payload, replay.retain), ("out/x", b"ABC", True))

    def test_originalIsNotModified(self) -> None:
        """The message the hook was given keeps its topic, payload and properties."""
        env = self.env
        env.subscriber("sub", "#", 1)
        pub = env.connect("pub", MQTT_5)
        pub.publish("in/x", b"abc", qos=1, properties={PropertyId.CONTENT_TYPE: "text/plain"})
        env.flush()
        [original] = self.hook.originals
        self.assertEqual((original.topic, original.payload), ("in/x", b"abc"))
        self.assertEqual(dict(original.properties), {PropertyId.CONTENT_TYPE: "text/plain"})

    def test_clientInfoOfThePublisher(self) -> None:
        """onPublish gets the publisher's IClientInfo."""
        env = self.env
        pub = env.connect("pub", MQTT_5, username="bob")
        pub.publish("a", b"1")
        env.flush()
        [client] = self.hook.clients
        verifyObject(IClientInfo, client)
        self.assertEqual(
            (client.clientId, client.username, client.protocolLevel), ("pub", "bob", MQTT_5)
        )

    def test_dropV5Qos1(self) -> None:
        """v5 QoS 1 dropped: PUBACK with the Drop's code and reason, nothing delivered."""
        env = self.env
        sub = env.subscriber("sub", "#", 1)
        pub = env.connect("pub", MQTT_5)
        pub.publish("raw/1", b"x", qos=1, packetId=1, retain=True)
        env.flush()
        self.assertEqual(pub.takeRaw(), v5Ack(0x40, 1, 0x99, "bad payload"))
        self.assertEqual(sub.takeRaw(), b"")
        self.assertEqual(env.broker.retained("#"), [])
        self.assertFalse(pub.closed)

    def test_dropV5Qos0Silently(self) -> None:
        """v5 QoS 0 dropped: no answer, nothing delivered, still connected."""
        env = self.env
        sub = env.subscriber("sub", "#", 1)
        pub = env.connect("pub", MQTT_5)
        pub.publish("raw/1", b"x")
        env.flush()
        self.assertEqual(pub.takeRaw(), b"")
        self.assertEqual(sub.takeRaw(), b"")
        pub.ping()
        env.flush()
        self.assertEqual(pub.takeRaw(), PINGRESP)

    def test_drop311Qos1(self) -> None:
        """3.1.1 QoS 1 dropped: a positive PUBACK (40 02 mid), nothing delivered."""
        env = self.env
        sub = env.subscriber("sub", "#", 1)
        pub = env.connect("pub")
        pub.publish("raw/1", b"x", qos=1, packetId=0x1234)
        env.flush()
        self.assertEqual(pub.takeRaw(), bytes.fromhex("40 02 12 34"))
        self.assertEqual(sub.takeRaw(), b"")
        self.assertFalse(pub.closed)

    def test_drop311Qos2(self) -> None:
        """3.1.1 QoS 2 dropped: PUBREC, then PUBREL gets PUBCOMP; nothing delivered."""
        env = self.env
        sub = env.subscriber("sub", "#", 2)
        pub = env.connect("pub", autoAck=False)
        pub.publish("raw/1", b"x", qos=2, packetId=5)
        env.flush()
        self.assertEqual(pub.takeRaw(), bytes.fromhex("50 02 00 05"))
        pub.send(Pubrel(5))
        env.flush()
        self.assertEqual(pub.takeRaw(), bytes.fromhex("70 02 00 05"))
        self.assertEqual(sub.takeRaw(), b"")
        self.assertFalse(pub.closed)

    def test_dropV5Qos2(self) -> None:
        """v5 QoS 2 dropped: PUBREC with the Drop's code and reason; nothing delivered."""
        env = self.env
        sub = env.subscriber("sub", "#", 2)
        pub = env.connect("pub", MQTT_5, autoAck=False)
        pub.publish("raw/1", b"x", qos=2, packetId=5)
        env.flush()
        self.assertEqual(pub.takeRaw(), v5Ack(0x50, 5, 0x99, "bad payload"))
        self.assertEqual(sub.takeRaw(), b"")
        self.assertFalse(pub.closed)

    def test_droppedIsNotCounted(self) -> None:
        """A dropped inbound message is not counted as a message in."""
        env = self.env
        pub = env.connect("pub", MQTT_5)
        pub.publish("raw/1", b"x", qos=1)
        pub.publish("a/1", b"x", qos=1)
        env.flush()
        self.assertEqual(env.broker.stats()["messagesIn"], 1)


class InboundFailureTests(SynchronousTestCase):
    """
    onPublish failures and Deferred answers through the protocol.
    """

    def test_hookRaises(self) -> None:
        """A hook raising drops the message (v5 PUBACK 0x80); the client stays connected."""
        env = Harness([Failing()])
        sub = env.subscriber("sub", "#", 1)
        pub = env.connect("pub", MQTT_5)
        pub.publish("a/1", b"x", qos=1, packetId=3)
        env.flush()
        [ack] = pub.take()
        pub.raw.clear()
        assert isinstance(ack, Puback)
        self.assertEqual((ack.packetId, ack.reasonCode), (3, 0x80))
        self.assertEqual(sub.takeRaw(), b"")
        pub.ping()
        env.flush()
        self.assertEqual(pub.takeRaw(), PINGRESP)
        self.assertFalse(pub.closed)
        # Failing raises in the events too (connected, subscribed): all logged.
        self.assertTrue(self.flushLoggedErrors(ZeroDivisionError))

    def test_hookRaises311(self) -> None:
        """3.1.1: a hook raising gets a positive PUBACK; nothing delivered, still connected."""
        env = Harness([OnPublish(lambda c, m: 1 / 0)])
        sub = env.subscriber("sub", "#", 1)
        pub = env.connect("pub")
        pub.publish("a/1", b"x", qos=1, packetId=3)
        env.flush()
        self.assertEqual(pub.takeRaw(), bytes.fromhex("40 02 00 03"))
        self.assertEqual(sub.takeRaw(), b"")
        self.assertFalse(pub.closed)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_deferredKeepsThePublishersOrder(self) -> None:
        """While onPublish is pending, the publisher's later packets wait; others are served."""
        clock: list[Clock] = []

        def answer(client: Any, message: Message) -> Any:
            if client is not None and client.clientId == "pub" and message.payload == b"first":
                return deferLater(clock[0], 3, lambda: message.replace(payload=b"FIRST"))
            return message

        env = Harness([OnPublish(answer)])
        clock.append(env.clock)
        sub = env.subscriber("sub", "t/#", 1)
        pub = env.connect("pub")
        other = env.connect("other")
        pub.publish("t/1", b"first", qos=1, packetId=1)
        pub.ping()
        pub.publish("t/1", b"second", qos=1, packetId=2)
        env.flush()
        other.publish("t/2", b"other", qos=1, packetId=9)
        other.ping()
        env.advance(2.9)
        self.assertEqual(pub.takeRaw(), b"")
        self.assertEqual(other.takeRaw(), bytes.fromhex("40 02 00 09") + PINGRESP)
        self.assertEqual(sub.payloads(), [b"other"])
        env.advance(0.1)
        self.assertEqual(
            pub.takeRaw(), bytes.fromhex("40 02 00 01") + PINGRESP + bytes.fromhex("40 02 00 02")
        )
        self.assertEqual(sub.payloads(), [b"FIRST", b"second"])

    def test_deferredDropV5(self) -> None:
        """A Deferred answering a Drop: the v5 PUBACK carries its code, later packets follow."""
        pending: list[Deferred[Any]] = []

        def answer(client: Any, message: Message) -> Any:
            if not pending:
                pending.append(Deferred())
                return pending[0]
            return message

        env = Harness([OnPublish(answer)])
        sub = env.subscriber("sub", "#", 1)
        pub = env.connect("pub", MQTT_5)
        pub.publish("a/1", b"one", qos=1, packetId=1)
        pub.publish("a/1", b"two", qos=1, packetId=2)
        env.flush()
        self.assertEqual(pub.takeRaw(), b"")
        pending[0].callback(Drop(0x97, "quota exceeded"))
        env.flush()
        self.assertEqual(
            pub.takeRaw(), v5Ack(0x40, 1, 0x97, "quota exceeded") + bytes.fromhex("40 02 00 02")
        )
        self.assertEqual(sub.payloads(), [b"two"])

    def test_deferredTimeout(self) -> None:
        """An onPublish that never answers: 0x80 at plugin-timeout, then the rest is read."""
        env = Harness(
            [OnPublish(lambda c, m: Deferred() if m.payload == b"lost" else m)], pluginTimeout=4
        )
        sub = env.subscriber("sub", "#", 1)
        pub = env.connect("pub", MQTT_5)
        pub.publish("a/1", b"lost", qos=1, packetId=1)
        pub.publish("a/1", b"kept", qos=1, packetId=2)
        env.flush()
        env.advance(3.9)
        self.assertEqual(pub.takeRaw(), b"")
        env.advance(0.1)
        packets = pub.take()
        self.assertEqual(
            [(p.packetId, p.reasonCode) for p in packets if isinstance(p, Puback)],
            [(1, 0x80), (2, 0)],
        )
        self.assertEqual(sub.payloads(), [b"kept"])
        self.assertEqual(len(self.flushLoggedErrors(defer.TimeoutError)), 1)

    def test_plainAnswersMakeNoDeferred(self) -> None:
        """With hooks answering plain values, a publish and its deliveries make no Deferred."""
        seen: list[tuple[bytes, bytes]] = []
        env = Harness([Tagger(b"!", seen), MessageHook()])
        subs = [env.subscriber(f"s{i}", "t/#", qos) for i, qos in enumerate((0, 1, 2))]
        pub = env.connect("pub")
        made = countDeferreds(self)
        pub.publish("t/1", b"x", qos=0)
        pub.publish("t/1", b"y", qos=1)
        pub.publish("t/1", b"z", qos=2)
        env.flush()
        self.assertEqual(made[0], 0)
        for sub in subs:
            self.assertEqual(sub.payloads(), [b"x!!", b"y!!", b"z!!"])

    def test_firedDeferredAnswers(self) -> None:
        """Deferreds that have already fired work like plain answers, in order."""
        env = Harness([OnPublish(lambda c, m: defer.succeed(m.replace(payload=m.payload + b"+")))])
        sub = env.subscriber("sub", "#", 1)
        pub = env.connect("pub")
        pub.publish("a", b"1", qos=1, packetId=1)
        pub.ping()
        pub.publish("a", b"2", qos=0)
        env.flush()
        self.assertEqual(pub.takeRaw(), bytes.fromhex("40 02 00 01") + PINGRESP)
        self.assertEqual(sub.payloads(), [b"1+", b"2+"])

    def test_keepAliveWhileAnswerPending(self) -> None:
        """A client pinging while its PUBLISH waits for a hook is not timed out [MQTT-3.1.2-24]."""
        clock: list[Clock] = []
        env = Harness(
            [
                OnPublish(
                    lambda c, m: deferLater(clock[0], 8, lambda: m) if m.payload == b"slow" else m
                )
            ]
        )
        clock.append(env.clock)
        sub = env.subscriber("sub", "#", 1)
        pub = env.connect("pub", keepAlive=4)
        pub.publish("a/1", b"slow", qos=1, packetId=1)
        env.flush()
        # A PINGREQ every 2 s: well within 1.5 x 4 s.
        for _ in range(4):
            pub.ping()
            env.flush()
            env.advance(2)
        self.assertFalse(pub.closed)
        self.assertEqual(pub.takeRaw(), bytes.fromhex("40 02 00 01") + PINGRESP * 4)
        self.assertEqual(sub.payloads(), [b"slow"])

    def test_disconnectAfterPendingPublishKeepsTheMessage(self) -> None:
        """PUBLISH then DISCONNECT while the hook is pending: the message is still routed."""
        clock: list[Clock] = []
        env = Harness(
            [OnPublish(lambda c, m: deferLater(clock[0], 1, lambda: m) if c is not None else m)]
        )
        clock.append(env.clock)
        sub = env.subscriber("sub", "t/#", 1)
        pub = env.connect("pub")
        pub.publish("t/1", b"last words")
        pub.disconnect()
        env.flush()
        env.advance(1)
        self.assertEqual(sub.payloads(), [b"last words"])

    def test_disconnectAfterPendingPublishDiscardsTheWill(self) -> None:
        """A DISCONNECT that waited behind a pending hook still discards the will [MQTT-3.1.2-10]."""
        recorder = Recorder()
        clock: list[Clock] = []
        env = Harness(
            [
                OnPublish(lambda c, m: deferLater(clock[0], 1, lambda: m) if c is not None else m),
                recorder,
            ]
        )
        clock.append(env.clock)
        sub = env.subscriber("sub", "will/#", 1)
        pub = env.connect("pub", will=Will("will/pub", b"died", 1))
        pub.publish("t/1", b"last words")
        pub.disconnect()
        env.flush()
        env.advance(1)
        self.assertEqual(sub.payloads(), [])
        self.assertEqual(
            recorder.named("disconnected"), [("disconnected", "pub", "client disconnected")]
        )


class InProcessTests(SynchronousTestCase):
    """
    In-process publishes and wills go through onPublish with client None.
    """

    def test_publishGoesThroughOnPublish(self) -> None:
        """broker.publish(): onPublish gets None and its copy is delivered."""
        hook = Rewriter()
        env = Harness([hook])
        sub = env.subscriber("sub", "#", 1)
        self.assertEqual(env.broker.publish("in/p", b"abc", qos=1), 1)
        env.flush()
        self.assertEqual(hook.clients, [None])
        [delivered] = sub.publishes()
        self.assertEqual((delivered.topic, delivered.payload), ("out/p", b"ABC"))

    def test_publishDropped(self) -> None:
        """broker.publish() dropped by a hook: delivered to nobody, not retained."""
        env = Harness([Rewriter()])
        sub = env.subscriber("sub", "#", 1)
        self.assertEqual(env.broker.publish("raw/p", b"abc", qos=1, retain=True), 0)
        env.flush()
        self.assertEqual(sub.takeRaw(), b"")
        self.assertEqual(env.broker.retained("#"), [])

    def test_publishDeferred(self) -> None:
        """broker.publish() with a Deferred answer: routed when it fires."""
        pending: Deferred[Any] = Deferred()
        env = Harness([OnPublish(lambda c, m: pending)])
        sub = env.subscriber("sub", "#", 1)
        local: list[bytes] = []
        env.broker.subscribe("#", lambda m: local.append(m.payload))
        env.broker.publish("a/b", b"v", qos=1)
        env.flush()
        self.assertEqual(sub.takeRaw(), b"")
        self.assertEqual(local, [])
        pending.callback(Message("a/b", b"later", 1))
        env.flush()
        self.assertEqual(sub.payloads(), [b"later"])
        self.assertEqual(local, [b"later"])

    def test_willGoesThroughOnPublish(self) -> None:
        """A will: onPublish gets None, its copy is delivered."""
        hook = Rewriter()
        env = Harness([hook])
        sub = env.subscriber("sub", "#", 1)
        dying = env.connect("dying", will=Will("in/will", b"gone", 1))
        env.drop(dying)
        self.assertEqual(hook.clients, [None])
        [will] = sub.publishes()
        self.assertEqual((will.topic, will.payload), ("out/will", b"GONE"))

    def test_willDropped(self) -> None:
        """A will dropped by a hook is not delivered."""
        env = Harness([Rewriter()])
        sub = env.subscriber("sub", "#", 1)
        dying = env.connect("dying", will=Will("raw/will", b"gone", 1))
        env.drop(dying)
        self.assertEqual(sub.takeRaw(), b"")

    def test_willDeferred(self) -> None:
        """A will with a Deferred answer is delivered when it fires."""
        pending: list[Deferred[Any]] = []

        def answer(client: Any, message: Message) -> Any:
            pending.append(Deferred())
            pending[-1].addCallback(lambda _: message)
            return pending[-1]

        env = Harness([OnPublish(answer)])
        sub = env.subscriber("sub", "#", 1)
        dying = env.connect("dying", will=Will("w/1", b"gone", 1))
        env.drop(dying)
        self.assertEqual(sub.takeRaw(), b"")
        [d] = pending
        d.callback(None)
        env.flush()
        self.assertEqual(sub.payloads(), [b"gone"])


# -- outbound interception ------------------------------------------------------------


class OutboundTests(SynchronousTestCase):
    """
    onDeliver, per subscriber.
    """

    def test_clientInfoOfTheSubscriber(self) -> None:
        """onDeliver gets the subscriber's IClientInfo."""
        hook = Recorder()
        env = Harness([hook])
        env.subscriber("s1", "#", 1, MQTT_5, username="alice")
        env.broker.publish("a", b"x")
        env.flush()
        [(_, client, message)] = hook.named("onDeliver")
        verifyObject(IClientInfo, client)
        self.assertEqual(
            (client.clientId, client.username, client.protocolLevel), ("s1", "alice", MQTT_5)
        )
        self.assertEqual((message.topic, message.payload), ("a", b"x"))

    def test_perSubscriberChange(self) -> None:
        """A change for one subscriber reaches only it; others get the original."""

        def answer(client: Any, message: Message) -> Any:
            if client.username == "auditor":
                return message.replace(
                    payload=b"audited " + message.payload,
                    properties={PropertyId.USER_PROPERTY: (("seen-by", "auditor"),)},
                )
            return message

        env = Harness([OnDeliver(answer)])
        auditor = env.subscriber("aud", "#", 1, MQTT_5, username="auditor")
        plain = env.subscriber("plain", "#", 1, MQTT_5, username="user")
        plain311 = env.subscriber("plain311", "#", 1)
        pub = env.connect("pub", MQTT_5)
        pub.publish("a/b", b"msg", qos=1)
        env.flush()
        [got] = auditor.publishes()
        self.assertEqual(got.payload, b"audited msg")
        self.assertEqual(got.properties.get(PropertyId.USER_PROPERTY), (("seen-by", "auditor"),))
        [got] = plain.publishes()
        self.assertEqual(got.payload, b"msg")
        self.assertNotIn(PropertyId.USER_PROPERTY, got.properties)
        self.assertEqual(plain311.payloads(), [b"msg"])

    def test_perSubscriberDrop(self) -> None:
        """A Drop for one subscriber: only it misses the message, messageDropped names it."""
        recorder = Recorder()
        env = Harness(
            [
                OnDeliver(lambda c, m: Drop(0x83, "not for a") if c.clientId == "a" else m),
                recorder,
            ]
        )
        a = env.subscriber("a", "#", 1)
        b = env.subscriber("b", "#", 1)
        pub = env.connect("pub")
        pub.publish("t", b"x", qos=1)
        env.flush()
        self.assertEqual(a.takeRaw(), b"")
        self.assertEqual(b.payloads(), [b"x"])
        self.assertEqual(recorder.drops(), [("a", b"x", "not for a")])
        self.assertFalse(a.closed)

    def test_perSubscriberDropCounted(self) -> None:
        """A hook's Drop counts in the broker's messagesDropped, like every other drop."""
        env = Harness([OnDeliver(lambda c, m: Drop(0x83, "no") if c.clientId == "a" else m)])
        env.subscriber("a", "#", 1)
        env.subscriber("b", "#", 1)
        before = env.broker.stats()["messagesDropped"]
        env.connect("pub").publish("t", b"x", qos=1)
        env.flush()
        self.assertEqual(env.broker.stats()["messagesDropped"], before + 1)

    def test_deferredHoldsOnlyThatSubscriber(self) -> None:
        """A pending onDeliver holds that subscriber's later deliveries, in order; others get theirs."""
        clock: list[Clock] = []
        asked: list[bytes] = []

        def answer(client: Any, message: Message) -> Any:
            if client.clientId == "slow":
                asked.append(message.payload)
                if message.payload == b"1":
                    return deferLater(clock[0], 2, lambda: message.replace(payload=b"one"))
            return message

        env = Harness([OnDeliver(answer)])
        clock.append(env.clock)
        slow = env.subscriber("slow", "t/#", 1)
        fast = env.subscriber("fast", "t/#", 1)
        pub = env.connect("pub")
        for payload in (b"1", b"2", b"3"):
            pub.publish("t/x", payload, qos=1)
        pub.publish("t/x", b"4", qos=0)
        env.flush()
        self.assertEqual(fast.payloads(), [b"1", b"2", b"3", b"4"])
        self.assertEqual(slow.takeRaw(), b"")
        self.assertEqual(asked, [b"1"])
        # The publisher is not held by a subscriber's hook.
        self.assertEqual(
            pub.takeRaw(), b"".join(bytes.fromhex("40 02") + pid(i) for i in (1, 2, 3))
        )
        env.advance(1.9)
        self.assertEqual(slow.takeRaw(), b"")
        env.advance(0.1)
        self.assertEqual(slow.payloads(), [b"one", b"2", b"3", b"4"])
        self.assertEqual(asked, [b"1", b"2", b"3", b"4"])

    def test_deferredDeliveryTimeout(self) -> None:
        """An onDeliver that never answers: that message is dropped at the timeout, the rest follow."""
        recorder = Recorder()
        env = Harness(
            [
                OnDeliver(lambda c, m: Deferred() if m.payload == b"lost" else m),
                recorder,
            ],
            pluginTimeout=3,
        )
        sub = env.subscriber("sub", "#", 1)
        env.broker.publish("a", b"lost", qos=1)
        env.broker.publish("a", b"next", qos=1)
        env.advance(2.9)
        self.assertEqual(sub.takeRaw(), b"")
        env.advance(0.1)
        self.assertEqual(sub.payloads(), [b"next"])
        self.assertEqual([(c, p) for c, p, _ in recorder.drops()], [("sub", b"lost")])
        self.assertEqual(len(self.flushLoggedErrors(defer.TimeoutError)), 1)

    def test_retainedReplay(self) -> None:
        """A retained replay goes through onDeliver; the stored message is unchanged."""
        env = Harness(
            [OnDeliver(lambda c, m: m.replace(payload=m.payload + b" for " + c.clientId.encode()))]
        )
        env.broker.publish("r/1", b"v", retain=True)
        sub = env.connect("sub")
        sub.subscribe("r/#", 1)
        env.flush()
        [replay] = sub.publishes()
        self.assertEqual(
            (replay.topic, replay.payload, replay.retain), ("r/1", b"v for sub", True)
        )
        self.assertEqual([m.payload for m in env.broker.retained("#")], [b"v"])

    def test_offlineQueue(self) -> None:
        """Messages queued for an offline session go through onDeliver when delivered."""
        recorder = Recorder()
        env = Harness([recorder, OnDeliver(lambda c, m: m.replace(payload=m.payload + b"!"))])
        sub = env.subscriber("p", "q/#", 1, cleanStart=False)
        env.drop(sub)
        env.broker.publish("q/1", b"a", qos=1)
        env.broker.publish("q/1", b"b", qos=1)
        env.flush()
        self.assertEqual(recorder.named("onDeliver"), [])
        again = env.connect("p", cleanStart=False)
        env.flush()
        self.assertEqual(again.payloads(), [b"a!", b"b!"])
        self.assertEqual(
            [(c[1].clientId, c[2].payload) for c in recorder.named("onDeliver")],
            [("p", b"a"), ("p", b"b")],
        )

    def test_resendIsNotInterceptedAgain(self) -> None:
        """A resend after reconnect does not go through onDeliver: the same message is resent."""
        count = [0]

        def answer(client: Any, message: Message) -> Any:
            count[0] += 1
            return message.replace(payload=message.payload + b"#%d" % count[0])

        env = Harness([OnDeliver(answer)])
        sub = env.subscriber("p", "q/#", 1, cleanStart=False)
        sub.autoAck = False
        env.broker.publish("q/1", b"m", qos=1)
        env.flush()
        [first] = sub.publishes()
        self.assertEqual((first.payload, first.dup), (b"m#1", False))
        env.drop(sub)
        again = env.connect("p", cleanStart=False, autoAck=False)
        env.flush()
        [resent] = again.publishes()
        self.assertEqual(
            (resent.payload, resent.dup, resent.packetId), (b"m#1", True, first.packetId)
        )
        self.assertEqual(count[0], 1)

    def test_answerForADroppedDeliveryIsNotReused(self) -> None:
        """An answer arriving after its delivery was dropped (stall) is not used for a later one."""
        clock: list[Clock] = []
        asked: list[bytes] = []

        def answer(client: Any, message: Message) -> Any:
            asked.append(message.payload)
            copy = message.replace(payload=message.payload + b"#%d" % len(asked))
            if len(asked) == 1:
                return deferLater(clock[0], 2, lambda: copy)
            return copy

        env = Harness([OnDeliver(answer)], maxQueuedMessages=4, stallTimeout=1)
        clock.append(env.clock)
        sub = env.subscriber("s", "t/#", 0)
        server = env.server(sub)
        pub = env.connect("pub")
        # The retained message is delivered live; its answer is pending.
        pub.publish("t/r", b"v", retain=True)
        env.flush()
        server.pauseProducing()
        pub.publish("t/x", b"fill")
        env.flush()
        # Stalled at 1 s: the queued QoS 0 deliveries are dropped, the pending one too.
        env.advance(1)
        self.assertEqual(len(env.broker.sessions["s"].queue), 0)
        env.advance(1)
        server.resumeProducing()
        env.flush()
        self.assertEqual(sub.payloads(), [])
        # A new subscription replays the retained message: a new delivery, asked anew.
        sub.subscribe("t/r", 0)
        env.flush()
        self.assertEqual(sub.payloads(), [b"v#2"])
        self.assertEqual(asked, [b"v", b"v"])

    def test_firedDeferredAnswers(self) -> None:
        """onDeliver Deferreds that have already fired are used at once, in order."""
        env = Harness([OnDeliver(lambda c, m: defer.succeed(m.replace(payload=m.payload + b"+")))])
        sub = env.subscriber("s", "#", 1)
        for payload, qos in ((b"1", 1), (b"2", 0), (b"3", 2)):
            env.broker.publish("a", payload, qos=qos)
        env.flush()
        self.assertEqual(sub.payloads(), [b"1+", b"2+", b"3+"])

    def test_inProcessSubscriberNotIntercepted(self) -> None:
        """onDeliver is about clients: in-process subscribers get the routed message."""
        hook = Recorder()
        env = Harness([hook])
        local: list[bytes] = []
        env.broker.subscribe("#", lambda m: local.append(m.payload))
        env.broker.publish("a", b"x")
        self.assertEqual(local, [b"x"])
        self.assertEqual(hook.named("onDeliver"), [])


# -- events ------------------------------------------------------------------------------


class EventTests(SynchronousTestCase):
    """
    The lifecycle events and messageDropped.
    """

    def setUp(self) -> None:
        self.hook = Recorder()

    def harness(self, **settings: Any) -> Harness:
        return Harness([self.hook], **settings)

    def test_connectedAfterConnack(self) -> None:
        """connected is called with the client info once its CONNACK is written."""
        written: list[bytes] = []
        brokers: list[Broker] = []

        class Watcher(MessageHook):
            def connected(self, client: Any) -> None:
                protocol = brokers[0].connections[client.clientId]
                written.append(b"".join(protocol.transport.stream))

        env = Harness([self.hook, Watcher()])
        brokers.append(env.broker)
        env.connect("c1", username="u")
        self.assertEqual(self.hook.events(), [("connected", "c1")])
        self.assertEqual(written, [bytes.fromhex("20 02 00 00")])

    def test_refusedClientHasNoEvents(self) -> None:
        """A refused CONNECT gives neither connected nor disconnected."""
        env = self.harness()
        client = env.openClient(MQTT_3_1_1)
        client.connect("", cleanStart=False)  # 3.1.1: empty id needs a clean session
        env.flush()
        self.assertEqual(client.takeRaw(), bytes.fromhex("20 02 00 02"))
        self.assertEqual(self.hook.calls, [])

    def test_disconnectedByClient(self) -> None:
        """disconnected: "client disconnected" after a DISCONNECT."""
        env = self.harness()
        client = env.connect("c1")
        client.disconnect()
        env.flush()
        self.assertEqual(
            self.hook.events(),
            [("connected", "c1"), ("disconnected", "c1", "client disconnected")],
        )

    def test_disconnectedByKeepAlive(self) -> None:
        """disconnected: "keep-alive timeout" after 1.5 x keep-alive of silence."""
        env = self.harness()
        client = env.connect("c1", keepAlive=10)
        env.advance(14.9)
        self.assertFalse(client.closed)
        env.advance(0.1)
        self.assertTrue(client.closed)
        self.assertEqual(
            self.hook.events(), [("connected", "c1"), ("disconnected", "c1", "keep-alive timeout")]
        )

    def test_disconnectedByTakeover(self) -> None:
        """disconnected: the old connection of a taken-over client id says so."""
        env = self.harness()
        env.connect("c1")
        env.connect("c1")
        self.assertEqual(self.hook.named("connected"), [("connected", "c1")] * 2)
        self.assertEqual(
            self.hook.named("disconnected"), [("disconnected", "c1", "session taken over")]
        )

    def test_disconnectedByNetwork(self) -> None:
        """disconnected is called once when the connection just drops."""
        env = self.harness()
        client = env.connect("c1")
        env.drop(client)
        [event] = self.hook.named("disconnected")
        self.assertEqual(event[:2], ("disconnected", "c1"))
        self.assertTrue(event[2])

    def test_subscribed(self) -> None:
        """subscribed: the filter as sent and the granted QoS; not for refused filters."""
        env = self.harness(maximumQos=1)
        client = env.connect("c1")
        client.subscribe("$share/g/a/+", 2)
        client.subscribe("b/#", 0)
        client.subscribe("bad/#/x", 1)
        env.flush()
        self.assertEqual(
            self.hook.named("subscribed"),
            [
                ("subscribed", "c1", "$share/g/a/+", 1),
                ("subscribed", "c1", "b/#", 0),
            ],
        )

    def test_unsubscribed(self) -> None:
        """unsubscribed: only for subscriptions that existed."""
        env = self.harness()
        client = env.connect("c1")
        client.subscribe("a/+", 1)
        env.flush()
        client.unsubscribe("a/+", "nosuch/#")
        client.unsubscribe("a/+")
        env.flush()
        self.assertEqual(self.hook.named("unsubscribed"), [("unsubscribed", "c1", "a/+")])

    def test_sessionExpired(self) -> None:
        """sessionExpired: at exactly the v5 Session Expiry Interval after the disconnect."""
        env = self.harness()
        client = env.connect("e", MQTT_5, properties={PropertyId.SESSION_EXPIRY_INTERVAL: 10})
        client.disconnect()
        env.flush()
        env.advance(9.9)
        self.assertEqual(self.hook.named("sessionExpired"), [])
        env.advance(0.1)
        self.assertEqual(self.hook.named("sessionExpired"), [("sessionExpired", "e")])
        self.assertNotIn("e", env.broker.sessions)

    def test_resumedSessionDoesNotExpire(self) -> None:
        """A session resumed before its expiry gives no sessionExpired."""
        env = self.harness()
        props = {PropertyId.SESSION_EXPIRY_INTERVAL: 10}
        client = env.connect("e", MQTT_5, properties=props)
        client.disconnect()
        env.advance(5)
        env.connect("e", MQTT_5, cleanStart=False, properties=props)
        env.advance(20)
        self.assertEqual(self.hook.named("sessionExpired"), [])

    def test_droppedQueueFull(self) -> None:
        """messageDropped: an offline session's queue is full (max-queued-messages)."""
        env = self.harness(maxQueuedMessages=2)
        sub = env.subscriber("q", "t/#", 1, cleanStart=False)
        env.drop(sub)
        for payload in (b"1", b"2", b"3"):
            env.broker.publish("t/1", payload, qos=1)
        [(clientId, payload, reason)] = self.hook.drops()
        self.assertEqual((clientId, payload), ("q", b"3"))
        self.assertIn("queue", reason)

    def test_droppedExpired(self) -> None:
        """messageDropped: a queued message whose Message Expiry Interval passed."""
        env = self.harness()
        sub = env.subscriber("x", "t/#", 1, MQTT_5, properties=PERSISTENT)
        env.drop(sub)
        env.broker.publish(
            "t/1", b"old", qos=1, properties={PropertyId.MESSAGE_EXPIRY_INTERVAL: 5}
        )
        env.broker.publish("t/1", b"fresh", qos=1)
        env.advance(6)
        again = env.connect("x", MQTT_5, cleanStart=False, properties=PERSISTENT)
        env.flush()
        self.assertEqual(again.payloads(), [b"fresh"])
        [(clientId, payload, reason)] = self.hook.drops()
        self.assertEqual((clientId, payload), ("x", b"old"))
        self.assertIn("expire", reason)

    def test_droppedTooLarge(self) -> None:
        """messageDropped: larger than a v5 client's Maximum Packet Size."""
        env = self.harness()
        sub = env.subscriber(
            "m", "t/#", 1, MQTT_5, properties={PropertyId.MAXIMUM_PACKET_SIZE: 100}
        )
        env.broker.publish("t/1", b"x" * 200, qos=1)
        env.broker.publish("t/1", b"small", qos=1)
        env.flush()
        self.assertEqual(sub.payloads(), [b"small"])
        [(clientId, payload, reason)] = self.hook.drops()
        self.assertEqual((clientId, payload), ("m", b"x" * 200))
        self.assertIn("packet size", reason)

    def test_droppedStalledQos0(self) -> None:
        """messageDropped: a stalled subscriber's QoS 0."""
        env = self.harness(maxQueuedMessages=4, stallTimeout=5)
        sub = env.subscriber("s", "t/#", 0)
        env.server(sub).pauseProducing()
        pub = env.connect("pub")
        for i in range(3):
            pub.publish("t/1", b"%d" % i)
        env.flush()
        self.assertEqual(self.hook.drops(), [])
        env.advance(5)
        drops = self.hook.drops()
        self.assertEqual(
            sorted((c, p) for c, p, _ in drops), [("s", b"0"), ("s", b"1"), ("s", b"2")]
        )
        for _, _, reason in drops:
            self.assertIn("stall", reason)

    def test_droppedCountsMatch(self) -> None:
        """Every counted drop of a session is reported to messageDropped."""
        env = self.harness(maxQueuedMessages=3)
        sub = env.subscriber("q", "t/#", 1, cleanStart=False)
        env.drop(sub)
        for i in range(10):
            env.broker.publish("t/1", b"%d" % i, qos=1)
        self.assertEqual(env.broker.stats()["messagesDropped"], 7)
        self.assertEqual(len(self.hook.drops()), 7)

    def test_eventExceptionsAreLogged(self) -> None:
        """Hooks raising in every event are logged; the broker works on normally."""
        env = Harness([_FailingEvents(), self.hook], maxQueuedMessages=1)
        sub = env.subscriber("s", "t/#", 1)
        self.assertEqual(sub.takeRaw(), b"")
        pub = env.connect("pub")
        pub.publish("t/1", b"x", qos=1, packetId=1)
        env.flush()
        self.assertEqual(pub.takeRaw(), bytes.fromhex("40 02 00 01"))
        self.assertEqual(sub.payloads(), [b"x"])
        sub.unsubscribe("t/#")
        env.flush()
        self.assertEqual(sub.takeRaw()[:2], bytes.fromhex("b0 02"))
        persistent = env.subscriber("p", "t/#", 1, cleanStart=False)
        env.drop(persistent)
        env.broker.publish("t/1", b"1", qos=1)
        env.broker.publish("t/1", b"2", qos=1)
        v5 = env.connect("v5", MQTT_5, properties={PropertyId.SESSION_EXPIRY_INTERVAL: 1})
        v5.disconnect()
        env.flush()
        env.advance(1)
        sub.disconnect()
        env.flush()
        self.assertEqual(
            [c[0] for c in self.hook.events()],
            [
                "connected",
                "subscribed",
                "connected",
                "unsubscribed",
                "connected",
                "subscribed",
                "disconnected",
                "connected",
                "disconnected",
                "sessionExpired",
                "disconnected",
            ],
        )
        self.assertEqual(len(self.hook.drops()), 1)
        # connected x4, subscribed x2, unsubscribed, disconnected x3,
        # sessionExpired, messageDropped.
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 12)


class _FailingEvents(Failing):
    """
    Raises in every event, lets every message through.
    """

    def onPublish(self, client: Any, message: Message) -> Any:
        return message

    def onDeliver(self, client: Any, message: Message) -> Any:
        return message


# -- no hooks -------------------------------------------------------------------------------


class NoHooksTests(SynchronousTestCase):
    """
    A broker without hooks does no hook work.
    """

    def test_noHookChain(self) -> None:
        """Without hooks there is no chain and no drop callback."""
        broker = Broker(BrokerConfig(), clock=Clock())
        self.assertIsNone(broker.hooks)
        self.assertIsNone(broker.counters.onDrop)
        withHooks = Broker(BrokerConfig(), clock=Clock(), hooks=[MessageHook()])
        self.assertIsNotNone(withHooks.hooks)
        self.assertIsNotNone(withHooks.counters.onDrop)

    def test_nothingHookRelatedIsCalled(self) -> None:
        """Publishing, delivering, replaying, queueing and events never touch HookChain."""
        called: list[str] = []

        def spy(name: str) -> Any:
            def method(*args: Any, **kwargs: Any) -> Any:
                called.append(name)
                raise AssertionError(f"HookChain.{name} called without hooks")

            return method

        for name in ("publish", "deliver", "event", "_intercept", "_later"):
            self.patch(HookChain, name, spy(name))
        self.patch(MQTTServerProtocol, "_prepare", spy("_prepare"))
        self.patch(MQTTServerProtocol, "_intercept", spy("_intercept"))
        env = Harness(maxQueuedMessages=1)
        env.broker.publish("r/1", b"retained", retain=True)
        sub = env.subscriber("s", "#", 1, MQTT_5)
        self.assertEqual(sub.payloads(), [])
        offline = env.subscriber("o", "#", 1, cleanStart=False)
        env.drop(offline)
        pub = env.connect("pub", MQTT_5)
        pub.publish("t/1", b"a", qos=1)
        pub.publish("t/1", b"b", qos=2)
        pub.publish("t/1", b"c", qos=0)
        env.flush()
        env.broker.publish("t/2", b"d", qos=1)
        env.flush()
        self.assertEqual(sub.payloads(), [b"a", b"b", b"c", b"d"])
        again = env.connect("o", cleanStart=False)
        env.flush()
        # max-queued-messages 1: only the first QoS 1 message waited for it.
        self.assertEqual(again.payloads(), [b"a"])
        sub.unsubscribe("#")
        pub.disconnect()
        env.flush()
        self.assertEqual(called, [])
