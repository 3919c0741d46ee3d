"""
Broker settings: one table of options shared by the command line, the TOML
configuration file and the documentation.

Every limit is bounded by default (DESIGN.md section 4).  Option names are
kebab-case long options; the TOML file uses the same names as flat keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

_SIZE = re.compile(r"^\s*(\d+)\s*(?:([kKmMgG])(?:i?[bB])?|[bB])?\s*$")
_FACTORS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _size(text: str) -> int:
    """
    Parse a byte count: an integer, optionally with a C{k}, C{M} or C{G}
    suffix (powers of 1024: C{64M}, C{64MiB} and C{64MB} all mean 64 MiB).

    @raise ValueError: if it is not of that form.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(text)
    number, suffix = match.groups()
    return int(number) * (_FACTORS[suffix.lower()] if suffix else 1)


def _seconds(text: str) -> float:
    return float(text)


#: The words of a yes/no value (any case), everywhere one is written: broker
#: settings, plug-in arguments, endpoint arguments.
BOOLEAN_WORDS: Mapping[str, bool] = {
    "yes": True, "true": True, "on": True, "1": True,
    "no": False, "false": False, "off": False, "0": False,
}


def parseBoolean(text: str) -> bool:
    """
    Parse a yes/no value: C{yes}, C{true}, C{on} or C{1}, or C{no},
    C{false}, C{off} or C{0}, in any case (L{BOOLEAN_WORDS}).

    @raise ValueError: for another word (C{"must be yes or no, not 'x'"}:
        callers put the setting's name before it).
    """
    value = BOOLEAN_WORDS.get(text.lower())
    if value is None:
        raise ValueError(f"must be yes or no, not {text!r}")
    return value


@dataclass(frozen=True)
class OptionSpec:
    """
    The description of one setting.

    @ivar name: the kebab-case option and TOML key.
    @ivar attribute: the L{BrokerConfig} attribute.
    @ivar kind: C{int}, C{size} (bytes, with k/M/G suffixes), C{seconds},
        C{flag} (an option without value that turns something on), C{bool}
        (C{yes}/C{no}: see L{parseBoolean}) or C{text}.
    @ivar minimum: the smallest accepted value.
    @ivar maximum: the largest accepted value (or L{None}).
    @ivar help: one line for C{--help} and the docs.
    @ivar mosquitto: the closest mosquitto.conf setting, for the docs.
    """

    name: str
    attribute: str
    kind: str
    minimum: float
    maximum: float | None
    help: str
    mosquitto: str = ""


@dataclass
class BrokerConfig:
    """
    Every broker setting, with its default.  See L{OPTIONS} for the meaning
    of each attribute and C{docs/configuration.md} for the user's view.
    """

    maxPacketSize: int = 1024 * 1024
    maxConnectSize: int = 100_000
    connectTimeout: float = 10.0
    maxConnections: int = 10_000
    maxKeepalive: int = 65_535
    maxInflight: int = 20
    receiveMaximum: int = 20
    maxAwaitingRel: int = 100
    maxQueuedMessages: int = 1000
    maxQueuedBytes: int = 64 * 1024 * 1024
    maxSubscriptions: int = 10_000
    maxTopicLevels: int = 128
    maxOutboundBuffer: int = 8 * 1024 * 1024
    stallTimeout: float = 30.0
    maxRetainedMessages: int = 100_000
    topicAliasMaximum: int = 10
    allowControlCharacters: bool = False
    maximumQos: int = 2
    retainAvailable: bool = True
    wildcardSubscriptions: bool = True
    sharedSubscriptions: bool = True
    subscriptionIdentifiers: bool = True
    maxSessionExpiry: int = 0xFFFFFFFF
    reasonStrings: bool = True
    responseInformation: str = ""
    redirectTo: str = ""
    movedTo: str = ""
    pluginTimeout: float = 10.0

    def replace(self, **changes: Any) -> BrokerConfig:
        """
        A copy with some settings changed (unknown names raise
        C{TypeError}).
        """
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in changes:
            if name not in values:
                raise TypeError(f"unknown setting {name!r}")
        values.update(changes)
        return BrokerConfig(**values)

    def validate(self) -> None:
        """
        Check every setting against its bounds.

        @raise ValueError: naming the first option out of range.
        """
        if self.redirectTo and self.movedTo:
            raise ValueError("redirect-to and moved-to cannot both be set")
        for spec in OPTIONS:
            value = getattr(self, spec.attribute)
            if spec.kind in _NOT_NUMBERS:
                continue
            # "not >=": nan is out of every range.
            if not value >= spec.minimum or (spec.maximum is not None and value > spec.maximum):
                raise ValueError(f"{spec.name} {_bounds(spec)}, not {value}")


