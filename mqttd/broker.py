"""
The broker: the hub every connection talks to, and the public embedding API.

It owns the client-id table (takeover), the sessions, the subscription trie,
the retained messages, wills and counters, and routes each message to the
matching sessions.  It is a Twisted L{Service}: add it to a C{MultiService}
and attach L{mqttd.protocol.MQTTServerFactory} to any endpoint.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from mqttd.authorization import AuthorizerChain
from mqttd.codec.packets import MQTT_5, Will
from mqttd.codec.properties import NO_PROPERTIES, Properties, PropertyId
from mqttd.config import BrokerConfig
from mqttd.hooks import Drop, HookChain
from mqttd.interfaces import IAuthorizer, IMessageHook, IReloadable, IStore
from mqttd.message import Message, forwardedProperties
from mqttd.session import NEVER_EXPIRES, InflightEntry, Session, SubscriptionOptions
from mqttd.store import GroupKey, Journal, QueuedRecord, SessionRecord, StoredState
from mqttd.topics import (
    InvalidTopic,
    RetainedTree,
    SharedGroup,
    SubscriptionTrie,
    splitShared,
    validateTopicFilter,
    validateTopicName,
)

if TYPE_CHECKING:
    from mqttd.protocol import MQTTServerProtocol

log = Logger(namespace="mqttd")


class Counters:
    """
    Monotonic message counters (the gauges are computed by
    L{Broker.stats}).

    @ivar messagesIn: PUBLISH packets accepted from clients, plus messages
        published in-process and wills.
    @ivar messagesOut: PUBLISH packets written to clients, plus in-process
        deliveries.
    @ivar messagesDropped: deliveries dropped (queue limits, a stalled
        subscriber's QoS 0, expiry, a client's Maximum Packet Size, a
        hook's decision).
    @ivar connectionsTotal: connections accepted since start.
    @ivar connectionsRefused: connections refused (max-connections).
    """

    __slots__ = (
        "messagesIn",
        "messagesOut",
        "messagesDropped",
        "connectionsTotal",
        "connectionsRefused",
        "onDrop",
    )

    def __init__(self) -> None:
        self.messagesIn = 0
        self.messagesOut = 0
        self.messagesDropped = 0
        self.connectionsTotal = 0
        self.connectionsRefused = 0
        #: Called with (client id, message, reason) for each drop, if set
        #: (the broker sets it when hooks want to hear about drops).
        self.onDrop: Callable[[str, Message, str], None] | None = None

    def dropped(self, clientId: str, message: Message, reason: str) -> None:
        """
        Count a message dropped for a client (and tell the hooks).
        """
        self.messagesDropped += 1
        if self.onDrop is not None:
            self.onDrop(clientId, message, reason)


@dataclass(frozen=True)
class SessionInfo:
    """
    A snapshot of one session for the embedding API.
    """

    clientId: str
    connected: bool
    protocolLevel: int | None
    peer: str | None
    subscriptions: tuple[str, ...]
    queuedMessages: int
    inflightMessages: int
    expiryInterval: int
    dropped: int


class _RestoredIdentity:
    """
    The owner of a session read back from a store: only its key is known
    until the client authenticates again.
    """

    username = None

    def __init__(self, key: Any) -> None:
        self.key = tuple(key) if isinstance(key, list) else key


class LocalSubscription:
    """
    An in-process subscription made with L{Broker.subscribe}: matching
    messages are passed to a callable, synchronously, as they are routed.

    @ivar topicFilter: the filter as given.
    """

    # The trie treats this like a session: it needs these two attributes.
    clientId: str | None = None

    def __init__(
        self, broker: Broker, topicFilter: str, callback: Callable[[Message], object]
    ) -> None:
        self.topicFilter = topicFilter
        self._broker = broker
        self._callback = callback
        self.active = True

    def deliver(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscriptionIds: tuple[int, ...],
        group: Any = None,
    ) -> None:
        """
        Hand a message to the callback; an exception is logged, never
        propagated into the routing of other subscribers.
        """
        self._broker.counters.messagesOut += 1
        try:
            self._callback(message)
        except Exception:
            log.failure("in-process subscriber for {topicFilter!r} failed",
                        topicFilter=self.topicFilter)

    def cancel(self) -> None:
        """
        Stop receiving messages.
        """
        if self.active:
            self.active = False
            group, topicFilter = splitShared(self.topicFilter)
            self._broker._trie.unsubscribe(topicFilter, self, group)


class Broker(Service):
    """
    An MQTT broker.

    @ivar config: the settings (L{BrokerConfig}).
    @ivar clock: the reactor's time interface used for every timer.
    @ivar counters: the message and connection counters.
    """

    name = "mqttd-broker"

    def __init__(
        self,
        config: BrokerConfig | None = None,
        clock: IReactorTime | None = None,
        authorizers: Iterable[IAuthorizer] = (),
        hooks: Iterable[IMessageHook] = (),
        store: IStore | None = None,
    ) -> None:
        """
        @param config: the settings (defaults for everything not given).
        @param clock: the time source of every timer (the reactor).
        @param authorizers: L{IAuthorizer} providers asked in order about
            every connect, publish, subscribe and delivery; with none,
            everything is allowed.
        @param hooks: L{IMessageHook} providers, in order.
        @param store: where persistent sessions and retained messages are
            written and read back at start (see L{mqttd.store}); with none,
            they live in memory only.
        """
        if config is None:
            config = BrokerConfig()
        config.validate()
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.config = config
        self.clock: IReactorTime = clock
        self.counters = Counters()
        self.sessions: dict[str, Session] = {}
        self.connections: dict[str, MQTTServerProtocol] = {}
        self.protocols: set[MQTTServerProtocol] = set()
        self._trie = SubscriptionTrie()
        self._retained: RetainedTree[Message] = RetainedTree()
        # client id -> (timer, will, client info) for v5 wills waiting for
        # their delay.
        self._pendingWills: dict[str, tuple[IDelayedCall, Will, Any]] = {}
        self._stopping = False
        self._offlineLimits = (config.maxQueuedMessages, config.maxQueuedBytes)
        #: The connection whose PUBLISH is being routed (for throttling).
        self.currentSource: MQTTServerProtocol | None = None
        authorizerList = list(authorizers)
        #: The authorizer chain, or L{None} when everything is allowed.
        self.authorizer: AuthorizerChain | None = (
            AuthorizerChain(authorizerList, self.clock, config.pluginTimeout)
            if authorizerList else None
        )
        hookList = list(hooks)
        #: The message hooks, or L{None} without any.
        self.hooks: HookChain | None = None
        if hookList:
            chain = self.hooks = HookChain(hookList, self.clock, config.pluginTimeout)
            self.counters.onDrop = lambda clientId, message, reason: chain.event(
                "messageDropped", clientId, message, reason
            )
        self._reloadables: list[IReloadable] = []
        #: The store, and the journal that writes to it (or L{None}).
        self.store = store
        self.journal: Journal | None = Journal(store) if store is not None else None
        #: While an inbound QoS 2 message is routed with a durable store:
        #: the connections whose deliveries are held (queued, not sent)
        #: until its writes are committed; otherwise L{None}.
        self.held: set[MQTTServerProtocol] | None = None

    # -- embedding API ------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> int:
        """
        Publish a message in-process, as if a client had published it.

        @param properties: MQTT 5.0 properties to forward (e.g. user
            properties or a Message Expiry Interval).
        @return: how many subscriptions it was delivered to.
        @raise InvalidTopic: if C{topic} is not a valid topic name.
        @raise ValueError: for a QoS other than 0, 1 or 2.
        """
        validateTopicName(topic, self.config.maxTopicLevels)
        if qos not in (0, 1, 2):
            raise ValueError(f"invalid QoS {qos}")
        if not self.config.retainAvailable:
            retain = False
        return self.routeIntercepted(
            None,
            self.makeMessage(topic, bytes(payload), qos, retain, properties or NO_PROPERTIES,
                             None),
        )

    def routeIntercepted(self, client: Any, message: Message) -> int:
        """
        Route a message that did not come from a client connection (an
        in-process publish, a will) after the inbound hooks saw it.

        @return: how many subscriptions it reached now (0 if a hook dropped
            it, or will answer later).
        """
        hooks = self.hooks
        if hooks is not None:
            answer = hooks.publish(client, message)
            if isinstance(answer, Deferred):
                answer.addCallback(self._routeAnswer)
                return 0
            if isinstance(answer, Drop):
                return 0
            message = answer
        self.counters.messagesIn += 1
        return self.route(message)

    def _routeAnswer(self, answer: Any) -> None:
        if isinstance(answer, Message):
            self.counters.messagesIn += 1
            self.route(answer)

    def subscribe(
        self, topicFilter: str, callback: Callable[[Message], object], qos: int = 0
    ) -> LocalSubscription:
        """
        Subscribe in-process: C{callback(message)} is called for every
        matching message (a L{Message} with C{topic}, C{payload}, C{qos},
        C{retain}, C{properties}).  No retained messages are replayed; read
        them with L{retained}.

        @return: a L{LocalSubscription}; call its C{cancel()} to stop.
        @raise InvalidTopic: if the filter is not valid.
        """
        group, realFilter = splitShared(topicFilter)
        validateTopicFilter(realFilter, self.config.maxTopicLevels)
        subscription = LocalSubscription(self, topicFilter, callback)
        self._trie.subscribe(realFilter, subscription, SubscriptionOptions(realFilter, qos,
                                                                           group=group), group)
        return subscription

    def retained(self, topicFilter: str = "#") -> list[Message]:
        """
        The retained messages matching a filter.
        """
        validateTopicFilter(topicFilter, self.config.maxTopicLevels)
        now = self.clock.seconds()
        return [m for m in self._retained.iterMatch(topicFilter)
                if m.expiresAt is None or m.expiresAt > now]

    def listSessions(self) -> list[SessionInfo]:
        """
        A snapshot of every session, connected or not.
        """
        result = []
        for session in self.sessions.values():
            protocol = self.connections.get(session.clientId)
            result.append(
                SessionInfo(
                    clientId=session.clientId,
                    connected=protocol is not None,
                    protocolLevel=protocol.protocolLevel if protocol is not None else None,
                    peer=protocol.peerDescription() if protocol is not None else None,
                    subscriptions=tuple(session.subscriptions),
                    queuedMessages=len(session.queue),
                    inflightMessages=len(session.inflight),
                    expiryInterval=session.expiryInterval,
                    dropped=session.dropped,
                )
            )
        return result

    def kick(
        self, clientId: str, reasonCode: int = 0x98, serverReference: str | None = None
    ) -> bool:
        """
        Disconnect a client (v5 clients get DISCONNECT with C{reasonCode},
        by default 0x98 Administrative action).  Its will is published.

        To redirect a v5 client, use C{reasonCode} 0x9C (Use another server)
        or 0x9D (Server moved) with a C{serverReference}.

        @return: whether the client was connected.
        """
        protocol = self.connections.get(clientId)
        if protocol is None:
            return False
        reason = "kicked by the broker's owner"
        if serverReference is not None:
            reason = f"redirected to {serverReference}"
        protocol.closeWith(reasonCode, reason, serverReference=serverReference)
        return True

    def addReloadable(self, plugin: IReloadable) -> None:
        """
        Have L{reload} re-read this plug-in's configuration.
        """
        self._reloadables.append(plugin)

    def reload(self) -> bool:
        """
        Re-read the configuration of every reloadable plug-in (password and
        ACL files...), as SIGHUP does.  A plug-in that fails keeps its old
        configuration; the error is logged.

        @return: whether every plug-in reloaded.
        """
        ok = True
        for plugin in self._reloadables:
            try:
                plugin.reload()
            except Exception as e:
                ok = False
                log.error("reload of {plugin!r} failed, keeping its old configuration: "
                          "{error}", plugin=plugin, error=str(e) or type(e).__name__)
        log.info("configuration reloaded" if ok else "configuration reloaded with errors")
        return ok

    def stats(self) -> dict[str, int]:
        """
        Counters and gauges: C{messagesIn}, C{messagesOut},
        C{messagesDropped}, C{messagesQueued} (queued or in flight in all
        sessions), C{connections} (open now), C{connectionsTotal},
        C{connectionsRefused}, C{sessions}, C{subscriptions}, C{retained}.
        """
        c = self.counters
        return {
            "messagesIn": c.messagesIn,
            "messagesOut": c.messagesOut,
            "messagesDropped": c.messagesDropped,
            "messagesQueued": sum(len(s.queue) + len(s.inflight)
                                  for s in self.sessions.values()),
            "connections": len(self.protocols),
            "connectionsTotal": c.connectionsTotal,
            "connectionsRefused": c.connectionsRefused,
            "sessions": len(self.sessions),
            "subscriptions": len(self._trie),
            "retained": len(self._retained),
        }

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        if self.store is not None:
            assert self.journal is not None
            self.journal.closed = False
            state = self.store.load()
            if isinstance(state, Deferred):
                raise TypeError("a store's load() must return the state, not a Deferred")
            self._restore(state)

    def _restore(self, state: StoredState) -> None:
        """
        Rebuild the retained messages and the persistent sessions a store
        read back (their expiry keeps counting from their last disconnect).
        """
        now = self.clock.seconds()
        for topic, message in state.retained.items():
            if message.expiresAt is None or message.expiresAt > now:
                self._retained.set(topic, message)
        restored = 0
        assert self.journal is not None
        for record in state.sessions.values():
            if record.clientId in self.sessions:
                continue
            remaining: float | None = None
            if record.expiryInterval != NEVER_EXPIRES:
                since = record.disconnectedAt if record.disconnectedAt is not None else now
                remaining = record.expiryInterval - (now - since)
                if remaining <= 0 or record.expiryInterval == 0:
                    self.journal.write("sessionDeleted", record.clientId)
                    continue
            self._restoreSession(record, remaining)
            restored += 1
        for key, queue in state.shared.items():
            group = self._storedGroup(key)
            if group is None:
                self.journal.write("sharedDeleted", key)
                continue
            for seq in sorted(queue):
                group.queue.append((queue[seq].message, seq))
                group.seq = max(group.seq, seq)
        log.info("restored {sessions} sessions and {retained} retained messages from {store!r}",
                 sessions=restored, retained=len(self._retained), store=self.store)

    def _restoreSession(self, record: SessionRecord, remaining: float | None) -> None:
        session = Session(record.clientId, record.expiryInterval, self.counters,
                          self._offlineLimits)
        session.journal = self.journal
        session.identity = _RestoredIdentity(record.ownerKey)
        for fullFilter, (topicFilter, qos, noLocal, rap, rh, ids, group) in (
            record.subscriptions.items()
        ):
            options = SubscriptionOptions(topicFilter, qos, noLocal, rap, rh, None, group)
            options.subscriptionIds = tuple(ids)
            session.subscriptions[fullFilter] = options
            self._trie.subscribe(topicFilter, session, options, group)
        for seq in sorted(record.queue):
            queued = record.queue[seq]
            session._seq = max(session._seq, seq)
            session.queue.append(
                (queued.message, queued.qos, queued.retain, tuple(queued.subscriptionIds),
                 self._storedGroup(queued.group), seq)
            )
            session.queuedBytes += queued.message.size
        for packetId, inflight in record.inflight.items():
            entry = InflightEntry(inflight.message, inflight.qos, inflight.retain,
                                  tuple(inflight.subscriptionIds),
                                  self._storedGroup(inflight.group))
            entry.released = inflight.released
            session.inflight[packetId] = entry
            session.queuedBytes += inflight.message.size
        session.awaitingRel.update(record.awaitingRel)
        self.sessions[record.clientId] = session
        if remaining is not None and not self._stopping:
            session.expiryCall = self.clock.callLater(remaining, self._expireSession, session)

    def _storedGroup(self, key: GroupKey | None) -> SharedGroup | None:
        """
        The shared subscription group a stored record names (L{None} if it
        has no members any more).
        """
        if key is None:
            return None
        name, topicFilter = key
        return self._trie.sharedGroup(topicFilter, name)

    def stopService(self) -> Any:
        """
        Disconnect every client (v5: DISCONNECT 0x8B Server shutting down)
        and cancel the broker's timers.
        """
        super().stopService()
        # While stopping, connections that end schedule no expiry or will
        # timers: nothing of the broker is left on the reactor.
        self._stopping = True
        for protocol in list(self.protocols):
            protocol.closeWith(0x8B, "server shutting down", publishWill=False)
        for call, _, _ in self._pendingWills.values():
            if call.active():
                call.cancel()
        self._pendingWills.clear()
        for session in self.sessions.values():
            if session.expiryCall is not None and session.expiryCall.active():
                session.expiryCall.cancel()
        journal = self.journal
        if journal is not None:
            # The connections end after this returns: record now that their
            # sessions are offline, then write nothing more.
            now = self.clock.seconds()
            for session in self.sessions.values():
                if session.persistent and self.connections.get(session.clientId) is not None:
                    journal.write("sessionDisconnected", session.clientId, now)
            journal.closed = True
            return self.store.close()  # type: ignore[union-attr]
        return None

    # -- messages -----------------------------------------------------------

    def makeMessage(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: Properties,
        senderId: str | None,
    ) -> Message:
        """
        Build a message from a PUBLISH or will: forwardable properties kept,
        Message Expiry Interval turned into an absolute time.
        """
        expiresAt = None
        if properties:
            expiry = properties.get(PropertyId.MESSAGE_EXPIRY_INTERVAL)
            properties = forwardedProperties(properties)
            if expiry is not None:
                expiresAt = self.clock.seconds() + expiry
        return Message(topic, payload, qos, retain, properties, senderId, expiresAt)

    def route(self, message: Message) -> int:
        """
        Store a retained message and deliver a message to every matching
        subscription (see L{deliver}).

        @return: how many sessions (and shared groups) it went to.
        """
        if message.retain:
            self.storeRetained(message)
        found, groups = self._trie.match(message.topic)
        return self.deliver(message, found, groups)

    def match(self, topic: str) -> tuple[list[dict[Hashable, Any]], list[SharedGroup]]:
        """
        The subscriptions matching a topic, for L{deliver}: a client's
        PUBLISH is acknowledged between the two, before its own copy.
        """
        return self._trie.match(topic)

    def deliver(
        self,
        message: Message,
        found: list[dict[Hashable, Any]],
        groups: list[SharedGroup],
    ) -> int:
        """
        Deliver a message to the subscriptions L{match} found: one copy per
        session at the highest matching QoS [MQTT-3.3.5-1], delivery QoS =
        min(message QoS, granted QoS), the RETAIN flag cleared unless Retain
        As Published [MQTT-3.3.1-9], one member of each shared group.

        @return: how many sessions (and shared groups) it went to.
        """
        if not found and not groups:
            return 0
        mqos = message.qos
        sender = message.senderId
        count = 0
        target: Any
        if len(found) == 1:
            for target, opts in tuple(found[0].items()):
                if opts.noLocal and target.clientId == sender:
                    continue
                target.deliver(
                    message,
                    opts.qos if opts.qos < mqos else mqos,
                    message.retain and opts.retainAsPublished,
                    opts.subscriptionIds,
                )
                count += 1
        elif found:
            merged: dict[Hashable, list[Any]] = {}
            for subscribers in found:
                for target, opts in subscribers.items():
                    if opts.noLocal and target.clientId == sender:
                        continue
                    qos = opts.qos if opts.qos < mqos else mqos
                    retain = message.retain and opts.retainAsPublished
                    entry = merged.get(target)
                    if entry is None:
                        merged[target] = [qos, retain, opts.subscriptionIds]
                    else:
                        if qos > entry[0]:
                            entry[0] = qos
                        entry[1] = entry[1] or retain
                        entry[2] = entry[2] + opts.subscriptionIds
            for target, (qos, retain, subscriptionIds) in merged.items():
                target.deliver(message, qos, retain, subscriptionIds)
                count += 1
        for group in groups:
            if self._deliverShared(group, message):
                count += 1
        return count

    def _deliverShared(
        self, group: SharedGroup, message: Message, exclude: Any = None
    ) -> bool:
        """
        Give a message to exactly one member of a shared subscription group
        (MQTT 5.0 section 4.8.2): round-robin over the members that are
        connected.  With none connected, a QoS 1/2 message waits in the
        group's queue (bounded by max-queued-messages) for the next member
        to connect; QoS 0 is dropped.

        @param exclude: a member not to choose (one whose session is ending).
        @return: whether it was delivered or queued.
        """
        members: list[tuple[Any, Any]] = group.memberList()
        count = len(members)
        if count:
            start = group.cursor % count
            for offset in range(count):
                target, opts = members[(start + offset) % count]
                # A LocalSubscription has no connection: it is always there.
                if target is not exclude and getattr(target, "connection", True) is not None:
                    group.cursor = start + offset + 1
                    target.deliver(
                        message,
                        opts.qos if opts.qos < message.qos else message.qos,
                        message.retain and opts.retainAsPublished,
                        opts.subscriptionIds,
                        group,
                    )
                    return True
        if message.qos and len(group.queue) < self.config.maxQueuedMessages:
            group.seq += 1
            group.queue.append((message, group.seq))
            if self.journal is not None:
                self.journal.write("sharedQueued", (group.name, group.topicFilter),
                                   QueuedRecord(group.seq, message, message.qos, message.retain))
            return True
        self.counters.dropped(f"$share/{group.name}/{group.topicFilter}", message,
                              "no member of the shared group can take it")
        return False

    def drainSharedQueues(self, session: Session) -> None:
        """
        Give a session that just connected (or subscribed) the messages its
        shared subscription groups kept while no member was connected.
        """
        for options in list(session.subscriptions.values()):
            if options.group is None:
                continue
            group = self._trie.sharedGroup(options.topicFilter, options.group)
            if group is None:
                continue
            while group.queue and session.connection is not None:
                message, seq = group.queue.popleft()
                if self.journal is not None:
                    self.journal.write("sharedDequeued", (group.name, group.topicFilter), seq)
                if message.expiresAt is not None and message.expiresAt <= self.clock.seconds():
                    continue
                session.deliver(
                    message,
                    options.qos if options.qos < message.qos else message.qos,
                    message.retain and options.retainAsPublished,
                    options.subscriptionIds,
                    group,
                )

    def storeRetained(self, message: Message) -> bool:
        """
        Retain a message (replacing the topic's previous one), or clear the
        topic's retained message if the payload is empty [MQTT-3.3.1-10].

        @return: C{False} if it could not be stored (max-retained-messages).
        """
        if not message.payload:
            if self._retained.remove(message.topic) is not None and self.journal is not None:
                self.journal.write("retain", message.topic, None)
            return True
        if (
            len(self._retained) >= self.config.maxRetainedMessages
            and self._retained.get(message.topic) is None
        ):
            return False
        self._retained.set(message.topic, message)
        if self.journal is not None:
            self.journal.write("retain", message.topic, message)
        return True

    def iterRetained(self, topicFilter: str) -> Iterator[Message]:
        """
        Retained messages matching a (non-shared) filter, lazily; expired
        ones are removed on the way.
        """
        for message in self._retained.iterMatch(topicFilter):
            if message.expiresAt is not None and message.expiresAt <= self.clock.seconds():
                if self._retained.get(message.topic) is message:
                    self._retained.remove(message.topic)
                continue
            yield message

    # -- subscriptions --------------------------------------------------------

    def addSubscription(self, session: Session, fullFilter: str,
                        options: SubscriptionOptions) -> bool:
        """
        Record a subscription of a session (replacing one with the same
        filter).

        @return: whether it is new.
        """
        isNew = fullFilter not in session.subscriptions
        session.subscriptions[fullFilter] = options
        self._trie.subscribe(options.topicFilter, session, options, options.group)
        if session.persistent:
            assert self.journal is not None
            self.journal.write("subscriptionSaved", session.clientId, fullFilter, (
                options.topicFilter, options.qos, options.noLocal, options.retainAsPublished,
                options.retainHandling, options.subscriptionIds, options.group,
            ))
        return isNew

    def removeSubscription(self, session: Session, fullFilter: str) -> bool:
        """
        Remove a subscription of a session.

        @return: whether it existed.
        """
        options = session.subscriptions.pop(fullFilter, None)
        if options is None:
            return False
        self._trie.unsubscribe(options.topicFilter, session, options.group)
        if self.journal is not None:
            if session.persistent:
                self.journal.write("subscriptionDeleted", session.clientId, fullFilter)
            if options.group is not None:
                self._groupGone(options.group, options.topicFilter)
        return True

    def _groupGone(self, name: str, topicFilter: str) -> None:
        """
        Forget in the store what a shared subscription group kept, if the
        group has just lost its last member.
        """
        if self._trie.sharedGroup(topicFilter, name) is None:
            assert self.journal is not None
            self.journal.write("sharedDeleted", (name, topicFilter))

    def checkFilter(self, fullFilter: str) -> tuple[str | None, str]:
        """
        Validate a subscription filter (shared or not).

        @return: C{(shareName, filter)}.
        @raise InvalidTopic: if it is not acceptable.
        """
        group, topicFilter = splitShared(fullFilter)
        validateTopicFilter(topicFilter, self.config.maxTopicLevels)
        return group, topicFilter

    # -- connections and sessions --------------------------------------------

    def assignClientId(self) -> str:
        """
        A new unique client identifier for a client that sent an empty one.
        """
        while True:
            clientId = "mqttd-" + secrets.token_hex(8)
            if clientId not in self.sessions:
                return clientId

    def mayUseClientId(self, clientId: str, identity: Any) -> bool:
        """
        Whether a client authenticated as C{identity} may use C{clientId}:
        a session made by an authenticated identity is bound to it, so no
        other identity (nor an unauthenticated client) can resume, take over
        or wipe it (catalogue AU-11, AU-12).
        """
        session = self.sessions.get(clientId)
        if session is None:
            return True
        owner = getattr(session.identity, "key", None)
        return owner is None or owner == getattr(identity, "key", None)

    def connectClient(
        self,
        protocol: MQTTServerProtocol,
        clientId: str,
        cleanStart: bool,
        expiryInterval: int,
        identity: Any,
    ) -> tuple[Session, bool]:
        """
        Attach a newly connected client to its session, taking over any live
        connection with the same client id [MQTT-3.1.4-2].

        @return: the session and whether it already existed (Session
            Present).
        """
        old = self.connections.get(clientId)
        if old is not None:
            self._takeOver(old, protocol, cleanStart)
        pendingWill = self._pendingWills.pop(clientId, None)
        if pendingWill is not None and pendingWill[0].active():
            # Reconnected within the Will Delay Interval: no will [MQTT-3.1.3-9].
            pendingWill[0].cancel()
        session = self.sessions.get(clientId)
        if session is not None:
            if session.expiryCall is not None and session.expiryCall.active():
                session.expiryCall.cancel()
            session.expiryCall = None
            if cleanStart:
                # The old session ends here: what it held through shared
                # subscriptions goes to other members.
                self.endSession(session)
                session = None
        present = session is not None
        if session is None:
            session = Session(clientId, expiryInterval, self.counters, self._offlineLimits)
            session.journal = self.journal
            self.sessions[clientId] = session
        wasPersistent = session.persistent
        session.expiryInterval = expiryInterval
        session.identity = identity
        session.connection = protocol
        self.connections[clientId] = protocol
        self.sessionChanged(session, wasPersistent)
        return session, present

    def sessionChanged(self, session: Session, wasPersistent: bool) -> None:
        """
        Write a session's creation or new expiry interval to the store (and
        forget it there if it no longer outlives its connection).
        """
        journal = self.journal
        if journal is None:
            return
        if session.persistent:
            journal.write("sessionSaved", session.clientId, session.expiryInterval,
                          getattr(session.identity, "key", None))
        elif wasPersistent:
            journal.write("sessionDeleted", session.clientId)

    def _takeOver(
        self, old: MQTTServerProtocol, new: MQTTServerProtocol, newCleanStart: bool
    ) -> None:
        """
        Disconnect a live connection whose client id a new connection uses
        (v5: DISCONNECT 0x8E [MQTT-3.1.4-3]).  Its will: MQTT 5.0 sends it
        unless the session continues and the will is delayed (section
        3.1.3.2.2); for 3.1.x, as mosquitto does, only when a clean session
        is involved on either side.
        """
        session = old.session
        will = old.will
        # The old connection's session ends with it if it had no expiry, or
        # if the new connection starts clean.
        sessionEnds = session is not None and (newCleanStart or session.expiryInterval == 0)
        publishWill = False
        if will is not None and session is not None:
            if old.protocolLevel == MQTT_5:
                # Section 3.1.3.2.2: sent unless the session continues and
                # the will is delayed (then the new connection cancels it).
                delay = will.properties.get(PropertyId.WILL_DELAY_INTERVAL, 0)
                publishWill = sessionEnds or not delay
            else:
                # 3.1.x, as mosquitto: only when a clean session is involved.
                publishWill = sessionEnds
        old.detach("session taken over")
        old.closeWith(0x8E, "session taken over", publishWill=False)
        if session is not None:
            session.connection = None
            if sessionEnds:
                self.endSession(session)
        if self.connections.get(old.clientId) is old:
            del self.connections[old.clientId]
        if publishWill and will is not None:
            self.publishWill(old.clientId, will, getattr(old, "clientInfo", None))

    def clientDisconnected(
        self, protocol: MQTTServerProtocol, will: Will | None
    ) -> None:
        """
        A connected client's connection is gone: publish its will (if
        given; delayed by a v5 Will Delay Interval), then end its session
        or start its expiry timer.
        """
        clientId = protocol.clientId
        if self.connections.get(clientId) is protocol:
            del self.connections[clientId]
        session = protocol.session
        if session is None:
            return
        session.connection = None
        if session.persistent:
            assert self.journal is not None
            self.journal.write("sessionDisconnected", clientId, self.clock.seconds())
        if will is not None:
            delay = will.properties.get(PropertyId.WILL_DELAY_INTERVAL, 0) if will.properties else 0
            if delay and session.expiryInterval and not self._stopping:
                client = getattr(protocol, "clientInfo", None)
                call = self.clock.callLater(delay, self._delayedWill, clientId, will, client)
                self._pendingWills[clientId] = (call, will, client)
            else:
                self.publishWill(clientId, will, getattr(protocol, "clientInfo", None))
        if session.expiryInterval == 0:
            self.endSession(session)
        elif session.expiryInterval != NEVER_EXPIRES and not self._stopping:
            session.expiryCall = self.clock.callLater(
                session.expiryInterval, self._expireSession, session
            )

    def _delayedWill(self, clientId: str, will: Will, client: Any) -> None:
        self._pendingWills.pop(clientId, None)
        self.publishWill(clientId, will, client)

    def _expireSession(self, session: Session) -> None:
        session.expiryCall = None
        if self.sessions.get(session.clientId) is not session or session.connection is not None:
            return
        log.info("session {clientId!r} expired", clientId=session.clientId)
        if self.hooks is not None:
            self.hooks.event("sessionExpired", session.clientId)
        # The will is sent at the earlier of will delay and session end
        # [MQTT-3.1.3-9].
        pending = self._pendingWills.pop(session.clientId, None)
        if pending is not None and pending[0].active():
            pending[0].cancel()
            self.publishWill(session.clientId, pending[1], pending[2])
        self.endSession(session)

    def endSession(self, session: Session) -> None:
        """
        Discard a session: its subscriptions and queued messages.  Messages
        it held through shared subscriptions (queued, or sent and not
        acknowledged) go to another member of their group.
        """
        if self.sessions.get(session.clientId) is session:
            del self.sessions[session.clientId]
        if session.persistent:
            assert self.journal is not None
            self.journal.write("sessionDeleted", session.clientId)
        held = session.sharedDeliveries()
        shared = [(o.group, o.topicFilter) for o in session.subscriptions.values()
                  if o.group is not None]
        session.clear(self._trie)
        trie = self._trie
        now = self.clock.seconds()
        for message, group in held:
            if message.expiresAt is not None and message.expiresAt <= now:
                continue
            alive = trie.sharedGroup(group.topicFilter, group.name)
            if alive is not None and alive is group:
                self._deliverShared(alive, message, exclude=session)
            else:
                self.counters.dropped(f"$share/{group.name}/{group.topicFilter}", message,
                                      "the shared group has no members left")
        if self.journal is not None:
            for name, topicFilter in shared:
                self._groupGone(name, topicFilter)

    def publishWill(self, clientId: str, will: Will, client: Any = None) -> None:
        """
        Publish a client's will message (asking the authorizers again, as
        their rules may have changed since the CONNECT).

        @param client: the client's L{IClientInfo}, for the authorizers.
        """
        chain = self.authorizer
        if chain is not None and client is not None:
            answer = chain.publish(client, will.topic, will.qos, will.retain)
            if isinstance(answer, Deferred):
                answer.addCallback(self._willDecided, clientId, will)
                return
            if answer is not True:
                log.info("will of {clientId!r} on {topic!r} not authorized: dropped",
                         clientId=clientId, topic=will.topic)
                return
        self._publishWill(clientId, will)

    def _willDecided(self, answer: Any, clientId: str, will: Will) -> None:
        if answer is True:
            self._publishWill(clientId, will)

    def _publishWill(self, clientId: str, will: Will) -> None:
        props = will.properties
        if props and PropertyId.WILL_DELAY_INTERVAL in props:
            props = {k: v for k, v in props.items() if k != PropertyId.WILL_DELAY_INTERVAL}
        retain = will.retain and self.config.retainAvailable
        self.routeIntercepted(
            None, self.makeMessage(will.topic, will.payload, will.qos, retain, props, clientId)
        )

    def validateWillTopic(self, topic: str) -> None:
        """
        Check a will topic against the broker's topic rules.

        @raise InvalidTopic: if it is not acceptable.
        """
        validateTopicName(topic, self.config.maxTopicLevels)


__all__ = ["Broker", "Counters", "InvalidTopic", "LocalSubscription", "SessionInfo"]
