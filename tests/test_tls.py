"""
C{mtls:} listeners and the C{x509} authenticator, over real TLS on loopback
with certificates made by the tests (L{certs}): valid, expired, not yet
valid, from another CA, revoked by a CRL, none; identities as user names
and client ids; CRL and certificate reload on SIGHUP.  Clients are
paho-mqtt, C{mosquitto_pub} and a raw TLS socket speaking mqttd's codec.

Catalogue rows: AU-01..06, AU-12, AU-14.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from typing import Any

import paho.mqtt.client as mqtt
from certs import DAY, NOW, CertificateAuthority, Issued, cn
from clienthelpers import (
    TWISTD,
    WAIT,
    CodecClient,
    MqttdProcess,
    PahoClient,
    tempDirectory,
    uniqueName,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from twisted.cred.error import UnauthorizedLogin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from mqttd.auth import AuthenticatedIdentity, ClientIdRefused, credentialsFromConnect
from mqttd.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    PropertyId,
    Puback,
    Publish,
    encode,
)
from mqttd.interfaces import IX509Certificate
from mqttd.tls import MutualTLSServerEndpoint, ReloadableServerTLS, parseMutualTLS
from mqttd.x509 import CertificateChecker, certificateIdentity


class TLSWire(CodecClient):
    """
    A blocking MQTT client over TLS on a raw socket (mqttd's codec).

    @ivar error: the TLS error the handshake or a read ended with, if any.
    """

    def __init__(self, port: int, ca: str, client: Issued | None = None,
                 maximumVersion: ssl.TLSVersion | None = None,
                 level: int = MQTT_5) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(ca)
        if client is not None:
            context.load_cert_chain(client.certPath, client.keyPath)
        if maximumVersion is not None:
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.maximum_version = maximumVersion
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        super().__init__(None, level)
        try:
            self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        except OSError as e:
            self.error = e
            raw.close()

    def connect(self, clientId: str = "", cleanStart: bool = True, **kwargs: Any) -> Any:
        """
        Send CONNECT; the answer (or L{None} when the connection closed).
        """
        if self.sock is None:
            return None
        try:
            self.send(Connect(clientId, self.level, cleanStart, 60, **kwargs))
        except OSError as e:
            self.error = e
            return None
        return self.next()


class _Setup:
    """
    Certificates shared by a test class: a CA, a server certificate,
    client certificates, another CA.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.ca = CertificateAuthority(directory)
        self.otherCA = CertificateAuthority(directory, "another CA")
        self.server = self.ca.server()
        self.dev1 = self.ca.client("dev1")
        self.dev2 = self.ca.client("dev2")
        self.expired = self.ca.client("expired", notBefore=NOW - 10 * DAY,
                                      notAfter=NOW - DAY)
        self.notYet = self.ca.client("notyet", notBefore=NOW + DAY, notAfter=NOW + 10 * DAY)
        self.wrongCA = self.otherCA.client("dev1")
        self.revoked = self.ca.client("revoked")
        self.crl = self.ca.crl("crl.pem", [self.revoked.certificate])

    def mtls(self, *extra: str, crl: bool = True) -> str:
        fields = [
            "mtls:0", f"privateKey={self.server.keyPath}", f"certKey={self.server.certPath}",
            f"caCerts={self.ca.certPath}", "interface=127.0.0.1",
        ]
        if crl:
            fields.append(f"crlFile={self.crl}")
        return ":".join([*fields, *extra])


def _startBroker(args: list[str], count: int = 1, cwd: str | None = None) -> MqttdProcess:
    broker = MqttdProcess(args, cwd=cwd)
    try:
        broker.waitListening(count)
    except BaseException:
        broker.cleanup()
        raise
    return broker


def _paho(port: int, setup: _Setup, client: Issued | None, clientId: str | None = None,
          protocol: int = mqtt.MQTTv311) -> PahoClient:
    paho = PahoClient(port, clientId or uniqueName("tls"), protocol=protocol)
    paho.client.tls_set(
        ca_certs=setup.ca.certPath,
        certfile=client.certPath if client else None,
        keyfile=client.keyPath if client else None,
    )
    return paho


class MutualTLSListenerTests(SynchronousTestCase):
    """
    One broker with C{--listen mtls:...:crlFile=...} C{--auth x509} and an
    ACL that lets each device use C{devices/<its CN>/#}.
    """

    @classmethod
    def setUpClass(cls) -> None:
        cls.directory = tempfile.mkdtemp(prefix="mqttd-tls-")
        cls.setup = _Setup(cls.directory)
        acl = os.path.join(cls.directory, "acl")
        with open(acl, "w") as f:
            f.write("pattern readwrite devices/%u/#\n")
        cls.broker = _startBroker(["--listen", cls.setup.mtls(), "--auth", "x509",
                                   "--authorizer", f"aclfile:file={acl}"])
        cls.port = cls.broker.tcpPort()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.broker.cleanup()
        shutil.rmtree(cls.directory, ignore_errors=True)

    def tearDown(self) -> None:
        self.assertEqual(self.broker.tracebacks(), [])

    def refused(self, client: Issued | None) -> TLSWire:
        """
        Connect with C{client}'s certificate: the connection closes without
        a CONNACK (with TLS 1.3 the client may finish its handshake first).
        """
        wire = TLSWire(self.port, self.setup.ca.certPath, client)
        self.assertIsNone(wire.connect("refused"), "the broker answered the CONNECT")
        wire.close()
        return wire

    def test_listeningLine(self) -> None:
        """The listener's log line says it is an mtls listener."""
        self.assertTrue(self.broker.addresses[0].startswith("mtls:127.0.0.1:"),
                        self.broker.addresses)

    def test_validCertificate(self) -> None:
        """A client certificate from the CA: CONNACK 0x00, and the CN is the user name ACLs see."""
        wire = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev1)
        connack = wire.connect("d1")
        self.assertEqual((type(connack), connack.reasonCode), (Connack, 0))
        # Allowed for dev1 by the pattern; another device's topic is not.
        wire.send(Publish("devices/dev1/t", b"x", 1, packetId=1))
        self.assertEqual(wire.next(), Puback(1, 0x10))  # allowed: no matching subscribers
        wire.send(Publish("devices/dev2/t", b"x", 1, packetId=2))
        puback = wire.next()
        self.assertEqual((type(puback), puback.packetId, puback.reasonCode), (Puback, 2, 0x87))
        wire.close()

    def test_pahoV311AndV5(self) -> None:
        """paho-mqtt with a client certificate subscribes and receives (3.1.1 and 5.0)."""
        for protocol in (mqtt.MQTTv311, mqtt.MQTTv5):
            client = _paho(self.port, self.setup, self.setup.dev1, protocol=protocol)
            self.addCleanup(client.close)
            client.connect()
            self.assertEqual(client.connectReason, 0)
            client.subscribe(("devices/dev1/#", 1))
            client.publish("devices/dev1/p", b"hello", 1)
            self.assertEqual([m.payload for m in client.waitForMessages(1)], [b"hello"])
            client.disconnect()

    def test_mosquittoPub(self) -> None:
        """C{mosquitto_pub --cafile --cert --key} publishes through the mtls listener."""
        subscriber = _paho(self.port, self.setup, self.setup.dev2)
        self.addCleanup(subscriber.close)
        subscriber.connect()
        subscriber.subscribe(("devices/dev2/#", 1))
        result = subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1",
             "--cafile", self.setup.ca.certPath, "--cert", self.setup.dev2.certPath,
             "--key", self.setup.dev2.keyPath, "-t", "devices/dev2/cli", "-m", "from cli"],
            capture_output=True, timeout=WAIT, stdin=subprocess.DEVNULL,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual([m.payload for m in subscriber.waitForMessages(1)], [b"from cli"])

    def test_noCertificate(self) -> None:
        """AU-01: no client certificate where one is required: closed, no CONNACK."""
        self.refused(None)

    def test_expired(self) -> None:
        """AU-02: an expired certificate is refused."""
        self.refused(self.setup.expired)

    def test_notYetValid(self) -> None:
        """AU-02: a certificate valid only from tomorrow is refused."""
        self.refused(self.setup.notYet)

    def test_wrongCA(self) -> None:
        """AU-02: a certificate from another CA (same CN) is refused."""
        self.refused(self.setup.wrongCA)

    def test_revoked(self) -> None:
        """AU-03: a certificate the CRL revokes is refused."""
        self.refused(self.setup.revoked)

    def test_plainMQTTOnTLSPort(self) -> None:
        """AU-06: plain CONNECT bytes on the TLS port: closed without an MQTT answer; the broker lives."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT) as sock:
            sock.sendall(encode(Connect("plain", MQTT_3_1_1, True, 60), MQTT_3_1_1))
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        self.assertNotIn(b"\x20\x02", data[:2])
        wire = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev1)
        self.assertEqual(wire.connect("alive").reasonCode, 0)
        wire.close()

    def test_oldTLSRefused(self) -> None:
        """AU-14: a client offering at most TLS 1.1 does not get through the handshake."""
        try:
            wire = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev1,
                           maximumVersion=ssl.TLSVersion.TLSv1_1)
        except ssl.SSLError:
            return  # this OpenSSL will not even offer TLS 1.1: refused all the same
        self.assertIsNotNone(wire.error)
        wire.close()

    def test_renegotiationRefused(self) -> None:
        """AU-14: a TLS 1.2 client that asks to renegotiate is refused; the connection does not carry on with a new handshake."""
        from OpenSSL import SSL

        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_max_proto_version(SSL.TLS1_2_VERSION)
        context.load_verify_locations(self.setup.ca.certPath)
        context.use_certificate_file(self.setup.dev1.certPath)
        context.use_privatekey_file(self.setup.dev1.keyPath)
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        self.addCleanup(sock.close)
        # Blocking for pyOpenSSL, but every wait bounded by the kernel.
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(WAIT), 0))
        connection = SSL.Connection(context, sock)
        connection.set_connect_state()
        connection.do_handshake()
        self.assertEqual(connection.get_protocol_version_name(), "TLSv1.2")
        self.assertTrue(connection.renegotiate())
        refused = False
        try:
            connection.do_handshake()
            # The server's answer (an alert, or nothing) comes with the next read.
            connection.send(encode(Connect("reneg", MQTT_3_1_1, True, 60), MQTT_3_1_1))
            data = connection.recv(4096)
            refused = not data.startswith(b"\x20\x02\x00\x00")
        except (SSL.Error, OSError):
            # OpenSSL's "no renegotiation" alert.
            refused = True
        self.assertTrue(refused, "the broker renegotiated")

    def test_badIdentities(self) -> None:
        """AU-05: CNs with '+', '#', '/', NUL, or none at all: CONNACK 0x86."""
        names = [cn("a+b"), cn("a#b"), cn("a/b"), cn("a\x00b"),
                 x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "no CN")])]
        for index, subject in enumerate(names):
            issued = self.setup.ca.issue(f"odd-{index}", subject)
            wire = TLSWire(self.port, self.setup.ca.certPath, issued)
            connack = wire.connect(f"odd{index}")
            wire.close()
            self.assertIsInstance(connack, Connack, subject)
            self.assertEqual(connack.reasonCode, 0x86, subject)


class OptionalCertificateTests(SynchronousTestCase):
    """
    C{requireCertificate=no}: certificate or password on the mtls
    listener; a plain TCP listener with passwords beside it.
    """

    def setUp(self) -> None:
        directory = tempDirectory(self)
        self.setup = _Setup(directory)
        passwd = os.path.join(directory, "passwd")
        subprocess.run([os.path.join(os.path.dirname(TWISTD), "mqttd"), "passwd", "-c", "-b",
                        passwd, "dev1", "secret"], check=True, timeout=WAIT,
                       stdin=subprocess.DEVNULL, capture_output=True)
        self.broker = _startBroker(
            ["--listen", self.setup.mtls("requireCertificate=no"),
             "--listen", "tcp:0:interface=127.0.0.1",
             "--auth", "x509", "--auth", f"passwd:file={passwd}"], count=2)
        self.addCleanup(self.broker.cleanup)
        self.mtlsPort = self.broker.tcpPort(0)
        self.tcpPort = self.broker.tcpPort(1)

    def test_noIdentity(self) -> None:
        """AU-04: no certificate and no user name: v5 CONNACK 0x86, 3.1.1 return code 4."""
        for level, code in ((MQTT_5, 0x86), (MQTT_3_1_1, 4)):
            wire = TLSWire(self.mtlsPort, self.setup.ca.certPath, None, level=level)
            connack = wire.connect("nobody")
            wire.close()
            self.assertEqual((type(connack), connack.reasonCode), (Connack, code))

    def test_passwordWithoutCertificate(self) -> None:
        """No certificate, a good password: accepted."""
        wire = TLSWire(self.mtlsPort, self.setup.ca.certPath, None)
        connack = wire.connect("pw", username="dev1", password=b"secret")
        wire.close()
        self.assertEqual(connack.reasonCode, 0)

    def test_certificateSessionNotResumedByPassword(self) -> None:
        """AU-12: a persistent session made with certificate CN=dev1 is not the password user dev1's."""
        wire = TLSWire(self.mtlsPort, self.setup.ca.certPath, self.setup.dev1)
        connack = wire.connect("shared-id", properties={PropertyId.SESSION_EXPIRY_INTERVAL: 600})
        self.assertEqual(connack.reasonCode, 0)
        wire.send(Disconnect())
        wire.close()
        plain = PahoClient(self.tcpPort, "shared-id", protocol=mqtt.MQTTv5)
        self.addCleanup(plain.close)
        plain.client.username_pw_set("dev1", "secret")
        with self.assertRaises(AssertionError):
            plain.connect()
        self.assertEqual(plain.connectReason, 0x87)
        # The certificate holder gets its session back.
        wire = TLSWire(self.mtlsPort, self.setup.ca.certPath, self.setup.dev1)
        self.addCleanup(wire.close)
        connack = wire.connect("shared-id", cleanStart=False, properties={PropertyId.SESSION_EXPIRY_INTERVAL: 600})
        self.assertEqual((connack.reasonCode, connack.sessionPresent), (0, True))


