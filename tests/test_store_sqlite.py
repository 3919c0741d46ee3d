"""
The SQLite store: its file (permissions, damage, versions, locking), group
commit, and the catalogue's crash rows (DU-02, DU-08, DU-09) against the
real broker killed with SIGKILL.
"""

from __future__ import annotations

import os
import random
import socket
import sqlite3
import stat
import struct
import subprocess
from typing import Any

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from mqttd.codec import (
    MQTT_5,
    Connack,
    Connect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionRequest,
    encode,
)
from mqttd.codec.properties import PropertyId
from mqttd.message import Message
from mqttd.store import InflightRecord, QueuedRecord, StoredState
from mqttd.store.sqlite import SCHEMA_VERSION, SQLiteStore, SQLiteStoreError
from tests.brokerprocess import _TWISTD, BrokerProcess
from tests.clienthelpers import CodecClient, tempDirectory


class SQLiteFileTests(TestCase):
    """
    What the store does with its file.
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.path = os.path.join(self.directory, "mqttd.db")

    def openStore(self) -> SQLiteStore:
        store, _ = self.loadStore()
        return store

    def loadStore(self) -> tuple[SQLiteStore, StoredState]:
        store = SQLiteStore(self.path)
        state = store.load()
        self.addCleanup(store.close)
        return store, state

    @inlineCallbacks
    def test_filesOnlyForTheOwner(self) -> Any:
        """The database and its WAL file are created with mode 0600 (DU-09)."""
        store = self.openStore()
        yield store.retain("t", Message("t", b"x", 1, True))
        created = [n for n in os.listdir(self.directory) if n.startswith("mqttd.db")]
        self.assertIn("mqttd.db", created)
        for name in created:
            mode = stat.S_IMODE(os.stat(os.path.join(self.directory, name)).st_mode)
            self.assertEqual(mode, 0o600, name)

    def test_garbageRefused(self) -> None:
        """A file that is not a database is refused with the reason (DU-08)."""
        with open(self.path, "wb") as f:
            f.write(random.Random(1).randbytes(8192))
        e = self.assertRaises(SQLiteStoreError, SQLiteStore, self.path)
        self.assertIn(self.path, str(e))
        self.assertIn("not a database", str(e))

    def test_zeroLengthStartsEmpty(self) -> None:
        """An empty file is an empty store (DU-08)."""
        open(self.path, "wb").close()
        _, state = self.loadStore()
        self.assertEqual((state.sessions, state.retained, state.shared), ({}, {}, {}))

    @inlineCallbacks
    def test_truncatedRefused(self) -> Any:
        """A truncated database is refused, not half read (DU-08)."""
        store = self.openStore()
        yield gatherResults([
            store.retain(f"t/{i}", Message(f"t/{i}", os.urandom(2000), 1, True))
            for i in range(200)
        ])
        yield store.close()
        size = os.path.getsize(self.path)
        if os.path.exists(self.path + "-wal"):
            # Fold the WAL into the file first, so that truncating the file
            # damages committed pages.
            db = sqlite3.connect(self.path)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            size = os.path.getsize(self.path)
        with open(self.path, "r+b") as f:
            f.truncate(size // 2)
        e = self.assertRaises(SQLiteStoreError, SQLiteStore, self.path)
        self.assertIn(self.path, str(e))

    def test_otherSchemaVersionRefused(self) -> None:
        """A database written by another schema version is refused with both versions."""
        SQLiteStore(self.path)
        db = sqlite3.connect(self.path)
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
        db.commit()
        db.close()
        e = self.assertRaises(SQLiteStoreError, SQLiteStore, self.path)
        self.assertEqual(
            str(e), f"{self.path}: schema version 99, this mqttd reads {SCHEMA_VERSION}"
        )

    def test_oneBrokerPerFile(self) -> None:
        """A second store on a file in use is refused (and the first keeps working)."""
        self.openStore()
        e = self.assertRaises(SQLiteStoreError, SQLiteStore, self.path)
        self.assertEqual(str(e), f"{self.path} is in use by another broker")

    def test_missingDirectory(self) -> None:
        """A file in a directory that does not exist is refused with the reason."""
        path = os.path.join(self.directory, "nope", "mqttd.db")
        e = self.assertRaises(SQLiteStoreError, SQLiteStore, path)
        self.assertEqual(str(e), f"cannot open {path}: No such file or directory")

    def test_badSynchronous(self) -> None:
        """C{synchronous} is one of full, normal, off."""
        e = self.assertRaises(SQLiteStoreError, SQLiteStore, self.path, "sometimes")
        self.assertIn("full, normal, off", str(e))

    @inlineCallbacks
    def test_unreadableRowsSkipped(self) -> Any:
        """Rows with impossible values are skipped and logged; the rest loads."""
        store = self.openStore()
        message = Message("a/b", b"payload", 1, False)
        yield gatherResults([
            store.sessionSaved("c", 60, None),
            store.messageQueued("c", QueuedRecord(1, message, 1, False)),
            store.messageQueued("c", QueuedRecord(2, message, 1, False)),
            store.inboundSaved("c", 5),
            store.retain("r", Message("r", b"v", 0, True)),
        ])
        yield store.close()
        db = sqlite3.connect(self.path)
        db.execute("UPDATE queue SET qos = 7 WHERE seq = 2")
        db.execute("INSERT INTO inbound VALUES ('c', 0)")
        db.execute("INSERT INTO retained SELECT 'bad', m_topic, m_payload, m_qos, m_retain, "
                   "x'0326', m_sender, m_expires FROM retained")
        db.commit()
        db.close()
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        _, state = self.loadStore()
        record = state.sessions["c"]
        self.assertEqual(sorted(record.queue), [1])
        self.assertEqual(record.awaitingRel, {5})
        self.assertEqual(sorted(state.retained), ["r"])
        problems = [e["problem"] for e in logged if "problem" in e]
        self.assertEqual(len(problems), 3, problems)

    @inlineCallbacks
    def test_groupCommit(self) -> Any:
        """Writes made in one turn of the reactor are committed together."""
        store = self.openStore()
        message = Message("a/b", b"payload", 1, False)
        writes = [store.sessionSaved("c", 60, None)]
        writes += [store.messageQueued("c", QueuedRecord(i, message, 1, False))
                   for i in range(1, 501)]
        yield gatherResults(writes)
        self.assertEqual(store.commits, 1)
        writes = [store.messageDequeued("c", i) for i in range(1, 501)]
        yield gatherResults(writes)
        self.assertEqual(store.commits, 2)

    @inlineCallbacks
    def test_savedThenDeletedInOneTransaction(self) -> Any:
        """A message queued and dequeued before the commit is not left behind."""
        store = self.openStore()
        message = Message("a/b", b"payload", 1, False)
        yield gatherResults([
            store.sessionSaved("c", 60, None),
            store.messageQueued("c", QueuedRecord(1, message, 1, False)),
            store.messageDequeued("c", 1),
            store.messageQueued("c", QueuedRecord(2, message, 1, False)),
        ])
        yield store.close()
        _, state = self.loadStore()
        self.assertEqual(sorted(state.sessions["c"].queue), [2])

    @inlineCallbacks
    def test_refusedSaveCancelsNothing(self) -> Any:
        """
        A save the store refuses (its thread pool is gone, as after reactor
        shutdown) is not recorded as pending: deleting that record does not
        cancel another save waiting for the same transaction.
        """
        store = self.openStore()
        message = Message("a/b", b"payload", 1, False)
        saved = [
            store.sessionSaved("c", 60, None),
            store.messageQueued("c", QueuedRecord(1, message, 1, False)),
        ]
        pool, store._pool = store._pool, None
        yield self.assertFailure(
            store.messageQueued("c", QueuedRecord(2, message, 1, False)), SQLiteStoreError
        )
        yield self.assertFailure(store.messageDequeued("c", 2), SQLiteStoreError)
        store._pool = pool
        yield gatherResults(saved)
        yield store.close()
        _, state = self.loadStore()
        self.assertEqual(sorted(state.sessions["c"].queue), [1])

    @inlineCallbacks
    def test_releaseUpdatesOnlyTheFlag(self) -> Any:
        """
        A QoS 2 message moving to PUBREL keeps its stored message and its
        place in the sending order; released from the start (no row yet),
        it is written whole.
        """
        store = self.openStore()
        first = Message("a/1", b"first", 2, False)
        second = Message("a/2", b"second", 2, False)
        yield gatherResults([
            store.sessionSaved("c", 60, None),
            store.inflightSaved("c", InflightRecord(5, first, 2, False)),
            store.inflightSaved("c", InflightRecord(6, second, 2, False)),
        ])
        yield gatherResults([
            store.inflightSaved("c", InflightRecord(5, Message("a/1", b"", 2, False), 2, False,
                                                    released=True)),
            store.inflightSaved("c", InflightRecord(9, second, 2, True, released=True)),
        ])
        yield store.close()
        _, state = self.loadStore()
        inflight = state.sessions["c"].inflight
        self.assertEqual(
            [(i.packetId, i.message.payload, i.retain, i.released) for i in inflight.values()],
            [(5, b"first", False, True), (6, b"second", False, False),
             (9, b"second", True, True)],
        )

    @inlineCallbacks
    def test_writesAfterCloseFail(self) -> Any:
        """After close, a write fails (it is never silently dropped)."""
        store = self.openStore()
        yield store.close()
        yield self.assertFailure(store.retain("t", None), SQLiteStoreError)


class DamagedFileAtStartTests(SynchronousTestCase):
    """
    C{twistd mqttd --store sqlite:...} with a damaged file exits at once with
    one line (catalogue DU-08).
    """

    def test_damagedFileStopsTheBroker(self) -> None:
        """A file that is not a database: exit status 1, one line naming the file."""
        directory = tempDirectory(self)
        path = os.path.join(directory, "mqttd.db")
        with open(path, "wb") as f:
            f.write(b"\x00garbage" * 1000)
        result = subprocess.run(
            [_TWISTD, "-n", "--pidfile=", "mqttd", "--listen", "tcp:0:interface=127.0.0.1",
             "--store", f"sqlite:file={path}"],
            capture_output=True, timeout=30, cwd=directory, stdin=subprocess.DEVNULL,
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.decode(),
            f"mqttd: --store sqlite: {path}: file is not a database\n",
        )


# -- DU-02: acknowledged means durable, under SIGKILL ------------------------------


class _Wire(CodecClient):
    """
    A blocking MQTT 5.0 client on a raw socket, connected (CONNACK 0x00
    checked, kept as C{connack}).
    """

    def __init__(self, port: int, clientId: str, cleanStart: bool = True,
                 expiry: int = 0) -> None:
        super().__init__(socket.create_connection(("127.0.0.1", port), timeout=10), MQTT_5)
        props = {PropertyId.SESSION_EXPIRY_INTERVAL: expiry} if expiry else {}
        self.send(Connect(clientId, MQTT_5, cleanStart, 60, properties=props))
        self.connack = self.next(10)
        assert isinstance(self.connack, Connack) and self.connack.reasonCode == 0, self.connack


def _durableBroker(case: SynchronousTestCase, store: str) -> BrokerProcess:
    """
    A broker on C{store} whose offline queues hold every message of a run
    (the default limit of 1000 would drop some, by design, and hide what
    is tested).
    """
    broker = BrokerProcess("--store", store, "--max-queued-messages", "100000")
    case.addCleanup(broker.cleanup)
    return broker


class AcknowledgedMeansDurableTests(SynchronousTestCase):
    """
    Catalogue DU-02: a subscriber's persistent session, a QoS 1 (or QoS 2)
    stream into it, SIGKILL at a chosen point while the publisher is still
    sending, a restart on the same file: every message the publisher got a
    PUBACK (PUBREC) for is delivered; nothing that was not sent is; order is
    kept; with QoS 2 each message arrives once.
    """

    def runOnce(self, killAfter: int, qos: int, stalled: bool = False) -> None:
        directory = tempDirectory(self)
        store = f"sqlite:file={os.path.join(directory, 'mqttd.db')}"
        broker = _durableBroker(self, store)
        sub = _Wire(broker.port, "dur-sub", cleanStart=False, expiry=3600)
        sub.sock.sendall(encode(Subscribe(1, (SubscriptionRequest("dur/#", qos),)), MQTT_5))
        self.assertIsInstance(sub.next(10), Suback)
        if not stalled:
            sub.close()
        # else: connected, but reads nothing more until the broker is gone.

        pub = _Wire(broker.port, "dur-pub")
        acknowledged: set[int] = set()
        # packet id -> sequence number, until PUBACK (QoS 1) or PUBCOMP (QoS 2)
        pending: dict[int, int] = {}
        sent: set[int] = set()
        salt = os.urandom(56)
        # As many in flight as the broker allows (its Receive Maximum).
        window = pub.connack.properties.get(PropertyId.RECEIVE_MAXIMUM, 65535)
        sequence = 0
        packetId = 0

        def handle(packet: Any) -> None:
            if isinstance(packet, Puback) and packet.reasonCode < 0x80:
                acknowledged.add(pending.pop(packet.packetId))
            elif isinstance(packet, Pubrec) and packet.reasonCode < 0x80:
                acknowledged.add(pending[packet.packetId])
                pub.sock.sendall(encode(Pubrel(packet.packetId), MQTT_5))
            elif isinstance(packet, Pubcomp):
                del pending[packet.packetId]

        # Keep a window in flight until the kill point: the broker dies
        # while messages are still arriving.
        for _ in range(100_000):
            while len(pending) < window:
                sequence += 1
                packetId = packetId % 0xFFFF + 1
                payload = struct.pack(">Q", sequence) + salt
                pub.sock.sendall(encode(Publish("dur/x", payload, qos, packetId=packetId),
                                        MQTT_5))
                pending[packetId] = sequence
                sent.add(sequence)
            packet = pub.next(10)
            self.assertIsNotNone(packet, "the broker stopped acknowledging")
            handle(packet)
            if len(acknowledged) >= killAfter:
                break
        broker.kill()
        # Acknowledgements already on their way count too.
        try:
            while (packet := pub.next(0.5)) is not None:
                handle(packet)
        except OSError:
            pass
        pub.close()
        sub.close()
        self.assertGreaterEqual(len(acknowledged), killAfter)

        restarted = _durableBroker(self, store)
        sub = _Wire(restarted.port, "dur-sub", cleanStart=False, expiry=3600)
        self.assertTrue(sub.connack.sessionPresent)
        # A marker published now is queued behind everything restored: once
        # it arrives, everything has.
        marker = _Wire(restarted.port, "dur-marker")
        marker.sock.sendall(encode(Publish("dur/x", b"marker", 1, packetId=1), MQTT_5))
        self.assertIsInstance(marker.next(10), Puback)
        marker.close()
        received: list[int] = []
        for _ in range(len(sent) * 3 + 10):
            packet = sub.next(10)
            self.assertIsNotNone(packet, "the marker never arrived")
            if isinstance(packet, Publish):
                if packet.qos == 1:
                    sub.sock.sendall(encode(Puback(packet.packetId), MQTT_5))  # type: ignore[arg-type]
                elif packet.qos == 2:
                    sub.sock.sendall(encode(Pubrec(packet.packetId), MQTT_5))  # type: ignore[arg-type]
                if packet.payload == b"marker":
                    break
                received.append(struct.unpack(">Q", packet.payload[:8])[0])
                self.assertEqual(packet.payload[8:], salt)
            elif isinstance(packet, Pubrel):
                sub.sock.sendall(encode(Pubcomp(packet.packetId), MQTT_5))
        sub.close()
        self.assertEqual(acknowledged - set(received), set())
        self.assertEqual(set(received) - sent, set())
        # In order, apart from redeliveries.
        firsts = list(dict.fromkeys(received))
        self.assertEqual(firsts, sorted(firsts))
        if qos == 2:
            self.assertEqual(len(received), len(set(received)))
        self.assertEqual(restarted.tracebacks(), [])

    def killPoints(self, qos: int, count: int, stalled: bool = False) -> None:
        """
        C{count} kill points between 500 and 5000 acknowledgements, chosen
        at random (the seed is in the failure message).
        """
        seed = random.randrange(1 << 30)
        chosen = random.Random(seed)
        for killAfter in sorted(chosen.sample(range(500, 5000), count)):
            try:
                self.runOnce(killAfter, qos, stalled)
            except Exception as e:
                raise AssertionError(
                    f"QoS {qos}, stalled={stalled}, seed {seed}, "
                    f"kill after {killAfter} acks: {e}") from e

    def test_qos1(self) -> None:
        """QoS 1: every PUBACKed message survives SIGKILL, in order."""
        self.killPoints(1, 12)

    def test_qos1StalledSubscriber(self) -> None:
        """QoS 1 to a subscriber that stays connected but stops reading."""
        self.killPoints(1, 4, stalled=True)

    def test_qos2(self) -> None:
        """QoS 2: every PUBRECed message survives SIGKILL and arrives once."""
        self.killPoints(2, 8)


class CrashedFlowsTests(SynchronousTestCase):
    """
    QoS 2 and unacknowledged deliveries across SIGKILL (catalogue DU-03,
    DU-04).
    """

    def test_inboundQos2(self) -> None:
        """
        DU-03: a QoS 2 PUBLISH PUBRECed, SIGKILL before PUBREL, restart: the
        publisher's PUBREL gets PUBCOMP 0x00 (not 0x92, "packet identifier
        not found") and the subscriber receives the message exactly once.
        """
        store = f"sqlite:file={os.path.join(tempDirectory(self), 'mqttd.db')}"
        broker = _durableBroker(self, store)
        sub = _Wire(broker.port, "du3-sub", cleanStart=False, expiry=3600)
        sub.sock.sendall(encode(Subscribe(1, (SubscriptionRequest("du3/#", 2),)), MQTT_5))
        self.assertIsInstance(sub.next(10), Suback)
        pub = _Wire(broker.port, "du3-pub", cleanStart=False, expiry=3600)
        pub.sock.sendall(encode(Publish("du3/x", b"once", 2, packetId=7), MQTT_5))
        self.assertEqual(pub.next(10), Pubrec(7))
        broker.kill()
        pub.close()
        sub.close()

        restarted = _durableBroker(self, store)
        pub = _Wire(restarted.port, "du3-pub", cleanStart=False, expiry=3600)
        self.assertTrue(pub.connack.sessionPresent)
        pub.sock.sendall(encode(Pubrel(7), MQTT_5))
        self.assertEqual(pub.next(10), Pubcomp(7, 0))
        # Sent again by a publisher that missed the PUBREC: still once.
        pub.sock.sendall(encode(Publish("du3/x", b"once", 2, dup=True, packetId=8), MQTT_5))
        self.assertEqual(pub.next(10), Pubrec(8))
        pub.sock.sendall(encode(Pubrel(8), MQTT_5))
        self.assertEqual(pub.next(10), Pubcomp(8, 0))
        pub.close()
        sub = _Wire(restarted.port, "du3-sub", cleanStart=False, expiry=3600)
        self.assertTrue(sub.connack.sessionPresent)
        payloads = []
        for _ in range(20):
            packet = sub.next(2)
            if packet is None:
                break
            if isinstance(packet, Publish):
                payloads.append(packet.payload)
                sub.sock.sendall(encode(Pubrec(packet.packetId), MQTT_5))  # type: ignore[arg-type]
            elif isinstance(packet, Pubrel):
                sub.sock.sendall(encode(Pubcomp(packet.packetId), MQTT_5))
        sub.close()
        # Packet id 7's message, then the separate message sent as id 8.
        self.assertEqual(payloads, [b"once", b"once"])
        self.assertEqual(restarted.tracebacks(), [])

    def test_outboundInflight(self) -> None:
        """
        DU-04: a subscriber received a QoS 1 and a QoS 2 message and
        answered the QoS 2 one with PUBREC only; SIGKILL; restart: the QoS 1
        message is sent again with DUP and the same packet id, and for the
        QoS 2 one the PUBREL is sent, not the PUBLISH [MQTT-4.4.0-1].
        """
        store = f"sqlite:file={os.path.join(tempDirectory(self), 'mqttd.db')}"
        broker = _durableBroker(self, store)
        sub = _Wire(broker.port, "du4-sub", cleanStart=False, expiry=3600)
        sub.sock.sendall(encode(Subscribe(1, (SubscriptionRequest("du4/#", 2),)), MQTT_5))
        self.assertIsInstance(sub.next(10), Suback)
        pub = _Wire(broker.port, "du4-pub")
        pub.sock.sendall(encode(Publish("du4/one", b"q1", 1, packetId=1), MQTT_5))
        self.assertEqual(pub.next(10), Puback(1))
        pub.sock.sendall(encode(Publish("du4/two", b"q2", 2, packetId=2), MQTT_5))
        self.assertEqual(pub.next(10), Pubrec(2))
        pub.sock.sendall(encode(Pubrel(2), MQTT_5))
        self.assertEqual(pub.next(10), Pubcomp(2))
        first = sub.next(10)
        second = sub.next(10)
        self.assertIsInstance(first, Publish)
        self.assertIsInstance(second, Publish)
        self.assertEqual((first.payload, first.qos, second.payload, second.qos),
                         (b"q1", 1, b"q2", 2))
        sub.sock.sendall(encode(Pubrec(second.packetId), MQTT_5))
        # The broker has the PUBREC when its PUBREL arrives.
        self.assertEqual(sub.next(10), Pubrel(second.packetId))
        broker.kill()
        sub.close()
        pub.close()

        restarted = _durableBroker(self, store)
        sub = _Wire(restarted.port, "du4-sub", cleanStart=False, expiry=3600)
        self.assertTrue(sub.connack.sessionPresent)
        again = [sub.next(5), sub.next(5)]
        self.assertEqual(sub.next(1), None)
        sub.close()
        # The order between a PUBREL and a PUBLISH is not prescribed (the
        # broker sends PUBRELs first: they take no send quota).
        self.assertCountEqual(again, [
            Publish("du4/one", b"q1", 1, dup=True, packetId=first.packetId),
            Pubrel(second.packetId),
        ])
        self.assertEqual(restarted.tracebacks(), [])
