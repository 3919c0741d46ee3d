"""
Persistence with real C{twistd mqttd} processes and the C{sqlite} store: a
broker killed with SIGKILL loses no message it acknowledged, one database
file serves one broker, C{--store} errors are one line at start, and a
relative C{file=} in the configuration file is relative to that file.

Clients are paho-mqtt 2.x (L{clienthelpers.PahoClient}); every wait is
bounded.
"""

from __future__ import annotations

import os
import subprocess

from brokerprocess import BrokerProcess, isAlive
from clienthelpers import (
    TWISTD,
    WAIT,
    MqttdProcess,
    PahoClient,
    Received,
    tempDirectory,
    uniqueName,
)
from twisted.trial.unittest import SynchronousTestCase

#: How many QoS 1 messages the SIGKILL test publishes.
COUNT = 200



def startBroker(case: SynchronousTestCase, *args: str) -> BrokerProcess:
    """
    Start C{twistd -n --pidfile= mqttd --listen tcp:0:interface=127.0.0.1
    ARGS}, stopped (and its log removed) in cleanup.
    """
    broker = BrokerProcess(*args)
    case.addCleanup(broker.cleanup)
    return broker


def paho(case: SynchronousTestCase, port: int, clientId: str,
         cleanSession: bool = True) -> PahoClient:
    """
    A connected 3.1.1 paho client, closed in cleanup.
    """
    client = PahoClient(port, clientId, cleanSession=cleanSession)
    case.addCleanup(client.close)
    return client.connect()


def twistd(case: SynchronousTestCase, *args: str) -> subprocess.CompletedProcess[bytes]:
    """
    Run C{twistd ARGS} to its end (a bounded wait).
    """
    return subprocess.run(
        [TWISTD, *args], capture_output=True, timeout=30, cwd=tempDirectory(case),
        stdin=subprocess.DEVNULL,
    )


