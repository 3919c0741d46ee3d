"""
Tests for the C{twistd mqttd} command line: L{mqttd.tap.Options} in-process,
and real C{twistd} subprocesses for listeners, errors, the configuration
file, shutdown and logging.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile

import paho.mqtt.client as mqtt
import psutil
from brokerprocess import C4, C5, CONNACK_OK, RawClient, isAlive
from clienthelpers import (
    TWISTD,
    WAIT,
    MqttdProcess,
    PahoClient,
    Received,
    connectPacket,
    connectUnix,
    freePort,
    publishPacket,
    readPacket,
    recvExactly,
    subscribePacket,
    tempDirectory,
    uniqueName,
    waitForLog,
)
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import MQTT_5, Decoder, Disconnect, PropertyId
from mqttd.config import OPTIONS, BrokerConfig
from mqttd.tap import DEFAULT_LISTEN, Options, isLocalEndpoint

#: DISCONNECT reason codes: Packet too large, Server shutting down.
PACKET_TOO_LARGE = 0x95
SERVER_SHUTTING_DOWN = 0x8B


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


def connackV5(maxPacketSize: int) -> bytes:
    """
    The v5 CONNACK mqttd sends with default limits except
    C{maxPacketSize}: Receive Maximum 20, Maximum Packet Size, Topic Alias
    Maximum 10.
    """
    return (
        bytes.fromhex("20 0E 00 00 0B 21 00 14 27")
        + maxPacketSize.to_bytes(4, "big")
        + bytes.fromhex("22 00 0A")
    )



def writeConfig(case: SynchronousTestCase, text: str, directory: str | None = None) -> str:
    """
    Write a TOML configuration file into a temporary directory.

    @return: its path.
    """
    path = os.path.join(directory or tempDirectory(case), "mqttd.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def startBroker(
    case: SynchronousTestCase, *args: str, listeners: int = 1, cwd: str | None = None
) -> MqttdProcess:
    """
    Start C{twistd -n --pidfile= mqttd ARGS}, stopped in cleanup, and wait
    for C{listeners} listening lines.
    """
    broker = MqttdProcess(args, cwd=cwd)
    case.addCleanup(broker.cleanup)
    broker.waitListening(listeners)
    return broker


class TwistdHelpTests(SynchronousTestCase):
    """
    C{twistd} finds the plug-in.
    """

    def test_twistdHelpListsMqttd(self) -> None:
        """C{twistd --help}, run from an unrelated directory, lists the mqttd command."""
        cwd = tempDirectory(self)
        result = subprocess.run(
            [TWISTD, "--help"], capture_output=True, cwd=cwd, timeout=30, stdin=subprocess.DEVNULL
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = [
            line for line in result.stdout.decode().splitlines() if re.match(r"\s+mqttd\s", line)
        ]
        self.assertEqual(len(lines), 1, result.stdout.decode())
        self.assertEqual(lines[0].split(None, 1), ["mqttd", "An MQTT 3.1, 3.1.1 and 5.0 broker."])

    _mqttdHelp: str | None = None

    def mqttdHelp(self) -> str:
        """
        The output of C{twistd mqttd --help} (run once).
        """
        if TwistdHelpTests._mqttdHelp is None:
            result = subprocess.run(
                [TWISTD, "mqttd", "--help"],
                capture_output=True,
                cwd=tempDirectory(self),
                timeout=30,
                stdin=subprocess.DEVNULL,
            )
            self.assertEqual(result.returncode, 0, result.stderr)
            TwistdHelpTests._mqttdHelp = result.stdout.decode()
        return TwistdHelpTests._mqttdHelp

    def test_mqttdHelpListsEveryOption(self) -> None:
        """C{twistd mqttd --help} shows --listen, --config, --allow-anonymous and every setting."""
        text = self.mqttdHelp()
        names = ["listen", "config", "allow-anonymous"] + [spec.name for spec in OPTIONS]
        for name in names:
            self.assertRegex(text, rf"\n\s+(-\w, )?--{name}[=\s]")
        self.assertIn("[default: 1M]", text)

    def test_listenHelpReadsAsProse(self) -> None:
        """The --listen help, unwrapped, is one sentence without stray indentation."""
        unwrapped = " ".join(line.strip() for line in self.mqttdHelp().splitlines())
        self.assertIn(
            "Listen on this Twisted server endpoint, e.g. tcp:1883 or unix:/run/mqttd.sock "
            "(repeatable; replaces the default tcp:1883:interface=127.0.0.1).",
            unwrapped,
        )


class OptionsTests(SynchronousTestCase):
    """
    L{Options} in-process (nothing is bound).
    """

    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def assertFails(self, args: list[str], message: str) -> None:
        """
        Parsing C{args} exits with exactly C{message}.
        """
        with self.assertRaises(SystemExit) as caught:
            self.parse(*args)
        self.assertEqual(str(caught.exception.code), message)

    def test_defaultListener(self) -> None:
        """Without options mqttd listens on 127.0.0.1:1883 only, with default settings."""
        options = self.parse()
        self.assertEqual(DEFAULT_LISTEN, "tcp:1883:interface=127.0.0.1")
        self.assertEqual(options["listen"], ["tcp:1883:interface=127.0.0.1"])
        self.assertEqual(len(options.endpoints), 1)
        description, endpoint = options.endpoints[0]
        self.assertEqual(description, "tcp:1883:interface=127.0.0.1")
        self.assertIsInstance(endpoint, TCP4ServerEndpoint)
        self.assertEqual((endpoint._port, endpoint._interface), (1883, "127.0.0.1"))
        self.assertFalse(options["allow-anonymous"])
        self.assertEqual(options.brokerConfig, BrokerConfig())

    def test_defaultBacklog(self) -> None:
        """TCP and UNIX listeners get a listen backlog of 1024 unless one is given."""
        options = self.parse("--listen", "tcp:0:interface=127.0.0.1",
                             "--listen", "tcp:0:interface=127.0.0.1:backlog=7")
        backlogs = [endpoint._backlog for _, endpoint in options.endpoints]
        self.assertEqual(backlogs, [1024, 7])

    def test_listenRepeatableReplacesDefault(self) -> None:
        """Each --listen adds a listener, in order, and the default is gone."""
        options = self.parse(
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--listen",
            "unix:/tmp/mqttd-test.sock",
            "--listen",
            r"tcp6:0:interface=\:\:1",
        )
        self.assertEqual(
            options["listen"],
            ["tcp:0:interface=127.0.0.1", "unix:/tmp/mqttd-test.sock", r"tcp6:0:interface=\:\:1"],
        )
        self.assertEqual([d for d, _ in options.endpoints], options["listen"])

    def test_sizeSuffixes(self) -> None:
        """Sizes take k, M and G suffixes (powers of 1024) as well as plain numbers."""
        options = self.parse(
            "--max-packet-size",
            "1k",
            "--max-queued-bytes",
            "64M",
            "--max-outbound-buffer",
            "1G",
            "--max-connect-size",
            "100",
        )
        config = options.brokerConfig
        self.assertEqual(
            (
                config.maxPacketSize,
                config.maxQueuedBytes,
                config.maxOutboundBuffer,
                config.maxConnectSize,
            ),
            (1024, 64 * 1024**2, 1024**3, 100),
        )
        self.assertEqual(self.parse("--max-packet-size", "2K").brokerConfig.maxPacketSize, 2048)

    def test_everyOptionSetsItsSetting(self) -> None:
        """Each non-flag option of the table reaches its L{BrokerConfig} attribute."""
        for spec in OPTIONS:
            if spec.kind == "flag":
                self.assertTrue(getattr(self.parse(f"--{spec.name}").brokerConfig, spec.attribute))
                continue
            if spec.kind == "bool":
                for text, expected in (("no", False), ("yes", True), ("off", False)):
                    config = self.parse(f"--{spec.name}", text).brokerConfig
                    self.assertIs(getattr(config, spec.attribute), expected, spec.name)
                continue
            if spec.kind == "text":
                config = self.parse(f"--{spec.name}", "some text").brokerConfig
                self.assertEqual(getattr(config, spec.attribute), "some text", spec.name)
                continue
            value = int(spec.minimum) + 1
            config = self.parse(f"--{spec.name}", str(value)).brokerConfig
            self.assertEqual(getattr(config, spec.attribute), value, spec.name)

    def test_badValue(self) -> None:
        """A value that is not a number is a one-line error naming the option."""
        self.assertFails(
            ["--max-packet-size", "lots"],
            "mqttd: --max-packet-size: 'lots' is not a valid size in bytes (e.g. 1048576 or 1M)",
        )
        self.assertFails(
            ["--max-inflight", "1.5"], "mqttd: --max-inflight: '1.5' is not a valid whole number"
        )

    def test_notFinite(self) -> None:
        """nan and infinities are refused (nan would pass every range check and disable the timer)."""
        for text in ("nan", "inf", "-inf", "1e400"):
            self.assertFails(
                ["--connect-timeout", text],
                f"mqttd: --connect-timeout: {text!r} is not a valid number of seconds",
            )
        self.assertFails(["--max-packet-size", "nan"],
                         "mqttd: --max-packet-size: 'nan' is not a valid size in bytes "
                         "(e.g. 1048576 or 1M)")

    def test_configNotFinite(self) -> None:
        """In the TOML file too: nan, inf and numbers too large for a float are refused."""
        directory = tempDirectory(self)
        for text, message in (
            ("connect-timeout = nan\n", "connect-timeout: nan is not a valid number of seconds"),
            ("connect-timeout = inf\n", "connect-timeout: inf is not a valid number of seconds"),
            ("max-packet-size = 1e400\n",
             "max-packet-size: inf is not a valid size in bytes (e.g. 1048576 or 1M)"),
        ):
            path = writeConfig(self, text, directory)
            self.assertFails(["--config", path], f"mqttd: {path}: {message}")

    def test_brokerConfigRefusesNaN(self) -> None:
        """An embedding application's BrokerConfig with nan seconds does not validate."""
        from mqttd.config import BrokerConfig

        with self.assertRaises(ValueError) as caught:
            BrokerConfig(connectTimeout=float("nan")).validate()
        self.assertIn("connect-timeout", str(caught.exception))

    def test_valueOutOfRange(self) -> None:
        """A value out of range is refused with the exact bounds."""
        self.assertFails(
            ["--connect-timeout", "0"],
            "mqttd: --connect-timeout: must be between 0.1 and 3600, not 0",
        )
        self.assertFails(
            ["--max-packet-size", "1G"],
            "mqttd: --max-packet-size: must be between 16 and 268435460, not 1G",
        )

    def test_unknownOption(self) -> None:
        """An unknown option is a one-line error."""
        self.assertFails(["--colour", "blue"], "mqttd: option --colour not recognized")

    def test_localListeners(self) -> None:
        """Loopback addresses and UNIX sockets are local; anything else is not."""
        for description in [
            "tcp:1883:interface=127.0.0.1",
            "tcp:0:interface=127.1.2.3",
            r"tcp6:0:interface=\:\:1",
            "unix:/tmp/x.sock",
            "tcp:0:interface=localhost",
        ]:
            self.assertTrue(isLocalEndpoint(description), description)
        for description in [
            "tcp:1883",
            "tcp:0:interface=0.0.0.0",
            r"tcp6:0:interface=\:\:",
            "tcp:0:interface=192.0.2.1",
            "ssl:8883:privateKey=k.pem",
        ]:
            self.assertFalse(isLocalEndpoint(description), description)

    def test_oneEndpointGrammar(self) -> None:
        """Endpoint strings are split by the plug-in grammar itself, not a second name for it."""
        import mqttd.tap

        self.assertEqual(
            mqttd.tap.resolveEndpointPaths(r"ssl:8883:privateKey=k\:1.pem", "/etc/mqttd"),
            r"ssl:8883:privateKey=/etc/mqttd/k\:1.pem",
        )

    def test_nonLocalListenerNeedsAllowAnonymous(self) -> None:
        """A non-local listener without authentication refuses to start unless --allow-anonymous."""
        self.assertFails(
            ["--listen", "tcp:0:interface=127.0.0.1", "--listen", "tcp:0"],
            "mqttd: listener 'tcp:0' is not local and has no authentication: "
            "configure authentication (--auth) or pass --allow-anonymous",
        )
        options = self.parse("--listen", "tcp:0", "--allow-anonymous")
        self.assertTrue(options["allow-anonymous"])
        self.assertEqual(options["listen"], ["tcp:0"])

    def test_configFile(self) -> None:
        """The TOML file sets listeners and limits with the option names."""
        path = writeConfig(
            self,
            'listen = ["tcp:0:interface=127.0.0.1", "unix:/tmp/a.sock"]\n'
            "max-packet-size = 100\nconnect-timeout = 2.5\n"
            'max-queued-bytes = "2M"\nallow-control-characters = true\n',
        )
        options = self.parse("--config", path)
        self.assertEqual(options["listen"], ["tcp:0:interface=127.0.0.1", "unix:/tmp/a.sock"])
        config = options.brokerConfig
        self.assertEqual(
            (
                config.maxPacketSize,
                config.connectTimeout,
                config.maxQueuedBytes,
                config.allowControlCharacters,
            ),
            (100, 2.5, 2 * 1024**2, True),
        )

    def test_commandLineOverridesConfigFile(self) -> None:
        """A command-line value wins over the file, and --listen replaces the file's array."""
        path = writeConfig(
            self, 'listen = ["unix:/tmp/a.sock"]\nmax-packet-size = 100\nmax-inflight = 7\n'
        )
        options = self.parse(
            "--config", path, "--max-packet-size", "1k", "--listen", "tcp:0:interface=127.0.0.1"
        )
        self.assertEqual(options["listen"], ["tcp:0:interface=127.0.0.1"])
        self.assertEqual(
            (options.brokerConfig.maxPacketSize, options.brokerConfig.maxInflight), (1024, 7)
        )

    def test_configAllowAnonymous(self) -> None:
        """C{allow-anonymous = true} in the file allows a non-local listener."""
        path = writeConfig(self, 'listen = ["tcp:0"]\nallow-anonymous = true\n')
        self.assertTrue(self.parse("--config", path)["allow-anonymous"])

    def test_configErrors(self) -> None:
        """Unknown keys, sections and wrong types are one-line errors naming the file and key."""
        directory = tempDirectory(self)
        cases = [
            ('colour = "blue"\n', "unknown key 'colour'"),
            ("[listen]\nport = 1\n", "unknown section [listen] (keys are flat, as the options)"),
            (
                'max-packet-size = "big"\n',
                "max-packet-size: 'big' is not a valid size in bytes (e.g. 1048576 or 1M)",
            ),
            ("max-packet-size = true\n", "max-packet-size: must be a number, not True"),
            ("max-inflight = 2.5\n", "max-inflight: 2.5 is not a valid whole number"),
            (
                'allow-control-characters = "yes"\n',
                "allow-control-characters: must be true or false, not 'yes'",
            ),
            ("listen = 5\n", "listen must be an array of endpoint strings"),
            ('allow-anonymous = "yes"\n', "allow-anonymous must be true or false"),
        ]
        for text, message in cases:
            path = writeConfig(self, text, directory)
            self.assertFails(["--config", path], f"mqttd: {path}: {message}")