#: Every setting of the broker (not listeners or authentication, which
#: C{mqttd.tap} handles).
OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("max-packet-size", "maxPacketSize", "size", 16, 268_435_460,
               "Largest MQTT packet accepted, in bytes (v5 0x95 above it).",
               "max_packet_size"),
    OptionSpec("max-connect-size", "maxConnectSize", "size", 16, 268_435_460,
               "Largest CONNECT accepted before authentication, in bytes.",
               "(fixed 100,000 in mosquitto)"),
    OptionSpec("connect-timeout", "connectTimeout", "seconds", 0.1, 3600,
               "Seconds a new connection has to complete its CONNECT.",
               "(none; mosquitto waits 1.5 x 60 s)"),
    OptionSpec("max-connections", "maxConnections", "int", 1, 10_000_000,
               "Most simultaneous client connections; more are refused.",
               "max_connections"),
    OptionSpec("max-keepalive", "maxKeepalive", "int", 1, 65_535,
               "Largest keep-alive accepted (3.1.x above it: refused; v5: Server Keep Alive).",
               "max_keepalive"),
    OptionSpec("max-inflight", "maxInflight", "int", 1, 65_535,
               "Outbound QoS 1/2 messages unacknowledged at once per 3.1.x client.",
               "max_inflight_messages"),
    OptionSpec("receive-maximum", "receiveMaximum", "int", 1, 65_535,
               "Inbound QoS 1/2 messages a v5 client may have unacknowledged (advertised).",
               "max_inflight_messages"),
    OptionSpec("max-awaiting-rel", "maxAwaitingRel", "int", 1, 65_535,
               "Inbound QoS 2 messages awaiting PUBREL per 3.1.x client.",
               "(none)"),
    OptionSpec("max-queued-messages", "maxQueuedMessages", "int", 1, 100_000_000,
               "Messages queued per session (offline, or a stalled subscriber).",
               "max_queued_messages"),
    OptionSpec("max-queued-bytes", "maxQueuedBytes", "size", 1024, 2**40,
               "Bytes of messages queued or in flight per session.",
               "max_queued_bytes"),
    OptionSpec("max-subscriptions", "maxSubscriptions", "int", 1, 100_000_000,
               "Subscriptions per session.",
               "(none)"),
    OptionSpec("max-topic-levels", "maxTopicLevels", "int", 1, 65_536,
               "Levels in a topic name or filter.",
               "(fixed 200 in mosquitto)"),
    OptionSpec("max-outbound-buffer", "maxOutboundBuffer", "size", 4096, 2**40,
               "Unsent bytes per connection before a stalled subscriber is disconnected.",
               "(none)"),
    OptionSpec("stall-timeout", "stallTimeout", "seconds", 0.1, 86_400,
               "Seconds a congested subscriber may make no progress before it stops "
               "throttling publishers.",
               "(none)"),
    OptionSpec("max-retained-messages", "maxRetainedMessages", "int", 0, 100_000_000,
               "Retained messages kept by the broker (0: retain nothing new).",
               "(none)"),
    OptionSpec("topic-alias-maximum", "topicAliasMaximum", "int", 0, 65_535,
               "Topic aliases a v5 client may use towards the broker.",
               "max_topic_alias"),
    OptionSpec("allow-control-characters", "allowControlCharacters", "flag", 0, 1,
               "Accept control characters and non-characters in strings (U+0000 never).",
               "(mosquitto accepts them)"),
    OptionSpec("maximum-qos", "maximumQos", "int", 0, 2,
               "Highest QoS accepted from publishers and granted to subscriptions.",
               "max_qos"),
    OptionSpec("retain-available", "retainAvailable", "bool", 0, 1,
               "Whether retained messages are supported (yes/no).",
               "retain_available"),
    OptionSpec("wildcard-subscriptions", "wildcardSubscriptions", "bool", 0, 1,
               "Whether filters may contain + and # (yes/no).",
               "(none)"),
    OptionSpec("shared-subscriptions", "sharedSubscriptions", "bool", 0, 1,
               "Whether $share/ subscriptions are supported (yes/no).",
               "(none)"),
    OptionSpec("subscription-identifiers", "subscriptionIdentifiers", "bool", 0, 1,
               "Whether v5 Subscription Identifiers are supported (yes/no).",
               "(none)"),
    OptionSpec("max-session-expiry", "maxSessionExpiry", "int", 0, 0xFFFFFFFF,
               "Longest time, in seconds, a session outlives its connection "
               "(4294967295: for ever).",
               "persistent_client_expiration"),
    OptionSpec("reason-strings", "reasonStrings", "bool", 0, 1,
               "Send v5 Reason Strings with failure reason codes (yes/no).",
               "(none)"),
    OptionSpec("response-information", "responseInformation", "text", 0, None,
               "v5 Response Information for clients that request it; {clientId} is "
               "replaced (empty: none).",
               "(none)"),
    OptionSpec("plugin-timeout", "pluginTimeout", "seconds", 0.1, 3600,
               "Seconds an authorizer's or hook's Deferred answer may take before it "
               "fails closed.",
               "(none)"),
    OptionSpec("redirect-to", "redirectTo", "text", 0, None,
               "Refuse every client, pointing v5 clients to this server "
               "(0x9C Use another server).",
               "(none)"),
    OptionSpec("moved-to", "movedTo", "text", 0, None,
               "Refuse every client, telling v5 clients the server moved here "
               "(0x9D Server moved).",
               "(none)"),
)