class StalledHandshakeTests(SynchronousTestCase):
    """
    AU-06: a client that trickles its ClientHello is closed when the
    connect timeout (which covers the TLS handshake) runs out.
    """

    def test_slowClientHello(self) -> None:
        """One byte of ClientHello every 0.2 s: closed within the 1 s connect timeout (and well before the hello is done)."""
        setup = _Setup(tempDirectory(self))
        broker = _startBroker(["--listen", setup.mtls(), "--auth", "x509",
                               "--connect-timeout", "1"])
        self.addCleanup(broker.cleanup)
        # A real ClientHello, from a TLS client that never gets to send it.
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(setup.ca.certPath)
        tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with self.assertRaises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        self.assertGreater(len(hello), 100)
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", broker.tcpPort()), timeout=WAIT) as sock:
            closed = False
            for byte in hello[:50]:
                try:
                    sock.sendall(bytes([byte]))
                    sock.settimeout(0.2)
                    if sock.recv(4096) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                    break
        self.assertTrue(closed, "the broker waited for the whole ClientHello")
        self.assertLess(time.monotonic() - started, 50 * 0.2)
        self.assertEqual(broker.tracebacks(), [])


class ClientIdTests(SynchronousTestCase):
    """
    C{x509:clientid=require} and C{x509:clientid=replace}.
    """

    def start(self, mode: str) -> tuple[_Setup, int]:
        setup = _Setup(tempDirectory(self))
        broker = _startBroker(["--listen", setup.mtls(), "--auth", f"x509:clientid={mode}"])
        self.addCleanup(broker.cleanup)
        return setup, broker.tcpPort()

    def test_require(self) -> None:
        """The client id must be the CN: others get v5 0x85, 3.1.1 return code 2."""
        setup, port = self.start("require")
        for level, code in ((MQTT_5, 0x85), (MQTT_3_1_1, 2)):
            wire = TLSWire(port, setup.ca.certPath, setup.dev1, level=level)
            connack = wire.connect("not-dev1")
            wire.close()
            self.assertEqual((type(connack), connack.reasonCode), (Connack, code))
        wire = TLSWire(port, setup.ca.certPath, setup.dev1)
        self.assertEqual(wire.connect("dev1").reasonCode, 0)
        wire.close()

    def test_replace(self) -> None:
        """The CN replaces the client id; a v5 client is told in the CONNACK."""
        setup, port = self.start("replace")
        wire = TLSWire(port, setup.ca.certPath, setup.dev1)
        connack = wire.connect("whatever")
        wire.close()
        self.assertEqual(connack.reasonCode, 0)
        self.assertEqual(connack.properties[PropertyId.ASSIGNED_CLIENT_IDENTIFIER], "dev1")