class CommandLineErrorTests(SynchronousTestCase):
    """
    Bad command lines make C{twistd mqttd} exit at once with one line on
    stderr.
    """

    def assertOneLineError(self, args: list[str], message: str) -> None:
        """
        C{twistd -n --pidfile= mqttd ARGS} exits with status 1, nothing on
        stdout and exactly C{message} (one line) on stderr.
        """
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "mqttd", *args],
            capture_output=True,
            timeout=30,
            cwd=tempDirectory(self),
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(
            (result.returncode, result.stdout, result.stderr.decode()),
            (1, b"", message + "\n"),
        )

    def test_unknownOption(self) -> None:
        """An unknown option."""
        self.assertOneLineError(
            ["--no-such-option"], "mqttd: option --no-such-option not recognized"
        )

    def test_missingArgument(self) -> None:
        """An option without its value."""
        self.assertOneLineError(
            ["--max-packet-size"], "mqttd: option --max-packet-size requires argument"
        )

    def test_badValue(self) -> None:
        """A value of the wrong kind."""
        self.assertOneLineError(
            ["--listen", "tcp:0:interface=127.0.0.1", "--max-packet-size", "lots"],
            "mqttd: --max-packet-size: 'lots' is not a valid size in bytes (e.g. 1048576 or 1M)",
        )

    def test_valueOutOfRange(self) -> None:
        """A value out of range, with the exact bounds."""
        self.assertOneLineError(
            ["--listen", "tcp:0:interface=127.0.0.1", "--max-packet-size", "1G"],
            "mqttd: --max-packet-size: must be between 16 and 268435460, not 1G",
        )

    def test_unknownEndpointType(self) -> None:
        """An endpoint string of an unknown type."""
        self.assertOneLineError(
            ["--listen", "nosuch:1"],
            "mqttd: invalid listen endpoint 'nosuch:1': Unknown endpoint type: 'nosuch'",
        )

    def test_badEndpointArgument(self) -> None:
        """An endpoint string with a bad port."""
        self.assertOneLineError(
            ["--listen", "tcp:notaport:interface=127.0.0.1"],
            "mqttd: invalid listen endpoint 'tcp:notaport:interface=127.0.0.1': "
            "invalid literal for int() with base 10: 'notaport'",
        )

    def test_missingTLSFile(self) -> None:
        """An C{ssl:} listener whose key file does not exist: one line naming the file."""
        self.assertOneLineError(
            ["--listen", "ssl:0:privateKey=/nonexistent/key.pem:interface=127.0.0.1"],
            "mqttd: invalid listen endpoint 'ssl:0:privateKey=/nonexistent/key.pem:"
            "interface=127.0.0.1': /nonexistent/key.pem: No such file or directory",
        )

    def test_configNotUTF8(self) -> None:
        """A configuration file that is not UTF-8."""
        path = os.path.join(tempDirectory(self), "mqttd.toml")
        with open(path, "wb") as f:
            f.write(b'listen = ["tcp:0\xff"]\n')
        self.assertOneLineError(["--config", path],
                                f"mqttd: {path}: not UTF-8 text (TOML files are UTF-8)")

    def test_portInUse(self) -> None:
        """A listener that cannot bind (its port is taken): exit status 1 and one line saying why, no traceback."""
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "mqttd", "--listen", f"tcp:{port}:interface=127.0.0.1"],
            capture_output=True, timeout=30, cwd=tempDirectory(self), stdin=subprocess.DEVNULL,
        )
        output = result.stdout.decode() + result.stderr.decode()
        self.assertEqual(result.returncode, 1, output)
        self.assertIn(f"mqttd: cannot listen on tcp:{port}:interface=127.0.0.1: "
                      "Address already in use", output)
        self.assertNotIn("Traceback", output)

    def test_unknownConfigKey(self) -> None:
        """A configuration file with an unknown key."""
        path = writeConfig(self, 'listen = ["tcp:0:interface=127.0.0.1"]\ncolour = "blue"\n')
        self.assertOneLineError(["--config", path], f"mqttd: {path}: unknown key 'colour'")

    def test_wrongConfigType(self) -> None:
        """A configuration value of the wrong type."""
        path = writeConfig(
            self, 'listen = ["tcp:0:interface=127.0.0.1"]\nmax-packet-size = "big"\n'
        )
        self.assertOneLineError(
            ["--config", path],
            f"mqttd: {path}: max-packet-size: 'big' is not a valid size in bytes "
            "(e.g. 1048576 or 1M)",
        )

    def test_configSyntaxError(self) -> None:
        """A configuration file that is not TOML."""
        path = writeConfig(self, "listen = [\n")
        self.assertOneLineError(
            ["--config", path], f"mqttd: {path}: Invalid value (at end of document)"
        )

    def test_missingConfigFile(self) -> None:
        """A configuration file that does not exist."""
        path = os.path.join(tempDirectory(self), "missing.toml")
        self.assertOneLineError(
            ["--config", path],
            f"mqttd: cannot read the configuration file {path}: No such file or directory",
        )

    def test_nonLocalListenerWithoutAuthentication(self) -> None:
        """A listener on every interface without authentication or --allow-anonymous."""
        self.assertOneLineError(
            ["--listen", "tcp:0:interface=127.0.0.1", "--listen", "tcp:0:interface=0.0.0.0"],
            "mqttd: listener 'tcp:0:interface=0.0.0.0' is not local and has no "
            "authentication: configure authentication (--auth) or pass --allow-anonymous",
        )


