"""
Integration tests: the real broker (C{twistd mqttd} in a subprocess) driven
by paho-mqtt 2.x clients, raw sockets and the mosquitto command-line
clients.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from brokerprocess import BackgroundCommand, BrokerProcess, RawClient, runCommand
from clienthelpers import (
    WAIT,
    PahoClient,
    Received,
    connectPacket,
    readPacket,
    uniqueName,
    waitForLog,
)
from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import MQTT_5, Decoder, Disconnect, PropertyId

#: The v5 CONNACK with the default limits: Receive Maximum 20, Maximum
#: Packet Size 1 MiB, Topic Alias Maximum 10.
CONNACK_V5_DEFAULTS = bytes.fromhex("20 0E 00 00 0B 21 00 14 27 00 10 00 00 22 00 0A")

_KILLED_CLIENT = """
import sys, threading
import paho.mqtt.client as mqtt

port, clientId, willTopic = int(sys.argv[1]), sys.argv[2], sys.argv[3]
connected = threading.Event()
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=clientId,
                     protocol=mqtt.MQTTv311)
client.will_set(willTopic, b"killed with SIGKILL", qos=1, retain=True)
client.on_connect = lambda *args: connected.set()
client.connect("127.0.0.1", port, keepalive=60)
client.loop_start()
if connected.wait(10):
    print("connected", flush=True)
