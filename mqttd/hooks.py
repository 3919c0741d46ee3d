"""
Message hooks: interceptors for inbound and outbound messages and
lifecycle events (see L{mqttd.interfaces.IMessageHook}).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mqttd.interfaces import IClientInfo, IMessageHook
from mqttd.message import Message

log = Logger(namespace="mqttd")


@dataclass(frozen=True)
class Drop:
    """
    A hook's "drop this message": an inbound PUBLISH is refused (v5 QoS 1/2
    clients get C{reasonCode}, e.g. 0x99 Payload format invalid or 0x83
    Implementation specific error; 3.1.x clients a positive
    acknowledgement), an outbound delivery is not sent.
    """

    reasonCode: int = 0x83
    reason: str = "dropped by a hook"


#: A hook failed or timed out: the message is dropped (fail closed).
HOOK_FAILED = Drop(0x80, "hook error")


@implementer(IMessageHook)
class MessageHook:
    """
    A hook that changes nothing: subclass it and override what you need.
    """

    def onPublish(self, client: IClientInfo | None, message: Message) -> Any:
        return message

    def onDeliver(self, client: IClientInfo, message: Message) -> Any:
        return message

    def connected(self, client: IClientInfo) -> None:
        pass

    def disconnected(self, client: IClientInfo, reason: str) -> None:
        pass

    def subscribed(self, client: IClientInfo, topicFilter: str, qos: int) -> None:
        pass

    def unsubscribed(self, client: IClientInfo, topicFilter: str) -> None:
        pass

    def sessionExpired(self, clientId: str) -> None:
        pass

    def messageDropped(self, clientId: str, message: Message, reason: str) -> None:
        pass


class HookChain:
    """
    Several hooks in order.

    @ivar hooks: the L{IMessageHook} providers.
    @ivar timeout: seconds a Deferred answer may take (a hook's own
        C{timeout} attribute wins).
    """

    def __init__(
        self, hooks: Iterable[IMessageHook], clock: IReactorTime, timeout: float = 10.0
    ) -> None:
        self.hooks = list(hooks)
        self.clock = clock
        self.timeout = timeout

    def publish(self, client: Any, message: Message) -> Message | Drop | Deferred[Any]:
        """
        Run the inbound interceptors.

        @return: the message to route, a L{Drop}, or a Deferred of either.
        """
        return self._intercept(0, "onPublish", client, message)

    def deliver(self, client: Any, message: Message) -> Message | Drop | Deferred[Any]:
        """
        Run the outbound interceptors for one subscriber.
        """
        return self._intercept(0, "onDeliver", client, message)

    def _intercept(
        self, start: int, method: str, client: Any, message: Message
    ) -> Message | Drop | Deferred[Any]:
        hooks = self.hooks
        for index in range(start, len(hooks)):
            hook = hooks[index]
            try:
                answer = getattr(hook, method)(client, message)
            except Exception:
                log.failure("hook {hook!r} failed in {method}", hook=hook, method=method)
                return HOOK_FAILED
            if isinstance(answer, Message):
                message = answer
                continue
            if isinstance(answer, Drop):
                return answer
            if isinstance(answer, Deferred):
                return self._later(answer, index, method, client)
            log.error("hook {hook!r} answered {answer!r} to {method}: message dropped",
                      hook=hook, answer=answer, method=method)
            return HOOK_FAILED
        return message

    def _later(self, answer: Deferred[Any], index: int, method: str,
               client: Any) -> Deferred[Any]:
        hook = self.hooks[index]
        answer.addTimeout(getattr(hook, "timeout", None) or self.timeout, self.clock)

        def decided(result: Any) -> Any:
            if isinstance(result, Message):
                return self._intercept(index + 1, method, client, result)
            if isinstance(result, Drop):
                return result
            log.error("hook {hook!r} answered {answer!r} to {method}: message dropped",
                      hook=hook, answer=result, method=method)
            return HOOK_FAILED

        def failed(failure: Failure) -> Drop:
            log.failure("hook {hook!r} failed in {method}", failure, hook=hook, method=method)
            return HOOK_FAILED

        return answer.addCallbacks(decided, failed)

    def event(self, name: str, *args: Any) -> None:
        """
        Tell every hook about a lifecycle event (errors are logged).
        """
        for hook in self.hooks:
            try:
                getattr(hook, name)(*args)
            except Exception:
                log.failure("hook {hook!r} failed in {name}", hook=hook, name=name)
