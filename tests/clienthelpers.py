"""
Helpers for the integration tests: a blocking wrapper around a paho-mqtt
2.x client, a C{twistd mqttd} subprocess with arbitrary options, and raw
MQTT packet builders.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")

#: How long any single wait in these helpers may take (liveness only).
WAIT = 10.0

_LISTENING = re.compile(r"mqttd listening on (\S+)")


class CodecClient:
    """
    A blocking MQTT client on a connected socket (plain or TLS) that builds
    and parses packets with mqttd's codec, for tests that need exact
    packets.

    @ivar error: the socket or TLS error a read or write ended with, if any.
    """

    def __init__(self, sock: Any, level: int = 5) -> None:
        from mqttd.codec import Decoder

        self.sock = sock
        self.level = level
        self.decoder = Decoder(isServer=False, protocolLevel=level)
        self.error: Exception | None = None

    def send(self, packet: Any) -> None:
        from mqttd.codec import encode

        self.sock.sendall(encode(packet, self.level))

    def next(self, timeout: float = WAIT) -> Any:
        """
        The next packet, or L{None} after C{timeout} seconds or once the
        connection is closed.
        """
        deadline = time.monotonic() + timeout
        while True:
            packet = self.decoder.next()
            if packet is not None:
                return packet
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.sock is None:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError as e:  # including ssl.SSLError
                self.error = e
                return None
            if not data:
                return None
            self.decoder.feed(data)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def tempDirectory(case: Any) -> str:
    """
    A new temporary directory, removed in C{case}'s cleanup (C{mktemp}
    would write into the working directory under pytest).
    """
    path = tempfile.mkdtemp(prefix="mqttd-test-")
    case.addCleanup(shutil.rmtree, path, True)
    return path


def uniqueName(prefix: str = "t") -> str:
    """
    A short unique name for client ids and topics (at most 23 characters
    for a short prefix, as MQTT 3.1 requires of client ids).
    """
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, order=True)
class Received:
    """
    One PUBLISH received by a L{PahoClient}.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool


