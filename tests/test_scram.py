"""
Tests for the C{SCRAM-SHA-256} enhanced authentication method
(L{mqttd.scram}), its credential file, the C{scram} plug-in and the
C{mqttd scram} command.

The client side is written here from RFC 5802 section 3 (with SHA-256, RFC
7677), without the server's helpers, and the expected bytes come from RFC
7677's test vector; reason codes from the MQTT 5.0 specification (section
4.12) and docs/mqtt5.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import os
import re
import signal
import socket
import sys
import time
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import mqttd.scram
from mqttd import cli
from mqttd.auth import AuthContinue, AuthFailure, AuthSuccess
from mqttd.codec import (
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Publish,
    Suback,
    Subscribe,
    SubscriptionRequest,
)
from mqttd.codec.properties import PropertyId as P
from mqttd.interfaces import IAuthExchange, IEnhancedAuthenticator, IReloadable
from mqttd.plugin import AUTH, PluginError, availablePlugins, makePlugin
from mqttd.plugins import txmqttd_plugin
from mqttd.scram import (
    ScramAuthenticator,
    ScramCredential,
    ScramFileError,
    makeCredential,
    parseCredentialFile,
    readCredentialFile,
    saslprep,
)
from mqttd.testing import InMemoryBroker, MQTTTestClient
from tests.brokerprocess import BrokerProcess
from tests.clienthelpers import CodecClient, tempDirectory

METHOD = "SCRAM-SHA-256"

# RFC 7677 section 3.
RFC_USER, RFC_PASSWORD = "user", "pencil"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

BAD_CREDENTIALS = AuthFailure(0x86, "bad user name or password")
SERVER_FIRST = re.compile(rb"r=([!-+\--~]+),s=([A-Za-z0-9+/=]+),i=(\d+)")


# -- an independent SCRAM-SHA-256 client (RFC 5802 section 3) ------------------------


def _hmacSha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


class ScramClient:
    """
    The client side of SCRAM-SHA-256, from the RFC.

    @ivar serverVerified: whether the server-final message proved the
        server knows the password's ServerKey.
    """

    def __init__(self, user: str, password: str, nonce: str | None = None,
                 gs2Header: str = "n,,") -> None:
        self.user = user
        self.password = password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.gs2Header = gs2Header
        escaped = user.replace("=", "=3D").replace(",", "=2C")
        self.bare = f"n={escaped},r={self.nonce}"
        self.serverVerified = False

    def first(self) -> bytes:
        return (self.gs2Header + self.bare).encode("utf-8")

    def final(self, serverFirst: bytes, channelBinding: str | None = None,
              nonce: str | None = None, password: str | None = None) -> bytes:
        """
        The client-final message (optionally with a wrong channel binding,
        nonce or password, to test the server).
        """
        attributes = dict(a.split("=", 1) for a in serverFirst.decode().split(","))
        combined = attributes["r"]
        assert combined.startswith(self.nonce), (combined, self.nonce)
        salt = base64.b64decode(attributes["s"])
        iterations = int(attributes["i"])
        secret = (password if password is not None else self.password).encode("utf-8")
        salted = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations)
        clientKey = _hmacSha256(salted, b"Client Key")
        storedKey = hashlib.sha256(clientKey).digest()
        if channelBinding is None:
            channelBinding = base64.b64encode(self.gs2Header.encode()).decode()
        withoutProof = f"c={channelBinding},r={nonce if nonce is not None else combined}"
        authMessage = f"{self.bare},{serverFirst.decode()},{withoutProof}".encode()
        clientSignature = _hmacSha256(storedKey, authMessage)
        proof = bytes(a ^ b for a, b in zip(clientKey, clientSignature, strict=True))
        self._serverSignature = _hmacSha256(_hmacSha256(salted, b"Server Key"), authMessage)
        return f"{withoutProof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, serverFinal: bytes | None) -> bool:
        expected = b"v=" + base64.b64encode(self._serverSignature)
        self.serverVerified = serverFinal is not None and hmac.compare_digest(
            serverFinal, expected
        )
        return self.serverVerified


def writeFile(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def readFile(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def rfcCredential() -> ScramCredential:
    return makeCredential(RFC_PASSWORD, 4096, RFC_SALT)


def line(user: str, credential: ScramCredential) -> str:
    return f"{user}:{credential.encode()}\n"


#: Credentials made once (PBKDF2 with 4096 iterations costs a few ms).
ALICE = makeCredential("alice-secret")
BOB = makeCredential("b0b")


def authenticator(**users: ScramCredential) -> ScramAuthenticator:
    return ScramAuthenticator(credentials=users or {"alice": ALICE, "bob": BOB})


def run(auth: ScramAuthenticator, client: ScramClient, **finalArgs: Any) -> Any:
    """
    A whole exchange, directly against the authenticator.
    """
    exchange = auth.newExchange("c", None, False)
    first = exchange.step(client.first())
    assert isinstance(first, AuthContinue), first
    result = exchange.step(client.final(first.data, **finalArgs))
    if isinstance(result, AuthSuccess):
        client.verify(result.data)
    return result


# -- the mechanism --------------------------------------------------------------------


class TestVectorTests(SynchronousTestCase):
    """
    RFC 7677 section 3's exchange, byte for byte.
    """

    def test_rfc7677(self) -> None:
        """With the RFC's salt, iterations and server nonce, every server message is the RFC's."""
        auth = ScramAuthenticator(credentials={RFC_USER: rfcCredential()},
                                  nonceFactory=lambda: RFC_SERVER_NONCE)
        exchange = auth.newExchange("c", None, False)
        self.assertEqual(exchange.step(RFC_CLIENT_FIRST), AuthContinue(RFC_SERVER_FIRST))
        result = exchange.step(RFC_CLIENT_FINAL)
        assert isinstance(result, AuthSuccess), result
        self.assertEqual(result.data, RFC_SERVER_FINAL)
        self.assertEqual(result.identity.username, "user")
        # The next message after success is refused.
        self.assertIsInstance(exchange.step(RFC_CLIENT_FINAL), AuthFailure)

    def test_rfc7677Client(self) -> None:
        """The test client, given the RFC's client nonce, sends the RFC's client-final message."""
        client = ScramClient(RFC_USER, RFC_PASSWORD, nonce="rOprNGfwEbeRWgbNEkqO")
        self.assertEqual(client.first(), RFC_CLIENT_FIRST)
        self.assertEqual(client.final(RFC_SERVER_FIRST), RFC_CLIENT_FINAL)
        self.assertTrue(client.verify(RFC_SERVER_FINAL))

    def test_credentialKeys(self) -> None:
        """The stored keys are H(HMAC(SaltedPassword, "Client Key")) and HMAC(SaltedPassword, "Server Key")."""
        salted = hashlib.pbkdf2_hmac("sha256", b"pencil", RFC_SALT, 4096)
        credential = rfcCredential()
        self.assertEqual(credential.storedKey,
                         hashlib.sha256(_hmacSha256(salted, b"Client Key")).digest())
        self.assertEqual(credential.serverKey, _hmacSha256(salted, b"Server Key"))
        self.assertEqual((credential.iterations, credential.salt), (4096, RFC_SALT))

    def test_interfaces(self) -> None:
        """The authenticator and its exchanges provide their interfaces; the method is SCRAM-SHA-256."""
        auth = authenticator()
        self.assertTrue(verifyObject(IEnhancedAuthenticator, auth))
        self.assertTrue(verifyObject(IReloadable, auth))
        self.assertTrue(verifyObject(IAuthExchange, auth.newExchange("c", None, True)))
        self.assertEqual(auth.method, METHOD)

    def test_randomServerNonce(self) -> None:
        """By default the server nonce is random, printable without ',', and extends the client's."""
        auth = authenticator()
        nonces = set()
        for _ in range(3):
            first = auth.newExchange("c", None, False).step(b"n,,n=alice,r=abc")
            assert isinstance(first, AuthContinue)
            match = SERVER_FIRST.fullmatch(first.data)
            assert match is not None, first.data
            self.assertTrue(match.group(1).startswith(b"abc"))
            self.assertGreaterEqual(len(match.group(1)), 3 + 16)
            nonces.add(match.group(1))
        self.assertEqual(len(nonces), 3)


