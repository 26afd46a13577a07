// The built-in echo provider through the real SDKs: both protocols, plain
// and streamed, plus the endpoints and admin routes that need no upstream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  anthropicClient, assertAnthropicError, assertOpenAIError, baseConfig, expectThrow, openaiClient, rawPost,
  startAigis, OpenAI,
} from './lib.mjs';

const CONFIG = (dir) => baseConfig(dir, `
model_aliases:
  fast: echo-fast
upstreams:
  - name: echo
    provider: echo
routes:
  - name: literal
    models: ["echo-literal"]
    upstreams: [echo]
  - name: default
    models: ["*"]
    upstreams: [echo]
`);

describe('echo provider', { timeout: 60_000 }, () => {
  let gw;
  let oa;
  let an;
  before(async () => {
    gw = await startAigis(CONFIG);
    oa = openaiClient(gw);
    an = anthropicClient(gw);
  });
  after(async () => {
    if (gw) await gw.stop();
  });

  test('chat completion answers with the last user message', async () => {
    const { data, response } = await oa.chat.completions
      .create({
        model: 'echo-1',
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'first question' },
          { role: 'assistant', content: 'first answer' },
          { role: 'user', content: 'The quick brown fox jumps' },
        ],
      })
      .withResponse();
    assert.equal(response.status, 200);
    assert.match(response.headers.get('x-request-id') ?? '', /^[0-9a-f]{32}$/);
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.model, 'echo-1');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(data.choices[0].message.content, 'The quick brown fox jumps');
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.ok(data.usage.prompt_tokens > 0, 'prompt_tokens');
    assert.ok(data.usage.completion_tokens > 0, 'completion_tokens');
    assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
  });

  test('chat completion with content parts echoes the text parts', async () => {
    const r = await oa.chat.completions.create({
      model: 'echo-1',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'part one' }, { type: 'text', text: 'part two' }] }],
    });
    assert.equal(r.choices[0].message.content, 'part one\npart two');
  });

  test('streamed chat completion: deltas join to the message', async () => {
    const text = 'streaming is fun with many small words';
    const stream = await oa.chat.completions.create({
      model: 'echo-1',
      stream: true,
      messages: [{ role: 'user', content: text }],
    });
    const deltas = [];
    let finish = null;
    let usageChunks = 0;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) usageChunks++;
      for (const c of chunk.choices) {
        if (c.delta?.content) deltas.push(c.delta.content);
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.ok(deltas.length > 1, `expected several deltas, got ${JSON.stringify(deltas)}`);
    assert.equal(deltas.join(''), text);
    assert.equal(finish, 'stop');
    assert.equal(usageChunks, 0, 'no usage chunk unless stream_options.include_usage');
    assert.ok(chunks >= deltas.length + 2);
  });

  test('streamed chat completion with include_usage ends with a usage chunk', async () => {
    const text = 'count my tokens please';
    const stream = await oa.chat.completions.create({
      model: 'echo-1',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: text }],
    });
    const deltas = [];
    let usage = null;
    let last = null;
    for await (const chunk of stream) {
      last = chunk;
      for (const c of chunk.choices) if (c.delta?.content) deltas.push(c.delta.content);
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(deltas.join(''), text);
    assert.ok(usage, 'a chunk carried usage');
    assert.equal(last.usage, usage, 'usage is on the last chunk');
    assert.deepEqual(last.choices, []);
    assert.ok(usage.prompt_tokens > 0);
    assert.ok(usage.completion_tokens > 0);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  });

  test('Responses API: plain', async () => {
    const r = await oa.responses.create({ model: 'echo-1', input: 'Hello from the responses API' });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, 'Hello from the responses API');
    assert.ok(r.usage.input_tokens > 0);
    assert.ok(r.usage.output_tokens > 0);

    const r2 = await oa.responses.create({
      model: 'echo-1',
      instructions: 'be nice',
      input: [
        { role: 'user', content: 'older' },
        { role: 'assistant', content: 'reply' },
        { role: 'user', content: [{ type: 'input_text', text: 'newest input' }] },
      ],
    });
    assert.equal(r2.output_text, 'newest input');
  });

  test('Responses API: streamed', async () => {
    const text = 'a streamed responses answer';
    const stream = await oa.responses.create({ model: 'echo-1', input: text, stream: true });
    const types = [];
    const deltas = [];
    let completed = null;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta') deltas.push(ev.delta);
      if (ev.type === 'response.completed') completed = ev.response;
    }
    assert.equal(types[0], 'response.created');
    assert.equal(types[types.length - 1], 'response.completed');
    assert.ok(deltas.length > 1);
    assert.equal(deltas.join(''), text);
    assert.ok(completed, 'response.completed received');
    assert.equal(completed.status, 'completed');
    assert.equal(completed.output[0].content[0].text, text);
    assert.ok(completed.usage.input_tokens > 0);
  });

  test('Responses API: responses.stream helper gives the final response', async () => {
    const text = 'helper stream text';
    const stream = oa.responses.stream({ model: 'echo-1', input: text });
    let deltas = '';
    stream.on('response.output_text.delta', (ev) => { deltas += ev.delta; });
    const final = await stream.finalResponse();
    assert.equal(deltas, text);
    assert.equal(final.output_text, text);
  });

  test('embeddings: default SDK call (base64) decodes to unit vectors', async () => {
    const r = await oa.embeddings.create({ model: 'text-embedding-echo', input: ['alpha', 'beta'] });
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 2);
    for (const [i, d] of r.data.entries()) {
      assert.equal(d.index, i);
      assert.ok(Array.isArray(d.embedding), 'SDK decoded the base64 embedding into an array');
      assert.equal(d.embedding.length, 16);
      const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-3, `norm ${norm}`);
    }
    assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding);
    assert.ok(r.usage.prompt_tokens > 0);

    // Deterministic, and the same numbers as the float encoding.
    const again = await oa.embeddings.create({ model: 'text-embedding-echo', input: 'alpha' });
    assert.deepEqual(again.data[0].embedding, r.data[0].embedding);
    const asFloat = await oa.embeddings.create({ model: 'text-embedding-echo', input: 'alpha', encoding_format: 'float' });
    assert.equal(asFloat.data[0].embedding.length, 16);
    for (let i = 0; i < 16; i++) {
      assert.ok(Math.abs(asFloat.data[0].embedding[i] - r.data[0].embedding[i]) < 1e-6, `component ${i}`);
    }
    // The wire format really is base64 when asked for.
    const raw = await rawPost(`${gw.openaiBaseURL}/embeddings`,
      JSON.stringify({ model: 'text-embedding-echo', input: 'alpha', encoding_format: 'base64' }), gw.auth());
    assert.equal(raw.status, 200);
    assert.equal(typeof raw.json.data[0].embedding, 'string');
    assert.equal(Buffer.from(raw.json.data[0].embedding, 'base64').length, 16 * 4);
  });

  test('embeddings: dimensions', async () => {
    const r = await oa.embeddings.create({ model: 'text-embedding-echo', input: 'gamma', dimensions: 8 });
    assert.equal(r.data[0].embedding.length, 8);
  });

  test('/v1/models lists aliases and literal route models', async () => {
    const ids = [];
    for await (const m of oa.models.list()) {
      assert.equal(m.object, 'model');
      ids.push(m.id);
    }
    assert.ok(ids.includes('fast'), `aliases listed: ${ids}`);
    assert.ok(ids.includes('echo-literal'), `literal route models listed: ${ids}`);
    assert.ok(!ids.includes('*'), 'glob patterns are not models');
  });

  test('/v1/models in Anthropic shape for the Anthropic client', async () => {
    const ids = [];
    for await (const m of an.models.list()) {
      assert.equal(m.type, 'model');
      ids.push(m.id);
    }
    assert.ok(ids.includes('fast') && ids.includes('echo-literal'), `models: ${ids}`);
  });

  test('model alias: the answer names the target model', async () => {
    const r = await oa.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'hi alias' }] });
    assert.equal(r.choices[0].message.content, 'hi alias');
    assert.equal(r.model, 'echo-fast');
  });

  test('Anthropic messages.create: plain', async () => {
    const { data, response } = await an.messages
      .create({
        model: 'claude-echo',
        max_tokens: 64,
        system: 'You are terse.',
        messages: [
          { role: 'user', content: 'older question' },
          { role: 'assistant', content: 'older answer' },
          { role: 'user', content: [{ type: 'text', text: 'Hello, Claude' }] },
        ],
      })
      .withResponse();
    assert.equal(response.status, 200);
    assert.ok(response.headers.get('x-request-id'));
    assert.equal(data.type, 'message');
    assert.equal(data.role, 'assistant');
    assert.equal(data.model, 'claude-echo');
    assert.equal(data.content.length, 1);
    assert.equal(data.content[0].type, 'text');
    assert.equal(data.content[0].text, 'Hello, Claude');
    assert.equal(data.stop_reason, 'end_turn');
    assert.ok(data.usage.input_tokens > 0);
    assert.ok(data.usage.output_tokens > 0);
  });

  test('Anthropic messages.stream: text events join to the message', async () => {
    const text = 'streamed through the anthropic client';
    const stream = an.messages.stream({ model: 'claude-echo', max_tokens: 64, messages: [{ role: 'user', content: text }] });
    let joined = '';
    stream.on('text', (t) => { joined += t; });
    const final = await stream.finalMessage();
    assert.equal(joined, text);
    assert.equal(final.content[0].text, text);
    assert.equal(final.stop_reason, 'end_turn');
    assert.ok(final.usage.output_tokens > 0);
  });

  test('Anthropic messages.create stream:true yields the event sequence', async () => {
    const text = 'raw anthropic events';
    const stream = await an.messages.create({ model: 'claude-echo', max_tokens: 64, stream: true, messages: [{ role: 'user', content: text }] });
    const types = [];
    let joined = '';
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') joined += ev.delta.text;
    }
    assert.equal(types[0], 'message_start');
    assert.equal(types[types.length - 1], 'message_stop');
    assert.ok(types.includes('message_delta'));
    assert.equal(joined, text);
  });

  test('X-Request-Id: a valid client id is kept, an invalid one replaced', async () => {
    const body = JSON.stringify({ model: 'echo-1', messages: [{ role: 'user', content: 'id?' }] });
    const url = `${gw.openaiBaseURL}/chat/completions`;
    const kept = await rawPost(url, body, gw.auth({ 'x-request-id': 'client-id_1.2:3' }));
    assert.equal(kept.status, 200);
    assert.equal(kept.headers.get('x-request-id'), 'client-id_1.2:3');

    const bad = await rawPost(url, body, gw.auth({ 'x-request-id': 'has spaces and {braces}' }));
    assert.equal(bad.status, 200);
    assert.match(bad.headers.get('x-request-id') ?? '', /^[0-9a-f]{32}$/);

    const long = await rawPost(url, body, gw.auth({ 'x-request-id': 'a'.repeat(200) }));
    assert.match(long.headers.get('x-request-id') ?? '', /^[0-9a-f]{32}$/);

    const a = await rawPost(url, body, gw.auth());
    const b = await rawPost(url, body, gw.auth());
    assert.match(a.headers.get('x-request-id') ?? '', /^[0-9a-f]{32}$/);
    assert.notEqual(a.headers.get('x-request-id'), b.headers.get('x-request-id'));

    // Errors carry one too.
    const err = await rawPost(url, '{not json', gw.auth({ 'x-request-id': 'err-id-1' }));
    assert.equal(err.status, 400);
    assert.equal(err.headers.get('x-request-id'), 'err-id-1');
  });

  test('unknown path → 404 and wrong method → 405, in native shape', async () => {
    const r = await rawPost(`${gw.proxyUrl}/v1/nope`, '{}', gw.auth());
    assert.equal(r.status, 404);
    assertOpenAIError(r.json);
    const m = await fetch(`${gw.openaiBaseURL}/chat/completions`, { headers: gw.auth(), signal: AbortSignal.timeout(5000) });
    assert.equal(m.status, 405);
    assertOpenAIError(await m.json());

    const e = await expectThrow(() => oa.chat.completions.create({ model: 'echo-1', messages: 'not a list' }));
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, 400);
    assertOpenAIError({ error: e.error });

    const an400 = await rawPost(`${gw.proxyUrl}/v1/messages`, JSON.stringify({ model: 'claude-echo', max_tokens: 5 }), { 'x-api-key': gw.apiKey });
    assert.equal(an400.status, 400);
    assertAnthropicError(an400.json, { type: 'invalid_request_error' });
  });

  test('echo usage is metered in /metrics', async () => {
    await oa.chat.completions.create({ model: 'echo-meter', messages: [{ role: 'user', content: 'meter these words' }] });
    const input = await gw.waitMetric('aigis_tokens_total', { direction: 'input', model: 'echo-meter' }, (v) => v > 0);
    const output = await gw.waitMetric('aigis_tokens_total', { direction: 'output', model: 'echo-meter' }, (v) => v > 0);
    assert.ok(input > 0, `input tokens ${input}`);
    assert.ok(output > 0, `output tokens ${output}`);
    const ok = await gw.waitMetric('aigis_requests_total', { route: 'default', status: '200' }, (v) => v > 0);
    assert.ok(ok > 0, `aigis_requests_total{route="default",status="200"} = ${ok}`);
  });

  test('admin: /healthz and /readyz answer 200, unknown paths 404', async () => {
    const h = await fetch(`${gw.adminUrl}/healthz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(h.status, 200);
    assert.equal((await h.text()).trim(), 'ok');
    const r = await fetch(`${gw.adminUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200);
    assert.equal((await r.text()).trim(), 'ready');
    const n = await fetch(`${gw.adminUrl}/nope`, { signal: AbortSignal.timeout(5000) });
    assert.equal(n.status, 404);
    await n.text();
    const text = await gw.metrics();
    assert.match(text, /^# TYPE aigis_requests_total counter$/m);
    assert.match(text, /^aigis_inflight_requests \d+$/m);
    assert.match(text, /^aigis_upstream_connections\{state="active"\} \d+$/m);
    assert.match(text, /^aigis_upstream_connections\{state="idle"\} \d+$/m);
    assert.match(text, /^aigis_config_reloads_total\{result="failure"\} \d+$/m);
  });
});
