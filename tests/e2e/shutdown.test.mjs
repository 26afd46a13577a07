// SIGTERM: in-flight streams finish (within shutdown_timeout), new
// connections are refused, and the process exits 0 with a clean sanitizer
// report. Past the deadline, what is left is cut and it still exits 0.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import {
  UPSTREAM_OPENAI_KEY, answerSse, baseConfig, openaiChunks, openaiClient, sleep, startAigis, startFakeUpstream,
  within,
} from './lib.mjs';

const config = (up, shutdownTimeout) => (dir) => baseConfig(dir, `
upstreams:
  - name: oai
    provider: openai
    base_url: ${up.v1}
    api_key: ${UPSTREAM_OPENAI_KEY}
routes:
  - name: default
    upstreams: [oai]
`, { server: { shutdown_timeout: shutdownTimeout } });

async function readFirstContent(it) {
  for (let i = 0; i < 20; i++) {
    const n = await it.next();
    if (n.done) return '';
    const t = n.value.choices.map((c) => c.delta?.content ?? '').join('');
    if (t) return t;
  }
  return '';
}

describe('graceful shutdown', { timeout: 60_000 }, () => {
  const cleanup = [];
  after(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  test('SIGTERM lets an in-flight stream finish, refuses new connections, exits 0', async () => {
    const up = await startFakeUpstream();
    cleanup.push(() => up.close());
    const gw = await startAigis(config(up, '10s'));
    cleanup.push(() => gw.dispose());
    const pieces = Array.from({ length: 12 }, (_, i) => `p${i} `);
    up.handler = answerSse(openaiChunks('gpt-drain', pieces), { intervalMs: 100 });

    const oa = openaiClient(gw);
    const stream = await oa.chat.completions.create({ model: 'gpt-drain', stream: true, messages: [{ role: 'user', content: 'x' }] });
    const it = stream[Symbol.asyncIterator]();
    let text = await readFirstContent(it);
    assert.equal(text, 'p0 ');

    const termAt = Date.now();
    gw.signal('SIGTERM');
    await sleep(300);
    assert.equal(gw.exitInfo, null, 'aigis waits for the in-flight stream');
    // New connections are no longer accepted.
    const refused = await fetch(`${gw.openaiBaseURL}/chat/completions`, {
      method: 'POST',
      headers: gw.auth({ 'content-type': 'application/json' }),
      body: JSON.stringify({ model: 'gpt-drain', messages: [{ role: 'user', content: 'late' }] }),
      signal: AbortSignal.timeout(3000),
    }).then((r) => `status ${r.status}`, (e) => e);
    assert.ok(refused instanceof Error, `a new request after SIGTERM should fail to connect, got ${refused}`);

    for (let i = 0; i < 50; i++) {
      const n = await it.next();
      if (n.done) break;
      for (const c of n.value.choices) text += c.delta?.content ?? '';
    }
    assert.equal(text, pieces.join(''), 'the in-flight stream was delivered in full');
    await gw.assertCleanExit(15_000);
    assert.ok(Date.now() - termAt < 10_000, 'exited well before shutdown_timeout once drained');
    assert.match(gw.stderr, /SIGTERM received/);
  });

  test('past shutdown_timeout the stream is cut and aigis still exits 0', async () => {
    const up = await startFakeUpstream();
    cleanup.push(() => up.close());
    const gw = await startAigis(config(up, '300ms'));
    cleanup.push(() => gw.dispose());
    const pieces = Array.from({ length: 100 }, (_, i) => `q${i} `);
    up.handler = answerSse(openaiChunks('gpt-long', pieces), { intervalMs: 50 });

    const oa = openaiClient(gw);
    const stream = await oa.chat.completions.create({ model: 'gpt-long', stream: true, messages: [{ role: 'user', content: 'x' }] });
    const it = stream[Symbol.asyncIterator]();
    let text = await readFirstContent(it);
    assert.equal(text, 'q0 ');

    const termAt = Date.now();
    gw.signal('SIGTERM');
    // The client sees the stream end early (cleanly or with an error).
    const readRest = (async () => {
      for (let i = 0; i < 200; i++) {
        const n = await it.next();
        if (n.done) break;
        for (const c of n.value.choices) text += c.delta?.content ?? '';
      }
    })().catch((e) => e);
    await gw.assertCleanExit(10_000);
    const tookMs = Date.now() - termAt;
    assert.ok(tookMs < 4000, `exit ${tookMs} ms after SIGTERM with shutdown_timeout 300ms`);
    await within(readRest, 5000);
    assert.ok(text.length < pieces.join('').length, 'the stream was cut at the deadline');
    const closed = await within(up.last().socketClosed, 2000);
    assert.ok(closed, 'the upstream request was closed');
  });
});
