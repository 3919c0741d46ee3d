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
aclfile = AclFileFactory()
memory = MemoryStoreFactory()
sqlite = SQLiteStoreFactory()
