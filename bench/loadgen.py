"""
A raw-socket MQTT load generator, usable against any broker on host:port.

Publishers and subscribers each run in their own process and speak MQTT over
a plain socket with packets encoded once, before the clock starts: a Python
MQTT client library would be the bottleneck long before a broker is.  Every
publisher sends a fixed number of messages; every subscriber counts until it
has what it expects, or gives up (overall deadline, or no data for the idle
timeout once messages have started) and reports the difference as lost.

Scenarios::

    fanin    P publishers -> 1 subscriber (default P=4), on bench/fanin/<i>,
             subscription bench/fanin/+
    fanout   1 publisher -> S subscribers (default S=4), on bench/fanout
    pairs    N publisher/subscriber pairs (default N=2), on bench/pair/<i>

The figure of record is messages/s received by subscribers: total received
divided by the time from the start signal to the last message received.

Example::

    python bench/loadgen.py --host 127.0.0.1 --port 18830 fanin --qos 1 \\
        --messages 20000 --broker-pid 12345
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import select
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Event
from typing import Any

from mqttd.codec import (
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PropertyId,
    Publish,
    Suback,
    Subscribe,
    SubscriptionRequest,
    decodeAll,
    encode,
)

#: Bytes asked for per recv().
RECV_SIZE = 256 * 1024
#: Target size of one write of pre-encoded QoS 0 PUBLISH packets.
BATCH_BYTES = 64 * 1024
#: Packet identifiers roll over 1..65535.
MAX_PACKET_ID = 65535
#: Seconds to wait for a client process to exit once it has reported.
JOIN_TIMEOUT = 5.0

_PUBACK_HEAD = b"\x40\x02"


class LoadgenError(Exception):
    """
    A client could not do its part (connection refused, CONNACK or SUBACK
    failure, broker closed the connection, timeout during setup).
    """


@dataclass(frozen=True)
class Config:
    """
    What every client process needs to know.
    """

    host: str
    port: int
    qos: int
    protocol: int
    payload: int
    inflight: int
    timeout: float
    idleTimeout: float
    connectTimeout: float
    persistent: bool = False

    @property
    def keepAlive(self) -> int:
        """
        A keep-alive long enough that a silent QoS 0 subscriber is not
        disconnected during the run (some brokers refuse 0).
        """
        return min(65535, max(60, int(self.timeout * 2)))


@dataclass(frozen=True)
class Plan:
    """
    One client: a publisher (C{topic} is where it publishes, C{messages} how
    many) or a subscriber (C{topic} is its filter, C{messages} how many it
    expects).
    """

    role: str
    index: int
    clientId: str
    topic: str
    messages: int


def makePlans(
    scenario: str, messages: int, publishers: int, subscribers: int, pairs: int
) -> tuple[list[Plan], list[Plan]]:
    """
    The publishers and subscribers of a scenario.

    @return: C{(publishers, subscribers)}.
    """
    tag = f"lg{os.getpid()}"
    pubs: list[Plan] = []
    subs: list[Plan] = []
    if scenario == "fanin":
        for i in range(publishers):
            pubs.append(Plan("pub", i, f"{tag}-pub{i}", f"bench/fanin/{i}", messages))
        subs.append(Plan("sub", 0, f"{tag}-sub0", "bench/fanin/+", messages * publishers))
    elif scenario == "fanout":
        pubs.append(Plan("pub", 0, f"{tag}-pub0", "bench/fanout", messages))
        for i in range(subscribers):
            subs.append(Plan("sub", i, f"{tag}-sub{i}", "bench/fanout", messages))
    elif scenario == "pairs":
        for i in range(pairs):
            pubs.append(Plan("pub", i, f"{tag}-pub{i}", f"bench/pair/{i}", messages))
            subs.append(Plan("sub", i, f"{tag}-sub{i}", f"bench/pair/{i}", messages))
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return pubs, subs


# -- wire helpers ---------------------------------------------------------


def _frame(buf: bytes, pos: int) -> tuple[int, int, int] | None:
    """
    Locate the packet starting at C{pos}.

    @return: C{(first byte, start of body, end of packet)}, or L{None} if
        the packet is not complete yet.
    @raise LoadgenError: for a malformed Remaining Length.
    """
    end = len(buf)
    i = pos + 1
    length = 0
    for shift in (0, 7, 14, 21):
        if i >= end:
            return None
        byte = buf[i]
        i += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        raise LoadgenError("malformed remaining length from the broker")
    if i + length > end:
        return None
    return buf[pos], i, i + length


def _connect(cfg: Config) -> socket.socket:
    sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.connectTimeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _readPacket(
    sock: socket.socket, buf: bytes, cfg: Config, deadline: float
) -> tuple[Packet, bytes]:
    """
    Read and decode one packet during setup (CONNACK, SUBACK).

    @return: the packet and the bytes received after it.
    """
    while (found := _frame(buf, 0)) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LoadgenError("timed out waiting for the broker")
        sock.settimeout(remaining)
        try:
            data = sock.recv(RECV_SIZE)
        except TimeoutError:
            raise LoadgenError("timed out waiting for the broker")
        if not data:
            raise LoadgenError("the broker closed the connection during setup")
        buf += data
    end = found[2]
    packets = decodeAll(buf[:end], cfg.protocol, isServer=False)
    return packets[0], buf[end:]


def _handshake(sock: socket.socket, plan: Plan, cfg: Config) -> tuple[Connack, bytes]:
    """
    Send CONNECT and check the CONNACK.
    """
    deadline = time.monotonic() + cfg.connectTimeout
    if cfg.persistent and plan.role == "sub":
        # A session that outlives the connection (so a store writes its
        # QoS 1 messages): 3.1.1 Clean Session 0, v5 a Session Expiry
        # Interval; the client id is new to the broker either way.
        connect = Connect(
            plan.clientId,
            protocolLevel=cfg.protocol,
            cleanStart=cfg.protocol == 5,
            keepAlive=cfg.keepAlive,
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 300} if cfg.protocol == 5 else {},
        )
    else:
        connect = Connect(
            plan.clientId, protocolLevel=cfg.protocol, cleanStart=True, keepAlive=cfg.keepAlive
        )
    sock.sendall(encode(connect, cfg.protocol))
    connack, rest = _readPacket(sock, b"", cfg, deadline)
    if not isinstance(connack, Connack):
        raise LoadgenError(f"expected CONNACK, got {type(connack).__name__}")
    if connack.reasonCode:
        raise LoadgenError(f"CONNACK refused with code 0x{connack.reasonCode:02x}")
    return connack, rest


def _close(sock: socket.socket, cfg: Config) -> None:
    try:
        sock.settimeout(cfg.connectTimeout)
        sock.sendall(encode(Disconnect(), cfg.protocol))
    except OSError:
        pass
    finally:
        sock.close()


def _ignoreInterrupts() -> None:
    """
    Leave Ctrl-C to the parent, which stops every client process itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# -- subscriber -----------------------------------------------------------


