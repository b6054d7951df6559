import t from 'tap';
import { readFileSync } from 'node:fs';
import { fixture } from '../helpers/paths.js';
import { applyHeaderLine, defaultTsvHeader, parseTsvRecord, unescapeZeek, ZeekLineError, type TsvHeader } from '../../bridges/zeek/tsv.js';
import { epochSecondsToIso, isoToEpochSeconds, parseJsonRecord, stampRecord } from '../../bridges/zeek/record.js';
import { zeekEntity } from '../../bridges/zeek/ngsi.js';

/** Parses a whole TSV fixture as the beat does: header lines update the header, other lines are records. */
function readTsv(name: string): { header: TsvHeader; records: Record<string, unknown>[] } {
  const header = defaultTsvHeader();
  const records: Record<string, unknown>[] = [];
  for (const line of readFileSync(fixture('zeek', name), 'utf8').split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) t.ok(applyHeaderLine(header, line), `header line ${line.slice(0, 20)}`);
    else records.push(parseTsvRecord(header, line));
  }
  return { header, records };
}

t.test('conn.log (TSV, Zeek testing set): typed fields, unset absent, (empty) set → []', async (t) => {
  const { header, records } = readTsv('conn.log');
  t.equal(header.separator, '\t', '#separator \\x09 is unescaped');
  t.equal(header.path, 'conn');
  t.equal(records.length, 5);
  const r = records[0];
  t.same(r, {
    ts: 1329843175.736107,
    uid: 'CjhGID4nQcgTWjvg4c',
    'id.orig_h': '141.142.220.235',
    'id.orig_p': 37604,
    'id.resp_h': '199.233.217.249',
    'id.resp_p': 56666,
    proto: 'tcp',
    service: 'ftp-data',
    duration: 0.112432,
    orig_bytes: 0,
    resp_bytes: 342,
    conn_state: 'SF',
    missed_bytes: 0,
    history: 'ShAdfFa',
    orig_pkts: 4,
    orig_ip_bytes: 216,
    resp_pkts: 4,
    resp_ip_bytes: 562,
    tunnel_parents: [],
  });
  t.notOk('local_orig' in r, 'the unset bool (-) is absent');
  t.ok(Math.abs(stampRecord(r)! - 1329843175736.107) < 0.001, 'the record time in epoch ms');
  t.equal(r['@timestamp'], '2012-02-21T16:52:55.736107Z', 'time → ISO @timestamp with microseconds');
});

t.test('dns, ssl, weird, notice (TSV, Zeek 6.2): vectors, bools, escapes, any log type from its headers', async (t) => {
  const dns = readTsv('dns.log');
  t.equal(dns.records.length, 150);
  t.same(dns.records[0].answers, ['ise.wrccdc.cpp.edu', '134.71.3.16'], 'vector[string]');
  t.same(dns.records[0].TTLs, [2230, 41830], 'vector[interval] → numbers');
  t.same([dns.records[0].AA, dns.records[0].RD], [false, true], 'bools');
  const noAnswer = dns.records.find((r) => r.query === 'download.windowsupdate.com')!;
  t.notOk('answers' in noAnswer || 'rtt' in noAnswer, 'unset vector and interval are absent');

  const ssl = readTsv('ssl.log');
  t.equal(ssl.records.length, 120);
  t.same(ssl.records[0].client_cert_chain_fps, [], '(empty) vector');
  t.type(ssl.records[0].cert_chain_fps, Array);

  const weird = readTsv('weird.log');
  t.equal(weird.records.length, 120);
  t.equal(weird.header.path, 'weird');

  const notice = readTsv('notice.log');
  t.equal(notice.records.length, 100);
  const n = notice.records[0];
  t.match(n.sub, /^unstructuredName=1315656901\\,564d/, '\\\\ in a value is one backslash');
  t.match(n.sub, /O=VMware\\, Inc,L=Palo Alto/);
  t.same(n.actions, ['Notice::ACTION_LOG'], 'set[enum]');
  t.same(n.email_dest, [], '(empty) set[string]');
  t.equal(n.suppress_for, 3600, 'interval');
  t.notOk('remote_location.city' in n, 'unset dotted fields are absent');
  t.equal(n.p, 443, 'port');
});