class ExchangeTests(SynchronousTestCase):
    """
    Whole exchanges against the authenticator.
    """

    def setUp(self) -> None:
        self.auth = authenticator()

    def test_success(self) -> None:
        """The right password: success as the user, with a server signature the client accepts."""
        client = ScramClient("alice", "alice-secret")
        result = run(self.auth, client)
        assert isinstance(result, AuthSuccess), result
        self.assertEqual(result.identity.username, "alice")
        self.assertTrue(client.serverVerified)

    def test_identityLikePasswordFile(self) -> None:
        """The identity has the same session key as the passwd plug-in's for the same user."""
        result = run(self.auth, ScramClient("alice", "alice-secret"))
        self.assertEqual(result.identity.key, ("user", b"alice"))

    def test_wrongPassword(self) -> None:
        """A wrong password fails at the proof: 0x86."""
        self.assertEqual(run(self.auth, ScramClient("alice", "nope")), BAD_CREDENTIALS)
        self.assertEqual(run(self.auth, ScramClient("alice", "alice-secret"),
                             password="b0b"), BAD_CREDENTIALS)

    def test_unknownUserLooksKnown(self) -> None:
        """An unknown user gets a server-first message of the same shape (salt length, iterations), the same salt each time, and the same failure as a wrong password."""
        def serverFirst(user: str) -> re.Match[bytes]:
            result = self.auth.newExchange("c", None, False).step(
                f"n,,n={user},r=xyz".encode())
            assert isinstance(result, AuthContinue)
            match = SERVER_FIRST.fullmatch(result.data)
            assert match is not None, result.data
            return match

        known = serverFirst("alice")
        unknown = serverFirst("mallory")
        self.assertEqual(len(base64.b64decode(unknown.group(2))),
                         len(base64.b64decode(known.group(2))))
        self.assertEqual(unknown.group(3), known.group(3))
        self.assertEqual(serverFirst("mallory").group(2), unknown.group(2))
        self.assertNotEqual(serverFirst("eve").group(2), unknown.group(2))
        self.assertEqual(run(self.auth, ScramClient("mallory", "x")), BAD_CREDENTIALS)

    def test_unknownUserSameWork(self) -> None:
        """An unknown user costs the server the same HMACs and constant-time comparisons as a wrong password."""
        calls: list[str] = []
        realHmac = mqttd.scram._hmac
        realCompare = hmac.compare_digest

        def countingHmac(key: bytes, message: bytes) -> bytes:
            calls.append("hmac")
            return realHmac(key, message)

        def countingCompare(a: Any, b: Any) -> bool:
            calls.append("compare")
            return realCompare(a, b)

        self.patch(mqttd.scram, "_hmac", countingHmac)
        self.patch(hmac, "compare_digest", countingCompare)
        run(self.auth, ScramClient("alice", "wrong"))
        known = list(calls)
        del calls[:]
        run(self.auth, ScramClient("mallory", "wrong"))
        self.assertIn("compare", known)
        self.assertEqual(calls, known)

    def test_iterationsFromTheFile(self) -> None:
        """The server-first message carries the user's own salt and iteration count."""
        carol = makeCredential("c", 5000, b"0123456789")
        auth = authenticator(carol=carol)
        result = auth.newExchange("c", None, False).step(b"n,,n=carol,r=n")
        assert isinstance(result, AuthContinue)
        self.assertTrue(result.data.endswith(b",s=MDEyMzQ1Njc4OQ==,i=5000"))
        self.assertIsInstance(run(auth, ScramClient("carol", "c")), AuthSuccess)

    def test_escapedUserName(self) -> None:
        """'=2C' and '=3D' in the client's name are ',' and '=' (RFC 5802 section 5.1)."""
        auth = authenticator(**{"a,b=c": ALICE})
        client = ScramClient("a,b=c", "alice-secret")
        self.assertIn(b"n=a=2Cb=3Dc,", client.first())
        result = run(auth, client)
        assert isinstance(result, AuthSuccess), result
        self.assertEqual(result.identity.username, "a,b=c")

    def test_userNamePrepared(self) -> None:
        """The received name goes through SASLprep: a soft hyphen is dropped, U+2168 becomes 'IX'."""
        auth = authenticator(IX=ALICE)
        for sent in ("I\u00adX", "\u2168", "IX"):
            result = run(auth, ScramClient(sent, "alice-secret"))
            assert isinstance(result, AuthSuccess), (sent, result)
            self.assertEqual(result.identity.username, "IX")

    def test_unpreparableUserName(self) -> None:
        """A name SASLprep prohibits (a control character, bad bidi text) is refused at once: 0x87."""
        for user in ("al\u0007ice", "\u0627\u0031", "\u00ad"):
            result = self.auth.newExchange("c", None, False).step(
                f"n,,n={user},r=abc".encode())
            assert isinstance(result, AuthFailure), (user, result)
            self.assertEqual(result.reasonCode, 0x87)

    def test_nonceMismatch(self) -> None:
        """A client-final nonce other than the combined one: refused (0x87), even with a valid proof for it."""
        client = ScramClient("alice", "alice-secret", nonce="abc")
        for nonce in ("abc", "abcX", "xyz"):
            exchange = self.auth.newExchange("c", None, False)
            first = exchange.step(client.first())
            assert isinstance(first, AuthContinue)
            result = exchange.step(client.final(first.data, nonce=nonce))
            assert isinstance(result, AuthFailure), (nonce, result)
            self.assertEqual(result.reasonCode, 0x87)
            self.assertIn("nonce", result.reason)

    def test_channelBindingFlags(self) -> None:
        """'n' and 'y' without channel binding are accepted with the matching c= (biws / eSws); a c= that does not match the GS2 header is refused."""
        for header, binding in (("n,,", "biws"), ("y,,", "eSws"), ("n,a=alice,", None)):
            client = ScramClient("alice", "alice-secret", gs2Header=header)
            result = run(self.auth, client)
            assert isinstance(result, AuthSuccess), (header, result)
            if binding is not None:
                self.assertIn(f"c={binding},".encode(), client.final(
                    self.auth.newExchange("c", None, False).step(client.first()).data))
        for header, binding in (("n,,", "eSws"), ("y,,", "biws"), ("n,,", "")):
            result = run(self.auth, ScramClient("alice", "alice-secret", gs2Header=header),
                         channelBinding=binding)
            assert isinstance(result, AuthFailure), (header, binding, result)
            self.assertEqual(result.reasonCode, 0x87)

    def test_channelBindingRequested(self) -> None:
        """'p=...' asks for channel binding, which is not offered: 0x8C (Bad authentication method)."""
        result = self.auth.newExchange("c", None, False).step(
            b"p=tls-server-end-point,,n=alice,r=abc")
        self.assertEqual(result, AuthFailure(0x8C, "channel binding is not supported"))

    def test_authorizationIdentity(self) -> None:
        """An authorization identity other than the user is refused."""
        result = self.auth.newExchange("c", None, False).step(b"n,a=bob,n=alice,r=abc")
        assert isinstance(result, AuthFailure)
        self.assertEqual(result.reasonCode, 0x87)

    def test_malformedClientFirst(self) -> None:
        """Malformed client-first messages fail with 0x87 before any lookup."""
        for data in (
            None, b"", b"\xff\xfe", b"n,,n=alice,r=a\x00b", b"n=alice,r=abc",
            b"x,,n=alice,r=abc", b"n,x=y,n=alice,r=abc", b"n,,r=abc,n=alice",
            b"n,,n=,r=abc", b"n,,n=alice,r=", b"n,,n=alice", b"n,,n=alice,r=a b",
            b"n,,n=al=2Xice,r=abc", b"n,,n=alice=,r=abc", b"n,,n=alice,r=abc,x",
            b"n,,n=alice,r=abc,1=x", b"n,,m=ext,n=alice,r=abc", b"n,,n=alice,r=ab\xc3\xa9",
        ):
            result = authenticator().newExchange("c", None, False).step(data)
            assert isinstance(result, AuthFailure), (data, result)
            self.assertEqual(result.reasonCode, 0x87, data)

    def test_extensionsIgnored(self) -> None:
        """Unknown optional extensions after the nonce are allowed (and part of the AuthMessage)."""
        exchange = self.auth.newExchange("c", None, False)
        client = ScramClient("alice", "alice-secret", nonce="abc")
        client.bare += ",x=future"
        first = exchange.step(client.first())
        assert isinstance(first, AuthContinue), first
        self.assertIsInstance(exchange.step(client.final(first.data)), AuthSuccess)

    def test_malformedClientFinal(self) -> None:
        """Malformed client-final messages fail with 0x87."""
        client = ScramClient("alice", "alice-secret", nonce="abc")
        exchange = self.auth.newExchange("c", None, False)
        first = exchange.step(client.first())
        assert isinstance(first, AuthContinue)
        good = client.final(first.data).decode()
        withoutProof, proof = good.rsplit(",p=", 1)
        nonce = withoutProof.split(",r=")[1]
        shortProof = base64.b64encode(base64.b64decode(proof)[:31]).decode()
        for data in (
            None, b"", b"\xff", withoutProof.encode(), f"r={nonce},c=biws,p={proof}".encode(),
            f"c=biws,p={proof}".encode(), f"c=biws,r={nonce},p=!!!!".encode(),
            f"c=biws,r={nonce},p={shortProof}".encode(), f"c=b!ws,r={nonce},p={proof}".encode(),
            f"c=biws,r={nonce},p={proof},x=1".encode(), f"c=biws,r={nonce},7,p={proof}".encode(),
        ):
            exchange = self.auth.newExchange("c", None, False)
            exchange.step(client.first())
            result = exchange.step(data)
            assert isinstance(result, AuthFailure), (data, result)
            self.assertEqual(result.reasonCode, 0x87, data)

    def test_onlyTwoSteps(self) -> None:
        """After a failure, the exchange refuses anything more."""
        exchange = self.auth.newExchange("c", None, False)
        self.assertIsInstance(exchange.step(b"garbage"), AuthFailure)
        self.assertIsInstance(exchange.step(b"n,,n=alice,r=abc"), AuthFailure)