class ListenerTests(SynchronousTestCase):
    """
    Listeners of real brokers.
    """

    def test_exactCommandLine(self) -> None:
        """C{twistd -n --pidfile= mqttd --listen tcp:PORT:interface=127.0.0.1} serves on PORT."""
        port = freePort()
        broker = startBroker(self, "--listen", f"tcp:{port}:interface=127.0.0.1")
        self.assertEqual(broker.addresses, [f"tcp:127.0.0.1:{port}"])
        self.assertTrue(isAlive(port))
        self.assertEqual(broker.stop(), -signal.SIGTERM)
        self.assertEqual(broker.tracebacks(), [])
        self.assertEqual(broker.stderr(), "")

    def test_allowAnonymousNonLocalListener(self) -> None:
        """With --allow-anonymous a listener on every interface starts and serves."""
        broker = startBroker(self, "--listen", "tcp:0:interface=0.0.0.0", "--allow-anonymous")
        self.assertEqual(len(broker.addresses), 1)
        self.assertRegex(broker.addresses[0], r"^tcp:0\.0\.0\.0:\d+$")
        self.assertTrue(isAlive(broker.tcpPort()))
        self.assertEqual(broker.tracebacks(), [])

    def test_relativeUnixPathInConfigResolvesAgainstConfigFile(self) -> None:
        """A relative C{unix:} path in the configuration file is relative to the file's directory."""
        configDirectory = tempDirectory(self)
        cwd = tempDirectory(self)
        path = writeConfig(self, 'listen = ["unix:broker.sock"]\n', configDirectory)
        broker = startBroker(self, "--config", path, cwd=cwd)
        socketPath = os.path.join(configDirectory, "broker.sock")
        self.assertEqual(
            (os.path.exists(socketPath), os.listdir(cwd)),
            (True, []),
            f"the socket is not next to the configuration file: {broker.addresses}",
        )
        self.assertEqual(broker.addresses, [f"unix:{socketPath}"])
        sock = connectUnix(socketPath)
        self.addCleanup(sock.close)
        sock.sendall(C4)
        self.assertEqual(recvExactly(sock, 4), CONNACK_OK)


