/**
 * `kafka_bridge <name>` blocks: which MQTT topics go to which Kafka topics (`kafka_topic`), and the Kafka
 * connection with the same SASL/TLS/compression/acks keys as `capture_sink kafka` (capture/kafka.ts, under the
 * prefix `kafka_`). Like a `connection` block, a block runs from its `kafka_bridge` line to the next block.
 */
import { ConfigError, type SourcePos } from '../../broker/config/errors.js';
import type { KeySpec, ValueReader } from '../../broker/config/spec.js';
import { isValidFilter, isValidTopic } from '../../broker/auth/topic-filter.js';
import {
  defaultKafkaClientConfig,
  kafkaClientKeys,
  kafkaClientProblem,
  parseBrokerList,
  type KafkaClientConfig,
} from '../../capture/kafka.js';
import { parseMqttTemplate, parseTemplate, type Template } from './template.js';

export interface KafkaTopicMap {
  filter: string;
  /** The Kafka topic of a message, from its MQTT topic levels. */
  topic: Template;
  /** The record key; the MQTT topic when not configured. */
  key?: Template;
}

/** Kafka → MQTT: records of a Kafka topic published into the broker. */
export interface KafkaSubscription {
  kafkaTopic: string;
  /** The MQTT topic of a record, from its key; undefined when the key cannot stand for a topic level. */
  mqttTopic: (key: string | undefined) => string | undefined;
}

export interface KafkaBridgeConfig {
  name: string;
  pos: SourcePos;
  brokers: string[];
  tls: boolean;
  topics: KafkaTopicMap[];
  subscriptions: KafkaSubscription[];
  /** The consumer group of the Kafka → MQTT direction. */
  group: string;
  /** Messages the bridge's session may hold unacknowledged (waiting for Kafka) before the broker drops further ones. */
  maxHeld: number;
  client: KafkaClientConfig;
}

/** Every block of the file, in order; the keys write into the last one. */
export type KafkaBridgeConfigs = KafkaBridgeConfig[];

const PREFIX = 'kafka_';
const DEFAULT_MAX_HELD = 1_000_000;
const KAFKA_TOPIC = /^[A-Za-z0-9._{}-]{1,249}$/;
const KAFKA_NAME = /^[A-Za-z0-9._-]{1,249}$/;

function current(blocks: KafkaBridgeConfigs, v: ValueReader): KafkaBridgeConfig {
  return blocks.at(-1) ?? v.fail('Kafka bridge keys belong after `kafka_bridge <name>`');
}

function template(v: ValueReader, i: number, what: string, check?: RegExp): Template {
  const t = parseTemplate(v.word(i));
  if (typeof t === 'string') return v.fail(`${what}: ${t}`);
  if (check && !check.test(v.word(i))) v.fail(`${what}: "${v.word(i)}" is not a Kafka topic name (A-Z a-z 0-9 . _ - and {N})`);
  const filterLevels = v.word(0).split('/');
  const fixed = filterLevels.includes('#') ? filterLevels.length - 1 : filterLevels.length;
  if (t.maxLevel > fixed && !filterLevels.includes('#'))
    v.fail(`${what} uses {${t.maxLevel}} but the filter "${v.word(0)}" has only ${fixed} levels`);
  return t.apply;
}

type Spec = KeySpec<KafkaBridgeConfigs>;

