/**
 * strftime(3) for `log_timestamp_format`, local time like Mosquitto's (it calls localtime_r + strftime).
 * Only the conversions below are known; `checkStrftime` lets the config loader refuse any other,
 * so a format never prints something different from what Mosquitto would print.
 */
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

const p2 = (n: number) => String(n).padStart(2, '0');

function dayOfYear(d: Date): number {
  return Math.floor((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 1)) / 86_400_000) + 1;
}

function zoneOffset(d: Date): string {
  const m = -d.getTimezoneOffset();
  return `${m < 0 ? '-' : '+'}${p2(Math.floor(Math.abs(m) / 60))}${p2(Math.abs(m) % 60)}`;
}

function zoneName(d: Date): string {
  return new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((p) => p.type === 'timeZoneName')?.value ?? '';
}

const CONVERSIONS: Record<string, (d: Date) => string> = {
  a: (d) => DAYS[d.getDay()].slice(0, 3),
  A: (d) => DAYS[d.getDay()],
  b: (d) => MONTHS[d.getMonth()].slice(0, 3),
  h: (d) => MONTHS[d.getMonth()].slice(0, 3),
  B: (d) => MONTHS[d.getMonth()],
  C: (d) => p2(Math.floor(d.getFullYear() / 100)),
  d: (d) => p2(d.getDate()),
  e: (d) => String(d.getDate()).padStart(2, ' '),
  H: (d) => p2(d.getHours()),
  I: (d) => p2(d.getHours() % 12 || 12),
  j: (d) => String(dayOfYear(d)).padStart(3, '0'),
  m: (d) => p2(d.getMonth() + 1),
  M: (d) => p2(d.getMinutes()),
  p: (d) => (d.getHours() < 12 ? 'AM' : 'PM'),
  S: (d) => p2(d.getSeconds()),
  s: (d) => String(Math.floor(d.getTime() / 1000)),
  u: (d) => String(d.getDay() || 7),
  w: (d) => String(d.getDay()),
  y: (d) => p2(d.getFullYear() % 100),
  Y: (d) => String(d.getFullYear()),
  z: zoneOffset,
  Z: zoneName,
  F: (d) => `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}`,
  T: (d) => `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`,
  R: (d) => `${p2(d.getHours())}:${p2(d.getMinutes())}`,
  D: (d) => `${p2(d.getMonth() + 1)}/${p2(d.getDate())}/${p2(d.getFullYear() % 100)}`,
  n: () => '\n',
  t: () => '\t',
  '%': () => '%',
};

/** The conversions in `format` that this strftime does not know (empty when all are known). */
export function checkStrftime(format: string): string[] {
  const unknown: string[] = [];
  for (const m of format.matchAll(/%(.?)/gs)) if (!(m[1] in CONVERSIONS)) unknown.push(`%${m[1]}`);
  return unknown;
}

export function strftime(format: string, d: Date): string {
  return format.replace(/%(.?)/gs, (all, c: string) => (CONVERSIONS[c] ? CONVERSIONS[c](d) : all));
}
