import t, { type Test } from 'tap';
import { startTestBroker } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { ALERT_TOPIC_PREFIX } from '../../detect/index.js';

/**
 * The `$SYS` tree of mqprobe against Mosquitto 2.0.11's, both with sys_interval 1: the same topics
 * (mqprobe adds its detection alerts under `$SYS/broker/alerts/`, docs/detection.md), and store/messages/{count,bytes} following the retained store.
 */

async function sysTree(t: Test, url: string): Promise<Map<string, string>> {
  const pub = await connectClient(t, url, { clientId: 'retainer' });
  await pub.publishAsync('keep/a', 'hello', { retain: true, qos: 1 });
  await pub.publishAsync('keep/b', 'abc', { retain: true, qos: 1 });
  await pub.subscribeAsync('$share/g/some/topic');
  const watcher = await connectClient(t, url, { clientId: 'sys-tree' });
  const sys = new Map<string, string>();
  const uptimes = new Set<string>();
  watcher.on('message', (topic, payload) => {
    sys.set(topic, payload.toString());
    if (topic === '$SYS/broker/uptime') uptimes.add(payload.toString());
  });
  await watcher.subscribeAsync('$SYS/#');
  // two more ticks after the retained values: every topic a tick publishes has been seen
  await until(() => uptimes.size >= 3, 8000, 'three $SYS ticks');
  return sys;
}

t.test("the $SYS topics are Mosquitto 2.0.11's", async (t) => {
  const m = await startMosquitto(t, 'allow_anonymous true\nsys_interval 1\n');
  const p = await startTestBroker(t, 'listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 1\n');
  const [want, got] = await Promise.all([sysTree(t, m.url), sysTree(t, p.mqttUrl)]);
  // mqprobe's own addition: detection alerts (the $SYS/# subscription above raises wildcard-subscription)
  const own = (topic: string) => topic.startsWith(ALERT_TOPIC_PREFIX);
  t.ok([...got.keys()].some(own), 'mqprobe adds its alerts under $SYS/broker/alerts/');
  t.strictSame([...got.keys()].filter((k) => !own(k)).sort(), [...want.keys()].sort(), 'otherwise the same topic tree');
  for (const [name, tree] of [
    ['Mosquitto', want],
    ['mqprobe', got],
  ] as const) {
    t.ok(Number(tree.get('$SYS/broker/store/messages/count')) >= 2, `${name}: store/messages/count counts the retained messages`);
    t.ok(Number(tree.get('$SYS/broker/store/messages/bytes')) >= 8, `${name}: store/messages/bytes counts their payload bytes`);
    t.equal(tree.get('$SYS/broker/shared_subscriptions/count'), '1', `${name}: shared_subscriptions/count`);
  }
});
