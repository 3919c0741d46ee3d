"""
MQTT 5.0 features against the real broker (C{twistd mqttd} in a
subprocess), driven by paho-mqtt 2.x in MQTTv5 mode, raw sockets and the
mosquitto command-line clients: session and message expiry, topic aliases
both ways, shared subscriptions, Receive Maximum, subscription options and
identifiers, will delay, request/response and user properties.

Waits are generous deadlines (liveness); timers of a few seconds are checked
only for "not before" and "eventually".
"""

from __future__ import annotations

import select
import subprocess
import sys
import time
from typing import Any

import paho.mqtt.client as mqtt
from brokerprocess import BackgroundCommand, BrokerProcess, RawClient, runCommand
from clienthelpers import WAIT, PahoClient, uniqueName
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import (
    MQTT_5,
    Connack,
    Connect,
    Decoder,
    Packet,
    PropertyId,
    Puback,
    Publish,
    Suback,
    Subscribe,
    SubscriptionRequest,
    encode,
)


def _properties(packetType: int, values: dict[str, Any]) -> Properties | None:
    """
    paho properties from C{{name: value}} (C{None} if empty); a list value
    for C{UserProperty} is added pair by pair, in order.
    """
    if not values:
        return None
    props = Properties(packetType)
    for name, value in values.items():
        setattr(props, name, value)
    return props


