/** Query parameters of the view's JSON API: each read checked, with a clear 400 when it is not what is expected. */
export class BadQuery extends Error {}

type Query = Record<string, string | string[] | undefined>;

function one(q: Query, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) throw new BadQuery(`${name} given more than once`);
  return v;
}

export function intParam(q: Query, name: string, dflt: number, min: number, max: number): number {
  const v = one(q, name);
  if (v === undefined) return dflt;
  if (!/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max) throw new BadQuery(`${name} must be an integer from ${min} to ${max}`);
  return Number(v);
}

export function textParam(q: Query, name: string, maxChars: number): string {
  const v = one(q, name) ?? '';
  if (v.length > maxChars) throw new BadQuery(`${name} is longer than ${maxChars} characters`);
  return v;
}

export function choiceParam<T extends string>(q: Query, name: string, choices: readonly T[], dflt: T): T {
  const v = one(q, name);
  if (v === undefined) return dflt;
  if (!(choices as readonly string[]).includes(v)) throw new BadQuery(`${name} must be one of ${choices.join(', ')}`);
  return v as T;
}
