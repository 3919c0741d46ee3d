"""
Errors raised by the codec (and by the state layers for rules that need state).

Every error carries the MQTT 5.0 reason code that a v5 peer is told before the
connection is closed; for 3.1.x peers the connection is simply closed.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """
    A peer broke a rule of the protocol; the connection must be closed.

    @ivar reasonCode: the MQTT 5.0 reason code that describes the violation
        (C{0x82} Protocol Error unless a more precise code applies, such as
        C{0x94} Topic Alias invalid or C{0x95} Packet too large).
    @ivar protocolLevel: the protocol level of the CONNECT being decoded when
        the error was found, if it was found in a CONNECT whose level was
        already known; L{None} otherwise.  A server may answer such a v5
        CONNECT with a CONNACK carrying C{reasonCode}.
    """

    reasonCode: int = 0x82

    def __init__(self, message: str, reasonCode: int | None = None) -> None:
        super().__init__(message)
        if reasonCode is not None:
            self.reasonCode = reasonCode
        self.protocolLevel: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, reasonCode=0x{self.reasonCode:02X})"


class MalformedPacket(ProtocolError):
    """
    A packet that cannot be parsed according to the specification (v5 reason
    code C{0x81}).
    """

    reasonCode = 0x81


class UnsupportedProtocolVersion(ProtocolError):
    """
    A CONNECT naming a protocol level this codec does not speak.

    MQTT 3.1.1 requires a CONNACK with return code 1 before the close
    [MQTT-3.1.2-2]; the v5 equivalent is C{0x84}.
    """

    reasonCode = 0x84
