import type { KeySpec } from '../config/spec.js';
import type { BrokerTarget, LogSettings } from '../config/types.js';
import { checkStrftime } from './strftime.js';

export const defaultLogSettings = (): LogSettings => ({ format: 'mosquitto', timestamp: true, syslogSocket: '/dev/log' });

type Spec = KeySpec<BrokerTarget>;
const g = (key: string, usage: string, doc: string, dflt: string | undefined, set: Spec['set']): Spec => ({
  key,
  usage,
  doc,
  default: dflt,
  scope: 'global',
  set,
});

/** Mosquitto's logging keys beside log_dest and log_type. */
export const mosquittoLogKeys: Spec[] = [
  g('log_timestamp', 'true | false', 'Start every log line (except syslog, which stamps its own) with the time.', 'true', (t, v) => {
    v.count(1);
    t.config.log.timestamp = v.bool();
  }),
  g(
    'log_timestamp_format',
    '<strftime format>',
    'The time at the start of a line as strftime(3) prints it in local time, e.g. `%Y-%m-%dT%H:%M:%S`. Known conversions: %a %A %b %B %C %d %D %e %F %h %H %I %j %m %M %n %p %R %s %S %t %T %u %w %y %Y %z %Z %%; any other stops the start.',
    'Unix time in seconds',
    (t, v) => {
      const format = v.rest();
      const unknown = checkStrftime(format);
      if (unknown.length) v.fail(`strftime conversion${unknown.length > 1 ? 's' : ''} ${unknown.join(' ')} not supported by mqprobe`);
      t.config.log.timestampFormat = format;
    },
  ),
  g('log_facility', '<0-7>', 'With `log_dest syslog`: the syslog facility LOG_LOCAL0–7.', 'LOG_DAEMON', (t, v) => {
    v.count(1);
    t.config.log.facility = v.int(0, 0, 7);
  }),
];

/** mqprobe's own logging keys. */
export const mqprobeLogKeys: Spec[] = [
  g(
    'log_format',
    'mosquitto | json',
    "`mosquitto`: Mosquitto's text lines (`1733355000: New client connected from …`) on every log_dest; `json`: one JSON object per line (pino's fields: level, time, name, msg, …), mqprobe's earlier default. Capture events are unaffected either way (docs/logging.md).",
    'mosquitto',
    (t, v) => {
      v.count(1);
      t.config.log.format = v.oneOf(['mosquitto', 'json'] as const);
    },
  ),
  g(
    'log_syslog_socket',
    '<path>',
    'With `log_dest syslog`: the local syslog socket (datagram or stream) the lines are sent to.',
    '/dev/log',
    (t, v) => {
      v.count(1);
      t.config.log.syslogSocket = v.path();
    },
  ),
];