const blockKeys: Spec[] = [
  {
    key: 'kafka_bridge',
    usage: '<name>',
    doc: 'Opens the block of an MQTT → Kafka bridge (docs/kafka.md); the kafka_* keys after it belong to it.',
    scope: 'global',
    repeatable: true,
    set(blocks, v) {
      v.count(1);
      const name = v.word();
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) v.fail(`expected a bridge name of letters, digits, _ . -, got "${name}"`);
      if (blocks.some((b) => b.name === name)) v.fail(`kafka_bridge ${name} is configured twice`);
      blocks.push({
        name,
        pos: v.line,
        brokers: [],
        tls: false,
        topics: [],
        subscriptions: [],
        group: `mqprobe-${name}`,
        maxHeld: DEFAULT_MAX_HELD,
        client: defaultKafkaClientConfig(),
      });
    },
  },
  {
    key: 'kafka_brokers',
    usage: 'host:port[,host:port…]',
    doc: 'The Kafka bootstrap servers of the bridge.',
    scope: 'global',
    set(blocks, v) {
      v.count(1);
      const b = current(blocks, v);
      const list = parseBrokerList(v.word());
      if (typeof list === 'string') v.fail(list);
      b.brokers = list as string[];
    },
  },
  {
    key: 'kafka_tls',
    usage: 'true | false',
    doc: 'Connect to Kafka with TLS (with kafka_cafile, kafka_certfile, kafka_keyfile).',
    scope: 'global',
    default: 'false',
    set(blocks, v) {
      v.count(1);
      current(blocks, v).tls = v.bool();
    },
  },
  {
    key: 'kafka_topic',
    usage: '<MQTT filter> <Kafka topic template> [<key template>]',
    doc: 'Bridges messages matching the filter to the Kafka topic; `{N}` is the N-th level of the MQTT topic (1-based). Record key: the key template, else the MQTT topic. Repeatable; the first matching line wins.',
    scope: 'global',
    repeatable: true,
    set(blocks, v) {
      v.count(2, 3);
      const b = current(blocks, v);
      const filter = v.word(0);
      if (!isValidFilter(filter)) v.fail(`"${filter}" is not a valid MQTT topic filter`);
      const key = v.optionalWord(2);
      b.topics.push({
        filter,
        topic: template(v, 1, 'Kafka topic template', KAFKA_TOPIC),
        ...(key !== undefined ? { key: template(v, 2, 'key template') } : {}),
      });
    },
  },
  {
    key: 'kafka_subscribe',
    usage: '<Kafka topic> <MQTT topic template>',
    doc: 'Kafka → MQTT: publishes the records of the Kafka topic into the broker (QoS 1, not retained) on the MQTT topic; `{key}` is the record key as one topic level. Offsets are committed once the broker took the message. Repeatable.',
    scope: 'global',
    repeatable: true,
    set(blocks, v) {
      v.count(2);
      const b = current(blocks, v);
      const kafkaTopic = v.word(0);
      if (!KAFKA_NAME.test(kafkaTopic) || kafkaTopic === '.' || kafkaTopic === '..')
        v.fail(`"${kafkaTopic}" is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)`);
      if (b.subscriptions.some((s) => s.kafkaTopic === kafkaTopic)) v.fail(`Kafka topic ${kafkaTopic} is subscribed twice`);
      const mqttTopic = parseMqttTemplate(v.word(1), isValidTopic);
      if (typeof mqttTopic === 'string') v.fail(mqttTopic);
      b.subscriptions.push({ kafkaTopic, mqttTopic: mqttTopic as KafkaSubscription['mqttTopic'] });
    },
  },
  {
    key: 'kafka_max_held',
    usage: '<count>',
    doc: "QoS 1/2 messages the bridge's session may hold unacknowledged (Kafka down or slow) before the broker drops further ones, counted as publish/messages/dropped; replaces max_inflight_messages + max_queued_messages for this session. Each is held in memory (and in the saved state with persistence).",
    default: String(DEFAULT_MAX_HELD),
    scope: 'global',
    set(blocks, v) {
      v.count(1);
      current(blocks, v).maxHeld = v.int(0, 1, 100_000_000);
    },
  },
  {
    key: 'kafka_group',
    usage: '<group id>',
    doc: 'The consumer group of the kafka_subscribe lines (committed offsets are kept under it).',
    default: 'mqprobe-<bridge name>',
    scope: 'global',
    set(blocks, v) {
      v.count(1);
      const group = v.word();
      if (!/^[A-Za-z0-9._-]{1,249}$/.test(group)) v.fail(`"${group}" is not a consumer group id (1-249 of A-Z a-z 0-9 . _ -)`);
      current(blocks, v).group = group;
    },
  },
];

/** The connection keys of capture/kafka.ts, each applied to the current block. */
const clientKeys: Spec[] = kafkaClientKeys<KafkaBridgeConfig>(PREFIX, 'global', (b) => b.client, 'the Kafka bridge').map((spec) => ({
  ...spec,
  set: (blocks: KafkaBridgeConfigs, v: ValueReader) => spec.set(current(blocks, v), v),
}));

export const kafkaBridgeKeys: Spec[] = [...blockKeys, ...clientKeys];

/** Checks across a block's keys once the file is read; errors name the block's file and line. */
export function validateKafkaBridges(blocks: KafkaBridgeConfigs): void {
  for (const b of blocks) {
    const fail = (key: string, detail: string): never => {
      throw new ConfigError(b.pos, key, `kafka_bridge ${b.name}: ${detail}`);
    };
    if (b.brokers.length === 0) fail('kafka_brokers', 'needs kafka_brokers');
    if (b.topics.length === 0 && b.subscriptions.length === 0)
      fail('kafka_topic', 'needs at least one kafka_topic or kafka_subscribe line');
    const problem = kafkaClientProblem(b.client, PREFIX);
    if (problem) fail('kafka_bridge', problem);
  }
}