def _scanPublishes(buf: bytes) -> tuple[int, list[bytes], int, int | None]:
    """
    Count the complete PUBLISH packets in C{buf}.

    @return: C{(count, packet ids of QoS 1 PUBLISHes as 2-byte strings, end
        of the last complete packet, DISCONNECT reason code or None)}.
    """
    count = 0
    ids: list[bytes] = []
    pos = 0
    end = len(buf)
    frame = _frame
    while pos < end:
        first = buf[pos]
        # Fast path: a Remaining Length of one byte.
        if pos + 1 < end and buf[pos + 1] < 0x80:
            body = pos + 2
            stop = body + buf[pos + 1]
            if stop > end:
                break
        else:
            found = frame(buf, pos)
            if found is None:
                break
            _, body, stop = found
        kind = first >> 4
        if kind == 3:
            count += 1
            if first & 0x06:
                at = body + 2 + ((buf[body] << 8) | buf[body + 1])
                ids.append(buf[at : at + 2])
        elif kind == 14:
            return count, ids, stop, buf[body] if stop > body else 0
        pos = stop
    return count, ids, pos, None


def _runSubscriber(cfg: Config, plan: Plan, ready: Event) -> dict[str, Any]:
    result: dict[str, Any] = {
        "role": "sub",
        "index": plan.index,
        "expected": plan.messages,
        "received": 0,
        "first": None,
        "last": None,
        "error": None,
        "timedOut": False,
    }
    sock = _connect(cfg)
    try:
        _, rest = _handshake(sock, plan, cfg)
        subscribe = Subscribe(1, (SubscriptionRequest(plan.topic, cfg.qos),))
        sock.sendall(encode(subscribe, cfg.protocol))
        suback, rest = _readPacket(sock, rest, cfg, time.monotonic() + cfg.connectTimeout)
        if not isinstance(suback, Suback):
            raise LoadgenError(f"expected SUBACK, got {type(suback).__name__}")
        granted = suback.reasonCodes[0]
        if granted >= 0x80:
            raise LoadgenError(f"SUBSCRIBE refused with code 0x{granted:02x}")
        result["grantedQos"] = granted
        ready.set()
        cpu0 = time.process_time()

        expected = plan.messages
        count = 0
        first: float | None = None
        last: float | None = None
        buf = rest
        deadline = time.monotonic() + cfg.timeout
        sock.settimeout(cfg.timeout)
        try:
            while count < expected:
                now = time.monotonic()
                if now >= deadline:
                    result["timedOut"] = True
                    break
                wait = deadline - now
                if count:
                    wait = min(wait, cfg.idleTimeout)
                readable, _, _ = select.select([sock], [], [], wait)
                if not readable:
                    if count:
                        # Nothing for idleTimeout after messages had started:
                        # what has not arrived is lost.
                        result["timedOut"] = True
                        break
                    continue
                data = sock.recv(RECV_SIZE)
                if not data:
                    result["error"] = "the broker closed the connection"
                    break
                buf = buf + data if buf else data
                n, ids, pos, disconnect = _scanPublishes(buf)
                if n:
                    last = time.monotonic()
                    if first is None:
                        first = last
                    count += n
                buf = buf[pos:]
                if ids:
                    sock.sendall(_PUBACK_HEAD + _PUBACK_HEAD.join(ids))
                if disconnect is not None:
                    result["error"] = f"DISCONNECT from the broker, reason 0x{disconnect:02x}"
                    break
        except OSError as e:
            # Keep what was counted: the report shows how far it got.
            result["error"] = f"{type(e).__name__}: {e}"
        result.update(received=count, first=first, last=last, cpu=time.process_time() - cpu0)
    finally:
        _close(sock, cfg)
    return result


