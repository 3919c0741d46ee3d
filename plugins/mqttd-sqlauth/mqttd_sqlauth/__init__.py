"""
mqttd-sqlauth: user names, password hashes and topic ACLs for the mqttd MQTT
broker, kept in an SQLite database.

  - L{mqttd_sqlauth.checker.SqlPasswordChecker}: the C{sqlauth}
    authenticator (a C{twisted.cred} checker);
  - L{mqttd_sqlauth.authorizer.SqlAclAuthorizer}: the C{sqlacl} authorizer;
  - L{mqttd_sqlauth.schema.createSchema}: make (or check) a database;
  - L{mqttd_sqlauth.admin}: the C{mqttd-sqlauth} command.

The broker finds the plug-ins through the dropin module
C{mqttd/plugins/mqttd_sqlauth_plugin.py}; they run only when its
configuration names them (C{--auth sqlauth:db=PATH},
C{--authorizer sqlacl:db=PATH}).
"""

from __future__ import annotations

from mqttd_sqlauth.schema import SCHEMA_VERSION, SqlAuthError, createSchema

__version__ = "0.1.0"
__all__ = ["SCHEMA_VERSION", "SqlAuthError", "__version__", "createSchema"]
