// Forwarding to real-protocol upstreams (a fake the test controls): key
// injection, request ids, aliases, header hygiene, token metering.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';

import {
  CLIENT_KEY, UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, anthropicClient, anthropicEvents, anthropicMessage,
  answerJson, answerSse, baseConfig, openaiChunks, openaiClient, openaiCompletion, rawPost, sseNamed,
  startAigis, startFakeUpstream, waitFor,
} from './lib.mjs';

// No header the upstream received may carry the client's credential (the
// bootstrap agent's API key the clients authenticate with), nor its secret
// part; the body neither.
function assertNoClientKey(rec, gw) {
  assert.ok(gw.apiKey, 'the gateway has a bootstrap API key');
  // aig_<16-char key id>_<secret> (the secret is base64url: it may hold '_').
  assert.match(gw.apiKey, /^aig_[^_]{16}_.{32,}$/);
  const secret = gw.apiKey.slice('aig_'.length + 16 + 1);
  for (let i = 0; i < rec.rawHeaders.length; i += 2) {
    for (const k of [gw.apiKey, secret, CLIENT_KEY]) {
      assert.ok(!rec.rawHeaders[i + 1].includes(k),
        `upstream received the client's credential in ${rec.rawHeaders[i]}: ${rec.rawHeaders[i + 1]}`);
    }
  }
  for (const k of [gw.apiKey, secret, CLIENT_KEY]) assert.ok(!rec.body.includes(k), 'client credential in the forwarded body');
}

