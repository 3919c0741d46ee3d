"""
The C{twistd mqttd} command line: options, the TOML configuration file and
the service they build.

With no options the broker listens on 127.0.0.1:1883 and accepts anonymous
clients there.  C{--listen ENDPOINT} (repeatable, any Twisted server
endpoint string) replaces that default.  A listener that is not local
(127.0.0.0/8, ::1 or a UNIX socket) needs authentication or an explicit
C{--allow-anonymous}: without either the broker refuses to start.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.cred.checkers import AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.portal import Portal
from twisted.internet import endpoints
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python import usage

from mqttd.auth import CheckerChain, MQTTRealm
from mqttd.broker import Broker
from mqttd.config import OPTIONS, OPTIONS_BY_NAME, BrokerConfig, parseValue
from mqttd.interfaces import IEnhancedAuthenticator, IReloadable
from mqttd.plugin import (
    AUTH,
    AUTHORIZER,
    HOOK,
    KINDS,
    STORE,
    PluginError,
    describePlugins,
    makePlugin,
    splitArguments,
)
from mqttd.protocol import MQTTServerFactory

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = Logger(namespace="mqttd")

DEFAULT_LISTEN = "tcp:1883:interface=127.0.0.1"

# Keys of the configuration file that are not broker settings.
_LISTENER_KEYS = {"listen", "allow-anonymous", "auth", "authorizer", "hook", "store"}


def _fail(message: str) -> SystemExit:
    return SystemExit(f"mqttd: {message}")


# Endpoint arguments that name files (Twisted's ssl: and mqttd's mtls:).
_PATH_ARGUMENTS = frozenset(
    {"privateKey", "certKey", "caCerts", "crlFile", "extraCertChain", "dhParameters"}
)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def resolveEndpointPaths(description: str, directory: str) -> str:
    """
    Make the relative file paths of an endpoint string from a configuration
    file relative to that file's directory: the path of a C{unix:}
    endpoint and the certificate and key arguments of TLS endpoints.
    """
    args, kwargs = splitArguments(description)
    if not args:
        return description
    changed = False
    if args[0].lower() == "unix" and len(args) > 1 and not os.path.isabs(args[1]):
        args[1] = os.path.join(directory, args[1])
        changed = True
    for key, value in kwargs.items():
        if key in _PATH_ARGUMENTS and value and not os.path.isabs(value):
            kwargs[key] = os.path.join(directory, value)
            changed = True
    if not changed:
        return description
    fields = [args[0]] + [_escape(a) for a in args[1:]]
    fields += [f"{_escape(k)}={_escape(v)}" for k, v in kwargs.items()]
    return ":".join(fields)


#: The listen backlog for endpoints that take one and were given none
#: (Twisted's default, 50, drops connections in a reconnect storm).
DEFAULT_BACKLOG = 1024
_BACKLOG_TYPES = frozenset({"tcp", "tcp6", "ssl", "mtls", "unix"})


def withDefaultBacklog(description: str) -> str:
    """
    Add C{backlog=1024} to a C{tcp}, C{tcp6}, C{ssl}, C{mtls} or C{unix} endpoint
    string that does not set one.
    """
    args, kwargs = splitArguments(description)
    if args and args[0].lower() in _BACKLOG_TYPES and "backlog" not in kwargs:
        return f"{description}:backlog={DEFAULT_BACKLOG}"
    return description


def isLocalEndpoint(description: str) -> bool:
    """
    Whether a server endpoint string only accepts connections from this
    machine: a UNIX socket, or a TCP-like endpoint bound to 127.0.0.0/8 or
    ::1.  Anything else (including unknown endpoint types without a
    loopback C{interface}) counts as not local.
    """
    args, kwargs = splitArguments(description)
    kind = args[0].lower() if args else ""
    if kind == "unix":
        return True
    interface = kwargs.get("interface")
    if interface is None:
        return False
    try:
        return ipaddress.ip_address(interface.strip("[]")).is_loopback
    except ValueError:
        return interface == "localhost"


def describeAddress(address: Any) -> str:
    """
    An endpoint-like description of a listening address, as logged in
    C{mqttd listening on ...}: C{tcp:127.0.0.1:1883}, C{tcp6:[::1]:1883},
    C{unix:/path}.
    """
    kind = getattr(address, "type", None)
    if kind == "TCP" and hasattr(address, "port"):
        host = address.host
        if ":" in host:
            return f"tcp6:[{host}]:{address.port}"
        return f"tcp:{host}:{address.port}"
    name = getattr(address, "name", None)
    if name is not None:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return f"unix:{name}"
    return str(address)


class ListenerService(StreamServerEndpointService):
    """
    A listener: an endpoint with the MQTT factory, logging
    C{mqttd listening on <address>} once it listens.
    """

    def __init__(self, endpoint: Any, factory: MQTTServerFactory, description: str) -> None:
        super().__init__(endpoint, factory)
        self.description = description
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            # Port in use, no such address...: one line, not a traceback.
            reason = e.socketError
            text = getattr(reason, "strerror", None) or str(reason)
            raise _fail(f"cannot listen on {self.description}: {text}") from None
        self._waitingForPort.addCallback(self._listening)  # type: ignore[union-attr]

    def _listening(self, port: IListeningPort) -> IListeningPort:
        address = describeAddress(port.getHost())
        kind = self.description.split(":", 1)[0].lower()
        if kind in ("ssl", "mtls") and address.startswith("tcp"):
            # Say which listener speaks TLS: ssl:127.0.0.1:8883.
            address = kind + address[address.index(":"):]
        log.info(
            "mqttd listening on {address}",
            address=address,
            description=self.description,
        )
        return port


def _readConfigFile(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise _fail(f"cannot read the configuration file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise _fail(f"{path}: {e}") from None
    except UnicodeDecodeError:
        raise _fail(f"{path}: not UTF-8 text (TOML files are UTF-8)") from None
    for key, value in data.items():
        if isinstance(value, dict):
            raise _fail(f"{path}: unknown section [{key}] (keys are flat, as the options)")
        if key not in OPTIONS_BY_NAME and key not in _LISTENER_KEYS:
            raise _fail(f"{path}: unknown key {key!r}")
    return data


def _defaultText(spec: Any) -> str:
    value = getattr(BrokerConfig(), spec.attribute)
    if spec.kind == "bool":
        return "yes" if value else "no"
    if spec.kind == "text":
        return repr(value) if value else "none"
    if spec.kind == "size" and value >= 1024 and value % 1024 == 0:
        for suffix, factor in (("G", 1024**3), ("M", 1024**2), ("k", 1024)):
            if value % factor == 0:
                return f"{value // factor}{suffix}"
    return str(value)


class Options(usage.Options):
    """
    The options of C{twistd mqttd}.  Every broker setting of
    L{mqttd.config.OPTIONS} is a kebab-case option; C{--config} reads the
    same names from a TOML file, command-line values winning.
    """

    synopsis = "[options]"
    longdesc = (
        "An MQTT 3.1, 3.1.1 and 5.0 broker. With no --listen it listens on "
        f"{DEFAULT_LISTEN} and accepts anonymous clients there. Sizes take k/M/G "
        "suffixes (powers of 1024)."
    )

    optFlags = [
        ["allow-anonymous", None, "Accept clients without credentials on every listener, "
                                  "not only on local ones."],
    ] + [[spec.name, None, spec.help] for spec in OPTIONS if spec.kind == "flag"]

    optParameters = [
        ["config", "c", None, "Read settings from this TOML file (keys as the long options)."],
    ] + [
        [spec.name, None, None,
         f"{spec.help} [default: {_defaultText(spec)}]"]
        for spec in OPTIONS
        if spec.kind != "flag"
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        for kind in KINDS:
            self[kind.option] = []
        self.configDirectory: str | None = None

    def opt_listen(self, description: str) -> None:
        """Listen on this Twisted server endpoint, e.g. tcp:1883 or unix:/run/mqttd.sock (repeatable; replaces the default tcp:1883:interface=127.0.0.1)."""
        self["listen"].append(description)

    def opt_auth(self, spec: str) -> None:
        """Authenticate clients with this plug-in, NAME:key=value:... (repeatable: asked in order; see --help-auth)."""
        self["auth"].append(spec)

    def opt_authorizer(self, spec: str) -> None:
        """Authorize clients' actions with this plug-in, NAME:key=value:... (repeatable: asked in order; see --help-authorizer)."""
        self["authorizer"].append(spec)

    def opt_hook(self, spec: str) -> None:
        """Run this message hook plug-in, NAME:key=value:... (repeatable; see --help-hook)."""
        self["hook"].append(spec)

    def opt_store(self, spec: str) -> None:
        """Keep sessions and messages with this store plug-in, NAME:key=value:... (see --help-store)."""
        self["store"].append(spec)

    def opt_help_auth(self) -> None:
        """List the installed authentication plug-ins and their arguments."""
        _printAndExit(describePlugins(AUTH))

    def opt_help_authorizer(self) -> None:
        """List the installed authorization plug-ins and their arguments."""
        _printAndExit(describePlugins(AUTHORIZER))

    def opt_help_hook(self) -> None:
        """List the installed message hook plug-ins and their arguments."""
        _printAndExit(describePlugins(HOOK))

    def opt_help_store(self) -> None:
        """List the installed store plug-ins and their arguments."""
        _printAndExit(describePlugins(STORE))

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            raise _fail(str(e)) from None

    def postOptions(self) -> None:
        fileSettings: Mapping[str, Any] = {}
        configPath = self["config"]
        if configPath:
            fileSettings = _readConfigFile(configPath)
            self.configDirectory = os.path.dirname(os.path.abspath(configPath))
        values: dict[str, Any] = {}
        for spec in OPTIONS:
            given = self[spec.name]
            source = f"--{spec.name}"
            if spec.kind == "flag":
                if given:
                    values[spec.attribute] = True
                    continue
                if spec.name in fileSettings:
                    given = fileSettings[spec.name]
                    source = f"{configPath}: {spec.name}"
                else:
                    continue
            elif given is None:
                if spec.name not in fileSettings:
                    continue
                given = fileSettings[spec.name]
                source = f"{configPath}: {spec.name}"
            try:
                values[spec.attribute] = parseValue(spec, given)
            except ValueError as e:
                raise _fail(f"{source}: {e}") from None
        try:
            self.brokerConfig = BrokerConfig().replace(**values)
            self.brokerConfig.validate()
        except ValueError as e:
            raise _fail(str(e)) from None

        listen = self["listen"]
        if not listen:
            fromFile = fileSettings.get("listen", [])
            if isinstance(fromFile, str):
                fromFile = [fromFile]
            if not isinstance(fromFile, list) or not all(isinstance(x, str) for x in fromFile):
                raise _fail(f"{configPath}: listen must be an array of endpoint strings")
            base = self.configDirectory or os.getcwd()
            listen = [resolveEndpointPaths(d, base) for d in fromFile]
        if not listen:
            listen = [DEFAULT_LISTEN]
        self["listen"] = listen

        allowAnonymous = bool(self["allow-anonymous"])
        if not allowAnonymous and "allow-anonymous" in fileSettings:
            value = fileSettings["allow-anonymous"]
            if not isinstance(value, bool):
                raise _fail(f"{configPath}: allow-anonymous must be true or false")
            allowAnonymous = value
        self["allow-anonymous"] = allowAnonymous

        from twisted.internet import reactor

        self.endpoints = []
        for description in listen:
            try:
                endpoint = endpoints.serverFromString(reactor, withDefaultBacklog(description))
            except OSError as e:
                # E.g. ssl: with a key file that does not exist.
                problem = f"{e.filename}: {e.strerror}" if e.filename else str(e)
                raise _fail(f"invalid listen endpoint {description!r}: {problem}") from None
            except (ValueError, KeyError, TypeError) as e:
                raise _fail(f"invalid listen endpoint {description!r}: {e}") from None
            self.endpoints.append((description, endpoint))

        self._makePlugins(fileSettings, configPath)
        self.authenticationConfigured = bool(self.authenticators)
        if not allowAnonymous and not self.authenticationConfigured:
            for description, _ in self.endpoints:
                if not isLocalEndpoint(description):
                    raise _fail(
                        f"listener {description!r} is not local and has no authentication: "
                        "configure authentication (--auth) or pass --allow-anonymous"
                    )

    def _makePlugins(self, fileSettings: Mapping[str, Any], configPath: str | None) -> None:
        """
        Make every configured plug-in (command-line lists replace the
        file's); a plug-in that is missing or refuses its arguments is a
        one-line error.
        """
        specs: dict[str, list[str]] = {}
        baseDirectories: dict[str, str | None] = {}
        for kind in KINDS:
            given = self[kind.option]
            base = None
            if not given and kind.option in fileSettings:
                value = fileSettings[kind.option]
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise _fail(f"{configPath}: {kind.option} must be an array of strings")
                given = value
                base = self.configDirectory
            specs[kind.option] = list(given)
            baseDirectories[kind.option] = base
        if len(specs["store"]) > 1:
            raise _fail("only one --store can be configured")
        made: dict[str, list[Any]] = {}
        for kind in KINDS:
            made[kind.option] = []
            for spec in specs[kind.option]:
                try:
                    made[kind.option].append(
                        makePlugin(kind, spec, baseDirectories[kind.option])
                    )
                except PluginError as e:
                    raise _fail(str(e)) from None
        self.authenticators = made["auth"]
        self.authorizers = made["authorizer"]
        self.hooks = made["hook"]
        self.store = made["store"][0] if made["store"] else None