class V5Client(PahoClient):
    """
    A L{PahoClient} in MQTTv5 mode that also keeps every received
    C{MQTTMessage} (with its properties and arrival time) and the CONNACK
    properties, and takes CONNECT / PUBLISH / SUBSCRIBE properties.

    @ivar full: C{(arrival time, MQTTMessage)} for every message, in order.
    """

    def __init__(
        self,
        port: int,
        clientId: str,
        cleanStart: bool = True,
        connectProperties: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(port, clientId, protocol=mqtt.MQTTv5, cleanSession=cleanStart)
        self.connectProperties = connectProperties or {}
        self.full: list[tuple[float, mqtt.MQTTMessage]] = []
        self.connackProperties: Any = None

    def _onConnect(
        self, client: Any, userdata: Any, flags: Any, reasonCode: Any, properties: Any
    ) -> None:
        self.connackProperties = properties
        super()._onConnect(client, userdata, flags, reasonCode, properties)

    def _onMessage(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._condition:
            self.full.append((time.monotonic(), message))
            super()._onMessage(client, userdata, message)

    def connect(self) -> V5Client:
        self._connected.clear()
        self._disconnected.clear()
        self.client.connect(
            "127.0.0.1", self.port, keepalive=self.keepAlive, clean_start=self.cleanSession,
            properties=_properties(PacketTypes.CONNECT, self.connectProperties),
        )
        self.client.loop_start()
        self._started = True
        if not self._connected.wait(WAIT):
            raise AssertionError(f"{self.clientId}: no CONNACK within {WAIT} s")
        if self.connectReason != 0:
            raise AssertionError(f"{self.clientId}: CONNACK refused: {self.connectReason}")
        return self

    def publishWith(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                    **props: Any) -> None:
        """
        Publish with PUBLISH properties and wait for the flow to complete.
        """
        info = self.client.publish(topic, payload, qos, retain,
                                   properties=_properties(PacketTypes.PUBLISH, props))
        info.wait_for_publish(WAIT)
        if not info.is_published():
            raise AssertionError(f"{self.clientId}: publish to {topic!r} not completed")

    def subscribeWith(self, topicFilter: str, qos: int = 1, subscriptionId: int | None = None,
                      **options: Any) -> list[int]:
        """
        Subscribe with v5 options (C{noLocal}, C{retainAsPublished},
        C{retainHandling}) and an optional Subscription Identifier.

        @return: the SUBACK reason codes.
        """
        props = _properties(PacketTypes.SUBSCRIBE,
                            {"SubscriptionIdentifier": subscriptionId} if subscriptionId else {})
        result, mid = self.client.subscribe(
            topicFilter, options=SubscribeOptions(qos=qos, **options), properties=props
        )
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        deadline = time.monotonic() + WAIT
        with self._condition:
            while mid not in self._subacks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.clientId}: no SUBACK within {WAIT} s")
                self._condition.wait(remaining)
            return self._subacks.pop(mid)

    def received(self) -> list[mqtt.MQTTMessage]:
        with self._condition:
            return [m for _, m in self.full]

    def waitForPayload(self, payload: bytes, timeout: float = WAIT) -> list[mqtt.MQTTMessage]:
        """
        Wait until a message with C{payload} arrived (or the timeout passes).
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while not any(m.payload == payload for _, m in self.full):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return [m for _, m in self.full]

    def stayQuiet(self, seconds: float) -> list[mqtt.MQTTMessage]:
        """
        Wait C{seconds} and return what arrived meanwhile.
        """
        before = len(self.full)
        time.sleep(seconds)
        with self._condition:
            return [m for _, m in self.full[before:]]


def prop(message: mqtt.MQTTMessage, name: str, default: Any = None) -> Any:
    """
    A property of a received message (C{default} if absent).
    """
    props = message.properties
    return getattr(props, name, default) if props is not None else default


def resolvedTopics(messages: list[mqtt.MQTTMessage]) -> list[str]:
    """
    The topics of received messages, resolving server-to-client Topic
    Aliases as a client must (paho 2.x hands them over unresolved).
    """
    aliases: dict[int, str] = {}
    topics = []
    for m in messages:
        alias = prop(m, "TopicAlias")
        if m.topic:
            if alias is not None:
                aliases[alias] = m.topic
            topics.append(m.topic)
        else:
            if alias not in aliases:
                raise AssertionError(f"empty topic with unknown alias {alias}")
            topics.append(aliases[alias])
    return topics


class _V5BrokerTestCase(SynchronousTestCase):
    """
    One broker for the tests of a class (with C{brokerArgs}); each test
    checks that it logged no traceback.
    """

    brokerArgs: tuple[str, ...] = ()
    broker: BrokerProcess

    @classmethod
    def setUpClass(cls) -> None:
        cls.broker = BrokerProcess(*cls.brokerArgs)
        cls.port = cls.broker.port

    @classmethod
    def tearDownClass(cls) -> None:
        cls.broker.cleanup()

    def tearDown(self) -> None:
        self.assertEqual(self.broker.tracebacks(), [], self.broker.log())

    def v5(self, clientId: str | None = None, cleanStart: bool = True, connect: bool = True,
           **connectProperties: Any) -> V5Client:
        """
        A paho MQTTv5 client (connected unless C{connect} is false),
        stopped in cleanup.
        """
        client = V5Client(self.port, clientId or uniqueName("c"), cleanStart, connectProperties)
        self.addCleanup(client.close)
        if connect:
            client.connect()
        return client

    def v311(self) -> PahoClient:
        client = PahoClient(self.port, uniqueName("o"))
        self.addCleanup(client.close)
        return client.connect()


class SessionAndExpiryTests(_V5BrokerTestCase):
    """
    Session Expiry Interval and Message Expiry Interval with paho.
    """

    def offlineSubscriber(self, topic: str, expiry: int) -> str:
        clientId = uniqueName("s")
        sub = self.v5(clientId, SessionExpiryInterval=expiry)
        self.assertEqual(sub.subscribeWith(topic, 1), [1])
        sub.disconnect()
        return clientId

    def test_sessionResumedWithinExpiry(self) -> None:
        """Reconnecting within the Session Expiry Interval (10 s): Session Present and the queued messages."""
        topic = uniqueName("se/")
        clientId = self.offlineSubscriber(topic, 10)
        pub = self.v5()
        pub.publishWith(topic, b"one")
        pub.publishWith(topic, b"two")
        again = self.v5(clientId, cleanStart=False, SessionExpiryInterval=10)
        self.assertTrue(again.sessionPresent)
        messages = again.waitForMessages(2)
        self.assertEqual([(m.topic, m.payload) for m in messages], [(topic, b"one"), (topic, b"two")])

    def test_sessionGoneAfterExpiry(self) -> None:
        """Reconnecting after the 2 s Session Expiry Interval: no session, no queued messages."""
        topic = uniqueName("se/")
        clientId = self.offlineSubscriber(topic, 2)
        self.v5().publishWith(topic, b"lost")
        time.sleep(4)
        again = self.v5(clientId, cleanStart=False, SessionExpiryInterval=2)
        self.assertFalse(again.sessionPresent)
        self.assertEqual(again.stayQuiet(0.5), [])

    def test_messageExpiry(self) -> None:
        """Queued for an offline client: past its expiry never delivered; within it delivered with a smaller Message Expiry Interval."""
        topic = uniqueName("me/")
        clientId = self.offlineSubscriber(topic, 60)
        pub = self.v5()
        pub.publishWith(topic, b"short", MessageExpiryInterval=1)
        pub.publishWith(topic, b"long", MessageExpiryInterval=30)
        time.sleep(2.5)
        again = self.v5(clientId, cleanStart=False, SessionExpiryInterval=60)
        self.assertTrue(again.sessionPresent)
        again.waitForPayload(b"long")
        messages = again.received() + again.stayQuiet(0.5)
        self.assertEqual([m.payload for m in messages], [b"long"])
        remaining = prop(messages[0], "MessageExpiryInterval")
        self.assertIsNotNone(remaining)
        self.assertTrue(20 <= remaining < 30, remaining)


class PahoV5Tests(_V5BrokerTestCase):
    """
    Topic aliases, shared subscriptions, subscription options, identifiers,
    request/response and user properties with paho MQTTv5 clients.
    """

    brokerArgs = ("--response-information", "reply/{clientId}")

    def test_serverToClientTopicAliases(self) -> None:
        """A client with Topic Alias Maximum 3 gets aliases for its first topics; resolved, every topic is right."""
        base = uniqueName("ta")
        sub = self.v5(TopicAliasMaximum=3)
        self.assertEqual(sub.subscribeWith(f"{base}/#", 1), [1])
        pub = self.v5()
        topics = [f"{base}/{n}" for n in "abcdeabcdeaaeb"]
        for i, topic in enumerate(topics):
            pub.publishWith(topic, b"%d" % i)
        messages = sub.waitForMessages(len(topics))
        received = sub.received()
        self.assertEqual(len(messages), len(topics))
        self.assertEqual([m.payload for m in received], [b"%d" % i for i in range(len(topics))])
        self.assertEqual(resolvedTopics(received), topics)
        self.assertEqual(
            [(m.topic, prop(m, "TopicAlias")) for m in received[:6]],
            [(f"{base}/a", 1), (f"{base}/b", 2), (f"{base}/c", 3), (f"{base}/d", None),
             (f"{base}/e", None), ("", 1)],
        )

    def test_noServerAliasesWithoutMaximum(self) -> None:
        """A client that advertised no Topic Alias Maximum gets every topic in full, no Topic Alias."""
        base = uniqueName("ta")
        sub = self.v5()
        sub.subscribeWith(f"{base}/#", 0)
        pub = self.v5()
        for _ in range(3):
            pub.publishWith(f"{base}/x", b"m", qos=0)
        received = sub.waitForMessages(3)
        self.assertEqual([m.topic for m in received], [f"{base}/x"] * 3)
        self.assertEqual([prop(m, "TopicAlias") for m in sub.received()], [None] * 3)

    def test_clientToServerTopicAlias(self) -> None:
        """paho publishing with a Topic Alias, then an empty topic and the alias: the subscriber gets the topic each time."""
        topic = uniqueName("ca/")
        sub = self.v5()
        sub.subscribeWith(topic, 1)
        pub = self.v5()
        self.assertEqual(pub.connackProperties.TopicAliasMaximum, 10)
        pub.publishWith(topic, b"first", TopicAlias=7)
        pub.publishWith("", b"second", TopicAlias=7)
        pub.publishWith("", b"third", TopicAlias=7)
        messages = sub.waitForMessages(3)
        self.assertEqual([(m.topic, m.payload) for m in messages],
                         [(topic, b"first"), (topic, b"second"), (topic, b"third")])
        self.assertEqual([prop(m, "TopicAlias") for m in sub.received()], [None] * 3)

    def test_sharedGroup(self) -> None:
        """Three paho members of a shared group: each message exactly once across them, spread over all three."""
        base = uniqueName("sh")
        members = [self.v5() for _ in range(3)]
        for member in members:
            self.assertEqual(member.subscribeWith(f"$share/grp/{base}/#", 1), [1])
        pub = self.v5()
        count = 30
        for i in range(count):
            pub.publishWith(f"{base}/t", b"%d" % i)
        deadline = time.monotonic() + WAIT
        while sum(len(m.messages) for m in members) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        got = [[int(msg.payload) for msg in m.received()] for m in members]
        self.assertEqual(sorted(n for g in got for n in g), list(range(count)))
        for numbers in got:
            self.assertGreaterEqual(len(numbers), count // 3 // 2, got)

    def test_noLocal(self) -> None:
        """No Local: the client's own messages do not come back; another client's do."""
        topic = uniqueName("nl/")
        me = self.v5()
        self.assertEqual(me.subscribeWith(topic, 1, noLocal=True), [1])
        me.publishWith(topic, b"mine")
        self.v5().publishWith(topic, b"theirs")
        me.waitForPayload(b"theirs")
        self.assertEqual([m.payload for m in me.received() + me.stayQuiet(0.3)], [b"theirs"])

    def retainHandling(self, handling: int) -> list[bytes]:
        """
        Subscribe twice with one Retain Handling to a topic with a retained
        message; return the payloads received (a live marker ends it).
        """
        topic = uniqueName("rh/")
        pub = self.v5()
        pub.publishWith(topic, b"retained", retain=True)
        self.addCleanup(lambda: self.v5().publishWith(topic, b"", retain=True))
        sub = self.v5()
        sub.subscribeWith(topic, 1, retainHandling=handling)
        sub.subscribeWith(topic, 1, retainHandling=handling)
        pub.publishWith(topic, b"marker")
        messages = sub.waitForPayload(b"marker")
        return [m.payload for m in messages if m.retain] + [
            m.payload for m in messages if not m.retain
        ]

    def test_retainHandling0(self) -> None:
        """Retain Handling 0: the retained message at each of two SUBSCRIBEs."""
        self.assertEqual(self.retainHandling(0), [b"retained", b"retained", b"marker"])

    def test_retainHandling1(self) -> None:
        """Retain Handling 1: the retained message only for the new subscription."""
        self.assertEqual(self.retainHandling(1), [b"retained", b"marker"])

    def test_retainHandling2(self) -> None:
        """Retain Handling 2: no retained message."""
        self.assertEqual(self.retainHandling(2), [b"marker"])

    def test_overlappingSubscriptionIdentifiers(self) -> None:
        """Two overlapping subscriptions with identifiers 1 and 2: one message carrying both."""
        base = uniqueName("si")
        sub = self.v5()
        self.assertEqual(sub.subscribeWith(f"{base}/#", 1, subscriptionId=1), [1])
        self.assertEqual(sub.subscribeWith(f"{base}/+", 1, subscriptionId=2), [1])
        self.assertEqual(sub.subscribeWith(f"{base}/other", 1, subscriptionId=3), [1])
        pub = self.v5()
        pub.publishWith(f"{base}/x", b"both")
        pub.publishWith(f"{base}/end/z", b"one")
        sub.waitForPayload(b"one")
        messages = sub.received() + sub.stayQuiet(0.3)
        self.assertEqual([m.payload for m in messages], [b"both", b"one"])
        self.assertEqual(sorted(prop(messages[0], "SubscriptionIdentifier")), [1, 2])
        self.assertEqual(prop(messages[1], "SubscriptionIdentifier"), [1])

    def test_requestResponse(self) -> None:
        """Response Topic and Correlation Data pass through a request and its reply."""
        service = uniqueName("svc/")
        requester = self.v5()
        replyTo = f"{service}/reply/{requester.clientId}"
        requester.subscribeWith(replyTo, 1)
        responder = self.v5()
        responder.subscribeWith(f"{service}/request", 1)

        def answer(client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
            responder._onMessage(client, userdata, message)
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = message.properties.CorrelationData
            client.publish(message.properties.ResponseTopic, b"answer to " + message.payload, 1,
                           properties=props)

        responder.client.on_message = answer
        requester.publishWith(f"{service}/request", b"question", ResponseTopic=replyTo,
                              CorrelationData=b"\x00id-42\xff")
        responder.waitForMessages(1)
        [request] = responder.received()
        self.assertEqual(prop(request, "ResponseTopic"), replyTo)
        self.assertEqual(prop(request, "CorrelationData"), b"\x00id-42\xff")
        requester.waitForPayload(b"answer to question")
        [reply] = requester.received()
        self.assertEqual((reply.topic, prop(reply, "CorrelationData")), (replyTo, b"\x00id-42\xff"))

    def test_responseInformation(self) -> None:
        """With --response-information 'reply/{clientId}', a client requesting it gets reply/<its id>; others none."""
        asking = self.v5(RequestResponseInformation=1)
        self.assertEqual(asking.connackProperties.ResponseInformation, f"reply/{asking.clientId}")
        silent = self.v5()
        self.assertFalse(hasattr(silent.connackProperties, "ResponseInformation"))

    def test_userPropertiesInOrder(self) -> None:
        """User properties, with a repeated name, arrive in the order sent, with the other properties."""
        topic = uniqueName("up/")
        sub = self.v5()
        sub.subscribeWith(topic, 1)
        pairs = [("b", "1"), ("a", "2"), ("b", "0"), ("zz", "")]
        self.v5().publishWith(topic, b"{}", UserProperty=pairs, ContentType="application/json",
                              PayloadFormatIndicator=1)
        sub.waitForMessages(1)
        [message] = sub.received()
        self.assertEqual(prop(message, "UserProperty"), pairs)
        self.assertEqual(prop(message, "ContentType"), "application/json")
        self.assertEqual(prop(message, "PayloadFormatIndicator"), 1)

    def test_v5ToV311(self) -> None:
        """A 5.0 message with properties reaches a 3.1.1 subscriber with the same topic and payload."""
        topic = uniqueName("mx/")
        old = self.v311()
        self.assertEqual(old.subscribe((topic, 1)), [1])
        self.v5().publishWith(topic, b"p\x00q", UserProperty=[("k", "v")], ContentType="x")
        [message] = old.waitForMessages(1)
        self.assertEqual((message.topic, message.payload, message.qos), (topic, b"p\x00q", 1))

    def test_v311ToV5(self) -> None:
        """A 3.1.1 message reaches a 5.0 subscriber without properties."""
        topic = uniqueName("mx/")
        sub = self.v5()
        sub.subscribeWith(topic, 1)
        self.v311().publish(topic, b"plain", 1)
        sub.waitForMessages(1)
        [message] = sub.received()
        self.assertEqual((message.topic, message.payload), (topic, b"plain"))
        self.assertTrue(message.properties is None or message.properties.isEmpty(),
                        message.properties)


# ---------------------------------------------------------------------------
# Receive Maximum, raw socket
# ---------------------------------------------------------------------------


class RawV5Client:
    """
    A blocking raw-socket v5 client using mqttd's codec to build and read
    packets; it acknowledges nothing by itself.
    """

    def __init__(self, port: int) -> None:
        self.raw = RawClient(port, timeout=WAIT)
        self.decoder = Decoder(isServer=False, protocolLevel=MQTT_5)

    def send(self, packet: Packet) -> None:
        self.raw.send(encode(packet, MQTT_5))

    def read(self, wait: float) -> list[Packet]:
        """
        The packets that arrive within C{wait} seconds.
        """
        self.decoder.feed(self.raw.recvAvailable(wait))
        packets = []
        while (packet := self.decoder.next()) is not None:
            packets.append(packet)
        return packets

    def readUntil(self, kind: type, count: int = 1, timeout: float = WAIT) -> list[Packet]:
        """
        Read until C{count} packets of C{kind} arrived (or the timeout
        passes).
        """
        packets: list[Packet] = []
        deadline = time.monotonic() + timeout
        while (sum(isinstance(p, kind) for p in packets) < count
               and time.monotonic() < deadline):
            packets.extend(self.read(0.1))
        return packets

    def close(self) -> None:
        self.raw.close()


class ReceiveMaximumTests(_V5BrokerTestCase):
    """
    The broker never has more unacknowledged QoS 1 PUBLISHes towards a
    client than its Receive Maximum [MQTT-3.3.4-9].
    """

    def window(self, receiveMaximum: int) -> None:
        topic = uniqueName("rm/")
        client = RawV5Client(self.port)
        self.addCleanup(client.close)
        client.send(Connect(uniqueName("r"), MQTT_5, True, 60,
                            properties={PropertyId.RECEIVE_MAXIMUM: receiveMaximum}))
        [connack] = client.readUntil(Connack)
        self.assertEqual(connack.reasonCode, 0)  # type: ignore[union-attr]
        client.send(Subscribe(1, (SubscriptionRequest(topic, 1),)))
        self.assertEqual(client.readUntil(Suback), [Suback(1, (1,))])
        pub = self.v5()
        total = 6
        for i in range(total):
            pub.publishWith(topic, b"%d" % i)
        # Wait for the window to fill, then make sure nothing more comes.
        outstanding = [p for p in client.readUntil(Publish, receiveMaximum) + client.read(0.5)
                       if isinstance(p, Publish)]
        self.assertEqual([p.payload for p in outstanding],
                         [b"%d" % i for i in range(receiveMaximum)])
        received = list(outstanding)
        while len(received) < total:
            first = outstanding.pop(0)
            client.send(Puback(first.packetId))  # type: ignore[arg-type]
            more = [p for p in client.readUntil(Publish) + client.read(0.2)
                    if isinstance(p, Publish)]
            self.assertEqual(len(more), 1, more)
            outstanding.extend(more)
            received.extend(more)
            self.assertLessEqual(len(outstanding), receiveMaximum)
        self.assertEqual([p.payload for p in received], [b"%d" % i for i in range(total)])

    def test_receiveMaximum1(self) -> None:
        """Receive Maximum 1: one unacknowledged PUBLISH at a time."""
        self.window(1)

    def test_receiveMaximum2(self) -> None:
        """Receive Maximum 2: two unacknowledged PUBLISHes at a time."""
        self.window(2)


# ---------------------------------------------------------------------------
# Will delay
# ---------------------------------------------------------------------------

_KILLED_V5_CLIENT = """
import sys, threading
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port, clientId, willTopic, delay = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
connected = threading.Event()
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=clientId,
                     protocol=mqtt.MQTTv5)