class SaslprepTests(SynchronousTestCase):
    """
    SASLprep, with RFC 4013 section 3's examples.
    """

    def test_rfc4013Examples(self) -> None:
        """The RFC's table: soft hyphen removed, case kept, NFKC applied; a control character and bad bidi text prohibited."""
        self.assertEqual(saslprep("I\u00adX"), "IX")
        self.assertEqual(saslprep("user"), "user")
        self.assertEqual(saslprep("USER"), "USER")
        self.assertEqual(saslprep("\u00aa"), "a")
        self.assertEqual(saslprep("\u2168"), "IX")
        self.assertRaises(ValueError, saslprep, "\u0007")
        self.assertRaises(ValueError, saslprep, "\u0627\u0031")

    def test_spacesAndUnassigned(self) -> None:
        """Non-ASCII spaces map to a space; unassigned code points only in queries."""
        self.assertEqual(saslprep("a\u2003b"), "a b")
        self.assertRaises(ValueError, saslprep, "a\u0221")
        self.assertEqual(saslprep("a\u0221", allowUnassigned=True), "a\u0221")
        self.assertRaises(ValueError, saslprep, "\ue000")

    def test_passwordPrepared(self) -> None:
        """Credentials are made from the prepared password; an unpreparable password is refused."""
        self.assertEqual(makeCredential("I\u00adX", 4096, b"s"), makeCredential("IX", 4096, b"s"))
        self.assertRaises(ValueError, makeCredential, "pass\u0000word")
        self.assertRaises(ValueError, makeCredential, "pw", 4095)


