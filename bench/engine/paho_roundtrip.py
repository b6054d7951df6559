"""MQTT 5 round trip through Eclipse paho-mqtt 2.x, for the engine evaluation (docs/engine.md).

A subscriber (subscription identifier 5) receives a QoS 1 publish with a user property, a response
topic and a message expiry; prints what it saw, in the same words as test/engine/clients.ts.
Usage: python paho_roundtrip.py PORT   (paho-mqtt==2.1.0 in a venv)
"""
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port = int(sys.argv[1])
got = threading.Event()
answer = ["nothing received"]


def on_message(_client, _userdata, msg):
    p = msg.properties
    answer[0] = "qos=%d si=%s user=%s response=%s expiry=%s payload=%s" % (
        msg.qos,
        getattr(p, "SubscriptionIdentifier", None),
        getattr(p, "UserProperty", None),
        getattr(p, "ResponseTopic", None),
        getattr(p, "MessageExpiryInterval", None),
        msg.payload.decode(),
    )
    got.set()


def client(cid):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


sub = client("probe-paho-sub")
sub.on_message = on_message
sp = Properties(PacketTypes.SUBSCRIBE)
sp.SubscriptionIdentifier = 5
subscribed = threading.Event()
sub.on_subscribe = lambda *a: subscribed.set()
sub.subscribe("probe/paho", qos=1, properties=sp)
subscribed.wait(3)
pub = client("probe-paho-pub")
pp = Properties(PacketTypes.PUBLISH)
pp.UserProperty = ("k", "v")
pp.ResponseTopic = "probe/paho/re"
pp.MessageExpiryInterval = 30
pub.publish("probe/paho", "hi", qos=1, properties=pp).wait_for_publish(3)
got.wait(3)
print(answer[0])
for c in (sub, pub):
    c.loop_stop()
    c.disconnect()
