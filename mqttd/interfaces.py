"""
Every plug-in point of mqttd, as zope.interface interfaces, in one place.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IMQTTClient(Interface):
    """
    The avatar interface of C{twisted.cred} authentication for MQTT: what a
    realm returns for an authenticated client.
    """

    username = Attribute("The user name the client is known by, or None.")
