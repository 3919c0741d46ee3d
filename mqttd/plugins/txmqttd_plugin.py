"""
The plug-ins that ship with mqttd (distribution C{txmqttd}).

Kept cheap to import: C{getPlugins} imports every dropin module, so each
factory imports what it builds only when it is used.
"""

from __future__ import annotations

from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from mqttd.interfaces import IAuthenticatorFactory, IAuthorizerFactory, IStoreFactory


@implementer(IPlugin, IAuthenticatorFactory)
class PasswordFileFactory:
    name = "passwd"
    description = "User names and passwords from a mosquitto-format password file."
    argumentsHelp = """\
file=PATH: the password file (user:$7$... lines; write it with 'mqttd passwd'
    or mosquitto_passwd); re-read on SIGHUP
threaded=yes|no: check passwords in a thread (default yes)"""

    def makeAuthenticator(self, arguments: Any) -> Any:
        from mqttd.passwd import PasswordFileChecker, PasswordFileError
        from mqttd.plugin import PluginError

        arguments.onlyKnown("file", "threaded")
        try:
            return PasswordFileChecker(arguments.path("file"), arguments.flag("threaded", True))
        except PasswordFileError as e:
            raise PluginError(f"passwd: {e}") from None


@implementer(IPlugin, IAuthenticatorFactory)
class AnonymousFactory:
    name = "anonymous"
    description = "Accept clients that send no user name (on every listener)."
    argumentsHelp = "(no arguments)"

    def makeAuthenticator(self, arguments: Any) -> Any:
        from twisted.cred.checkers import AllowAnonymousAccess

        arguments.onlyKnown()
        return AllowAnonymousAccess()


@implementer(IPlugin, IAuthenticatorFactory)
class X509Factory:
    name = "x509"
    description = (
        "Clients identified by the certificate an mtls: listener verified "
        "(its common name or subject as user name)."
    )
    argumentsHelp = """\
identity=cn|dn: the user name is the subject's common name (default) or its
    whole distinguished name (RFC 4514: CN=dev1,O=Acme)
clientid=keep|require|replace: any client id (default); the client id must be
    the identity (else CONNACK 0x85); or the identity replaces the client id"""

    def makeAuthenticator(self, arguments: Any) -> Any:
        from mqttd.plugin import PluginError
        from mqttd.x509 import CLIENT_IDS, IDENTITIES, CertificateChecker

        arguments.onlyKnown("identity", "clientid")
        identity = arguments.get("identity", "cn")
        clientId = arguments.get("clientid", "keep")
        if identity not in IDENTITIES:
            raise PluginError(f"x509: identity must be cn or dn, not {identity!r}")
        if clientId not in CLIENT_IDS:
            raise PluginError(
                f"x509: clientid must be keep, require or replace, not {clientId!r}")
        return CertificateChecker(identity, clientId)


@implementer(IPlugin, IAuthorizerFactory)
class AclFileFactory:
    name = "aclfile"
    description = "Topic access from a mosquitto-format ACL file (topic, user, pattern lines)."
    argumentsHelp = """\
file=PATH: the ACL file; re-read on SIGHUP. An empty file denies everything."""

    def makeAuthorizer(self, arguments: Any) -> Any:
        from mqttd.acl import AclFileAuthorizer, AclFileError
        from mqttd.plugin import PluginError

        arguments.onlyKnown("file")
        try:
            return AclFileAuthorizer(arguments.path("file"))
        except AclFileError as e:
            raise PluginError(f"aclfile: {e}") from None


@implementer(IPlugin, IStoreFactory)
class MemoryStoreFactory:
    name = "memory"
    description = (
        "Sessions and retained messages in memory: they survive a restart of the broker "
        "service inside its process (embedding), not of the process."
    )
    argumentsHelp = "(no arguments)"

    def makeStore(self, arguments: Any) -> Any:
        from mqttd.store.memory import MemoryStore

        arguments.onlyKnown()
        return MemoryStore()


