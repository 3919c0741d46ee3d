"""
Public helpers for testing code that uses mqttd (and mqttd itself): an
in-memory broker with a driven clock and MQTT test clients connected to it
over C{twisted.test.iosim}, without sockets or a reactor.

Example::

    from mqttd.testing import InMemoryBroker
    from mqttd.codec import Publish

    env = InMemoryBroker()
    sub = env.connect("sub")
    sub.subscribe("a/#", qos=1)
    pub = env.connect("pub")
    pub.publish("a/b", b"hello", qos=1)
    env.flush()
    [message] = sub.publishes()
    assert message.payload == b"hello"
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, maybeDeferred, succeed
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mqttd.auth import ALLOW, DENY, NEXT, CheckerChain, ClientIdentity, ClientInfo, Deny, MQTTRealm
from mqttd.authorization import AuthorizerChain
from mqttd.broker import Broker
from mqttd.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Decoder,
    Disconnect,
    Packet,
    Pingreq,
    ProtocolError,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Unsubscribe,
    Will,
    encode,
)
from mqttd.codec.properties import NO_PROPERTIES, Properties, PropertyId
from mqttd.config import BrokerConfig
from mqttd.interfaces import IAuthorizer, IStore
from mqttd.message import Message
from mqttd.protocol import MQTTServerFactory, MQTTServerProtocol
from mqttd.store import InflightRecord, QueuedRecord, SessionRecord, StoredState


class MQTTTestClient(Protocol):
    """
    A minimal MQTT client for tests: it sends what it is told and records
    every packet it receives, acknowledging nothing unless C{autoAck} is
    set.

    @ivar received: the packets received, in order.
    @ivar closed: whether the connection is closed.
    @ivar decodeError: the codec error if the broker sent something
        undecodable.
    """

    def __init__(self, protocolLevel: int = MQTT_3_1_1, autoAck: bool = False) -> None:
        self.protocolLevel = protocolLevel
        self.autoAck = autoAck
        self.received: list[Packet] = []
        self.closed = False
        self.closeReason: Failure | None = None
        self.decodeError: ProtocolError | None = None
        self._decoder = Decoder(isServer=False, protocolLevel=protocolLevel)
        self._nextPacketId = 1

    transport: Any
    #: Set by L{InMemoryBroker}: the I/O pump, the broker-side protocol,
    #: and the CONNACK L{InMemoryBroker.connect} received.
    pump: Any
    server: Any
    connack: Any

    def dataReceived(self, data: bytes) -> None:
        self._decoder.feed(data)
        try:
            while (packet := self._decoder.next()) is not None:
                self.received.append(packet)
                if self.autoAck:
                    self._acknowledge(packet)
        except ProtocolError as e:
            self.decodeError = e
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.closed = True
        self.closeReason = reason

    def _acknowledge(self, packet: Packet) -> None:
        if isinstance(packet, Publish) and packet.qos == 1:
            self.send(Puback(packet.packetId))  # type: ignore[arg-type]
        elif isinstance(packet, Publish) and packet.qos == 2:
            self.send(Pubrec(packet.packetId))  # type: ignore[arg-type]
        elif isinstance(packet, Pubrel):
            self.send(Pubcomp(packet.packetId))

    def newPacketId(self) -> int:
        """
        The next packet identifier (1, 2, ... 65535, 1, ...).
        """
        packetId = self._nextPacketId
        self._nextPacketId = packetId % 0xFFFF + 1
        return packetId

    def send(self, packet: Packet) -> None:
        """
        Encode and send a packet.
        """
        self.transport.write(encode(packet, self.protocolLevel))

    def sendRaw(self, data: bytes) -> None:
        """
        Send bytes as they are.
        """
        self.transport.write(data)

    def connect(
        self,
        clientId: str = "",
        cleanStart: bool = True,
        keepAlive: int = 0,
        will: Will | None = None,
        username: str | None = None,
        password: bytes | None = None,
        properties: Properties = NO_PROPERTIES,
    ) -> None:
        """
        Send a CONNECT.
        """
        self.send(Connect(clientId, self.protocolLevel, cleanStart, keepAlive, will, username,
                          password, properties))

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        packetId: int | None = None,
        properties: Properties = NO_PROPERTIES,
        dup: bool = False,
    ) -> int | None:
        """
        Send a PUBLISH (a packet id is chosen for QoS 1/2 if not given).

        @return: the packet id.
        """
        if qos and packetId is None:
            packetId = self.newPacketId()
        self.send(Publish(topic, payload, qos, retain, dup, packetId, properties))
        return packetId

    def subscribe(
        self, topicFilter: str, qos: int = 0, properties: Properties = NO_PROPERTIES, **options: Any
    ) -> int:
        """
        Send a SUBSCRIBE for one filter.

        @return: the packet id.
        """
        packetId = self.newPacketId()
        self.send(Subscribe(packetId, (SubscriptionRequest(topicFilter, qos, **options),),
                            properties))
        return packetId

    def unsubscribe(self, *topicFilters: str) -> int:
        """
        Send an UNSUBSCRIBE.

        @return: the packet id.
        """
        packetId = self.newPacketId()
        self.send(Unsubscribe(packetId, topicFilters))
        return packetId

    def ping(self) -> None:
        """
        Send a PINGREQ.
        """
        self.send(Pingreq())

    def disconnect(self, reasonCode: int = 0, properties: Properties = NO_PROPERTIES) -> None:
        """
        Send DISCONNECT and close.
        """
        self.send(Disconnect(reasonCode, properties))
        self.transport.loseConnection()

    def take(self) -> list[Packet]:
        """
        Return the packets received so far and forget them.
        """
        received, self.received = self.received, []
        return received

    def publishes(self) -> list[Publish]:
        """
        Take the received packets and return the PUBLISH packets among them.
        """
        return [p for p in self.take() if isinstance(p, Publish)]


class InMemoryBroker:
    """
    A L{Broker} on a driven L{Clock}, with test clients connected over
    in-memory transports.

    @ivar clock: the clock every broker timer uses; see L{advance}.
    @ivar broker: the broker.
    @ivar factory: the server factory clients connect through.
    """

    def __init__(
        self, config: BrokerConfig | None = None, store: IStore | None = None, **settings: Any
    ) -> None:
        """
        @param config: broker settings; keyword arguments override single
            settings (e.g. C{maxQueuedMessages=10}).
        @param store: a store; the broker service is then started, so that
            it reads back what the store holds.
        """
        self.clock = Clock()
        if config is None:
            config = BrokerConfig()
        if settings:
            config = config.replace(**settings)
        self.broker = Broker(config, clock=self.clock, store=store)
        if store is not None:
            self.broker.startService()
        self.factory = MQTTServerFactory(self.broker)
        self._pumps: list[iosim.IOPump] = []

    def openClient(
        self, protocolLevel: int = MQTT_3_1_1, autoAck: bool = False
    ) -> MQTTTestClient:
        """
        Open a connection without sending anything.
        """
        client = MQTTTestClient(protocolLevel, autoAck)
        server = self.factory.buildProtocol(None)
        if server is None:
            raise ConnectionRefusedError("the broker refused the connection")
        clientTransport = iosim.makeFakeClient(client)
        serverTransport = iosim.makeFakeServer(server)
        pump = iosim.connect(server, serverTransport, client, clientTransport, greet=False,
                             clock=self.clock)
        client.pump = pump
        client.server = server
        self._pumps.append(pump)
        return client

    def connect(
        self,
        clientId: str = "",
        protocolLevel: int = MQTT_3_1_1,
        autoAck: bool = True,
        **connectArgs: Any,
    ) -> MQTTTestClient:
        """
        Open a connection, CONNECT and wait for the CONNACK (which is
        consumed from C{received}).

        @raise AssertionError: if the broker did not accept the CONNECT.
        """
        client = self.openClient(protocolLevel, autoAck)
        client.connect(clientId, **connectArgs)
        self.flush()
        packets = client.take()
        if not packets or not isinstance(packets[0], Connack) or packets[0].reasonCode:
            raise AssertionError(f"CONNECT refused: {packets!r}")
        client.connack = packets[0]
        client.received.extend(packets[1:])
        return client

    def serverFor(self, client: MQTTTestClient) -> MQTTServerProtocol:
        """
        The broker-side protocol of a test client.
        """
        server: MQTTServerProtocol = client.server
        return server

    def flush(self) -> None:
        """
        Move bytes between every client and the broker until nothing moves
        (timers due now run too).
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
        Let time pass on the broker's clock, then flush.
        """
        self.clock.advance(seconds)
        self.flush()


# -- conformance mixins for plug-in authors -------------------------------------


if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase as _TestCaseBase
    from twisted.trial.unittest import TestCase as _AsyncTestCaseBase
else:
    _TestCaseBase = _AsyncTestCaseBase = object


class AuthenticatorConformanceMixin(_TestCaseBase):
    """
    Tests every authenticator plug-in should pass.  Mix it into a
    C{twisted.trial.unittest.SynchronousTestCase} and define:

      - C{makeAuthenticator()}: a new checker (its Deferreds must have fired
        by the time C{requestAvatarId} returns, e.g. no thread pool);
      - C{validCredentials}: C{(username, password)} pairs it accepts
        (required);
      - C{wrongPasswords}: pairs of a known user and a wrong password
        (required: every authenticator refuses something);
      - C{unknownUsernames}: user names it leaves to the next authenticator
        (optional: the test that needs them is skipped without them, for an
        authenticator that answers for every user).
    """

    validCredentials: Sequence[tuple[str, bytes]] = ()
    wrongPasswords: Sequence[tuple[str, bytes]] = ()
    unknownUsernames: Sequence[str] = ()

    def makeAuthenticator(self) -> Any:
        raise NotImplementedError("define makeAuthenticator()")

    def _login(self, checker: Any, username: str, password: bytes) -> Any:
        credentials = UsernamePassword(username.encode("utf-8"), password)
        return checker.requestAvatarId(credentials)

    def test_providesCredentialsChecker(self) -> None:
        """It provides ICredentialsChecker for IUsernamePassword."""
        checker = self.makeAuthenticator()
        verifyObject(ICredentialsChecker, checker)
        self.assertIn(IUsernamePassword, checker.credentialInterfaces)

    def test_acceptsValidCredentials(self) -> None:
        """Every valid pair gives an avatar id naming the user."""
        checker = self.makeAuthenticator()
        self.assertTrue(self.validCredentials, "define validCredentials")
        for username, password in self.validCredentials:
            avatarId = self.successResultOf(
                self._login(checker, username, password)
            )
            self.assertEqual(ClientIdentity(avatarId).username, username)

    def test_refusesWrongPasswords(self) -> None:
        """A known user with a wrong password is refused (UnauthorizedLogin)."""
        checker = self.makeAuthenticator()
        self.assertTrue(self.wrongPasswords,
                        "define wrongPasswords: (known user, wrong password) pairs")
        for username, password in self.wrongPasswords:
            self.failureResultOf(
                self._login(checker, username, password), UnauthorizedLogin
            )

    def test_unknownUsersAreNotHandled(self) -> None:
        """An unknown user is left to the next authenticator (UnhandledCredentials)."""
        if not self.unknownUsernames:
            self.skipTest("no unknownUsernames: this authenticator answers for every user")
        checker = self.makeAuthenticator()
        for username in self.unknownUsernames:
            self.failureResultOf(
                self._login(checker, username, b"whatever"), UnhandledCredentials
            )

    def test_connectThroughTheBroker(self) -> None:
        """Through a broker's portal: valid pairs connect, wrong ones get 0x04 / 0x86."""
        env = InMemoryBroker()
        env.factory.portal = Portal(MQTTRealm(), [CheckerChain([self.makeAuthenticator()])])
        self.assertTrue(self.validCredentials, "define validCredentials")
        self.assertTrue(self.wrongPasswords,
                        "define wrongPasswords: (known user, wrong password) pairs")
        for username, password in self.validCredentials[:1]:
            client = env.connect("conformance-ok", username=username, password=password)
            self.assertFalse(client.closed)
        for username, password in self.wrongPasswords[:1]:
            client = env.openClient(MQTT_5)
            client.connect("conformance-bad", username=username, password=password)
            env.flush()
            [connack] = client.take()
            assert isinstance(connack, Connack)
            self.assertEqual(connack.reasonCode, 0x86)


