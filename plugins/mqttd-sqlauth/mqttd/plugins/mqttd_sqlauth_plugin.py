"""
The dropin of the C{mqttd-sqlauth} distribution: the C{sqlauth}
authenticator and the C{sqlacl} authorizer.

Installed as C{mqttd/plugins/mqttd_sqlauth_plugin.py} (this distribution
ships no C{mqttd/__init__.py} nor C{mqttd/plugins/__init__.py}).  Kept
cheap to import: C{getPlugins} imports every dropin module, so the
implementation (and C{sqlite3}) is imported only when a factory is used,
that is, when the broker's configuration names the plug-in.
"""

from __future__ import annotations

from typing import Any

from mqttd.interfaces import IAuthenticatorFactory, IAuthorizerFactory
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IAuthenticatorFactory)
class SqlAuthFactory:
    """
    Makes L{mqttd_sqlauth.checker.SqlPasswordChecker}s (C{--auth sqlauth:db=PATH}).
    """

    name = "sqlauth"
    description = "User names and password hashes ($7$/$6$) from an SQLite database."
    argumentsHelp = """\
db=PATH: the database (make it with 'mqttd-sqlauth init PATH'); re-read on SIGHUP
threaded=yes|no: check passwords in a thread (default yes)"""

    def makeAuthenticator(self, arguments: Any) -> Any:
        """
        Open the database and read its users.

        @raise mqttd.plugin.PluginError: for bad arguments or an unusable
            database.
        """
        from mqttd.plugin import PluginError

        from mqttd_sqlauth.checker import SqlPasswordChecker
        from mqttd_sqlauth.schema import SqlAuthError

        arguments.onlyKnown("db", "threaded")
        path = arguments.path("db")
        threaded = arguments.flag("threaded", True)
        try:
            return SqlPasswordChecker(path, threaded)
        except SqlAuthError as e:
            raise PluginError(f"sqlauth: {e}") from None


@implementer(IPlugin, IAuthorizerFactory)
class SqlAclFactory:
    """
    Makes L{mqttd_sqlauth.authorizer.SqlAclAuthorizer}s (C{--authorizer sqlacl:db=PATH}).
    """

    name = "sqlacl"
    description = "Topic ACLs (mosquitto semantics) and banned users from an SQLite database."
    argumentsHelp = """\
db=PATH: the database (see 'mqttd-sqlauth acl'); re-read on SIGHUP. No matching row: 'next' (denied unless another authorizer allows)."""

    def makeAuthorizer(self, arguments: Any) -> Any:
        """
        Open the database and read its ACL rows.

        @raise mqttd.plugin.PluginError: for bad arguments or an unusable
            database.
        """
        from mqttd.plugin import PluginError

        from mqttd_sqlauth.authorizer import SqlAclAuthorizer
        from mqttd_sqlauth.schema import SqlAuthError

        arguments.onlyKnown("db")
        try:
            return SqlAclAuthorizer(arguments.path("db"))
        except SqlAuthError as e:
            raise PluginError(f"sqlacl: {e}") from None


sqlauth = SqlAuthFactory()
sqlacl = SqlAclFactory()
