import { useEffect, useState } from 'preact/hooks';
import { call, qs } from './api.js';
import { Spark } from './spark.js';
import type { Tick, TopicNode } from './types.js';

const PAGE = 100;

export function TopicsView({ tick }: { tick?: Tick }) {
  const [prefix, setPrefix] = useState('');
  const [offset, setOffset] = useState(0);
  const [tree, setTree] = useState<{ total: number; children: TopicNode[]; tracked: number; untracked_messages: number }>();
  useEffect(() => {
    call<typeof tree & object>(`/api/topics${qs({ prefix, offset, limit: PAGE, busiest: 0 })}`).then(setTree, () => undefined);
  }, [prefix, offset, tick]);
  const go = (p: string) => (setPrefix(p), setOffset(0));
  const levels = prefix === '' ? [] : prefix.split('/');

  return (
    <section class="topics">
      <div>
        <h2>Topic tree</h2>
        <nav class="crumbs" aria-label="Topic level">
          <button onClick={() => go('')}>(top)</button>
          {levels.map((l, i) => (
            <span key={i}>
              {' / '}
              <button onClick={() => go(levels.slice(0, i + 1).join('/'))}>{l === '' ? '(empty)' : l}</button>
            </span>
          ))}
        </nav>
        <table>
          <thead>
            <tr>
              <th>Level</th>
              <th>Topics</th>
              <th>Msg/s</th>
              <th>Retained</th>
            </tr>
          </thead>
          <tbody>
            {tree?.children.map((n) => (
              <tr key={n.path}>
                <td>
                  {n.topics > (n.leaf ? 1 : 0) ? (
                    <button class="link" onClick={() => go(n.path)}>
                      {n.name === '' ? '(empty)' : n.name}/
                    </button>
                  ) : (
                    <span>{n.name === '' ? '(empty)' : n.name}</span>
                  )}
                </td>
                <td class="num">{n.topics}</td>
                <td class="num">{n.rate.toFixed(1)}</td>
                <td class="num">{n.retained > 0 ? `● ${n.retained}` : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {tree && tree.total > PAGE ? (
          <div class="toolbar">
            <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
              ‹ Previous
            </button>
            <span>
              {offset + 1}–{Math.min(offset + PAGE, tree.total)} of {tree.total}
            </span>
            <button disabled={offset + PAGE >= tree.total} onClick={() => setOffset(offset + PAGE)}>
              Next ›
            </button>
          </div>
        ) : null}
        <p class="note">
          {tree ? `${tree.tracked} topics tracked` : ''}
          {tree && tree.untracked_messages > 0 ? `; ${tree.untracked_messages} messages on topics beyond the tracking limit` : ''}
        </p>
      </div>
      <div>
        <h2>Busiest topics</h2>
        <table>
          <tbody>
            {tick?.busiest.map((b) => (
              <tr key={b.topic}>
                <td class="id">
                  {b.topic}
                  {b.retained ? <span title="retained"> ●</span> : null}
                </td>
                <td class="num">{b.rate.toFixed(1)}/s</td>
                <td>
                  <Spark values={b.spark} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {tick && tick.busiest.length === 0 ? <p class="note">No messages in the last seconds.</p> : null}
      </div>
    </section>
  );
}