class AuthorizerConformanceMixin(_TestCaseBase):
    """
    Tests every authorizer plug-in should pass.  Mix it into a
    C{twisted.trial.unittest.SynchronousTestCase} and define:

      - C{makeAuthorizer()}: a new authorizer (answering plain values or
        already-fired Deferreds);
      - C{cases}: C{(username, clientId, action, topic, expected)} rows,
        C{action} one of C{"publish"}, C{"subscribe"}, C{"receive"},
        C{expected} one of C{ALLOW}, C{DENY} (any L{Deny}), C{NEXT}
        (required).  The publish rows are also tried through a broker, where
        nothing else allows a publish; without them that test is skipped.
    """

    cases: Sequence[tuple[str | None, str, str, str, Any]] = ()

    def makeAuthorizer(self) -> Any:
        raise NotImplementedError("define makeAuthorizer()")

    def _answer(self, authorizer: Any, username: str | None, clientId: str, action: str,
                topic: str) -> Any:
        client = ClientInfo(clientId, username, None, MQTT_3_1_1, "conformance")
        if action == "publish":
            answer = authorizer.authorizePublish(client, topic, 1, False)
        elif action == "subscribe":
            answer = authorizer.authorizeSubscribe(client, topic, 1)
        elif action == "receive":
            answer = authorizer.authorizeReceive(client, topic, 1, False)
        else:
            raise ValueError(f"unknown action {action!r}")
        if isinstance(answer, Deferred):
            answer = self.successResultOf(answer)
        return answer

    def test_providesAuthorizer(self) -> None:
        """It provides IAuthorizer."""
        verifyObject(IAuthorizer, self.makeAuthorizer())

    def test_answersAreDecisions(self) -> None:
        """Every answer is ALLOW, NEXT or a Deny."""
        authorizer = self.makeAuthorizer()
        client = ClientInfo("conformance", None, None, MQTT_3_1_1, "conformance")
        answers = [authorizer.authorizeConnect(client)]
        for username, clientId, action, topic, _ in self.cases:
            answers.append(self._answer(authorizer, username, clientId, action, topic))
        for answer in answers:
            if isinstance(answer, Deferred):
                answer = self.successResultOf(answer)
            self.assertTrue(answer is ALLOW or answer is NEXT or isinstance(answer, Deny),
                            answer)

    def test_cases(self) -> None:
        """Every case gets its expected answer."""
        authorizer = self.makeAuthorizer()
        self.assertTrue(self.cases, "define cases")
        wrong = []
        for username, clientId, action, topic, expected in self.cases:
            answer = self._answer(authorizer, username, clientId, action, topic)
            if expected is DENY:
                ok = isinstance(answer, Deny)
            else:
                ok = answer is expected
            if not ok:
                wrong.append((username, clientId, action, topic, expected, answer))
        self.assertEqual(wrong, [])

    def test_publishThroughTheBroker(self) -> None:
        """
        In a broker, an allowed publish is delivered; a denied one, or one
        the authorizer leaves to the next (and no other authorizer allows),
        is not.
        """
        authorizer = self.makeAuthorizer()
        rows = [(username, clientId, topic, expected)
                for username, clientId, action, topic, expected in self.cases
                if action == "publish" and "+" not in topic and "#" not in topic]
        if not rows:
            self.skipTest("no publish rows (with a topic name, not a filter) in cases")
        for username, clientId, topic, expected in rows:
            env = InMemoryBroker()
            # The last authorizer lets the client connect and the message
            # be received, but has no opinion on publishing: only the
            # authorizer under test can allow it.
            env.broker.authorizer = AuthorizerChain([authorizer, _AllowAllButPublish()],
                                                    env.clock)
            received: list[Message] = []
            env.broker.subscribe(topic, received.append)
            client = env.connect(clientId, username=username)
            client.publish(topic, b"conformance", qos=1)
            env.flush()
            self.assertEqual(
                [m.topic for m in received], [topic] if expected is ALLOW else [],
                (username, clientId, topic, expected),
            )