willProps = Properties(PacketTypes.WILLMESSAGE)
willProps.WillDelayInterval = delay
willProps.UserProperty = ("why", "killed")
client.will_set(willTopic, b"killed with SIGKILL", qos=1, properties=willProps)
connectProps = Properties(PacketTypes.CONNECT)
connectProps.SessionExpiryInterval = 60
client.on_connect = lambda *args: connected.set()
client.connect("127.0.0.1", port, keepalive=60, clean_start=True, properties=connectProps)
client.loop_start()
if connected.wait(10):
    print("connected", flush=True)
threading.Event().wait(60)
"""


class WillDelayTests(_V5BrokerTestCase):
    """
    A v5 will with a Will Delay Interval, its client killed with SIGKILL.
    """

    def killedClient(self, clientId: str, willTopic: str, delay: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-c", _KILLED_V5_CLIENT, str(self.port), clientId, willTopic,
             str(delay)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )

        def stop() -> None:
            if process.poll() is None:
                process.kill()
            process.wait(5)
            assert process.stdout is not None
            process.stdout.close()

        self.addCleanup(stop)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], WAIT)
        self.assertTrue(ready, "the client did not start")
        self.assertEqual(process.stdout.readline(), b"connected\n")
        return process

    def test_willAfterDelay(self) -> None:
        """Will Delay 2 s: nothing just after the kill, the will (with its user property) after about 2 s."""
        willTopic = uniqueName("wd/")
        watcher = self.v5()
        watcher.subscribeWith(willTopic, 1)
        process = self.killedClient(uniqueName("k"), willTopic, 2)
        process.kill()
        killedAt = time.monotonic()
        process.wait(5)
        self.assertEqual(watcher.stayQuiet(1.0), [])
        watcher.waitForPayload(b"killed with SIGKILL")
        self.assertEqual(len(watcher.full), 1)
        arrivedAt, will = watcher.full[0]
        self.assertGreaterEqual(arrivedAt - killedAt, 1.5)
        self.assertEqual((will.topic, will.qos), (willTopic, 1))
        self.assertEqual(prop(will, "UserProperty"), [("why", "killed")])

    def test_reconnectWithinDelay(self) -> None:
        """A reconnect (Clean Start 0) within the Will Delay Interval: the will is never sent."""
        willTopic = uniqueName("wd/")
        clientId = uniqueName("k")
        watcher = self.v5()
        watcher.subscribeWith(willTopic, 1)
        process = self.killedClient(clientId, willTopic, 2)
        process.kill()
        process.wait(5)
        again = self.v5(clientId, cleanStart=False, SessionExpiryInterval=60)
        self.assertTrue(again.sessionPresent)
        self.assertEqual(watcher.stayQuiet(3.5), [])


# ---------------------------------------------------------------------------
# mosquitto clients
# ---------------------------------------------------------------------------


class MosquittoV5Tests(_V5BrokerTestCase):
    """
    C{mosquitto_pub} / C{mosquitto_sub} in MQTT v5 mode.
    """

    def pubCommand(self, topic: str, payload: str, *extra: str) -> list[str]:
        return ["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.port),
                "-q", "1", "-t", topic, "-m", payload, *extra]

    def subscribeAndPublish(self, topic: str, subFormat: str, publishCommand: list[str],
                            *subExtra: str, count: int = 1) -> list[bytes]:
        """
        Start C{mosquitto_sub -V mqttv5 -F format} for C{count} messages and
        publish with C{publishCommand} until it has printed them (the
        subscription takes a moment to be in place).
        """
        sub = BackgroundCommand(
            ["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1",
             "-t", topic, "-C", str(count), "-F", subFormat, *subExtra]
        )
        self.addCleanup(sub.stop)
        deadline = time.monotonic() + WAIT
        while not sub.lines() and time.monotonic() < deadline:
            result = runCommand(publishCommand)
            self.assertEqual(result.returncode, 0, result.stderr)
            sub.waitForLines(1, timeout=0.3)
        lines = sub.waitForLines(count)
        self.assertEqual(sub.wait(WAIT), 0)
        return lines[:count]

    def test_mosquittoPropertiesToMosquittoSub(self) -> None:
        """mosquitto_pub's user property, content type and message expiry reach mosquitto_sub."""
        topic = uniqueName("mq/")
        [line] = self.subscribeAndPublish(
            topic, "%t %p %C %E %P",
            self.pubCommand(topic, "hello", "-D", "publish", "user-property", "k", "v",
                            "-D", "publish", "message-expiry-interval", "30",
                            "-D", "publish", "content-type", "text/plain"),
        )
        fields = line.decode().rstrip("\n").split(" ")
        self.assertEqual(fields[:3], [topic, "hello", "text/plain"])
        self.assertTrue(28 <= int(fields[3]) <= 30, line)
        self.assertEqual(fields[4], "k:v")

    def test_mosquittoPubToPaho(self) -> None:
        """mosquitto_pub's v5 properties reach a paho v5 subscriber unchanged."""
        topic = uniqueName("mq/")
        sub = self.v5()
        sub.subscribeWith(topic, 1)
        result = runCommand(self.pubCommand(
            topic, "payload", "-D", "publish", "user-property", "k", "v",
            "-D", "publish", "user-property", "a", "b",
            "-D", "publish", "message-expiry-interval", "30",
            "-D", "publish", "content-type", "text/plain",
            "-D", "publish", "response-topic", f"{topic}/reply",
            "-D", "publish", "correlation-data", "c0ffee",
        ))
        self.assertEqual(result.returncode, 0, result.stderr)
        sub.waitForMessages(1)
        [message] = sub.received()
        self.assertEqual((message.topic, message.payload), (topic, b"payload"))
        self.assertEqual(prop(message, "UserProperty"), [("k", "v"), ("a", "b")])
        self.assertEqual(prop(message, "ContentType"), "text/plain")
        self.assertEqual(prop(message, "ResponseTopic"), f"{topic}/reply")
        self.assertEqual(prop(message, "CorrelationData"), b"c0ffee")
        self.assertTrue(28 <= prop(message, "MessageExpiryInterval") <= 30)

    def test_pahoToMosquittoSub(self) -> None:
        """A paho v5 message with properties reaches mosquitto_sub -V mqttv5 with topic, payload and properties."""
        topic = uniqueName("mq/")
        pub = self.v5()
        sub = BackgroundCommand(
            ["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1",
             "-t", topic, "-C", "1", "-F", "%t %p %C %R %P"]
        )
        self.addCleanup(sub.stop)
        deadline = time.monotonic() + WAIT
        while not sub.lines() and time.monotonic() < deadline:
            pub.publishWith(topic, b"from-paho", ContentType="text/plain",
                            ResponseTopic=f"{topic}/r", UserProperty=[("x", "y")])
            sub.waitForLines(1, timeout=0.3)
        [line] = sub.waitForLines(1)
        self.assertEqual(line.decode().rstrip("\n"),
                         f"{topic} from-paho text/plain {topic}/r x:y")