class CrashDurabilityTests(SynchronousTestCase):
    """
    "Acknowledged means stored": with C{--store sqlite} every QoS 1
    message the broker PUBACKed survives SIGKILL.
    """

    def test_sigkillLosesNothingAcknowledged(self) -> None:
        """200 QoS 1 messages PUBACKed for an offline persistent subscriber all arrive, in order and once, after SIGKILL and a restart."""
        database = os.path.join(tempDirectory(self), "m.db")
        broker = startBroker(self, "--store", f"sqlite:file={database}")
        subscriberId = uniqueName("sub")
        topic = f"durable/{uniqueName()}"
        subscriber = paho(self, broker.port, subscriberId, cleanSession=False)
        self.assertEqual(subscriber.subscribe((topic, 1)), [1])
        subscriber.disconnect()

        publisher = paho(self, broker.port, uniqueName("pub"))
        payloads = [f"message {i:03d}".encode() for i in range(COUNT)]
        infos = [publisher.client.publish(topic, payload, 1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(WAIT)
        self.assertEqual(sum(info.is_published() for info in infos), COUNT)
        publisher.disconnect()
        broker.kill()
        self.assertEqual(broker.process.returncode, -9)

        broker = startBroker(self, "--store", f"sqlite:file={database}")
        subscriber = paho(self, broker.port, subscriberId, cleanSession=False)
        self.assertTrue(subscriber.sessionPresent)
        # A marker published now arrives after everything that was queued.
        marker = paho(self, broker.port, uniqueName("mark"))
        marker.publish(topic, b"marker", 1)
        subscriber.waitForTopic(topic)
        received = subscriber.waitForMessages(COUNT + 1)
        self.assertEqual(
            received,
            [Received(topic, payload, 1, False) for payload in [*payloads, b"marker"]],
        )
        self.assertEqual(broker.tracebacks(), [])


class DatabaseLockTests(SynchronousTestCase):
    """
    One broker per database file.
    """

    def test_secondBrokerRefused(self) -> None:
        """A second broker on a file in use exits at start with one line saying so; the first carries on."""
        database = os.path.join(tempDirectory(self), "m.db")
        first = startBroker(self, "--store", f"sqlite:file={database}")
        result = twistd(self, "-n", "--pidfile=", "mqttd", "--listen",
                        "tcp:0:interface=127.0.0.1", "--store", f"sqlite:file={database}")
        stderr = result.stderr.decode()
        self.assertEqual((result.returncode, result.stdout), (1, b""), stderr)
        self.assertEqual(len(stderr.splitlines()), 1, stderr)
        self.assertTrue(stderr.startswith("mqttd: ") and stderr.endswith("\n"), stderr)
        self.assertIn(database, stderr)
        self.assertIn("in use", stderr)
        self.assertTrue(isAlive(first.port))


class StoreOptionTests(SynchronousTestCase):
    """
    C{--help-store} and C{--store} errors.
    """

    def assertOneLineError(self, store: str, *words: str) -> None:
        """
        C{twistd -n --pidfile= mqttd ... --store STORE} exits with status
        1, nothing on stdout and one C{mqttd: } line containing C{words}
        on stderr.
        """
        result = twistd(self, "-n", "--pidfile=", "mqttd", "--listen",
                        "tcp:0:interface=127.0.0.1", "--store", store)
        stderr = result.stderr.decode()
        self.assertEqual((result.returncode, result.stdout), (1, b""), stderr)
        self.assertEqual(len(stderr.splitlines()), 1, stderr)
        self.assertTrue(stderr.startswith("mqttd: ") and stderr.endswith("\n"), stderr)
        for word in words:
            self.assertIn(word, stderr)

    def test_helpStore(self) -> None:
        """C{--help-store} lists C{memory} and C{sqlite} with the arguments of C{sqlite}."""
        result = twistd(self, "mqttd", "--help-store")
        self.assertEqual((result.returncode, result.stderr), (0, b""))
        lines = result.stdout.decode().splitlines()
        names = [line.split(":", 1)[0] for line in lines if not line.startswith(" ")]
        self.assertEqual(sorted(names), ["memory", "sqlite"])
        sqlite = lines[lines.index(next(x for x in lines if x.startswith("sqlite:"))) + 1:]
        self.assertTrue(any(line.strip().startswith("file=PATH") for line in sqlite), lines)
        self.assertTrue(any(line.strip().startswith("synchronous=full|normal|off")
                            for line in sqlite), lines)

    def test_sqliteWithoutFile(self) -> None:
        """C{--store sqlite} without C{file=}: a one-line error naming the missing argument."""
        self.assertOneLineError("sqlite", "sqlite", "file")

    def test_badSynchronous(self) -> None:
        """C{synchronous=bogus}: a one-line error naming the value."""
        database = os.path.join(tempDirectory(self), "x.db")
        self.assertOneLineError(f"sqlite:file={database}:synchronous=bogus",
                                "synchronous", "bogus")


class ConfigFileStoreTests(SynchronousTestCase):
    """
    C{store = "sqlite:file=rel.db"} in the TOML configuration file.
    """

    def test_relativeFileNextToConfig(self) -> None:
        """A relative database file is created next to the configuration file (not in the working directory) and used across a restart."""
        configDirectory = tempDirectory(self)
        cwd = tempDirectory(self)
        config = os.path.join(configDirectory, "mqttd.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write('listen = ["tcp:0:interface=127.0.0.1"]\nstore = "sqlite:file=rel.db"\n')

        def start() -> MqttdProcess:
            broker = MqttdProcess(["--config", config], cwd=cwd)
            self.addCleanup(broker.cleanup)
            broker.waitListening()
            return broker

        broker = start()
        self.assertTrue(os.path.isfile(os.path.join(configDirectory, "rel.db")),
                        os.listdir(configDirectory))
        self.assertEqual(os.listdir(cwd), [])
        topic = f"config/{uniqueName()}"
        publisher = paho(self, broker.tcpPort(), uniqueName("pub"))
        publisher.publish(topic, b"retained", 1, retain=True)
        publisher.disconnect()
        broker.stop()
        broker = start()
        subscriber = paho(self, broker.tcpPort(), uniqueName("sub"))
        subscriber.subscribe((topic, 1))
        self.assertEqual(subscriber.waitForMessages(1), [Received(topic, b"retained", 1, True)])
        self.assertEqual(broker.tracebacks(), [])
