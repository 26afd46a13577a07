// The authorize stage end to end: relationship checks in front of the LLM
// endpoints with the default model, grants written and revoked through the
// OpenFGA API with the real @openfga/sdk, an agent acting on behalf of an IdP
// user (both need the grant), the native 403 with a decision id in both
// protocols, the decision in the access log, and failing closed when the
// store is gone.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { CredentialsMethod, OpenFgaClient } from '@openfga/sdk';
import * as oauth from 'oauth4webapi';

import {
  E2E_AGENT, anthropicClient, assertAnthropicError, assertOpenAIError, baseConfig, expectThrow,
  openaiClient, rawPost, runAigisExpectingExit, startAigis, startFakeIdp, trustFakeIdp, waitFor,
} from './lib.mjs';

const HTTP = { [oauth.allowInsecureRequests]: true };
const opts = () => ({ ...HTTP, signal: AbortSignal.timeout(10_000) });

function chat(gw, token, model) {
  return rawPost(`${gw.openaiBaseURL}/chat/completions`,
    JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] }), { authorization: `Bearer ${token}` });
}

function fga(gw, storeId) {
  return new OpenFgaClient({
    apiUrl: gw.adminUrl,
    storeId,
    credentials: { method: CredentialsMethod.ApiToken, config: { token: gw.adminToken } },
    retryParams: { maxRetry: 0 },
  });
}

function assertDenied(r, { user, object }) {
  assert.equal(r.status, 403, r.text);
  const body = JSON.parse(r.text);
  assertOpenAIError(body, { type: 'permission_error' });
  assert.equal(body.error.code, 'permission_denied');
  const id = r.headers.get('x-aigis-decision-id');
  assert.ok(id, 'the decision id header');
  assert.ok(body.error.message.includes(id), `the message quotes the decision id: ${body.error.message}`);
  assert.ok(body.error.message.includes(`${user} may not can_use ${object}`), body.error.message);
  return id;
}

