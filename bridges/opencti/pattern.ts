/**
 * STIX 2.1 patterning (OASIS STIX 2.1 part 9): a tokenizer and recursive-descent parser for
 * observation expressions (`[...]` joined by AND, OR, FOLLOWEDBY, with qualifiers) and comparison
 * expressions (property tests joined by AND, OR, in parentheses), then the extraction of the values
 * the indicator set can match one at a time. Only observations joined by OR, each a comparison
 * expression of `=`/`IN`/`ISSUBSET` tests on one kind of value (address, domain, URL, file hash)
 * without qualifiers, yield values; every other valid pattern is "unsupported", an invalid one an error.
 */

export type Literal = string | number | boolean | Literal[];

export interface ObjectPath {
  objectType: string;
  /** Property path: names and list indexes (`*` for any). */
  steps: string[];
}

export type Comparison =
  | { kind: 'test'; path: ObjectPath; op: string; negated: boolean; value: Literal }
  | { kind: 'exists'; path: ObjectPath }
  | { kind: 'and' | 'or'; items: Comparison[] };

export type Observation =
  | { kind: 'observation'; comparison: Comparison; qualifiers: string[] }
  | { kind: 'and' | 'or' | 'followedby'; items: Observation[]; qualifiers: string[] };

export class PatternError extends Error {
  override name = 'PatternError';
}

type Token = { t: 'punct' | 'word' | 'string' | 'number' | 'op'; v: string; at: number };

const OPS = ['!=', '==', '<=', '>=', '=', '<', '>'];
const WORD_OPS = new Set(['IN', 'LIKE', 'MATCHES', 'ISSUBSET', 'ISSUPERSET']);
/** Longest pattern the parser looks at; longer ones are errors (a pattern is a line of text, not a document). */
export const MAX_PATTERN_LENGTH = 64 * 1024;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if ('[](),:.*'.includes(c)) {
      out.push({ t: 'punct', v: c, at: i++ });
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (op) {
      out.push({ t: 'op', v: op, at: i });
      i += op.length;
      continue;
    }
    // string literals, also binary (b'…'), hex (h'…') and timestamp (t'…') ones
    const prefixed = /^[bht]'/.test(src.slice(i, i + 2));
    if (c === "'" || prefixed) {
      const at = i;
      i += prefixed ? 2 : 1;
      let s = '';
      for (;;) {
        if (i >= src.length) throw new PatternError(`unterminated string starting at offset ${at}`);
        const ch = src[i];
        if (ch === '\\') {
          const next = src[i + 1];
          if (next !== "'" && next !== '\\') throw new PatternError(`bad escape \\${next ?? ''} at offset ${i}`);
          s += next;
          i += 2;
          continue;
        }
        if (ch === "'") {
          i++;
          break;
        }
        s += ch;
        i++;
      }
      out.push({ t: 'string', v: s, at });
      continue;
    }
    const num = /^[-+]?\d+(\.\d+)?/.exec(src.slice(i));
    if (num) {
      out.push({ t: 'number', v: num[0], at: i });
      i += num[0].length;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(src.slice(i));
    if (word) {
      out.push({ t: 'word', v: word[0], at: i });
      i += word[0].length;
      continue;
    }
    throw new PatternError(`unexpected character "${c}" at offset ${i}`);
  }
  return out;
}

/** Observation qualifiers: the word after their first value, and whether a second value follows it. */
const QUALIFIERS: Record<string, { word: string; literalAfter: boolean }> = {
  WITHIN: { word: 'SECONDS', literalAfter: false },
  REPEATS: { word: 'TIMES', literalAfter: false },
  START: { word: 'STOP', literalAfter: true },
};

/** Deepest nesting of parentheses and brackets the parser follows (a hostile pattern must not exhaust the stack). */
const MAX_DEPTH = 64;

class Parser {
  private i = 0;
  private depth = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token | undefined {
    return this.tokens[this.i];
  }

  private where(): string {
    const tok = this.peek();
    return tok ? `"${tok.v}" at offset ${tok.at}` : 'the end of the pattern';
  }

  private isWord(v: string): boolean {
    const tok = this.peek();
    return tok?.t === 'word' && tok.v === v;
  }

  private isPunct(v: string): boolean {
    const tok = this.peek();
    return tok?.t === 'punct' && tok.v === v;
  }

  private expectPunct(v: string): void {
    if (!this.isPunct(v)) throw new PatternError(`expected "${v}", found ${this.where()}`);
    this.i++;
  }