class ReloadTests(SynchronousTestCase):
    """
    SIGHUP re-reads the listener's files: a CRL that now revokes a
    connected client disconnects it (AU-03); a new server certificate is
    used for new connections; a broken file changes nothing.
    """

    def setUp(self) -> None:
        self.setup = _Setup(tempDirectory(self))
        # Start with a CRL that revokes nobody.
        self.setup.ca.crl("crl.pem", [])
        self.broker = _startBroker(["--listen", self.setup.mtls(), "--auth", "x509"])
        self.addCleanup(self.broker.cleanup)
        self.port = self.broker.tcpPort()

    def reload(self, marker: str) -> None:
        count = self.broker.log().count(marker)
        self.broker.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while self.broker.log().count(marker) <= count:
            self.assertLess(time.monotonic(), deadline, self.broker.log())
            time.sleep(0.05)

    def alive(self, wire: TLSWire) -> bool:
        wire.send(Pingreq())
        return wire.next() == Pingresp()

    def test_revokedWhileConnected(self) -> None:
        """After a reload whose CRL revokes dev1, dev1 gets DISCONNECT 0x87 and cannot come back; dev2 stays."""
        dev1 = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev1)
        dev2 = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev2)
        self.addCleanup(dev1.close)
        self.addCleanup(dev2.close)
        self.assertEqual(dev1.connect("dev1").reasonCode, 0)
        self.assertEqual(dev2.connect("dev2").reasonCode, 0)
        self.setup.ca.crl("crl.pem", [self.setup.dev1.certificate])
        self.reload("configuration reloaded")
        disconnect = dev1.next()
        self.assertEqual((type(disconnect), disconnect.reasonCode), (Disconnect, 0x87))
        self.assertIsNone(dev1.next())
        self.assertTrue(self.alive(dev2))
        again = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev1)
        self.assertIsNone(again.connect("dev1"))
        again.close()
        self.assertEqual(self.broker.tracebacks(), [])

    def test_newServerCertificate(self) -> None:
        """A new server certificate in the same files is presented to new connections; old ones carry on."""
        before = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev1)
        self.addCleanup(before.close)
        self.assertEqual(before.connect("before").reasonCode, 0)
        oldSerial = x509.load_der_x509_certificate(
            before.sock.getpeercert(binary_form=True)).serial_number
        self.setup.ca.server()  # rewrites server.pem and server.key
        self.reload("configuration reloaded")
        after = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev2)
        self.addCleanup(after.close)
        self.assertEqual(after.connect("after").reasonCode, 0)
        newSerial = x509.load_der_x509_certificate(
            after.sock.getpeercert(binary_form=True)).serial_number
        self.assertNotEqual(newSerial, oldSerial)
        self.assertTrue(self.alive(before))

    def test_brokenCRLKeepsOld(self) -> None:
        """A CRL file that cannot be read: the reload fails, logged; everything stays as it was."""
        dev1 = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev1)
        self.addCleanup(dev1.close)
        self.assertEqual(dev1.connect("dev1").reasonCode, 0)
        with open(self.setup.crl, "wb") as f:
            f.write(b"-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n")
        self.reload("configuration reloaded with errors")
        self.assertIn("crlFile", self.broker.log())
        self.assertTrue(self.alive(dev1))
        other = TLSWire(self.port, self.setup.ca.certPath, self.setup.dev2)
        self.addCleanup(other.close)
        self.assertEqual(other.connect("dev2").reasonCode, 0)


