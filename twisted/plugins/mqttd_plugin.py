"""
Twisted dropin for mqttd: the C{twistd mqttd} service maker.

Kept cheap to import: Twisted imports every dropin when it looks for
plug-ins, so nothing of mqttd is imported until the service is used.
"""

from twisted.application.service import ServiceMaker

mqttd = ServiceMaker(
    "mqttd",
    "mqttd.tap",
    "An MQTT 3.1, 3.1.1 and 5.0 broker.",
    "mqttd",
)