_NOT_NUMBERS = frozenset({"flag", "bool", "text"})

OPTIONS_BY_NAME: Mapping[str, OptionSpec] = {spec.name: spec for spec in OPTIONS}

_KIND_NAMES = {
    "int": "whole number",
    "size": "size in bytes (e.g. 1048576 or 1M)",
    "seconds": "number of seconds",
}

_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "size": _size,
    "seconds": _seconds,
}


def parseValue(spec: OptionSpec, value: Any) -> Any:
    """
    Convert a command-line string or a TOML value for one option.

    @raise ValueError: with a one-line message naming the option.
    """
    if spec.kind in ("flag", "bool"):
        if isinstance(value, bool):
            return value
        if spec.kind == "bool" and isinstance(value, str):
            return parseBoolean(value)
        raise ValueError(f"must be true or false, not {value!r}")
    if spec.kind == "text":
        if isinstance(value, str):
            return value
        raise ValueError(f"must be a string, not {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {value!r}")
    try:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError
        if isinstance(value, str):
            result = _PARSERS[spec.kind](value)
            if not math.isfinite(result):
                # nan would pass every range check below.
                raise ValueError
        elif isinstance(value, int | float):
            result = value if spec.kind in ("seconds",) else int(value)
            if spec.kind != "seconds" and value != result:
                raise ValueError
        else:
            raise ValueError
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not a valid {_KIND_NAMES[spec.kind]}") from None
    if result < spec.minimum or (spec.maximum is not None and result > spec.maximum):
        raise ValueError(f"{_bounds(spec)}, not {value}")
    return result


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _bounds(spec: OptionSpec) -> str:
    if spec.maximum is None:
        return f"must be at least {_number(spec.minimum)}"
    return f"must be between {_number(spec.minimum)} and {_number(spec.maximum)}"
