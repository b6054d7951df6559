import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, renderConfigDocs } from '../../app/config.js';
import { ConfigError } from '../../broker/config/errors.js';
import { beatDocSections, validateBeats } from '../../bridges/index.js';
import { parseBeatBlock } from '../../bridges/frame/config.js';
import type { BeatDefinition } from '../../bridges/contract.js';
import { zeekBeat } from '../../bridges/zeek/index.js';
import { fleetBeat } from '../../bridges/fleet/index.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir();
let n = 0;
function conf(text: string): string {
  const file = join(dir, `c${++n}.conf`);
  writeFileSync(file, text);
  return file;
}

/** Loads a config that must fail; returns the error, asserting it is a ConfigError naming file:line and key. */
function refuse(t: Test, text: string, line: number, key: string, detail: RegExp): void {
  const file = conf(text);
  try {
    loadConfig(file);
    t.fail(`loaded:\n${text}`);
  } catch (err) {
    t.type(err, ConfigError);
    const e = err as ConfigError;
    t.equal(e.pos?.line, line, `line ${line}`);
    t.equal(e.key, key, `key ${key}`);
    t.match(e.message, `${file}:${line}: ${key}: `, 'message starts with file:line: key:');
    t.match(e.detail, detail);
  }
}

t.test('unknown beat names, unknown keys and bad values name file, line and key', async (t) => {
  refuse(t, 'listener 0\nbeat nosuch\n', 2, 'beat', /unknown beat "nosuch" \(known: .*fleet.*zeek/);
  refuse(t, 'beat zeek\nzeek_log_dir /tmp\nzeek_strat end\n', 3, 'zeek_strat', /unknown key for beat zeek/);
  refuse(t, 'beat zeek\nzeek_log_dir /tmp\nzeek_start middle\n', 3, 'zeek_start', /expected one of beginning\|end, got "middle"/);
  refuse(t, 'beat zeek\nzeek_log_dir /tmp\nzeek_max_line_bytes 12\n', 3, 'zeek_max_line_bytes', /between 256 and 256M/);
  refuse(t, 'beat zeek\nzeek_log_dir\n', 2, 'zeek_log_dir', /expected 1 value, got 0/);
  refuse(t, 'listener 0\n\nbeat zeek\nzeek_start end\n', 3, 'zeek_log_dir', /needs zeek_log_dir/);
  refuse(t, 'beat fleet\nfleet_start end\n', 1, 'fleet_result_log', /needs fleet_result_log <file> or fleet_status_log/);
  refuse(t, 'beat zeek\nzeek_log_dir /tmp\nbeat_format xml\n', 3, 'beat_format', /expected one of raw\|ngsi\|ngsi-ld/);
  refuse(t, 'beat zeek\nzeek_log_dir /tmp\nbeat_output kafka\n', 3, 'beat_output', /mqtt\|sse\|both/);
  refuse(t, 'beat zeek\nzeek_log_dir /tmp\nbeat_qos 3\n', 3, 'beat_qos', /0\.\.2/);
  refuse(t, 'beat zeek\nzeek_log_dir /tmp\nbeat_topic_prefix a/+/b\n', 3, 'beat_topic_prefix', /without wildcards/);
  refuse(t, 'beat zeek\nzeek_log_dir /tmp\nbeat_topic_prefix $SYS/zeek\n', 3, 'beat_topic_prefix', /does not start with \$/);
  refuse(t, 'beat zeek\nzeek_log_dir /tmp\nbeat fleet\nzeek_start end\n', 4, 'zeek_start', /beat keys belong inside the block/);
  refuse(t, 'zeek_log_dir /tmp\n', 1, 'zeek_log_dir', /beat keys belong inside the block/);
  refuse(t, 'http_sse_heartbeat 1ms\n', 1, 'http_sse_heartbeat', /between 100ms and 1h/);
  refuse(t, 'http_sse_client_buffer 12\n', 1, 'http_sse_client_buffer', /at least 1k/);
});

t.test('valid blocks load with their defaults and common keys', async (t) => {
  const file = conf(
    [
      'listener 0 127.0.0.1',
      'http_listener 0 127.0.0.1',
      'http_sse_heartbeat 2s',
      'http_sse_history 50',
      'beat zeek',
      'zeek_log_dir logs',
      'beat_format ngsi-ld',
      'beat_qos 1',
      'beat fleet',
      'fleet_result_log /var/log/fleet/result.log',
      'fleet_result_log /var/log/fleet/result2.log',
      'beat_topic_prefix site/a/fleet/',
      'beat_output mqtt',
      '',
    ].join('\n'),
  );
  const config = loadConfig(file);
  t.same(
    config.beats.map((b) => b.name),
    ['zeek', 'fleet'],
  );
  t.match(config.sse, { heartbeatMs: 2000, history: 50 });
  const defs = new Map<string, BeatDefinition<unknown>>([
    ['zeek', zeekBeat as BeatDefinition<unknown>],
    ['fleet', fleetBeat as BeatDefinition<unknown>],
  ]);
  const zeek = parseBeatBlock(defs, config.beats[0]);
  t.same(zeek.common, { topicPrefix: 'beats/zeek', format: 'ngsi-ld', output: 'both', qos: 1 });
  t.match(
    zeek.cfg,
    { logDir: join(dir, 'logs'), start: 'end', maxLineBytes: 1024 * 1024 },
    'relative paths are taken from the config file directory',
  );
  const fleet = parseBeatBlock(defs, config.beats[1]);
  t.same(fleet.common, { topicPrefix: 'site/a/fleet', format: 'raw', output: 'mqtt', qos: 0 }, 'a trailing slash on the prefix is dropped');
  t.same(
    (fleet.cfg as { resultLogs: string[] }).resultLogs,
    ['/var/log/fleet/result.log', '/var/log/fleet/result2.log'],
    'fleet_result_log repeats',
  );
  t.doesNotThrow(() => validateBeats(config.beats));
});

t.test('docs/configuration.md sections come from the same key specs', async (t) => {
  const sections = beatDocSections();
  const titles = sections.map((s) => s.title);
  t.equal(titles[0], 'Beats (common keys)');
  t.ok(titles.includes('Beat zeek') && titles.includes('Beat fleet'), 'one section per registered beat');
  const md = renderConfigDocs(sections);
  for (const key of [
    'beat_topic_prefix',
    'beat_format',
    'beat_output',
    'beat_qos',
    'zeek_log_dir',
    'zeek_start',
    'zeek_max_line_bytes',
    'fleet_result_log',
    'fleet_status_log',
    'http_sse_token_file',
    'http_sse_history',
  ]) {
    t.match(md, `| \`${key}\` |`, `${key} is documented`);
  }
});