# -- through the broker -------------------------------------------------------------------


def scramProps(data: bytes | None) -> dict[int, Any]:
    props: dict[int, Any] = {P.AUTHENTICATION_METHOD: METHOD}
    if data is not None:
        props[P.AUTHENTICATION_DATA] = data
    return props


class BrokerTests(SynchronousTestCase):
    """
    The exchange over the AUTH flow of an in-memory broker (MQTT 5.0
    section 4.12).
    """

    def setUp(self) -> None:
        self.env = InMemoryBroker()
        self.auth = authenticator()
        self.env.factory.enhancedAuthenticators[METHOD] = self.auth

    def start(self, client: ScramClient, clientId: str = "sc") -> tuple[MQTTTestClient, Any]:
        """
        CONNECT with the client-first message; return the MQTT client and
        the server-first message (or what came instead).
        """
        mqtt = self.env.openClient(MQTT_5, autoAck=True)
        mqtt.connect(clientId, properties=scramProps(client.first()))
        self.env.flush()
        packets = mqtt.take()
        self.assertEqual(len(packets), 1, packets)
        [packet] = packets
        if isinstance(packet, Auth):
            self.assertEqual(packet.reasonCode, 0x18)
            self.assertEqual(packet.properties[P.AUTHENTICATION_METHOD], METHOD)
            return mqtt, packet.properties[P.AUTHENTICATION_DATA]
        return mqtt, packet

    def answer(self, mqtt: MQTTTestClient, data: bytes) -> list[Any]:
        mqtt.send(Auth(0x18, scramProps(data)))
        self.env.flush()
        return mqtt.take()

    def connected(self, user: str = "alice", password: str = "alice-secret",
                  clientId: str = "sc") -> MQTTTestClient:
        client = ScramClient(user, password)
        mqtt, serverFirst = self.start(client, clientId)
        [connack] = self.answer(mqtt, client.final(serverFirst))
        assert isinstance(connack, Connack), connack
        self.assertEqual(connack.reasonCode, 0)
        self.assertEqual(connack.properties[P.AUTHENTICATION_METHOD], METHOD)
        self.assertTrue(client.verify(connack.properties[P.AUTHENTICATION_DATA]))
        return mqtt

    def refusal(self, packets: list[Any]) -> Connack:
        self.assertEqual(len(packets), 1, packets)
        [connack] = packets
        assert isinstance(connack, Connack), connack
        return connack

    def test_fullExchange(self) -> None:
        """CONNECT with client-first, AUTH 0x18 server-first, AUTH 0x18 client-final, CONNACK 0 with server-final the client verifies; then the client is the user and the connection works."""
        mqtt = self.connected()
        server = self.env.serverFor(mqtt)
        self.assertEqual(server.identity.username, "alice")
        self.assertEqual(server.clientInfo.username, "alice")
        mqtt.subscribe("t", 1)
        self.env.flush()
        self.assertIsInstance(mqtt.take()[0], Suback)
        mqtt.publish("t", b"hi", qos=1)
        self.env.flush()
        self.assertEqual([p.payload for p in mqtt.publishes()], [b"hi"])

    def test_rfcVectorThroughBroker(self) -> None:
        """The RFC 7677 exchange through the broker: the AUTH and CONNACK carry the RFC's bytes."""
        self.env.factory.enhancedAuthenticators[METHOD] = ScramAuthenticator(
            credentials={RFC_USER: rfcCredential()}, nonceFactory=lambda: RFC_SERVER_NONCE)
        mqtt = self.env.openClient(MQTT_5)
        mqtt.connect("rfc", properties=scramProps(RFC_CLIENT_FIRST))
        self.env.flush()
        self.assertEqual(mqtt.take(), [Auth(0x18, scramProps(RFC_SERVER_FIRST))])
        [connack] = self.answer(mqtt, RFC_CLIENT_FINAL)
        assert isinstance(connack, Connack)
        self.assertEqual((connack.reasonCode, connack.properties[P.AUTHENTICATION_DATA]),
                         (0, RFC_SERVER_FINAL))

    def test_wrongPassword(self) -> None:
        """A wrong password: CONNACK 0x86 and close; no session."""
        client = ScramClient("alice", "wrong")
        mqtt, serverFirst = self.start(client)
        connack = self.refusal(self.answer(mqtt, client.final(serverFirst)))
        self.assertEqual(connack.reasonCode, 0x86)
        self.assertTrue(mqtt.closed)
        self.assertEqual(self.env.broker.listSessions(), [])

    def test_unknownUserSameShape(self) -> None:
        """An unknown user: the same AUTH shape and the very same CONNACK as a wrong password."""
        answers = []
        for user in ("alice", "mallory"):
            client = ScramClient(user, "wrong")
            mqtt, serverFirst = self.start(client)
            self.assertIsNotNone(SERVER_FIRST.fullmatch(serverFirst), serverFirst)
            answers.append(self.answer(mqtt, client.final(serverFirst)))
            self.assertTrue(mqtt.closed)
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(self.refusal(answers[0]).reasonCode, 0x86)

    def test_malformedClientFirst(self) -> None:
        """Malformed client-first data, or none: CONNACK 0x87, no AUTH."""
        for data in (b"alice", None, b"n,,n=alice"):
            mqtt = self.env.openClient(MQTT_5)
            mqtt.connect("m", properties=scramProps(data))
            self.env.flush()
            self.assertEqual(self.refusal(mqtt.take()).reasonCode, 0x87, data)
            self.assertTrue(mqtt.closed)

    def test_channelBindingRequested(self) -> None:
        """A client asking for channel binding: CONNACK 0x8C."""
        mqtt = self.env.openClient(MQTT_5)
        mqtt.connect("m", properties=scramProps(b"p=tls-unique,,n=alice,r=abc"))
        self.env.flush()
        self.assertEqual(self.refusal(mqtt.take()).reasonCode, 0x8C)

    def test_malformedClientFinal(self) -> None:
        """Malformed client-final data: CONNACK 0x87."""
        mqtt, _ = self.start(ScramClient("alice", "alice-secret"))
        self.assertEqual(self.refusal(self.answer(mqtt, b"c=biws")).reasonCode, 0x87)

    def test_nonceMismatch(self) -> None:
        """A client-final with another nonce: CONNACK 0x87."""
        client = ScramClient("alice", "alice-secret")
        mqtt, serverFirst = self.start(client)
        final = client.final(serverFirst, nonce=client.nonce + "forged")
        self.assertEqual(self.refusal(self.answer(mqtt, final)).reasonCode, 0x87)

    def reauthenticate(self, mqtt: MQTTTestClient, client: ScramClient) -> list[Any]:
        mqtt.send(Auth(0x19, scramProps(client.first())))
        self.env.flush()
        [auth] = mqtt.take()
        assert isinstance(auth, Auth), auth
        self.assertEqual(auth.reasonCode, 0x18)
        return self.answer(mqtt, client.final(auth.properties[P.AUTHENTICATION_DATA]))

    def test_reauthentication(self) -> None:
        """AUTH 0x19 with client-first: AUTH 0x18 server-first, then AUTH 0x00 with the server-final message; the connection goes on."""
        mqtt = self.connected()
        client = ScramClient("alice", "alice-secret")
        [done] = self.reauthenticate(mqtt, client)
        assert isinstance(done, Auth), done
        self.assertEqual(done.reasonCode, 0x00)
        self.assertEqual(done.properties[P.AUTHENTICATION_METHOD], METHOD)
        self.assertTrue(client.verify(done.properties[P.AUTHENTICATION_DATA]))
        self.assertFalse(mqtt.closed)
        self.assertEqual(self.env.serverFor(mqtt).identity.username, "alice")
        mqtt.publish("t", b"still", qos=1)
        self.env.flush()
        self.assertFalse(any(isinstance(p, Disconnect) for p in mqtt.take()))
        self.assertFalse(mqtt.closed)

    def test_reauthenticationFailure(self) -> None:
        """A re-authentication with a wrong password: DISCONNECT 0x87 (0x86 is CONNACK-only) and close."""
        mqtt = self.connected()
        packets = self.reauthenticate(mqtt, ScramClient("alice", "wrong"))
        self.assertIsInstance(packets[-1], Disconnect)
        self.assertEqual(packets[-1].reasonCode, 0x87)
        self.assertTrue(mqtt.closed)

    def test_reauthenticationMalformed(self) -> None:
        """A malformed re-authentication: DISCONNECT 0x87 and close."""
        mqtt = self.connected()
        mqtt.send(Auth(0x19, scramProps(b"rubbish")))
        self.env.flush()
        packets = mqtt.take()
        self.assertIsInstance(packets[-1], Disconnect)
        self.assertEqual(packets[-1].reasonCode, 0x87)
        self.assertTrue(mqtt.closed)