class PahoClient:
    """
    A paho-mqtt client running its network loop in a thread, with blocking
    calls that wait (with a timeout) for the broker's answers.

    @ivar messages: every L{Received} message, in arrival order.
    @ivar sessionPresent: the Session Present flag of the last CONNACK.
    @ivar connectReason: the reason code of the last CONNACK (an int).
    """

    def __init__(
        self,
        port: int,
        clientId: str,
        protocol: int = mqtt.MQTTv311,
        cleanSession: bool = True,
        sessionExpiry: int | None = None,
        keepAlive: int = 60,
        will: tuple[str, bytes, int, bool] | None = None,
    ) -> None:
        self.port = port
        self.clientId = clientId
        self.protocol = protocol
        self.cleanSession = cleanSession
        self.sessionExpiry = sessionExpiry
        self.keepAlive = keepAlive
        kwargs: dict[str, Any] = {}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = cleanSession
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=clientId, protocol=protocol, **kwargs
        )
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain)
        self.messages: list[Received] = []
        self.sessionPresent: bool | None = None
        self.connectReason: int | None = None
        self._condition = threading.Condition()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._subacks: dict[int, list[int]] = {}
        self.client.on_connect = self._onConnect
        self.client.on_disconnect = self._onDisconnect
        self.client.on_message = self._onMessage
        self.client.on_subscribe = self._onSubscribe
        self._started = False

    # -- paho callbacks (network thread) ------------------------------------

    def _onConnect(
        self, client: Any, userdata: Any, flags: Any, reasonCode: Any, properties: Any
    ) -> None:
        self.sessionPresent = bool(flags.session_present)
        self.connectReason = reasonCode.value if hasattr(reasonCode, "value") else int(reasonCode)
        self._connected.set()

    def _onDisconnect(
        self, client: Any, userdata: Any, flags: Any, reasonCode: Any, properties: Any
    ) -> None:
        self._disconnected.set()

    def _onMessage(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._condition:
            self.messages.append(
                Received(message.topic, bytes(message.payload), message.qos, bool(message.retain))
            )
            self._condition.notify_all()

    def _onSubscribe(
        self, client: Any, userdata: Any, mid: int, reasonCodes: Any, properties: Any
    ) -> None:
        with self._condition:
            self._subacks[mid] = [
                rc.value if hasattr(rc, "value") else int(rc) for rc in reasonCodes
            ]
            self._condition.notify_all()

    # -- blocking API ---------------------------------------------------------

    def connect(self) -> PahoClient:
        """
        Connect and wait for a successful CONNACK.

        @raise AssertionError: if none arrives or it refuses the client.
        """
        kwargs: dict[str, Any] = {}
        if self.protocol == mqtt.MQTTv5:
            kwargs["clean_start"] = self.cleanSession
            if self.sessionExpiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.sessionExpiry
                kwargs["properties"] = props
        self._connected.clear()
        self._disconnected.clear()
        self.client.connect("127.0.0.1", self.port, keepalive=self.keepAlive, **kwargs)
        self.client.loop_start()
        self._started = True
        if not self._connected.wait(WAIT):
            raise AssertionError(f"{self.clientId}: no CONNACK within {WAIT} s")
        if self.connectReason != 0:
            raise AssertionError(f"{self.clientId}: CONNACK refused: {self.connectReason}")
        return self

    def subscribe(self, *filters: tuple[str, int]) -> list[int]:
        """
        Subscribe to C{(filter, qos)} pairs in one SUBSCRIBE and wait for the
        SUBACK.

        @return: its return codes / reason codes.
        """
        if len(filters) == 1:
            result, mid = self.client.subscribe(filters[0][0], filters[0][1])
        else:
            result, mid = self.client.subscribe(list(filters))
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        deadline = time.monotonic() + WAIT
        with self._condition:
            while mid not in self._subacks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.clientId}: no SUBACK within {WAIT} s")
                self._condition.wait(remaining)
            return self._subacks.pop(mid)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """
        Publish and, for QoS 1 and 2, wait until the flow is complete
        (PUBACK, or PUBCOMP).
        """
        info = self.client.publish(topic, payload, qos, retain)
        info.wait_for_publish(WAIT)
        if not info.is_published():
            raise AssertionError(f"{self.clientId}: publish to {topic!r} not completed")

    def waitForMessages(self, count: int, timeout: float = WAIT) -> list[Received]:
        """
        Wait until at least C{count} messages arrived (or the timeout passes).

        @return: the messages received so far.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return list(self.messages)

    def waitForTopic(self, topic: str, timeout: float = WAIT) -> list[Received]:
        """
        Wait until a message on C{topic} arrived (or the timeout passes).

        @return: the messages received so far.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while not any(m.topic == topic for m in self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return list(self.messages)

    def disconnect(self) -> None:
        """
        Send DISCONNECT, wait for the connection to close and stop the loop.
        """
        if not self._started:
            return
        self.client.disconnect()
        self._disconnected.wait(WAIT)
        self.client.loop_stop()
        self._started = False

    def close(self) -> None:
        """
        Stop the client whatever its state (for cleanups).
        """
        if self._started:
            try:
                self.client.disconnect()
                self._disconnected.wait(WAIT)
            finally:
                self.client.loop_stop()
                self._started = False


class MqttdProcess:
    """
    C{twistd -n --pidfile= mqttd ARGS} in a subprocess, with its stdout (the
    log) and stderr kept apart.

    @ivar addresses: the addresses of the C{mqttd listening on ...} lines,
        once L{waitListening} saw them.
    """

    def __init__(self, args: Sequence[str], cwd: str | None = None) -> None:
        self.args = list(args)
        self.logFile = tempfile.NamedTemporaryFile(
            "w+", prefix="mqttd-tap-", suffix=".log", delete=False
        )
        self.errFile = tempfile.NamedTemporaryFile(
            "w+", prefix="mqttd-tap-", suffix=".err", delete=False
        )
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "mqttd", *self.args],
            stdout=self.logFile,
            stderr=self.errFile,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd if cwd is not None else tempfile.gettempdir(),
        )
        self.addresses: list[str] = []

    def log(self) -> str:
        with open(self.logFile.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stderr(self) -> str:
        with open(self.errFile.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def waitListening(self, count: int = 1, timeout: float = 20.0) -> list[str]:
        """
        Wait for C{count} C{mqttd listening on ...} lines.

        @return: their addresses (e.g. C{tcp:127.0.0.1:4242}, C{unix:/p}).
        @raise AssertionError: if the broker exits or does not get there.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = _LISTENING.findall(self.log())
            if len(found) >= count:
                self.addresses = found
                return found
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the broker exited ({self.process.returncode}):\n{self.log()}{self.stderr()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker did not start:\n{self.log()}{self.stderr()}")
            time.sleep(0.05)

    def tcpPort(self, index: int = 0) -> int:
        """
        The port of the C{index}th listening address (a TCP one).
        """
        return int(self.addresses[index].rsplit(":", 1)[1])

    def wait(self, timeout: float = WAIT) -> int:
        """
        Wait for the process to exit.

        @return: its exit status.
        """
        return self.process.wait(timeout)

    def stop(self, timeout: float = WAIT) -> int:
        """
        Stop it with SIGTERM (SIGKILL if it hangs) and wait.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def cleanup(self) -> None:
        self.stop()
        for f in (self.logFile, self.errFile):
            f.close()
            try:
                os.unlink(f.name)
            except OSError:
                pass

    def tracebacks(self) -> list[str]:
        return [line for line in (self.log() + self.stderr()).splitlines() if "Traceback" in line]


def waitForLog(getLog: Any, pattern: str, timeout: float = WAIT) -> bool:
    """
    Wait until C{getLog()} matches the regular expression C{pattern}.
    """
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if regex.search(getLog()):
            return True
        time.sleep(0.05)
    return bool(regex.search(getLog()))


# -- raw packets ----------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string(s: str | bytes) -> bytes:
    data = s.encode("utf-8") if isinstance(s, str) else s
    return len(data).to_bytes(2, "big") + data


def packet(firstByte: int, body: bytes) -> bytes:
    """
    A packet: first byte, remaining length, body.
    """
    return bytes((firstByte,)) + _varint(len(body)) + body


def connectPacket(
    clientId: str,
    keepAlive: int = 60,
    level: int = 4,
    clean: bool = True,
    will: tuple[str, bytes, int, bool] | None = None,
) -> bytes:
    """
    A CONNECT for protocol level 4 (3.1.1) or 5 (with empty properties).
    """
    flags = 0x02 if clean else 0
    payload = _string(clientId)
    willProps = b"\x00" if level == 5 else b""
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += willProps + _string(topic) + _string(message)
    header = _string("MQTT") + bytes((level, flags)) + keepAlive.to_bytes(2, "big")
    if level == 5:
        header += b"\x00"
    return packet(0x10, header + payload)


def publishPacket(
    topic: str,
    payload: bytes,
    qos: int = 0,
    packetId: int = 1,
    level: int = 4,
    retain: bool = False,
) -> bytes:
    """
    A PUBLISH (v5: with empty properties).
    """
    body = _string(topic)
    if qos:
        body += packetId.to_bytes(2, "big")
    if level == 5:
        body += b"\x00"
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body + payload)


def subscribePacket(topicFilter: str, qos: int = 0, packetId: int = 1, level: int = 4) -> bytes:
    """
    A SUBSCRIBE for one filter (v5: with empty properties).
    """
    body = packetId.to_bytes(2, "big") + (b"\x00" if level == 5 else b"")
    return packet(0x82, body + _string(topicFilter) + bytes((qos,)))


def connectUnix(path: str, timeout: float = 5.0) -> socket.socket:
    """
    A blocking AF_UNIX stream socket connected to C{path}.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    return sock


def recvExactly(sock: socket.socket, count: int, timeout: float = 5.0) -> bytes:
    """
    Read exactly C{count} bytes from C{sock} (fewer on close or timeout).
    """
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(count - len(data))
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def freePort() -> int:
    """
    A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, close).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readPacket(recv: Any) -> bytes:
    """
    Read one whole packet with C{recv(count)} (a C{recvExactly}): the
    first byte, the remaining length and the body.  Returns what arrived
    (possibly short, or C{b""}) if the connection closes or times out.
    """
    data = recv(1)
    if not data:
        return data
    length = 0
    shift = 0
    for _ in range(4):
        byte = recv(1)
        if not byte:
            return data
        data += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return data + recv(length)