def subscriberMain(cfg: Config, plan: Plan, ready: Event, results: Any) -> None:
    """
    Entry point of a subscriber process: puts one result dict on
    C{results}, whatever happens.
    """
    _ignoreInterrupts()
    try:
        result = _runSubscriber(cfg, plan, ready)
    except Exception as e:
        result = {
            "role": "sub",
            "index": plan.index,
            "expected": plan.messages,
            "received": 0,
            "first": None,
            "last": None,
            "timedOut": False,
            "error": f"{type(e).__name__}: {e}",
        }
    results.put(result)


# -- publisher ------------------------------------------------------------


def _scanPubacks(buf: bytes) -> tuple[int, int, int, int | None]:
    """
    Count the complete PUBACK packets in C{buf}.

    @return: C{(PUBACKs, of which failures (reason >= 0x80), end of the last
        complete packet, DISCONNECT reason code or None)}.
    """
    acks = 0
    failed = 0
    pos = 0
    end = len(buf)
    while pos < end:
        found = _frame(buf, pos)
        if found is None:
            break
        first, body, stop = found
        kind = first >> 4
        if kind == 4:
            acks += 1
            # v5: a reason code follows the packet id when the length is > 2.
            if stop - body > 2 and buf[body + 2] >= 0x80:
                failed += 1
        elif kind == 14:
            return acks, failed, stop, buf[body] if stop > body else 0
        pos = stop
    return acks, failed, pos, None