class MultipleListenerTests(SynchronousTestCase):
    """
    One broker with two loopback TCP listeners, an IPv6 loopback listener
    and a UNIX socket.
    """

    @classmethod
    def setUpClass(cls) -> None:
        cls.directory = tempfile.mkdtemp(prefix="mqttd-tap-")
        cls.socketPath = os.path.join(cls.directory, "mqttd.sock")
        cls.broker = MqttdProcess(
            [
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--listen",
                f"unix:{cls.socketPath}",
                "--listen",
                r"tcp6:0:interface=\:\:1",
            ]
        )
        try:
            cls.broker.waitListening(4)
        except BaseException:
            cls.broker.cleanup()
            shutil.rmtree(cls.directory, True)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.broker.cleanup()
        shutil.rmtree(cls.directory, True)

    def tearDown(self) -> None:
        self.assertEqual(self.broker.tracebacks(), [])

    def tcpPorts(self) -> list[int]:
        return [int(a.rsplit(":", 1)[1]) for a in self.broker.addresses if a.startswith("tcp:")]

    def test_everyListenerLogged(self) -> None:
        """Each listener logs its own C{mqttd listening on} line with its address."""
        addresses = sorted(self.broker.addresses)
        self.assertEqual(len(addresses), 4)
        self.assertRegex(addresses[0], r"^tcp6:\[::1\]:\d+$")
        self.assertRegex(addresses[1], r"^tcp:127\.0\.0\.1:\d+$")
        self.assertRegex(addresses[2], r"^tcp:127\.0\.0\.1:\d+$")
        self.assertEqual(addresses[3], f"unix:{self.socketPath}")
        self.assertNotEqual(addresses[1], addresses[2])

    def test_onlyConfiguredListenersBound(self) -> None:
        """The broker listens on exactly its --listen addresses: the default 1883 is replaced."""
        process = psutil.Process(self.broker.process.pid)
        listening = sorted(
            (c.laddr.ip, c.laddr.port)
            for c in process.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        )
        expected = sorted(
            [("127.0.0.1", port) for port in self.tcpPorts()]
            + [
                ("::1", int(a.rsplit(":", 1)[1]))
                for a in self.broker.addresses
                if a.startswith("tcp6:")
            ]
        )
        self.assertEqual(listening, expected)
        unixSockets = [c.laddr for c in process.net_connections(kind="unix") if c.laddr]
        self.assertEqual(unixSockets, [self.socketPath])

    def test_bothTcpListenersServe(self) -> None:
        """Both TCP listeners accept clients."""
        ports = self.tcpPorts()
        self.assertEqual(len(ports), 2)
        for port in ports:
            self.assertTrue(isAlive(port))

    def test_ipv6Listener(self) -> None:
        """The ::1 listener accepts a client."""
        address = next(a for a in self.broker.addresses if a.startswith("tcp6:"))
        port = int(address.rsplit(":", 1)[1])
        with socket.create_connection(("::1", port), timeout=WAIT) as sock:
            sock.sendall(C4)
            self.assertEqual(recvExactly(sock, 4), CONNACK_OK)

    def test_listenersShareOneBroker(self) -> None:
        """A message published on one listener reaches subscribers on the others."""
        first, second = self.tcpPorts()
        topic = uniqueName("ml/")
        subscriber = PahoClient(second, uniqueName("s"), mqtt.MQTTv5)
        self.addCleanup(subscriber.close)
        subscriber.connect()
        self.assertEqual(subscriber.subscribe((topic, 1)), [1])
        unix = connectUnix(self.socketPath)
        self.addCleanup(unix.close)
        unix.sendall(connectPacket(uniqueName("u")))
        self.assertEqual(recvExactly(unix, 4), CONNACK_OK)
        unix.sendall(subscribePacket(topic, 1, packetId=1))
        self.assertEqual(recvExactly(unix, 5), bytes.fromhex("90 03 00 01 01"))
        publisher = PahoClient(first, uniqueName("p"))
        self.addCleanup(publisher.close)
        publisher.connect()
        publisher.publish(topic, b"across listeners", 1)
        self.assertEqual(
            subscriber.waitForMessages(1), [Received(topic, b"across listeners", 1, False)]
        )
        expected = publishPacket(topic, b"across listeners", 1, packetId=1)
        self.assertEqual(recvExactly(unix, len(expected)), expected)

    def test_unixListener(self) -> None:
        """A raw client over the UNIX socket connects and gets PINGRESP."""
        sock = connectUnix(self.socketPath)
        self.addCleanup(sock.close)
        sock.sendall(C5)
        self.assertEqual(readPacket(lambda n: recvExactly(sock, n)), connackV5(1024 * 1024))
        sock.sendall(b"\xc0\x00")
        self.assertEqual(recvExactly(sock, 2), b"\xd0\x00")
        self.assertTrue(waitForLog(self.broker.log, r"'p' connected from .*\(MQTT 5\.0"))


