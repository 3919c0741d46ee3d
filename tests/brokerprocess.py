"""
Run the real broker (C{twistd -n --pidfile= mqttd ...}) in a subprocess for
integration tests, and small blocking raw-socket helpers to talk to it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

_LISTENING = re.compile(r"mqttd listening on tcp:127\.0\.0\.1:(\d+)")
_TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")

#: C{20 02 00 00}: a 3.1.1 CONNACK accepting the connection.
CONNACK_OK = bytes.fromhex("20 02 00 00")
#: The catalogue's 3.1.1 CONNECT (client id "p", clean, keepalive 10).
C4 = bytes.fromhex("10 0D 00 04 4D 51 54 54 04 02 00 0A 00 01 70")
#: The catalogue's 5.0 CONNECT.
C5 = bytes.fromhex("10 0E 00 04 4D 51 54 54 05 02 00 0A 00 00 01 70")


class BrokerProcess:
    """
    A broker started with C{twistd} on a free loopback port.

    @ivar port: the TCP port it listens on (read from its log line).
    @ivar process: the C{subprocess.Popen}.
    """

    def __init__(self, *args: str, startTimeout: float = 20.0) -> None:
        """
        Start the broker.

        @param args: extra C{mqttd} options (after the listener).
        """
        self.logFile = tempfile.NamedTemporaryFile(
            "w+", prefix="mqttd-test-", suffix=".log", delete=False
        )
        self.args = args
        command = [
            _TWISTD, "-n", "--pidfile=", "mqttd",
            "--listen", "tcp:0:interface=127.0.0.1", *args,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            command, stdout=self.logFile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=tempfile.gettempdir(),
        )
        deadline = time.monotonic() + startTimeout
        while True:
            match = _LISTENING.search(self.log())
            if match:
                self.port = int(match.group(1))
                break
            if self.process.poll() is not None:
                raise RuntimeError(f"the broker exited at start:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the broker did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        """
        Everything the broker has logged so far.
        """
        with open(self.logFile.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, timeout: float = 10.0) -> int:
        """
        Stop it with SIGTERM and wait.

        @return: its exit status.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def kill(self) -> None:
        """
        Stop it with SIGKILL.
        """
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def cleanup(self) -> None:
        """
        Stop the broker (if running) and remove its log file.
        """
        self.stop()
        self.logFile.close()
        try:
            os.unlink(self.logFile.name)
        except OSError:
            pass

    def tracebacks(self) -> list[str]:
        """
        Lines of the log that show a Python traceback (there should be none).
        """
        return [line for line in self.log().splitlines() if "Traceback" in line]


class RawClient:
    """
    A blocking raw-socket client: send bytes, read exact byte counts, and
    tell whether the broker closed the connection.
    """

    def __init__(self, port: int, timeout: float = 2.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.timeout = timeout

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recvExactly(self, count: int) -> bytes:
        """
        Read exactly C{count} bytes (fewer if the connection closes first).
        """
        data = b""
        deadline = time.monotonic() + self.timeout
        while len(data) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(count - len(data))
            except TimeoutError:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data

    def recvAvailable(self, wait: float = 0.3) -> bytes:
        """
        Read whatever arrives within C{wait} seconds.
        """
        data = b""
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return data
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return data
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def isClosed(self, timeout: float | None = None) -> bool:
        """
        Whether the broker closes the connection (EOF or reset) within
        C{timeout} seconds; bytes arriving meanwhile are discarded.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def isAlive(port: int, timeout: float = 2.0) -> bool:
    """
    The catalogue's ALIVE check: a fresh client gets its CONNACK and a
    PINGRESP, and a QoS 1 publish reaches its own subscription.
    """
    client = RawClient(port, timeout)
    try:
        client.send(bytes.fromhex("10 11 00 04 4D 51 54 54 04 02 00 0A 00 05") + b"alive")
        if client.recvExactly(4) != CONNACK_OK:
            return False
        client.send(b"\xc0\x00")
        if client.recvExactly(2) != b"\xd0\x00":
            return False
        # SUBSCRIBE alive/x QoS 1, then PUBLISH QoS 1 to it.
        client.send(bytes.fromhex("82 0C 00 01 00 07") + b"alive/x" + b"\x01")
        if client.recvExactly(5) != bytes.fromhex("90 03 00 01 01"):
            return False
        client.send(bytes.fromhex("32 0D 00 07") + b"alive/x" + bytes.fromhex("00 02") + b"ok")
        got = client.recvExactly(4 + 15)
        return bytes.fromhex("40 02 00 02") in got and b"alive/x" in got
    finally:
        client.close()


def runCommand(command: Sequence[str], timeout: float = 10.0,
               input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """
    Run a command (e.g. mosquitto_pub) with a timeout, capturing output.
    """
    return subprocess.run(
        list(command), capture_output=True, timeout=timeout, input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


class BackgroundCommand:
    """
    A command (e.g. mosquitto_sub) running while the test does other things.
    """

    def __init__(self, command: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self._out: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._out.append(line)

    def lines(self) -> list[bytes]:
        return list(self._out)

    def waitForLines(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """
        Wait until C{count} lines were printed (or the timeout passes).
        """
        deadline = time.monotonic() + timeout
        while len(self._out) < count and time.monotonic() < deadline:
            if self.process.poll() is not None and len(self._out) < count:
                self._reader.join(1)
                break
            time.sleep(0.02)
        return self.lines()

    def wait(self, timeout: float = 10.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._reader.join(2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(2)
