// Failures, in each protocol's native error shape: upstream 5xx, hang and
// refusal; malformed and oversize requests; fallback along the chain.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import {
  Anthropic, OpenAI, UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, anthropicClient, anthropicMessage, answerJson,
  answerSse, assertAnthropicError, assertOpenAIError, baseConfig, closedPort, expectThrow, openaiChunks,
  openaiClient, openaiCompletion, rawPost, startAigis, startFakeUpstream, within,
} from './lib.mjs';

// The fake upstream decides by the requested model:
//   *-500  -> 500,  *-hang -> never answers,  *-cut -> streams then drops,
//   fb5-*  -> 500 (or 429 for fb5-429) when X-Which: first, else OK,
//   anything else -> OK in the protocol of the path.
function dispatch(req, res, rec, up) {
  const model = rec.json?.model ?? '';
  const anthropic = rec.url.startsWith('/v1/messages');
  const ok = () => answerJson(200, anthropic ? anthropicMessage(model, `ok from ${model}`) : openaiCompletion(model, `ok from ${model}`))(req, res);
  if (model.endsWith('-500')) {
    return answerJson(500, anthropic
      ? { type: 'error', error: { type: 'api_error', message: 'upstream exploded' } }
      : { error: { message: 'upstream exploded', type: 'server_error', param: null, code: null } })(req, res);
  }
  if (model.endsWith('-hang')) return undefined;
  if (model.endsWith('-cut')) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const e of openaiChunks(model, ['partial ']).slice(0, 2)) res.write(e);
    setTimeout(() => res.socket?.destroy(), 50);
    return undefined;
  }
  if (model.startsWith('fb5-') && req.headers['x-which'] === 'first') {
    return answerJson(model.endsWith('429') ? 429 : 503, { error: { message: 'busy', type: 'server_error', param: null, code: null } })(req, res);
  }
  return ok();
}