class ConfigFileTests(SynchronousTestCase):
    """
    Brokers configured by a TOML file.
    """

    def assertPacketLimit(self, port: int, limit: int) -> None:
        """
        A v5 client is told the limit, a packet of exactly C{limit} bytes
        passes and one byte more gets DISCONNECT 0x95 and a close; a 3.1.1
        client is closed without a word.
        """
        client = RawClient(port, timeout=WAIT)
        self.addCleanup(client.close)
        topic = uniqueName("big/")
        client.send(connectPacket(uniqueName("v"), level=5))
        self.assertEqual(readPacket(client.recvExactly), connackV5(limit))
        client.send(subscribePacket(topic, 0, packetId=1, level=5))
        self.assertEqual(client.recvExactly(6), bytes.fromhex("90 04 00 01 00 00"))
        overhead = len(publishPacket(topic, b"", 1, level=5))
        # The remaining length stays one byte below 128, two bytes above.
        overhead += 1 if limit > 129 else 0
        fits = publishPacket(topic, b"x" * (limit - overhead), 1, packetId=2, level=5)
        self.assertEqual(len(fits), limit)
        client.send(fits)
        delivered = publishPacket(topic, b"x" * (limit - overhead), 0, level=5)
        # The PUBACK goes out before the client's own copy (catalogue FR-10).
        self.assertEqual(
            client.recvExactly(4 + len(delivered)), bytes.fromhex("40 02 00 02") + delivered
        )
        tooBig = publishPacket(topic, b"x" * (limit - overhead + 1), 1, packetId=3, level=5)
        self.assertEqual(len(tooBig), limit + 1)
        client.send(tooBig)
        assertServerDisconnect(self, readPacket(client.recvExactly), PACKET_TOO_LARGE)
        self.assertTrue(client.isClosed())

        old = RawClient(port, timeout=WAIT)
        self.addCleanup(old.close)
        old.send(connectPacket(uniqueName("o")))
        self.assertEqual(old.recvExactly(4), CONNACK_OK)
        old.send(publishPacket(topic, b"x" * limit, 0))
        self.assertEqual(old.recvAvailable(1.0), b"")
        self.assertTrue(old.isClosed())

    def test_configListenAndLimit(self) -> None:
        """C{listen = [...]} and C{max-packet-size = 100} from the file take effect."""
        path = writeConfig(self, 'listen = ["tcp:0:interface=127.0.0.1"]\nmax-packet-size = 100\n')
        broker = startBroker(self, "--config", path)
        self.assertEqual(len(broker.addresses), 1)
        self.assertPacketLimit(broker.tcpPort(), 100)
        self.assertEqual(broker.tracebacks(), [])

    def test_commandLineOverridesFile(self) -> None:
        """--max-packet-size 1k and --listen on the command line win over the file."""
        directory = tempDirectory(self)
        unusedSocket = os.path.join(directory, "unused.sock")
        path = writeConfig(
            self, f'listen = ["unix:{unusedSocket}"]\nmax-packet-size = 100\n', directory
        )
        broker = startBroker(
            self,
            "--config",
            path,
            "--max-packet-size",
            "1k",
            "--listen",
            "tcp:0:interface=127.0.0.1",
        )
        self.assertEqual(len(broker.addresses), 1)
        self.assertRegex(broker.addresses[0], r"^tcp:127\.0\.0\.1:\d+$")
        self.assertFalse(os.path.exists(unusedSocket))
        self.assertPacketLimit(broker.tcpPort(), 1024)
        self.assertEqual(broker.tracebacks(), [])


