/**
 * What the broker's long-running parts (beats, `connection` bridges, Kafka bridges) say about
 * themselves: state, a record count and their last error, for the web view's Health tab
 * (/api/health). A part registers once and updates its entry in place; readers take a copy.
 * The last error is sanitised here, once for every reader: no URL credentials, no
 * password/token values, no control characters, at most MAX_ERROR_CHARS.
 */

export type ComponentKind = 'beat' | 'bridge' | 'kafka-bridge';

export interface ComponentStatus {
  kind: ComponentKind;
  name: string;
  /** The part's own words: `running`, `waiting`, `connected`, `delivering`, `failing`, … */
  state: string;
  /** Records the part moved (a beat's emitted records, a bridge's messages in and out, Kafka records delivered). */
  records: number;
  lastError: string | null;
  /** ISO time of the last error. */
  lastErrorAt: string | null;
}

/** What a part holds to report to the registry. */
export interface StatusReport {
  state(state: string): void;
  /** Records the error (sanitised); the state is left as it is. */
  error(err: unknown): void;
  /** Adds to the record count (parts that count themselves pass `records` to register instead). */
  count(n?: number): void;
  /** Takes the entry out (the part was removed, e.g. by a reload). */
  remove(): void;
}

export const MAX_ERROR_CHARS = 300;

interface Entry {
  kind: ComponentKind;
  name: string;
  state: string;
  counted: number;
  records?: () => number;
  lastError: string | null;
  lastErrorAt: string | null;
}

/** One part's key: its kind and name (a beat and a bridge may share a name). */
export const statusKey = (kind: ComponentKind, name: string): string => `${kind}\u0000${name}`;

export class StatusRegistry {
  private readonly entries = new Map<string, Entry>();

  /**
   * Registers a part (a second registration of the same kind and name replaces the first: a restart
   * or reload). `records` reads a count the part keeps anyway, so nothing is counted twice per message.
   */
  register(kind: ComponentKind, name: string, state: string, records?: () => number): StatusReport {
    const key = statusKey(kind, name);
    const e: Entry = { kind, name, state, counted: 0, records, lastError: null, lastErrorAt: null };
    this.entries.set(key, e);
    return {
      state: (s) => void (e.state = s),
      error: (err) => {
        e.lastError = sanitiseError(err);
        e.lastErrorAt = new Date().toISOString();
      },
      count: (n = 1) => void (e.counted += n),
      remove: () => {
        if (this.entries.get(key) === e) this.entries.delete(key);
      },
    };
  }

  /** Every part, by kind then name. */
  list(): ComponentStatus[] {
    return [...this.entries.values()]
      .map((e) => ({
        kind: e.kind,
        name: e.name,
        state: e.state,
        records: e.records ? e.records() : e.counted,
        lastError: e.lastError,
        lastErrorAt: e.lastErrorAt,
      }))
      .sort((a, b) => (a.kind === b.kind ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.kind < b.kind ? -1 : 1));
  }
}

/** `user:password@` in a URL, the value after password/token/secret/key words, and Basic/Bearer credentials. */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/\s]*@/gi;
const SECRET_VALUE =
  /\b(password|passwd|pass|pwd|token|secret|api[_-]?key|apikey|authorization|credentials?)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&]+)/gi;
const AUTH_SCHEME = /\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]+/g;
const CONTROL = /\p{Cc}+/gu; // U+0000-U+001F and U+007F-U+009F

/** An error's message made safe to show: credentials removed, one line, bounded. */
export function sanitiseError(err: unknown): string {
  const text = err instanceof Error ? err.message : typeof err === 'string' ? err : String(err);
  const clean = text
    .slice(0, MAX_ERROR_CHARS * 4)
    .replace(CONTROL, ' ')
    .replace(URL_USERINFO, '$1')
    .replace(AUTH_SCHEME, '$1 [redacted]')
    .replace(SECRET_VALUE, '$1$2[redacted]')
    .trim();
  return clean.length > MAX_ERROR_CHARS ? `${clean.slice(0, MAX_ERROR_CHARS - 1)}…` : clean;
}