class ReloadService(Service):
    """
    Re-reads reloadable plug-ins (password and ACL files...) on SIGHUP,
    which twistd leaves alone.
    """

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        from twisted.internet import reactor

        def onSignal(signum: int, frame: Any) -> None:
            reactor.callFromThread(self.broker.reload)  # type: ignore[attr-defined]

        if hasattr(signal, "SIGHUP"):
            self._previous = signal.signal(signal.SIGHUP, onSignal)

    def stopService(self) -> Any:
        if hasattr(signal, "SIGHUP") and self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None
        return super().stopService()


def makeService(options: Options) -> IService:
    """
    Build the service tree: the broker, then one listener per endpoint.

    With authentication configured every listener authenticates through a
    C{twisted.cred} portal whose checker chain is the C{--auth} plug-ins
    (plus anonymous access with C{--allow-anonymous}); without it, clients
    are accepted unauthenticated on local listeners (and on all of them with
    C{--allow-anonymous}).
    """
    top = MultiService()
    broker = Broker(options.brokerConfig, authorizers=options.authorizers, hooks=options.hooks,
                    store=options.store)
    broker.setServiceParent(top)
    for plugin in [*options.authenticators, *options.authorizers, *options.hooks]:
        if IReloadable.providedBy(plugin):
            broker.addReloadable(plugin)
    ReloadService(broker).setServiceParent(top)
    checkers = [a for a in options.authenticators if ICredentialsChecker.providedBy(a)]
    enhanced = [a for a in options.authenticators if IEnhancedAuthenticator.providedBy(a)]
    for description, endpoint in options.endpoints:
        if IReloadable.providedBy(endpoint):
            # mtls: listeners re-read their certificates and CRLs.
            broker.addReloadable(endpoint)
        if options.authenticationConfigured:
            chain = list(checkers)
            if options["allow-anonymous"]:
                chain.append(AllowAnonymousAccess())
            factory = MQTTServerFactory(
                broker, portal=Portal(MQTTRealm(), [CheckerChain(chain)]),
                enhancedAuthenticators=enhanced,
            )
        else:
            local = isLocalEndpoint(description)
            factory = MQTTServerFactory(
                broker, allowAnonymous=options["allow-anonymous"] or local
            )
        ListenerService(endpoint, factory, description).setServiceParent(top)
    return top


def _printAndExit(text: str) -> None:
    sys.stdout.write(text)
    sys.exit(0)
