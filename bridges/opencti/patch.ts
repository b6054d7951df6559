import type { Tracked } from './indicators.js';

/** One RFC 6902 operation as OpenCTI 5.x/6.x sends it in `context.patch`. */
interface PatchOp {
  op: string;
  path: string;
  value?: unknown;
}

const UNSAFE = new Set(['__proto__', 'constructor', 'prototype']);

/** `/hashes/SHA-256` → ['hashes', 'SHA-256'] (RFC 6901 unescaping); undefined for paths a patch may not touch. */
function pointer(path: string): string[] | undefined {
  if (!path.startsWith('/')) return undefined;
  const parts = path
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  return parts.some((p) => UNSAFE.has(p)) ? undefined : parts;
}

/**
 * Applies an update to what the beat keeps of an object, for updates that do not carry the whole new
 * object: the JSON-patch form (`context.patch`, only add/replace/remove on the kept fields) and the
 * older `x_opencti_patch` form (`{replace: {field: {current, previous}}, add: {...}, remove: {...}}`,
 * of which only `replace` changes a kept single-valued field). Returns a new object.
 */
export function applyPatch(old: Tracked, patch: unknown, legacy: unknown): Tracked {
  const next = structuredClone(old) as unknown as Record<string, unknown>;
  if (Array.isArray(patch)) {
    for (const raw of patch as PatchOp[]) {
      if (!raw || typeof raw !== 'object' || typeof raw.path !== 'string') continue;
      const parts = pointer(raw.path);
      if (!parts || parts.length === 0) continue;
      let target = next;
      for (const p of parts.slice(0, -1)) {
        const child = target[p];
        if (child === undefined && raw.op !== 'remove') target[p] = {};
        else if (!child || typeof child !== 'object') break;
        target = target[p] as Record<string, unknown>;
      }
      const last = parts[parts.length - 1];
      if (raw.op === 'remove') delete target[last];
      else if (raw.op === 'add' || raw.op === 'replace') target[last] = raw.value;
    }
  }
  const replace = (legacy as { replace?: Record<string, unknown> } | undefined)?.replace;
  if (replace && typeof replace === 'object') {
    for (const [field, change] of Object.entries(replace)) {
      if (UNSAFE.has(field)) continue;
      next[field] = change && typeof change === 'object' && 'current' in change ? (change as { current: unknown }).current : change;
    }
  }
  return next as unknown as Tracked;
}
