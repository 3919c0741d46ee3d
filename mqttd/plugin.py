"""
Plug-ins: the argument grammar, discovery with C{twisted.plugin}, and
activation by configuration.

Every kind of plug-in is configured the same way, like a Twisted endpoint
string: C{NAME:key=value:key=value}, with C{\\:} for a colon inside a value
(C{--auth passwd:file=/etc/mqttd/passwd}).  Factories are found with
C{twisted.plugin.getPlugins} in the C{mqttd.plugins} package, which any
installed distribution can add a C{mqttd/plugins/<name>_plugin.py} module
to; finding a factory never activates it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from zope.interface.interface import InterfaceClass

from mqttd.config import parseBoolean
from mqttd.interfaces import (
    IAuthenticatorFactory,
    IAuthorizerFactory,
    IHookFactory,
    IStoreFactory,
)


class PluginError(Exception):
    """
    A plug-in cannot be used as configured; the message is one line that
    names it.
    """


def splitArguments(text: str) -> tuple[list[str], dict[str, str]]:
    """
    Split an endpoint-style string: fields separated by C{:}, a backslash
    escaping the next character, C{key=value} fields (after the first, at
    an unescaped C{=}) as keyword arguments.

    @return: the positional fields (the first is the name or type) and the
        keyword fields.
    """
    args: list[str] = []
    kwargs: dict[str, str] = {}
    current: list[str] = []
    key: str | None = None
    chars = iter(text)

    def endField() -> None:
        nonlocal key
        value = "".join(current)
        current.clear()
        if key is not None:
            kwargs[key] = value
            key = None
        else:
            args.append(value)

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


@dataclass
class PluginArguments:
    """
    The arguments a plug-in was configured with.

    @ivar name: the plug-in's name.
    @ivar positional: the fields without C{=} after the name.
    @ivar options: the C{key=value} fields.
    @ivar baseDirectory: where relative paths are resolved (the
        configuration file's directory, or the working directory).
    """

    name: str
    positional: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    baseDirectory: str | None = None

    def get(self, key: str, default: str | None = None) -> str | None:
        """
        An option's value, or C{default}.
        """
        return self.options.get(key, default)

    def require(self, key: str) -> str:
        """
        An option that must be given.

        @raise PluginError: if it is missing or empty.
        """
        value = self.options.get(key)
        if not value:
            raise PluginError(f"{self.name}: missing argument {key}=...")
        return value

    def path(self, key: str, required: bool = True) -> str | None:
        """
        An option naming a file, made absolute against L{baseDirectory}.

        @raise PluginError: if required and missing.
        """
        value = self.require(key) if required else self.options.get(key)
        if value is None:
            return None
        value = os.path.expanduser(value)
        if not os.path.isabs(value):
            value = os.path.join(self.baseDirectory or os.getcwd(), value)
        return value

    def number(self, key: str, default: float, minimum: float = 0) -> float:
        """
        A numeric option.

        @raise PluginError: if it is not a number or below C{minimum}.
        """
        value = self.options.get(key)
        if value is None:
            return default
        try:
            result = float(value)
        except ValueError:
            result = math.nan
        if not math.isfinite(result):
            raise PluginError(f"{self.name}: {key} must be a number, not {value!r}")
        if result < minimum:
            raise PluginError(f"{self.name}: {key} must be at least {minimum:g}")
        return result

    def flag(self, key: str, default: bool) -> bool:
        """
        A yes/no option (the words L{mqttd.config.parseBoolean} accepts).

        @raise PluginError: for another value.
        """
        value = self.options.get(key)
        if value is None:
            return default
        try:
            return parseBoolean(value)
        except ValueError as e:
            raise PluginError(f"{self.name}: {key} {e}") from None

    def onlyKnown(self, *keys: str) -> None:
        """
        Refuse options other than C{keys} and any positional field.

        @raise PluginError: naming the first unknown one.
        """
        for key in self.options:
            if key not in keys:
                known = ", ".join(keys) or "none"
                raise PluginError(f"{self.name}: unknown argument {key!r} (known: {known})")
        if self.positional:
            raise PluginError(f"{self.name}: unexpected argument {self.positional[0]!r}")


def parsePluginSpec(spec: str, baseDirectory: str | None = None) -> PluginArguments:
    """
    Parse C{NAME:key=value:...}.

    @raise PluginError: if there is no name.
    """
    args, kwargs = splitArguments(spec)
    if not args or not args[0]:
        raise PluginError(f"no plug-in name in {spec!r}")
    return PluginArguments(args[0], args[1:], kwargs, baseDirectory)


@dataclass(frozen=True)
class PluginKind:
    """
    One kind of plug-in.

    @ivar option: the command-line option (C{auth} for C{--auth}).
    @ivar interface: the factory interface getPlugins looks for.
    @ivar make: the factory method that makes the plug-in.
    """

    option: str
    interface: InterfaceClass
    make: str
    what: str


AUTH = PluginKind("auth", IAuthenticatorFactory, "makeAuthenticator", "authenticator")
AUTHORIZER = PluginKind("authorizer", IAuthorizerFactory, "makeAuthorizer", "authorizer")
HOOK = PluginKind("hook", IHookFactory, "makeHook", "hook")
STORE = PluginKind("store", IStoreFactory, "makeStore", "store")
KINDS = (AUTH, AUTHORIZER, HOOK, STORE)


def availablePlugins(kind: PluginKind) -> dict[str, Any]:
    """
    The factories of one kind installed in the C{mqttd.plugins} package,
    by name.  Dropin modules that fail to import are skipped here (Twisted
    logs them); configuring such a plug-in then fails as "not installed".
    """
    from twisted.plugin import getPlugins

    import mqttd.plugins

    found: dict[str, Any] = {}
    interface: Any = kind.interface
    factory: Any
    for factory in getPlugins(interface, mqttd.plugins):
        found.setdefault(factory.name, factory)
    return found


def makePlugin(kind: PluginKind, spec: str, baseDirectory: str | None = None) -> Any:
    """
    Find the factory a C{NAME:ARGS} string names and make the plug-in.

    @raise PluginError: if it is not installed, or its factory refuses the
        arguments or fails (any exception becomes one line).
    """
    arguments = parsePluginSpec(spec, baseDirectory)
    factories = availablePlugins(kind)
    factory = factories.get(arguments.name)
    if factory is None:
        known = ", ".join(sorted(factories)) or "none"
        raise PluginError(
            f"--{kind.option} {arguments.name}: no such {kind.what} is installed "
            f"(installed: {known})"
        )
    try:
        return getattr(factory, kind.make)(arguments)
    except PluginError as e:
        message = _oneLine(str(e))
        if not message.startswith(f"{arguments.name}:"):
            message = f"{arguments.name}: {message}"
        raise PluginError(f"--{kind.option} {message}") from None
    except ImportError as e:
        raise PluginError(
            f"--{kind.option} {arguments.name}: a module it needs is missing ({_oneLine(str(e))})"
        ) from None
    except Exception as e:
        raise PluginError(
            f"--{kind.option} {arguments.name}: {type(e).__name__}: {_oneLine(str(e))}"
        ) from None


def _oneLine(text: str) -> str:
    return " ".join(text.split())


def describePlugins(kind: PluginKind, factories: Iterable[Any] | None = None) -> str:
    """
    The text of C{--help-<kind>}: each installed plug-in with its
    description and arguments.
    """
    if factories is None:
        factories = availablePlugins(kind).values()
    lines = []
    for factory in sorted(factories, key=lambda f: f.name):
        lines.append(f"{factory.name}: {factory.description}")
        for line in str(factory.argumentsHelp).strip().splitlines():
            lines.append(f"    {line.strip()}")
    if not lines:
        return f"No {kind.what} plug-ins are installed.\n"
    return "\n".join(lines) + "\n"
