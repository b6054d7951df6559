import { execFileSync } from 'node:child_process';
import { chownSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { startTestBroker, tempDir, type Teardown, type TestBroker } from './broker.js';
import { connectClient } from './mqtt.js';
import { startMosquitto, type MosquittoPeer } from './mosquitto.js';

/** Debian's build of Mosquitto's own dynamic security plugin, the reference. */
export const DYNSEC_PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';
export const CONTROL = '$CONTROL/dynamic-security/v1';
export const ADMIN = { username: 'admin', password: 'admin secret pw' };

/** The uid/gid of user `mosquitto`, which Mosquitto started as root drops to (it writes the file as that user). */
function mosquittoUser(): { uid: number; gid: number } {
  const u = Number(execFileSync('id', ['-u', 'mosquitto']).toString().trim());
  const g = Number(execFileSync('id', ['-g', 'mosquitto']).toString().trim());
  return { uid: u, gid: g };
}

/** A file made by the real `mosquitto_ctrl dynsec init` (admin client and role), in a folder Mosquitto may write to. */
export function initDynsecFile(dir = tempDir('mqprobe-dynsec-')): string {
  const file = join(dir, 'dynamic-security.json');
  execFileSync('mosquitto_ctrl', ['dynsec', 'init', file, ADMIN.username, ADMIN.password], { stdio: 'ignore' });
  return file;
}

/** Lets Mosquitto (as user `mosquitto`) read the file and rename its FILE.new over it. */
export function handToMosquitto(file: string, dir: string): void {
  const { uid, gid } = mosquittoUser();
  chownSync(dir, uid, gid);
  chownSync(file, uid, gid);
}

export const pluginConf = (file: string) => `plugin ${DYNSEC_PLUGIN}\nplugin_opt_config_file ${file}\n`;

export interface DynsecPair {
  mosquitto: MosquittoPeer;
  mosquittoFile: string;
  mqprobe: TestBroker;
  mqprobeFile: string;
}

/** Mosquitto with its plugin and mqprobe, each on a copy of the same `dynsec init` file; `extra` config for both, `mqprobeExtra` for mqprobe. */
export async function startDynsecPair(t: Teardown, extra = '', mqprobeExtra = ''): Promise<DynsecPair> {
  const mdir = tempDir('mqprobe-dynsec-m-');
  const mosquittoFile = initDynsecFile(mdir);
  const pdir = tempDir('mqprobe-dynsec-p-');
  const mqprobeFile = join(pdir, 'dynamic-security.json');
  copyFileSync(mosquittoFile, mqprobeFile);
  handToMosquitto(mosquittoFile, mdir);
  const mosquitto = await startMosquitto(t, pluginConf(mosquittoFile) + extra, { dir: mdir });
  const mqprobe = await startTestBroker(t, `listener 0 127.0.0.1\n${pluginConf(mqprobeFile)}${extra}${mqprobeExtra}`, { dir: pdir });
  return { mosquitto, mosquittoFile, mqprobe, mqprobeFile };
}

export type Responses = { command: string; error?: string; data?: unknown; correlationData?: string }[];

/** An admin client over MQTT 3.1.1: `send` publishes a commands array and resolves with the `responses` array. */
export async function controlClient(
  t: Teardown,
  url: string,
  creds: { username: string; password: string } = ADMIN,
): Promise<{ client: MqttClient; send: (commands: unknown[] | Buffer | string) => Promise<Responses> }> {
  const client = await connectClient(t, url, { ...creds, protocolVersion: 4 });
  await client.subscribeAsync(`${CONTROL}/response`);
  const waiting: ((r: Responses) => void)[] = [];
  client.on('message', (topic, payload) => {
    if (topic === `${CONTROL}/response`) waiting.shift()?.((JSON.parse(payload.toString()) as { responses: Responses }).responses);
  });
  const send = async (commands: unknown[] | Buffer | string) => {
    const got = new Promise<Responses>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no control response within 5 s')), 5000);
      waiting.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
    const payload = Array.isArray(commands) ? JSON.stringify({ commands }) : commands;
    await client.publishAsync(CONTROL, payload, { qos: 1 });
    return got;
  };
  return { client, send };
}

export function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}