# -- the credential file and the plug-in -------------------------------------------------


class CredentialFileTests(SynchronousTestCase):
    """
    The file format: one user:iterations:salt:StoredKey:ServerKey per line,
    any bad line refused with its number.
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.path = os.path.join(self.directory, "scram")

    def test_roundTrip(self) -> None:
        """Written lines read back; comments, blank lines and CRLF are fine; order is kept."""
        text = "# users\n\n" + line("bob", BOB) + line("alice", ALICE).replace("\n", "\r\n")
        users = parseCredentialFile(text)
        self.assertEqual(users, {"bob": BOB, "alice": ALICE})
        self.assertEqual(list(users), ["bob", "alice"])
        self.assertEqual(mqttd.scram.formatCredentialFile(users),
                         line("bob", BOB) + line("alice", ALICE))

    def test_rfcLine(self) -> None:
        """The RFC 7677 user's line."""
        c = rfcCredential()
        self.assertEqual(c.encode().split(":")[:2], ["4096", "W22ZaJ0SNY7soEsUEjb6gQ=="])

    def test_badLines(self) -> None:
        """Each kind of damage is refused, naming line 3 (never read as a user without a password)."""
        good = ALICE.encode()
        salt, stored, server = good.split(":")[1:]
        short = base64.b64encode(b"x" * 31).decode()
        for bad, fragment in (
            ("carol", "fields"),
            ("carol:", "fields"),
            (f"carol:{good}:extra", "fields"),
            (f":{good}", "empty user name"),
            (f"carol:abc:{salt}:{stored}:{server}", "iteration"),
            (f"carol:4095:{salt}:{stored}:{server}", "iteration"),
            (f"carol:-4096:{salt}:{stored}:{server}", "iteration"),
            (f"carol:4096:{salt}!:{stored}:{server}", "base64"),
            (f"carol:4096::{stored}:{server}", "empty salt"),
            (f"carol:4096:{salt}:{short}:{server}", "32 bytes"),
            (f"carol:4096:{salt}:{stored}:", "32 bytes"),
            (f"alice:{good}", "twice"),
            (f"\u00aacarol:{good}", "SASLprep"),
            (f"car\u0007ol:{good}", "cannot be used"),
        ):
            text = "# head\n" + line("alice", ALICE) + bad + "\n" + line("bob", BOB)
            with self.assertRaises(ScramFileError) as caught:
                parseCredentialFile(text)
            self.assertEqual(caught.exception.lineNumber, 3, bad)
            self.assertIn("line 3: ", str(caught.exception))
            self.assertIn(fragment, str(caught.exception), bad)

    def test_readNamesFile(self) -> None:
        """Reading a damaged or missing file names the file (and the line)."""
        writeFile(self.path, line("alice", ALICE) + "bob\n")
        with self.assertRaises(ScramFileError) as caught:
            readCredentialFile(self.path)
        self.assertTrue(str(caught.exception).startswith(f"{self.path}: line 2: "))
        os.unlink(self.path)
        self.assertRaises(ScramFileError, readCredentialFile, self.path)
        self.assertRaises(ScramFileError, ScramAuthenticator, self.path)

    def test_readErrorsNameFileOnce(self) -> None:
        """A missing or non-UTF-8 file: C{PATH: reason}, the path said once."""
        with self.assertRaises(ScramFileError) as caught:
            readCredentialFile(self.path)
        self.assertEqual(str(caught.exception), f"{self.path}: No such file or directory")
        with open(self.path, "wb") as f:
            f.write(b"\xff" + line("alice", ALICE).encode("ascii"))
        with self.assertRaises(ScramFileError) as caught:
            readCredentialFile(self.path)
        self.assertEqual(str(caught.exception), f"{self.path}: not UTF-8")

    def login(self, auth: ScramAuthenticator, user: str, password: str) -> bool:
        return isinstance(run(auth, ScramClient(user, password)), AuthSuccess)

    def test_reload(self) -> None:
        """New, changed and removed users take effect on reload, not before."""
        writeFile(self.path, line("alice", ALICE))
        auth = ScramAuthenticator(self.path)
        self.assertTrue(self.login(auth, "alice", "alice-secret"))
        writeFile(self.path, line("bob", BOB) + line("alice", makeCredential("uno")))
        self.assertFalse(self.login(auth, "bob", "b0b"))
        auth.reload()
        self.assertTrue(self.login(auth, "bob", "b0b"))
        self.assertTrue(self.login(auth, "alice", "uno"))
        self.assertFalse(self.login(auth, "alice", "alice-secret"))
        writeFile(self.path, line("bob", BOB))
        auth.reload()
        self.assertFalse(self.login(auth, "alice", "uno"))

    def test_brokenReloadKeepsUsers(self) -> None:
        """A damaged or missing file on reload raises and the old users stay."""
        writeFile(self.path, line("alice", ALICE))
        auth = ScramAuthenticator(self.path)
        for damage in (line("alice", ALICE) + "bob:1\n", "alice:\n", None):
            if damage is None:
                os.unlink(self.path)
            else:
                writeFile(self.path, damage)
            self.assertRaises(ScramFileError, auth.reload)
            self.assertTrue(self.login(auth, "alice", "alice-secret"))
            self.assertFalse(self.login(auth, "bob", "b0b"))

    def test_brokerReload(self) -> None:
        """Broker.reload() reports a damaged file and keeps the authenticator's users."""
        writeFile(self.path, line("alice", ALICE))
        auth = ScramAuthenticator(self.path)
        env = InMemoryBroker()
        env.broker.addReloadable(auth)
        writeFile(self.path, "alice\n")
        self.assertFalse(env.broker.reload())
        self.assertEqual(list(auth.users), ["alice"])
        writeFile(self.path, line("bob", BOB))
        self.assertTrue(env.broker.reload())
        self.assertEqual(list(auth.users), ["bob"])

    def test_fakeSaltStableOverReload(self) -> None:
        """An unknown user's salt does not change when the file is reloaded."""
        writeFile(self.path, line("alice", ALICE))
        auth = ScramAuthenticator(self.path)
        before = auth.lookup("mallory")
        writeFile(self.path, line("alice", ALICE) + line("bob", BOB))
        auth.reload()
        self.assertEqual(auth.lookup("mallory"), before)
        self.assertEqual(auth.lookup("mallory")[0], False)