@implementer(IPlugin, IStoreFactory)
class SQLiteStoreFactory:
    name = "sqlite"
    description = (
        "Persistent sessions, their QoS 1/2 messages and retained messages in an SQLite "
        "file: a message is acknowledged once committed."
    )
    argumentsHelp = """\
file=PATH: the database file (created if missing; one broker per file)
synchronous=full|normal|off: full (default) survives a power cut; normal
    survives a crash of the broker but may lose the last commits in a power cut"""

    def makeStore(self, arguments: Any) -> Any:
        from mqttd.plugin import PluginError
        from mqttd.store.sqlite import SQLiteStore, SQLiteStoreError

        arguments.onlyKnown("file", "synchronous")
        try:
            return SQLiteStore(arguments.path("file"), arguments.get("synchronous", "full"))
        except SQLiteStoreError as e:
            raise PluginError(f"sqlite: {e}") from None


passwd = PasswordFileFactory()
anonymous = AnonymousFactory()
x509 = X509Factory()
aclfile = AclFileFactory()
memory = MemoryStoreFactory()
sqlite = SQLiteStoreFactory()


@implementer(IPlugin, IAuthenticatorFactory)
class ScramFactory:
    name = "scram"
    description = "MQTT 5.0 enhanced authentication SCRAM-SHA-256 with a credential file."
    argumentsHelp = """\
file=PATH: the credential file (user:iterations:salt:StoredKey:ServerKey lines;
    write it with 'mqttd scram'); re-read on SIGHUP"""

    def makeAuthenticator(self, arguments: Any) -> Any:
        from mqttd.plugin import PluginError
        from mqttd.scram import ScramAuthenticator, ScramFileError

        arguments.onlyKnown("file")
        try:
            return ScramAuthenticator(arguments.path("file"))
        except ScramFileError as e:
            raise PluginError(f"scram: {e}") from None


scram = ScramFactory()


@implementer(IPlugin, IAuthenticatorFactory)
class JWTFactory:
    name = "jwt"
    description = (
        "JSON Web Tokens as the password, verified with public keys (RS256, ES256, ...): "
        "issuer keys, a JWKS or one key per device."
    )
    argumentsHelp = """\
key=PATH: PEM public key(s) or certificate(s) of the token issuer; re-read on SIGHUP
jwks=PATH: a JWKS file of issuer keys, picked by the token's kid; re-read on SIGHUP
keys=DIR: per-device keys: DIR/<client id>.pem, read at each CONNECT; a token
    signed with one authenticates the client id (it becomes the user name)
username-claim=NAME: the claim that is the user name (default sub)
clientid-claim=NAME: a claim that must equal the client id (default: none)
audience=AUD[,AUD...]: accepted aud values (without it, tokens with aud are refused)
issuer=ISS[,ISS...]: accepted iss values (default: not checked)
require=CLAIM[,CLAIM...]: claims every token must have (default exp)
max-lifetime=SECONDS: refuse tokens whose exp is more than this after iat
leeway=SECONDS: clock skew allowed for exp, nbf and iat (default 0)
algorithms=ALG[,ALG...]: accepted algorithms (default RS256,RS384,RS512,PS256,
    PS384,PS512,ES256,ES384,ES512,EdDSA; none and HS* are never accepted)"""

    def makeAuthenticator(self, arguments: Any) -> Any:
        from mqttd.plugin import PluginError

        try:
            import jwt
            from jwt.algorithms import has_crypto
        except ImportError:
            has_crypto = False
        else:
            has_crypto = has_crypto and hasattr(jwt, "PyJWT")
        if not has_crypto:
            raise PluginError("jwt: needs PyJWT: pip install 'txmqttd[jwt]'")
        from mqttd.jwtauth import ASYMMETRIC_ALGORITHMS, JWTChecker, JWTKeyError

        arguments.onlyKnown(
            "key", "jwks", "keys", "username-claim", "clientid-claim", "audience", "issuer",
            "require", "max-lifetime", "leeway", "algorithms",
        )

        def names(key: str, default: str = "") -> list[str]:
            value = arguments.get(key, default)
            return [name.strip() for name in value.split(",") if name.strip()]

        def claim(key: str) -> str | None:
            value = arguments.get(key)
            if value is not None and not value:
                raise PluginError(f"jwt: {key} must name a claim")
            return value

        keyFile = arguments.path("key", required=False)
        jwksFile = arguments.path("jwks", required=False)
        deviceDirectory = arguments.path("keys", required=False)
        if keyFile is None and jwksFile is None and deviceDirectory is None:
            raise PluginError("jwt: no keys: give key=FILE, jwks=FILE or keys=DIR")
        maxLifetime = None
        if arguments.get("max-lifetime") is not None:
            maxLifetime = arguments.number("max-lifetime", 0, minimum=1)
        try:
            return JWTChecker(
                keyFile, jwksFile, deviceDirectory,
                usernameClaim=claim("username-claim") or "sub",
                clientIdClaim=claim("clientid-claim"),
                audience=names("audience"),
                issuer=names("issuer"),
                require=names("require", "exp"),
                leeway=arguments.number("leeway", 0),
                maxLifetime=maxLifetime,
                algorithms=names("algorithms", ",".join(ASYMMETRIC_ALGORITHMS)),
            )
        except (JWTKeyError, ValueError) as e:
            raise PluginError(f"jwt: {e}") from None


