"""
Codec micro-benchmark: PUBLISH decodes/s and encodes/s.

Cases: QoS 0 and QoS 1, MQTT 3.1.1 and 5.0 (5.0 without properties and with
two), 64-byte payload, topic C{bench/topic/a}.  Decoding feeds one buffer of
C{--count} concatenated packets to a single client-side L{Decoder} and pulls
them all (QoS 1 packet ids roll over 1..65535); encoding calls
C{encode(packet, level)} once per prebuilt packet object.  Every figure is
the best of C{--runs} runs of a fixed number of iterations.

    python bench/codec_bench.py [--count 100000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from mqttd.codec import MQTT_3_1_1, MQTT_5, Decoder, PropertyId, Publish, encode
from mqttd.codec.properties import NO_PROPERTIES, Properties

TOPIC = "bench/topic/a"
PAYLOAD = bytes(range(64))
#: Two properties a broker commonly forwards.
TWO_PROPERTIES: Properties = {
    PropertyId.MESSAGE_EXPIRY_INTERVAL: 3600,
    PropertyId.CONTENT_TYPE: "application/octet-stream",
}

#: (label, protocol level, QoS, properties)
CASES: list[tuple[str, int, int, Properties]] = [
    ("3.1.1 QoS 0", MQTT_3_1_1, 0, NO_PROPERTIES),
    ("3.1.1 QoS 1", MQTT_3_1_1, 1, NO_PROPERTIES),
    ("5.0 QoS 0", MQTT_5, 0, NO_PROPERTIES),
    ("5.0 QoS 1", MQTT_5, 1, NO_PROPERTIES),
    ("5.0 QoS 0 +2 props", MQTT_5, 0, TWO_PROPERTIES),
    ("5.0 QoS 1 +2 props", MQTT_5, 1, TWO_PROPERTIES),
]


def makePackets(count: int, qos: int, properties: Properties) -> list[Publish]:
    """
    C{count} PUBLISH packets; for QoS 1 the packet ids roll over 1..65535.
    """
    if qos == 0:
        packet = Publish(TOPIC, PAYLOAD, qos=0, properties=properties)
        return [packet] * count
    return [
        Publish(TOPIC, PAYLOAD, qos=qos, packetId=i % 65535 + 1, properties=properties)
        for i in range(count)
    ]


def timeDecode(buffer: bytes, level: int, count: int) -> float:
    """
    Decode C{count} packets from C{buffer} with one client-side decoder.

    @return: the elapsed seconds.
    """
    decoder = Decoder(isServer=False, protocolLevel=level)
    nextPacket = decoder.next
    decoded = 0
    start = time.perf_counter()
    decoder.feed(buffer)
    while nextPacket() is not None:
        decoded += 1
    elapsed = time.perf_counter() - start
    if decoded != count or decoder.buffered:
        raise AssertionError(f"decoded {decoded} packets of {count}")
    return elapsed


def timeEncode(packets: list[Publish], level: int) -> float:
    """
    Encode every packet of C{packets}.

    @return: the elapsed seconds.
    """
    enc = encode
    start = time.perf_counter()
    for packet in packets:
        enc(packet, level)
    return time.perf_counter() - start


def best(runs: int, measure: Callable[[], float]) -> float:
    """
    The smallest of C{runs} measurements.
    """
    return min(measure() for _ in range(runs))


def runCase(
    label: str, level: int, qos: int, properties: Properties, count: int, runs: int
) -> dict[str, Any]:
    """
    Measure one case.
    """
    packets = makePackets(count, qos, properties)
    encoded = [encode(p, level) for p in packets]
    buffer = b"".join(encoded)
    # Check once that the buffer decodes back to what was encoded.
    decoder = Decoder(isServer=False, protocolLevel=level)
    decoder.feed(encoded[0] + encoded[-1])
    if (decoder.next(), decoder.next()) != (packets[0], packets[-1]):
        raise AssertionError(f"{label}: round trip mismatch")
    decodeSeconds = best(runs, lambda: timeDecode(buffer, level, count))
    encodeSeconds = best(runs, lambda: timeEncode(packets, level))
    return {
        "case": label,
        "protocol": level,
        "qos": qos,
        "properties": len(properties),
        "packetBytes": len(encoded[0]),
        "count": count,
        "runs": runs,
        "decodesPerSecond": count / decodeSeconds,
        "encodesPerSecond": count / encodeSeconds,
        "decodeMicroseconds": decodeSeconds / count * 1e6,
        "encodeMicroseconds": encodeSeconds / count * 1e6,
    }


def table(results: list[dict[str, Any]]) -> str:
    """
    Format results as a text table.
    """
    lines = [
        f"{'case':<20} {'bytes':>5} {'decode/s':>12} {'us':>6} {'encode/s':>12} {'us':>6}",
    ]
    for r in results:
        lines.append(
            f"{r['case']:<20} {r['packetBytes']:>5} {r['decodesPerSecond']:>12,.0f} "
            f"{r['decodeMicroseconds']:>6.2f} {r['encodesPerSecond']:>12,.0f} "
            f"{r['encodeMicroseconds']:>6.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """
    Run every case and print a table (or JSON).
    """
    p = argparse.ArgumentParser(description="mqttd codec PUBLISH encode/decode benchmark")
    p.add_argument("--count", type=int, default=100_000, help="packets per run")
    p.add_argument("--runs", type=int, default=5, help="runs per figure (best is kept)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if args.count < 1 or args.runs < 1:
        p.error("--count and --runs must be at least 1")
    results = [runCase(*case, args.count, args.runs) for case in CASES]
    if args.json:
        print(json.dumps({"python": platform.python_version(), "results": results}, indent=2))
    else:
        print(
            f"Python {platform.python_version()}, {args.count:,} packets per run, "
            f"best of {args.runs}, payload {len(PAYLOAD)} B, topic {TOPIC}"
        )
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
