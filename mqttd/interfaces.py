"""
Every plug-in point of mqttd, as zope.interface interfaces, in one place.
"""

from __future__ import annotations

from typing import Any

from twisted.cred.credentials import ICredentials
from zope.interface import Attribute, Interface


class IMQTTClient(Interface):
    """
    The avatar interface of C{twisted.cred} authentication for MQTT: what a
    realm returns for an authenticated client.
    """

    username = Attribute("The user name the client is known by, or None.")


class IX509Certificate(ICredentials):
    """
    Credentials of a client that presented a TLS certificate the listener
    verified (an C{mtls:} listener): the C{twisted.cred} credentials an
    C{x509} checker decides on.  They may also provide C{IUsernamePassword}
    (the CONNECT had a user name) or C{IAnonymous} (it had none).
    """

    certificate = Attribute("The verified client certificate (cryptography.x509.Certificate).")
    clientId = Attribute("The client identifier of the CONNECT (str).")


class IAuthExchange(Interface):
    """
    One MQTT 5.0 enhanced-authentication conversation with one client (the
    CONNECT and its AUTH packets, or a re-authentication started by the
    client with AUTH 0x19).
    """

    def step(data: bytes | None) -> Any:
        """
        Take the next piece of Authentication Data from the client (the
        first call gets the CONNECT's or the re-authenticating AUTH's; then
        each AUTH's) and decide.

        @return: an L{mqttd.auth.AuthContinue} (send this data to the
            client in AUTH 0x18 and wait for its answer), an
            L{mqttd.auth.AuthSuccess} (the client is authenticated) or an
            L{mqttd.auth.AuthFailure} (refuse with its reason code), or a
            C{Deferred} firing with one.  An exception, a failed Deferred or
            anything else fails closed (0x87 Not authorized).
        """


class IEnhancedAuthenticator(Interface):
    """
    An MQTT 5.0 enhanced authentication method (section 4.12), such as
    SCRAM-SHA-256: the broker runs the AUTH packet flow, the authenticator
    decides each step.
    """

    method = Attribute(
        "The Authentication Method name (a str) this authenticator handles, "
        "e.g. 'SCRAM-SHA-256'; CONNECTs naming another method get CONNACK 0x8C."
    )

    def newExchange(clientId: str, connect: Any, reauthentication: bool) -> IAuthExchange:
        """
        Start a conversation.

        @param clientId: the client identifier (assigned by the broker if
            the client sent an empty one).
        @param connect: the L{mqttd.codec.Connect} packet of the connection.
        @param reauthentication: C{True} for a re-authentication after
            CONNACK (section 4.12.1).
        """


# -- plug-in factories: what getPlugins finds in the mqttd.plugins package --


class IPluginFactory(Interface):
    """
    What every kind of plug-in factory has, shaped like
    C{twisted.cred.strcred.ICheckerFactory}: a name for the command line,
    one line of description, and help on its arguments.  Finding a factory
    never activates its plug-in; configuration does (C{--auth NAME:ARGS}...).
    """

    name = Attribute("The plug-in's name on the command line, e.g. 'passwd'.")
    description = Attribute("One line saying what it does, for --help-auth and friends.")
    argumentsHelp = Attribute(
        "How to write its arguments (key=value pairs separated by ':'), one "
        "line per argument."
    )


class IAuthenticatorFactory(IPluginFactory):
    """
    Makes authenticators (C{--auth NAME:ARGS}).
    """

    def makeAuthenticator(arguments: Any) -> Any:
        """
        Make an authenticator from parsed arguments
        (L{mqttd.plugin.PluginArguments}).

        @return: a C{twisted.cred.checkers.ICredentialsChecker} provider (for
            C{IUsernamePassword}, C{IAnonymous}, ...) and/or an
            L{IEnhancedAuthenticator} provider.
        @raise mqttd.plugin.PluginError: for bad arguments or files.
        """