class ParserTests(SynchronousTestCase):
    """
    C{mtls:} endpoint strings: what they need, and one-line errors.
    """

    def setUp(self) -> None:
        self.setup = _Setup(tempDirectory(self))
        self.good = {"privateKey": self.setup.server.keyPath,
                     "certKey": self.setup.server.certPath,
                     "caCerts": self.setup.ca.certPath}

    def error(self, *args: str, **kwargs: str) -> str:
        with self.assertRaises(ValueError) as caught:
            parseMutualTLS(None, *args, **kwargs)
        message = str(caught.exception)
        self.assertTrue(message.startswith("mtls: "), message)
        self.assertNotIn("\n", message)
        return message

    def test_endpoint(self) -> None:
        """Good arguments make a reloadable endpoint whose TLS requires certificates by default."""
        from twisted.internet import reactor

        endpoint = parseMutualTLS(reactor, "0", interface="127.0.0.1", **self.good)
        self.assertIsInstance(endpoint, MutualTLSServerEndpoint)
        self.assertTrue(endpoint.tls.requireCertificate)
        verifyObject(IX509Certificate, credentialsFromConnect(
            Connect("c", MQTT_5, True, 0), self.setup.dev1.certificate))

    def test_missingArguments(self) -> None:
        """A port and the three files are required."""
        self.assertIn("port", self.error(**self.good))
        for name in self.good:
            arguments = dict(self.good)
            del arguments[name]
            self.assertIn(name, self.error("8883", **arguments))

    def test_badValues(self) -> None:
        """Unknown arguments, bad ports, bad flags, bad interfaces."""
        self.assertIn("'bogus'", self.error("8883", bogus="1", **self.good))
        self.assertIn("port", self.error("88x3", **self.good))
        self.assertIn("port", self.error("70000", **self.good))
        self.assertIn("requireCertificate",
                      self.error("8883", requireCertificate="maybe", **self.good))
        self.assertIn("interface", self.error("8883", interface="not-an-ip", **self.good))

    def test_requireCertificateWords(self) -> None:
        """C{requireCertificate} takes every yes/no word (C{on}/C{off} too), in any case."""
        for word, value in (("yes", True), ("true", True), ("on", True), ("1", True),
                            ("NO", False), ("false", False), ("off", False), ("Off", False),
                            ("0", False)):
            endpoint = parseMutualTLS(None, "0", requireCertificate=word, **self.good)
            self.assertIs(endpoint.tls.requireCertificate, value, word)
        self.assertEqual(self.error("8883", requireCertificate="Maybe", **self.good),
                         "mtls: requireCertificate must be yes or no, not 'Maybe'")

    def test_fileErrors(self) -> None:
        """An unreadable file: C{ARGUMENT PATH: reason}, the path said once."""
        missing = os.path.join(self.setup.directory, "missing.pem")
        self.assertEqual(self.error("8883", **dict(self.good, caCerts=missing)),
                         f"mtls: caCerts {missing}: No such file or directory")

    def test_badFiles(self) -> None:
        """Missing files, non-PEM files, a key that does not match, a CRL from another CA."""
        missing = os.path.join(self.setup.directory, "missing.pem")
        self.assertIn("No such file", self.error("8883", **dict(self.good, caCerts=missing)))
        self.assertIn("no PEM certificate",
                      self.error("8883", **dict(self.good, certKey=self.setup.server.keyPath)))
        self.assertIn("does not match",
                      self.error("8883", **dict(self.good, privateKey=self.setup.dev1.keyPath)))
        foreign = self.setup.otherCA.crl("foreign.pem", [])
        self.assertIn("not signed by a CA", self.error("8883", crlFile=foreign, **self.good))

    def test_twistdOneLine(self) -> None:
        """C{twistd mqttd --listen mtls:...} with a missing file: exit 1 and one line."""
        missing = os.path.join(self.setup.directory, "missing.pem")
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "mqttd", "--auth", "x509", "--listen",
             f"mtls:0:privateKey={missing}:certKey={missing}:caCerts={missing}"],
            capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
            cwd=self.setup.directory,
        )
        stderr = result.stderr.decode()
        self.assertEqual(result.returncode, 1, stderr)
        self.assertEqual(len(stderr.splitlines()), 1, stderr)
        self.assertIn("mtls", stderr)
        self.assertIn(missing, stderr)


