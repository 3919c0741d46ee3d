"""
Integration tests of authentication and authorization against the real
broker (C{twistd -n --pidfile= mqttd ...} in a subprocess, one per class):
C{--auth passwd}, C{--allow-anonymous}, files written by C{mqttd passwd},
C{--authorizer aclfile}, reloading both on SIGHUP, start-up errors,
C{--help-auth}/C{--help-authorizer}, a non-local listener and the TOML
configuration file.  Clients are paho-mqtt, C{mosquitto_pub}/C{mosquitto_sub}
and raw sockets, all on loopback.

Expected codes come from the MQTT specifications, C{docs/plugins.md} and
the mosquitto clients' documentation (their exit status is the CONNACK
code), never from mqttd's output.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from brokerprocess import RawClient, runCommand
from clienthelpers import (
    TWISTD,
    WAIT,
    MqttdProcess,
    PahoClient,
    packet,
    publishPacket,
    readPacket,
    subscribePacket,
    uniqueName,
    waitForLog,
)
from twisted.trial.unittest import SynchronousTestCase

from mqttd.codec import MQTT_5, Connack, Decoder, Puback

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PASSWORDS = os.path.join(DATA, "mosquitto.passwd")
#: The users of tests/data/mosquitto.passwd (see tests/data/README.md).
ALICE = ("alice", "alice-secret")
BOB = ("bob", "b:b 0b")
CAROL = ("carol", "carol6")

MQTTD = os.path.join(os.path.dirname(sys.executable), "mqttd")

#: 3.1.1 CONNACK return codes 0, 4 and 5 (section 3.2.2.3).
ACCEPTED = bytes.fromhex("20 02 00 00")
BAD_CREDENTIALS_V3 = bytes.fromhex("20 02 00 04")
NOT_AUTHORIZED_V3 = bytes.fromhex("20 02 00 05")
#: MQTT 5.0 reason codes.
BAD_CREDENTIALS = 0x86
NOT_AUTHORIZED = 0x87

LOOPBACK = ["--listen", "tcp:0:interface=127.0.0.1"]


def _string(data: str | bytes) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return len(raw).to_bytes(2, "big") + raw


def connectWithCredentials(clientId: str, level: int = 4, username: str | None = None,
                           password: str | None = None, clean: bool = True) -> bytes:
    """
    A CONNECT (3.1.1 or 5.0, keep-alive 30) with an optional user name and
    password.
    """
    flags = 0x02 if clean else 0
    payload = _string(clientId)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _string(password)
    header = _string("MQTT") + bytes((level, flags)) + (30).to_bytes(2, "big")
    if level == 5:
        header += b"\x00"
    return packet(0x10, header + payload)


def decodeV5(data: bytes) -> Any:
    """
    Decode one packet the broker sent to a v5 client.
    """
    decoder = Decoder(isServer=False, protocolLevel=MQTT_5)
    decoder.feed(data)
    return decoder.next()


def openSession(port: int, level: int = 4, username: str | None = None,
                password: str | None = None) -> tuple[RawClient, bytes]:
    """
    Connect a raw client: the client and the CONNACK it got (the caller
    closes the client).
    """
    client = RawClient(port, timeout=WAIT)
    client.send(connectWithCredentials(uniqueName("r"), level, username, password))
    return client, readPacket(client.recvExactly)


def connack(port: int, level: int = 4, username: str | None = None,
            password: str | None = None) -> bytes:
    """
    The CONNACK a raw client gets.
    """
    client, reply = openSession(port, level, username, password)
    client.close()
    return reply


def connackCodeV5(port: int, username: str | None = None, password: str | None = None) -> int:
    """
    The reason code of the CONNACK a raw v5 client gets.
    """
    reply = decodeV5(connack(port, 5, username, password))
    assert isinstance(reply, Connack), reply
    return reply.reasonCode


def subackCodes(port: int, username: str, password: str, topicFilter: str,
                level: int = 4) -> bytes:
    """
    Connect, subscribe to one filter with QoS 1: the SUBACK's return codes.
    """
    client, reply = openSession(port, level, username, password)
    try:
        if level == 5:
            assert decodeV5(reply).reasonCode == 0, reply
        else:
            assert reply == ACCEPTED, reply
        client.send(subscribePacket(topicFilter, 1, 1, level))
        suback = readPacket(client.recvExactly)
        return suback[4:] if level == 4 else bytes(decodeV5(suback).reasonCodes)
    finally:
        client.close()


def pahoConnectReason(port: int, protocol: int, username: str | None = None,
                      password: str | None = None) -> int:
    """
    Connect with paho-mqtt: the reason code its C{on_connect} reports.
    """
    reasons: list[int] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uniqueName("p"),
                         protocol=protocol)
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = lambda c, u, flags, reason, props: reasons.append(reason.value)
    client.connect("127.0.0.1", port, keepalive=30)
    deadline = time.monotonic() + WAIT
    try:
        while not reasons and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    finally:
        client.disconnect()
        for _ in range(5):
            if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
    assert reasons, "no CONNACK"
    return reasons[0]


def pahoClient(case: SynchronousTestCase, port: int, user: tuple[str, str],
               protocol: int = mqtt.MQTTv311) -> PahoClient:
    """
    A connected paho client with credentials, closed in cleanup.
    """
    client = PahoClient(port, uniqueName("p"), protocol)
    client.client.username_pw_set(*user)
    case.addCleanup(client.close)
    return client.connect()


def mosquitto(tool: str, port: int, *args: str, user: tuple[str, str] | None = None,
              version: str = "mqttv311") -> list[str]:
    """
    The command line of a mosquitto client for the broker.
    """
    command = [tool, "-h", "127.0.0.1", "-p", str(port), "-V", version]
    if user is not None:
        command += ["-u", user[0], "-P", user[1]]
    return command + list(args)


def copyPasswords(directory: str) -> str:
    """
    A copy of tests/data/mosquitto.passwd in C{directory}.
    """
    path = os.path.join(directory, "passwd")
    shutil.copyfile(PASSWORDS, path)
    return path


def writeFile(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def readFile(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


class BrokerTestCase(SynchronousTestCase):
    """
    One broker per class, started with the options L{options} returns
    (after files are written into the class's temporary directory).
    """

    directory: ClassVar[str]
    broker: ClassVar[MqttdProcess]
    port: ClassVar[int]

    @classmethod
    def options(cls) -> list[str]:
        """
        The broker's options (listeners included).
        """
        raise NotImplementedError

    @classmethod
    def workingDirectory(cls) -> str | None:
        """
        Where the broker runs (the system's temporary directory by default).
        """
        return None

    @classmethod
    def setUpClass(cls) -> None:
        cls.directory = tempfile.mkdtemp(prefix="mqttd-auth-")
        try:
            cls.broker = MqttdProcess(cls.options(), cwd=cls.workingDirectory())
        except BaseException:
            shutil.rmtree(cls.directory, True)
            raise
        try:
            cls.broker.waitListening(1)
        except BaseException:
            cls.broker.cleanup()
            shutil.rmtree(cls.directory, True)
            raise
        cls.port = cls.broker.tcpPort()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.broker.cleanup()
        shutil.rmtree(cls.directory, True)

    def tearDown(self) -> None:
        self.assertIsNone(self.broker.process.poll(), "the broker exited")
        self.assertEqual(self.broker.tracebacks(), [])


class PasswordFileTests(BrokerTestCase):
    """
    C{--auth passwd:file=...} with a mosquitto password file.
    """

    @classmethod
    def options(cls) -> list[str]:
        return [*LOOPBACK, "--auth", f"passwd:file={copyPasswords(cls.directory)}"]

    def test_rightPasswordPaho311(self) -> None:
        """alice connects with paho (3.1.1) and her messages flow."""
        client = pahoClient(self, self.port, ALICE)
        self.assertEqual(client.subscribe(("auth/paho", 1)), [1])
        client.publish("auth/paho", b"hello", 1)
        self.assertEqual([m.payload for m in client.waitForTopic("auth/paho")], [b"hello"])

    def test_rightPasswordPaho5(self) -> None:
        """bob (a password with a colon and a space) connects with paho (5.0)."""
        client = pahoClient(self, self.port, BOB, mqtt.MQTTv5)
        self.assertEqual(client.connectReason, 0)

    def test_sha512Hash(self) -> None:
        """carol's older C{$6$} hash is accepted."""
        self.assertEqual(connack(self.port, 4, *CAROL), ACCEPTED)

    def test_rightPasswordMosquitto(self) -> None:
        """mosquitto_pub and mosquitto_sub with user names and passwords exchange a message."""
        topic = uniqueName("auth/")
        result = runCommand(mosquitto("mosquitto_pub", self.port, "-t", topic, "-m", "hi",
                                      "-q", "1", "-r", user=BOB, version="5"))
        self.assertEqual(result.returncode, 0, result.stderr)
        result = runCommand(mosquitto("mosquitto_sub", self.port, "-t", topic, "-q", "1",
                                      "-C", "1", "-W", "10", user=ALICE), timeout=20)
        self.assertEqual((result.returncode, result.stdout), (0, b"hi\n"), result.stderr)

    def test_wrongPasswordRaw(self) -> None:
        """A wrong password: 3.1.1 C{20 02 00 04}; v5 CONNACK 0x86."""
        self.assertEqual(connack(self.port, 4, "alice", "alice-secreT"), BAD_CREDENTIALS_V3)
        self.assertEqual(connackCodeV5(self.port, "alice", "wrong"), BAD_CREDENTIALS)

    def test_wrongPasswordPaho(self) -> None:
        """paho reports 0x86 (its 3.1.1 return code 4 is reported as reason code 134 too)."""
        self.assertEqual(pahoConnectReason(self.port, mqtt.MQTTv5, "bob", "b:b 0"),
                         BAD_CREDENTIALS)
        self.assertEqual(pahoConnectReason(self.port, mqtt.MQTTv311, "bob", "b:b 0b "),
                         BAD_CREDENTIALS)

    def test_wrongPasswordMosquittoPub(self) -> None:
        """mosquitto_pub exits with the CONNACK code (4, v5 134) and says why."""
        for version, code in (("mqttv311", 4), ("5", BAD_CREDENTIALS)):
            result = runCommand(mosquitto("mosquitto_pub", self.port, "-t", "a", "-m", "x",
                                          user=("alice", "nope"), version=version))
            self.assertEqual(result.returncode, code, result.stderr)
            self.assertIn(b"bad user name or password", result.stderr.lower())

    def test_unknownUser(self) -> None:
        """A user name no plug-in knows: 3.1.1 C{20 02 00 04}, v5 0x86 (docs/plugins.md)."""
        self.assertEqual(connack(self.port, 4, "zed", "x"), BAD_CREDENTIALS_V3)
        self.assertEqual(connackCodeV5(self.port, "zed", "x"), BAD_CREDENTIALS)
        result = runCommand(mosquitto("mosquitto_pub", self.port, "-t", "a", "-m", "x",
                                      user=("zed", "x")))
        self.assertEqual(result.returncode, 4, result.stderr)

    def test_anonymousRefused(self) -> None:
        """Without a user name: 3.1.1 C{20 02 00 05}, v5 0x87; mosquitto_pub exits with 5."""
        self.assertEqual(connack(self.port, 4), NOT_AUTHORIZED_V3)
        self.assertEqual(connackCodeV5(self.port), NOT_AUTHORIZED)
        self.assertEqual(pahoConnectReason(self.port, mqtt.MQTTv5), NOT_AUTHORIZED)
        result = runCommand(mosquitto("mosquitto_pub", self.port, "-t", "a", "-m", "x"))
        self.assertEqual(result.returncode, 5, result.stderr)
        self.assertIn(b"not authorised", result.stderr.lower())


class AllowAnonymousTests(BrokerTestCase):
    """
    C{--auth passwd:... --allow-anonymous}: clients without a user name are
    accepted, user names are still checked.
    """

    @classmethod
    def options(cls) -> list[str]:
        return [*LOOPBACK, "--auth", f"passwd:file={copyPasswords(cls.directory)}", "--allow-anonymous"]

    def test_anonymousAccepted(self) -> None:
        """A client without a user name connects (3.1.1 and 5.0)."""
        self.assertEqual(connack(self.port, 4), ACCEPTED)
        self.assertEqual(connackCodeV5(self.port), 0)

    def test_userNamesStillChecked(self) -> None:
        """alice with her password connects; with a wrong one she is refused."""
        self.assertEqual(connack(self.port, 4, *ALICE), ACCEPTED)
        self.assertEqual(connack(self.port, 4, "alice", "x"), BAD_CREDENTIALS_V3)


class NonLocalListenerTests(BrokerTestCase):
    """
    A listener on every interface starts with C{--auth} and no
    C{--allow-anonymous}, and authenticates (tested through 127.0.0.1).
    """

    @classmethod
    def options(cls) -> list[str]:
        return ["--listen", "tcp:0:interface=0.0.0.0",
                "--auth", f"passwd:file={copyPasswords(cls.directory)}"]

    def test_startsAndAuthenticates(self) -> None:
        """It listens on 0.0.0.0; alice connects, anonymous clients are refused."""
        self.assertTrue(self.broker.addresses[0].startswith("tcp:0.0.0.0:"),
                        self.broker.addresses)
        self.assertEqual(connack(self.port, 4, *ALICE), ACCEPTED)
        self.assertEqual(connack(self.port, 4), NOT_AUTHORIZED_V3)


ACL = """\
# alice: her own tree except one topic; she may read the shared tree
user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/#

user bob
topic write shared/#

user carol
topic readwrite #
"""


class AclFileTests(BrokerTestCase):
    """
    C{--authorizer aclfile:file=...}: publish, subscribe and receive
    decided by a mosquitto-format ACL file.
    """

    @classmethod
    def options(cls) -> list[str]:
        acl = writeFile(os.path.join(cls.directory, "acl"), ACL)
        return [*LOOPBACK, "--auth", f"passwd:file={copyPasswords(cls.directory)}", "--authorizer", f"aclfile:file={acl}"]

    def test_allowedTopics(self) -> None:
        """alice subscribes to and publishes in her tree."""
        client = pahoClient(self, self.port, ALICE)
        self.assertEqual(client.subscribe(("alice/#", 1)), [1])
        client.publish("alice/x", b"mine", 1)
        self.assertEqual([(m.topic, m.payload) for m in client.waitForTopic("alice/x")],
                         [("alice/x", b"mine")])

    def test_subscribeDeniedRaw(self) -> None:
        """A denied filter gets SUBACK 0x80 (3.1.1) / 0x87 (5.0)."""
        self.assertEqual(subackCodes(self.port, *ALICE, "shared/#"), b"\x01")
        self.assertEqual(subackCodes(self.port, *ALICE, "carol/#"), b"\x80")
        self.assertEqual(subackCodes(self.port, *BOB, "shared/#", level=5),
                         bytes((NOT_AUTHORIZED,)))

    def test_mosquittoSubDeniedFilter(self) -> None:
        """mosquitto_sub sees the SUBACK failure code for the denied filter only."""
        for version, code in (("mqttv311", 128), ("5", NOT_AUTHORIZED)):
            result = runCommand(mosquitto("mosquitto_sub", self.port, "-d", "-E", "-q", "1",
                                          "-t", "bob/#", "-t", "alice/#", user=ALICE,
                                          version=version))
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn(f"Subscribed (mid: 1): {code}, 1".encode(), result.stdout)
        result = runCommand(mosquitto("mosquitto_sub", self.port, "-E", "-t", "bob/#",
                                      user=ALICE))
        self.assertIn(b"All subscription requests were denied.", result.stderr)

    def test_deniedPublishNotDelivered(self) -> None:
        """alice's publish to the shared tree (read-only for her) is not delivered; bob's is."""
        reader = pahoClient(self, self.port, CAROL)
        self.assertEqual(reader.subscribe(("shared/#", 1)), [1])
        result = runCommand(mosquitto("mosquitto_pub", self.port, "-t", "shared/a", "-m",
                                      "denied", "-q", "1", user=ALICE))
        # 3.1.1: the PUBACK is positive [MQTT-3.3.5-2].
        self.assertEqual(result.returncode, 0, result.stderr)
        result = runCommand(mosquitto("mosquitto_pub", self.port, "-t", "shared/b", "-m",
                                      "allowed", "-q", "1", user=BOB))
        self.assertEqual(result.returncode, 0, result.stderr)
        messages = reader.waitForTopic("shared/b")
        self.assertEqual([(m.topic, m.payload) for m in messages], [("shared/b", b"allowed")])

    def test_deniedPublishV5(self) -> None:
        """v5: a denied QoS 1 publish gets PUBACK 0x87; mosquitto_pub warns."""
        client, reply = openSession(self.port, 5, *BOB)
        try:
            self.assertEqual(decodeV5(reply).reasonCode, 0)
            client.send(publishPacket("alice/x", b"no", 1, 0x0A0B, 5))
            puback = decodeV5(readPacket(client.recvExactly))
            self.assertIsInstance(puback, Puback)
            self.assertEqual((puback.packetId, puback.reasonCode), (0x0A0B, NOT_AUTHORIZED))
        finally:
            client.close()
        result = runCommand(mosquitto("mosquitto_pub", self.port, "-t", "alice/x", "-m", "no",
                                      "-q", "1", user=BOB, version="5"))
        self.assertIn(b"not authorized", result.stderr.lower())

    def test_receiveCheckedInsideASubscription(self) -> None:
        """alice subscribed to C{alice/#} does not receive C{alice/secret} (a deny line)."""
        reader = pahoClient(self, self.port, ALICE)
        self.assertEqual(reader.subscribe(("alice/#", 1)), [1])
        writer = pahoClient(self, self.port, CAROL, mqtt.MQTTv5)
        writer.publish("alice/secret", b"hidden", 1)
        writer.publish("alice/public", b"shown", 1)
        messages = reader.waitForTopic("alice/public")
        self.assertEqual([(m.topic, m.payload) for m in messages], [("alice/public", b"shown")])


def reloads(log: str) -> tuple[int, int]:
    """
    How many reloads the log shows: (successful, with errors).
    """
    ok = len(re.findall(r"configuration reloaded$", log, re.MULTILINE))
    failed = len(re.findall(r"configuration reloaded with errors$", log, re.MULTILINE))
    return ok, failed


class ReloadTests(BrokerTestCase):
    """
    SIGHUP re-reads the password and ACL files; a broken file keeps the old
    one in force and is reported in the log (AU-09).  The password file is
    written by C{mqttd passwd}.
    """

    @classmethod
    def options(cls) -> list[str]:
        cls.passwd = os.path.join(cls.directory, "passwd")
        subprocess.run([MQTTD, "passwd", "-c", "-b", cls.passwd, "dave", "dave-pw"],
                       check=True, timeout=30, stdin=subprocess.DEVNULL)
        cls.acl = writeFile(os.path.join(cls.directory, "acl"),
                            "user dave\ntopic readwrite dave/#\n")
        return [*LOOPBACK, "--auth", f"passwd:file={cls.passwd}", "--authorizer", f"aclfile:file={cls.acl}"]

    def sighup(self, expectErrors: bool) -> None:
        """
        Send SIGHUP and wait until the broker logged the end of the reload.
        """
        before = reloads(self.broker.log())
        os.kill(self.broker.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while True:
            after = reloads(self.broker.log())
            if after != before:
                break
            self.assertLess(time.monotonic(), deadline, "no reload logged")
            time.sleep(0.05)
        expected = (before[0], before[1] + 1) if expectErrors else (before[0] + 1, before[1])
        self.assertEqual(after, expected, self.broker.log())

    def restoreLater(self, path: str) -> None:
        """
        Put C{path} back as it is now (and reload) in cleanup.
        """
        text = readFile(path)

        def restore() -> None:
            writeFile(path, text)
            self.sighup(expectErrors=False)

        self.addCleanup(restore)

    def test_fileWrittenByMqttdPasswd(self) -> None:
        """The file C{mqttd passwd -c -b} wrote authenticates dave (and not a wrong password)."""
        self.assertEqual(connack(self.port, 4, "dave", "dave-pw"), ACCEPTED)
        self.assertEqual(connack(self.port, 4, "dave", "dave-pW"), BAD_CREDENTIALS_V3)
        result = runCommand(mosquitto("mosquitto_pub", self.port, "-t", "dave/x", "-m", "x",
                                      user=("dave", "dave-pw"), version="5"))
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_userAddedWithMqttdPasswdAfterSighup(self) -> None:
        """A user added with C{mqttd passwd -b} connects after SIGHUP."""
        self.restoreLater(self.passwd)
        self.assertNotEqual(connack(self.port, 4, "erin", "erin-pw"), ACCEPTED)
        subprocess.run([MQTTD, "passwd", "-b", self.passwd, "erin", "erin-pw"], check=True,
                       timeout=30, stdin=subprocess.DEVNULL)
        self.sighup(expectErrors=False)
        deadline = time.monotonic() + WAIT
        while connack(self.port, 4, "erin", "erin-pw") != ACCEPTED:
            self.assertLess(time.monotonic(), deadline, "erin was never accepted")
            time.sleep(0.1)
        self.assertEqual(connack(self.port, 4, "dave", "dave-pw"), ACCEPTED)

    def test_brokenPasswordFileKeepsOldUsers(self) -> None:
        """A malformed password file on SIGHUP: logged, and the old users stay in force."""
        self.restoreLater(self.passwd)
        writeFile(self.passwd, readFile(self.passwd) + "mallory\n")
        self.sighup(expectErrors=True)
        self.assertTrue(waitForLog(self.broker.log, re.escape(self.passwd) + r": line 2"),
                        self.broker.log())
        self.assertEqual(connack(self.port, 4, "dave", "dave-pw"), ACCEPTED)
        # Never "a user without a password" (the refusal code is test_unknownUser's concern).
        self.assertNotEqual(connack(self.port, 4, "mallory", ""), ACCEPTED)
        self.assertNotEqual(connack(self.port, 4, "mallory"), ACCEPTED)

    def test_brokenAclKeepsOldRules(self) -> None:
        """A malformed ACL file on SIGHUP: logged, and the old rules stay in force."""
        self.restoreLater(self.acl)
        writeFile(self.acl, "user dave\ntopic readwrite other/#\nfrobnicate dave/#\n")
        self.sighup(expectErrors=True)
        self.assertTrue(waitForLog(self.broker.log, re.escape(self.acl) + r": line 3"),
                        self.broker.log())
        self.assertEqual(subackCodes(self.port, "dave", "dave-pw", "dave/#"), b"\x01")
        self.assertEqual(subackCodes(self.port, "dave", "dave-pw", "other/#"), b"\x80")

    def test_aclChangeAfterSighup(self) -> None:
        """A changed ACL file applies after SIGHUP."""
        self.restoreLater(self.acl)
        self.assertEqual(subackCodes(self.port, "dave", "dave-pw", "extra/#"), b"\x80")
        writeFile(self.acl, "user dave\ntopic readwrite dave/#\ntopic read extra/#\n")
        self.sighup(expectErrors=False)
        self.assertEqual(subackCodes(self.port, "dave", "dave-pw", "extra/#"), b"\x01")


class ConfigFileTests(BrokerTestCase):
    """
    The TOML configuration file: C{auth} and C{authorizer} arrays with
    paths relative to the file's directory (the broker runs elsewhere).
    """

    @classmethod
    def workingDirectory(cls) -> str | None:
        elsewhere = os.path.join(cls.directory, "elsewhere")
        os.mkdir(elsewhere)
        return elsewhere

    @classmethod
    def options(cls) -> list[str]:
        copyPasswords(cls.directory)
        writeFile(os.path.join(cls.directory, "acl"), "user alice\ntopic readwrite alice/#\n")
        config = writeFile(os.path.join(cls.directory, "mqttd.toml"), (
            'listen = ["tcp:0:interface=127.0.0.1"]\n'
            'auth = ["passwd:file=passwd"]\n'
            'authorizer = ["aclfile:file=acl"]\n'
        ))
        return ["--config", config]

    def test_authenticationFromTheFile(self) -> None:
        """The password file named relatively in the configuration file is used."""
        self.assertEqual(connack(self.port, 4, *ALICE), ACCEPTED)
        self.assertEqual(connack(self.port, 4, "alice", "x"), BAD_CREDENTIALS_V3)
        self.assertEqual(connack(self.port, 4), NOT_AUTHORIZED_V3)

    def test_authorizationFromTheFile(self) -> None:
        """The ACL file named relatively in the configuration file is used."""
        self.assertEqual(subackCodes(self.port, *ALICE, "alice/#"), b"\x01")
        self.assertEqual(subackCodes(self.port, *ALICE, "bob/#"), b"\x80")


class StartupErrorTests(SynchronousTestCase):
    """
    A plug-in that is missing or refuses its configuration stops the broker
    at start with one line naming it (PL-05, AU-08).
    """

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="mqttd-auth-")
        self.addCleanup(shutil.rmtree, self.directory, True)

    def startupError(self, *args: str) -> str:
        """
        Run C{twistd -n --pidfile= mqttd --listen tcp:0:interface=127.0.0.1
        ARGS}: it must exit non-zero with exactly one line on stderr,
        starting with C{mqttd:}.

        @return: that line.
        """
        try:
            result = subprocess.run(
                [TWISTD, "-n", "--pidfile=", "mqttd", "--listen", "tcp:0:interface=127.0.0.1",
                 *args],
                capture_output=True, timeout=30, cwd=self.directory, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            self.fail(f"the broker did not exit: {e.stdout!r}")
        stderr = result.stderr.decode("utf-8", "replace")
        self.assertNotEqual(result.returncode, 0, (result.stdout, stderr))
        lines = stderr.splitlines()
        self.assertEqual(len(lines), 1, stderr)
        self.assertTrue(stderr.endswith("\n"), stderr)
        self.assertTrue(lines[0].startswith("mqttd: "), stderr)
        return lines[0]

    def test_unknownAuthenticator(self) -> None:
        """An authenticator that is not installed is named, with the installed ones."""
        line = self.startupError("--auth", "nosuch:file=x")
        self.assertTrue(line.startswith(
            "mqttd: --auth nosuch: no such authenticator is installed (installed: "), line)
        self.assertIn("passwd", line)
        self.assertIn("anonymous", line)

    def test_unknownAuthorizer(self) -> None:
        """An authorizer that is not installed is named, with the installed ones."""
        line = self.startupError("--authorizer", "acl:file=x")
        self.assertTrue(line.startswith(
            "mqttd: --authorizer acl: no such authorizer is installed (installed: "), line)
        self.assertIn("aclfile", line)

    def test_missingFileArgument(self) -> None:
        """C{passwd} and C{aclfile} without C{file=} are refused, naming the argument."""
        for option, name in (("--auth", "passwd"), ("--authorizer", "aclfile")):
            line = self.startupError(option, name)
            self.assertTrue(line.startswith(f"mqttd: {option} {name}"), line)
            self.assertIn("file", line)

    def test_unreadablePasswordFile(self) -> None:
        """A password file that cannot be read is named."""
        path = os.path.join(self.directory, "no-such-passwd")
        line = self.startupError("--auth", f"passwd:file={path}")
        self.assertTrue(line.startswith("mqttd: --auth passwd: "), line)
        self.assertIn(path, line)

    def test_malformedPasswordFile(self) -> None:
        """A damaged hash: the file, line and user are named (docs/plugins.md's example)."""
        good = readFile(PASSWORDS).splitlines()
        path = writeFile(os.path.join(self.directory, "passwd"), "\n".join([
            good[0], "# a comment", "bob:$7$101$!!!!$" + good[1].rsplit("$", 1)[1], ""]))
        line = self.startupError("--auth", f"passwd:file={path}")
        self.assertEqual(
            line, f"mqttd: --auth passwd: {path}: line 3: bad password hash for 'bob': "
                  "invalid base64")

    def test_passwordLineWithoutColon(self) -> None:
        """AU-08: a line without C{:} makes the whole file invalid (its line number is given)."""
        good = readFile(PASSWORDS).splitlines()
        path = writeFile(os.path.join(self.directory, "passwd"), f"{good[0]}\nmallory\n")
        line = self.startupError("--auth", f"passwd:file={path}")
        self.assertTrue(line.startswith(f"mqttd: --auth passwd: {path}: line 2"), line)

    def test_malformedAcl(self) -> None:
        """A malformed ACL line: the file and line number are named."""
        path = writeFile(os.path.join(self.directory, "acl"),
                         "user alice\ntopic readwrite alice/#\ntopic sideways a/b\nbogus x\n")
        line = self.startupError("--authorizer", f"aclfile:file={path}")
        self.assertTrue(line.startswith(f"mqttd: --authorizer aclfile: {path}: line 4"), line)


class HelpTests(SynchronousTestCase):
    """
    C{--help-auth} and C{--help-authorizer} list the installed plug-ins
    with their arguments.
    """

    def helpText(self, option: str) -> str:
        result = subprocess.run([TWISTD, "mqttd", option], capture_output=True, timeout=30,
                                cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.decode()

    def section(self, text: str, name: str) -> str:
        """
        A plug-in's entry: its C{name:} line and the indented lines after it.
        """
        match = re.search(rf"^{re.escape(name)}: .*\n((?:[ \t]+.*\n)*)", text, re.MULTILINE)
        self.assertIsNotNone(match, text)
        assert match is not None
        return match.group(0)

    def test_helpAuth(self) -> None:
        """C{passwd} (with C{file=PATH} and C{threaded=yes|no}) and C{anonymous} are listed."""
        text = self.helpText("--help-auth")
        passwd = self.section(text, "passwd")
        self.assertIn("file=PATH", passwd)
        self.assertIn("threaded=yes|no", passwd)
        self.section(text, "anonymous")

    def test_helpAuthorizer(self) -> None:
        """C{aclfile} (with C{file=PATH}) is listed."""
        self.assertIn("file=PATH", self.section(self.helpText("--help-authorizer"), "aclfile"))