  pattern(): Observation {
    const obs = this.observations();
    if (this.peek()) throw new PatternError(`unexpected ${this.where()}`);
    return obs;
  }

  /** FOLLOWEDBY binds loosest, then OR, then AND (the grammar's observationExpressions). */
  private observations(): Observation {
    this.enter();
    const obs = this.joined('FOLLOWEDBY', 'followedby', () =>
      this.joined('OR', 'or', () => this.joined('AND', 'and', () => this.observation())),
    );
    this.depth--;
    return obs;
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw new PatternError(`nested deeper than ${MAX_DEPTH} levels at ${this.where()}`);
  }

  private joined(word: string, kind: 'and' | 'or' | 'followedby', next: () => Observation): Observation {
    const items = [next()];
    while (this.isWord(word)) {
      this.i++;
      items.push(next());
    }
    return items.length === 1 ? items[0] : { kind, items, qualifiers: [] };
  }

  private observation(): Observation {
    let obs: Observation;
    if (this.isPunct('[')) {
      this.i++;
      obs = { kind: 'observation', comparison: this.comparisonOr(), qualifiers: [] };
      this.expectPunct(']');
    } else if (this.isPunct('(')) {
      this.i++;
      obs = this.observations();
      this.expectPunct(')');
    } else throw new PatternError(`expected "[" or "(", found ${this.where()}`);
    for (;;) {
      const q = this.qualifier();
      if (!q) return obs;
      obs.qualifiers.push(q);
    }
  }

  /** `WITHIN <n> SECONDS`, `REPEATS <n> TIMES`, `START <t> STOP <t>`: the qualifier's name, or undefined when none follows. */
  private qualifier(): string | undefined {
    const tok = this.peek();
    const shape = tok?.t === 'word' ? QUALIFIERS[tok.v] : undefined;
    if (!tok || !shape) return undefined;
    this.i++;
    this.literal();
    if (!this.isWord(shape.word)) throw new PatternError(`expected ${shape.word}, found ${this.where()}`);
    this.i++;
    if (shape.literalAfter) this.literal();
    return tok.v;
  }

  private comparisonOr(): Comparison {
    this.enter();
    const items = [this.comparisonAnd()];
    while (this.isWord('OR')) {
      this.i++;
      items.push(this.comparisonAnd());
    }
    this.depth--;
    return items.length === 1 ? items[0] : { kind: 'or', items };
  }

  private comparisonAnd(): Comparison {
    const items = [this.propertyTest()];
    while (this.isWord('AND')) {
      this.i++;
      items.push(this.propertyTest());
    }
    return items.length === 1 ? items[0] : { kind: 'and', items };
  }

  private propertyTest(): Comparison {
    if (this.isPunct('(')) {
      this.i++;
      const inner = this.comparisonOr();
      this.expectPunct(')');
      return inner;
    }
    if (this.isWord('EXISTS')) {
      this.i++;
      return { kind: 'exists', path: this.objectPath() };
    }
    const path = this.objectPath();
    let negated = false;
    if (this.isWord('NOT')) {
      this.i++;
      negated = true;
    }
    const tok = this.peek();
    let op: string;
    if (tok?.t === 'op') op = tok.v;
    else if (tok?.t === 'word' && WORD_OPS.has(tok.v)) op = tok.v;
    else throw new PatternError(`expected a comparison operator, found ${this.where()}`);
    this.i++;
    return { kind: 'test', path, op, negated, value: op === 'IN' ? this.set() : this.literal() };
  }

  private objectPath(): ObjectPath {
    const type = this.peek();
    if (type?.t !== 'word' || !/^[a-z0-9-]+$/.test(type.v))
      throw new PatternError(`expected an object type such as ipv4-addr, found ${this.where()}`);
    this.i++;
    this.expectPunct(':');
    const steps = [this.pathName()];
    for (;;) {
      if (this.isPunct('.')) {
        this.i++;
        steps.push(this.pathName());
      } else if (this.isPunct('[')) {
        this.i++;
        const idx = this.peek();
        if (idx?.t === 'number' && /^\d+$/.test(idx.v)) steps.push(idx.v);
        else if (idx?.t === 'punct' && idx.v === '*') steps.push('*');
        else throw new PatternError(`expected a list index, found ${this.where()}`);
        this.i++;
        this.expectPunct(']');
      } else return { objectType: type.v, steps };
    }
  }

  private pathName(): string {
    const tok = this.peek();
    if (tok?.t === 'word' || tok?.t === 'string') {
      this.i++;
      return tok.v;
    }
    throw new PatternError(`expected a property name, found ${this.where()}`);
  }

