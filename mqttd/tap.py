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
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet import endpoints
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python import usage

from mqttd.broker import Broker
from mqttd.config import OPTIONS, OPTIONS_BY_NAME, BrokerConfig, parseValue
from mqttd.protocol import MQTTServerFactory

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = Logger(namespace="mqttd")

DEFAULT_LISTEN = "tcp:1883:interface=127.0.0.1"

# Keys of the configuration file that are not broker settings.
_LISTENER_KEYS = {"listen", "allow-anonymous"}


def _fail(message: str) -> SystemExit:
    return SystemExit(f"mqttd: {message}")


def splitEndpoint(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split an endpoint string the way Twisted does: fields separated by
    C{:}, a backslash escaping the next character, C{key=value} fields
    (after the first, at an unescaped C{=}) as keyword arguments.

    @return: the positional fields (the first is the type) and the keyword
        fields.
    """
    args: list[str] = []
    kwargs: dict[str, str] = {}
    current: list[str] = []
    key: str | None = None
    chars = iter(description)

    def endField() -> None:
        nonlocal key
        text = "".join(current)
        current.clear()
        if key is not None:
            kwargs[key] = text
            key = None
        else:
            args.append(text)

    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            endField()
        elif char == "=" and key is None and args:
            key = "".join(current)
            current.clear()
        else:
            current.append(char)
    endField()
    return args, kwargs


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
    args, kwargs = splitEndpoint(description)
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
_BACKLOG_TYPES = frozenset({"tcp", "tcp6", "ssl", "unix"})


def withDefaultBacklog(description: str) -> str:
    """
    Add C{backlog=1024} to a C{tcp}, C{tcp6}, C{ssl} or C{unix} endpoint
    string that does not set one.
    """
    args, kwargs = splitEndpoint(description)
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
    args, kwargs = splitEndpoint(description)
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
        super().privilegedStartService()
        self._waitingForPort.addCallback(self._listening)  # type: ignore[union-attr]

    def _listening(self, port: IListeningPort) -> IListeningPort:
        log.info(
            "mqttd listening on {address}",
            address=describeAddress(port.getHost()),
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

    def opt_listen(self, description: str) -> None:
        """Listen on this Twisted server endpoint, e.g. tcp:1883 or unix:/run/mqttd.sock (repeatable; replaces the default tcp:1883:interface=127.0.0.1)."""
        self["listen"].append(description)

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
            listen = [resolveEndpointPaths(d, self.configDirectory) for d in fromFile]
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
            except (ValueError, KeyError, TypeError) as e:
                raise _fail(f"invalid listen endpoint {description!r}: {e}") from None
            if not allowAnonymous and not isLocalEndpoint(description):
                raise _fail(
                    f"listener {description!r} is not local and has no authentication: "
                    "configure authentication or pass --allow-anonymous"
                )
            self.endpoints.append((description, endpoint))


def makeService(options: Options) -> IService:
    """
    Build the service tree: the broker, then one listener per endpoint.
    """
    top = MultiService()
    broker = Broker(options.brokerConfig)
    broker.setServiceParent(top)
    for description, endpoint in options.endpoints:
        local = isLocalEndpoint(description)
        factory = MQTTServerFactory(
            broker, allowAnonymous=options["allow-anonymous"] or local
        )
        ListenerService(endpoint, factory, description).setServiceParent(top)
    return top