class CertificateIdentityTests(SynchronousTestCase):
    """
    L{certificateIdentity} and L{CertificateChecker} without a network.
    """

    def setUp(self) -> None:
        self.ca = CertificateAuthority(tempDirectory(self))

    def certificate(self, subject: x509.Name) -> x509.Certificate:
        return self.ca.issue(uniqueName("c"), subject).certificate

    def test_commonName(self) -> None:
        """C{identity=cn}: the common name; C{dn}: the RFC 4514 subject."""
        subject = cn("dev1", x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"))
        certificate = self.certificate(subject)
        self.assertEqual(certificateIdentity(certificate, "cn"), "dev1")
        self.assertEqual(certificateIdentity(certificate, "dn"), "CN=dev1,O=Acme")

    def test_refused(self) -> None:
        """AU-05: no CN, two CNs, '+', '#', '/', NUL, over 64 KiB: refused."""
        subjects = [
            x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")]),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a"),
                       x509.NameAttribute(NameOID.COMMON_NAME, "b")]),
            cn("a+b"), cn("#"), cn("a/b"), cn("a\x00"),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x" * 65536, _validate=False)]),
        ]
        for subject in subjects:
            with self.assertRaises(UnauthorizedLogin):
                certificateIdentity(self.certificate(subject), "cn")

    def test_invalidUTF8(self) -> None:
        """A CN whose UTF8String holds bytes that are not UTF-8 is refused."""
        der = self.certificate(cn("QQQQ")).public_bytes(serialization.Encoding.DER)
        broken = x509.load_der_x509_certificate(der.replace(b"QQQQ", b"\xff\xfe\xfd\xfc"))
        with self.assertRaises(UnauthorizedLogin):
            certificateIdentity(broken, "cn")

    def test_checker(self) -> None:
        """The checker's avatar id is an x509 identity; C{require} refuses another client id."""
        certificate = self.certificate(cn("dev1"))
        connect = Connect("other", MQTT_5, True, 0)
        credentials = credentialsFromConnect(connect, certificate)
        checker = CertificateChecker()
        self.assertEqual(self.successResultOf(checker.requestAvatarId(credentials)),
                         AuthenticatedIdentity("dev1", "x509"))
        self.assertEqual(
            self.successResultOf(CertificateChecker("cn", "replace").requestAvatarId(credentials)),
            AuthenticatedIdentity("dev1", "x509", "dev1"))
        self.failureResultOf(CertificateChecker("cn", "require").requestAvatarId(credentials),
                             ClientIdRefused)

    def test_reloadableServerTLSRefusesMismatch(self) -> None:
        """L{ReloadableServerTLS} is reloadable and keeps its context when a reload fails."""
        from mqttd.interfaces import IReloadable
        from mqttd.tls import TLSConfigurationError

        server = self.ca.server()
        tls = ReloadableServerTLS(server.keyPath, server.certPath, self.ca.certPath)
        verifyObject(IReloadable, tls)
        before = tls._context
        with open(server.keyPath, "wb") as f:
            f.write(b"garbage")
        self.assertRaises(TLSConfigurationError, tls.reload)
        self.assertIs(tls._context, before)