  private literal(): Literal {
    const tok = this.peek();
    if (tok?.t === 'string') {
      this.i++;
      return tok.v;
    }
    if (tok?.t === 'number') {
      this.i++;
      return Number(tok.v);
    }
    if (tok?.t === 'word' && (tok.v === 'true' || tok.v === 'false')) {
      this.i++;
      return tok.v === 'true';
    }
    throw new PatternError(`expected a value, found ${this.where()}`);
  }

  private set(): Literal[] {
    this.expectPunct('(');
    const items = [this.literal()];
    while (this.isPunct(',')) {
      this.i++;
      items.push(this.literal());
    }
    this.expectPunct(')');
    return items;
  }
}

/** Parses a STIX pattern; throws PatternError naming the offset of what is wrong. */
export function parsePattern(src: string): Observation {
  if (src.length > MAX_PATTERN_LENGTH) throw new PatternError(`pattern of ${src.length} characters is longer than ${MAX_PATTERN_LENGTH}`);
  return new Parser(tokenize(src)).pattern();
}

/** What the indicator set matches values as. */
export type ValueKind = 'ip' | 'domain' | 'url' | 'hash';

export interface IndicatorValue {
  kind: ValueKind;
  /** The STIX object type the value came from (`ipv4-addr`, `file`, …): ECS `threat.indicator.type`. */
  stixType: string;
  value: string;
}

export type Extracted = { ok: true; values: IndicatorValue[] } | { ok: false; reason: string };

/** The kind of value an object path names, or undefined when the set does not match on it. */
function kindOf(path: ObjectPath): ValueKind | undefined {
  const [first, second] = path.steps;
  switch (path.objectType) {
    case 'ipv4-addr':
    case 'ipv6-addr':
      return path.steps.length === 1 && first === 'value' ? 'ip' : undefined;
    case 'domain-name':
      return path.steps.length === 1 && first === 'value' ? 'domain' : undefined;
    case 'url':
      return path.steps.length === 1 && first === 'value' ? 'url' : undefined;
    case 'file':
      return path.steps.length === 2 && first === 'hashes' && second !== undefined ? 'hash' : undefined;
    default:
      return undefined;
  }
}

function fromComparison(c: Comparison): Extracted {
  if (c.kind === 'exists') return { ok: false, reason: 'EXISTS' };
  if (c.kind !== 'test') {
    const values: IndicatorValue[] = [];
    for (const item of c.items) {
      const r = fromComparison(item);
      if (!r.ok) return r;
      values.push(...r.values);
    }
    // with AND, one value alone decides nothing unless every test is about the same kind of value
    if (c.kind === 'and' && new Set(values.map((v) => v.kind)).size > 1)
      return { ok: false, reason: 'AND across different kinds of values' };
    return { ok: true, values };
  }
  const kind = kindOf(c.path);
  const pathText = `${c.path.objectType}:${c.path.steps.join('.')}`;
  if (!kind) return { ok: false, reason: `object path ${pathText}` };
  if (c.negated) return { ok: false, reason: `NOT ${c.op}` };
  const one = (v: Literal): IndicatorValue | undefined =>
    typeof v === 'string' && v !== '' ? { kind, stixType: c.path.objectType, value: v } : undefined;
  let items: Literal[];
  if (c.op === '=' || c.op === '==') items = [c.value];
  else if (c.op === 'IN' && Array.isArray(c.value)) items = c.value;
  else if (c.op === 'ISSUBSET' && kind === 'ip') items = [c.value];
  else return { ok: false, reason: `operator ${c.op} on ${pathText}` };
  const values = items.map(one);
  if (values.some((v) => v === undefined)) return { ok: false, reason: `non-string value for ${pathText}` };
  return { ok: true, values: values as IndicatorValue[] };
}

/** The values of a parsed pattern the set can match, or why it cannot. */
export function extractValues(obs: Observation): Extracted {
  if (obs.qualifiers.length > 0) return { ok: false, reason: `qualifier ${obs.qualifiers[0]}` };
  if (obs.kind === 'observation') return fromComparison(obs.comparison);
  if (obs.kind !== 'or') return { ok: false, reason: `observations joined by ${obs.kind.toUpperCase()}` };
  const values: IndicatorValue[] = [];
  for (const item of obs.items) {
    const r = extractValues(item);
    if (!r.ok) return r;
    values.push(...r.values);
  }
  return { ok: true, values };
}
