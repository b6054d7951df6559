import t from 'tap';
import { startTestBroker } from '../../helpers/broker.js';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { connectClient, collect, until } from '../../helpers/mqtt.js';

t.test('smoke', async (t) => {
  const remote = await startMosquitto(t);
  const mq = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\nconnection c1\naddress 127.0.0.1:${remote.port}\nremote_clientid br1\ntopic # both 1 l/ r/\n`);
  const rsub = await connectClient(t, remote.url);
  const rgot = collect(rsub);
  await new Promise((r) => rsub.subscribe(['#', '$SYS/broker/connection/#'], { qos: 1 }, r));
  const lsub = await connectClient(t, mq.mqttUrl);
  const lgot = collect(lsub);
  await new Promise((r) => lsub.subscribe('#', { qos: 1 }, r));
  await until(() => rgot.some((m) => m.topic.includes('state')), 5000, 'state');
  const lpub = await connectClient(t, mq.mqttUrl);
  lpub.publish('l/a', 'x', { qos: 1 });
  await until(() => rgot.some((m) => m.topic === 'r/a'), 5000, 'out');
  rsub.publish('r/b', 'y', { qos: 1 });
  await until(() => lgot.some((m) => m.topic === 'l/b'), 5000, 'in');
  await new Promise((r) => setTimeout(r, 500));
  t.same(rgot.map((m) => m.topic + '=' + m.payload), []);
  t.same(lgot.map((m) => m.topic + '=' + m.payload), []);
});
