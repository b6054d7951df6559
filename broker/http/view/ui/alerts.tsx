import { useEffect, useState } from 'preact/hooks';
import { ApiError, call } from './api.js';
import type { Alert, Ban } from './types.js';

export function AlertsView({ alerts }: { alerts: Alert[] }) {
  return (
    <section>
      <Bans />
      <h2>Alerts</h2>
      {alerts.length === 0 ? <p class="note">No alerts.</p> : null}
      <table class="alerts">
        <thead>
          <tr>
            <th>Time</th>
            <th>Rule</th>
            <th>Entity</th>
            <th>Message</th>
            <th>Evidence</th>
          </tr>
        </thead>
        <tbody>
          {alerts.map((a, i) => (
            <tr key={i}>
              <td>{new Date(a.time).toLocaleTimeString()}</td>
              <td>{a.rule}</td>
              <td class="id">{a.entity}</td>
              <td>{a.message}</td>
              <td>
                <code>{a.evidence}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/**
 * The bans of detection's responses (`GET /bans`); hidden where that route does not exist (404: no
 * `detect_response`) and from viewers who may not manage bans (403: not a `detect_admin_user`).
 */
function Bans() {
  const [bans, setBans] = useState<Ban[] | undefined>();
  const [message, setMessage] = useState<string | undefined>();
  const load = () =>
    call<{ bans: Ban[] } | Ban[]>('/bans').then(
      (b) => setBans(Array.isArray(b) ? b : b.bans),
      (e: ApiError) => (e.status === 404 || e.status === 403 ? setBans(undefined) : setMessage(e.message)),
    );
  useEffect(() => void load(), []);
  if (bans === undefined) return message ? <p class="error">{message}</p> : null;
  const lift = (entity: string) =>
    call(`/bans/${encodeURIComponent(entity)}`, 'DELETE').then(
      () => (setMessage(`ban on ${entity} lifted`), load()),
      (e: ApiError) => setMessage(`cannot lift the ban on ${entity}: ${e.message}`),
    );
  return (
    <>
      <h2>Bans</h2>
      {message ? <p role="status">{message}</p> : null}
      {bans.length === 0 ? <p class="note">No bans.</p> : null}
      <table>
        <tbody>
          {bans.map((b) => (
            <tr key={b.entity}>
              <td class="id">{b.entity}</td>
              <td>{b.rule ?? b.reason ?? ''}</td>
              <td>{b.until ? `until ${new Date(b.until).toLocaleString()}` : ''}</td>
              <td>
                <button onClick={() => void lift(b.entity)}>Lift</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
