"""
The authorizer chain: several L{IAuthorizer}s asked in order.

The first L{ALLOW} or L{Deny} wins; L{NEXT} asks the next authorizer; when
all say "next" the answer is L{DENY}.  An exception, a failed Deferred, a
Deferred that does not fire within the timeout, or an answer that is none of
those fails closed (deny).  Answers that are plain values are handled
without making any Deferred (the fast path); a Deferred answer makes the
chain's answer a Deferred.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from mqttd.auth import ALLOW, DENY, NEXT, Deny
from mqttd.interfaces import IAuthorizer

log = Logger(namespace="mqttd")

#: What the chain answers: C{True} (allowed), a L{Deny}, or a Deferred
#: firing with one of those.
Answer = Any


class AuthorizerChain:
    """
    Authorizers asked in order (see the module docstring).

    @ivar authorizers: the L{IAuthorizer} providers.
    @ivar timeout: seconds a Deferred answer may take (an authorizer's own
        C{timeout} attribute wins).
    """

    def __init__(
        self, authorizers: Iterable[IAuthorizer], clock: IReactorTime, timeout: float = 10.0
    ) -> None:
        self.authorizers = list(authorizers)
        self.clock = clock
        self.timeout = timeout

    def connect(self, client: Any) -> Answer:
        """
        May C{client} connect?
        """
        return self._decide(0, "authorizeConnect", (client,))

    def publish(self, client: Any, topic: str, qos: int, retain: bool) -> Answer:
        """
        May C{client} publish on C{topic}?
        """
        return self._decide(0, "authorizePublish", (client, topic, qos, retain))

    def subscribe(self, client: Any, topicFilter: str, qos: int) -> Answer:
        """
        May C{client} subscribe to C{topicFilter}?
        """
        return self._decide(0, "authorizeSubscribe", (client, topicFilter, qos))

    def receive(self, client: Any, topic: str, qos: int, retain: bool) -> Answer:
        """
        May C{client} receive a message published on C{topic}?
        """
        return self._decide(0, "authorizeReceive", (client, topic, qos, retain))

    def _decide(self, start: int, method: str, args: tuple[Any, ...]) -> Answer:
        authorizers = self.authorizers
        for index in range(start, len(authorizers)):
            authorizer = authorizers[index]
            try:
                answer = getattr(authorizer, method)(*args)
            except Exception:
                log.failure("authorizer {authorizer!r} failed in {method}",
                            authorizer=authorizer, method=method)
                return DENY
            if answer is ALLOW:
                return True
            if answer is NEXT:
                continue
            if isinstance(answer, Deny):
                return answer
            if isinstance(answer, Deferred):
                return self._later(answer, index, method, args)
            log.error("authorizer {authorizer!r} answered {answer!r} to {method}: denied",
                      authorizer=authorizer, answer=answer, method=method)
            return DENY
        return DENY

    def _later(self, answer: Deferred[Any], index: int, method: str,
               args: tuple[Any, ...]) -> Deferred[Any]:
        authorizer = self.authorizers[index]
        timeout = getattr(authorizer, "timeout", None) or self.timeout
        answer.addTimeout(timeout, self.clock)

        def decided(result: Any) -> Answer:
            if result is ALLOW:
                return True
            if result is NEXT:
                return self._decide(index + 1, method, args)
            if isinstance(result, Deny):
                return result
            log.error("authorizer {authorizer!r} answered {answer!r} to {method}: denied",
                      authorizer=authorizer, answer=result, method=method)
            return DENY

        def failed(failure: Failure) -> Deny:
            log.failure("authorizer {authorizer!r} failed in {method}", failure,
                        authorizer=authorizer, method=method)
            return DENY

        return answer.addCallbacks(decided, failed)
