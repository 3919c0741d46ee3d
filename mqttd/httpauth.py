"""
The C{http} authenticator and authorizer: decisions delegated to a web
service (the optional extra C{txmqttd[http]}, which installs treq).

For every decision the broker POSTs a JSON object to the configured URL::

    {"action": "publish", "clientid": "dev7", "username": "alice",
     "password": null, "topic": "devices/dev7/status", "qos": 1,
     "retain": false}

C{action} is C{"authenticate"} (the authenticator: a CONNECT's user name
and password), or C{"connect"}, C{"publish"}, C{"subscribe"} or
C{"receive"} (the authorizer); the fields that do not apply are C{null}.
The service answers status 200 with C{{"result": "allow"}}, C{"deny"} or
C{"ignore"} (no opinion: ask the next plug-in).  Anything else -- another
status, a body that is not such an object, a connection error, no answer
within the timeout -- fails closed (the client is refused), is logged once
and is never cached; other clients keep being served meanwhile.

Answers are cached for C{cache-ttl} seconds, keyed by every field of the
request (the password only as a keyed hash), in a bounded LRU table; two
identical requests pending at the same time share one HTTP request.
C{https} URLs are verified (certificate chain and host name, with
service-identity) against the system's trust store or a given CA file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import treq
from treq.client import HTTPClient
from twisted.cred.checkers import ANONYMOUS, ICredentialsChecker
from twisted.cred.credentials import IAnonymous, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, fail, succeed
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseNeverReceived,
)
from zope.interface import implementer

import mqttd
from mqttd.auth import ALLOW, NEXT, Deny
from mqttd.files import readBinaryFile, readTextFile
from mqttd.interfaces import IAuthorizer, IClientInfo, IReloadable

log = Logger(namespace="mqttd")

#: Seconds a decision may take (the request, its one retry and the answer).
DEFAULT_TIMEOUT = 5.0
#: Seconds an answer is cached.
DEFAULT_CACHE_TTL = 60.0
#: Answers kept at most (least recently used ones go first).
DEFAULT_CACHE_SIZE = 10_000
#: Requests at a time (and persistent connections kept) to the service.
DEFAULT_CONNECTIONS = 10
#: A longer answer is an error (an answer is a few dozen bytes).
MAX_ANSWER_SIZE = 64 * 1024

#: The answers the service may give.
ANSWERS = frozenset(("allow", "deny", "ignore"))

#: What an authorizer answers when the service says "deny".
DENIED = Deny(0x87, "not authorized")
#: What an authorizer answers when the service fails (fail closed).
SERVICE_FAILED = Deny(0x87, "not authorized (authorization service failed)")

#: A header field name (RFC 9110 token).
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

#: Failures of a request that never reached the service's application on a
#: reused connection (the service closed it as it was being reused): worth
#: one retry, on another connection.
_RETRYABLE = (RequestNotSent, RequestTransmissionFailed, ResponseNeverReceived)


class HTTPServiceError(Exception):
    """
    The web service gave no usable answer; the message says why, in a few
    words (it is logged).
    """


class _AnswerTooLarge(Exception):
    pass


@dataclass(frozen=True)
class DecisionRequest:
    """
    One question to the web service: the JSON body's fields.

    @ivar action: C{"authenticate"}, C{"connect"}, C{"publish"},
        C{"subscribe"} or C{"receive"}.
    @ivar password: the CONNECT's password (C{bytes}), only for
        C{"authenticate"} with a user name.
    """

    action: str
    clientId: str | None = None
    username: str | None = None
    password: bytes | None = None
    topic: str | None = None
    qos: int | None = None
    retain: bool | None = None

    def body(self) -> dict[str, Any]:
        """
        The JSON object sent: the password as UTF-8 text, or, if it is not
        valid UTF-8, as base64 with C{"password_base64": true} added.
        """
        body: dict[str, Any] = {
            "action": self.action,
            "clientid": self.clientId,
            "username": self.username,
            "password": None,
            "topic": self.topic,
            "qos": self.qos,
            "retain": self.retain,
        }
        if self.password is not None:
            try:
                body["password"] = self.password.decode("utf-8")
            except UnicodeDecodeError:
                body["password"] = base64.b64encode(self.password).decode("ascii")
                body["password_base64"] = True
        return body

    def __repr__(self) -> str:
        # Never show the password (in logs or tracebacks).
        return (
            f"DecisionRequest({self.action!r}, clientId={self.clientId!r}, "
            f"username={self.username!r}, topic={self.topic!r})"
        )


class DecisionCache:
    """
    The service's answers for C{ttl} seconds, at most C{size} of them
    (the least recently used go first).

    @ivar hits: how many lookups found an answer.
    @ivar misses: how many did not.
    """

    def __init__(self, ttl: float, size: int, now: Callable[[], float]) -> None:
        """
        @param now: the current time (C{clock.seconds}).
        """
        self.ttl = ttl
        self.size = size
        self.now = now
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, str]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """
        Whether answers are kept at all.
        """
        return self.ttl > 0 and self.size > 0

    def get(self, key: tuple[Any, ...]) -> str | None:
        """
        The answer cached for C{key} and not yet expired, or L{None}.
        """
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        expires, answer = entry
        if self.now() >= expires:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return answer

    def put(self, key: tuple[Any, ...], answer: str) -> None:
        """
        Keep C{answer} for C{key}.
        """
        if not self.enabled:
            return
        self._entries[key] = (self.now() + self.ttl, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """
        Forget every answer.
        """
        self._entries.clear()

    def items(self) -> list[tuple[tuple[Any, ...], tuple[float, str]]]:
        """
        What is cached: C{(key, (expiry time, answer))} pairs (for tests
        and debugging).
        """
        return list(self._entries.items())

    def __len__(self) -> int:
        return len(self._entries)


def _loadTrustRoot(cafile: str) -> Any:
    """
    The certificates of a PEM file as a Twisted trust root.

    @raise ValueError: if it holds no certificate or a bad one, or
        L{mqttd.files.UnreadableFile} (also an C{OSError}) if it cannot be
        read; the message names the C{cafile} argument and the file.
    """
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    data = readBinaryFile(cafile, "cafile")
    blocks = re.findall(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.DOTALL
    )
    if not blocks:
        raise ValueError(f"cafile {cafile}: no PEM certificate in it")
    try:
        certificates = [Certificate.loadPEM(block) for block in blocks]
    except Exception as e:
        raise ValueError(f"cafile {cafile}: bad certificate: {e}") from None
    return trustRootFromCertificates(certificates)


def _readBearer(path: str) -> str:
    """
    The token in a file (surrounding white space removed).

    @raise ValueError: if the file is empty or the token has a line break,
        or L{mqttd.files.UnreadableFile} (also an C{OSError}) if it cannot
        be read or is not UTF-8; the message names the C{bearer-file}
        argument and the file.
    """
    token = readTextFile(path, "bearer-file").strip()
    if not token:
        raise ValueError(f"bearer-file {path}: the token file is empty")
    if any(c in token for c in "\r\n\0"):
        raise ValueError(f"bearer-file {path}: the token must be one line")
    return token


class HTTPDecisionService:
    """
    Asks the web service at C{url} for decisions, with a cache and a pool
    of persistent connections.  Shared machinery of L{HTTPChecker} and
    L{HTTPAuthorizer}.

    @ivar url: where requests are POSTed.
    @ivar timeout: seconds a decision may take.
    @ivar cache: the L{DecisionCache}.
    @ivar requests: how many HTTP requests were made.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cacheTTL: float = DEFAULT_CACHE_TTL,
        cacheSize: int = DEFAULT_CACHE_SIZE,
        cafile: str | None = None,
        bearerFile: str | None = None,
        headers: Mapping[str, str] | None = None,
        connections: int = DEFAULT_CONNECTIONS,
        reactor: Any = None,
        clock: IReactorTime | None = None,
        httpClient: Any = None,
    ) -> None:
        """
        @param url: an C{http://} or C{https://} URL.
        @param cafile: a PEM file of the CAs to trust for an C{https} URL
            instead of the system's.
        @param bearerFile: a file holding a token sent as C{Authorization:
            Bearer TOKEN} (re-read by L{reload}).
        @param headers: more header fields sent with every request.
        @param connections: how many requests may be made at a time (and
            persistent connections kept); others wait their turn.
        @param reactor: the reactor to connect with (the global one, taken
            when the first request is made, by default).
        @param clock: for timeouts and the cache's expiry (C{reactor} by
            default).
        @param httpClient: a treq C{HTTPClient} (or C{treq.testing.StubTreq})
            to use instead of one made here.
        @raise ValueError: for a bad URL, header, CA file or token file.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http:// or https:// URL, not {url!r}")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError(f"url has a bad port (1 to 65535): {url!r}")
        if cafile is not None and parts.scheme != "https":
            raise ValueError("cafile= needs an https:// URL")
        if timeout <= 0:
            raise ValueError("timeout must be more than 0")
        self.url = url
        self.timeout = timeout
        self.cafile = cafile
        self.bearerFile = bearerFile
        self.connections = connections
        self._slots = DeferredSemaphore(connections)
        self._reactor = reactor
        self._clock = clock
        self._headers: dict[bytes, list[bytes]] = {
            b"Accept": [b"application/json"],
            b"User-Agent": [f"mqttd/{mqttd.__version__}".encode("ascii")],
        }
        for name, value in (headers or {}).items():
            if not _TOKEN.match(name) or any(c in value for c in "\r\n\0"):
                raise ValueError(f"bad header field {name!r}")
            self._headers[name.encode("ascii")] = [value.encode("utf-8")]
        self._trustRoot = _loadTrustRoot(cafile) if cafile is not None else None
        if bearerFile is not None:
            self._setBearer(_readBearer(bearerFile))
        self._http = httpClient
        self._pool: HTTPConnectionPool | None = None
        self.cache = DecisionCache(cacheTTL, cacheSize, lambda: self.clock.seconds())
        # The cache holds keyed hashes of passwords, never passwords; the
        # key lives only in this process.
        self._secret = secrets.token_bytes(32)
        self._pending: dict[tuple[Any, ...], list[Deferred[str]]] = {}
        # Bumped by reload: answers to questions asked before are not cached.
        self._generation = 0
        self.requests = 0

    @property
    def clock(self) -> IReactorTime:
        """
        The clock of timeouts and the cache.
        """
        if self._clock is None:
            self._clock = self._getReactor()
        return self._clock

    def _getReactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def _setBearer(self, token: str) -> None:
        self._headers[b"Authorization"] = [b"Bearer " + token.encode("utf-8")]

    def _client(self) -> Any:
        """
        The HTTP client, made at the first request (not at configuration
        time: the reactor may not be chosen yet).
        """
        if self._http is None:
            reactor = self._getReactor()
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = self.connections
            # The default policy verifies the certificate chain and the
            # host name (service-identity) with the platform's trust store;
            # a CA file replaces the trust store, never the host name check.
            policy = BrowserLikePolicyForHTTPS(trustRoot=self._trustRoot)
            agent = Agent(reactor, contextFactory=policy, pool=self._pool)
            self._http = HTTPClient(agent)
        return self._http

    def reload(self) -> None:
        """
        Re-read the token file and the CA file (raise to keep the old
        ones), and forget the cached answers.
        """
        token = _readBearer(self.bearerFile) if self.bearerFile is not None else None
        trustRoot = _loadTrustRoot(self.cafile) if self.cafile is not None else None
        if token is not None:
            self._setBearer(token)
        if self.cafile is not None:
            self._trustRoot = trustRoot
            if self._pool is not None:
                # New connections use the new CAs.
                self._pool.closeCachedConnections()
                self._pool = None
                self._http = None
        self.cache.clear()
        self._generation += 1

    def close(self) -> Deferred[None]:
        """
        Close the persistent connections.
        """
        if self._pool is None:
            return succeed(None)
        pool, self._pool = self._pool, None
        d: Deferred[None] = pool.closeCachedConnections()
        return d

    def cacheKey(self, request: DecisionRequest) -> tuple[Any, ...]:
        """
        The cache key of a request: every field, the password as an HMAC
        with a key that lives only in this process.
        """
        password = None
        if request.password is not None:
            password = hmac.new(self._secret, request.password, hashlib.sha256).digest()
        return (
            request.action, request.clientId, request.username, password,
            request.topic, request.qos, request.retain,
        )

    def ask(self, request: DecisionRequest) -> str | Deferred[str]:
        """
        The service's answer: C{"allow"}, C{"deny"} or C{"ignore"}, as a
        plain value when it is cached, or else a Deferred (failing with
        L{HTTPServiceError}, already logged, when the service gives no
        usable answer).
        """
        key = self.cacheKey(request)
        cached = self.cache.get(key) if self.cache.enabled else None
        if cached is not None:
            return cached
        waiter: Deferred[str] = Deferred()
        waiters = self._pending.get(key)
        if waiters is not None:
            # The same question is being asked: share its answer.
            waiters.append(waiter)
            return waiter
        self._pending[key] = [waiter]
        d = Deferred.fromCoroutine(self._post(request))
        d.addTimeout(self.timeout, self.clock, onTimeoutCancel=_timedOut)
        d.addBoth(self._answered, key, request, self._generation)
        return waiter

    def _answered(self, result: str | Failure, key: tuple[Any, ...],
                  request: DecisionRequest, generation: int) -> None:
        waiters = self._pending.pop(key, [])
        if isinstance(result, Failure):
            if result.check(TwistedTimeoutError, CancelledError):
                why = f"no answer within {self.timeout:g} s"
            elif result.check(HTTPServiceError):
                why = str(result.value)
            else:
                why = f"{type(result.value).__name__}: {result.getErrorMessage()}"
            log.error(
                "http: {url} failed to decide {action} of client {clientId!r} "
                "(user {username!r}): {why}; refused",
                url=self.url, action=request.action, clientId=request.clientId,
                username=request.username, why=why,
            )
            error = HTTPServiceError(why)
            for waiter in waiters:
                if not waiter.called:
                    waiter.errback(Failure(error))
            return
        if generation == self._generation:
            self.cache.put(key, result)
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(result)

    async def _post(self, request: DecisionRequest) -> str:
        """
        POST the request (retried once if it never reached the service)
        and read the answer, with at most L{connections} requests at a
        time (the others wait their turn, within their timeout).
        """
        await self._slots.acquire()
        try:
            return await self._exchange(request.body())
        finally:
            self._slots.release()

    async def _exchange(self, body: dict[str, Any]) -> str:
        http = self._client()
        try:
            response = await self._send(http, body)
        except _RETRYABLE as e:
            reasons = getattr(e, "reasons", ())
            if any(reason.check(CancelledError) for reason in reasons):
                # Cancelled (the timeout): no retry.
                raise
            response = await self._send(http, body)
        code = response.code
        chunks: list[bytes] = []
        size = 0

        def collect(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > MAX_ANSWER_SIZE:
                raise _AnswerTooLarge()
            chunks.append(data)

        try:
            await treq.collect(response, collect)
        except _AnswerTooLarge:
            raise HTTPServiceError(f"answer longer than {MAX_ANSWER_SIZE} bytes") from None
        if code != 200:
            raise HTTPServiceError(f"answered status {code}")
        try:
            answer = json.loads(b"".join(chunks))
        except ValueError:
            raise HTTPServiceError("the answer is not JSON") from None
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, str) or result not in ANSWERS:
            raise HTTPServiceError(f"unknown result {_short(result)}")
        return result

    def _send(self, http: Any, body: dict[str, Any]) -> Deferred[Any]:
        self.requests += 1
        d: Deferred[Any] = http.request(
            "POST", self.url, json=body, headers=self._headers,
            allow_redirects=False, unbuffered=True,
        )
        return d


def _timedOut(result: Any, timeout: float) -> Failure:
    # Whatever the cancelled request failed with (the HTTP client wraps the
    # cancellation in its own errors), it is a timeout.
    return Failure(TwistedTimeoutError(f"no answer within {timeout:g} s"))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@implementer(ICredentialsChecker, IReloadable)
class HTTPChecker:
    """
    A C{twisted.cred} checker asking the web service (action
    C{"authenticate"}): C{"allow"} accepts the client (its avatar id is the
    user name, or C{ANONYMOUS}), C{"deny"} refuses it, C{"ignore"} leaves
    it to the next authenticator; a failed service refuses it.

    The password is sent as UTF-8 text; one that is not valid UTF-8 is sent
    in base64, with C{"password_base64": true}.
    """

    credentialInterfaces = (IUsernamePassword, IAnonymous)

    def __init__(self, service: HTTPDecisionService) -> None:
        self.service = service

    def __repr__(self) -> str:
        return f"<HTTPChecker {self.service.url}>"

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        clientId = getattr(credentials, "clientId", None)
        if IUsernamePassword.providedBy(credentials):
            try:
                username = credentials.username.decode("utf-8")
            except UnicodeDecodeError:
                # A CONNECT's user name is always UTF-8; anything else is
                # refused rather than sent mangled.
                return fail(UnauthorizedLogin("user name is not UTF-8"))
            password = credentials.password
            avatarId: Any = credentials.username
            request = DecisionRequest("authenticate", clientId, username, password)
        else:
            avatarId = ANONYMOUS
            request = DecisionRequest("authenticate", clientId)
        answer = self.service.ask(request)
        if isinstance(answer, str):
            try:
                return succeed(_avatarFor(answer, avatarId))
            except (UnauthorizedLogin, UnhandledCredentials):
                return fail()
        return answer.addCallbacks(_avatarFor, _serviceFailed, callbackArgs=(avatarId,))

    def reload(self) -> None:
        """
        Re-read the token and CA files; forget cached answers.
        """
        self.service.reload()

    def close(self) -> Deferred[None]:
        """
        Close the connections to the service.
        """
        return self.service.close()


def _avatarFor(answer: str, avatarId: Any) -> Any:
    """
    The avatar id for the service's answer.

    @raise UnauthorizedLogin: for C{"deny"}.
    @raise UnhandledCredentials: for C{"ignore"}.
    """
    if answer == "allow":
        return avatarId
    if answer == "ignore":
        raise UnhandledCredentials("the authentication service has no opinion")
    raise UnauthorizedLogin("denied by the authentication service")


def _serviceFailed(failure: Failure) -> Failure:
    # Fail closed; the service already logged why.
    return Failure(UnauthorizedLogin("the authentication service failed"))


#: The answers of the authorizer for each answer of the service.
_DECISIONS: dict[str, Any] = {"allow": ALLOW, "deny": DENIED, "ignore": NEXT}


@implementer(IAuthorizer, IReloadable)
class HTTPAuthorizer:
    """
    An authorizer asking the web service (actions C{"connect"},
    C{"publish"}, C{"subscribe"}, C{"receive"}): C{"allow"} is
    L{mqttd.auth.ALLOW}, C{"deny"} a L{mqttd.auth.Deny}, C{"ignore"}
    L{mqttd.auth.NEXT}; a failed service denies.  Cached answers are plain
    values (no Deferred): the fast path for receive checks, asked for every
    delivery.

    @ivar receive: C{"ask"} (ask the service for every delivery, cached),
        C{"allow"} (a subscription allowed is enough) or C{"next"} (leave
        deliveries to the next authorizer).
    @ivar timeout: the broker's bound on this authorizer's Deferreds: a
        second more than the service's, which bounds them itself.
    """

    def __init__(self, service: HTTPDecisionService, receive: str = "ask") -> None:
        if receive not in ("ask", "allow", "next"):
            raise ValueError(f"receive must be ask, allow or next, not {receive!r}")
        self.service = service
        self.receive = receive
        self.timeout = service.timeout + 1.0

    def __repr__(self) -> str:
        return f"<HTTPAuthorizer {self.service.url}>"

    def _ask(self, request: DecisionRequest) -> Any:
        answer = self.service.ask(request)
        if isinstance(answer, str):
            return _DECISIONS[answer]
        return answer.addCallbacks(_DECISIONS.__getitem__, lambda failure: SERVICE_FAILED)

    def authorizeConnect(self, client: IClientInfo) -> Any:
        return self._ask(DecisionRequest("connect", client.clientId, client.username))

    def authorizePublish(self, client: IClientInfo, topic: str, qos: int, retain: bool) -> Any:
        return self._ask(
            DecisionRequest("publish", client.clientId, client.username, None, topic, qos,
                            retain)
        )

    def authorizeSubscribe(self, client: IClientInfo, topicFilter: str, qos: int) -> Any:
        return self._ask(
            DecisionRequest("subscribe", client.clientId, client.username, None, topicFilter,
                            qos)
        )

    def authorizeReceive(self, client: IClientInfo, topic: str, qos: int, retain: bool) -> Any:
        if self.receive == "allow":
            return ALLOW
        if self.receive == "next":
            return NEXT
        return self._ask(
            DecisionRequest("receive", client.clientId, client.username, None, topic, qos,
                            retain)
        )

    def reload(self) -> None:
        """
        Re-read the token and CA files; forget cached answers.
        """
        self.service.reload()

    def close(self) -> Deferred[None]:
        """
        Close the connections to the service.
        """
        return self.service.close()


# -- configuration ------------------------------------------------------------

#: The arguments both plug-ins take.
ARGUMENTS = (
    "url", "timeout", "cache-ttl", "cache-size", "cafile", "bearer-file", "header",
    "connections",
)


_ESCAPE_HINT = r"escape the URL's colons as \: (url=https\://host\:8443/path)"


def _url(arguments: Any) -> tuple[str, bool]:
    """
    The C{url} argument.  The argument grammar splits at unescaped colons,
    so C{url=http://host:8080/auth} arrives as C{url=http} and positional
    fields C{//host}, C{8080/auth}: those are joined back (these plug-ins
    take no positional arguments).

    @return: the URL, and whether it was split at unescaped colons.
    @raise mqttd.plugin.PluginError: if it is missing, or was split in a
        way that cannot be joined back (the message says to escape the
        colons).
    """
    from mqttd.plugin import PluginError

    url = arguments.get("url")
    if url is None:
        raise PluginError(f"{arguments.name}: missing argument url=...")
    if url not in ("http", "https"):
        return str(url), False
    positional = list(arguments.positional)
    if not positional or not positional[0].startswith("//"):
        raise PluginError(f"{arguments.name}: url={url} is not a whole URL: {_ESCAPE_HINT}")
    arguments.positional = []
    return ":".join([url, *positional]), True


def serviceFromArguments(arguments: Any, extra: tuple[str, ...] = ()) -> HTTPDecisionService:
    """
    An L{HTTPDecisionService} from a plug-in's arguments (L{ARGUMENTS}:
    the C{http} factories' C{argumentsHelp} describes them).

    @param extra: more argument names the caller handles.
    @raise mqttd.plugin.PluginError: for bad arguments.
    """
    from mqttd.plugin import PluginError

    name = arguments.name
    url, split = _url(arguments)
    try:
        arguments.onlyKnown(*ARGUMENTS, *extra)
    except PluginError as e:
        if not split:
            raise
        # E.g. url=http://h:8080/a?x=1: "8080/a?x" became an argument name.
        raise PluginError(f"{e}; if it is part of the URL, {_ESCAPE_HINT}") from None
    size = arguments.number("cache-size", DEFAULT_CACHE_SIZE)
    connections = arguments.number("connections", DEFAULT_CONNECTIONS, minimum=1)
    for key, value in (("cache-size", size), ("connections", connections)):
        if value != int(value):
            raise PluginError(f"{name}: {key} must be a whole number")
    timeout = arguments.number("timeout", DEFAULT_TIMEOUT)
    if timeout <= 0:
        raise PluginError(f"{name}: timeout must be more than 0")
    headers = {}
    header = arguments.get("header")
    if header is not None:
        field, sep, value = header.partition("=")
        if not sep or not field:
            raise PluginError(f"{name}: header must be NAME=VALUE, not {header!r}")
        headers[field.strip()] = value.strip()
    try:
        return HTTPDecisionService(
            url,
            timeout=timeout,
            cacheTTL=arguments.number("cache-ttl", DEFAULT_CACHE_TTL),
            cacheSize=int(size),
            cafile=arguments.path("cafile", required=False),
            bearerFile=arguments.path("bearer-file", required=False),
            headers=headers,
            connections=int(connections),
        )
    except (ValueError, OSError) as e:
        raise PluginError(f"{name}: {e}") from None


def checkerFromArguments(arguments: Any) -> HTTPChecker:
    """
    The C{--auth http:...} plug-in.

    @raise mqttd.plugin.PluginError: for bad arguments.
    """
    return HTTPChecker(serviceFromArguments(arguments))


def authorizerFromArguments(arguments: Any) -> HTTPAuthorizer:
    """
    The C{--authorizer http:...} plug-in (also takes C{receive=ask|allow|next}).

    @raise mqttd.plugin.PluginError: for bad arguments.
    """
    from mqttd.plugin import PluginError

    service = serviceFromArguments(arguments, ("receive",))
    receive = arguments.get("receive", "ask")
    try:
        return HTTPAuthorizer(service, receive)
    except ValueError as e:
        raise PluginError(f"{arguments.name}: {e}") from None
