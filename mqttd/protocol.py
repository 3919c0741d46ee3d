"""
The Twisted side of the broker: a thin server protocol over the codec and
the broker, and its factory.

C{MQTTServerProtocol.dataReceived} decodes every packet of a chunk in one
loop and dispatches on packet class; nothing raised while handling a packet
escapes it: protocol violations close the connection (v5 clients are told
the reason code first), anything else is logged and closes the connection.

Flow control (DESIGN.md section 4): the protocol is a push producer on its
own transport.  When the transport's buffer is full, deliveries wait in the
session queue; when that queue rises above its high-water mark, the
publisher whose message landed there is paused (its socket is no longer
read) until the queue drains to the low-water mark.  A subscriber that makes
no progress for the stall timeout stops throttling anyone: its QoS 0
deliveries are dropped, QoS 1/2 are kept up to the queue limits, and once
its unsent bytes pass the outbound buffer limit it is disconnected (v5
0x97).  A connection whose own output is not drained is not read either.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mqttd.auth import (
    DENY,
    AuthContinue,
    AuthFailure,
    AuthSuccess,
    ClientIdRefused,
    ClientInfo,
    Deny,
    UnauthenticatedClient,
    credentialsFromConnect,
)
from mqttd.codec import (
    MQTT_3_1,
    MQTT_5,
    PROTOCOL_MAX_PACKET_SIZE,
    Auth,
    Connack,
    Connect,
    Decoder,
    Disconnect,
    Packet,
    Pingreq,
    ProtocolError,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    UnsupportedProtocolVersion,
    Will,
    encode,
    encodeAck,
)
from mqttd.codec.properties import NO_PROPERTIES, Properties, PropertyId
from mqttd.codec.reasons import (
    CONNACK_REASONS,
    DISCONNECT_REASONS,
    PUBACK_REASONS,
    SUBACK_REASONS,
)
from mqttd.hooks import Drop
from mqttd.interfaces import IEnhancedAuthenticator, IMQTTClient, IX509Certificate
from mqttd.message import Message
from mqttd.session import InflightEntry, Session, SubscriptionOptions
from mqttd.store import Journal
from mqttd.topics import InvalidTopic

if TYPE_CHECKING:
    from mqttd.broker import Broker

log = Logger(namespace="mqttd")

_PINGRESP = b"\xd0\x00"

# Reasons to stop reading a connection.
_AUTH = "authenticating"
_DECISION = "awaiting an authorizer"

# A delivery's authorization / hook answer not in yet.
_WAITING = object()
_OUTPUT = "output buffer full"
_THROTTLE = "throttled"

# How long a closing connection may take to flush before it is aborted.
CLOSE_TIMEOUT = 10.0

# States.
_AWAITING_CONNECT = 0
_AUTHENTICATING = 1
_CONNECTED = 2
_CLOSED = 3

# The 3.1.x CONNACK return code for a v5 refusal reason code.
_V3_CONNACK_FOR_V5 = {
    0x85: 0x02, 0x86: 0x04, 0x87: 0x05, 0x88: 0x03, 0x89: 0x03, 0x8A: 0x05, 0x8C: 0x05,
    0x9C: 0x03, 0x9D: 0x03,
}


def _printable(text: str) -> str:
    """
    Text safe for a Reason String: printable ASCII (anything else escaped).
    """
    return "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text[:200])


@implementer(IPushProducer, IHandshakeListener)
class MQTTServerProtocol(Protocol):
    """
    One client connection.

    @ivar clientId: the client identifier, once CONNECT is accepted.
    @ivar protocolLevel: 3, 4 or 5 once CONNECT is received.
    @ivar session: the session, while the connection owns it.
    @ivar will: the will message to publish if the connection ends without
        a normal DISCONNECT.
    @ivar identity: the avatar returned by authentication.
    @ivar peerCertificate: on a TLS listener, the certificate the client
        presented and the listener verified (a
        C{cryptography.x509.Certificate}), once the handshake is complete;
        L{None} otherwise.
    """

    clientId: str = ""
    peerCertificate: Any = None
    protocolLevel: int | None = None
    session: Session | None = None
    will: Will | None = None
    identity: Any = None
    # TCP, TLS, UNIX or any wrapping transport: an ITransport that is also an
    # IConsumer and an IPushProducer and has abortConnection().
    transport: Any

    def __init__(self, factory: MQTTServerFactory) -> None:
        self.factory = factory
        self.broker: Broker = factory.broker
        self._clock: IReactorTime = factory.clock
        config = self.broker.config
        self._config = config
        self._state = _AWAITING_CONNECT
        self._v5 = False
        self._level = 4
        self._closing = False
        self._dropped = False
        self._peerGone = False
        self._finished = False
        self._draining = False
        self._readPauses: set[str] = set()
        self._writable = True
        self._sendWindow = config.maxInflight
        self._peerMaxPacket = PROTOCOL_MAX_PACKET_SIZE
        self._problemInformation = True
        self._aliases: dict[int, str] = {}
        # Server-to-client topic aliases (v5): the client's maximum, and
        # topic -> alias for the ones set on this connection.
        self._outAliasMaximum = 0
        self._outAliases: dict[str, int] = {}
        # Enhanced authentication (v5): the method, the conversation under
        # way, the CONNECT it started from.
        self._authMethod: str | None = None
        self._authExchange: Any = None
        # Retained messages still to send for new subscriptions: iterators
        # with the subscription's options and a message taken from the
        # iterator but not sent yet; and how many queued deliveries go
        # before them (live messages that arrive meanwhile go after).
        self._replays: deque[list[Any]] = deque()
        self._beforeReplays = 0
        # QoS 1/2 PUBLISHes sent on this connection and not acknowledged:
        # the send quota of section 4.9 (the in-flight window).
        self._inFlight = 0
        # Receive authorization and outbound hooks (only when configured):
        # answers that came as Deferreds and were not used yet, and the
        # messages (by id) still waiting for one.
        self._receiveChain = self.broker.authorizer
        self._checking = self._receiveChain is not None or self.broker.hooks is not None
        self._pendingPrepare: list[Any] | None = None
        # Acknowledgements waiting for store writes, in order:
        # [bytes, waiting, qos]; and how many of them are QoS 1 (they count
        # towards our Receive Maximum).
        self._acks: deque[list[Any]] = deque()
        self._pendingQos1Acks = 0
        self._preparingNow = False
        self._willChecked = False
        self._throttling: set[MQTTServerProtocol] = set()
        self._throttledBy = 0
        self._stalled = False
        self._lastProgress = 0.0
        self._lastPacketAt = 0.0
        self._keepAlive = 0
        self._connectExpiry = 0
        self._requestedExpiry = 0
        self._cleanDisconnect = False
        self._closeReason = "connection lost"
        self._timers: dict[str, IDelayedCall] = {}
        # High- and low-water marks of the session queue (messages, bytes).
        hw = max(1, config.maxQueuedMessages // 2)
        hwBytes = max(1, min(config.maxQueuedBytes, config.maxOutboundBuffer) // 2)
        self._highWater = (hw, hwBytes)
        self._lowWater = (hw // 2, hwBytes // 2)
        # In-flight packet ids still to be resent after a reconnect.
        self._resend: deque[int] = deque()
        # Packet handlers by state: only CONNECT first; only AUTH and
        # DISCONNECT while an enhanced authentication is under way.
        self._connectedHandlers: dict[type, Callable[[Any], None]] = {
            Publish: self._onPublish,
            Puback: self._onPuback,
            Pubrec: self._onPubrec,
            Pubrel: self._onPubrel,
            Pubcomp: self._onPubcomp,
            Subscribe: self._onSubscribe,
            Unsubscribe: self._onUnsubscribe,
            Pingreq: self._onPingreq,
            Disconnect: self._onDisconnect,
            Auth: self._onAuth,
        }
        self._authenticatingHandlers: dict[type, Callable[[Any], None]] = dict.fromkeys(
            self._connectedHandlers, self._notDuringAuthentication
        )
        self._authenticatingHandlers[Auth] = self._onAuth
        self._authenticatingHandlers[Disconnect] = self._onDisconnect
        self._handlers: dict[type, Callable[[Any], None]] = {Connect: self._onConnect}

    # -- connection lifecycle --------------------------------------------

    def connectionMade(self) -> None:
        config = self._config
        self._decoder = Decoder(
            isServer=True,
            maxPacketSize=config.maxPacketSize,
            # The CONNECT is held to both limits (its will can be large).
            maxConnectSize=min(config.maxConnectSize, config.maxPacketSize),
            strictStrings=not config.allowControlCharacters,
        )
        self.broker.protocols.add(self)
        self.broker.counters.connectionsTotal += 1
        self.transport.registerProducer(self, True)
        self._timers["connect"] = self._clock.callLater(
            config.connectTimeout, self._connectTimedOut
        )

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is over (it always is before the first byte of
        MQTT arrives): keep the client's certificate, if it sent one.
        """
        try:
            certificate = self.transport.getPeerCertificate()
        except Exception:
            certificate = None
        if certificate is not None:
            self.peerCertificate = certificate.to_cryptography()

    def peerDescription(self) -> str:
        """
        The peer address, as text for logs and session listings.
        """
        try:
            peer = self.transport.getPeer()
        except Exception:
            return "?"
        host = getattr(peer, "host", None)
        port = getattr(peer, "port", None)
        if host is not None and port is not None:
            return f"{host}:{port}"
        name = getattr(peer, "name", None)
        return str(name) if name else type(peer).__name__

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        if self._state == _CONNECTED and not self._closing and _DECISION in self._readPauses:
            # The peer is gone, but what it sent before it went (a PUBLISH
            # whose authorization or hook answer is pending, maybe a
            # DISCONNECT behind it) is still to be handled: finish that
            # first.  The plug-in timeout bounds the wait.
            self._peerGone = True
            return
        self._finishConnection()

    def _finishConnection(self) -> None:
        if self._finished:
            return
        self._finished = True
        wasConnected = self._state == _CONNECTED
        self._state = _CLOSED
        self._closing = True
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()
        self.broker.protocols.discard(self)
        self._releaseThrottled()
        self._replays.clear()
        if self.session is not None:
            will = None if self._cleanDisconnect else self.will
            self.broker.clientDisconnected(self, will)
            self.session = None
        if wasConnected:
            log.info(
                "{clientId!r} disconnected: {reason}",
                clientId=self.clientId,
                reason=self._closeReason,
            )
            if self.broker.hooks is not None:
                self.broker.hooks.event("disconnected", self.clientInfo, self._closeReason)
        self._decoder = None  # type: ignore[assignment]

    def detach(self, reason: str) -> None:
        """
        Give up the session without ending it (it was taken over).
        """
        self.session = None
        self._closeReason = reason

    def closeWith(
        self,
        reasonCode: int | None,
        reason: str,
        publishWill: bool = True,
        serverReference: str | None = None,
        reasonString: str | None = None,
    ) -> None:
        """
        Close the connection: a v5 client that got its CONNACK is sent
        DISCONNECT with C{reasonCode} first (with C{reasonString}, or else
        C{reason}, as Reason String, and an optional Server Reference).  The
        will is published unless C{publishWill} is false or the client
        disconnected normally.

        @param reason: why, for the log.
        """
        if self._closing:
            return
        self._closing = True
        self._closeReason = reason
        if not publishWill:
            self._cleanDisconnect = True
        if self._state == _CONNECTED and self._v5 and reasonCode is not None:
            if reasonCode not in DISCONNECT_REASONS:
                # E.g. an authenticator's 0x86 after a re-authentication:
                # DISCONNECT cannot carry it.
                reasonCode = 0x87
            extra: dict[int, Any] | None = (
                {PropertyId.SERVER_REFERENCE: serverReference} if serverReference else None
            )
            self.transport.write(self._encodeReply(
                lambda props: Disconnect(reasonCode, props), reasonString or reason, extra
            ))
        self._dropConnection()

    def _encodeReply(
        self,
        build: Callable[[Properties], Packet],
        reason: str,
        extra: Mapping[int, Any] | None = None,
    ) -> bytes:
        """
        Encode a reply that reports a problem: with C{reason} as v5 Reason
        String if the broker sends them (reason-strings), the client did not
        set Request Problem Information to 0, and the packet stays within
        the client's Maximum Packet Size [MQTT-3.1.2-25]; without it
        otherwise.

        @param build: makes the packet from its properties.
        @param extra: properties sent in any case (e.g. Server Reference).
        """
        base: Mapping[int, Any] = extra if extra else NO_PROPERTIES
        if self._v5 and self._problemInformation and self._config.reasonStrings and reason:
            props = {PropertyId.REASON_STRING: _printable(reason), **base}
            data = encode(build(props), self._level)
            if len(data) <= self._peerMaxPacket:
                return data
        return encode(build(base), self._level)

    def _dropConnection(self) -> None:
        """
        Close the transport once (after flushing what was written; aborted
        if the peer does not take it within L{CLOSE_TIMEOUT}).
        """
        self._closing = True
        if self._peerGone:
            self._finishConnection()
            return
        if self._dropped:
            return
        self._dropped = True
        connectTimer = self._timers.pop("connect", None)
        if connectTimer is not None and connectTimer.active():
            connectTimer.cancel()
        session = self.session
        if session is not None and session.connection is self:
            # From now on messages for the session wait in it (QoS 1/2), as
            # for any offline session, instead of going to a closing
            # connection [MQTT-4.5.0-1].
            session.connection = None
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        if self._state != _CLOSED:
            self._timers["abort"] = self._clock.callLater(CLOSE_TIMEOUT, self._abort)

    def _abort(self) -> None:
        self.transport.abortConnection()

    def _connectTimedOut(self) -> None:
        self._timers.pop("connect", None)
        if self._state != _CONNECTED:
            log.info("connection from {peer} closed: no CONNECT within {timeout} s",
                     peer=self.peerDescription(), timeout=self._config.connectTimeout)
            self._closeReason = "connect timeout"
            self._dropConnection()

    def _keepAliveCheck(self) -> None:
        self._timers.pop("keepalive", None)
        limit = self._keepAlive * 1.5
        now = self._clock.seconds()
        if _THROTTLE in self._readPauses or _DECISION in self._readPauses:
            # We stopped reading this client: its silence is ours.
            self._lastPacketAt = now
        elapsed = now - self._lastPacketAt
        if elapsed >= limit:
            # [MQTT-3.1.2-24]: as if the network failed, so the will is sent.
            self.closeWith(0x8D, "keep-alive timeout")
        else:
            self._timers["keepalive"] = self._clock.callLater(
                limit - elapsed, self._keepAliveCheck
            )

    # -- reading --------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self._decoder.feed(data)
        self._drain()

    def _drain(self) -> None:
        """
        Decode and handle buffered packets until the buffer is empty, the
        connection closes or reading is paused.
        """
        if self._readPauses or self._closing or self._draining:
            return
        self._draining = True
        decoder = self._decoder
        handled = False
        try:
            while True:
                packet = decoder.next()
                if packet is None:
                    break
                handled = True
                self._handlers[type(packet)](packet)
                if self._readPauses or self._closing:
                    break
        except ProtocolError as e:
            self._protocolError(e)
        except Exception:
            log.failure("error handling a packet from {clientId!r}", clientId=self.clientId)
            self.closeWith(0x83, "internal error")
        finally:
            self._draining = False
        if handled:
            self._lastPacketAt = self._clock.seconds()

    def _protocolError(self, error: ProtocolError) -> None:
        """
        Close the connection for a protocol violation.
        """
        if self._closing:
            return
        if self._state == _AUTHENTICATING:
            # Before CONNACK: a v5 client is refused with the reason code, or
            # 0x82 when CONNACK cannot carry it (e.g. 0x94 for a PUBLISH
            # sent during enhanced authentication).
            code = error.reasonCode if error.reasonCode in CONNACK_REASONS else 0x82
            self._refuse(code, str(error))
            return
        if self._state == _AWAITING_CONNECT:
            if isinstance(error, UnsupportedProtocolVersion):
                # [MQTT-3.1.2-2]: CONNACK return code 1, then close.
                self.transport.write(b"\x20\x02\x00\x01")
            elif error.protocolLevel == MQTT_5:
                # A v5 CONNECT that breaks a rule: the CONNACK may say why.
                self.transport.write(encode(Connack(False, error.reasonCode), MQTT_5))
            self._closeReason = f"invalid CONNECT: {error}"
            self._cleanDisconnect = True
            self._dropConnection()
            log.info("connection from {peer} refused: {error}", peer=self.peerDescription(),
                     error=str(error))
            return
        self.closeWith(error.reasonCode, f"protocol error: {error}", reasonString=str(error))

    def _pauseReading(self, reason: str) -> None:
        if not self._readPauses and not self._closing:
            self.transport.pauseProducing()
        self._readPauses.add(reason)

    def _resumeReading(self, reason: str) -> None:
        if reason not in self._readPauses:
            return
        self._readPauses.discard(reason)
        if reason in (_THROTTLE, _DECISION):
            # Keep-alive counts from here: the pause was the broker's doing.
            self._lastPacketAt = self._clock.seconds()
        if not self._readPauses and not self._closing:
            if self._peerGone:
                # Handle what the departed peer sent, then finish the close.
                self._drain()
                if not self._readPauses and self._state != _CLOSED:
                    self._finishConnection()
                return
            self.transport.resumeProducing()
            self._drain()

    # -- IPushProducer: the transport tells us when its buffer is full ----------

    def pauseProducing(self) -> None:
        self._writable = False
        self._pauseReading(_OUTPUT)

    def resumeProducing(self) -> None:
        self._writable = True
        if self._state == _CONNECTED:
            self._pump()
        self._resumeReading(_OUTPUT)

    def stopProducing(self) -> None:
        self._writable = False

    # -- CONNECT ----------------------------------------------------------

    def _refuse(
        self,
        v5code: int,
        reason: str,
        v3code: int | None = None,
        serverReference: str | None = None,
    ) -> None:
        """
        Refuse a CONNECT: CONNACK with a failure code, then close; nothing
        sent after the CONNECT is processed [MQTT-3.1.4-5].
        """
        if self._v5:
            if v5code not in CONNACK_REASONS:
                v5code = 0x80  # [MQTT-3.2.2-8]: only CONNACK reason codes
            extra: dict[int, Any] | None = (
                {PropertyId.SERVER_REFERENCE: serverReference} if serverReference else None
            )
            self.transport.write(self._encodeReply(
                lambda props: Connack(False, v5code, props), reason, extra
            ))
        else:
            code = v3code if v3code is not None else _V3_CONNACK_FOR_V5.get(v5code, 0x03)
            self.transport.write(bytes((0x20, 0x02, 0x00, code)))
        self._closeReason = reason
        self._cleanDisconnect = True
        log.info("connection from {peer} refused: {reason}", peer=self.peerDescription(),
                 reason=reason)
        self._dropConnection()

    def _onConnect(self, packet: Connect) -> None:
        level = packet.protocolLevel
        self.protocolLevel = self._level = level
        v5 = self._v5 = level == MQTT_5
        config = self._config
        clientId = packet.clientId
        props = packet.properties
        if v5:
            self._problemInformation = bool(
                props.get(PropertyId.REQUEST_PROBLEM_INFORMATION, 1)
            )
            self._peerMaxPacket = props.get(PropertyId.MAXIMUM_PACKET_SIZE,
                                            PROTOCOL_MAX_PACKET_SIZE)
        self._assigned = False
        if config.redirectTo or config.movedTo:
            if config.redirectTo:
                return self._refuse(0x9C, "use another server", 0x03, config.redirectTo)
            return self._refuse(0x9D, "server moved", 0x03, config.movedTo)
        if level == MQTT_3_1 and not 1 <= len(clientId) <= 23:
            return self._refuse(0x85, "MQTT 3.1 client id must have 1 to 23 characters", 0x02)
        if not clientId:
            if not v5 and not packet.cleanStart:
                # [MQTT-3.1.3-8]
                return self._refuse(0x85, "empty client id without clean session", 0x02)
            clientId = self.broker.assignClientId()
            self._assigned = True
        self.clientId = clientId
        keepAlive = packet.keepAlive
        self._serverKeepAlive: int | None = None
        if keepAlive > config.maxKeepalive or (
            v5 and keepAlive == 0 and config.maxKeepalive < 65535
        ):
            if not v5:
                return self._refuse(0x85, f"keep-alive {keepAlive} above max-keepalive", 0x02)
            keepAlive = self._serverKeepAlive = config.maxKeepalive
        self._keepAlive = keepAlive
        will = packet.will
        if will is not None:
            problem = None
            try:
                self.broker.validateWillTopic(will.topic)
            except InvalidTopic as e:
                problem = (0x90, f"invalid will topic: {e}")
            if will.qos > config.maximumQos:
                problem = (0x9B, f"will QoS {will.qos} above the maximum QoS")
            elif will.retain and not config.retainAvailable and v5:
                # [MQTT-3.2.2-13]; a 3.1.x will is kept without retain.
                problem = (0x9A, "retained messages are not supported")
            if problem is not None:
                if v5:
                    return self._refuse(*problem)
                self._closeReason = problem[1]
                self._cleanDisconnect = True
                return self._dropConnection()
        self._sessionExpiry: int | None = None
        if v5:
            self._sendWindow = props.get(PropertyId.RECEIVE_MAXIMUM, 65535)
            self._outAliasMaximum = props.get(PropertyId.TOPIC_ALIAS_MAXIMUM, 0)
            expiry = self._requestedExpiry = props.get(PropertyId.SESSION_EXPIRY_INTERVAL, 0)
            if expiry > config.maxSessionExpiry:
                # Tell the client the interval the broker uses.
                expiry = self._sessionExpiry = config.maxSessionExpiry
            self._connectExpiry = expiry
        else:
            self._connectExpiry = 0 if packet.cleanStart else config.maxSessionExpiry
        self._connectPacket = packet
        self._state = _AUTHENTICATING
        self._handlers = self._authenticatingHandlers
        method = props.get(PropertyId.AUTHENTICATION_METHOD) if v5 else None
        if method is not None:
            authenticator = self.factory.enhancedAuthenticators.get(method)
            if authenticator is None:
                return self._refuse(0x8C, f"unsupported authentication method {method!r}")
            self._authMethod = method
            self._startAuthExchange(
                authenticator, props.get(PropertyId.AUTHENTICATION_DATA), reauthentication=False
            )
            return
        self._pauseReading(_AUTH)
        try:
            result = self.factory.authenticate(packet, self)
        except Exception:
            log.failure("authentication of {clientId!r} failed", clientId=clientId)
            return self._refuse(0x87, "authentication error")
        if isinstance(result, Deferred):
            result.addCallbacks(self._authenticated, self._authenticationFailed)
        else:
            self._authenticated(result)

    def _authenticationFailed(self, failure: Failure) -> None:
        if self._closing:
            return
        if failure.check(ClientIdRefused):
            self._refuse(0x85, failure.getErrorMessage() or "client id refused", 0x02)
        elif failure.check(UnauthorizedLogin):
            self._refuse(0x86, "bad user name or password")
        elif failure.check(UnhandledCredentials):
            if self._connectPacket.username is not None:
                # Nobody knows this user: a bad user name.
                self._refuse(0x86, "bad user name or password")
            elif self.peerCertificate is None and self._certificatesChecked():
                # Its credential would have been a certificate (catalogue
                # AU-04, as mosquitto answers).
                self._refuse(0x86, "no client certificate")
            else:
                self._refuse(0x87, "not authorized")
        else:
            log.failure("authentication of {clientId!r} failed", failure,
                        clientId=self.clientId)
            self._refuse(0x87, "authentication error")

    def _certificatesChecked(self) -> bool:
        """
        Whether this listener authenticates clients by certificate.
        """
        portal = self.factory.portal
        return portal is not None and IX509Certificate in portal.checkers

    def _authenticated(self, identity: Any, authenticationData: bytes | None = None) -> None:
        if self._closing:
            return
        if identity is None:
            return self._refuse(0x87, "not authorized")
        imposed = getattr(identity, "clientId", None)
        if imposed is not None and imposed != self.clientId:
            # The identity names the client (e.g. a certificate's CN): the
            # connection takes that id, and a v5 client is told so.
            self.clientId = imposed
            self._assigned = True
        username = getattr(identity, "username", None)
        self.clientInfo = ClientInfo(
            self.clientId, username, identity, self._level, self.peerDescription()
        )
        if not self.broker.mayUseClientId(self.clientId, identity):
            # With authentication on, a session belongs to the identity that
            # made it: nobody else may resume, take over or wipe it.
            return self._refuse(0x87, "the client id belongs to another identity", 0x05)
        chain = self.broker.authorizer
        answer = True if chain is None else chain.connect(self.clientInfo)
        if isinstance(answer, Deferred):
            answer.addCallback(self._connectDecided, identity, authenticationData)
            return
        self._connectDecided(answer, identity, authenticationData)

    def _connectDecided(
        self, answer: Any, identity: Any, authenticationData: bytes | None
    ) -> None:
        if self._closing:
            return
        if answer is not True:
            deny = answer if isinstance(answer, Deny) else DENY
            return self._refuse(deny.reasonCode, deny.reason, 0x05)
        will = self._connectPacket.will
        chain = self.broker.authorizer
        if will is not None and chain is not None and not self._willChecked:
            # The will is a publish like any other: a client may not leave
            # one on a topic it may not publish to (as mosquitto checks).
            self._willChecked = True
            willAnswer = chain.publish(self.clientInfo, will.topic, will.qos, will.retain)
            if isinstance(willAnswer, Deferred):
                willAnswer.addCallback(self._connectDecided, identity, authenticationData)
                return
            if willAnswer is not True:
                deny = willAnswer if isinstance(willAnswer, Deny) else DENY
                return self._refuse(deny.reasonCode, f"will: {deny.reason}", 0x05)
        try:
            self._completeConnect(identity, authenticationData)
        except Exception:
            log.failure("error completing the CONNECT of {clientId!r}", clientId=self.clientId)
            self.closeWith(0x83, "internal error")
            return
        self._resumeReading(_AUTH)

    # -- enhanced authentication (MQTT 5.0 section 4.12) ------------------------

    def _startAuthExchange(
        self, authenticator: IEnhancedAuthenticator, data: bytes | None, reauthentication: bool
    ) -> None:
        try:
            exchange = authenticator.newExchange(
                self.clientId, self._connectPacket if not reauthentication else self._connect,
                reauthentication,
            )
        except Exception:
            log.failure("enhanced authentication of {clientId!r} failed", clientId=self.clientId)
            self._authStepDone(AuthFailure(0x87, "authentication error"))
            return
        self._authExchange = exchange
        if reauthentication:
            self._timers["reauthentication"] = self._clock.callLater(
                self._config.connectTimeout, self._reauthenticationTimedOut
            )
        self._authStep(data)

    def _authStep(self, data: bytes | None) -> None:
        """
        Ask the authenticator about the client's latest data; reading
        pauses until it answers, so packets keep their order.
        """
        self._pauseReading(_AUTH)
        try:
            result = self._authExchange.step(data)
        except Exception:
            log.failure("enhanced authentication of {clientId!r} failed", clientId=self.clientId)
            result = AuthFailure(0x87, "authentication error")
        if isinstance(result, Deferred):
            result.addCallbacks(self._authStepDone, self._authStepFailed)
        else:
            self._authStepDone(result)

    def _authStepFailed(self, failure: Failure) -> None:
        log.failure("enhanced authentication of {clientId!r} failed", failure,
                    clientId=self.clientId)
        self._authStepDone(AuthFailure(0x87, "authentication error"))

    def _authStepDone(self, result: Any) -> None:
        if self._closing:
            return
        reauthentication = self._state == _CONNECTED
        method = self._authMethod
        if isinstance(result, AuthContinue):
            props: dict[int, Any] = {PropertyId.AUTHENTICATION_METHOD: method}
            if result.data:
                props[PropertyId.AUTHENTICATION_DATA] = result.data
            data = encode(Auth(0x18, props), MQTT_5)
            if len(data) > self._peerMaxPacket:
                # [MQTT-3.1.2-24]: the exchange cannot go on.
                result = AuthFailure(0x95, "authentication data larger than the client accepts")
            else:
                self.transport.write(data)
                self._resumeReading(_AUTH)
                return
        self._authExchange = None
        timer = self._timers.pop("reauthentication", None)
        if timer is not None and timer.active():
            timer.cancel()
        if isinstance(result, AuthSuccess) and result.identity is not None:
            if not reauthentication:
                self._authenticated(result.identity, result.data)
                return
            if not _sameIdentity(result.identity, self.identity):
                # Re-authentication proves the same identity again; it does
                # not switch users (the session and what authorizers see
                # belong to the first one).
                self.closeWith(0x87, "re-authenticated as another identity")
                return
            self.identity = result.identity
            if self.session is not None:
                self.session.identity = result.identity
            done: dict[int, Any] = {PropertyId.AUTHENTICATION_METHOD: method}
            if result.data:
                done[PropertyId.AUTHENTICATION_DATA] = result.data
            if self._writeLimited(encode(Auth(0x00, done), MQTT_5), "AUTH"):
                self._resumeReading(_AUTH)
            return
        if not isinstance(result, AuthFailure):
            log.error("enhanced authentication of {clientId!r}: {result!r} is not an answer",
                      clientId=self.clientId, result=result)
            result = AuthFailure(0x87, "authentication error")
        if reauthentication:
            self.closeWith(result.reasonCode, result.reason)
        else:
            code = result.reasonCode if result.reasonCode in CONNACK_REASONS else 0x87
            self._refuse(code, result.reason)

    def _reauthenticationTimedOut(self) -> None:
        self._timers.pop("reauthentication", None)
        self.closeWith(0x87, "re-authentication timeout")

    def _notDuringAuthentication(self, packet: Any) -> None:
        # [MQTT-4.12.0-?]: until CONNACK only AUTH and DISCONNECT may follow
        # a CONNECT with an Authentication Method.
        raise ProtocolError(f"{type(packet).__name__} before the authentication completed")

    def _onAuth(self, packet: Auth) -> None:
        if self._authMethod is None:
            # The CONNECT carried no Authentication Method (section 4.12).
            raise ProtocolError("AUTH without an authentication method")
        props = packet.properties
        if props.get(PropertyId.AUTHENTICATION_METHOD) != self._authMethod:
            raise ProtocolError("AUTH with another authentication method")
        data = props.get(PropertyId.AUTHENTICATION_DATA)
        if packet.reasonCode == 0x18 and self._authExchange is not None:
            self._authStep(data)
        elif packet.reasonCode == 0x19 and self._state == _CONNECTED and (
            self._authExchange is None
        ):
            authenticator = self.factory.enhancedAuthenticators[self._authMethod]
            self._startAuthExchange(authenticator, data, reauthentication=True)
        else:
            raise ProtocolError(f"unexpected AUTH with reason code 0x{packet.reasonCode:02X}")

    # -- CONNACK ------------------------------------------------------------------

    def _connackProperties(
        self, authenticationData: bytes | None
    ) -> dict[int, Any]:
        """
        The v5 CONNACK properties: the server's capabilities that differ
        from the protocol's defaults, and what the client must be told.
        """
        config = self._config
        props: dict[int, Any] = {}
        if self._assigned:
            props[PropertyId.ASSIGNED_CLIENT_IDENTIFIER] = self.clientId
        if self._sessionExpiry is not None:
            props[PropertyId.SESSION_EXPIRY_INTERVAL] = self._sessionExpiry
        if self._serverKeepAlive is not None:
            props[PropertyId.SERVER_KEEP_ALIVE] = self._serverKeepAlive
        if config.receiveMaximum != 65535:
            props[PropertyId.RECEIVE_MAXIMUM] = config.receiveMaximum
        if config.maxPacketSize < PROTOCOL_MAX_PACKET_SIZE:
            props[PropertyId.MAXIMUM_PACKET_SIZE] = config.maxPacketSize
        if config.topicAliasMaximum:
            props[PropertyId.TOPIC_ALIAS_MAXIMUM] = config.topicAliasMaximum
        if config.maximumQos < 2:
            props[PropertyId.MAXIMUM_QOS] = config.maximumQos
        if not config.retainAvailable:
            props[PropertyId.RETAIN_AVAILABLE] = 0
        if not config.wildcardSubscriptions:
            props[PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE] = 0
        if not config.subscriptionIdentifiers:
            props[PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE] = 0
        if not config.sharedSubscriptions:
            props[PropertyId.SHARED_SUBSCRIPTION_AVAILABLE] = 0
        connect = self._connectPacket
        if config.responseInformation and connect.properties.get(
            PropertyId.REQUEST_RESPONSE_INFORMATION
        ):
            props[PropertyId.RESPONSE_INFORMATION] = config.responseInformation.replace(
                "{clientId}", self.clientId
            )
        if self._authMethod is not None:
            props[PropertyId.AUTHENTICATION_METHOD] = self._authMethod
            if authenticationData:
                props[PropertyId.AUTHENTICATION_DATA] = authenticationData
        return props

    def _completeConnect(self, identity: Any, authenticationData: bytes | None = None) -> None:
        packet = self._connectPacket
        self.identity = identity
        props = self._connackProperties(authenticationData) if self._v5 else {}
        if len(encode(Connack(True, 0, props or NO_PROPERTIES), self._level)) > self._peerMaxPacket:
            # [MQTT-3.1.2-24]: not even the CONNACK can be sent; refuse before
            # touching any session (no takeover, no will).
            self._closeReason = "CONNACK larger than the client's maximum packet size"
            self._cleanDisconnect = True
            self._dropConnection()
            return
        session, present = self.broker.connectClient(
            self, self.clientId, packet.cleanStart, self._connectExpiry, identity
        )
        self.session = session
        self.will = packet.will
        del self._connectPacket
        # Kept for re-authentication (without the will, which can be large).
        self._connect = packet
        self.transport.write(encode(Connack(present, 0, props or NO_PROPERTIES), self._level))
        self._state = _CONNECTED
        self._handlers = self._connectedHandlers
        timer = self._timers.pop("connect", None)
        if timer is not None and timer.active():
            timer.cancel()
        now = self._clock.seconds()
        self._lastPacketAt = self._lastProgress = now
        if self._keepAlive:
            self._timers["keepalive"] = self._clock.callLater(
                self._keepAlive * 1.5, self._keepAliveCheck
            )
        log.info(
            "{clientId!r} connected from {peer} (MQTT {version}, clean={clean}, "
            "keepalive={keepAlive}, session present={present})",
            clientId=self.clientId,
            peer=self.peerDescription(),
            version={3: "3.1", 4: "3.1.1", 5: "5.0"}[packet.protocolLevel],
            clean=packet.cleanStart,
            keepAlive=self._keepAlive,
            present=present,
        )
        # Resend what was in flight, in order, only now [MQTT-4.4.0-1]:
        # PUBRELs at once (they take no send quota), PUBLISHes as the new
        # connection's window allows (_pump sends them first).
        for packetId, entry in list(session.inflight.items()):
            entry.sentOn = None
            if entry.released:
                self.transport.write(encodeAck(0x62, packetId))
            else:
                self._resend.append(packetId)
        if self.broker.hooks is not None:
            self.broker.hooks.event("connected", self.clientInfo)
        if present and self._receiveChain is not None:
            self._reauthorizeSubscriptions(session)
        self._pump()
        self.broker.drainSharedQueues(session)

    def _reauthorizeSubscriptions(self, session: Session) -> None:
        """
        Ask the authorizers again about the subscriptions of a resumed
        session and drop the ones now denied (catalogue AU-10; deliveries
        are checked one by one anyway).
        """
        chain = self._receiveChain
        assert chain is not None
        for fullFilter, options in list(session.subscriptions.items()):
            answer = chain.subscribe(self.clientInfo, options.topicFilter, options.qos)
            if isinstance(answer, Deferred):
                answer.addCallback(self._resubscribeDecided, session, fullFilter, options)
            else:
                self._resubscribeDecided(answer, session, fullFilter, options)

    def _resubscribeDecided(
        self, answer: Any, session: Session, fullFilter: str, options: SubscriptionOptions
    ) -> None:
        if answer is not True and session.subscriptions.get(fullFilter) is options:
            self.broker.removeSubscription(session, fullFilter)
            log.info("{clientId!r}: subscription {filter!r} no longer authorized, removed",
                     clientId=self.clientId, filter=fullFilter)

    # -- PUBLISH from the client ------------------------------------------------

    def _onPublish(self, packet: Publish) -> None:
        session = self.session
        assert session is not None
        topic = packet.topic
        qos = packet.qos
        props = packet.properties
        if self._v5 and props:
            alias = props.get(PropertyId.TOPIC_ALIAS)
            if alias is not None:
                if alias > self._config.topicAliasMaximum:
                    raise ProtocolError(f"topic alias {alias} above the maximum", 0x94)
                if topic:
                    self._aliases[alias] = topic
                else:
                    known = self._aliases.get(alias)
                    if known is None:
                        raise ProtocolError(f"topic alias {alias} is not set")
                    topic = known
        config = self._config
        if qos > config.maximumQos:
            raise ProtocolError(f"QoS {qos} above the maximum QoS", 0x9B)  # [MQTT-3.2.2-11]
        retain = packet.retain
        if retain and not config.retainAvailable:
            if self._v5:
                raise ProtocolError("retained messages are not supported", 0x9A)
            retain = False  # 3.1.x: delivered, not retained
        tooDeep = topic.count("/") >= config.maxTopicLevels
        if tooDeep and not self._v5:
            raise ProtocolError("topic has more levels than max-topic-levels", 0x90)
        if qos:
            # The codec guarantees a non-zero packet id for QoS 1 and 2.
            packetId: int = packet.packetId  # type: ignore[assignment]
            ack = 0x40 if qos == 1 else 0x50
            awaiting = session.awaitingRel
            if qos == 2:
                if packetId in awaiting:
                    # A duplicate: acknowledge again, never forward twice
                    # [MQTT-4.3.3-2].
                    self._reply(encodeAck(0x50, packetId))
                    return
                limit = self._config.receiveMaximum if self._v5 else self._config.maxAwaitingRel
                if len(awaiting) + self._pendingQos1Acks >= limit:
                    raise ProtocolError("too many QoS 2 messages awaiting PUBREL", 0x93)
            elif self._pendingQos1Acks and self._v5 and (
                len(awaiting) + self._pendingQos1Acks >= self._config.receiveMaximum
            ):
                # QoS 1 messages whose PUBACK waits for the store count too.
                raise ProtocolError("Receive Maximum exceeded", 0x93)
            if tooDeep:
                # v5: "Topic Name invalid", the message is refused, the
                # connection stays (a QoS 2 flow ends with this PUBREC).
                self._writeAck(ack, packetId, 0x90, "topic has more levels than allowed")
                return
        elif tooDeep:
            self.broker.counters.messagesDropped += 1
            return
        chain = self.broker.authorizer
        if chain is not None:
            answer = chain.publish(self.clientInfo, topic, qos, retain)
            if answer is not True:
                if isinstance(answer, Deferred):
                    # Read nothing more until the answer is in (order kept).
                    self._pauseReading(_DECISION)
                    answer.addCallback(self._decidedLater, self._publishDecided, packet,
                                       topic, retain)
                else:
                    self._publishDenied(packet, answer)
                return
        self._acceptPublish(packet, topic, retain)

    def _publishDecided(self, answer: Any, packet: Publish, topic: str, retain: bool) -> None:
        if answer is True:
            self._acceptPublish(packet, topic, retain)
        else:
            self._publishDenied(packet, answer)

    def _publishDenied(self, packet: Publish, answer: Any) -> None:
        """
        Refuse a PUBLISH the authorizers denied: v5 QoS 1/2 are told the
        reason code; 3.1.x gets a positive acknowledgement [MQTT-3.3.5-2]
        (and nothing is delivered); QoS 0 is dropped.
        """
        deny = answer if isinstance(answer, Deny | Drop) else DENY
        qos = packet.qos
        if not qos:
            return
        packetId: int = packet.packetId  # type: ignore[assignment]
        ack = 0x40 if qos == 1 else 0x50
        if self._v5:
            code = deny.reasonCode if deny.reasonCode in PUBACK_REASONS else 0x87
            self._writeAck(ack, packetId, code, deny.reason)
            return
        data = encodeAck(ack, packetId)
        if qos == 1:
            self._reply(data)
            return
        assert self.session is not None
        _, writes = _collectWrites(self.broker.journal, self.session.addAwaitingRel, packetId)
        self._replyStored(data, writes)

    def _acceptPublish(self, packet: Publish, topic: str, retain: bool) -> None:
        """
        Take an allowed PUBLISH: retain it, acknowledge it, deliver it.
        """
        qos = packet.qos
        props = packet.properties
        broker = self.broker
        if props:
            message = broker.makeMessage(topic, packet.payload, qos, retain, props,
                                         self.clientId)
        else:
            message = Message(topic, packet.payload, qos, retain, NO_PROPERTIES, self.clientId)
        hooks = broker.hooks
        if hooks is not None:
            answer = hooks.publish(self.clientInfo, message)
            if isinstance(answer, Deferred):
                self._pauseReading(_DECISION)
                answer.addCallback(self._decidedLater, self._publishIntercepted, packet)
                return
            if isinstance(answer, Drop):
                self._publishDenied(packet, answer)
                return
            message = answer
        self._routePublish(packet, message)

    def _publishIntercepted(self, answer: Any, packet: Publish) -> None:
        if isinstance(answer, Message):
            self._routePublish(packet, answer)
        else:
            self._publishDenied(packet, answer)

    def _routePublish(self, packet: Publish, message: Message) -> None:
        """
        Retain, acknowledge and deliver an accepted message.
        """
        session = self.session
        assert session is not None
        qos = packet.qos
        packetId: int = packet.packetId or 0
        ack = 0x40 if qos == 1 else 0x50
        broker = self.broker
        journal = broker.journal
        if journal is not None and qos:
            self._routeStored(packet, message, journal)
            return
        retain = message.retain
        if retain and not broker.storeRetained(message):
            if self._v5 and qos:
                # max-retained-messages: refused as a whole, so that the
                # failure code means what it says.
                self._writeAck(ack, packetId, 0x97, "retained message limit reached")
                return
            # 3.1.x, or v5 QoS 0: delivered, not retained.
        broker.counters.messagesIn += 1
        found, groups = broker.match(message.topic)
        if qos:
            # PUBACK (QoS 1) or PUBREC (QoS 2) before any copy of the message
            # goes out, so a client subscribed to its own topic sees the
            # acknowledgement first.  v5 says 0x10 when nobody subscribed.
            if qos == 2:
                session.addAwaitingRel(packetId)
            self.transport.write(encodeAck(
                ack, packetId, 0x10 if self._v5 and not found and not groups else 0))
        if found or groups:
            broker.currentSource = self
            try:
                broker.deliver(message, found, groups)
            finally:
                broker.currentSource = None

    def _routeStored(self, packet: Publish, message: Message, journal: Journal) -> None:
        """
        Retain and deliver a QoS 1/2 message with a store configured: the
        PUBACK/PUBREC goes out once every write it caused is stored
        ("acknowledged means stored"), after those of earlier messages.
        """
        session = self.session
        assert session is not None
        broker = self.broker
        qos = packet.qos
        packetId: int = packet.packetId  # type: ignore[assignment]
        ack = 0x40 if qos == 1 else 0x50
        # Exactly once across a crash: with a durable store, a QoS 2
        # message goes out to subscribers only once its packet id and its
        # copies are committed, so that the publisher's resend of a message
        # the broker forgot cannot be delivered twice (catalogue DU-03).
        # Its deliveries wait in the subscribers' queues until then.
        hold = qos == 2 and broker.store is not None and broker.store.durable
        held: set[MQTTServerProtocol] | None = set() if hold else None
        outer = journal.begin()
        try:
            if message.retain and not broker.storeRetained(message) and self._v5:
                refused = True
            else:
                refused = False
                broker.counters.messagesIn += 1
                found, groups = broker.match(message.topic)
                if qos == 2:
                    session.addAwaitingRel(packetId)
                if found or groups:
                    broker.currentSource = self
                    broker.held = held
                    try:
                        broker.deliver(message, found, groups)
                    finally:
                        broker.currentSource = None
                        broker.held = None
        finally:
            writes = journal.end(outer)
        if refused:
            self._writeAck(ack, packetId, 0x97, "retained message limit reached")
            return
        data = encodeAck(ack, packetId, 0x10 if self._v5 and not found and not groups else 0)
        self._replyStored(data, writes, qos == 1, held or None)

    def _replyStored(
        self,
        data: bytes,
        writes: list[Deferred[Any]] | None,
        countsAsQos1: bool = False,
        held: set[MQTTServerProtocol] | None = None,
    ) -> None:
        """
        Send an acknowledgement once the store writes behind it are stored,
        and after every acknowledgement before it [MQTT-4.6.0-2].

        @param writes: the Deferreds of the writes it waits for.
        @param countsAsQos1: whether it is a PUBACK (a QoS 1 message waiting
            for it counts towards our Receive Maximum).
        @param held: connections whose queued deliveries may go out once
            the writes are stored.
        """
        if not writes:
            if self._acks:
                self._acks.append([data, False, False])
            else:
                self.transport.write(data)
            if held:
                _release(held)
            return
        entry = [data, True, countsAsQos1]
        self._acks.append(entry)
        if countsAsQos1:
            self._pendingQos1Acks += 1
        stored = writes[0] if len(writes) == 1 else gatherResults(writes, consumeErrors=True)
        stored.addCallbacks(self._ackStored, self._ackNotStored, callbackArgs=(entry, held),
                            errbackArgs=(entry, held))

    def _ackStored(self, result: Any, entry: list[Any],
                   held: set[MQTTServerProtocol] | None = None) -> None:
        if held:
            _release(held)
        entry[1] = False
        if entry[2]:
            entry[2] = False
            self._pendingQos1Acks -= 1
        acks = self._acks
        while acks and not acks[0][1]:
            if not self._closing:
                self.transport.write(acks[0][0])
            acks.popleft()

    def _ackNotStored(self, failure: Failure, entry: list[Any],
                      held: set[MQTTServerProtocol] | None = None) -> None:
        if held:
            # Not stored, but taken in memory: it goes out (the publisher,
            # not acknowledged, may send it again).
            _release(held)
        if self._closing:
            return
        log.failure("store write failed for {clientId!r}", failure, clientId=self.clientId)
        # Nothing that is not stored is acknowledged: the client sends it
        # again after reconnecting.
        self.closeWith(0x80, "the message could not be stored")

    def _reply(self, data: bytes) -> None:
        """
        Send an acknowledgement that waits for no store write itself (but
        stays behind those that do).
        """
        if self._acks:
            self._acks.append([data, False, False])
        else:
            self.transport.write(data)

    def _writeAck(self, header: int, packetId: int, code: int, reason: str) -> None:
        """
        Write a v5 PUBACK/PUBREC/PUBCOMP with a failure reason code (and a
        Reason String when the client allows it).
        """
        kind = Puback if header == 0x40 else Pubrec if header == 0x50 else Pubcomp
        self._reply(self._encodeReply(lambda props: kind(packetId, code, props), reason))

    # -- acknowledgements from the client ---------------------------------------

    def _onPuback(self, packet: Puback) -> None:
        session = self.session
        assert session is not None
        entry = session.inflight.get(packet.packetId)
        if entry is None:
            return  # unsolicited: ignored
        if entry.qos != 1:
            raise ProtocolError("PUBACK for a QoS 2 message")
        self._acknowledged(packet.packetId)

    def _onPubrec(self, packet: Pubrec) -> None:
        session = self.session
        assert session is not None
        entry = session.inflight.get(packet.packetId)
        if entry is None:
            return
        if entry.qos != 2:
            raise ProtocolError("PUBREC for a QoS 1 message")
        if packet.reasonCode >= 0x80:
            # The client refused it: the flow ends here (v5 section 4.3.3).
            self._acknowledged(packet.packetId)
            return
        # PUBREL once "released" is stored: after a crash the broker resends
        # PUBREL, not the PUBLISH the client already has [MQTT-4.4.0-1].
        _, writes = _collectWrites(self.broker.journal, session.release, packet.packetId)
        self._replyStored(encodeAck(0x62, packet.packetId), writes)

    def _onPubcomp(self, packet: Pubcomp) -> None:
        session = self.session
        assert session is not None
        entry = session.inflight.get(packet.packetId)
        if entry is None:
            return
        if entry.qos != 2 or not entry.released:
            raise ProtocolError("PUBCOMP before PUBREC")
        self._acknowledged(packet.packetId)

    def _onPubrel(self, packet: Pubrel) -> None:
        session = self.session
        assert session is not None
        # PUBCOMP only once the packet id is forgotten in the store too: the
        # client may use it again for a new message at once.
        known, writes = _collectWrites(
            self.broker.journal, session.removeAwaitingRel, packet.packetId
        )
        if not known and self._v5:
            self._writeAck(0x70, packet.packetId, 0x92, "unknown packet identifier")
            return
        self._replyStored(encodeAck(0x70, packet.packetId), writes)

    # -- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------

    def _onSubscribe(self, packet: Subscribe) -> None:
        session = self.session
        assert session is not None
        broker = self.broker
        v5 = self._v5
        level = self.protocolLevel
        config = self._config
        subscriptionId = None
        if packet.properties:
            ids = packet.properties.get(PropertyId.SUBSCRIPTION_IDENTIFIER)
            if ids:
                if not config.subscriptionIdentifiers:
                    raise ProtocolError("subscription identifiers are not supported", 0xA1)
                subscriptionId = ids[0]
        # Each filter is either refused at once (reason code, reason) or
        # planned, then put to the authorizers.
        planned: list[_Refusal | _SubscribePlan] = []
        added = 0
        for request in packet.subscriptions:
            fullFilter = request.topicFilter
            refusal = None
            try:
                group, topicFilter = broker.checkFilter(fullFilter)
            except InvalidTopic as e:
                refusal = _Refusal(0x8F, f"invalid topic filter: {e}")
            else:
                if group is not None and request.noLocal:
                    # [MQTT-3.8.3-4]
                    raise ProtocolError("No Local on a shared subscription")
                isNew = fullFilter not in session.subscriptions
                if group is not None and not config.sharedSubscriptions:
                    refusal = _Refusal(0x9E, "shared subscriptions are not supported")
                elif not config.wildcardSubscriptions and (
                    "+" in topicFilter or "#" in topicFilter
                ):
                    refusal = _Refusal(0xA2, "wildcard subscriptions are not supported")
                if refusal is not None and v5:
                    # The CONNACK said so: sections 3.2.2.3.11 and 3.2.2.3.13
                    # make it a Protocol Error, reported with this code.
                    raise ProtocolError(refusal.reason, refusal.code)
                elif isNew and len(session.subscriptions) + added >= config.maxSubscriptions:
                    refusal = _Refusal(0x97, "too many subscriptions")
                elif isNew:
                    added += 1
            if refusal is not None:
                if level == MQTT_3_1:
                    # 3.1 has no failure return code: refuse by closing.
                    raise ProtocolError(refusal.reason, refusal.code)
                planned.append(refusal)
                continue
            planned.append(_SubscribePlan(
                request, fullFilter, group, topicFilter, isNew,
                min(request.qos, config.maximumQos),
            ))
        chain = broker.authorizer
        if chain is None:
            self._subscribeDecided(None, packet, planned, subscriptionId)
            return
        answers = [
            chain.subscribe(self.clientInfo, item.topicFilter, item.qos)
            if isinstance(item, _SubscribePlan) else True
            for item in planned
        ]
        if not any(isinstance(answer, Deferred) for answer in answers):
            self._subscribeDecided(answers, packet, planned, subscriptionId)
            return
        # Some answers come later: read nothing more until they are in.
        self._pauseReading(_DECISION)
        gatherResults([
            answer if isinstance(answer, Deferred) else succeed(answer) for answer in answers
        ]).addCallback(self._decidedLater, self._subscribeDecided, packet, planned,
                       subscriptionId)

    def _decidedLater(self, answers: Any, continuation: Callable[..., None],
                      *args: Any) -> None:
        """
        Carry on with a packet whose authorization answer came as a
        Deferred, then read on.
        """
        if self._closing:
            return
        try:
            continuation(answers, *args)
        except ProtocolError as e:
            self._protocolError(e)
        except Exception:
            log.failure("error handling a packet from {clientId!r}", clientId=self.clientId)
            self.closeWith(0x83, "internal error")
        self._resumeReading(_DECISION)

    def _subscribeDecided(
        self,
        answers: list[Any] | None,
        packet: Subscribe,
        planned: list[_Refusal | _SubscribePlan],
        subscriptionId: int | None,
    ) -> None:
        """
        Add the subscriptions the authorizers allowed and send the SUBACK.
        """
        session = self.session
        if session is None:
            return
        broker = self.broker
        if self._level == MQTT_3_1 and answers is not None:
            for index, item in enumerate(planned):
                if isinstance(item, _SubscribePlan) and answers[index] is not True:
                    # 3.1 cannot refuse one filter: refuse the whole packet
                    # (before adding any of its filters).
                    raise ProtocolError(
                        f"subscription to {item.topicFilter!r} not authorized", 0x87
                    )
        (codes, replays, problems, sharedAdded), writes = _collectWrites(
            broker.journal, self._subscribeApply, answers, session, planned, subscriptionId
        )
        suback = self._encodeReply(
            lambda props: Suback(packet.packetId, tuple(codes), props), "; ".join(problems)
        )
        if len(suback) > self._peerMaxPacket:
            self.closeWith(0x95, "SUBACK larger than the client's maximum packet size")
            return
        # The SUBACK waits until the subscriptions are stored; matching
        # messages may go out before it (MQTT 3.1.1 section 3.8.4).
        self._replyStored(suback, writes)
        if replays:
            if not self._replays:
                self._beforeReplays = len(session.queue)
            for options in replays:
                self._replays.append([broker.iterRetained(options.topicFilter), options, None])
            self._pump()
        if sharedAdded:
            broker.drainSharedQueues(session)

    def _subscribeApply(
        self,
        answers: list[Any] | None,
        session: Session,
        planned: list[_Refusal | _SubscribePlan],
        subscriptionId: int | None,
    ) -> tuple[list[int], list[SubscriptionOptions], list[str], bool]:
        """
        Add the subscriptions the authorizers allowed.

        @return: the SUBACK codes, the subscriptions that get retained
            messages, the problems to report, whether a shared one was added.
        """
        broker = self.broker
        v5 = self._v5
        codes = []
        replays = []
        problems = []
        sharedAdded = False
        for index, item in enumerate(planned):
            if isinstance(item, _Refusal):
                codes.append(item.code if v5 else 0x80)
                problems.append(item.reason)
                continue
            answer = True if answers is None else answers[index]
            if answer is not True:
                deny = answer if isinstance(answer, Deny) else DENY
                if not item.isNew:
                    # A subscription now denied does not stay on.
                    broker.removeSubscription(session, item.fullFilter)
                codes.append((deny.reasonCode if deny.reasonCode in SUBACK_REASONS else 0x87)
                             if v5 else 0x80)
                problems.append(deny.reason)
                continue
            request = item.request
            options = SubscriptionOptions(
                item.topicFilter, item.qos, request.noLocal, request.retainAsPublished,
                request.retainHandling, subscriptionId, item.group,
            )
            broker.addSubscription(session, item.fullFilter, options)
            codes.append(item.qos)
            if broker.hooks is not None:
                broker.hooks.event("subscribed", self.clientInfo, item.fullFilter, item.qos)
            sharedAdded = sharedAdded or item.group is not None
            # Retained messages: not for shared subscriptions; Retain
            # Handling 1 only for a new subscription, 2 never.
            if item.group is None and (
                request.retainHandling == 0 or (request.retainHandling == 1 and item.isNew)
            ):
                replays.append(options)
        return codes, replays, problems, sharedAdded

    def _onUnsubscribe(self, packet: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        codes, writes = _collectWrites(
            self.broker.journal, self._unsubscribeApply, session, packet.topicFilters
        )
        unsuback = encode(Unsuback(packet.packetId, tuple(codes)), self._level)
        if len(unsuback) > self._peerMaxPacket:
            self.closeWith(0x95, "UNSUBACK larger than the client's maximum packet size")
            return
        self._replyStored(unsuback, writes)

    def _unsubscribeApply(self, session: Session, topicFilters: Sequence[str]) -> list[int]:
        """
        Remove subscriptions.

        @return: the UNSUBACK codes.
        """
        codes = []
        hooks = self.broker.hooks
        for fullFilter in topicFilters:
            existed = self.broker.removeSubscription(session, fullFilter)
            codes.append(0x00 if existed else 0x11)
            if existed and hooks is not None:
                hooks.event("unsubscribed", self.clientInfo, fullFilter)
        return codes

    def _writeLimited(self, data: bytes, what: str) -> bool:
        """
        Write a reply whose size depends on the request, unless it exceeds
        the client's Maximum Packet Size [MQTT-3.1.2-24]: then close the
        connection (v5 0x95).

        @return: whether it was written.
        """
        if len(data) <= self._peerMaxPacket:
            self.transport.write(data)
            return True
        self.closeWith(0x95, f"{what} larger than the client's maximum packet size")
        return False

    # -- PINGREQ, DISCONNECT, AUTH ------------------------------------------------

    def _onPingreq(self, packet: Pingreq) -> None:
        self.transport.write(_PINGRESP)

    def _onDisconnect(self, packet: Disconnect) -> None:
        session = self.session
        if self._v5:
            expiry = packet.properties.get(PropertyId.SESSION_EXPIRY_INTERVAL)
            if expiry is not None:
                if self._requestedExpiry == 0 and expiry != 0:
                    # Section 3.14.2.2.2: about the value the client sent.
                    raise ProtocolError("session expiry set at DISCONNECT after 0 at CONNECT")
                if session is not None:
                    wasPersistent = session.persistent
                    session.expiryInterval = min(expiry, self._config.maxSessionExpiry)
                    self.broker.sessionChanged(session, wasPersistent)
        # Only a normal disconnection (0x00, and any 3.1.x DISCONNECT)
        # discards the will [MQTT-3.1.2-10], [MQTT-3.14.4-3]; 0x04 and the
        # error codes keep it [MQTT-3.1.2-8].
        self._cleanDisconnect = not self._v5 or packet.reasonCode == 0x00
        self._closeReason = "client disconnected" if packet.reasonCode in (0, 4) else (
            f"client disconnected with reason 0x{packet.reasonCode:02X}"
        )
        self._dropConnection()

    # -- delivering messages to the client ------------------------------------

    def sendMessage(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscriptionIds: tuple[int, ...],
        group: Any = None,
    ) -> None:
        """
        Deliver a message to this client now if its output and in-flight
        window allow, else queue it (see the module docstring for the flow
        control rules).
        """
        session = self.session
        if session is None:
            return
        if self._closing:
            # Still attached while closing (e.g. within connectionLost): the
            # session keeps QoS 1/2 messages as for an offline session.
            if qos:
                session.enqueue(session.newDelivery(message, qos, retain, subscriptionIds, group),
                                *session.offlineLimits)
            return
        if (
            self._writable
            and not session.queue
            and not self._resend
            and not self._replays
            and (not qos or (self._inFlight < self._sendWindow
                             and len(session.inflight) < 0xFFFF))
            and self.broker.held is None
        ):
            if self._checking:
                delivery = session.newDelivery(message, qos, retain, subscriptionIds, group)
                prepared = self._prepare(message, delivery)
                if prepared is False:
                    return
                if prepared is None:
                    # The answer comes later: wait in the queue, in order.
                    session.forceEnqueue(delivery)
                    return
                message = prepared  # type: ignore[assignment]
            self._write(message, qos, retain, subscriptionIds, group)
            return
        delivery = session.newDelivery(message, qos, retain, subscriptionIds, group)
        if self._stalled:
            if not qos:
                session.drop(message, "subscriber stalled")
                return
            if session.enqueue(delivery, self._config.maxQueuedMessages,
                               self._config.maxQueuedBytes):
                self._checkOverflow()
            return
        session.forceEnqueue(delivery)
        held = self.broker.held
        if held is not None:
            held.add(self)
        if len(session.queue) >= self._highWater[0] or session.queuedBytes >= self._highWater[1]:
            self._congested()

    def _write(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscriptionIds: tuple[int, ...],
        group: Any = None,
    ) -> None:
        """
        Write one PUBLISH (assigning a packet id for QoS 1/2, and a topic
        alias when the v5 client accepts them).
        """
        session = self.session
        assert session is not None
        now = None
        if message.expiresAt is not None:
            now = self._clock.seconds()
            if message.expiresAt <= now:
                session.drop(message, "expired")
                return
        alias = 0
        known = False
        if self._outAliasMaximum:
            # Topic aliases towards the client: the first topics sent get
            # one (up to the client's Topic Alias Maximum); later PUBLISHes
            # to them carry the alias and an empty topic name.
            alias = self._outAliases.get(message.topic, 0)
            if alias:
                known = True
            elif len(self._outAliases) < self._outAliasMaximum:
                alias = len(self._outAliases) + 1
        prefix, suffix = message.encodeParts(
            self._level, qos, retain, subscriptionIds, now, False, alias, known
        )
        if len(prefix) + len(suffix) + (2 if qos else 0) > self._peerMaxPacket:
            # Too large for this client [MQTT-3.1.2-25]: dropped for it alone.
            session.drop(message, "larger than the client's maximum packet size")
            return
        if alias and not known:
            self._outAliases[message.topic] = alias
        self.broker.counters.messagesOut += 1
        if not qos:
            self.transport.write(prefix + suffix)
            return
        packetId = session.allocatePacketId()
        entry = InflightEntry(message, qos, retain, subscriptionIds, group)
        entry.sentOn = self
        session.addInflight(packetId, entry)
        self._inFlight += 1
        self.transport.write(prefix + packetId.to_bytes(2, "big") + suffix)

    def _resendInflight(self, packetId: int, entry: InflightEntry) -> None:
        """
        Resend an unacknowledged PUBLISH after a reconnect, with DUP set
        [MQTT-4.4.0-1] (unless it is now too large for the client: then it
        is dropped as if sent [MQTT-3.1.2-25]).
        """
        prefix, suffix = entry.message.encodeParts(
            self._level, entry.qos, entry.retain, entry.subscriptionIds,
            self._clock.seconds(), dup=True,
        )
        session = self.session
        assert session is not None
        if len(prefix) + len(suffix) + 2 > self._peerMaxPacket:
            session.removeInflight(packetId)
            session.drop(entry.message, "larger than the client's maximum packet size")
            return
        entry.sentOn = self
        self._inFlight += 1
        self.transport.write(prefix + packetId.to_bytes(2, "big") + suffix)

    def _acknowledged(self, packetId: int) -> None:
        """
        Forget a completely acknowledged outbound message and give back its
        send quota.
        """
        session = self.session
        assert session is not None
        entry = session.removeInflight(packetId)
        if entry.sentOn is self:
            self._inFlight -= 1
        self._progress()

    def _prepare(
        self, message: Message, token: object, intercept: bool = True
    ) -> Message | bool | None:
        """
        Run the receive authorization and (unless C{intercept} is false)
        the outbound hooks for one delivery to this client.

        Deliveries go out in order, so only the one at the head of the line
        can be waiting for an answer: a single slot holds it, with the
        C{token} that identifies that delivery (its queue entry, replay or
        in-flight entry).  An answer for a delivery that is no longer at the
        head (it was dropped meanwhile) is never used for another.

        @return: the message to send (a hook may have changed it), C{False}
            to skip it, or L{None} when an answer is a Deferred still on its
            way (L{_pump} runs again when it arrives).
        """
        pending = self._pendingPrepare
        if pending is not None:
            if pending[0] is message and pending[1] is token:
                if pending[2] is _WAITING:
                    return None
                self._pendingPrepare = None
                answer: Message | bool = pending[2]
                return answer
            self._pendingPrepare = None  # a stale question: forget it
        result = self._decideDelivery(message, intercept)
        if not isinstance(result, Deferred):
            return result
        slot = [message, token, _WAITING]
        self._pendingPrepare = slot
        self._preparingNow = True
        try:
            result.addCallback(self._prepareDone, slot)
        finally:
            self._preparingNow = False
        if slot[2] is not _WAITING:
            # It had already fired: use the answer now.
            self._pendingPrepare = None
            fired: Message | bool = slot[2]  # type: ignore[assignment]
            return fired
        return None

    def _decideDelivery(
        self, message: Message, intercept: bool
    ) -> Message | bool | Deferred[Any]:
        chain = self._receiveChain
        if chain is not None:
            answer = chain.receive(self.clientInfo, message.topic, message.qos, message.retain)
            if isinstance(answer, Deferred):
                return answer.addCallback(self._afterAuthorization, message, intercept)
            if answer is not True:
                return False
        return self._intercept(message, intercept)

    def _afterAuthorization(
        self, answer: Any, message: Message, intercept: bool
    ) -> Message | bool | Deferred[Any]:
        if answer is not True:
            return False
        return self._intercept(message, intercept)

    def _intercept(self, message: Message, intercept: bool) -> Message | bool | Deferred[Any]:
        hooks = self.broker.hooks
        if hooks is None or not intercept:
            return message
        answer = hooks.deliver(self.clientInfo, message)
        if isinstance(answer, Deferred):
            return answer.addCallback(self._intercepted, message)
        return self._intercepted(answer, message)

    def _intercepted(self, answer: Any, message: Message) -> Message | bool:
        if isinstance(answer, Message):
            return answer
        # Counted like every other drop, and the hooks hear of it from there.
        self.broker.counters.dropped(self.clientId, message, getattr(answer, "reason", ""))
        return False

    def _prepareDone(self, result: Any, slot: list[Any]) -> None:
        if self._closing or self._pendingPrepare is not slot:
            return  # the connection or the delivery is gone
        slot[2] = result
        if not self._preparingNow:
            # A later answer: send what waited for it (not from inside
            # _prepare, which is inside _pump or sendMessage).
            self._pump()

    def _progress(self) -> None:
        """
        An acknowledgement freed a slot of the in-flight window.
        """
        if self.session is not None and (self.session.queue or self._replays or self._resend):
            self._pump()

    def _pump(self) -> None:
        """
        Send, while the transport accepts data and the send quota allows:
        in-flight messages to resend after a reconnect, then queued
        deliveries, with pending retained replays in their place (after the
        deliveries queued before the SUBSCRIBE, before those queued since).
        """
        session = self.session
        if session is None or self._closing:
            return
        queue = session.queue
        inflight = session.inflight
        window = self._sendWindow
        resend = self._resend
        replays = self._replays
        sent = False
        checking = self._checking
        while resend and self._writable and self._inFlight < window:
            packetId = resend[0]
            entry = inflight.get(packetId)
            if entry is None:
                resend.popleft()
                continue
            if checking:
                # Access may have been revoked since it was first sent
                # (catalogue AU-10); hooks saw it already.
                allowed = self._prepare(entry.message, entry, intercept=False)
                if allowed is None:
                    break
                if allowed is False:
                    resend.popleft()
                    session.removeInflight(packetId)
                    continue
            resend.popleft()
            self._resendInflight(packetId, entry)
            sent = True
        while not resend and self._writable:
            if replays and not self._beforeReplays:
                replay = replays[0]
                message = replay[2]
                if message is None:
                    message = replay[2] = next(replay[0], None)
                    if message is None:
                        replays.popleft()
                        continue
                options = replay[1]
                qos = message.qos if message.qos < options.qos else options.qos
                if qos and (self._inFlight >= window or len(inflight) >= 0xFFFF):
                    break
                if checking:
                    prepared = self._prepare(message, replay)
                    if prepared is None:
                        break
                    if prepared is False:
                        replay[2] = None
                        continue
                    message = prepared
                replay[2] = None
                self._write(message, qos, True, options.subscriptionIds)
                sent = True
                continue
            if not queue:
                break
            message, qos, retain, subscriptionIds, group, _ = queue[0]
            if qos and (self._inFlight >= window or len(inflight) >= 0xFFFF):
                break
            if checking:
                prepared = self._prepare(message, queue[0])
                if prepared is None:
                    break
                if prepared is False:
                    session.popQueued()
                    if self._beforeReplays:
                        self._beforeReplays -= 1
                    continue
                message = prepared
            session.popQueued()
            if self._beforeReplays:
                self._beforeReplays -= 1
            self._write(message, qos, retain, subscriptionIds, group)
            sent = True
        if sent:
            self._lastProgress = self._clock.seconds()
        if self._throttling or self._stalled:
            low = self._lowWater
            if len(queue) <= low[0] and session.queuedBytes <= low[1]:
                self._releaseThrottled()
                if self._stalled:
                    self._stalled = False
                    log.info("{clientId!r} is reading again", clientId=self.clientId)

    # -- congestion and stalls ------------------------------------------------------

    def _congested(self) -> None:
        """
        Our queue is above the high-water mark: pause the publisher whose
        message brought it here, and watch for a stall.
        """
        source = self.broker.currentSource
        if source is not None and source not in self._throttling and not source._closing:
            self._throttling.add(source)
            source._throttledBy += 1
            source._pauseReading(_THROTTLE)
        if "stall" not in self._timers:
            self._timers["stall"] = self._clock.callLater(
                self._config.stallTimeout, self._checkStall
            )
        if self.session is not None and self.session.queuedBytes > self._config.maxOutboundBuffer:
            self._becomeStalled()

    def _checkStall(self) -> None:
        self._timers.pop("stall", None)
        session = self.session
        if session is None or self._closing:
            return
        if not self._throttling and len(session.queue) < self._highWater[0]:
            return  # no longer congested
        elapsed = self._clock.seconds() - self._lastProgress
        timeout = self._config.stallTimeout
        if elapsed >= timeout:
            self._becomeStalled()
        else:
            self._timers["stall"] = self._clock.callLater(timeout - elapsed, self._checkStall)

    def _becomeStalled(self) -> None:
        """
        Stop throttling publishers for this subscriber; keep only what the
        queue limits allow.
        """
        if self._stalled:
            return
        session = self.session
        assert session is not None
        self._stalled = True
        log.info("{clientId!r} is not reading: publishers released, QoS 0 dropped",
                 clientId=self.clientId)
        self._releaseThrottled()
        session.dropQos0()
        self._beforeReplays = min(self._beforeReplays, len(session.queue))
        limitMessages = self._config.maxQueuedMessages
        limitBytes = self._config.maxQueuedBytes
        while session.queue and (
            len(session.queue) > limitMessages or session.queuedBytes > limitBytes
        ):
            session.dropNewest("queue full")
        self._beforeReplays = min(self._beforeReplays, len(session.queue))
        self._checkOverflow()

    def _checkOverflow(self) -> None:
        session = self.session
        if session is not None and session.queuedBytes > self._config.maxOutboundBuffer:
            self.closeWith(0x97, "outbound buffer limit exceeded by a stalled subscriber")

    def _releaseThrottled(self) -> None:
        """
        Let the publishers we paused read again (on the next reactor turn,
        so that a release never re-enters routing).
        """
        if not self._throttling:
            return
        throttled = self._throttling
        self._throttling = set()
        for publisher in throttled:
            publisher._throttledBy -= 1
            if publisher._throttledBy == 0 and not publisher._closing:
                self._clock.callLater(0, publisher._resumeReading, _THROTTLE)


class _Refusal(NamedTuple):
    """A subscription refused before authorization: reason code and why."""

    code: int
    reason: str


class _SubscribePlan(NamedTuple):
    """A subscription about to be authorized."""

    request: Any
    fullFilter: str
    group: str | None
    topicFilter: str
    isNew: bool
    qos: int


class MQTTServerFactory(Factory):
    """
    Builds L{MQTTServerProtocol}s for one listener.

    @ivar broker: the L{Broker} the connections belong to.
    @ivar clock: the time source for timers (defaults to the broker's).
    @ivar portal: a C{twisted.cred} portal to authenticate clients, or
        L{None} for no authentication.
    @ivar allowAnonymous: whether clients without credentials are accepted
        when C{portal} is L{None}.
    @ivar enhancedAuthenticators: MQTT 5.0 enhanced authentication methods
        by name (L{IEnhancedAuthenticator} providers).
    """

    protocol = MQTTServerProtocol
    noisy = False

    def __init__(
        self,
        broker: Broker,
        portal: Portal | None = None,
        allowAnonymous: bool = True,
        clock: IReactorTime | None = None,
        enhancedAuthenticators: Iterable[IEnhancedAuthenticator] = (),
    ) -> None:
        self.broker = broker
        self.portal = portal
        self.allowAnonymous = allowAnonymous
        self.clock = clock if clock is not None else broker.clock
        self.enhancedAuthenticators: dict[str, IEnhancedAuthenticator] = {
            authenticator.method: authenticator for authenticator in enhancedAuthenticators
        }

    def buildProtocol(self, addr: Any) -> MQTTServerProtocol | None:
        if len(self.broker.protocols) >= self.broker.config.maxConnections:
            self.broker.counters.connectionsRefused += 1
            log.info("connection from {addr} refused: max-connections reached", addr=addr)
            return None
        return MQTTServerProtocol(self)

    def authenticate(self, packet: Connect, protocol: MQTTServerProtocol) -> Any:
        """
        Decide whether a CONNECT may proceed.

        @return: the client's identity (an avatar), L{None} to refuse with
            "not authorized", or a L{Deferred} firing with either (or
            failing with C{UnauthorizedLogin} for bad credentials).
        """
        credentials = credentialsFromConnect(packet, protocol.peerCertificate, protocol.clientId)
        if self.portal is None:
            if not self.allowAnonymous:
                return None
            return UnauthenticatedClient(packet.username)
        d = self.portal.login(credentials, protocol, IMQTTClient)
        d.addCallback(lambda result: result[1])
        return d


def _collectWrites(
    journal: Journal | None, function: Callable[..., Any], *args: Any
) -> tuple[Any, list[Deferred[Any]] | None]:
    """
    Call C{function(*args)} and collect the store writes it causes (none
    without a store).

    @return: its result and the Deferreds of its writes (or L{None}).
    """
    if journal is None:
        return function(*args), None
    outer = journal.begin()
    try:
        result = function(*args)
    finally:
        writes = journal.end(outer)
    return result, writes


def _sameIdentity(first: Any, second: Any) -> bool:
    """
    Whether two authenticated identities are the same: by their session
    C{key} when they have one, else by user name.
    """
    firstKey = getattr(first, "key", None)
    secondKey = getattr(second, "key", None)
    if firstKey is not None or secondKey is not None:
        return bool(firstKey == secondKey)
    return bool(getattr(first, "username", None) == getattr(second, "username", None))


def _release(held: set[MQTTServerProtocol]) -> None:
    """
    Let connections send the deliveries a QoS 2 message left in their
    queues while it was being stored.
    """
    for protocol in held:
        protocol._pump()
