// A client that goes away mid-stream: aigis must close the upstream request
// promptly and leave nothing in flight.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, anthropicClient, anthropicEvents, answerSse, baseConfig,
  openaiChunks, openaiClient, startAigis, startFakeUpstream, within,
} from './lib.mjs';

// ~5 s of stream: one event every 50 ms.
const EVENTS = 100;
const INTERVAL_MS = 50;
const pieces = Array.from({ length: EVENTS }, (_, i) => `w${i} `);

describe('client disconnect mid-stream', { timeout: 60_000 }, () => {
  let gw;
  let up;
  before(async () => {
    up = await startFakeUpstream();
    gw = await startAigis((dir) => baseConfig(dir, `
upstreams:
  - name: oai
    provider: openai
    base_url: ${up.v1}
    api_key: ${UPSTREAM_OPENAI_KEY}
    response_timeout: 30s
  - name: ant
    provider: anthropic
    base_url: ${up.v1}
    api_key: ${UPSTREAM_ANTHROPIC_KEY}
    response_timeout: 30s
routes:
  - name: default
    upstreams: [oai, ant]
`, { server: { shutdown_timeout: '2s' } }));
  });
  after(async () => {
    try {
      if (gw) await gw.stop();
    } finally {
      if (up) await up.close();
    }
  });

  async function assertReleased(rec, abortedAt, what, { streamed = true } = {}) {
    const closedAt = await within(rec.socketClosed, 2000);
    assert.ok(closedAt, `${what}: the upstream request socket was not closed within 2 s of the client leaving`);
    assert.ok(closedAt - abortedAt < 2000, `${what}: upstream closed ${closedAt - abortedAt} ms after the abort`);
    if (streamed) assert.ok(rec.eventsWritten < EVENTS, `${what}: the upstream stream was cut short (${rec.eventsWritten}/${EVENTS})`);
    const inflight = await gw.waitMetric('aigis_inflight_requests', {}, (v) => v === 0);
    assert.equal(inflight, 0, `${what}: aigis_inflight_requests`);
    const active = await gw.waitMetric('aigis_upstream_connections', { state: 'active' }, (v) => v === 0);
    assert.equal(active, 0, `${what}: aigis_upstream_connections{state="active"}`);
  }

  test('OpenAI stream: abort after the first chunk closes the upstream request', async () => {
    up.handler = answerSse(openaiChunks('gpt-slow', pieces), { intervalMs: INTERVAL_MS });
    const before = up.requests.length;
    const oa = openaiClient(gw);
    const stream = await oa.chat.completions.create({ model: 'gpt-slow', stream: true, messages: [{ role: 'user', content: 'go' }] });
    let chunks = 0;
    let abortedAt = 0;
    for await (const c of stream) {
      chunks++;
      if (c.choices[0]?.delta?.content) {
        abortedAt = Date.now();
        stream.controller.abort();
        break;
      }
    }
    assert.ok(abortedAt > 0, `no content chunk arrived (${chunks} chunks)`);
    assert.equal(up.requests.length - before, 1);
    await assertReleased(up.last(), abortedAt, 'openai');
  });

  test('Anthropic stream: abort after the first text closes the upstream request', async () => {
    up.handler = answerSse(anthropicEvents('claude-slow', pieces), { intervalMs: INTERVAL_MS });
    const before = up.requests.length;
    const an = anthropicClient(gw);
    const stream = await an.messages.create({ model: 'claude-slow', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'go' }] });
    let abortedAt = 0;
    for await (const ev of stream) {
      if (ev.type === 'content_block_delta') {
        abortedAt = Date.now();
        stream.controller.abort();
        break;
      }
    }
    assert.ok(abortedAt > 0, 'no text delta arrived');
    assert.equal(up.requests.length - before, 1);
    await assertReleased(up.last(), abortedAt, 'anthropic');
  });

  test('raw socket reset mid-stream releases everything too', async () => {
    up.handler = answerSse(openaiChunks('gpt-slow', pieces), { intervalMs: INTERVAL_MS });
    const ac = new AbortController();
    const r = await fetch(`${gw.openaiBaseURL}/chat/completions`, {
      method: 'POST',
      headers: gw.auth({ 'content-type': 'application/json' }),
      body: JSON.stringify({ model: 'gpt-slow', stream: true, messages: [{ role: 'user', content: 'go' }] }),
      signal: ac.signal,
    });
    assert.equal(r.status, 200);
    const reader = r.body.getReader();
    const first = await reader.read();
    assert.ok(!first.done && first.value.length > 0);
    const abortedAt = Date.now();
    ac.abort();
    await reader.cancel().catch(() => {});
    await assertReleased(up.last(), abortedAt, 'fetch');

    // The gateway keeps serving afterwards.
    up.handler = answerSse(openaiChunks('gpt-fast', ['still ', 'alive']));
    const oa = openaiClient(gw);
    const s = await oa.chat.completions.create({ model: 'gpt-fast', stream: true, messages: [{ role: 'user', content: 'x' }] });
    let text = '';
    for await (const c of s) for (const ch of c.choices) text += ch.delta?.content ?? '';
    assert.equal(text, 'still alive');
  });

  test('many concurrent streams, some aborted early: nothing stays in flight', async () => {
    const few = pieces.slice(0, 15);
    up.handler = (req, res, rec, u) => (rec.url === '/v1/messages'
      ? answerSse(anthropicEvents('claude-many', few), { intervalMs: 20 })
      : answerSse(openaiChunks('gpt-many', few), { intervalMs: 20 }))(req, res, rec, u);
    const oa = openaiClient(gw);
    const an = anthropicClient(gw);
    const before = up.requests.length;
    const N = 30;
    const results = await Promise.all(Array.from({ length: N }, async (_, i) => {
      const abortAfter = i % 3 === 0 ? 1 + (i % 5) : Infinity;
      const s = i % 2
        ? await an.messages.create({ model: 'claude-many', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'x' }] })
        : await oa.chat.completions.create({ model: 'gpt-many', stream: true, messages: [{ role: 'user', content: 'x' }] });
      let n = 0;
      let text = '';
      for await (const ev of s) {
        text += i % 2 ? (ev.type === 'content_block_delta' ? ev.delta.text : '') : (ev.choices[0]?.delta?.content ?? '');
        if (++n >= abortAfter) {
          s.controller.abort();
          return 'aborted';
        }
      }
      return text === few.join('') ? 'full' : `short: ${text}`;
    }).map((p) => p.catch((e) => `error: ${e.message}`)));
    const expected = Array.from({ length: N }, (_, i) => (i % 3 === 0 ? 'aborted' : 'full'));
    assert.deepEqual(results, expected);
    assert.equal(up.requests.length - before, N);
    assert.equal(await gw.waitMetric('aigis_inflight_requests', {}, (v) => v === 0), 0);
    assert.equal(await gw.waitMetric('aigis_upstream_connections', { state: 'active' }, (v) => v === 0), 0);
    // Every upstream stream that was cut short (an aborted client) was closed.
    const recs = up.requests.slice(before);
    const cut = recs.filter((r) => r.eventsWritten < r.eventsTotal);
    assert.equal(cut.length, expected.filter((r) => r === 'aborted').length, 'as many upstream streams cut as clients aborted');
    const closed = await within(Promise.all(cut.map((r) => r.socketClosed)), 3000);
    assert.ok(closed, `every aborted stream closed its upstream request (${cut.filter((r) => r.closedAt).length}/${cut.length})`);
  });

  // Last in this file: when it fails, the hung exchange stays in flight until
  // response_timeout (shutdown_timeout is 2s so that stop() is still quick).
  test('client leaves while the upstream has not answered yet: the upstream request is closed', async () => {
    up.handler = () => {};  // never answers
    for (const [what, path, body] of [
      ['openai', '/v1/chat/completions', { model: 'gpt-wait', messages: [{ role: 'user', content: 'x' }] }],
      ['anthropic', '/v1/messages', { model: 'claude-wait', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }],
    ]) {
      const before = up.requests.length;
      const ac = new AbortController();
      const pending = fetch(`${gw.proxyUrl}${path}`, {
        method: 'POST',
        headers: gw.auth({ 'content-type': 'application/json' }),
        body: JSON.stringify(body),
        signal: ac.signal,
      }).then((r) => `status ${r.status}`, (e) => e.name);
      const rec = await up.nth(before + 1);
      const abortedAt = Date.now();
      ac.abort();
      assert.equal(await pending, 'AbortError');
      await assertReleased(rec, abortedAt, `${what} (no response headers yet)`, { streamed: false });
    }
  });
});