jwtauth = JWTFactory()


_HTTP_COMMON_HELP = """\
cache-ttl=SECONDS: how long answers are cached (default 60; 0: no cache)
cache-size=N: answers cached at most (default 10000)
cafile=PATH: PEM file of the CAs of an https service (host name still verified)
bearer-file=PATH: token sent as 'Authorization: Bearer TOKEN'; re-read on SIGHUP
header=NAME=VALUE: one more header field sent with every request
connections=N: requests at a time, and persistent connections, to the service
    (default 10); more wait their turn"""


def _needTreq() -> None:
    from mqttd.plugin import PluginError

    try:
        import treq  # noqa: F401
    except ImportError:
        raise PluginError("http: needs treq: pip install 'txmqttd[http]'") from None


@implementer(IPlugin, IAuthenticatorFactory)
class HTTPAuthenticatorFactory:
    name = "http"
    description = "Ask a web service: POST JSON, answer allow, deny or ignore (needs treq)."
    argumentsHelp = """\
url=URL: where to POST {"action": "authenticate", "clientid", "username",
    "password", ...}; the answer is {"result": "allow"|"deny"|"ignore"}.
    The URL's colons need no escaping unless it has a '=' (then write \\:)
timeout=SECONDS: how long an answer may take (default 5); then: refused
""" + _HTTP_COMMON_HELP

    def makeAuthenticator(self, arguments: Any) -> Any:
        _needTreq()
        from mqttd.httpauth import checkerFromArguments

        return checkerFromArguments(arguments)


@implementer(IPlugin, IAuthorizerFactory)
class HTTPAuthorizerFactory:
    name = "http"
    description = "Ask a web service: POST JSON, answer allow, deny or ignore (needs treq)."
    argumentsHelp = """\
url=URL: where to POST {"action": "connect"|"publish"|"subscribe"|"receive",
    "clientid", "username", "topic", "qos", "retain", ...}; the answer is
    {"result": "allow"|"deny"|"ignore"}. The URL's colons need no escaping
    unless it has a '=' (then write \\:)
receive=ask|allow|next: ask the service for every delivery (default, cached),
    allow deliveries of allowed subscriptions, or leave them to the next one
timeout=SECONDS: how long an answer may take (default 5); then: denied
""" + _HTTP_COMMON_HELP

    def makeAuthorizer(self, arguments: Any) -> Any:
        _needTreq()
        from mqttd.httpauth import authorizerFromArguments

        return authorizerFromArguments(arguments)


httpauth = HTTPAuthenticatorFactory()
httpauthorizer = HTTPAuthorizerFactory()