class IAuthorizerFactory(IPluginFactory):
    """
    Makes authorizers (C{--authorizer NAME:ARGS}).
    """

    def makeAuthorizer(arguments: Any) -> IAuthorizer:
        """
        Make an authorizer from parsed arguments.

        @raise mqttd.plugin.PluginError: for bad arguments or files.
        """


class IHookFactory(IPluginFactory):
    """
    Makes message hooks (C{--hook NAME:ARGS}).
    """

    def makeHook(arguments: Any) -> Any:
        """
        Make a hook from parsed arguments.

        @raise mqttd.plugin.PluginError: for bad arguments.
        """


class IStoreFactory(IPluginFactory):
    """
    Makes persistence stores (C{--store NAME:ARGS}).
    """

    def makeStore(arguments: Any) -> Any:
        """
        Make a store from parsed arguments.

        @raise mqttd.plugin.PluginError: for bad arguments.
        """


class IReloadable(Interface):
    """
    A plug-in whose configuration can be re-read without a restart (on
    SIGHUP or C{Broker.reload()}), e.g. a password or ACL file.
    """

    def reload() -> None:
        """
        Re-read the configuration.  Raise (anything) to keep the old one:
        the broker logs the error and carries on with what it had.
        """


# -- authorization ------------------------------------------------------------


class IClientInfo(Interface):
    """
    What an authorizer or hook learns about a client.
    """

    clientId = Attribute("The client identifier (str).")
    username = Attribute("The authenticated user name (str), or None.")
    identity = Attribute("The avatar authentication returned.")
    protocolLevel = Attribute("3, 4 or 5.")
    peer = Attribute("The peer address as text.")


class IAuthorizer(Interface):
    """
    Decides what clients may do.  Every method answers
    L{mqttd.auth.ALLOW}, a L{mqttd.auth.Deny} (e.g. L{mqttd.auth.DENY}) or
    L{mqttd.auth.NEXT} (no opinion: ask the next authorizer), directly or as
    a C{Deferred} firing with one.  With several authorizers the first
    allow or deny wins and all "next" means deny; an exception, a failed
    Deferred or a timeout means deny.  A plain value is the fast path: no
    Deferred is made for it.

    An authorizer may have a C{timeout} attribute (seconds) to bound its
    Deferreds; the broker's default applies otherwise.
    """

    def authorizeConnect(client: IClientInfo) -> Any:
        """
        May this (authenticated) client connect?
        """

    def authorizePublish(client: IClientInfo, topic: str, qos: int, retain: bool) -> Any:
        """
        May this client publish on C{topic}?
        """

    def authorizeSubscribe(client: IClientInfo, topicFilter: str, qos: int) -> Any:
        """
        May this client subscribe to C{topicFilter} (without C{$share/...})?
        """

    def authorizeReceive(client: IClientInfo, topic: str, qos: int, retain: bool) -> Any:
        """
        May this client receive a message published on C{topic}?  Asked
        for every delivery, so an ACL change also applies to stored
        subscriptions and queued messages.
        """


# -- message hooks ----------------------------------------------------------------


class IMessageHook(Interface):
    """
    Sees, and may change or drop, the messages that pass through the
    broker, and hears about clients' lifecycle events.  Subclass
    L{mqttd.hooks.MessageHook} to implement only the methods you need.

    The interceptors (L{onPublish}, L{onDeliver}) answer the message (the
    one given, or a changed copy from C{message.replace(...)}), a
    L{mqttd.hooks.Drop}, or a C{Deferred} firing with one; with several
    hooks each gets what the previous one answered.  An exception, a failed
    Deferred or a timeout drops the message (fail closed).  A plain answer
    is the fast path.  The events return nothing; their exceptions are
    logged.
    """

    def onPublish(client: IClientInfo | None, message: Any) -> Any:
        """
        An application message arrives (C{client} is L{None} for messages
        published in-process and wills), before it is retained or routed.
        """

    def onDeliver(client: IClientInfo, message: Any) -> Any:
        """
        A message is about to be sent to one subscriber.
        """

    def connected(client: IClientInfo) -> None:
        """
        A client's CONNECT was accepted.
        """

    def disconnected(client: IClientInfo, reason: str) -> None:
        """
        A connected client's connection ended, for C{reason}.
        """

    def subscribed(client: IClientInfo, topicFilter: str, qos: int) -> None:
        """
        A subscription was added (C{topicFilter} as sent, C{qos} granted).
        """

    def unsubscribed(client: IClientInfo, topicFilter: str) -> None:
        """
        A subscription was removed by UNSUBSCRIBE.
        """

    def sessionExpired(clientId: str) -> None:
        """
        An offline session reached its expiry and was discarded.
        """

    def messageDropped(clientId: str, message: Any, reason: str) -> None:
        """
        A message for a session was dropped (queue limits, a stalled
        subscriber, expiry, the client's Maximum Packet Size, a hook).
        """