describe('forwarding to an upstream', { timeout: 60_000 }, () => {
  let gw;
  let up;
  let oa;
  let an;
  before(async () => {
    up = await startFakeUpstream();
    // The keys come in the two documented secret forms: ${env:NAME} and
    // ${file:PATH} (relative to the config file).
    gw = await startAigis((dir) => {
      fs.writeFileSync(path.join(dir, 'anthropic.key'), `${UPSTREAM_ANTHROPIC_KEY}\n`);
      return baseConfig(dir, `
model_aliases:
  fast: gpt-target
  quick-claude: claude-target
upstreams:
  - name: oai
    provider: openai
    base_url: ${up.v1}
    api_key: \${env:AIGIS_E2E_OPENAI_KEY}
    headers:
      X-Extra-Header: extra-value
  - name: ant
    provider: anthropic
    base_url: ${up.v1}
    api_key: \${file:anthropic.key}
routes:
  - name: openai-route
    paths: [/v1/chat/completions, /v1/responses, /v1/embeddings]
    upstreams: [oai]
  - name: anthropic-route
    paths: [/v1/messages]
    upstreams: [ant]
`);
    }, { env: { AIGIS_E2E_OPENAI_KEY: UPSTREAM_OPENAI_KEY } });
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
    up.handler = null;
  });

  test('OpenAI chat: plain, with the configured key and the request id', async () => {
    const model = 'gpt-up-plain';
    up.handler = answerJson(200, openaiCompletion(model, 'answer from upstream', { prompt_tokens: 11, completion_tokens: 7 }),
      { 'x-request-id': 'upstream-own-id', 'set-cookie': 'session=secret' });
    const messages = [{ role: 'system', content: 'sys' }, { role: 'user', content: 'question for upstream' }];
    const { data, response } = await oa.chat.completions.create({ model, messages, temperature: 0.5 }).withResponse();
    assert.equal(data.choices[0].message.content, 'answer from upstream');
    assert.equal(data.usage.prompt_tokens, 11);

    assert.equal(up.requests.length, 1);
    const rec = up.last();
    assert.equal(rec.method, 'POST');
    assert.equal(rec.url, '/v1/chat/completions');
    assert.equal(rec.headers.authorization, `Bearer ${UPSTREAM_OPENAI_KEY}`);
    assert.equal(rec.headers['x-extra-header'], 'extra-value');
    assertNoClientKey(rec, gw);
    assert.equal(rec.json.model, model);
    assert.deepEqual(rec.json.messages, messages);
    assert.equal(rec.json.temperature, 0.5);

    const rid = response.headers.get('x-request-id');
    assert.match(rid ?? '', /^[0-9a-f]{32}$/, 'the gateway id, not the upstream one');
    assert.equal(rec.headers['x-request-id'], rid, 'upstream got the same X-Request-Id the client got');
    assert.equal(response.headers.get('set-cookie'), null, 'upstream Set-Cookie is not relayed');

    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'input', model }, (v) => v === 11), 11);
    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'output', model }, (v) => v === 7), 7);
    // The finished keep-alive connection is pooled, not active.
    assert.equal(await gw.waitMetric('aigis_upstream_connections', { state: 'active' }, (v) => v === 0), 0);
    assert.ok(await gw.metric('aigis_upstream_connections', { state: 'idle' }) >= 1, 'an idle pooled connection');
  });

  test('OpenAI chat: streamed through the upstream', async () => {
    const model = 'gpt-up-stream';
    up.handler = answerSse(openaiChunks(model, ['Hel', 'lo, ', 'stream', 'ing world'], { prompt_tokens: 21, completion_tokens: 4 }),
      { intervalMs: 10 });
    const stream = await oa.chat.completions.create({
      model,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream please' }],
    }, { headers: { 'X-Request-Id': 'client-trace-42' } });
    let text = '';
    let usage = null;
    for await (const c of stream) {
      for (const ch of c.choices) text += ch.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, 'Hello, streaming world');
    assert.equal(usage?.prompt_tokens, 21);
    assert.equal(usage?.completion_tokens, 4);

    const rec = up.last();
    assert.equal(rec.url, '/v1/chat/completions');
    assert.equal(rec.json.stream, true);
    assert.deepEqual(rec.json.stream_options, { include_usage: true });
    assert.equal(rec.headers.authorization, `Bearer ${UPSTREAM_OPENAI_KEY}`);
    assert.equal(rec.headers['x-request-id'], 'client-trace-42', 'a valid client request id is passed on');
    assertNoClientKey(rec, gw);

    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'input', model }, (v) => v === 21), 21);
    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'output', model }, (v) => v === 4), 4);
  });

  test('Anthropic messages: plain, with the configured x-api-key', async () => {
    const model = 'claude-up-plain';
    up.handler = answerJson(200, anthropicMessage(model, 'hello from claude upstream', { input_tokens: 13, output_tokens: 5 }));
    const { data, response } = await an.messages
      .create({ model, max_tokens: 100, messages: [{ role: 'user', content: 'hi claude' }] })
      .withResponse();
    assert.equal(data.content[0].text, 'hello from claude upstream');
    assert.equal(data.usage.input_tokens, 13);

    const rec = up.last();
    assert.equal(rec.url, '/v1/messages');
    assert.equal(rec.headers['x-api-key'], UPSTREAM_ANTHROPIC_KEY);
    assert.equal(rec.headers.authorization, undefined, 'no Authorization header towards an anthropic upstream');
    assert.ok(rec.headers['anthropic-version'], 'anthropic-version is sent');
    assertNoClientKey(rec, gw);
    assert.equal(rec.json.model, model);
    assert.equal(rec.json.max_tokens, 100);
    const rid = response.headers.get('x-request-id');
    assert.ok(rid);
    assert.equal(rec.headers['x-request-id'], rid);

    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'input', model }, (v) => v === 13), 13);
    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'output', model }, (v) => v === 5), 5);
  });

  test('Anthropic messages: streamed through the upstream', async () => {
    const model = 'claude-up-stream';
    up.handler = answerSse(anthropicEvents(model, ['Streamed ', 'from ', 'claude'], { input_tokens: 17, output_tokens: 9 }),
      { intervalMs: 10 });
    const stream = an.messages.stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'stream it' }] });
    let text = '';
    stream.on('text', (t) => { text += t; });
    const final = await stream.finalMessage();
    assert.equal(text, 'Streamed from claude');
    assert.equal(final.content[0].text, 'Streamed from claude');
    assert.equal(final.usage.output_tokens, 9);

    const rec = up.last();
    assert.equal(rec.url, '/v1/messages');
    assert.equal(rec.json.stream, true);
    assert.equal(rec.headers['x-api-key'], UPSTREAM_ANTHROPIC_KEY);
    assert.ok(rec.headers['x-request-id']);
    assertNoClientKey(rec, gw);

    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'input', model }, (v) => v === 17), 17);
    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'output', model }, (v) => v === 9), 9);
  });

  test('model alias: the upstream receives the target model name', async () => {
    up.handler = (req, res, rec) => answerJson(200, openaiCompletion(rec.json.model, 'aliased'))(req, res);
    const r = await oa.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(up.last().json.model, 'gpt-target');
    assert.equal(r.choices[0].message.content, 'aliased');
    // Nothing but the model changes in the forwarded body.
    assert.deepEqual(up.last().json.messages, [{ role: 'user', content: 'x' }]);

    up.handler = (req, res, rec) => answerJson(200, anthropicMessage(rec.json.model, 'aliased claude'))(req, res);
    const m = await an.messages.create({ model: 'quick-claude', max_tokens: 10, messages: [{ role: 'user', content: 'y' }] });
    assert.equal(up.last().json.model, 'claude-target');
    assert.equal(m.content[0].text, 'aliased claude');
  });

  test('Responses and embeddings are forwarded to <base_url>/responses and /embeddings', async () => {
    up.handler = (req, res, rec) => {
      if (rec.url === '/v1/responses') {
        answerJson(200, {
          id: 'resp_fake', object: 'response', created_at: 1700000000, status: 'completed', model: rec.json.model,
          output: [{ type: 'message', id: 'msg_1', status: 'completed', role: 'assistant',
            content: [{ type: 'output_text', text: 'responses via upstream', annotations: [] }] }],
          usage: { input_tokens: 3, output_tokens: 3, total_tokens: 6 },
          error: null, incomplete_details: null,
        })(req, res);
      } else {
        const vec = new Float32Array([0.6, 0.8]);
        answerJson(200, {
          object: 'list',
          model: rec.json.model,
          data: [{ object: 'embedding', index: 0,
            embedding: rec.json.encoding_format === 'base64' ? Buffer.from(vec.buffer).toString('base64') : Array.from(vec) }],
          usage: { prompt_tokens: 1, total_tokens: 1 },
        })(req, res);
      }
    };
    const r = await oa.responses.create({ model: 'gpt-resp', input: 'hi' });
    assert.equal(up.last().url, '/v1/responses');
    assert.equal(r.output_text, 'responses via upstream');

    const e = await oa.embeddings.create({ model: 'emb-up', input: 'vector me' });
    assert.equal(up.last().url, '/v1/embeddings');
    assert.equal(up.last().json.encoding_format, 'base64', 'the SDK asked for base64 and aigis passed it on');
    assert.equal(e.data[0].embedding.length, 2);
    assert.ok(Math.abs(e.data[0].embedding[0] - 0.6) < 1e-6);
  });

  test('Responses API streamed through the upstream, usage metered from response.completed', async () => {
    const model = 'gpt-resp-stream';
    const resp = (status, output, usage) => ({
      id: 'resp_fake', object: 'response', created_at: 1700000000, status, model, output, usage, error: null, incomplete_details: null,
    });
    const item = (status, text) => ({ type: 'message', id: 'msg_1', status, role: 'assistant',
      content: text === null ? [] : [{ type: 'output_text', text, annotations: [] }] });
    let seq = 0;
    const ev = (type, o) => sseNamed(type, { type, sequence_number: seq++, ...o });
    const usage = { input_tokens: 31, output_tokens: 2, total_tokens: 33,
      input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } };
    up.handler = answerSse([
      ev('response.created', { response: resp('in_progress', [], null) }),
      ev('response.output_item.added', { output_index: 0, item: item('in_progress', null) }),
      ev('response.content_part.added', { item_id: 'msg_1', output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } }),
      ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'resp ' }),
      ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'stream' }),
      ev('response.output_text.done', { item_id: 'msg_1', output_index: 0, content_index: 0, text: 'resp stream' }),
      ev('response.content_part.done', { item_id: 'msg_1', output_index: 0, content_index: 0, part: { type: 'output_text', text: 'resp stream', annotations: [] } }),
      ev('response.output_item.done', { output_index: 0, item: item('completed', 'resp stream') }),
      ev('response.completed', { response: resp('completed', [item('completed', 'resp stream')], usage) }),
    ], { intervalMs: 5 });
    const stream = await oa.responses.create({ model, input: 'go', stream: true });
    let text = '';
    let done = null;
    for await (const e of stream) {
      if (e.type === 'response.output_text.delta') text += e.delta;
      if (e.type === 'response.completed') done = e.response;
    }
    assert.equal(text, 'resp stream');
    assert.equal(done?.usage?.input_tokens, 31);
    assert.equal(up.last().url, '/v1/responses');
    assert.equal(up.last().json.stream, true);
    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'input', model }, (v) => v === 31), 31);
    assert.equal(await gw.waitMetric('aigis_tokens_total', { direction: 'output', model }, (v) => v === 2), 2);
  });

  test('client credentials and hop headers are not forwarded; other headers are', async () => {
    up.handler = answerJson(200, openaiCompletion('gpt-hdr', 'ok'));
    const r = await rawPost(`${gw.openaiBaseURL}/chat/completions`,
      JSON.stringify({ model: 'gpt-hdr', messages: [{ role: 'user', content: 'h' }] }),
      {
        authorization: `Bearer ${gw.apiKey}`,
        'x-api-key': gw.apiKey,
        cookie: `token=${gw.apiKey}`,
        'x-forwarded-for': '203.0.113.9',
        'openai-organization': 'org-test',
        'x-custom-thing': 'keep-me',
      });
    assert.equal(r.status, 200, r.text);
    const rec = up.last();
    assert.equal(rec.headers.authorization, `Bearer ${UPSTREAM_OPENAI_KEY}`);
    assert.equal(rec.headers['x-api-key'], undefined);
    assert.equal(rec.headers.cookie, undefined);
    assert.equal(rec.headers['x-forwarded-for'], undefined);
    assert.equal(rec.headers['openai-organization'], 'org-test');
    assert.equal(rec.headers['x-custom-thing'], 'keep-me');
    assertNoClientKey(rec, gw);
  });

  test('anthropic: the client key is dropped and anthropic-version defaults to the configured one', async () => {
    up.handler = answerJson(200, anthropicMessage('claude-hdr', 'ok'));
    const body = JSON.stringify({ model: 'claude-hdr', max_tokens: 5, messages: [{ role: 'user', content: 'h' }] });
    const r = await rawPost(`${gw.proxyUrl}/v1/messages`, body, { 'x-api-key': gw.apiKey, authorization: `Bearer ${gw.apiKey}` });
    assert.equal(r.status, 200, r.text);
    let rec = up.last();
    assert.equal(rec.headers['x-api-key'], UPSTREAM_ANTHROPIC_KEY);
    assert.equal(rec.headers.authorization, undefined);
    assert.equal(rec.headers['anthropic-version'], '2023-06-01', 'the default anthropic_version is sent');
    assertNoClientKey(rec, gw);

    const r2 = await rawPost(`${gw.proxyUrl}/v1/messages`, body, { 'x-api-key': gw.apiKey, 'anthropic-version': '2099-01-01' });
    assert.equal(r2.status, 200, r2.text);
    rec = up.last();
    assert.equal(rec.headers['anthropic-version'], '2099-01-01', "the client's anthropic-version wins");
    assert.equal(rec.headers['x-api-key'], UPSTREAM_ANTHROPIC_KEY);
    assertNoClientKey(rec, gw);
  });

  test('an upstream 4xx is relayed to the client as is', async () => {
    up.handler = answerJson(400, { error: { message: 'bad temperature', type: 'invalid_request_error', param: 'temperature', code: null } });
    const r = await rawPost(`${gw.openaiBaseURL}/chat/completions`,
      JSON.stringify({ model: 'gpt-4xx', messages: [{ role: 'user', content: 'h' }], temperature: 9 }), gw.auth());
    assert.equal(r.status, 400);
    assert.equal(r.json.error.message, 'bad temperature');
    assert.equal(r.json.error.param, 'temperature');
    assert.equal(up.requests.filter((q) => q.json?.model === 'gpt-4xx').length, 1, 'a 4xx is not retried');
  });

  test('the access log records each exchange and no key reaches any log', async () => {
    up.handler = answerJson(200, openaiCompletion('gpt-log', 'logged'));
    const { response } = await oa.chat.completions
      .create({ model: 'gpt-log', messages: [{ role: 'user', content: 'log me' }] })
      .withResponse();
    const rid = response.headers.get('x-request-id');
    const logPath = path.join(gw.dir, 'access.log');
    let line = null;
    await waitFor(async () => {
      const text = await fsp.readFile(logPath, 'utf8').catch(() => '');
      line = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.request_id === rid) ?? null;
      return line;
    }, { timeoutMs: 3000 });
    assert.ok(line, `access log line for ${rid}`);
    assert.equal(line.status, 200);
    assert.equal(line.path, '/v1/chat/completions');
    assert.equal(line.model, 'gpt-log');
    assert.equal(line.upstream, 'oai');
    const access = await fsp.readFile(logPath, 'utf8');
    const all = `${access}\n${gw.stderr}\n${gw.stdout}`;
    for (const key of [UPSTREAM_OPENAI_KEY, UPSTREAM_ANTHROPIC_KEY, CLIENT_KEY, gw.masterKey, gw.adminToken]) {
      assert.ok(!all.includes(key), `a key (${key.slice(0, 8)}...) appears in a log`);
    }
    // The client's API key: never in the access log nor on stdout; on stderr
    // at most in the one startup line where aigis announces the bootstrap
    // agent it created (identity.bootstrap_agent hands its key out that way).
    assert.ok(!`${access}\n${gw.stdout}`.includes(gw.apiKey), 'the client API key appears in the access log');
    const keyLines = gw.stderr.split('\n').filter((l) => l.includes(gw.apiKey));
    assert.ok(keyLines.length <= 1 && keyLines.every((l) => /created agent 'e2e-agent' with an API key/.test(l)),
      `the client API key appears on stderr:\n${keyLines.join('\n')}`);
  });
});
