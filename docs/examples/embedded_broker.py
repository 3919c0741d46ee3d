"""
Embed mqttd in a Twisted application: a broker service, a listener on any
endpoint, and in-process publish/subscribe beside network clients.

Run it with ``python docs/examples/embedded_broker.py``; it prints what
happens and exits.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.internet import defer, endpoints, task

from mqttd.broker import Broker
from mqttd.codec import Publish, Suback
from mqttd.protocol import MQTTServerFactory
from mqttd.testing import MQTTTestClient


async def waitFor(reactor, condition, timeout=5.0):
    """Poll a condition on the reactor (the example's stand-in for app logic)."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await task.deferLater(reactor, 0.01, lambda: None)
    raise TimeoutError("condition not met")


async def main(reactor):
    # 1. The broker is a service: give it a parent and it starts and stops
    #    with your application.
    application = MultiService()
    broker = Broker()
    broker.setServiceParent(application)
    application.startService()

    # 2. Attach the MQTT factory to any endpoint (here a free local port).
    endpoint = endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1")
    port = await endpoint.listen(MQTTServerFactory(broker))
    address = port.getHost()
    print(f"broker listening on {address.host}:{address.port}")

    # 3. In-process subscription: the callback gets every matching message.
    readings = []
    broker.subscribe("sensors/#", lambda message: readings.append(message))

    # 4. A network client (a minimal MQTT client from mqttd.testing).
    client = MQTTTestClient(autoAck=True)
    clientEndpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", address.port)
    await endpoints.connectProtocol(clientEndpoint, client)
    client.connect("thermostat")
    client.subscribe("commands/#", qos=1)
    await waitFor(reactor, lambda: any(isinstance(p, Suback) for p in client.received))
    client.publish("sensors/kitchen/temperature", b"21.5", qos=1)
    await waitFor(reactor, lambda: readings)
    print(f"host app received {readings[0].topic} = {readings[0].payload.decode()}")

    # 5. In-process publish: network subscribers get it.
    broker.publish("commands/heater", b"on", qos=1)
    await waitFor(reactor, lambda: any(isinstance(p, Publish) for p in client.received))
    command = next(p for p in client.received if isinstance(p, Publish))
    print(f"client received {command.topic} = {command.payload.decode()}")

    # 6. Introspection.
    for info in broker.listSessions():
        print(f"session {info.clientId}: connected={info.connected} "
              f"subscriptions={list(info.subscriptions)}")
    stats = broker.stats()
    print(f"messages in={stats['messagesIn']} out={stats['messagesOut']}")

    client.disconnect()
    await defer.maybeDeferred(application.stopService)
    await port.stopListening()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