threading.Event().wait(60)
"""


def assertServerDisconnect(test: SynchronousTestCase, data: bytes, reasonCode: int) -> None:
    """
    Assert that C{data} (one packet, as L{readPacket} returns it) is a v5
    DISCONNECT with C{reasonCode} and, as mqttd sends by default
    (reason-strings), a non-empty printable ASCII Reason String.
    """
    decoder = Decoder(isServer=False, protocolLevel=MQTT_5)
    decoder.feed(data)
    packet = decoder.next()
    test.assertIsInstance(packet, Disconnect, data)
    assert isinstance(packet, Disconnect)
    test.assertEqual(packet.reasonCode, reasonCode)
    test.assertEqual(decoder.buffered, 0, data)
    text = packet.properties.get(PropertyId.REASON_STRING)
    test.assertIsInstance(text, str, packet)
    test.assertTrue(text and text.isascii() and text.isprintable(), packet)


class _BrokerTestCase(SynchronousTestCase):
    """
    Shares one broker between the tests of a class and checks after each
    test that it logged no traceback.
    """

    broker: BrokerProcess

    @classmethod
    def setUpClass(cls) -> None:
        cls.broker = BrokerProcess()
        cls.port = cls.broker.port

    @classmethod
    def tearDownClass(cls) -> None:
        cls.broker.cleanup()

    def tearDown(self) -> None:
        self.assertEqual(self.broker.tracebacks(), [], self.broker.log())

    def paho(
        self,
        protocol: int = mqtt.MQTTv311,
        clientId: str | None = None,
        connect: bool = True,
        **kwargs: object,
    ) -> PahoClient:
        """
        A paho client (connected unless C{connect} is false), stopped in
        cleanup.
        """
        client = PahoClient(self.port, clientId or uniqueName("c"), protocol, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(client.close)
        if connect:
            client.connect()
        return client

    def clearRetained(self, *topics: str) -> None:
        """
        Remove retained messages at the end of the test.
        """

        def clear() -> None:
            client = PahoClient(self.port, uniqueName("clr"))
            try:
                client.connect()
                for topic in topics:
                    client.publish(topic, b"", 1, retain=True)
            finally:
                client.close()

        self.addCleanup(clear)


class PahoClientTests(_BrokerTestCase):
    """
    paho-mqtt clients of every protocol version against one broker.
    """

    def _roundTrip(self, protocol: int, versionName: str) -> None:
        topic = uniqueName("rt/")
        subscriber = self.paho(protocol)
        publisher = self.paho(protocol)
        self.assertTrue(
            waitForLog(
                self.broker.log,
                rf"'{publisher.clientId}' connected from \S+ \(MQTT {re.escape(versionName)},",
            )
        )
        self.assertEqual(subscriber.subscribe((topic, 1)), [1])
        publisher.publish(topic, b"payload \x00\xff", 1)
        self.assertEqual(
            subscriber.waitForMessages(1), [Received(topic, b"payload \x00\xff", 1, False)]
        )
        publisher.disconnect()
        subscriber.disconnect()

    def test_connectPublishSubscribeV31(self) -> None:
        """MQTT 3.1 (C{MQIsdp}) clients connect, subscribe and publish."""
        self._roundTrip(mqtt.MQTTv31, "3.1")

    def test_connectPublishSubscribeV311(self) -> None:
        """MQTT 3.1.1 clients connect, subscribe and publish."""
        self._roundTrip(mqtt.MQTTv311, "3.1.1")

    def test_connectPublishSubscribeV5(self) -> None:
        """MQTT 5.0 clients connect, subscribe and publish."""
        self._roundTrip(mqtt.MQTTv5, "5.0")

    def test_versionsInteroperate(self) -> None:
        """A message from a client of any version reaches subscribers of every version."""
        topic = uniqueName("mix/")
        versions = [mqtt.MQTTv31, mqtt.MQTTv311, mqtt.MQTTv5]
        subscribers = [self.paho(v) for v in versions]
        for subscriber in subscribers:
            self.assertEqual(subscriber.subscribe((topic, 2)), [2])
        for version in versions:
            self.paho(version).publish(topic, f"from {version}".encode(), 2)
        expected = [Received(topic, f"from {v}".encode(), 2, False) for v in versions]
        for subscriber in subscribers:
            self.assertEqual(subscriber.waitForMessages(3), expected)

    def test_plusWildcard(self) -> None:
        """C{+} matches exactly one level, including an empty one."""
        base = uniqueName("w")
        subscriber = self.paho()
        self.assertEqual(subscriber.subscribe((f"{base}/+/x", 0)), [0])
        publisher = self.paho()
        for topic in [
            f"{base}/a/x",
            f"{base}/a/y",
            f"{base}/a/b/x",
            f"{base}/x",
            f"{base}//x",
            f"{base}/b/x",
        ]:
            publisher.publish(topic, topic.encode(), 1)
        publisher.publish(f"{base}/end/x", b"end", 1)
        messages = subscriber.waitForTopic(f"{base}/end/x")
        self.assertEqual(
            [m.topic for m in messages],
            [f"{base}/a/x", f"{base}//x", f"{base}/b/x", f"{base}/end/x"],
        )
        self.assertEqual(
            [m.payload for m in messages[:3]], [m.topic.encode() for m in messages[:3]]
        )

    def test_hashWildcardMatchesParent(self) -> None:
        """C{a/#} matches C{a} itself and every level below it, nothing else."""
        base = uniqueName("h")
        subscriber = self.paho(mqtt.MQTTv5)
        self.assertEqual(subscriber.subscribe((f"{base}/p/#", 1)), [1])
        publisher = self.paho()
        for topic in [
            f"{base}/p",
            f"{base}/pq",
            f"{base}/p/q",
            f"{base}",
            f"{base}/p/q/r",
            f"{base}/q/p",
        ]:
            publisher.publish(topic, b"m", 1)
        messages = subscriber.waitForTopic(f"{base}/p/q/r")
        self.assertEqual(
            messages,
            [
                Received(f"{base}/p", b"m", 1, False),
                Received(f"{base}/p/q", b"m", 1, False),
                Received(f"{base}/p/q/r", b"m", 1, False),
            ],
        )

    def test_dollarTopicsNotMatchedByLeadingWildcards(self) -> None:
        """C{#} and C{+/...} do not match C{$} topics; an explicit C{$x/#} does [MQTT-4.7.2-1]."""
        token = uniqueName("d")
        wild = self.paho()
        self.assertEqual(wild.subscribe(("#", 1), (f"+/{token}", 1)), [1, 1])
        dollar = self.paho()
        self.assertEqual(dollar.subscribe((f"$SYS/{token}/#", 1), (f"$SYS/+/{token}", 1)), [1, 1])
        publisher = self.paho()
        publisher.publish(f"$SYS/{token}", b"sys one level", 1)
        publisher.publish(f"$SYS/x/{token}", b"sys", 1)
        publisher.publish(f"$SYS/{token}/y", b"sys deep", 1)
        publisher.publish(f"plain/{token}", b"plain", 1)
        mine = [m for m in wild.waitForTopic(f"plain/{token}") if token in m.topic]
        # One copy for the two overlapping subscriptions [MQTT-3.3.5-1].
        self.assertEqual(mine, [Received(f"plain/{token}", b"plain", 1, False)])
        publisher.publish(f"$SYS/{token}/end", b"end", 1)
        self.assertEqual(
            dollar.waitForTopic(f"$SYS/{token}/end"),
            [
                Received(f"$SYS/{token}", b"sys one level", 1, False),
                Received(f"$SYS/x/{token}", b"sys", 1, False),
                Received(f"$SYS/{token}/y", b"sys deep", 1, False),
                Received(f"$SYS/{token}/end", b"end", 1, False),
            ],
        )

    def test_deliveredQosIsMinimum(self) -> None:
        """Each message is delivered at min(publish QoS, granted QoS)."""
        base = uniqueName("q")
        subscriber = self.paho()
        self.assertEqual(
            subscriber.subscribe((f"{base}/s0", 0), (f"{base}/s1", 1), (f"{base}/s2", 2)),
            [0, 1, 2],
        )
        publisher = self.paho()
        for s in range(3):
            for p in range(3):
                publisher.publish(f"{base}/s{s}", f"p{p}".encode(), p)
        got = sorted((m.topic, m.payload, m.qos, m.retain) for m in subscriber.waitForMessages(9))
        expected = sorted(
            (f"{base}/s{s}", f"p{p}".encode(), min(p, s), False)
            for s in range(3)
            for p in range(3)
        )
        self.assertEqual(got, expected)

    def test_overlappingSubscriptionsOneCopyAtHighestQos(self) -> None:
        """Overlapping subscriptions of one client give one copy at the highest QoS."""
        base = uniqueName("o")
        subscriber = self.paho(mqtt.MQTTv5)
        self.assertEqual(
            subscriber.subscribe((f"{base}/#", 0), (f"{base}/+", 2), (f"{base}/x", 1)), [0, 2, 1]
        )
        publisher = self.paho()
        publisher.publish(f"{base}/x", b"once", 2)
        publisher.publish(f"{base}/y/end", b"end", 2)
        # paho reports a QoS 2 message at PUBREL, possibly after the QoS 0 one.
        subscriber.waitForMessages(2)
        publisher.publish(f"{base}/z/end", b"end", 1)
        self.assertEqual(
            sorted(subscriber.waitForMessages(3)),
            [
                Received(f"{base}/x", b"once", 2, False),
                Received(f"{base}/y/end", b"end", 0, False),
                Received(f"{base}/z/end", b"end", 0, False),
            ],
        )

    def test_retainedMessages(self) -> None:
        """
        A retained message is stored, sent on subscribe with RETAIN set and live
        without it, replaced by a newer one and cleared by an empty payload.
        """
        base = uniqueName("r")
        topic = f"{base}/t"
        self.clearRetained(topic)
        publisher = self.paho()
        publisher.publish(topic, b"first", 1, retain=True)
        early = self.paho()
        self.assertEqual(early.subscribe((f"{base}/+", 2)), [2])
        self.assertEqual(early.waitForMessages(1), [Received(topic, b"first", 1, True)])
        publisher.publish(topic, b"second", 2, retain=True)
        self.assertEqual(early.waitForMessages(2)[1:], [Received(topic, b"second", 2, False)])

        late = self.paho(mqtt.MQTTv5)
        self.assertEqual(late.subscribe((topic, 1)), [1])
        self.assertEqual(late.waitForMessages(1), [Received(topic, b"second", 1, True)])

        # An empty retained payload clears the topic and is delivered live
        # as an ordinary (empty) message [MQTT-3.3.1-10, 3.3.1-11].
        publisher.publish(topic, b"", 1, retain=True)
        self.assertEqual(early.waitForMessages(3)[2:], [Received(topic, b"", 1, False)])
        cleared = self.paho()
        self.assertEqual(cleared.subscribe((f"{base}/#", 1)), [1])
        publisher.publish(f"{base}/marker", b"live", 1)
        self.assertEqual(
            cleared.waitForTopic(f"{base}/marker"), [Received(f"{base}/marker", b"live", 1, False)]
        )

    def test_retainedQos0(self) -> None:
        """A QoS 0 retained message is kept and replayed with RETAIN at QoS 0."""
        topic = uniqueName("r0/")
        self.clearRetained(topic)
        publisher = self.paho()
        publisher.publish(topic, b"zero", 0, retain=True)
        # The PUBACK of a later QoS 1 PUBLISH on the same connection means
        # the QoS 0 one was handled.
        publisher.publish(topic + "/sync", b"", 1)
        subscriber = self.paho()
        self.assertEqual(subscriber.subscribe((topic, 2)), [2])
        self.assertEqual(subscriber.waitForMessages(1), [Received(topic, b"zero", 0, True)])

    def test_willAfterKill(self) -> None:
        """
        A client killed with SIGKILL has its will published: live without
        RETAIN, and retained for later subscribers.
        """
        willTopic = uniqueName("will/")
        self.clearRetained(willTopic)
        subscriber = self.paho()
        self.assertEqual(subscriber.subscribe((willTopic, 2)), [2])
        clientId = uniqueName("k")
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
            script.write(_KILLED_CLIENT)
        self.addCleanup(os.unlink, script.name)
        child = subprocess.Popen(
            [sys.executable, script.name, str(self.port), clientId, willTopic],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )

        def stopChild() -> None:
            if child.poll() is None:
                child.kill()
            child.communicate(timeout=5)

        self.addCleanup(stopChild)
        assert child.stdout is not None
        readable, _, _ = select.select([child.stdout], [], [], 20)
        self.assertEqual(readable, [child.stdout], "the client did not start")
        self.assertEqual(child.stdout.readline(), b"connected\n")
        self.assertEqual(subscriber.messages, [])
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
        # The kernel closes the socket: the broker sees a network error at
        # once, well before the 60 s keep-alive would expire.
        self.assertEqual(
            subscriber.waitForMessages(1, timeout=15),
            [Received(willTopic, b"killed with SIGKILL", 1, False)],
        )
        self.assertTrue(
            waitForLog(self.broker.log, rf"'{clientId}' disconnected: connection lost")
        )
        late = self.paho(mqtt.MQTTv5)
        self.assertEqual(late.subscribe((willTopic, 1)), [1])
        self.assertEqual(
            late.waitForMessages(1), [Received(willTopic, b"killed with SIGKILL", 1, True)]
        )

    def test_noWillAfterCleanDisconnect(self) -> None:
        """A client that sends DISCONNECT has its will discarded."""
        willTopic = uniqueName("nowill/")
        subscriber = self.paho()
        self.assertEqual(subscriber.subscribe((f"{willTopic}/#", 1)), [1])
        clientId = uniqueName("n")
        leaving = self.paho(clientId=clientId, will=(f"{willTopic}/will", b"will", 1, False))
        leaving.disconnect()
        self.assertTrue(
            waitForLog(self.broker.log, rf"'{clientId}' disconnected: client disconnected")
        )
        # The will would have been routed before that log line; a message
        # published now arrives after it would have.
        self.paho().publish(f"{willTopic}/marker", b"after", 1)
        self.assertEqual(
            subscriber.waitForTopic(f"{willTopic}/marker"),
            [Received(f"{willTopic}/marker", b"after", 1, False)],
        )

    def test_noWillAfterCleanDisconnectV5(self) -> None:
        """A v5 client that sends DISCONNECT 0x00 has its will discarded."""
        willTopic = uniqueName("nowill5/")
        subscriber = self.paho(mqtt.MQTTv5)
        self.assertEqual(subscriber.subscribe((f"{willTopic}/#", 1)), [1])
        clientId = uniqueName("n")
        leaving = self.paho(
            mqtt.MQTTv5, clientId=clientId, will=(f"{willTopic}/will", b"will", 1, False)
        )
        leaving.disconnect()
        self.assertTrue(
            waitForLog(self.broker.log, rf"'{clientId}' disconnected: client disconnected")
        )
        self.paho().publish(f"{willTopic}/marker", b"after", 1)
        self.assertEqual(
            subscriber.waitForTopic(f"{willTopic}/marker"),
            [Received(f"{willTopic}/marker", b"after", 1, False)],
        )

    def _offlineMessages(self, protocol: int, **session: object) -> None:
        topic = uniqueName("ps/")
        clientId = uniqueName("s")
        first = self.paho(protocol, clientId=clientId, cleanSession=False, **session)
        self.assertFalse(first.sessionPresent)
        self.assertEqual(first.subscribe((topic, 1)), [1])
        first.disconnect()
        self.assertTrue(
            waitForLog(self.broker.log, rf"'{clientId}' disconnected: client disconnected")
        )
        publisher = self.paho()
        publisher.publish(topic, b"m1", 1)
        publisher.publish(topic, b"m2", 2)
        publisher.publish(topic, b"qos 0 is not queued offline", 0)
        publisher.publish(topic, b"m3", 1)
        publisher.publish(topic, b"m4", 1)
        again = self.paho(protocol, clientId=clientId, cleanSession=False, **session)
        self.assertTrue(again.sessionPresent)
        self.assertEqual(
            again.waitForMessages(4),
            [Received(topic, p, 1, False) for p in (b"m1", b"m2", b"m3", b"m4")],
        )
        publisher.publish(topic, b"live", 1)
        self.assertEqual(again.waitForMessages(5)[4:], [Received(topic, b"live", 1, False)])
        self.assertEqual(len(again.messages), 5)

    def test_persistentSessionV311(self) -> None:
        """A 3.1.1 clean-session-0 client gets the QoS 1/2 messages sent while it was away, in order."""
        self._offlineMessages(mqtt.MQTTv311)

    def test_persistentSessionV31(self) -> None:
        """A 3.1 clean-session-0 client gets the QoS 1/2 messages sent while it was away, in order."""
        self._offlineMessages(mqtt.MQTTv31)

    def test_persistentSessionV5(self) -> None:
        """A v5 client with clean_start=False and a session expiry gets its offline messages."""
        self._offlineMessages(mqtt.MQTTv5, sessionExpiry=300)

    def test_v5SessionExpiryZeroEndsSession(self) -> None:
        """A v5 session with expiry 0 ends on disconnect: no session present, nothing queued."""
        topic = uniqueName("ps0/")
        clientId = uniqueName("z")
        first = self.paho(mqtt.MQTTv5, clientId=clientId, cleanSession=False)
        self.assertEqual(first.subscribe((topic, 1)), [1])
        first.disconnect()
        self.assertTrue(
            waitForLog(self.broker.log, rf"'{clientId}' disconnected: client disconnected")
        )
        self.paho().publish(topic, b"lost", 1)
        again = self.paho(mqtt.MQTTv5, clientId=clientId, cleanSession=False)
        self.assertFalse(again.sessionPresent)
        self.assertEqual(again.subscribe((topic + "/marker", 1)), [1])
        self.paho().publish(topic + "/marker", b"marker", 1)
        self.assertEqual(
            again.waitForMessages(1), [Received(topic + "/marker", b"marker", 1, False)]
        )

    def test_keepAliveTimeout(self) -> None:
        """
        A silent client with keep-alive 1 is closed after 1.5 s (a v5 client
        gets DISCONNECT 0x8D first) and its will is published.
        """
        base = uniqueName("ka")
        subscriber = self.paho()
        self.assertEqual(subscriber.subscribe((f"{base}/#", 1)), [1])
        ids = (uniqueName("ka"), uniqueName("kb"))
        v3 = RawClient(self.port, timeout=WAIT)
        self.addCleanup(v3.close)
        v5 = RawClient(self.port, timeout=WAIT)
        self.addCleanup(v5.close)
        v3.send(connectPacket(ids[0], keepAlive=1, will=(f"{base}/v3", b"v3 gone", 1, False)))
        v5.send(
            connectPacket(ids[1], keepAlive=1, level=5, will=(f"{base}/v5", b"v5 gone", 1, False))
        )
        self.assertEqual(v3.recvExactly(4), bytes.fromhex("20 02 00 00"))
        self.assertEqual(readPacket(v5.recvExactly), CONNACK_V5_DEFAULTS)
        # Not before the keep-alive times 1.5 has passed [MQTT-3.1.2-24].
        self.assertFalse(v3.isClosed(timeout=1.0))
        assertServerDisconnect(self, readPacket(v5.recvExactly), 0x8D)
        self.assertTrue(v5.isClosed(timeout=WAIT))
        self.assertTrue(v3.isClosed(timeout=WAIT))
        self.assertEqual(
            sorted(subscriber.waitForMessages(2)),
            [
                Received(f"{base}/v3", b"v3 gone", 1, False),
                Received(f"{base}/v5", b"v5 gone", 1, False),
            ],
        )
        for clientId in ids:
            self.assertTrue(
                waitForLog(self.broker.log, rf"'{clientId}' disconnected: keep-alive timeout")
            )


class _ReadySub(BackgroundCommand):
    """
    A background C{mosquitto_sub} whose first output line (a readiness
    message) is not counted.
    """

    def waitForLines(self, count: int, timeout: float = WAIT) -> list[bytes]:
        return super().waitForLines(count + 1, timeout)[1:]

    def stderr(self) -> bytes:
        if self.process.poll() is None or self.process.stderr is None:
            return b""
        return self.process.stderr.read()


class MosquittoClientTests(_BrokerTestCase):
    """
    The mosquitto command-line clients against one broker.
    """

    def command(self, name: str, *args: str) -> list[str]:
        return [name, "-h", "127.0.0.1", "-p", str(self.port), *args]

    def pub(self, *args: str) -> None:
        result = runCommand(self.command("mosquitto_pub", *args))
        self.assertEqual((result.returncode, result.stderr), (0, b""))

    def sub(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return runCommand(self.command("mosquitto_sub", *args), timeout=WAIT + 5)

    def backgroundSub(
        self, topics: Sequence[str], *args: str, format: str = "%r %q %t %p"
    ) -> _ReadySub:
        """
        Start C{mosquitto_sub} on C{topics} (printing C{format}, by default
        C{retain qos topic payload}) and return once its subscriptions are in
        place: its first line is a retained readiness message on a topic
        subscribed last.
        """
        ready = uniqueName("ready/")
        self.pub("-t", ready, "-m", "ready", "-r", "-q", "1")
        self.clearRetained(ready)
        command = self.command("mosquitto_sub", "-F", format, *args)
        for topic in [*topics, ready]:
            command += ["-t", topic]
        sub = _ReadySub(command)
        self.addCleanup(sub.stop)
        BackgroundCommand.waitForLines(sub, 1)
        self.assertEqual(len(sub.lines()), 1, sub.stderr())
        self.assertIn(f" {ready} ready".encode(), sub.lines()[0])
        return sub

    def test_mosquittoRetained(self) -> None:
        """mosquitto_pub -r stores, replaces and (with -n) clears a retained message."""
        topic = uniqueName("mr/")
        self.clearRetained(topic)
        self.pub("-t", topic, "-m", "kept", "-r", "-q", "1")
        result = self.sub("-t", topic, "-q", "2", "-C", "1", "-W", "10", "-F", "%r %q %t %p")
        self.assertEqual((result.returncode, result.stdout), (0, f"1 1 {topic} kept\n".encode()))
        self.pub("-t", topic, "-m", "newer", "-r", "-q", "2", "-V", "mqttv5")
        result = self.sub(
            "-t", topic, "-q", "2", "-C", "1", "-W", "10", "-F", "%r %q %t %p", "-V", "mqttv31"
        )
        self.assertEqual((result.returncode, result.stdout), (0, f"1 2 {topic} newer\n".encode()))
        self.pub("-t", topic, "-n", "-r", "-q", "1")
        # Subscribed to the cleared topic first, then to one with a retained
        # message: only the second one's arrives.
        marker = uniqueName("mr/")
        self.clearRetained(marker)
        self.pub("-t", marker, "-m", "marker", "-r", "-q", "1")
        result = self.sub(
            "-t", topic, "-t", marker, "-q", "1", "-C", "1", "-W", "10", "-F", "%r %q %t %p"
        )
        self.assertEqual(
            (result.returncode, result.stdout), (0, f"1 1 {marker} marker\n".encode())
        )

    def test_mosquittoQos(self) -> None:
        """QoS 0/1/2 from mosquitto_pub reach mosquitto_sub at min(publish, subscription) QoS."""
        topic = uniqueName("mq/")
        sub2 = self.backgroundSub([topic], "-q", "2", "-V", "mqttv311")
        sub1 = self.backgroundSub([topic], "-q", "1", "-V", "mqttv5")
        for qos in ("0", "1", "2"):
            self.pub("-t", topic, "-m", f"at qos {qos}", "-q", qos)
        self.assertEqual(
            sub2.waitForLines(3),
            [
                f"0 0 {topic} at qos 0\n".encode(),
                f"0 1 {topic} at qos 1\n".encode(),
                f"0 2 {topic} at qos 2\n".encode(),
            ],
        )
        self.assertEqual(
            sub1.waitForLines(3),
            [
                f"0 0 {topic} at qos 0\n".encode(),
                f"0 1 {topic} at qos 1\n".encode(),
                f"0 1 {topic} at qos 2\n".encode(),
            ],
        )

    def test_mosquittoWildcards(self) -> None:
        """mosquitto_sub with C{+} and C{#} filters gets exactly the matching topics."""
        base = uniqueName("mw")
        sub = self.backgroundSub([f"{base}/+/x", f"{base}/p/#"], "-q", "1")
        for topic in [
            f"{base}/a/y",
            f"{base}/a/b/x",
            f"{base}/pp",
            f"{base}/a/x",
            f"{base}/p",
            f"{base}/p/q/r",
            f"{base}/p/x",
        ]:
            self.pub("-t", topic, "-m", topic.rsplit("/", 1)[1], "-q", "1")
        self.assertEqual(
            sub.waitForLines(4),
            [
                f"0 1 {base}/a/x x\n".encode(),
                f"0 1 {base}/p p\n".encode(),
                f"0 1 {base}/p/q/r r\n".encode(),
                f"0 1 {base}/p/x x\n".encode(),
            ],
        )

    def _persistent(self, version: str, *sessionArgs: str) -> None:
        topic = uniqueName("mp/")
        clientId = uniqueName("mp")
        args = ("-c", "-i", clientId, "-q", "1", "-t", topic, "-V", version, *sessionArgs)
        result = self.sub(*args, "-E")
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, b"", b""))
        self.assertTrue(
            waitForLog(self.broker.log, rf"'{clientId}' disconnected: client disconnected")
        )
        for payload, qos in (("one", "1"), ("two", "2"), ("three", "1")):
            self.pub("-t", topic, "-m", payload, "-q", qos)
        result = self.sub(*args, "-C", "3", "-W", "10", "-v")
        self.assertEqual(
            (result.returncode, result.stdout),
            (0, f"{topic} one\n{topic} two\n{topic} three\n".encode()),
        )
        self.assertTrue(
            waitForLog(self.broker.log, rf"'{clientId}' connected from .*session present=True\)")
        )

    def test_mosquittoPersistentSessionV311(self) -> None:
        """mosquitto_sub -c -i ID (3.1.1) gets the messages published while it was away."""
        self._persistent("mqttv311")

    def test_mosquittoPersistentSessionV5(self) -> None:
        """mosquitto_sub -c -i ID -x 300 (5.0) gets the messages published while it was away."""
        self._persistent("mqttv5", "-x", "300")

    def test_mosquittoSubV5(self) -> None:
        """mosquitto_sub -V mqttv5 gets messages from v3.1, v3.1.1 and v5 publishers, user properties kept."""
        topic = uniqueName("m5/")
        sub = self.backgroundSub([topic], "-V", "mqttv5", "-q", "2", format="%q %r %t %p %P")
        self.pub("-t", topic, "-m", "v31", "-q", "1", "-V", "mqttv31")
        self.pub("-t", topic, "-m", "v311", "-q", "2", "-V", "mqttv311")
        self.pub(
            "-t",
            topic,
            "-m",
            "v5",
            "-q",
            "2",
            "-V",
            "mqttv5",
            "-D",
            "publish",
            "user-property",
            "key",
            "value",
        )
        self.assertEqual(
            sub.waitForLines(3),
            [
                f"1 0 {topic} v31 \n".encode(),
                f"2 0 {topic} v311 \n".encode(),
                f"2 0 {topic} v5 key:value\n".encode(),
            ],
        )

    def test_mosquittoWill(self) -> None:
        """A mosquitto_sub killed with SIGKILL has its --will-topic message published."""
        willTopic = uniqueName("mwill/")
        watcher = self.backgroundSub([willTopic], "-q", "2")
        dying = self.backgroundSub(
            [uniqueName("idle/")],
            "--will-topic",
            willTopic,
            "--will-payload",
            "mosquitto died",
            "--will-qos",
            "2",
        )
        dying.process.send_signal(signal.SIGKILL)
        dying.wait(5)
        self.assertEqual(watcher.waitForLines(1), [f"0 2 {willTopic} mosquitto died\n".encode()])

    def test_mosquittoNoWillOnCleanExit(self) -> None:
        """mosquitto_sub leaving after -C 1 disconnects cleanly: no will."""
        base = uniqueName("mnw")
        watcher = self.backgroundSub([f"{base}/#"], "-q", "1")
        self.pub("-t", f"{base}/trigger", "-m", "go", "-r", "-q", "1")
        self.clearRetained(f"{base}/trigger")
        clientId = uniqueName("mnw")
        result = self.sub(
            "-t",
            f"{base}/trigger",
            "-C",
            "1",
            "-W",
            "10",
            "-i",
            clientId,
            "--will-topic",
            f"{base}/will",
            "--will-payload",
            "no",
        )
        self.assertEqual((result.returncode, result.stdout), (0, b"go\n"))
        self.assertTrue(
            waitForLog(self.broker.log, rf"'{clientId}' disconnected: client disconnected")
        )
        self.pub("-t", f"{base}/marker", "-m", "m", "-q", "1")
        self.assertEqual(
            watcher.waitForLines(2),
            [
                f"0 1 {base}/trigger go\n".encode(),
                f"0 1 {base}/marker m\n".encode(),
            ],
        )
