"""
Twisted dropin for mqttd: the C{twistd mqttd} service maker and the
C{mtls:} server endpoint string parser.

Kept cheap to import: Twisted imports every dropin when it looks for
plug-ins, so nothing of mqttd is imported until the service is used.
"""

from twisted.application.service import ServiceMaker
from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from zope.interface import implementer

mqttd = ServiceMaker(
    "mqttd",
    "mqttd.tap",
    "An MQTT 3.1, 3.1.1 and 5.0 broker.",
    "mqttd",
)


@implementer(IPlugin, IStreamServerEndpointStringParser)
class MutualTLSParser:
    """
    C{mtls:PORT:privateKey=...:certKey=...:caCerts=...}: TLS with client
    certificates (see C{mqttd.tls.parseMutualTLS}).
    """

    prefix = "mtls"

    def parseStreamServer(self, reactor, *args, **kwargs):  # type: ignore[no-untyped-def]
        from mqttd.tls import parseMutualTLS

        return parseMutualTLS(reactor, *args, **kwargs)


mtls = MutualTLSParser()