class ShutdownTests(SynchronousTestCase):
    """
    SIGTERM stops the broker cleanly.
    """

    def test_sigterm(self) -> None:
        """
        On SIGTERM a v5 client gets DISCONNECT 0x8B before the close, a 3.1.1
        client a bare close, and twistd shuts down without a traceback.
        """
        broker = startBroker(self, "--listen", "tcp:0:interface=127.0.0.1")
        port = broker.tcpPort()
        v5 = RawClient(port, timeout=WAIT)
        self.addCleanup(v5.close)
        v5.send(connectPacket("v5-client", level=5))
        self.assertEqual(readPacket(v5.recvExactly), connackV5(1024 * 1024))
        v3 = RawClient(port, timeout=WAIT)
        self.addCleanup(v3.close)
        v3.send(connectPacket("v3-client", will=("shutdown/will", b"w", 0, False)))
        self.assertEqual(v3.recvExactly(4), CONNACK_OK)
        # twistd re-raises the signal after a clean shutdown: status -15.
        self.assertEqual(broker.stop(), -signal.SIGTERM)
        assertServerDisconnect(self, readPacket(v5.recvExactly), SERVER_SHUTTING_DOWN)
        # Nothing after the DISCONNECT, then the close.
        self.assertEqual(v5.recvExactly(1), b"")
        self.assertTrue(v5.isClosed())
        self.assertEqual(v3.recvExactly(1), b"")
        log = broker.log()
        self.assertIn("Server Shut Down.", log)
        self.assertIn("'v5-client' disconnected: server shutting down", log)
        self.assertIn("'v3-client' disconnected: server shutting down", log)
        self.assertEqual(broker.tracebacks(), [])
        self.assertEqual(broker.stderr(), "")


