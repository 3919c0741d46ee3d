"""
The data representations of MQTT (OASIS MQTT 3.1.1 section 1.5, MQTT 5.0
section 1.5): Variable Byte Integers and UTF-8 Encoded Strings.

Every reader takes the buffer, a start offset and the end of the region it may
read, and returns the value and the next offset; nothing reads past C{end}.
"""

from __future__ import annotations

import re

from mqttd.codec.errors import MalformedPacket

#: The largest value a Variable Byte Integer can carry (four bytes).
MAX_VARINT = 268_435_455

# U+0000 is never allowed [MQTT-1.5.4-2].  Controls and non-characters "SHOULD
# NOT" appear and the receiver MAY close; mqttd rejects them unless configured
# otherwise (DESIGN.md section 4).
_NUL = re.compile("\x00")
_NOT_RECOMMENDED = re.compile(
    "[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef"
    + "".join(
        f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
    )
    + "]"
)


def forbiddenCharacters(strict: bool) -> re.Pattern[str]:
    """
    The pattern of characters rejected in UTF-8 strings.

    @param strict: also reject control characters and non-characters.
    @return: a compiled pattern to C{search} decoded strings with.
    """
    return _NOT_RECOMMENDED if strict else _NUL


def encodeVarint(value: int) -> bytes:
    """
    Encode a Variable Byte Integer in the minimum number of bytes.

    @param value: 0 to 268,435,455.
    @raise ValueError: if C{value} is out of range.
    """
    if value < 128:
        if value < 0:
            raise ValueError(f"negative variable byte integer {value}")
        return bytes((value,))
    if value > MAX_VARINT:
        raise ValueError(f"variable byte integer {value} exceeds {MAX_VARINT}")
    out = bytearray()
    while True:
        digit = value & 0x7F
        value >>= 7
        if value:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def decodeVarint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """
    Decode a complete Variable Byte Integer from C{data[pos:end]}.

    @return: the value and the offset after it.
    @raise MalformedPacket: if it runs past C{end}, has a fifth byte, or is not
        minimally encoded [MQTT-1.5.5-1].
    """
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise MalformedPacket("truncated variable byte integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and pos - start > 1:
                raise MalformedPacket("variable byte integer is not minimally encoded")
            return value, pos
        shift += 7
        if shift == 28:
            raise MalformedPacket("variable byte integer longer than four bytes")


def decodeBinary(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """
    Decode Binary Data: a two-byte length and that many bytes.

    @raise MalformedPacket: if the length runs past C{end}.
    """
    if pos + 2 > end:
        raise MalformedPacket("truncated length prefix")
    stop = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if stop > end:
        raise MalformedPacket("length prefix exceeds the packet")
    return data[pos + 2 : stop], stop


def decodeString(
    data: bytes, pos: int, end: int, forbidden: re.Pattern[str]
) -> tuple[str, int]:
    """
    Decode a UTF-8 Encoded String.

    Ill-formed UTF-8, surrogates and overlong forms are rejected by the strict
    UTF-8 decoder [MQTT-1.5.4-1]; C{forbidden} rejects U+0000 and, if strict,
    controls and non-characters [MQTT-1.5.4-2].

    @raise MalformedPacket: for any of those, or a length past C{end}.
    """
    if pos + 2 > end:
        raise MalformedPacket("truncated length prefix")
    stop = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if stop > end:
        raise MalformedPacket("string length exceeds the packet")
    try:
        text = data[pos + 2 : stop].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("string is not well-formed UTF-8") from None
    if forbidden.search(text) is not None:
        raise MalformedPacket("string contains a forbidden character")
    return text, stop


def encodeString(text: str) -> bytes:
    """
    Encode a UTF-8 Encoded String (two-byte length prefix).

    @raise ValueError: if it is longer than 65,535 bytes once encoded.
    """
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def encodeBinary(raw: bytes) -> bytes:
    """
    Encode Binary Data (two-byte length prefix).

    @raise ValueError: if it is longer than 65,535 bytes.
    """
    if len(raw) > 0xFFFF:
        raise ValueError("binary data longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + bytes(raw)