describe('authorize stage', { timeout: 120_000 }, () => {
  let gw;
  let idp;
  let client;
  let accessLog;

  before(async () => {
    idp = await startFakeIdp();
    gw = await startAigis((dir) => {
      accessLog = path.join(dir, 'access.log');
      return baseConfig(dir, `
authz:
  enabled: true
  seed_tuples:
    - llm_model:model-a#can_use@agent:${E2E_AGENT}
`, { identity: trustFakeIdp(idp) });
    });
    const stores = await fga(gw).listStores();
    const store = stores.stores.find((s) => s.name === 'aigis');
    assert.ok(store, 'the authorize stage store was created at start');
    client = fga(gw, store.id);
  });
  after(async () => {
    try {
      if (gw) await gw.stop();
    } finally {
      await idp?.close();
    }
  });

  test('an agent granted model A and not model B gets 200 and 403, in both protocols', async () => {
    const ok = await openaiClient(gw).chat.completions.create({ model: 'model-a', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(ok.object, 'chat.completion');

    const r = await chat(gw, gw.apiKey, 'model-b');
    assertDenied(r, { user: `agent:${E2E_AGENT}`, object: 'llm_model:model-b' });

    const e = await expectThrow(() => openaiClient(gw).chat.completions.create({ model: 'model-b', messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(e.status, 403);
    const a = await expectThrow(() => anthropicClient(gw).messages.create({ model: 'model-b', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(a.status, 403);
    assertAnthropicError(a.error, { type: 'permission_error' });
    assert.match(a.error.error.message, /may not can_use llm_model:model-b \(decision .+\.authz\.0\)/);
  });

  test('a grant written through the OpenFGA API works on the next request; revoking it too', async () => {
    const tuple = { user: `agent:${E2E_AGENT}`, relation: 'can_use', object: 'llm_model:model-c' };
    assert.equal((await chat(gw, gw.apiKey, 'model-c')).status, 403);
    await client.writeTuples([tuple]);
    assert.equal((await chat(gw, gw.apiKey, 'model-c')).status, 200);
    assert.equal((await chat(gw, gw.apiKey, 'model-c')).status, 200, 'still allowed (from the cache)');
    await client.deleteTuples([tuple]);
    assertDenied(await chat(gw, gw.apiKey, 'model-c'), { user: `agent:${E2E_AGENT}`, object: 'llm_model:model-c' });

    // Through a team, and a public (agent:*) grant.
    await client.writeTuples([
      { user: `agent:${E2E_AGENT}`, relation: 'member', object: 'team:ml' },
      { user: 'team:ml#member', relation: 'can_use', object: 'llm_model:model-team' },
      { user: 'agent:*', relation: 'can_use', object: 'llm_model:model-public' },
    ]);
    assert.equal((await chat(gw, gw.apiKey, 'model-team')).status, 200);
    assert.equal((await chat(gw, gw.apiKey, 'model-public')).status, 200);
    await client.deleteTuples([{ user: `agent:${E2E_AGENT}`, relation: 'member', object: 'team:ml' }]);
    assert.equal((await chat(gw, gw.apiKey, 'model-team')).status, 403, 'leaving the team revokes at once');
  });

  test('an agent acting on behalf of a user needs both grants', async () => {
    const a = await gw.admin('POST', '/admin/v1/agents', { id: 'obo-agent', name: 'obo', scopes: ['llm:chat'] });
    assert.equal(a.status, 201, a.text);
    const s = await gw.admin('POST', '/admin/v1/agents/obo-agent/credentials', {});
    assert.equal(s.status, 201, s.text);
    const issuer = new URL(gw.issuer);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...opts(), algorithm: 'oauth2' }));
    const oboClient = { client_id: 'obo-agent' };
    const userToken = await idp.sign({ sub: 'user-7', scope: 'llm:chat' });
    const res = await oauth.genericTokenEndpointRequest(as, oboClient, oauth.ClientSecretBasic(s.json.client_secret),
      'urn:ietf:params:oauth:grant-type:token-exchange',
      { subject_token: userToken, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }, opts());
    const token = (await oauth.processGenericTokenEndpointResponse(as, oboClient, res)).access_token;

    const agentGrant = { user: 'agent:obo-agent', relation: 'can_use', object: 'llm_model:model-obo' };
    const userGrant = { user: 'user:user-7', relation: 'can_use', object: 'llm_model:model-obo' };
    await client.writeTuples([agentGrant]);
    assertDenied(await chat(gw, token, 'model-obo'), { user: 'user:user-7', object: 'llm_model:model-obo' });
    await client.writeTuples([userGrant]);
    assert.equal((await chat(gw, token, 'model-obo')).status, 200);
    await client.deleteTuples([agentGrant]);
    assertDenied(await chat(gw, token, 'model-obo'), { user: 'agent:obo-agent', object: 'llm_model:model-obo' });
    // The agent on its own (no user): its own grant is what counts.
    await client.writeTuples([agentGrant]);
    const own = await oauth.processClientCredentialsResponse(as, oboClient,
      await oauth.clientCredentialsGrantRequest(as, oboClient, oauth.ClientSecretBasic(s.json.client_secret), {}, opts()));
    assert.equal((await chat(gw, own.access_token, 'model-obo')).status, 200);
  });

  test('every decision is in the access log with model, revision and explanation', async () => {
    const denied = await chat(gw, gw.apiKey, 'model-logged');
    const id = denied.headers.get('x-aigis-decision-id');
    const allowed = await chat(gw, gw.apiKey, 'model-a');
    assert.equal(allowed.status, 200);
    const rid = allowed.headers.get('x-request-id');
    let lines = [];
    await waitFor(async () => {
      lines = (await fsp.readFile(accessLog, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
      return lines.some((l) => l.authz_decision_id === id) && lines.some((l) => l.request_id === rid);
    });
    const d = lines.find((l) => l.authz_decision_id === id);
    assert.equal(d.status, 403);
    assert.equal(d.authz, `deny agent:${E2E_AGENT} can_use llm_model:model-logged`);
    assert.match(d.authz_model, /^[0-9A-Z]{26}$/);
    assert.ok(d.authz_revision >= 1);
    assert.ok(d.authz_explanation.length > 0);
    const ok = lines.find((l) => l.request_id === rid);
    assert.equal(ok.authz, `allow agent:${E2E_AGENT} can_use llm_model:model-a`);
    assert.match(ok.authz_explanation, /tuple llm_model:model-a#can_use@agent:/);

    const m = await gw.metrics();
    assert.match(m, /aigis_authz_checks_total\{result="allow"\} [1-9]/);
    assert.match(m, /aigis_authz_checks_total\{result="deny"\} [1-9]/);
    assert.match(m, /aigis_authz_check_cache_hits_total [1-9]/);
  });

  test('fails closed: without the store every request is denied', async () => {
    const stores = await fga(gw).listStores();
    const store = stores.stores.find((s) => s.name === 'aigis');
    await fga(gw, store.id).deleteStore();
    const r = await chat(gw, gw.apiKey, 'model-a');
    assert.equal(r.status, 403, r.text);
    assert.match(JSON.parse(r.text).error.message, /authorization could not be decided/);
  });
});

describe('authorize stage: start-up', { timeout: 60_000 }, () => {
  test('a model file with an error stops start-up with its line and column', async () => {
    const r = await runAigisExpectingExit((dir) => {
      fs.writeFileSync(path.join(dir, 'bad.fga'), 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user] or editor\n');
      return baseConfig(dir, 'authz:\n  enabled: true\n  model_file: bad.fga\n');
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /bad\.fga: authorization model: .*editor.*\(line 6, column \d+\)/);
    assert.ok(!r.portsWritten);
  });

  test('a seed tuple the model does not admit stops start-up', async () => {
    const r = await runAigisExpectingExit((dir) => baseConfig(dir,
      'authz:\n  enabled: true\n  seed_tuples: ["llm_model:x#can_call@agent:a"]\n'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /invalid_tuple: llm_model:x#can_call@agent:a/);
  });
});