class PluginTests(SynchronousTestCase):
    """
    The C{scram} plug-in (C{--auth scram:file=PATH}).
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.path = os.path.join(self.directory, "scram")
        writeFile(self.path, line("alice", ALICE))

    def test_discovered(self) -> None:
        """The factory is found as the 'scram' authenticator."""
        self.assertIs(availablePlugins(AUTH)["scram"], txmqttd_plugin.scram)
        self.assertTrue(txmqttd_plugin.scram.argumentsHelp.startswith("file=PATH"))

    def test_make(self) -> None:
        """scram:file=PATH makes a reloadable SCRAM-SHA-256 authenticator on that file."""
        auth = makePlugin(AUTH, f"scram:file={self.path}")
        self.assertIsInstance(auth, ScramAuthenticator)
        self.assertTrue(IEnhancedAuthenticator.providedBy(auth))
        self.assertTrue(IReloadable.providedBy(auth))
        self.assertEqual(auth.method, METHOD)
        self.assertEqual(list(auth.users), ["alice"])

    def test_relativePath(self) -> None:
        """A relative file name is resolved against the base directory."""
        auth = makePlugin(AUTH, "scram:file=scram", self.directory)
        self.assertEqual(auth.path, self.path)

    def test_errors(self) -> None:
        """A bad file, a missing or unknown argument: one line naming the plug-in."""
        writeFile(self.path, line("alice", ALICE) + "bob\n")
        for spec, fragment in (
            (f"scram:file={self.path}", f"--auth scram: {self.path}: line 2: "),
            (f"scram:file={self.path}.missing", "--auth scram: "),
            ("scram", "--auth scram: missing argument file"),
            (f"scram:file={self.path}:iterations=5", "--auth scram: unknown argument"),
        ):
            with self.assertRaises(PluginError) as caught:
                makePlugin(AUTH, spec)
            message = str(caught.exception)
            self.assertTrue(message.startswith(fragment), message)
            self.assertEqual(len(message.splitlines()), 1)


# -- mqttd scram ----------------------------------------------------------------------------


def runMain(test: SynchronousTestCase, argv: list[str]) -> tuple[int, str]:
    stderr = io.StringIO()
    test.patch(sys, "stderr", stderr)
    test.patch(sys, "stdout", io.StringIO())
    try:
        status: Any = cli.main(argv)
    except SystemExit as e:
        status = e.code
        if isinstance(status, str):
            stderr.write(status + "\n")
            status = 1
    return (0 if status is None else int(status)), stderr.getvalue()


class ScramCommandTests(SynchronousTestCase):
    """
    C{mqttd scram}: the options of C{mqttd passwd} for SCRAM credential
    files.
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.path = os.path.join(self.directory, "scram")

    def assertOk(self, *argv: str) -> None:
        self.assertEqual(runMain(self, ["scram", *argv]), (0, ""), argv)

    def assertOneLineError(self, argv: list[str], fragment: str) -> str:
        status, err = runMain(self, ["scram", *argv])
        self.assertNotEqual(status, 0, argv)
        self.assertEqual(len(err.splitlines()), 1, f"{argv}: {err!r}")
        self.assertTrue(err.startswith("mqttd"), err)
        self.assertIn(fragment, err)
        return err

    def users(self) -> dict[str, ScramCredential]:
        return readCredentialFile(self.path)

    def login(self, user: str, password: str) -> bool:
        auth = ScramAuthenticator(self.path)
        return isinstance(run(auth, ScramClient(user, password)), AuthSuccess)

    def test_create(self) -> None:
        """-c -b creates a file with one user, mode 0600, 4096 iterations, whose password logs in."""
        self.assertOk("-c", "-b", self.path, "alice", "a:b c")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        self.assertEqual(list(self.users()), ["alice"])
        self.assertEqual(self.users()["alice"].iterations, 4096)
        self.assertEqual(len(self.users()["alice"].salt), 16)
        self.assertTrue(self.login("alice", "a:b c"))
        self.assertFalse(self.login("alice", "a:b"))
        self.assertEqual(os.listdir(self.directory), ["scram"])
        self.assertNotIn("a:b c", readFile(self.path))

    def test_createOverwrites(self) -> None:
        """-c replaces an existing file, which becomes mode 0600."""
        writeFile(self.path, line("bob", BOB))
        os.chmod(self.path, 0o644)
        self.assertOk("-c", "-b", self.path, "alice", "pw")
        self.assertEqual(list(self.users()), ["alice"])
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_addAndUpdate(self) -> None:
        """-b adds a user and changes an existing one, keeping the others and their order."""
        self.assertOk("-c", "-b", self.path, "alice", "one")
        self.assertOk("-b", self.path, "bob", "two")
        bob = self.users()["bob"]
        self.assertOk("-b", self.path, "alice", "uno")
        self.assertEqual(list(self.users()), ["alice", "bob"])
        self.assertEqual(self.users()["bob"], bob)
        self.assertTrue(self.login("alice", "uno"))
        self.assertFalse(self.login("alice", "one"))
        self.assertTrue(self.login("bob", "two"))

    def test_updateKeepsMode(self) -> None:
        """Changing or deleting a user keeps the file's mode (a new file is 0600)."""
        self.assertOk("-c", "-b", self.path, "alice", "one")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        os.chmod(self.path, 0o640)
        self.assertOk("-b", self.path, "bob", "two")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o640)
        self.assertOk("-D", self.path, "alice")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o640)
        self.assertEqual(list(self.users()), ["bob"])

    def test_iterations(self) -> None:
        """-I sets the iteration count; below 4096 is refused."""
        self.assertOk("-c", "-b", "-I", "5000", self.path, "alice", "pw")
        self.assertEqual(self.users()["alice"].iterations, 5000)
        self.assertTrue(self.login("alice", "pw"))
        self.assertOneLineError(["-b", "-I", "1000", self.path, "bob", "pw"], "4096")
        self.assertEqual(list(self.users()), ["alice"])

    def test_delete(self) -> None:
        """-D removes a user; an unknown one is a one-line error and the file is unchanged."""
        self.assertOk("-c", "-b", self.path, "alice", "one")
        self.assertOk("-b", self.path, "bob", "two")
        self.assertOk("-D", self.path, "alice")
        self.assertEqual(list(self.users()), ["bob"])
        before = readFile(self.path)
        self.assertOneLineError(["-D", self.path, "mallory"], "mallory")
        self.assertEqual(readFile(self.path), before)

    def test_prompt(self) -> None:
        """Without -b the password is asked twice; a mismatch is an error."""
        answers = iter(["secret", "secret", "one", "two"])
        options = argparse.Namespace(file=self.path, username="alice", password=None,
                                     create=True, delete=False, batch=False, iterations=4096)
        cli.scram(options, prompt=lambda text: next(answers))
        self.assertTrue(self.login("alice", "secret"))
        options.create = False
        self.assertRaises(cli.CommandError, cli.scram, options, lambda text: next(answers))
        self.assertTrue(self.login("alice", "secret"))

    def test_usage(self) -> None:
        """A password without -b, -b without one, and -c with -D are refused."""
        self.assertOneLineError(["-c", self.path, "alice", "pw"], "-b")
        self.assertOneLineError(["-c", "-b", self.path, "alice"], "-b")
        self.assertOneLineError(["-c", "-D", self.path, "alice"], "not allowed")
        self.assertFalse(os.path.exists(self.path))

    def test_missingAndDamagedFile(self) -> None:
        """Without -c a missing file is an error (not created); a damaged file is not rewritten."""
        self.assertOneLineError(["-b", self.path, "alice", "pw"], "-c")
        self.assertFalse(os.path.exists(self.path))
        writeFile(self.path, line("alice", ALICE) + "bob\n")
        self.assertOneLineError(["-b", self.path, "carol", "pw"], "line 2")
        self.assertEqual(readFile(self.path), line("alice", ALICE) + "bob\n")

    def test_userNames(self) -> None:
        """Names the file cannot hold are refused; names are stored in SASLprep form."""
        for bad in ("a:b", "#x", " ", "al\u0007ice", "\u0627\u0031"):
            self.assertOneLineError(["-c", "-b", self.path, bad, "pw"], "user name")
        self.assertOk("-c", "-b", self.path, "I\u00adX", "pw")
        self.assertEqual(list(self.users()), ["IX"])
        self.assertTrue(self.login("IX", "pw"))

    def test_unpreparablePassword(self) -> None:
        """A password SASLprep prohibits is refused (no client could send it)."""
        self.assertOneLineError(["-c", "-b", self.path, "alice", "pw\u0007"], "password")
        self.assertFalse(os.path.exists(self.path))