class DocsRecipeTests(SynchronousTestCase):
    """
    docs/tls.md's OpenSSL recipe makes files an mtls listener and
    C{mosquitto_pub} work with.
    """

    def test_recipe(self) -> None:
        """The recipe runs; the broker starts on its files; its dev1 certificate publishes; the CN is the user name."""
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, "docs", "tls.md"), encoding="utf-8") as f:
            text = f.read()
        block = text.split("<!-- tls-recipe", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
        directory = tempDirectory(self)
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=directory,
                                capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        acl = os.path.join(directory, "acl")
        with open(acl, "w") as f:
            f.write("pattern readwrite devices/%u/#\n")
        broker = _startBroker([
            "--listen", "mtls:0:privateKey=server.key:certKey=server.pem:caCerts=ca.pem"
                        ":interface=127.0.0.1",
            "--auth", "x509", "--authorizer", f"aclfile:file={acl}"], cwd=directory)
        self.addCleanup(broker.cleanup)
        port = broker.tcpPort()
        subscriber = PahoClient(port, uniqueName("doc"))
        self.addCleanup(subscriber.close)
        subscriber.client.tls_set(ca_certs=os.path.join(directory, "ca.pem"),
                                  certfile=os.path.join(directory, "dev1.pem"),
                                  keyfile=os.path.join(directory, "dev1.key"))
        subscriber.connect()
        # Granted by the pattern only if the user name is the CN, dev1.
        self.assertEqual(subscriber.subscribe(("devices/dev1/#", 1)), [1])
        self.assertEqual(subscriber.subscribe(("devices/dev2/#", 1)), [0x80])
        published = subprocess.run(
            ["mosquitto_pub", "-h", "localhost", "-p", str(port), "-q", "1",
             "--cafile", "ca.pem", "--cert", "dev1.pem", "--key", "dev1.key",
             "-t", "devices/dev1/status", "-m", "online"],
            capture_output=True, timeout=WAIT, stdin=subprocess.DEVNULL, cwd=directory,
        )
        self.assertEqual(published.returncode, 0, published.stderr)
        self.assertEqual([(m.topic, m.payload) for m in subscriber.waitForMessages(1)],
                         [("devices/dev1/status", b"online")])
