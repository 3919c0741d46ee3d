"""
mqttd: an MQTT broker framework on Twisted.
"""

__version__ = "0.1.0.dev0"
