/** broker/bounded-json.ts: the nesting limit every parser of outside JSON goes through. */
import t from 'tap';
import { JSON_MAX_DEPTH, JsonDepthError, jsonDepthExceeds, parseBoundedJson } from '../../broker/bounded-json.js';

const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

t.test('the limit counts arrays and objects, not brackets inside strings', async (t) => {
  t.equal(JSON_MAX_DEPTH, 1000, "cJSON's CJSON_NESTING_LIMIT");
  t.same(parseBoundedJson(nested(1000)) !== undefined, true, '1,000 levels parse');
  t.throws(() => parseBoundedJson(nested(1001)), JsonDepthError, '1,001 levels are refused');
  t.throws(() => parseBoundedJson(Buffer.from(nested(200_000))), {
    name: 'JsonDepthError',
    message: 'JSON nested deeper than 1000 levels',
  });
  t.ok(parseBoundedJson(nested(200_000).replace(/^/, '"').replace(/$/, '"')), 'in a string, brackets are text');
  t.same(parseBoundedJson(`{"a":"\\"[[[","b":[{"c":"]]]\\\\"}]}`), { a: '"[[[', b: [{ c: ']]]\\' }] }, 'escaped quotes and backslashes');
  t.notOk(jsonDepthExceeds(`["${'['.repeat(5000)}"]`, 2), 'a string full of [ is one level');
  t.ok(jsonDepthExceeds('{"a":{"b":{}}}', 2), 'objects count as levels');
});

t.test('a refusal is a SyntaxError, and other errors are JSON.parse’s own', async (t) => {
  const refusal = (() => {
    try {
      parseBoundedJson(nested(5000));
    } catch (err) {
      return err;
    }
  })();
  t.ok(refusal instanceof SyntaxError, 'callers that catch invalid JSON catch the refusal too');
  t.throws(() => parseBoundedJson('{"a":'), SyntaxError);
  t.throws(() => parseBoundedJson('[1]]]]'), SyntaxError, 'unbalanced closers are JSON.parse’s error');
});