describe('errors and fallback', { timeout: 90_000 }, () => {
  let gw;
  let up;
  let oa;
  let an;
  let deadPort;
  before(async () => {
    up = await startFakeUpstream();
    deadPort = await closedPort();
    gw = await startAigis((dir) => baseConfig(dir, `
upstreams:
  - name: oai
    provider: openai
    base_url: ${up.v1}
    api_key: ${UPSTREAM_OPENAI_KEY}
    response_timeout: 800ms
  - name: ant
    provider: anthropic
    base_url: ${up.v1}
    api_key: ${UPSTREAM_ANTHROPIC_KEY}
    response_timeout: 800ms
  - name: oai-first
    provider: openai
    base_url: ${up.v1}
    headers: {X-Which: first}
  - name: ant-first
    provider: anthropic
    base_url: ${up.v1}
    headers: {X-Which: first}
  - name: oai-dead
    provider: openai
    base_url: http://127.0.0.1:${deadPort}/v1
    connect_timeout: 1s
  - name: ant-dead
    provider: anthropic
    base_url: http://127.0.0.1:${deadPort}/v1
    connect_timeout: 1s
routes:
  - name: dead
    models: ["dead-*"]
    upstreams: [oai-dead, ant-dead]
  - name: fallback-refused
    models: ["fb-*"]
    upstreams: [oai-dead, ant-dead, oai, ant]
  - name: fallback-status
    models: ["fb5-*"]
    upstreams: [oai-first, ant-first, oai, ant]
  - name: default
    models: ["*"]
    upstreams: [oai, ant]
`, { server: { max_body_bytes: '2KiB' } }));
    oa = openaiClient(gw);
    an = anthropicClient(gw);
  });
  after(async () => {
    try {
      if (gw) await gw.stop();
    } finally {
      if (up) await up.close();
    }
  });
  beforeEach(() => {
    up.handler = dispatch;
  });

  test('upstream 500 → 502, OpenAI shape (plain and streamed)', async () => {
    const e = await expectThrow(() => oa.chat.completions.create({ model: 'gpt-500', messages: [{ role: 'user', content: 'x' }] }));
    assert.ok(e instanceof OpenAI.APIError, `expected APIError, got ${e}`);
    assert.equal(e.status, 502);
    assertOpenAIError({ error: e.error });
    assert.ok(e.headers.get('x-request-id'));

    const s = await expectThrow(() => oa.chat.completions.create({ model: 'gpt-500', stream: true, messages: [{ role: 'user', content: 'x' }] }));
    assert.ok(s instanceof OpenAI.APIError);
    assert.equal(s.status, 502);

    const raw = await rawPost(`${gw.openaiBaseURL}/chat/completions`, JSON.stringify({ model: 'gpt-500', messages: [{ role: 'user', content: 'x' }] }), gw.auth());
    assert.equal(raw.status, 502);
    assert.match(raw.headers.get('content-type') ?? '', /application\/json/);
    assertOpenAIError(raw.json, { type: 'server_error' });
  });

  test('upstream 500 → 502, Anthropic shape', async () => {
    const e = await expectThrow(() => an.messages.create({ model: 'claude-500', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }));
    assert.ok(e instanceof Anthropic.APIError, `expected APIError, got ${e}`);
    assert.equal(e.status, 502);
    assertAnthropicError(e.error, { type: 'api_error' });
  });

  test('upstream hang → 504 after response_timeout, both shapes; the upstream request is closed', async () => {
    const t0 = Date.now();
    const e = await expectThrow(() => oa.chat.completions.create({ model: 'gpt-hang', messages: [{ role: 'user', content: 'x' }] }));
    const took = Date.now() - t0;
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, 504);
    assertOpenAIError({ error: e.error });
    assert.ok(took >= 700 && took < 5000, `504 after ${took} ms (response_timeout 800ms)`);
    const rec = up.requests.findLast((r) => r.json?.model === 'gpt-hang');
    const closed = await within(rec.socketClosed, 2000);
    assert.ok(closed, 'the gateway closed the timed-out upstream connection');

    const a = await expectThrow(() => an.messages.create({ model: 'claude-hang', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }));
    assert.ok(a instanceof Anthropic.APIError);
    assert.equal(a.status, 504);
    assertAnthropicError(a.error);
    assert.equal(await gw.waitMetric('aigis_upstream_connections', { state: 'active' }, (v) => v === 0), 0);
  });

  test('refused upstream → 502, both shapes', async () => {
    const e = await expectThrow(() => oa.chat.completions.create({ model: 'dead-1', messages: [{ role: 'user', content: 'x' }] }));
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, 502);
    assertOpenAIError({ error: e.error });

    const a = await expectThrow(() => an.messages.create({ model: 'dead-2', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }));
    assert.ok(a instanceof Anthropic.APIError);
    assert.equal(a.status, 502);
    assertAnthropicError(a.error, { type: 'api_error' });
    // Recorded just after the response is written: wait for it.
    const s = await gw.waitMetric('aigis_requests_total', { route: 'dead', status: '502' }, (v) => v >= 2);
    assert.ok(s >= 2, `aigis_requests_total{route="dead",status="502"} = ${s}`);
  });

  test('malformed JSON → 400, both shapes', async () => {
    for (const body of ['{"model": "gpt-1", "messages": [', 'not json at all', '[1,2,3]', '']) {
      const r = await rawPost(`${gw.openaiBaseURL}/chat/completions`, body, gw.auth());
      assert.equal(r.status, 400, `body ${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.headers.get('content-type') ?? '', /application\/json/);
      assertOpenAIError(r.json, { type: 'invalid_request_error' });
      assert.ok(r.headers.get('x-request-id'));
    }
    const a = await rawPost(`${gw.proxyUrl}/v1/messages`, '{"model": "claude", "messages": [}', { 'x-api-key': gw.apiKey });
    assert.equal(a.status, 400);
    assertAnthropicError(a.json, { type: 'invalid_request_error' });
    assert.equal(up.requests.filter((r) => r.json === null).length, 0, 'nothing malformed reached the upstream');
  });

  test('oversize body → 413, both shapes (raw and through the SDKs)', async () => {
    const big = 'x'.repeat(8 * 1024);
    const before = up.requests.length;
    const r = await rawPost(`${gw.openaiBaseURL}/chat/completions`, JSON.stringify({ model: 'gpt-1', messages: [{ role: 'user', content: big }] }), gw.auth());
    assert.equal(r.status, 413, r.text);
    assertOpenAIError(r.json);

    const a = await rawPost(`${gw.proxyUrl}/v1/messages`, JSON.stringify({ model: 'claude-1', max_tokens: 5, messages: [{ role: 'user', content: big }] }), { 'x-api-key': gw.apiKey });
    assert.equal(a.status, 413, a.text);
    assertAnthropicError(a.json, { type: 'request_too_large' });

    const e = await expectThrow(() => oa.chat.completions.create({ model: 'gpt-1', messages: [{ role: 'user', content: big }] }));
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, 413);
    assertOpenAIError({ error: e.error });
    const ae = await expectThrow(() => an.messages.create({ model: 'claude-1', max_tokens: 5, messages: [{ role: 'user', content: big }] }));
    assert.ok(ae instanceof Anthropic.APIError);
    assert.equal(ae.status, 413);
    assertAnthropicError(ae.error, { type: 'request_too_large' });

    // A much larger body (sent while aigis already answered) still gets the 413.
    const huge = await rawPost(`${gw.openaiBaseURL}/chat/completions`, JSON.stringify({ model: 'gpt-1', input: 'y'.repeat(2 << 20) }), gw.auth());
    assert.equal(huge.status, 413);
    assert.equal(up.requests.length, before, 'nothing oversize reached the upstream');

    // And the gateway still serves afterwards.
    const ok = await oa.chat.completions.create({ model: 'gpt-1', messages: [{ role: 'user', content: 'small' }] });
    assert.equal(ok.choices[0].message.content, 'ok from gpt-1');
  });

  test('fallback: the first upstream refuses, the second answers (both protocols)', async () => {
    const before = up.requests.length;
    const r = await oa.chat.completions.create({ model: 'fb-openai', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.choices[0].message.content, 'ok from fb-openai');
    const m = await an.messages.create({ model: 'fb-claude', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(m.content[0].text, 'ok from fb-claude');
    assert.equal(up.requests.length - before, 2, 'one request per call reached the live upstream');

    up.handler = answerSse(openaiChunks('fb-stream', ['fell ', 'back']));
    const s = await oa.chat.completions.create({ model: 'fb-stream', stream: true, messages: [{ role: 'user', content: 'x' }] });
    let text = '';
    for await (const c of s) for (const ch of c.choices) text += ch.delta?.content ?? '';
    assert.equal(text, 'fell back', 'a streamed request falls back too');

    const dead = await gw.metric('aigis_upstream_attempts_total', { upstream: 'oai-dead' });
    assert.ok(dead >= 1, `attempts on oai-dead: ${dead}`);
    const ok = await gw.waitMetric('aigis_requests_total', { route: 'fallback-refused', status: '200' }, (v) => v >= 2);
    assert.ok(ok >= 2, `aigis_requests_total{route="fallback-refused",status="200"} = ${ok}`);
  });

  test('fallback: a 5xx or 429 from the first upstream tries the next', async () => {
    for (const model of ['fb5-503', 'fb5-429']) {
      const before = up.requests.length;
      const r = await oa.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] });
      assert.equal(r.choices[0].message.content, `ok from ${model}`);
      const seen = up.requests.slice(before);
      assert.equal(seen.length, 2, `${model}: two attempts`);
      assert.equal(seen[0].headers['x-which'], 'first');
      assert.equal(seen[1].headers['x-which'], undefined);
      assert.equal(seen[0].headers['x-request-id'], seen[1].headers['x-request-id'], 'one request id across attempts');
    }
    const before = up.requests.length;
    const m = await an.messages.create({ model: 'fb5-claude', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(m.content[0].text, 'ok from fb5-claude');
    assert.equal(up.requests.length - before, 2);
  });

  test('upstream drops mid-stream → the stream ends with a native error event', async () => {
    const stream = await oa.chat.completions.create({ model: 'gpt-cut', stream: true, messages: [{ role: 'user', content: 'x' }] });
    let text = '';
    const e = await expectThrow(async () => {
      for await (const c of stream) for (const ch of c.choices) text += ch.delta?.content ?? '';
    }, 'reading a stream whose upstream dropped');
    assert.equal(text, 'partial ');
    assert.ok(e instanceof OpenAI.APIError, `expected an APIError from the error event, got ${e}`);
    assert.equal(await gw.waitMetric('aigis_inflight_requests', {}, (v) => v === 0), 0);
  });
});