class LoggingTests(SynchronousTestCase):
    """
    Connections are logged at info level; messages are not.
    """

    def setUp(self) -> None:
        self.broker = startBroker(self, "--listen", "tcp:0:interface=127.0.0.1")
        self.port = self.broker.tcpPort()

    def newLines(self, before: str) -> list[str]:
        """
        The log lines written after C{before}, without their timestamps.
        """
        log = self.broker.log()
        self.assertTrue(log.startswith(before))
        return [line.split(" ", 1)[1] for line in log[len(before) :].splitlines()]

    def test_connectAndDisconnectLogged(self) -> None:
        """Connects, disconnects (with the reason) and refusals are logged at info level."""
        before = self.broker.log()
        clean = RawClient(self.port, timeout=WAIT)
        self.addCleanup(clean.close)
        clean.send(connectPacket("clean-one", keepAlive=30))
        self.assertEqual(clean.recvExactly(4), CONNACK_OK)
        cleanPort = clean.sock.getsockname()[1]
        clean.send(b"\xe0\x00")
        self.assertTrue(clean.isClosed())
        self.assertTrue(waitForLog(self.broker.log, "'clean-one' disconnected"))
        dropped = RawClient(self.port, timeout=WAIT)
        self.addCleanup(dropped.close)
        dropped.send(connectPacket("dropped-one", level=5, clean=False))
        readPacket(dropped.recvExactly)
        droppedPort = dropped.sock.getsockname()[1]
        dropped.close()
        self.assertTrue(waitForLog(self.broker.log, "'dropped-one' disconnected"))
        refused = RawClient(self.port, timeout=WAIT)
        self.addCleanup(refused.close)
        # Protocol level 9.
        refused.send(bytes.fromhex("10 0D 00 04 4D 51 54 54 09 02 00 0A 00 01 70"))
        self.assertEqual(refused.recvExactly(4), bytes.fromhex("20 02 00 01"))
        refusedPort = refused.sock.getsockname()[1]
        self.assertTrue(refused.isClosed())
        self.assertTrue(waitForLog(self.broker.log, "refused"))
        lines = self.newLines(before)
        self.assertEqual(
            lines[:4],
            [
                f"[mqttd#info] 'clean-one' connected from 127.0.0.1:{cleanPort} (MQTT 3.1.1, "
                "clean=True, keepalive=30, session present=False)",
                "[mqttd#info] 'clean-one' disconnected: client disconnected",
                f"[mqttd#info] 'dropped-one' connected from 127.0.0.1:{droppedPort} (MQTT 5.0, "
                "clean=False, keepalive=60, session present=False)",
                "[mqttd#info] 'dropped-one' disconnected: connection lost",
            ],
        )
        self.assertEqual(len(lines), 5, lines)
        self.assertEqual(
            lines[4],
            f"[mqttd#info] connection from 127.0.0.1:{refusedPort} "
            "refused: protocol level 9 is not supported",
        )

    def test_nothingLoggedPerMessage(self) -> None:
        """100 messages through the broker add no log line beyond connects and disconnects."""
        before = self.broker.log()
        topic = uniqueName("quiet/")
        subscriber = PahoClient(self.port, "quiet-sub", mqtt.MQTTv5)
        self.addCleanup(subscriber.close)
        subscriber.connect()
        self.assertEqual(subscriber.subscribe((topic, 2)), [2])
        publisher = PahoClient(self.port, "quiet-pub")
        self.addCleanup(publisher.close)
        publisher.connect()
        for i in range(100):
            publisher.publish(topic, b"%d" % i, i % 3)
        messages = subscriber.waitForMessages(100)
        self.assertEqual(
            sorted(m.payload for m in messages), sorted(b"%d" % i for i in range(100))
        )
        publisher.disconnect()
        subscriber.disconnect()
        for clientId in ("quiet-pub", "quiet-sub"):
            self.assertTrue(waitForLog(self.broker.log, f"'{clientId}' disconnected"))
        lines = self.newLines(before)
        self.assertEqual(len(lines), 4, lines)
        self.assertEqual(
            sorted(re.sub(r"127\.0\.0\.1:\d+", "PEER", line) for line in lines),
            [
                "[mqttd#info] 'quiet-pub' connected from PEER (MQTT 3.1.1, clean=True, "
                "keepalive=60, session present=False)",
                "[mqttd#info] 'quiet-pub' disconnected: client disconnected",
                "[mqttd#info] 'quiet-sub' connected from PEER (MQTT 5.0, clean=True, "
                "keepalive=60, session present=False)",
                "[mqttd#info] 'quiet-sub' disconnected: client disconnected",
            ],
        )
        self.assertEqual(self.broker.tracebacks(), [])
