/** The page's access to the JSON API: same origin, with the bearer token it was opened with (if any). */

const params = new URLSearchParams(location.search);
const token = params.get('access_token') ?? undefined;
if (token !== undefined) {
  // out of the address bar (and out of screenshots and history); kept for this page's requests
  params.delete('access_token');
  history.replaceState(null, '', location.pathname + (params.size > 0 ? `?${params}` : ''));
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function call<T>(path: string, method = 'GET'): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(path, { method, headers, credentials: 'same-origin' });
  const body = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new ApiError(res.status, body.error ?? `${res.status} ${res.statusText}`);
  return body;
}

/** The live stream (EventSource cannot send headers: the token goes as `access_token`). */
export function openStream(): EventSource {
  return new EventSource(token === undefined ? '/api/stream' : `/api/stream?access_token=${encodeURIComponent(token)}`);
}

export function qs(p: Record<string, string | number | undefined>): string {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v !== undefined && v !== '') s.set(k, String(v));
  const text = s.toString();
  return text === '' ? '' : `?${text}`;
}