@implementer(IAuthorizer)
class _AllowAllButPublish:
    """
    Ends the chain in L{AuthorizerConformanceMixin.test_publishThroughTheBroker}:
    allows what the test needs besides the publish itself, and leaves the
    publish to the authorizer under test (all L{NEXT} means deny).
    """

    def authorizeConnect(self, client: Any) -> Any:
        return ALLOW

    def authorizePublish(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        return NEXT

    def authorizeSubscribe(self, client: Any, topicFilter: str, qos: int) -> Any:
        return ALLOW

    def authorizeReceive(self, client: Any, topic: str, qos: int, retain: bool) -> Any:
        return ALLOW


class StoreConformanceMixin(_AsyncTestCaseBase):
    """
    Tests every store plug-in should pass: what is written comes back after
    the store is closed and opened again, deletions stick, and a broker
    restarted on the store gives back what it acknowledged.  Mix it into a
    C{twisted.trial.unittest.TestCase} (the tests return Deferreds; the
    reactor runs) and define:

      - C{makeStore()}: a new, empty store (or a Deferred of one);
      - C{reopenStore(store)}: called once C{store.close()} has finished: a
        store reading what C{store} wrote (or a Deferred of one); an
        in-memory store may return C{store} itself.

    Every test calls C{load()} first, as the broker does.
    """

    def makeStore(self) -> Any:
        raise NotImplementedError("define makeStore()")

    def reopenStore(self, store: Any) -> Any:
        raise NotImplementedError("define reopenStore(store)")

    @inlineCallbacks
    def _open(self) -> Any:
        store = yield maybeDeferred(self.makeStore)
        state = store.load()
        self.addCleanup(_closeQuietly, store)
        return store, state

    @inlineCallbacks
    def _reload(self, store: Any) -> Any:
        yield maybeDeferred(store.close)
        store = yield maybeDeferred(self.reopenStore, store)
        state = store.load()
        self.addCleanup(_closeQuietly, store)
        return store, state

    @inlineCallbacks
    def test_providesIStore(self) -> Any:
        """It provides IStore; C{durable} is a bool; a new store is empty."""
        store, state = yield self._open()
        verifyObject(IStore, store)
        self.assertIsInstance(store.durable, bool)
        self.assertEqual(_plainState(state), _plainState(StoredState()))

    @inlineCallbacks
    def test_roundTrip(self) -> Any:
        """Everything written comes back, messages with all their fields."""
        store, _ = yield self._open()
        expected = _sampleState()
        yield _writeState(store, expected)
        store, state = yield self._reload(store)
        self.assertEqual(_plainState(state), _plainState(expected))

    @inlineCallbacks
    def test_updates(self) -> Any:
        """Saving again replaces; a message moving to PUBREL keeps its place."""
        store, _ = yield self._open()
        expected = _sampleState()
        yield _writeState(store, expected)
        record = expected.sessions["persistent"]
        first = next(iter(record.inflight.values()))
        first.released = True
        record.expiryInterval = 7
        record.ownerKey = ("user", b"someone else")
        record.disconnectedAt = None
        record.subscriptions["a/#"] = ("a/#", 0, True, False, 2, (), None)
        expected.retained["r/1"] = Message("r/1", b"newer", 1, True)
        yield _settle([
            store.inflightSaved("persistent", InflightRecord(
                first.packetId, first.message, first.qos, first.retain, first.subscriptionIds,
                True, first.group,
            )),
            store.sessionSaved("persistent", 7, ("user", b"someone else")),
            store.subscriptionSaved("persistent", "a/#", record.subscriptions["a/#"]),
            store.retain("r/1", expected.retained["r/1"]),
        ])
        store, state = yield self._reload(store)
        self.assertEqual(_plainState(state), _plainState(expected))

    @inlineCallbacks
    def test_deletions(self) -> Any:
        """Each kind of record can be deleted; a deleted session takes all its records."""
        store, _ = yield self._open()
        expected = _sampleState()
        yield _writeState(store, expected)
        record = expected.sessions["persistent"]
        seq = min(record.queue)
        packetId = next(iter(record.inflight))
        inbound = min(record.awaitingRel)
        del record.queue[seq]
        del record.inflight[packetId]
        record.awaitingRel.discard(inbound)
        del record.subscriptions["a/#"]
        del expected.retained["r/1"]
        del expected.sessions["other"]
        [(group, queue)] = list(expected.shared.items())
        sharedSeq = min(queue)
        del queue[sharedSeq]
        yield _settle([
            store.messageDequeued("persistent", seq),
            store.inflightDeleted("persistent", packetId),
            store.inboundDeleted("persistent", inbound),
            store.subscriptionDeleted("persistent", "a/#"),
            store.retain("r/1", None),
            store.sessionDeleted("other"),
            store.sharedDequeued(group, sharedSeq),
        ])
        store, state = yield self._reload(store)
        self.assertEqual(_plainState(state), _plainState(expected))
        yield _settle([store.sharedDeleted(group)] + [
            store.sessionDeleted(clientId) for clientId in expected.sessions
        ])
        store, state = yield self._reload(store)
        self.assertEqual(_plainState(state), _plainState(
            StoredState(retained={"r/2": expected.retained["r/2"]})
        ))

    @inlineCallbacks
    def test_brokerRestart(self) -> Any:
        """
        A broker restarted on the store gives back the session, its
        subscription, the QoS 1 message it acknowledged for the offline
        subscriber and the retained message; PUBACK only once stored.
        """
        # Not loaded: the broker loads it.
        store = yield maybeDeferred(self.makeStore)
        env = InMemoryBroker(store=store)
        subscriber = env.connect("conformance-sub", cleanStart=False)
        subscriber.subscribe("c/#", qos=1)
        env.flush()
        yield _waitFor(env, lambda: any(isinstance(p, Suback) for p in subscriber.take()))
        subscriber.disconnect()
        publisher = env.connect("conformance-pub")
        packetId = publisher.publish("c/queued", b"kept", qos=1)
        publisher.publish("c/retained", b"last", qos=1, retain=True)
        env.flush()
        acks: list[Puback] = []

        def acked() -> bool:
            acks.extend(p for p in publisher.take() if isinstance(p, Puback))
            return len(acks) == 2

        yield _waitFor(env, acked)
        self.assertEqual(acks[0].packetId, packetId)
        yield maybeDeferred(env.broker.stopService)
        store = yield maybeDeferred(self.reopenStore, store)
        self.addCleanup(_closeQuietly, store)
        env = InMemoryBroker(store=store)
        subscriber = env.connect("conformance-sub", cleanStart=False)
        self.assertTrue(subscriber.connack.sessionPresent)
        env.flush()
        self.assertEqual(
            sorted((p.topic, p.payload) for p in subscriber.publishes()),
            [("c/queued", b"kept"), ("c/retained", b"last")],
        )
        yield maybeDeferred(env.broker.stopService)


def _closeQuietly(store: Any) -> Deferred[Any]:
    return maybeDeferred(store.close).addErrback(lambda failure: None)


@inlineCallbacks
def _waitFor(env: InMemoryBroker, condition: Any, attempts: int = 500) -> Any:
    """
    Let the reactor run (store threads, timers) until C{condition()} holds,
    flushing the in-memory connections in between.
    """
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    for _ in range(attempts):
        env.flush()
        if condition():
            return
        yield deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("the store never finished its writes")


def _settle(results: Sequence[Any]) -> Deferred[Any]:
    return gatherResults(
        [r if isinstance(r, Deferred) else succeed(r) for r in results], consumeErrors=True
    )


def _plainMessage(message: Message) -> tuple[Any, ...]:
    props = {int(k): v for k, v in message.properties.items()} if message.properties else {}
    return (message.topic, message.payload, message.qos, message.retain, props,
            message.senderId, message.expiresAt)


def _plainState(state: StoredState) -> Any:
    def queued(q: QueuedRecord) -> Any:
        return (q.seq, _plainMessage(q.message), q.qos, q.retain, tuple(q.subscriptionIds),
                q.group)

    sessions = {}
    for clientId, r in state.sessions.items():
        sessions[clientId] = (
            r.clientId, r.expiryInterval, r.ownerKey, r.disconnectedAt,
            {k: (*v[:5], tuple(v[5]), v[6]) for k, v in r.subscriptions.items()},
            sorted(queued(q) for q in r.queue.values()),
            [(i.packetId, _plainMessage(i.message), i.qos, i.retain, tuple(i.subscriptionIds),
              i.released, i.group) for i in r.inflight.values()],
            sorted(r.awaitingRel),
        )
    return (
        sessions,
        {topic: _plainMessage(m) for topic, m in state.retained.items()},
        {group: sorted(queued(q) for q in queue.values()) for group, queue in state.shared.items()},
    )


def _sampleState() -> StoredState:
    """
    A state that uses every kind of record and every message field.
    """
    rich = Message(
        "a/b", b"\x00\xffpayload", 2, False,
        {
            PropertyId.PAYLOAD_FORMAT_INDICATOR: 1,
            PropertyId.CONTENT_TYPE: "text/plain",
            PropertyId.RESPONSE_TOPIC: "reply/here",
            PropertyId.CORRELATION_DATA: b"\x01\x02",
            PropertyId.USER_PROPERTY: (("b", "2"), ("a", "1"), ("b", "3")),
        },
        "publisher", 1_900_000_000.5,
    )
    plain = Message("a/c", b"", 1, True, NO_PROPERTIES, None, None)
    persistent = SessionRecord(
        "persistent", 3600, ("user", b"caf\xc3\xa9\xff"), 1_800_000_000.25,
        subscriptions={
            "a/#": ("a/#", 2, False, True, 1, (5, 9), None),
            "$share/g/a/+": ("a/+", 1, False, False, 0, (), "g"),
        },
        queue={
            3: QueuedRecord(3, rich, 2, False, (5,), None),
            4: QueuedRecord(4, plain, 1, True, (), ("g", "a/+")),
            9: QueuedRecord(9, rich, 1, False, (5, 9), None),
        },
        inflight={
            7: InflightRecord(7, plain, 1, False, (), False, ("g", "a/+")),
            2: InflightRecord(2, rich, 2, False, (9,), True, None),
            65535: InflightRecord(65535, rich, 2, True, (), False, None),
        },
        awaitingRel={1, 300, 65535},
    )
    other = SessionRecord(
        "other", 0xFFFFFFFF, ("anonymous",), None,
        subscriptions={"x": ("x", 0, False, False, 0, (), None)},
        queue={1: QueuedRecord(1, plain, 1, False)},
        inflight={1: InflightRecord(1, plain, 1, False)},
        awaitingRel={1},
    )
    anonymous = SessionRecord("\u00e9t\u00e9 \U0001f600", 10, None, None)
    return StoredState(
        sessions={"persistent": persistent, "other": other, anonymous.clientId: anonymous},
        retained={
            "r/1": Message("r/1", b"one", 1, True, NO_PROPERTIES, "x", None),
            "r/2": Message("r/2", b"two", 0, True, rich.properties, None, 1_900_000_001.0),
        },
        shared={("g", "a/+"): {5: QueuedRecord(5, rich, 1, False), 6: QueuedRecord(6, plain, 2,
                                                                                    True)}},
    )


def _writeState(store: Any, state: StoredState) -> Deferred[Any]:
    """
    Write a state the way the broker would.
    """
    results = []
    for record in state.sessions.values():
        results.append(store.sessionSaved(record.clientId, record.expiryInterval,
                                          record.ownerKey))
        for fullFilter, subscription in record.subscriptions.items():
            results.append(store.subscriptionSaved(record.clientId, fullFilter, subscription))
        for queued in record.queue.values():
            results.append(store.messageQueued(record.clientId, queued))
        for entry in record.inflight.values():
            results.append(store.inflightSaved(record.clientId, entry))
        for packetId in record.awaitingRel:
            results.append(store.inboundSaved(record.clientId, packetId))
        if record.disconnectedAt is not None:
            results.append(store.sessionDisconnected(record.clientId, record.disconnectedAt))
    for topic, message in state.retained.items():
        results.append(store.retain(topic, message))
    for group, queue in state.shared.items():
        for queued in queue.values():
            results.append(store.sharedQueued(group, queued))
    return _settle(results)
