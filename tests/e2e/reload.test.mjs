// SIGHUP reloads the config file: a broken file is rejected and the old
// config keeps serving; a good one takes effect; a stream in flight keeps
// the config it started with.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  OpenAI, UPSTREAM_OPENAI_KEY, answerSse, assertOpenAIError, baseConfig, expectThrow, openaiChunks,
  openaiClient, sleep, startAigis, startFakeUpstream,
} from './lib.mjs';

describe('config reload on SIGHUP', { timeout: 60_000 }, () => {
  let gw;
  let up;
  let oa;
  // Config A: echo for echo-*, the fake upstream for slow-*; no aliases.
  const configA = (dir) => baseConfig(dir, `
upstreams:
  - name: echo
    provider: echo
  - name: slowup
    provider: openai
    base_url: ${up.v1}
    api_key: ${UPSTREAM_OPENAI_KEY}
routes:
  - name: slow
    models: ["slow-*"]
    upstreams: [slowup]
  - name: echo
    models: ["echo-*"]
    upstreams: [echo]
`);
  // Config B: adds the alias quick -> echo-quick and drops the upstream.
  const configB = (dir) => baseConfig(dir, `
model_aliases:
  quick: echo-quick
upstreams:
  - name: echo
    provider: echo
routes:
  - name: echo
    models: ["echo-*"]
    upstreams: [echo]
`);

  before(async () => {
    up = await startFakeUpstream();
    gw = await startAigis(configA);
    oa = openaiClient(gw);
  });
  after(async () => {
    try {
      if (gw) await gw.stop();
    } finally {
      if (up) await up.close();
    }
  });

  const chat = (model, content = 'reload me') => oa.chat.completions.create({ model, messages: [{ role: 'user', content }] });
  const reloads = async () => ({
    ok: await gw.metric('aigis_config_reloads_total', { result: 'success' }),
    failed: await gw.metric('aigis_config_reloads_total', { result: 'failure' }),
  });

  async function assertStillConfigA() {
    const r = await chat('echo-1', 'still serving');
    assert.equal(r.choices[0].message.content, 'still serving');
    const e = await expectThrow(() => chat('quick'), 'alias quick before a good reload');
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, 404);
    assertOpenAIError({ error: e.error });
  }

  test('before any reload: no alias "quick"', async () => {
    const r0 = await reloads();
    assert.equal(r0.ok, 0);
    assert.equal(r0.failed, 0);
    await assertStillConfigA();
  });

  test('broken YAML is rejected, the old config keeps serving', async () => {
    const r0 = await reloads();
    await gw.writeConfig('listeners: [unclosed\n  routes: {\n');
    gw.signal('SIGHUP');
    const failed = await gw.waitMetric('aigis_config_reloads_total', { result: 'failure' }, (v) => v === r0.failed + 1, 5000);
    assert.equal(failed, r0.failed + 1, 'the failure counter rose by one');
    assert.equal(await gw.metric('aigis_config_reloads_total', { result: 'success' }), r0.ok);
    await assertStillConfigA();
    assert.match(gw.stderr, /reload.*rejected/i, 'the rejection is logged');
  });

  test('an invalid (well-formed) config is rejected too', async () => {
    const r0 = await reloads();
    await gw.writeConfig((dir) => `${configB(dir)}
bogus_key: 1
`.replace('upstreams: [echo]', 'upstreams: [not-declared]'));
    gw.signal('SIGHUP');
    const failed = await gw.waitMetric('aigis_config_reloads_total', { result: 'failure' }, (v) => v === r0.failed + 1, 5000);
    assert.equal(failed, r0.failed + 1);
    await assertStillConfigA();
  });

  test('a good config takes effect: the new alias works; a stream in flight finishes on the old config', async () => {
    // A stream through the upstream that config B removes.
    up.handler = answerSse(openaiChunks('slow-1', ['one ', 'two ', 'three ', 'four ', 'five']), { intervalMs: 100 });
    const stream = await oa.chat.completions.create({ model: 'slow-1', stream: true, messages: [{ role: 'user', content: 'x' }] });
    const it = stream[Symbol.asyncIterator]();
    let text = '';
    for (let i = 0; i < 10 && !text; i++) {
      const n = await it.next();
      if (n.done) break;
      for (const ch of n.value.choices) text += ch.delta?.content ?? '';
    }
    assert.equal(text, 'one ');

    const r0 = await reloads();
    await gw.writeConfig(configB);
    gw.signal('SIGHUP');
    const ok = await gw.waitMetric('aigis_config_reloads_total', { result: 'success' }, (v) => v === r0.ok + 1, 5000);
    assert.equal(ok, r0.ok + 1, 'the success counter rose by one');
    assert.equal(await gw.metric('aigis_config_reloads_total', { result: 'failure' }), r0.failed);

    const r = await chat('quick', 'via the new alias');
    assert.equal(r.choices[0].message.content, 'via the new alias');
    assert.equal(r.model, 'echo-quick');
    const ids = [];
    for await (const m of oa.models.list()) ids.push(m.id);
    assert.ok(ids.includes('quick'), `models after reload: ${ids}`);

    // New requests no longer reach the removed route...
    const e = await expectThrow(() => chat('slow-2'), 'slow-* after its route was removed');
    assert.equal(e.status, 404);

    // ...but the stream that started before the reload completes.
    for (let i = 0; i < 20; i++) {
      const n = await it.next();
      if (n.done) break;
      for (const ch of n.value.choices) text += ch.delta?.content ?? '';
    }
    assert.equal(text, 'one two three four five');
    assert.equal(await gw.waitMetric('aigis_inflight_requests', {}, (v) => v === 0), 0);
  });

  test('reloads under load: every request is answered, each by one consistent config', async () => {
    const cfg = (n) => (dir) => baseConfig(dir, `
model_aliases:
  gen: echo-gen-${n}
upstreams:
  - name: echo
    provider: echo
routes:
  - name: r${n}
    models: ["echo-*"]
    upstreams: [echo]
`);
    // Config 0 first, so that every request of the load can be served.
    const base = (await reloads()).ok;
    await gw.writeConfig(cfg(0));
    gw.signal('SIGHUP');
    const r0 = { ok: await gw.waitMetric('aigis_config_reloads_total', { result: 'success' }, (v) => v >= base + 1, 3000) };
    let stop = false;
    let sent = 0;
    const errors = [];
    const seen = new Set();
    const worker = async () => {
      while (!stop && sent < 3000) {
        const k = ++sent;
        try {
          if (k % 2) {
            const r = await oa.chat.completions.create({ model: 'gen', messages: [{ role: 'user', content: `m${k}` }] });
            assert.equal(r.choices[0].message.content, `m${k}`);
            seen.add(r.model);
          } else {
            const s = await oa.chat.completions.create({ model: 'gen', stream: true, messages: [{ role: 'user', content: `m${k}` }] });
            const models = new Set();
            let text = '';
            for await (const c of s) {
              models.add(c.model);
              text += c.choices[0]?.delta?.content ?? '';
            }
            assert.equal(text, `m${k}`);
            assert.equal(models.size, 1, 'one stream, one config');
            for (const m of models) seen.add(m);
          }
        } catch (e) {
          errors.push(`#${k}: ${e.message}`);
        }
      }
    };
    const load = Array.from({ length: 4 }, worker);
    const RELOADS = 10;
    for (let i = 1; i <= RELOADS; i++) {
      await gw.writeConfig(cfg(i));
      gw.signal('SIGHUP');
      await gw.waitMetric('aigis_config_reloads_total', { result: 'success' }, (v) => v >= r0.ok + i, 3000);
      await sleep(20);
    }
    stop = true;
    await Promise.all(load);
    assert.deepEqual(errors.slice(0, 5), [], `${errors.length} of ${sent} requests failed`);
    assert.equal(await gw.metric('aigis_config_reloads_total', { result: 'success' }), r0.ok + RELOADS);
    assert.ok(seen.size > 1, `answers came from several configs: ${[...seen]}`);
    assert.ok([...seen].every((m) => /^echo-gen-\d+$/.test(m)), `models: ${[...seen]}`);
    assert.ok(seen.has(`echo-gen-${RELOADS}`), 'the last config serves at the end');
  });
});