def encodePublishes(cfg: Config, plan: Plan) -> list[bytes]:
    """
    The PUBLISH packets of a publisher, encoded before the clock starts:
    one for QoS 0, one per packet id 1..min(messages, 65535) for QoS 1.
    """
    payload = b"\xa5" * cfg.payload
    if cfg.qos == 0:
        return [encode(Publish(plan.topic, payload, qos=0), cfg.protocol)]
    return [
        encode(Publish(plan.topic, payload, qos=cfg.qos, packetId=i), cfg.protocol)
        for i in range(1, min(plan.messages, MAX_PACKET_ID) + 1)
    ]


def _publishQos0(
    sock: socket.socket, cfg: Config, plan: Plan, packet: bytes, result: dict[str, Any]
) -> None:
    perBatch = max(1, BATCH_BYTES // len(packet))
    full = packet * perBatch
    batches, remainder = divmod(plan.messages, perBatch)
    tail = packet * remainder
    sock.settimeout(cfg.timeout)
    sent = 0
    try:
        for _ in range(batches):
            sock.sendall(full)
            sent += perBatch
        if tail:
            sock.sendall(tail)
            sent += remainder
    except OSError as e:
        # sendall() does not say how much went out: count whole batches.
        result["error"] = f"{type(e).__name__}: {e}"
    result["sent"] = sent


def _publishQos1(
    sock: socket.socket,
    cfg: Config,
    plan: Plan,
    packets: list[bytes],
    window: int,
    result: dict[str, Any],
) -> None:
    total = plan.messages
    ring = len(packets)
    perBatch = max(1, BATCH_BYTES // len(packets[0]))
    sent = acked = failed = 0
    out = memoryview(b"")
    buf = b""
    sock.setblocking(False)
    deadline = time.monotonic() + cfg.timeout
    try:
        while acked < total:
            now = time.monotonic()
            if now >= deadline:
                result["timedOut"] = True
                break
            if not out and sent < total and sent - acked < window:
                k = min(window - (sent - acked), total - sent, perBatch)
                s = sent % ring
                if s + k <= ring:
                    chunk = b"".join(packets[s : s + k])
                else:
                    chunk = b"".join(packets[s:] + packets[: s + k - ring])
                out = memoryview(chunk)
                sent += k
            readable, writable, _ = select.select(
                [sock], [sock] if out else [], [], min(1.0, deadline - now)
            )
            if readable:
                data = sock.recv(RECV_SIZE)
                if not data:
                    result["error"] = "the broker closed the connection"
                    break
                buf = buf + data if buf else data
                n, bad, pos, disconnect = _scanPubacks(buf)
                acked += n
                failed += bad
                buf = buf[pos:]
                if disconnect is not None:
                    result["error"] = f"DISCONNECT from the broker, reason 0x{disconnect:02x}"
                    break
            if writable:
                out = out[sock.send(out) :]
    except OSError as e:
        result["error"] = f"{type(e).__name__}: {e}"
    # A packet partly written is not sent.
    unsent = -(-len(out) // len(packets[0]))
    result.update(sent=sent - unsent, acked=acked, failedAcks=failed)


def _runPublisher(cfg: Config, plan: Plan, connected: Event, start: Event) -> dict[str, Any]:
    result: dict[str, Any] = {
        "role": "pub",
        "index": plan.index,
        "sent": 0,
        "acked": 0,
        "failedAcks": 0,
        "start": None,
        "done": None,
        "error": None,
        "timedOut": False,
        "window": None,
    }
    sock = _connect(cfg)
    try:
        connack, _ = _handshake(sock, plan, cfg)
        window = cfg.inflight
        if cfg.protocol == MQTT_5:
            maxQos = connack.properties.get(PropertyId.MAXIMUM_QOS, 2)
            if cfg.qos > maxQos:
                raise LoadgenError(f"the broker's Maximum QoS is {maxQos}")
            # Never exceed the broker's Receive Maximum [MQTT-3.3.4-7].
            window = min(window, connack.properties.get(PropertyId.RECEIVE_MAXIMUM, 65535))
        if cfg.qos:
            result["window"] = window
        packets = encodePublishes(cfg, plan)
        connected.set()
        if not start.wait(cfg.timeout):
            raise LoadgenError("no start signal")
        result["start"] = time.monotonic()
        cpu0 = time.process_time()
        if cfg.qos == 0:
            _publishQos0(sock, cfg, plan, packets[0], result)
        else:
            _publishQos1(sock, cfg, plan, packets, window, result)
        result["done"] = time.monotonic()
        result["cpu"] = time.process_time() - cpu0
    finally:
        _close(sock, cfg)
    return result


def publisherMain(cfg: Config, plan: Plan, connected: Event, start: Event, results: Any) -> None:
    """
    Entry point of a publisher process: puts one result dict on
    C{results}, whatever happens.
    """
    _ignoreInterrupts()
    try:
        result = _runPublisher(cfg, plan, connected, start)
    except Exception as e:
        result = {
            "role": "pub",
            "index": plan.index,
            "sent": 0,
            "acked": 0,
            "failedAcks": 0,
            "start": None,
            "done": None,
            "timedOut": False,
            "window": None,
            "error": f"{type(e).__name__}: {e}",
        }
    results.put(result)


# -- orchestration --------------------------------------------------------


def _brokerCpu(pid: int | None) -> float | None:
    """
    The user + system CPU seconds of process C{pid} (not its children), or
    L{None} if there is no pid or the process is gone.
    """
    if pid is None:
        return None
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def _stopAll(procs: list[multiprocessing.process.BaseProcess], patience: float) -> list[str]:
    """
    Join every client process, terminating then killing those still alive
    after C{patience} seconds.

    @return: a note per process that had to be stopped.
    """
    notes = []
    deadline = time.monotonic() + patience
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive():
            notes.append(f"{proc.name} did not exit: terminated")
            proc.terminate()
            proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)
    return notes


def _waitEvents(
    events: list[Event],
    deadline: float,
    what: str,
    procs: list[multiprocessing.process.BaseProcess],
) -> None:
    for event in events:
        while not event.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise LoadgenError(f"{what} not ready in time")
            if any(p.exitcode is not None for p in procs):
                raise LoadgenError(f"a client exited during setup ({what})")


def run(
    cfg: Config, scenario: str, pubs: list[Plan], subs: list[Plan], brokerPid: int | None
) -> dict[str, Any]:
    """
    Run one scenario and gather the figures.

    @return: a JSON-serializable report.
    """
    ctx = multiprocessing.get_context()
    results: Any = ctx.Queue()
    start = ctx.Event()
    subReady = [ctx.Event() for _ in subs]
    pubReady = [ctx.Event() for _ in pubs]
    procs: list[multiprocessing.process.BaseProcess] = []
    reports: list[dict[str, Any]] = []
    errors: list[str] = []
    t0: float | None = None
    cpu0: float | None = None
    cpu1: float | None = None
    patience = JOIN_TIMEOUT
    try:
        for plan, event in zip(subs, subReady, strict=True):
            proc = ctx.Process(
                target=subscriberMain,
                args=(cfg, plan, event, results),
                name=plan.clientId,
                daemon=True,
            )
            proc.start()
            procs.append(proc)
        setup = time.monotonic() + cfg.connectTimeout + 10
        # Every subscriber is connected and SUBACKed before any publisher
        # process exists.
        _waitEvents(subReady, setup, "subscribers", procs)
        for plan, event in zip(pubs, pubReady, strict=True):
            proc = ctx.Process(
                target=publisherMain,
                args=(cfg, plan, event, start, results),
                name=plan.clientId,
                daemon=True,
            )
            proc.start()
            procs.append(proc)
        _waitEvents(pubReady, setup, "publishers", procs)
        cpu0 = _brokerCpu(brokerPid)
        t0 = time.monotonic()
        start.set()
        deadline = t0 + cfg.timeout + cfg.connectTimeout + 10
        while len(reports) < len(procs) and time.monotonic() < deadline:
            try:
                report = results.get(timeout=0.5)
            except queue.Empty:
                if all(p.exitcode is not None for p in procs) and results.empty():
                    break
                continue
            reports.append(report)
            if report["role"] == "sub" and sum(r["role"] == "sub" for r in reports) == len(subs):
                cpu1 = _brokerCpu(brokerPid)
        if len(reports) < len(procs):
            errors.append(f"{len(procs) - len(reports)} client(s) reported nothing")
    except LoadgenError as e:
        errors.append(str(e))
    except KeyboardInterrupt:
        patience = 0.0
        raise
    finally:
        start.set()
        # Take what is still coming before joining: a child exits only once
        # its queue feeder has flushed.
        drainUntil = time.monotonic() + min(1.0, patience)
        while len(reports) < len(procs) and time.monotonic() < drainUntil:
            try:
                reports.append(results.get(timeout=0.1))
            except queue.Empty:
                if all(p.exitcode is not None for p in procs):
                    break
        errors.extend(_stopAll(procs, patience))
    if cpu1 is None and cpu0 is not None:
        cpu1 = _brokerCpu(brokerPid)
    return _summarize(cfg, scenario, pubs, subs, reports, errors, t0, cpu0, cpu1)


def _summarize(
    cfg: Config,
    scenario: str,
    pubs: list[Plan],
    subs: list[Plan],
    reports: list[dict[str, Any]],
    errors: list[str],
    t0: float | None,
    cpu0: float | None,
    cpu1: float | None,
) -> dict[str, Any]:
    subReports = sorted((r for r in reports if r["role"] == "sub"), key=lambda r: r["index"])
    pubReports = sorted((r for r in reports if r["role"] == "pub"), key=lambda r: r["index"])
    for r in reports:
        if r.get("error"):
            errors.append(f"{r['role']}{r['index']}: {r['error']}")
        elif r["role"] == "pub" and r.get("timedOut"):
            errors.append(
                f"pub{r['index']}: timed out with {r['sent'] - r['acked']} unacknowledged"
            )
    expected = sum(p.messages for p in subs)
    received = sum(r["received"] for r in subReports)
    sent = sum(r["sent"] for r in pubReports)
    lastRecv = [r["last"] for r in subReports if r["last"] is not None]
    doneSend = [r["done"] for r in pubReports if r["done"] is not None]
    recvElapsed = max(lastRecv) - t0 if lastRecv and t0 is not None else None
    sendElapsed = max(doneSend) - t0 if doneSend and t0 is not None else None
    windows = [r["window"] for r in pubReports if r.get("window") is not None]
    report: dict[str, Any] = {
        "scenario": scenario,
        "host": cfg.host,
        "port": cfg.port,
        "qos": cfg.qos,
        "protocol": cfg.protocol,
        "payload": cfg.payload,
        "publishers": len(pubs),
        "subscribers": len(subs),
        "messagesPerPublisher": pubs[0].messages if pubs else 0,
        "inflight": min(windows) if windows else None,
        "sent": sent,
        "expected": expected,
        "received": received,
        "lost": max(0, expected - received),
        "extra": max(0, received - expected),
        "elapsed": recvElapsed,
        "sendElapsed": sendElapsed,
        "receivedPerSecond": received / recvElapsed if recvElapsed else None,
        "sentPerSecond": sent / sendElapsed if sendElapsed else None,
        "brokerCpuSeconds": None,
        "brokerCpuPercent": None,
        "loadgenCpuSeconds": sum(r.get("cpu") or 0.0 for r in reports),
        "errors": errors,
        "config": asdict(cfg),
        "clients": [
            {k: v for k, v in r.items() if k not in ("first", "last", "start", "done")}
            for r in pubReports + subReports
        ],
    }
    if cpu0 is not None and cpu1 is not None:
        report["brokerCpuSeconds"] = cpu1 - cpu0
        window = max(e for e in (recvElapsed, sendElapsed, 0.0) if e is not None)
        if window:
            report["brokerCpuPercent"] = 100.0 * (cpu1 - cpu0) / window
    return report


def summaryLine(r: dict[str, Any]) -> str:
    """
    The one-line human-readable summary of a report.
    """

    def rate(x: float | None) -> str:
        return "n/a" if x is None else f"{x:,.0f} msg/s"

    def secs(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f} s"

    version = "5.0" if r["protocol"] == MQTT_5 else "3.1.1"
    parts = [
        f"{r['scenario']} qos{r['qos']} v{version} {r['publishers']}pub x "
        f"{r['messagesPerPublisher']:,} -> {r['subscribers']}sub, {r['payload']} B"
        + (f", inflight {r['inflight']}" if r["inflight"] else ""),
        f"received {r['received']:,}/{r['expected']:,} in {secs(r['elapsed'])} = "
        f"{rate(r['receivedPerSecond'])}",
        # A QoS 0 publisher is done when the kernel has taken its last byte.
        f"sent {r['sent']:,} in {secs(r['sendElapsed'])} = {rate(r['sentPerSecond'])}"
        + (" (into socket buffers)" if r["qos"] == 0 else " (acknowledged)"),
        f"lost {r['lost']:,}" + (f" (+{r['extra']:,} extra)" if r["extra"] else ""),
    ]
    if r["brokerCpuSeconds"] is not None:
        pct = r["brokerCpuPercent"]
        parts.append(
            f"broker CPU {r['brokerCpuSeconds']:.2f} s"
            + (f" ({pct:.0f}%)" if pct is not None else "")
        )
    parts.append(f"loadgen CPU {r['loadgenCpuSeconds']:.2f} s")
    if r["errors"]:
        parts.append(f"ERRORS: {'; '.join(r['errors'])}")
    return " | ".join(parts)


def parseArgs(argv: list[str] | None = None) -> argparse.Namespace:
    """
    Parse the command line.
    """
    p = argparse.ArgumentParser(
        description="Raw-socket MQTT load generator (publishers and subscribers in "
        "separate processes, pre-encoded packets, fixed message counts)."
    )
    p.add_argument("scenario", nargs="?", default="fanin", choices=("fanin", "fanout", "pairs"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--qos", type=int, default=0, choices=(0, 1))
    p.add_argument("--messages", type=int, default=20000, help="messages per publisher")
    p.add_argument("--payload", type=int, default=64, help="payload size in bytes")
    p.add_argument(
        "--protocol", type=int, default=4, choices=(4, 5), help="4 = MQTT 3.1.1, 5 = MQTT 5.0"
    )
    p.add_argument(
        "--inflight",
        type=int,
        default=100,
        help="QoS 1 publisher window (capped by a v5 broker's Receive Maximum)",
    )
    p.add_argument("--publishers", type=int, default=4, help="fanin: publishers")
    p.add_argument("--subscribers", type=int, default=4, help="fanout: subscribers")
    p.add_argument("--pairs", type=int, default=2, help="pairs: publisher/subscriber pairs")
    p.add_argument(
        "--broker-pid",
        type=int,
        default=None,
        help="sample this process's CPU time (user+system) around the run",
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="overall deadline of the run, seconds"
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=5.0,
        help="a subscriber gives up after this long without data once "
        "messages have started; the rest count as lost",
    )
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument(
        "--persistent",
        action="store_true",
        help="subscribers use persistent sessions (what a --store writes)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON report on stdout (the summary line goes to stderr)",
    )
    args = p.parse_args(argv)
    for name in ("messages", "publishers", "subscribers", "pairs", "inflight"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.payload < 0:
        p.error("--payload must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    """
    Run the load generator.

    @return: the exit status: 0, or 1 if a client failed.
    """
    args = parseArgs(argv)
    if args.broker_pid is not None and _brokerCpu(args.broker_pid) is None:
        raise SystemExit(f"loadgen: no process {args.broker_pid} to sample (--broker-pid)")
    cfg = Config(
        host=args.host,
        port=args.port,
        qos=args.qos,
        protocol=args.protocol,
        payload=args.payload,
        inflight=args.inflight,
        timeout=args.timeout,
        idleTimeout=args.idle_timeout,
        connectTimeout=args.connect_timeout,
        persistent=args.persistent,
    )
    pubs, subs = makePlans(
        args.scenario, args.messages, args.publishers, args.subscribers, args.pairs
    )
    try:
        report = run(cfg, args.scenario, pubs, subs, args.broker_pid)
    except KeyboardInterrupt:
        # run() has stopped the client processes on its way out.
        print("loadgen: interrupted", file=sys.stderr)
        return 130
    line = summaryLine(report)
    if args.json:
        print(line, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(line)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