# -- persistence ------------------------------------------------------------------


class IStore(Interface):
    """
    Where the broker writes what must survive a restart, and reads it back
    at start (see L{mqttd.store} for the records).  Every write method
    returns L{None} or a C{Deferred}; the broker acknowledges a client's
    PUBLISH only once the Deferreds of the writes it caused have fired
    ("acknowledged means stored"), keeping acknowledgements in order.
    Writes about one session come in the order the changes happened.
    """

    durable = Attribute(
        "True if what is written survives the process (a crash included, once "
        "the write's Deferred has fired)."
    )

    def load() -> Any:
        """
        Read everything back: a L{mqttd.store.StoredState}.  Called once,
        when the broker starts; it may block.
        """

    def close() -> Any:
        """
        The broker stops: flush and release resources (None or a Deferred).
        """

    def retain(topic: str, message: Any) -> Any:
        """
        Retain C{message} on C{topic}, or clear the topic if it is L{None}.
        """

    def sessionSaved(clientId: str, expiryInterval: int, ownerKey: Any) -> Any:
        """
        A persistent session was created or resumed, or its expiry interval
        changed; it is connected.
        """

    def sessionDisconnected(clientId: str, when: float) -> Any:
        """
        The session's connection ended at C{when} (its expiry counts from
        there, also across a restart).
        """

    def sessionDeleted(clientId: str) -> Any:
        """
        The session ended (expired, or replaced by a clean one): forget it
        with everything it had.
        """

    def subscriptionSaved(clientId: str, topicFilter: str, subscription: Any) -> Any:
        """
        A subscription was added or replaced (a
        L{mqttd.store.SubscriptionRecord}).
        """

    def subscriptionDeleted(clientId: str, topicFilter: str) -> Any:
        """
        A subscription was removed.
        """

    def messageQueued(clientId: str, queued: Any) -> Any:
        """
        A QoS 1/2 message was queued for the session (a
        L{mqttd.store.QueuedRecord}).
        """

    def messageDequeued(clientId: str, seq: int) -> Any:
        """
        The queued message C{seq} left the queue (sent, or dropped).
        """

    def inflightSaved(clientId: str, entry: Any) -> Any:
        """
        A message was sent and awaits acknowledgement, or its QoS 2 flow
        moved to PUBREL (a L{mqttd.store.InflightRecord}).
        """

    def inflightDeleted(clientId: str, packetId: int) -> Any:
        """
        The client acknowledged the message completely.
        """

    def inboundSaved(clientId: str, packetId: int) -> Any:
        """
        An inbound QoS 2 PUBLISH was received: its packet id awaits PUBREL.
        """

    def inboundDeleted(clientId: str, packetId: int) -> Any:
        """
        PUBREL arrived for an inbound QoS 2 packet id.
        """

    def sharedQueued(group: Any, queued: Any) -> Any:
        """
        A QoS 1/2 message is kept by a shared subscription group
        (C{(share name, topic filter)}) while none of its members is
        connected (a L{mqttd.store.QueuedRecord}).
        """

    def sharedDequeued(group: Any, seq: int) -> Any:
        """
        The group's message C{seq} went to a member (or expired).
        """

    def sharedDeleted(group: Any) -> Any:
        """
        The group has no members left: forget the messages it kept.
        """
