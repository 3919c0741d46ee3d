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