# -- end to end: the real broker -----------------------------------------------------------


def _Wire(port: int) -> CodecClient:
    """
    A blocking MQTT 5.0 client on a raw socket, built on mqttd's codec.
    """
    return CodecClient(socket.create_connection(("127.0.0.1", port), timeout=5), MQTT_5)


class EndToEndTests(SynchronousTestCase):
    """
    C{twistd mqttd --auth scram:file=...}: a raw-socket MQTT 5.0 client
    logs in with SCRAM, re-authenticates, and a reload adds a user.
    """

    def connect(self, port: int, client: ScramClient, clientId: str) -> tuple[_Wire, Any]:
        wire = _Wire(port)
        self.addCleanup(wire.close)
        wire.send(Connect(clientId, MQTT_5, True, 30, properties=scramProps(client.first())))
        auth = wire.next()
        if not isinstance(auth, Auth):
            return wire, auth
        self.assertEqual((auth.reasonCode, auth.properties[P.AUTHENTICATION_METHOD]),
                         (0x18, METHOD))
        wire.send(Auth(0x18, scramProps(client.final(auth.properties[P.AUTHENTICATION_DATA]))))
        return wire, wire.next()

    def test_broker(self) -> None:
        """Login, a QoS 1 round trip, re-authentication, refusals (wrong password, unknown user, no SCRAM) and SIGHUP reload, against twistd."""
        directory = tempDirectory(self)
        path = os.path.join(directory, "scram")
        self.assertEqual(runMain(self, ["scram", "-c", "-b", path, "alice", "s3cret"]), (0, ""))
        broker = BrokerProcess("--auth", f"scram:file={path}")
        self.addCleanup(broker.cleanup)

        client = ScramClient("alice", "s3cret")
        wire, connack = self.connect(broker.port, client, "e2e")
        assert isinstance(connack, Connack), connack
        self.assertEqual(connack.reasonCode, 0)
        self.assertTrue(client.verify(connack.properties.get(P.AUTHENTICATION_DATA)))

        wire.send(Subscribe(1, (SubscriptionRequest("e2e/t", 1),)))
        self.assertIsInstance(wire.next(), Suback)
        wire.send(Publish("e2e/t", b"hello", 1, packetId=2))
        received = [wire.next(), wire.next()]
        self.assertIn(b"hello", [p.payload for p in received if isinstance(p, Publish)])

        again = ScramClient("alice", "s3cret")
        wire.send(Auth(0x19, scramProps(again.first())))
        auth = wire.next()
        assert isinstance(auth, Auth), auth
        wire.send(Auth(0x18, scramProps(again.final(auth.properties[P.AUTHENTICATION_DATA]))))
        done = wire.next()
        assert isinstance(done, Auth), done
        self.assertEqual(done.reasonCode, 0)
        self.assertTrue(again.verify(done.properties[P.AUTHENTICATION_DATA]))

        refusals = []
        for user, password in (("alice", "wrong"), ("mallory", "wrong")):
            other, answer = self.connect(broker.port, ScramClient(user, password), "bad")
            assert isinstance(answer, Connack), answer
            refusals.append(answer)
            self.assertIsNone(other.next(2))
        self.assertEqual(refusals[0], refusals[1])
        self.assertEqual(refusals[0].reasonCode, 0x86)

        # Without SCRAM there is no way in (no password checker configured).
        plain = _Wire(broker.port)
        self.addCleanup(plain.close)
        plain.send(Connect("plain", MQTT_5, True, 30, username="alice", password=b"s3cret"))
        answer = plain.next()
        assert isinstance(answer, Connack), answer
        self.assertGreaterEqual(answer.reasonCode, 0x80)

        # A user added to the file logs in after SIGHUP.
        self.assertEqual(runMain(self, ["scram", "-b", path, "bob", "b0b"]), (0, ""))
        broker.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "configuration reloaded" not in broker.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        _, connack = self.connect(broker.port, ScramClient("bob", "b0b"), "bob")
        assert isinstance(connack, Connack), connack
        self.assertEqual(connack.reasonCode, 0)

        # The first connection is still there.
        wire.send(Publish("e2e/t", b"again", 1, packetId=3))
        received = [wire.next(), wire.next()]
        self.assertIn(b"again", [p.payload for p in received if isinstance(p, Publish)])
        self.assertEqual(broker.stop(), -signal.SIGTERM)
        self.assertEqual(broker.tracebacks(), [])