t.test('Zeek JSON: epoch ts (LogAscii::use_json) and ISO ts (json-streaming) become the same shape', async (t) => {
  const [conn] = readFileSync(fixture('zeek', 'conn-epoch-ts.ndjson'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => parseJsonRecord(l));
  t.equal(conn.ts, 1591367999.305988);
  stampRecord(conn);
  t.equal(conn['@timestamp'], '2020-06-05T14:39:59.305988Z');
  t.equal(conn['id.orig_p'], 36844);

  const dns = parseJsonRecord(readFileSync(fixture('zeek', 'dns.ndjson'), 'utf8').split('\n')[0]);
  t.equal(dns.ts, 1521911720.865716, 'ISO ts with microseconds → epoch seconds, microseconds kept');
  stampRecord(dns);
  t.equal(dns['@timestamp'], '2018-03-24T17:15:20.865716Z');
  t.equal(dns._path, 'dns');
  t.same(dns.TTLs, [2230, 41830]);

  const sw = parseJsonRecord(readFileSync(fixture('zeek', 'software.ndjson'), 'utf8').split('\n')[1]);
  t.match(sw['version.addl'], /bash_cve_2014_6278/, 'hostile strings stay data');
});

t.test('malformed and hostile lines are refused with ZeekLineError, nothing else', async (t) => {
  const h = defaultTsvHeader();
  t.throws(() => parseTsvRecord(h, 'a\tb'), ZeekLineError, 'record before #fields');
  applyHeaderLine(h, '#fields\tts\tn\tok\tlist');
  applyHeaderLine(h, '#types\ttime\tcount\tbool\tvector[count]');
  t.same(parseTsvRecord(h, '1.5\t2\tT\t1,2,-'), { ts: 1.5, n: 2, ok: true, list: [1, 2, null] });
  t.throws(() => parseTsvRecord(h, '1.5\t2\tT'), /3 values for 4 fields/);
  t.throws(() => parseTsvRecord(h, '1.5\tabc\tT\t1'), /"abc" is not a count/);
  t.throws(() => parseTsvRecord(h, 'noon\t1\tT\t1'), /is not a time/);
  t.throws(() => parseTsvRecord(h, '1\t1\tyes\t1'), /is not a bool/);
  t.throws(() => parseTsvRecord(h, '1\t1\tT\t1,x'), /is not a count/);
  t.throws(() => parseTsvRecord(h, '\u0000\u00ff\ufffd\t\t\t'), ZeekLineError, 'binary garbage');
  t.throws(() => parseJsonRecord('{"ts": '), /invalid JSON/);
  t.throws(() => parseJsonRecord(`{"ts":1,"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`), /nested deeper than 1000 levels/);
  t.throws(() => parseJsonRecord('[1,2]'), /not an object/);
  t.throws(() => parseJsonRecord('{"ts":"yesterday"}'), /is not a time/);
  t.throws(() => applyHeaderLine(defaultTsvHeader(), '#separator '), /empty #separator/);
  t.notOk(applyHeaderLine(defaultTsvHeader(), '#whatever\tx'), 'unknown directives are reported to the caller');
  t.equal(unescapeZeek('a\\x41\\x2cb\\\\c\\xZZ'), 'aA,b\\c\\xZZ', '\\xHH and \\\\ unescaped, anything else kept');
  t.equal(unescapeZeek('caf\\xc3\\xa9'), 'café', 'escaped UTF-8 bytes');
  const pipes = defaultTsvHeader();
  applyHeaderLine(pipes, '#separator \\x7c');
  applyHeaderLine(pipes, '#set_separator|;');
  applyHeaderLine(pipes, '#fields|a|b');
  applyHeaderLine(pipes, '#types|string|set[string]');
  t.same(parseTsvRecord(pipes, 'x\\x7cy|1;2'), { a: 'x|y', b: ['1', '2'] }, 'other separators from the headers');
});

t.test('time conversions and the NGSI shape of the works-beats Zeek beat', async (t) => {
  t.equal(epochSecondsToIso(0.9999996), '1970-01-01T00:00:01.000000Z', 'rounding carries into the second');
  t.equal(isoToEpochSeconds('2018-03-24T17:15:20Z'), 1521911720);
  t.equal(isoToEpochSeconds('2018-03-24T19:15:20.5+02:00'), 1521911720.5);
  t.equal(isoToEpochSeconds('not a time'), undefined);
  const rec = {
    ts: 1329843175.736107,
    'id.orig_h': '1.2.3.4',
    'id.resp_p': 80,
    orig_bytes: 5,
    resp_pkts: 1,
    'remote_location.city': 'X',
    '@timestamp': 'x',
  };
  const e = zeekEntity('ngsi-ld', 'conn', 'sensor-1', rec, 1329843175736);
  t.equal(e.id, 'urn:ngsi-ld:Conn:sensor-1');
  t.equal(e.type, 'Conn');
  t.same(Object.keys(e).sort(), [
    '@context',
    'destination_pkts',
    'destination_port',
    'id',
    'remote_location_city',
    'source_bytes',
    'source_ip',
    'ts',
    'type',
  ]);
  t.same(e.ts, { type: 'Property', value: 1329843175736, observedAt: '2012-02-21T16:52:55.736Z' }, 'ts in epoch ms');
});
