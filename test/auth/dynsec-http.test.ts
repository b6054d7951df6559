import t from 'tap';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { controlClient, initDynsecFile, pluginConf } from '../helpers/dynsec.js';
import { SseClient } from '../bridges/sse-client.js';

/** The HTTP side-server (SSE) takes dynamic security clients as broker identities: their passwords, their ACLs. */

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

t.test('HTTP Basic logins and SSE topics follow the dynamic security clients and roles', async (t) => {
  const dir = tempDir();
  const b = await startTestBroker(t, `listener 0 127.0.0.1\n${pluginConf(initDynsecFile(dir))}http_listener 0 127.0.0.1\n`, { dir });
  const admin = await controlClient(t, b.mqttUrl);
  const setup = await admin.send([
    {
      command: 'createRole',
      rolename: 'web',
      acls: [
        { acltype: 'subscribePattern', topic: 'w/#', allow: true },
        { acltype: 'publishClientReceive', topic: 'w/secret', allow: false },
      ],
    },
    { command: 'createRole', rolename: 'writer', acls: [{ acltype: 'publishClientSend', topic: '#', allow: true }] },
    { command: 'createClient', username: 'web', password: 'web pw Q7', roles: [{ rolename: 'web' }] },
    { command: 'createClient', username: 'bound', password: 'bound pw', clientid: 'only-this-id', roles: [{ rolename: 'web' }] },
    { command: 'createClient', username: 'off', password: 'off pw', roles: [{ rolename: 'web' }] },
    { command: 'disableClient', username: 'off' },
    { command: 'createClient', username: 'writer', password: 'writer pw', roles: [{ rolename: 'writer' }] },
  ]);
  t.same(
    setup.filter((r) => r.error),
    [],
    'set up',
  );
  const sse = (topic: string) => `http://127.0.0.1:${b.httpPort}/sse?topic=${encodeURIComponent(topic)}`;
  const status = async (topic: string, auth?: string) => (await fetch(sse(topic), { headers: auth ? { authorization: auth } : {} })).status;
  t.equal(await status('w/#', basic('web', 'wrong')), 401, 'wrong password');
  t.equal(await status('w/#', basic('nobody', 'x')), 401, 'unknown client');
  t.equal(await status('w/#', basic('bound', 'bound pw')), 401, 'a client bound to a client id (HTTP has none)');
  t.equal(await status('w/#', basic('off', 'off pw')), 401, 'a disabled client');
  t.equal(await status('w/#'), 401, 'anonymous (allow_anonymous is off)');
  t.equal(await status('other/#', basic('web', 'web pw Q7')), 403, 'a topic its roles do not let it subscribe to');

  const web = new SseClient(t, sse('w/#'), { headers: { authorization: basic('web', 'web pw Q7') } });
  t.equal(await web.open(), 200, 'its password and a topic its role allows');
  const writer = await connectClient(t, b.mqttUrl, { username: 'writer', password: 'writer pw' });
  for (const topic of ['w/secret', 'w/open', 'other/x', 'w/last']) await writer.publishAsync(topic, topic, { qos: 1 });
  await until(() => web.events.some((e) => e.data.includes('w/last')), 5000, 'SSE events');
  const topics = web.events.map((e) => e.data); // the payload (each message's payload is its topic)
  t.same(topics, ['w/open', 'w/last'], 'publishClientReceive decides what it reads (w/secret denied)');
});
