// Identity end to end: the OAuth 2.0 authorization server driven by real
// clients (oauth4webapi for RFC 8414 discovery, client_credentials with
// client_secret_basic / client_secret_post / private_key_jwt, token exchange,
// introspection and revocation; jose to verify what aigis signs), the
// authenticate stage in front of the LLM endpoints (openai and Anthropic
// SDKs), a trusted external IdP (a fake one in this process), header
// hygiene towards upstreams, key rotation, the admin API and the start-up
// refusals.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';
import * as oauth from 'oauth4webapi';

import {
  Anthropic, CLIENT_KEY, E2E_AGENT, OpenAI, UPSTREAM_OPENAI_KEY, anthropicClient, assertAnthropicError,
  assertOpenAIError, baseConfig, expectThrow, openaiClient, openaiCompletion, rawPost, runAigisExpectingExit,
  sleep, startAigis, startFakeIdp, startFakeUpstream, trustFakeIdp, IDP_AUDIENCE,
} from './lib.mjs';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const HTTP = { [oauth.allowInsecureRequests]: true };
const opts = () => ({ ...HTTP, signal: AbortSignal.timeout(10_000) });
const nowS = () => Math.floor(Date.now() / 1000);
const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

// ------------------------------------------------------------- helpers ----

// Asserts a data-plane 401: the challenge header and the native error body.
// `error` is the expected error= parameter of the challenge ("" for none).
function assert401(r, { error = 'invalid_token', protocol = 'openai', why = '' } = {}) {
  assert.equal(r.status, 401, `${why}: expected 401, got ${r.status} ${r.text}`);
  const www = r.headers.get('www-authenticate') ?? '';
  assert.match(www, /^Bearer realm="aigis"/, `${why}: WWW-Authenticate: ${www}`);
  if (error) {
    assert.match(www, new RegExp(`error="${error}"`), `${why}: WWW-Authenticate: ${www}`);
    assert.match(www, /error_description="[^"]+"/, `${why}: WWW-Authenticate: ${www}`);
  } else {
    assert.doesNotMatch(www, /error=/, `${why}: a missing credential is not an error (RFC 6750 §3.1): ${www}`);
  }
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  if (protocol === 'anthropic') assertAnthropicError(r.json, { type: 'authentication_error' });
  else assertOpenAIError(r.json, { type: 'authentication_error' });
}

// The error of a token endpoint call that oauth4webapi refused to accept:
// {status, error, description}.
async function oauthFailure(fn) {
  try {
    await fn();
  } catch (e) {
    if (e instanceof oauth.ResponseBodyError) {
      return { status: e.status, error: e.error, description: e.error_description, www: e.response?.headers.get('www-authenticate') };
    }
    if (e instanceof oauth.WWWAuthenticateChallengeError) {
      const body = await e.response.json().catch(() => ({}));
      return { status: e.response.status, error: body.error, description: body.error_description,
        www: e.response.headers.get('www-authenticate') };
    }
    throw e;
  }
  assert.fail('the OAuth call succeeded but was expected to fail');
}

async function discover(gw) {
  const issuer = new URL(gw.issuer);
  const res = await oauth.discoveryRequest(issuer, { ...opts(), algorithm: 'oauth2' });
  return oauth.processDiscoveryResponse(issuer, res);
}

// Creates an agent (admin API) and, unless secret is false, a client secret.
async function newAgent(gw, body, { secret = true } = {}) {
  const a = await gw.admin('POST', '/admin/v1/agents', { name: body.id ?? 'agent', ...body });
  assert.equal(a.status, 201, `create agent: ${a.text}`);
  if (!secret) return { id: a.json.id, agent: a.json };
  const s = await gw.admin('POST', `/admin/v1/agents/${a.json.id}/credentials`, {});
  assert.equal(s.status, 201, `create secret: ${s.text}`);
  assert.equal(s.json.client_id, a.json.id);
  assert.ok(s.json.client_secret, 'the secret is shown once');
  return { id: a.json.id, agent: a.json, secret: s.json.client_secret, credentialId: s.json.credential_id };
}

async function newApiKey(gw, agentId, extra = {}) {
  const k = await gw.admin('POST', '/admin/v1/api-keys', { agent_id: agentId, ...extra });
  assert.equal(k.status, 201, `create API key: ${k.text}`);
  assert.match(k.json.api_key, /^aig_/);
  return k.json;
}

async function clientCredentials(as, clientId, auth, parameters = {}) {
  const client = { client_id: clientId };
  const res = await oauth.clientCredentialsGrantRequest(as, client, auth, parameters, opts());
  return oauth.processClientCredentialsResponse(as, client, res);
}

// A chat completion through the gateway with the given headers (raw fetch).
function chat(gw, headers, model = 'echo-id', content = 'who am i') {
  return rawPost(`${gw.openaiBaseURL}/chat/completions`,
    JSON.stringify({ model, messages: [{ role: 'user', content }] }), headers);
}
const bearer = (t) => ({ authorization: `Bearer ${t}` });

function splitJwt(t) {
  const [h, p, s] = t.split('.');
  return { h, p, s, header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

// --------------------------------------------------------------- tests ----

describe('identity: OAuth server, authentication, trust', { timeout: 180_000 }, () => {
  let gw;
  let up;
  let idp;
  let as;
  let agentA;  // {id, secret}: scopes llm:chat llm:embed tools:read
  let jwksUri;

  before(async () => {
    up = await startFakeUpstream();
    up.handler = (req, res, rec) => {
      const body = openaiCompletion(rec.json?.model ?? 'x', 'from upstream');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    idp = await startFakeIdp();
    gw = await startAigis((dir) => baseConfig(dir, `
upstreams:
  - name: echo
    provider: echo
  - name: plain
    provider: openai
    base_url: ${up.v1}
    api_key: ${UPSTREAM_OPENAI_KEY}
  - name: withp
    provider: openai
    base_url: ${up.v1}
    api_key: ${UPSTREAM_OPENAI_KEY}
    send_principal: true
  - name: keyless-ant
    provider: anthropic
    base_url: ${up.v1}
  - name: keyless-oai
    provider: openai
    base_url: ${up.v1}
routes:
  - name: keyless-ant
    paths: [/v1/messages]
    models: ["up-keyless-*"]
    upstreams: [keyless-ant]
  - name: keyless-oai
    models: ["up-keyless-*"]
    upstreams: [keyless-oai]
  - name: plain
    models: ["up-plain-*"]
    upstreams: [plain]
  - name: principal
    models: ["up-principal-*"]
    upstreams: [withp]
  - name: anon
    models: ["anon-*"]
    upstreams: [withp]
    anonymous: true
  - name: default
    models: ["*"]
    upstreams: [echo]
`, { identity: trustFakeIdp(idp, '    clock_skew: 5s') }));
    as = await discover(gw);
    jwksUri = new URL(as.jwks_uri);
    agentA = await newAgent(gw, { id: 'agent-a', name: 'Agent A', owner: 'e2e', scopes: ['llm:chat', 'llm:embed', 'tools:read'] });
  });
  after(async () => {
    try {
      if (gw) await gw.stop();
    } finally {
      await up?.close();
      await idp?.close();
    }
  });

  test('RFC 8414 discovery through oauth4webapi', async () => {
    assert.equal(as.issuer, gw.issuer);
    assert.equal(as.token_endpoint, `${gw.issuer}/oauth2/token`);
    assert.equal(as.jwks_uri, `${gw.issuer}/.well-known/jwks.json`);
    assert.equal(as.introspection_endpoint, `${gw.issuer}/oauth2/introspect`);
    assert.equal(as.revocation_endpoint, `${gw.issuer}/oauth2/revoke`);
    assert.ok(as.grant_types_supported.includes('client_credentials'));
    assert.ok(as.grant_types_supported.includes(TOKEN_EXCHANGE));
    for (const m of ['client_secret_basic', 'client_secret_post', 'private_key_jwt']) {
      assert.ok(as.token_endpoint_auth_methods_supported.includes(m), m);
    }
    // The JWKS publishes public keys only.
    const jwks = await (await fetch(jwksUri, { signal: AbortSignal.timeout(5000) })).json();
    assert.ok(jwks.keys.length >= 1);
    for (const k of jwks.keys) {
      assert.ok(k.kid, 'every key has a kid');
      assert.equal(k.d, undefined, 'no private part in the JWKS');
      assert.equal(k.kty, 'OKP', 'EdDSA (Ed25519) by default');
    }
  });

  test('client_credentials with client_secret_basic: jose verifies the RFC 9068 token', async () => {
    const t = await clientCredentials(as, agentA.id, oauth.ClientSecretBasic(agentA.secret));
    assert.equal(t.token_type.toLowerCase(), 'bearer');
    assert.equal(t.expires_in, 900);
    const jwks = jose.createRemoteJWKSet(jwksUri);
    const { payload, protectedHeader } = await jose.jwtVerify(t.access_token, jwks,
      { issuer: gw.issuer, audience: 'aigis', typ: 'at+jwt' });
    assert.equal(protectedHeader.alg, 'EdDSA');
    assert.ok(protectedHeader.kid);
    assert.equal(payload.sub, agentA.id);
    assert.equal(payload.client_id, agentA.id);
    assert.equal(payload.tenant, 'default');
    assert.equal(payload.principal_kind, 'agent');
    assert.deepEqual(payload.scope.split(' ').sort(), ['llm:chat', 'llm:embed', 'tools:read']);
    assert.equal(payload.exp - payload.iat, 900);
    assert.ok(payload.nbf <= nowS() + 1);
    assert.ok(Math.abs(payload.iat - nowS()) < 30);
    assert.ok(payload.jti && payload.jti.length >= 16);
    assert.equal(payload.act, undefined);

    // oauth4webapi's own RFC 9068 resource-server check agrees.
    const req = new Request('http://rs.example/', { headers: bearer(t.access_token) });
    const claims = await oauth.validateJwtAccessToken(as, req, 'aigis', opts());
    assert.equal(claims.sub, agentA.id);

    // The token works at the gateway, through the openai SDK.
    const oa = openaiClient(gw, { apiKey: t.access_token });
    const r = await oa.chat.completions.create({ model: 'echo-token', messages: [{ role: 'user', content: 'with a token' }] });
    assert.equal(r.choices[0].message.content, 'with a token');
  });

  test('client_credentials with client_secret_post, and a narrower scope', async () => {
    const t = await clientCredentials(as, agentA.id, oauth.ClientSecretPost(agentA.secret), { scope: 'llm:chat' });
    assert.equal(t.scope, 'llm:chat');
    const { payload } = await jose.jwtVerify(t.access_token, jose.createRemoteJWKSet(jwksUri),
      { issuer: gw.issuer, audience: 'aigis', typ: 'at+jwt' });
    assert.equal(payload.scope, 'llm:chat');
    assert.equal(payload.sub, agentA.id);
    const r = await chat(gw, bearer(t.access_token), 'echo-post', 'posted secret');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, 'posted secret');
  });

  test('client_credentials with private_key_jwt (RFC 7523), key registered by PATCH and at creation', async () => {
    const { publicKey, privateKey } = await jose.generateKeyPair('ES256');
    const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'pkj-1', alg: 'ES256', use: 'sig' };
    // Registered afterwards, by PATCH.
    const b = await newAgent(gw, { id: 'agent-pkj', name: 'PKJ agent', scopes: ['llm:chat'] }, { secret: false });
    const p = await gw.admin('PATCH', `/admin/v1/agents/${b.id}`, { jwks: { keys: [jwk] } });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.jwks.keys[0].kid, 'pkj-1');
    const t = await clientCredentials(as, b.id, oauth.PrivateKeyJwt({ key: privateKey, kid: 'pkj-1' }));
    const { payload } = await jose.jwtVerify(t.access_token, jose.createRemoteJWKSet(jwksUri),
      { issuer: gw.issuer, audience: 'aigis', typ: 'at+jwt' });
    assert.equal(payload.sub, b.id);
    assert.equal(payload.client_id, b.id);
    assert.equal(payload.scope, 'llm:chat');
    assert.equal((await chat(gw, bearer(t.access_token))).status, 200);

    // Registered at creation.
    const kp2 = await jose.generateKeyPair('ES256');
    const jwk2 = { ...(await jose.exportJWK(kp2.publicKey)), kid: 'pkj-2', alg: 'ES256' };
    const c = await newAgent(gw, { id: 'agent-pkj2', name: 'PKJ agent 2', scopes: ['llm:chat'], jwks: { keys: [jwk2] } },
      { secret: false });
    const t2 = await clientCredentials(as, c.id, oauth.PrivateKeyJwt({ key: kp2.privateKey, kid: 'pkj-2' }));
    assert.equal(splitJwt(t2.access_token).payload.sub, c.id);

    // A replayed assertion (same jti) is refused; so is one signed with a
    // key the agent did not register, and an HS256 one keyed with the
    // registered public JWK.
    const assertion = await new jose.SignJWT({ jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'pkj-1' }).setIssuer(b.id).setSubject(b.id)
      .setAudience(as.token_endpoint).setIssuedAt().setExpirationTime('60s').sign(privateKey);
    const post = (a) => rawPost(as.token_endpoint, new URLSearchParams({
      grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: a,
    }).toString(), { 'content-type': 'application/x-www-form-urlencoded' });
    const first = await post(assertion);
    assert.equal(first.status, 200, first.text);
    const replay = await post(assertion);
    assert.equal(replay.status, 401, replay.text);
    assert.equal(replay.json.error, 'invalid_client');
    const foreign = await new jose.SignJWT({ jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'pkj-1' }).setIssuer(b.id).setSubject(b.id)
      .setAudience(as.token_endpoint).setIssuedAt().setExpirationTime('60s').sign(kp2.privateKey);
    const f = await post(foreign);
    assert.equal(f.status, 401, f.text);
    assert.equal(f.json.error, 'invalid_client');
    const hsHeader = b64url({ alg: 'HS256', kid: 'pkj-1', typ: 'JWT' });
    const hsPayload = b64url({ iss: b.id, sub: b.id, aud: as.token_endpoint, jti: crypto.randomUUID(), iat: nowS(), exp: nowS() + 60 });
    const hsSig = crypto.createHmac('sha256', JSON.stringify(jwk)).update(`${hsHeader}.${hsPayload}`).digest('base64url');
    const hs = await post(`${hsHeader}.${hsPayload}.${hsSig}`);
    assert.equal(hs.status, 401, hs.text);
    assert.equal(hs.json.error, 'invalid_client');
  });

  test('API keys: openai client with Authorization: Bearer, Anthropic client with x-api-key', async () => {
    const k = await newApiKey(gw, agentA.id);
    assert.equal(k.subject, agentA.id);
    const oa = openaiClient(gw, { apiKey: k.api_key });
    const r = await oa.chat.completions.create({ model: 'echo-key', messages: [{ role: 'user', content: 'api key works' }] });
    assert.equal(r.choices[0].message.content, 'api key works');
    const an = anthropicClient(gw, { apiKey: k.api_key });
    const m = await an.messages.create({ model: 'claude-echo', max_tokens: 32, messages: [{ role: 'user', content: 'hello via x-api-key' }] });
    assert.equal(m.content[0].text, 'hello via x-api-key');
    // The Anthropic client with an aigis access token (authToken: Authorization: Bearer).
    const t = await clientCredentials(as, agentA.id, oauth.ClientSecretBasic(agentA.secret));
    const an2 = new Anthropic({ apiKey: null, authToken: t.access_token, baseURL: gw.anthropicBaseURL, maxRetries: 0, timeout: 15_000 });
    const m2 = await an2.messages.create({ model: 'claude-echo', max_tokens: 32, messages: [{ role: 'user', content: 'bearer for claude' }] });
    assert.equal(m2.content[0].text, 'bearer for claude');

    // Scopes of an agent's key stay within the agent's; a short-lived key expires.
    const wide = await gw.admin('POST', '/admin/v1/api-keys', { agent_id: agentA.id, scopes: ['llm:chat', 'admin:all'] });
    assert.equal(wide.status, 400, wide.text);
    const tooBrief = await gw.admin('POST', '/admin/v1/api-keys', { agent_id: agentA.id, expires_in: 1 });
    assert.equal(tooBrief.status, 400, tooBrief.text);
    const brief = await newApiKey(gw, agentA.id, { scopes: ['llm:chat'], expires_in: 60 });
    const left = Date.parse(brief.expires_at) - Date.now();
    assert.ok(left > 50_000 && left <= 61_000, `expires_at ${brief.expires_at}`);
    assert.deepEqual(brief.scopes, ['llm:chat']);
    assert.equal((await chat(gw, bearer(brief.api_key))).status, 200);

    // A revoked API key stops working at once.
    const rv = await gw.admin('POST', `/admin/v1/api-keys/${k.key_id}:revoke`, {});
    assert.equal(rv.status, 204, rv.text);
    assert401(await chat(gw, bearer(k.api_key)), { why: 'revoked API key' });
    const e = await expectThrow(() => an.messages.create({ model: 'claude-echo', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }));
    assert.ok(e instanceof Anthropic.AuthenticationError, `got ${e}`);
    assertAnthropicError(e.error, { type: 'authentication_error' });
  });

  test('no credentials and unknown credentials: 401 with a challenge, native shapes', async () => {
    // None at all: a challenge without error= (RFC 6750 §3.1).
    assert401(await chat(gw, {}), { error: '', why: 'no credentials' });
    const an = await rawPost(`${gw.proxyUrl}/v1/messages`,
      JSON.stringify({ model: 'claude-echo', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }));
    assert401(an, { error: '', protocol: 'anthropic', why: 'no credentials (anthropic)' });
    const models = await fetch(`${gw.openaiBaseURL}/models`, { signal: AbortSignal.timeout(5000) });
    assert.equal(models.status, 401, '/v1/models needs credentials too');
    await models.text();
    for (const path of ['/v1/responses', '/v1/embeddings']) {
      const r = await rawPost(`${gw.proxyUrl}${path}`, JSON.stringify({ model: 'echo-x', input: 'x' }));
      assert.equal(r.status, 401, `${path}: ${r.text}`);
    }
    // Unknown key / garbage / wrong scheme.
    assert401(await chat(gw, bearer(CLIENT_KEY)), { why: 'a key aigis does not know' });
    assert401(await chat(gw, bearer('aig_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')), { why: 'forged API key' });
    assert401(await chat(gw, bearer('not.a.jwt')), { why: 'garbage token' });
    assert401(await chat(gw, { authorization: `Basic ${Buffer.from(`${agentA.id}:${agentA.secret}`).toString('base64')}` }),
      { error: 'invalid_request', why: 'Basic scheme on the data plane' });
    const a2 = await rawPost(`${gw.proxyUrl}/v1/messages`,
      JSON.stringify({ model: 'claude-echo', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), { 'x-api-key': CLIENT_KEY });
    assert401(a2, { protocol: 'anthropic', why: 'unknown x-api-key' });
    // Through the SDKs: AuthenticationError.
    const e = await expectThrow(() => openaiClient(gw, { apiKey: CLIENT_KEY }).chat.completions.create(
      { model: 'echo-1', messages: [{ role: 'user', content: 'x' }] }));
    assert.ok(e instanceof OpenAI.AuthenticationError, `got ${e}`);
    assert.equal(e.status, 401);
    assertOpenAIError({ error: e.error }, { type: 'authentication_error' });
    assert.match(e.headers.get('www-authenticate') ?? '', /^Bearer realm="aigis", error="invalid_token"/);
    // Nothing of it reached an upstream.
    assert.ok(!up.requests.some((q) => q.body.includes(CLIENT_KEY)));
  });

  test('token endpoint errors: wrong secret, revoked secret, scope beyond allowed, bad grant', async () => {
    const wrong = await oauthFailure(() => clientCredentials(as, agentA.id, oauth.ClientSecretBasic(`${agentA.secret}x`)));
    assert.equal(wrong.status, 401);
    assert.equal(wrong.error, 'invalid_client');
    assert.match(wrong.www ?? '', /^Basic realm="aigis"/, 'a Basic challenge for a failed Basic authentication');
    const wrongPost = await oauthFailure(() => clientCredentials(as, agentA.id, oauth.ClientSecretPost('nope')));
    assert.equal(wrongPost.status, 401);
    assert.equal(wrongPost.error, 'invalid_client');
    const unknown = await oauthFailure(() => clientCredentials(as, 'no-such-agent', oauth.ClientSecretBasic(agentA.secret)));
    assert.equal(unknown.status, 401);
    assert.equal(unknown.error, 'invalid_client');

    const scope = await oauthFailure(() => clientCredentials(as, agentA.id, oauth.ClientSecretBasic(agentA.secret),
      { scope: 'llm:chat admin:everything' }));
    assert.equal(scope.status, 400);
    assert.equal(scope.error, 'invalid_scope');

    const grant = await rawPost(as.token_endpoint, 'grant_type=password&username=a&password=b',
      { 'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${agentA.id}:${agentA.secret}`).toString('base64')}` });
    assert.equal(grant.status, 400, grant.text);
    assert.equal(grant.json.error, 'unsupported_grant_type');
    assert.equal(grant.headers.get('cache-control'), 'no-store');

    // A second secret, revoked: refused; the first keeps working.
    const s2 = await gw.admin('POST', `/admin/v1/agents/${agentA.id}/credentials`, {});
    assert.equal(s2.status, 201, s2.text);
    const ok = await clientCredentials(as, agentA.id, oauth.ClientSecretBasic(s2.json.client_secret));
    assert.ok(ok.access_token);
    const rv = await gw.admin('POST', `/admin/v1/agents/${agentA.id}/credentials/${s2.json.credential_id}:revoke`, {});
    assert.equal(rv.status, 204, rv.text);
    const revoked = await oauthFailure(() => clientCredentials(as, agentA.id, oauth.ClientSecretBasic(s2.json.client_secret)));
    assert.equal(revoked.status, 401);
    assert.equal(revoked.error, 'invalid_client');
    assert.ok((await clientCredentials(as, agentA.id, oauth.ClientSecretBasic(agentA.secret))).access_token);
  });

  test('forged aigis tokens: foreign key, tampered signature/payload, alg none, HS256 with the public key', async () => {
    const t = (await clientCredentials(as, agentA.id, oauth.ClientSecretBasic(agentA.secret))).access_token;
    assert.equal((await chat(gw, bearer(t))).status, 200);
    const { h, p, s, header, payload } = splitJwt(t);
    const jwks = await (await fetch(jwksUri, { signal: AbortSignal.timeout(5000) })).json();
    const pub = jwks.keys.find((k) => k.kid === header.kid);
    assert.ok(pub, 'the signing key is published');

    // Signed with a key of our own, claiming aigis' kid, and with a new kid.
    const foreign = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' });
    for (const kid of [header.kid, 'not-an-aigis-kid']) {
      const forged = await new jose.SignJWT({ ...payload, jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid }).sign(foreign.privateKey);
      assert401(await chat(gw, bearer(forged)), { why: `foreign key, kid ${kid}` });
    }

    // One byte of the signature flipped (in the middle: every bit there counts).
    const sig = Buffer.from(s, 'base64url');
    sig[sig.length >> 1] ^= 0x01;
    assert401(await chat(gw, bearer(`${h}.${p}.${sig.toString('base64url')}`)), { why: 'flipped signature byte' });
    // The payload changed (a wider scope), signature kept.
    const wider = b64url({ ...payload, scope: `${payload.scope} admin:all` });
    assert401(await chat(gw, bearer(`${h}.${wider}.${s}`)), { why: 'tampered payload' });
    // The header changed (typ), signature kept.
    assert401(await chat(gw, bearer(`${b64url({ ...header, typ: 'JWT' })}.${p}.${s}`)), { why: 'tampered header' });
    // Signature stripped.
    assert401(await chat(gw, bearer(`${h}.${p}.`)), { why: 'no signature' });

    // alg none, with and without a (stale) signature.
    const none = b64url({ alg: 'none', typ: 'at+jwt', kid: header.kid });
    const fresh = b64url({ ...payload, jti: crypto.randomUUID() });
    assert401(await chat(gw, bearer(`${none}.${fresh}.`)), { why: 'alg none' });
    assert401(await chat(gw, bearer(`${none}.${p}.${s}`)), { why: 'alg none with a signature' });
    assert401(await chat(gw, bearer(`${b64url({ alg: 'None', typ: 'at+jwt' })}.${fresh}.`)), { why: 'alg None' });

    // HS256 keyed with the public key: the JWK's JSON text, its raw x bytes,
    // and its x as text.
    const hs = b64url({ alg: 'HS256', typ: 'at+jwt', kid: header.kid });
    for (const [what, secret] of [['JWK JSON', JSON.stringify(pub)], ['raw x', Buffer.from(pub.x, 'base64url')],
      ['x text', pub.x]]) {
      const mac = crypto.createHmac('sha256', secret).update(`${hs}.${fresh}`).digest('base64url');
      assert401(await chat(gw, bearer(`${hs}.${fresh}.${mac}`)), { why: `HS256 with the ${what}` });
    }
    // Attacker-controlled text (kid, iss) with CR/LF and quotes does not
    // break out of the WWW-Authenticate header.
    for (const [what, hdr, claims] of [
      ['kid', { alg: 'EdDSA', typ: 'at+jwt', kid: 'k"\r\nSet-Cookie: pwned=1\r\n' }, payload],
      ['iss', { alg: 'EdDSA', typ: 'at+jwt', kid: header.kid }, { ...payload, iss: 'http://evil"\r\nSet-Cookie: pwned=1' }],
    ]) {
      const forged = await new jose.SignJWT(claims).setProtectedHeader(hdr).sign(foreign.privateKey);
      const r = await chat(gw, bearer(forged));
      assert401(r, { why: `CRLF in ${what}` });
      assert.equal(r.headers.get('set-cookie'), null, `header injection through ${what}`);
      assert.doesNotMatch(r.headers.get('www-authenticate'), /[\r\n]|pwned=1"/);
    }
    // The genuine token still works (nothing above poisoned a cache).
    assert.equal((await chat(gw, bearer(t))).status, 200);
  });

  test('trusted IdP: a user token works; wrong aud/iss, nbf ahead, exp past, unknown kid, wrong alg are refused', async () => {
    const good = await idp.sign();
    const ok = await chat(gw, bearer(good), 'up-principal-user', 'as a user');
    assert.equal(ok.status, 200, ok.text);
    // The upstream that asked for it learns who the user is.
    const principal = up.last().headers['x-aigis-principal'];
    assert.ok(principal, 'X-Aigis-Principal sent');
    const { payload } = await jose.jwtVerify(principal, jose.createRemoteJWKSet(jwksUri),
      { issuer: gw.issuer, typ: 'aigis-principal+jwt' });
    assert.equal(payload.sub, 'user-1');
    assert.equal(payload.principal_kind, 'user');
    assert.equal(payload.email, 'user-1@example.test');

    const cases = [
      ['wrong aud', await idp.sign({ aud: 'someone-else' })],
      ['no aud', await idp.sign({ aud: undefined })],
      ['wrong iss', await idp.sign({ iss: 'http://127.0.0.1:1/realms/evil' })],
      ['iss = aigis (signed by the IdP)', await idp.sign({ iss: gw.issuer, aud: 'aigis' }, { header: { typ: 'at+jwt' } })],
      ['nbf an hour ahead', await idp.sign({ nbf: nowS() + 3600 })],
      ['iat an hour ahead', await idp.sign({ iat: nowS() + 3600, nbf: undefined })],
      ['exp an hour ago', await idp.sign({ iat: nowS() - 7200, nbf: nowS() - 7200, exp: nowS() - 3600 })],
      ['exp missing', await idp.sign({ exp: undefined })],
      ['unknown kid (unpublished key)', await idp.sign({}, { header: { kid: 'idp-key-unknown' }, key: idp.otherKey })],
      ['published kid, wrong key', await idp.sign({}, { key: idp.otherKey })],
    ];
    // An algorithm the issuer is not configured for (EdDSA; only ES256 is).
    const ed = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' });
    cases.push(['EdDSA not allowed for the issuer', await new jose.SignJWT({
      iss: idp.issuer, sub: 'user-1', aud: IDP_AUDIENCE, iat: nowS(), exp: nowS() + 300, jti: crypto.randomUUID(),
    }).setProtectedHeader({ alg: 'EdDSA', kid: 'idp-key-1' }).sign(ed.privateKey)]);
    for (const [why, tok] of cases) assert401(await chat(gw, bearer(tok)), { why });
    // alg none under the IdP's issuer.
    const none = `${b64url({ alg: 'none', kid: 'idp-key-1' })}.${splitJwt(good).p}.`;
    assert401(await chat(gw, bearer(none)), { why: 'IdP alg none' });
    // The good one still works.
    assert.equal((await chat(gw, bearer(good))).status, 200);
  });

  test('headers: client X-Aigis-* and X-Forwarded-User never reach upstreams; send_principal adds aigis\' own', async () => {
    const forged = await new jose.SignJWT({ sub: 'root', principal_kind: 'agent' })
      .setProtectedHeader({ alg: 'HS256', typ: 'aigis-principal+jwt' }).sign(new TextEncoder().encode('x'.repeat(32)));
    const spoof = {
      'x-aigis-principal': forged,
      'x-aigis-tenant': 'other-tenant',
      'x-forwarded-user': 'admin',
      'x-forwarded-email': 'admin@example.test',
      'x-forwarded-groups': 'admins',
      'x-auth-request-user': 'admin',
      'x-remote-user': 'admin',
      'x-keep-me': 'yes',
    };
    const names = Object.keys(spoof).filter((n) => n !== 'x-keep-me');

    // A plain upstream: none of them, and neither the client's credential.
    let r = await chat(gw, { ...bearer(gw.apiKey), ...spoof }, 'up-plain-1');
    assert.equal(r.status, 200, r.text);
    let rec = up.last();
    assert.equal(rec.json.model, 'up-plain-1');
    for (const n of names) assert.equal(rec.headers[n], undefined, `${n} reached the upstream`);
    assert.equal(rec.headers['x-keep-me'], 'yes');
    assert.equal(rec.headers.authorization, `Bearer ${UPSTREAM_OPENAI_KEY}`);
    assert.equal(rec.headers['x-api-key'], undefined);
    assert.ok(!rec.rawHeaders.some((v) => v.includes(gw.apiKey)), 'the client API key reached the upstream');

    // With x-api-key (Anthropic style) on an OpenAI route: dropped too.
    r = await chat(gw, { 'x-api-key': gw.apiKey, ...spoof }, 'up-plain-2');
    assert.equal(r.status, 200, r.text);
    rec = up.last();
    assert.equal(rec.headers['x-api-key'], undefined);
    assert.equal(rec.headers.authorization, `Bearer ${UPSTREAM_OPENAI_KEY}`);
    assert.ok(!rec.rawHeaders.some((v) => v.includes(gw.apiKey)));
    for (const n of names) assert.equal(rec.headers[n], undefined, `${n} reached the upstream`);

    // An upstream with send_principal: exactly one X-Aigis-Principal, aigis'.
    r = await chat(gw, { ...bearer(gw.apiKey), ...spoof }, 'up-principal-1');
    assert.equal(r.status, 200, r.text);
    rec = up.last();
    const values = [];
    for (let i = 0; i < rec.rawHeaders.length; i += 2) {
      if (rec.rawHeaders[i].toLowerCase() === 'x-aigis-principal') values.push(rec.rawHeaders[i + 1]);
    }
    assert.equal(values.length, 1, `X-Aigis-Principal values: ${values.length}`);
    assert.notEqual(values[0], forged);
    const { payload, protectedHeader } = await jose.jwtVerify(values[0], jose.createRemoteJWKSet(jwksUri),
      { issuer: gw.issuer, typ: 'aigis-principal+jwt' });
    assert.equal(protectedHeader.alg, 'EdDSA');
    assert.equal(payload.sub, E2E_AGENT);
    assert.equal(payload.principal_kind, 'agent');
    assert.equal(payload.tenant, 'default');
    assert.ok(payload.exp > nowS() && payload.exp <= nowS() + 61, `short-lived: exp-now = ${payload.exp - nowS()}`);
    for (const n of names.filter((x) => x !== 'x-aigis-principal')) assert.equal(rec.headers[n], undefined, `${n} reached the upstream`);
    assert.equal(rec.headers.authorization, `Bearer ${UPSTREAM_OPENAI_KEY}`);

    // Upstreams configured without a key get no client credential either.
    const body = JSON.stringify({ model: 'up-keyless-ant', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    r = await rawPost(`${gw.proxyUrl}/v1/messages`, body, { 'x-api-key': gw.apiKey, authorization: `Bearer ${gw.apiKey}` });
    assert.equal(r.status, 200, r.text);
    rec = up.last();
    assert.equal(rec.json.model, 'up-keyless-ant');
    assert.equal(rec.headers['x-api-key'], undefined);
    assert.equal(rec.headers.authorization, undefined);
    r = await chat(gw, { 'x-api-key': gw.apiKey, authorization: `Bearer ${gw.apiKey}` }, 'up-keyless-oai');
    assert.equal(r.status, 200, r.text);
    rec = up.last();
    assert.equal(rec.json.model, 'up-keyless-oai');
    assert.equal(rec.headers['x-api-key'], undefined);
    assert.equal(rec.headers.authorization, undefined);
    assert.ok(!rec.rawHeaders.some((v) => v.includes(gw.apiKey)));

    // The principal header is not an access token: replayed to aigis, refused.
    assert401(await chat(gw, bearer(values[0])), { why: 'X-Aigis-Principal replayed as a bearer token' });
    // And an aigis access token is not a principal header either.
    const at = (await clientCredentials(as, agentA.id, oauth.ClientSecretBasic(agentA.secret))).access_token;
    await assert.rejects(jose.jwtVerify(at, jose.createRemoteJWKSet(jwksUri), { typ: 'aigis-principal+jwt' }));
  });

  test('token exchange (RFC 8693): an agent acts for an IdP user', async () => {
    const userToken = await idp.sign({ sub: 'user-1', scope: 'llm:chat tools:read' });
    const client = { client_id: agentA.id };
    const res = await oauth.genericTokenEndpointRequest(as, client, oauth.ClientSecretBasic(agentA.secret), TOKEN_EXCHANGE,
      { subject_token: userToken, subject_token_type: JWT_TOKEN_TYPE }, opts());
    const t = await oauth.processGenericTokenEndpointResponse(as, client, res);
    assert.equal(t.issued_token_type, ACCESS_TOKEN_TYPE);
    const { payload } = await jose.jwtVerify(t.access_token, jose.createRemoteJWKSet(jwksUri),
      { issuer: gw.issuer, audience: 'aigis', typ: 'at+jwt' });
    assert.equal(payload.sub, 'user-1');
    assert.equal(payload.principal_kind, 'user');
    assert.equal(payload.client_id, agentA.id);
    assert.deepEqual(payload.act, { sub: agentA.id });
    assert.deepEqual(payload.scope.split(' ').sort(), ['llm:chat', 'tools:read'], 'the intersection of user and agent scopes');
    assert.ok(payload.exp <= splitJwt(userToken).payload.exp, 'no longer-lived than the subject token');

    // It works at the gateway; the principal header carries the chain.
    const r = await chat(gw, bearer(t.access_token), 'up-principal-obo', 'on behalf');
    assert.equal(r.status, 200, r.text);
    const ph = await jose.jwtVerify(up.last().headers['x-aigis-principal'], jose.createRemoteJWKSet(jwksUri),
      { issuer: gw.issuer, typ: 'aigis-principal+jwt' });
    assert.equal(ph.payload.sub, 'user-1');
    assert.deepEqual(ph.payload.act, { sub: agentA.id });

    // With the agent's own token as actor_token, and a narrower scope.
    const own = (await clientCredentials(as, agentA.id, oauth.ClientSecretBasic(agentA.secret))).access_token;
    const res2 = await oauth.genericTokenEndpointRequest(as, client, oauth.ClientSecretPost(agentA.secret), TOKEN_EXCHANGE,
      { subject_token: userToken, subject_token_type: JWT_TOKEN_TYPE, actor_token: own, actor_token_type: ACCESS_TOKEN_TYPE,
        scope: 'llm:chat' }, opts());
    const t2 = await oauth.processGenericTokenEndpointResponse(as, client, res2);
    assert.equal(t2.scope, 'llm:chat');
    assert.deepEqual(splitJwt(t2.access_token).payload.act, { sub: agentA.id });

    // Scope beyond what both hold: invalid_scope.
    for (const scope of ['llm:chat tools:write', 'llm:embed']) {
      const bad = await oauthFailure(async () => {
        const rr = await oauth.genericTokenEndpointRequest(as, client, oauth.ClientSecretBasic(agentA.secret), TOKEN_EXCHANGE,
          { subject_token: userToken, subject_token_type: JWT_TOKEN_TYPE, scope }, opts());
        return oauth.processGenericTokenEndpointResponse(as, client, rr);
      });
      assert.equal(bad.status, 400, scope);
      assert.equal(bad.error, 'invalid_scope', scope);
    }
    // A subject token from an untrusted issuer, or expired: invalid_grant.
    for (const [why, st] of [['wrong aud', await idp.sign({ aud: 'x' })],
      ['expired', await idp.sign({ iat: nowS() - 7200, nbf: nowS() - 7200, exp: nowS() - 3600 })]]) {
      const bad = await oauthFailure(async () => {
        const rr = await oauth.genericTokenEndpointRequest(as, client, oauth.ClientSecretBasic(agentA.secret), TOKEN_EXCHANGE,
          { subject_token: st, subject_token_type: JWT_TOKEN_TYPE }, opts());
        return oauth.processGenericTokenEndpointResponse(as, client, rr);
      });
      assert.equal(bad.status, 400, why);
      assert.equal(bad.error, 'invalid_grant', why);
    }
  });

  test('introspection (RFC 7662) and revocation (RFC 7009)', async () => {
    const client = { client_id: agentA.id };
    const auth = oauth.ClientSecretBasic(agentA.secret);
    const t = (await clientCredentials(as, agentA.id, auth, { scope: 'llm:chat' })).access_token;
    const jti = splitJwt(t).payload.jti;
    const intro = async (token, a = auth) => oauth.processIntrospectionResponse(as, client,
      await oauth.introspectionRequest(as, client, a, token, opts()));

    const live = await intro(t);
    assert.equal(live.active, true);
    assert.equal(live.sub, agentA.id);
    assert.equal(live.client_id, agentA.id);
    assert.equal(live.scope, 'llm:chat');
    assert.equal(live.jti, jti);
    assert.equal(live.iss, gw.issuer);
    assert.ok(live.exp > nowS());
    // client_secret_post works for introspection too; an API key introspects.
    const viaPost = await intro(t, oauth.ClientSecretPost(agentA.secret));
    assert.equal(viaPost.active, true);
    const k = await newApiKey(gw, agentA.id);
    const kIntro = await intro(k.api_key);
    assert.equal(kIntro.active, true);
    assert.equal(kIntro.sub, agentA.id);
    // Garbage is just inactive.
    assert.deepEqual(await intro('garbage'), { active: false });

    // Without client authentication: 401 invalid_client.
    const anon = await rawPost(as.introspection_endpoint, new URLSearchParams({ token: t }).toString(),
      { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(anon.status, 401, anon.text);
    assert.equal(anon.json.error, 'invalid_client');
    assert.ok(anon.headers.get('www-authenticate'), 'a challenge on the 401');
    const badSecret = await rawPost(as.introspection_endpoint, new URLSearchParams({ token: t }).toString(),
      { 'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${agentA.id}:wrong`).toString('base64')}` });
    assert.equal(badSecret.status, 401);
    assert.equal(badSecret.json.error, 'invalid_client');

    // Revoke (by the client it was issued to): refused at once, inactive.
    assert.equal((await chat(gw, bearer(t))).status, 200, 'works (and is cached) before revocation');
    const other = await newAgent(gw, { id: 'agent-other', name: 'Other', scopes: ['llm:chat'] });
    const notMine = await rawPost(as.revocation_endpoint, new URLSearchParams({ token: t }).toString(),
      { 'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${other.id}:${other.secret}`).toString('base64')}` });
    assert.equal(notMine.status, 403, `another client cannot revoke it: ${notMine.text}`);
    assert.equal((await chat(gw, bearer(t))).status, 200);

    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, t, opts()));
    assert401(await chat(gw, bearer(t)), { why: 'revoked jti' });
    assert.deepEqual(await intro(t), { active: false });
    // Revoking twice, or an unknown token, is fine (RFC 7009 §2.2).
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, t, opts()));
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, 'not-a-token', opts()));
    // Revoking an API key through the OAuth endpoint.
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, k.api_key, opts()));
    assert401(await chat(gw, bearer(k.api_key)), { why: 'API key revoked via /oauth2/revoke' });
    assert.deepEqual(await intro(k.api_key), { active: false });
  });

  test('suspend and reactivate: the same token is refused, then accepted again', async () => {
    const s = await newAgent(gw, { id: 'agent-susp', name: 'Suspendable', scopes: ['llm:chat'] });
    const t = (await clientCredentials(as, s.id, oauth.ClientSecretBasic(s.secret))).access_token;
    const k = await newApiKey(gw, s.id);
    assert.equal((await chat(gw, bearer(t))).status, 200);
    assert.equal((await chat(gw, bearer(k.api_key))).status, 200);

    const sp = await gw.admin('POST', `/admin/v1/agents/${s.id}:suspend`, {});
    assert.equal(sp.status, 200, sp.text);
    assert.equal(sp.json.status, 'suspended');
    assert401(await chat(gw, bearer(t)), { why: 'token of a suspended agent' });
    assert401(await chat(gw, bearer(k.api_key)), { why: 'API key of a suspended agent' });
    const tok = await oauthFailure(() => clientCredentials(as, s.id, oauth.ClientSecretBasic(s.secret)));
    assert.equal(tok.status, 401);
    assert.equal(tok.error, 'invalid_client');

    const re = await gw.admin('POST', `/admin/v1/agents/${s.id}:reactivate`, {});
    assert.equal(re.status, 200, re.text);
    assert.equal(re.json.status, 'active');
    assert.equal((await chat(gw, bearer(t))).status, 200, 'the same token works again');
    assert.equal((await chat(gw, bearer(k.api_key))).status, 200);
  });

  test('decommission: token, API key and client secret all stop working for good', async () => {
    const d = await newAgent(gw, { id: 'agent-gone', name: 'Doomed', scopes: ['llm:chat'] });
    const t = (await clientCredentials(as, d.id, oauth.ClientSecretBasic(d.secret))).access_token;
    const k = await newApiKey(gw, d.id);
    assert.equal((await chat(gw, bearer(t))).status, 200);
    const an = anthropicClient(gw, { apiKey: k.api_key });
    await an.messages.create({ model: 'claude-echo', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });

    const dc = await gw.admin('POST', `/admin/v1/agents/${d.id}:decommission`, {});
    assert.equal(dc.status, 200, dc.text);
    assert.equal(dc.json.status, 'decommissioned');
    assert401(await chat(gw, bearer(t)), { why: 'token of a decommissioned agent' });
    assert401(await chat(gw, bearer(k.api_key)), { why: 'API key of a decommissioned agent' });
    const a = await rawPost(`${gw.proxyUrl}/v1/messages`,
      JSON.stringify({ model: 'claude-echo', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), { 'x-api-key': k.api_key });
    assert401(a, { protocol: 'anthropic', why: 'x-api-key of a decommissioned agent' });
    const tok = await oauthFailure(() => clientCredentials(as, d.id, oauth.ClientSecretBasic(d.secret)));
    assert.equal(tok.status, 401);
    assert.equal(tok.error, 'invalid_client');
    // Final: no reactivation (409 conflict on the admin API).
    const re = await gw.admin('POST', `/admin/v1/agents/${d.id}:reactivate`, {});
    assert.equal(re.status, 409, re.text);
    assert401(await chat(gw, bearer(t)), { why: 'still refused' });
  });

  test('signing key rotation: old tokens keep verifying and authenticating', async () => {
    const auth = oauth.ClientSecretBasic(agentA.secret);
    const a = (await clientCredentials(as, agentA.id, auth)).access_token;
    const kidA = splitJwt(a).header.kid;
    await jose.jwtVerify(a, jose.createRemoteJWKSet(jwksUri), { issuer: gw.issuer, audience: 'aigis', typ: 'at+jwt' });
    const before = await gw.admin('GET', '/admin/v1/signing-keys');
    assert.equal(before.status, 200, before.text);
    assert.ok(before.json.kids.includes(kidA));

    const rot = await gw.admin('POST', '/admin/v1/signing-keys:rotate', {});
    assert.equal(rot.status, 200, rot.text);
    const b = (await clientCredentials(as, agentA.id, auth)).access_token;
    const kidB = splitJwt(b).header.kid;
    assert.notEqual(kidB, kidA, 'a new kid signs after the rotation');
    assert.equal(rot.json.kids[0], kidB, 'the active kid comes first');

    const jwks = await (await fetch(jwksUri, { signal: AbortSignal.timeout(5000) })).json();
    const kids = jwks.keys.map((k) => k.kid);
    assert.ok(kids.includes(kidA) && kids.includes(kidB), `JWKS kids: ${kids}`);

    const fresh = jose.createRemoteJWKSet(jwksUri);
    for (const t of [a, b]) {
      await jose.jwtVerify(t, fresh, { issuer: gw.issuer, audience: 'aigis', typ: 'at+jwt' });
      assert.equal((await chat(gw, bearer(t))).status, 200);
    }
    // Introspection sees both as active.
    const client = { client_id: agentA.id };
    for (const t of [a, b]) {
      const i = await oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, auth, t, opts()));
      assert.equal(i.active, true);
    }
  });

  test('anonymous route: admitted without credentials, spoofed identity headers still stripped', async () => {
    const r = await chat(gw, { 'x-aigis-principal': 'forged', 'x-forwarded-user': 'admin', 'x-aigis-tenant': 'acme' }, 'anon-1');
    assert.equal(r.status, 200, r.text);
    const rec = up.last();
    assert.equal(rec.json.model, 'anon-1');
    assert.equal(rec.headers['x-aigis-principal'], undefined, 'no principal for an anonymous caller, and not the forged one');
    assert.equal(rec.headers['x-forwarded-user'], undefined);
    assert.equal(rec.headers['x-aigis-tenant'], undefined);
    // Credentials on an anonymous route are still checked: bad ones are refused...
    assert401(await chat(gw, bearer(CLIENT_KEY), 'anon-2'), { why: 'bad credentials on an anonymous route' });
    // ...and good ones identify the caller to the upstream.
    const ok = await chat(gw, bearer(gw.apiKey), 'anon-3');
    assert.equal(ok.status, 200, ok.text);
    const { payload } = await jose.jwtVerify(up.last().headers['x-aigis-principal'], jose.createRemoteJWKSet(jwksUri),
      { issuer: gw.issuer, typ: 'aigis-principal+jwt' });
    assert.equal(payload.sub, E2E_AGENT);
    // /v1/models is anonymous only when every route is.
    const m = await fetch(`${gw.openaiBaseURL}/models`, { signal: AbortSignal.timeout(5000) });
    assert.equal(m.status, 401);
    await m.text();
  });

  test('identity headers in any case and repeated are stripped (raw HTTP/1.1)', async () => {
    const body = JSON.stringify({ model: 'up-principal-raw', messages: [{ role: 'user', content: 'raw' }] });
    const status = await new Promise((resolve, reject) => {
      const req = http.request(`${gw.proxyUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: [  // a raw list: Node adds no Host of its own then
          'Host', new URL(gw.proxyUrl).host,
          'Content-Type', 'application/json',
          'Content-Length', String(Buffer.byteLength(body)),
          'Authorization', `Bearer ${gw.apiKey}`,
          'X-AIGIS-PRINCIPAL', 'forged-1',
          'x-aigis-principal', 'forged-2',
          'X-Aigis-Act-As', 'root',
          'X-Forwarded-User', 'admin',
          'x-forwarded-user', 'admin2',
          'X-Auth-Request-Email', 'admin@example.test',
          'X-Remote-User', 'admin',
        ],
        timeout: 10_000,
      }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end(body);
    });
    assert.equal(status, 200);
    const rec = up.last();
    assert.equal(rec.json.model, 'up-principal-raw');
    const got = [];
    for (let i = 0; i < rec.rawHeaders.length; i += 2) got.push([rec.rawHeaders[i].toLowerCase(), rec.rawHeaders[i + 1]]);
    const principals = got.filter(([n]) => n === 'x-aigis-principal').map(([, v]) => v);
    assert.equal(principals.length, 1, `X-Aigis-Principal values: ${JSON.stringify(principals)}`);
    assert.ok(!principals[0].startsWith('forged'));
    for (const n of ['x-aigis-act-as', 'x-forwarded-user', 'x-auth-request-email', 'x-remote-user']) {
      assert.ok(!got.some(([m]) => m === n), `${n} reached the upstream`);
    }
  });

  test('delegation chains: depth limit, and every actor must stay active', async () => {
    const agents = [agentA];
    for (const id of ['agent-d1', 'agent-d2', 'agent-d3']) {
      agents.push(await newAgent(gw, { id, name: id, scopes: ['llm:chat', 'tools:read'] }));
    }
    const exchange = async (agent, subjectToken, type) => {
      const client = { client_id: agent.id };
      const rr = await oauth.genericTokenEndpointRequest(as, client, oauth.ClientSecretBasic(agent.secret), TOKEN_EXCHANGE,
        { subject_token: subjectToken, subject_token_type: type }, opts());
      return oauth.processGenericTokenEndpointResponse(as, client, rr);
    };
    const t1 = (await exchange(agents[0], await idp.sign(), JWT_TOKEN_TYPE)).access_token;
    const t2 = (await exchange(agents[1], t1, ACCESS_TOKEN_TYPE)).access_token;
    const t3 = (await exchange(agents[2], t2, ACCESS_TOKEN_TYPE)).access_token;
    const p3 = splitJwt(t3).payload;
    assert.equal(p3.sub, 'user-1');
    assert.deepEqual(p3.act, { sub: 'agent-d2', act: { sub: 'agent-d1', act: { sub: agentA.id } } });
    assert.equal((await chat(gw, bearer(t3))).status, 200);
    // A fourth hop exceeds max_delegation_depth (3).
    const deep = await oauthFailure(() => exchange(agents[3], t3, ACCESS_TOKEN_TYPE));
    assert.equal(deep.status, 400);
    assert.equal(deep.error, 'invalid_request');
    // An agent cannot act for its own token.
    const own = (await clientCredentials(as, agents[1].id, oauth.ClientSecretBasic(agents[1].secret))).access_token;
    const self = await oauthFailure(() => exchange(agents[1], own, ACCESS_TOKEN_TYPE));
    assert.equal(self.status, 400);
    assert.equal(self.error, 'invalid_grant');

    // Suspending an actor deep in the chain stops the delegated token.
    const sp = await gw.admin('POST', `/admin/v1/agents/${agentA.id}:suspend`, {});
    assert.equal(sp.status, 200, sp.text);
    try {
      assert401(await chat(gw, bearer(t3)), { why: 'delegated token whose first actor is suspended' });
      assert401(await chat(gw, bearer(t1)), { why: 'delegated token whose client is suspended' });
      const ex = await oauthFailure(() => exchange(agents[2], t2, ACCESS_TOKEN_TYPE));
      assert.equal(ex.status, 400, 'exchanging a token whose actor is suspended');
      assert.equal(ex.error, 'invalid_grant');
    } finally {
      const re = await gw.admin('POST', `/admin/v1/agents/${agentA.id}:reactivate`, {});
      assert.equal(re.status, 200, re.text);
    }
    assert.equal((await chat(gw, bearer(t3))).status, 200, 'works again once reactivated');
  });

  test('tenants: agents, tokens and introspection stay inside their tenant', async () => {
    const t = { 'x-aigis-tenant': 'acme' };
    const a = await gw.admin('POST', '/admin/v1/agents', { id: 'acme-agent', name: 'Acme', scopes: ['llm:chat'] }, { headers: t });
    assert.equal(a.status, 201, a.text);
    assert.equal(a.json.tenant, 'acme');
    assert.equal((await gw.admin('GET', '/admin/v1/agents/acme-agent')).status, 404, 'not visible from the default tenant');
    const s = await gw.admin('POST', '/admin/v1/agents/acme-agent/credentials', {}, { headers: t });
    assert.equal(s.status, 201, s.text);
    const tok = (await clientCredentials(as, 'acme-agent', oauth.ClientSecretBasic(s.json.client_secret))).access_token;
    const claims = splitJwt(tok).payload;
    assert.equal(claims.tenant, 'acme');
    assert.equal(claims.sub, 'acme-agent');
    assert.equal((await chat(gw, bearer(tok))).status, 200);
    // A default-tenant client introspecting an acme token: inactive.
    const client = { client_id: agentA.id };
    const i = await oauth.processIntrospectionResponse(as, client,
      await oauth.introspectionRequest(as, client, oauth.ClientSecretBasic(agentA.secret), tok, opts()));
    assert.deepEqual(i, { active: false });
    // A default-tenant agent cannot revoke it.
    const rv = await rawPost(as.revocation_endpoint, new URLSearchParams({ token: tok }).toString(),
      { 'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${agentA.id}:${agentA.secret}`).toString('base64')}` });
    assert.equal(rv.status, 403, rv.text);
    assert.equal((await chat(gw, bearer(tok))).status, 200);
    // Suspending "acme-agent" in the default tenant does nothing to acme's.
    assert.equal((await gw.admin('POST', '/admin/v1/agents/acme-agent:suspend', {})).status, 404);
    assert.equal((await chat(gw, bearer(tok))).status, 200);
  });

  test('client secret rotation: the old secret lasts the grace period only', async () => {
    const r = await newAgent(gw, { id: 'agent-rot', name: 'Rotating', scopes: ['llm:chat'] });
    const rot = await gw.admin('POST', `/admin/v1/agents/${r.id}/credentials/${r.credentialId}:rotate`, { grace: 0 });
    assert.equal(rot.status, 201, rot.text);
    assert.equal(rot.json.replaces, r.credentialId);
    assert.notEqual(rot.json.client_secret, r.secret);
    const old = await oauthFailure(() => clientCredentials(as, r.id, oauth.ClientSecretBasic(r.secret)));
    assert.equal(old.status, 401, 'grace 0: the old secret is refused at once');
    assert.equal(old.error, 'invalid_client');
    assert.ok((await clientCredentials(as, r.id, oauth.ClientSecretBasic(rot.json.client_secret))).access_token);
    // With a grace period both work.
    const rot2 = await gw.admin('POST', `/admin/v1/agents/${r.id}/credentials/${rot.json.credential_id}:rotate`, { grace: 3600 });
    assert.equal(rot2.status, 201, rot2.text);
    assert.ok((await clientCredentials(as, r.id, oauth.ClientSecretBasic(rot.json.client_secret))).access_token);
    assert.ok((await clientCredentials(as, r.id, oauth.ClientSecretBasic(rot2.json.client_secret))).access_token);
    const list = await gw.admin('GET', `/admin/v1/agents/${r.id}/credentials`);
    const old2 = list.json.credentials.find((c) => c.credential_id === rot.json.credential_id);
    assert.equal(old2.replaced_by, rot2.json.credential_id);
    assert.ok(old2.expires_at, 'the replaced secret has an expiry');
  });

  test('admin API: authentication and agent list paging', async () => {
    const none = await gw.admin('GET', '/admin/v1/agents', undefined, { token: null });
    assert.equal(none.status, 401, none.text);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer realm="aigis-admin"/);
    const wrong = await gw.admin('GET', '/admin/v1/agents', undefined, { token: `${gw.adminToken}x` });
    assert.equal(wrong.status, 401);
    // Neither an agent's API key nor an aigis access token is an admin token.
    assert.equal((await gw.admin('GET', '/admin/v1/agents', undefined, { token: gw.apiKey })).status, 401);
    const at = (await clientCredentials(as, agentA.id, oauth.ClientSecretBasic(agentA.secret))).access_token;
    assert.equal((await gw.admin('POST', '/admin/v1/agents', { name: 'sneaky' }, { token: at })).status, 401);
    // The admin API is on the admin listener only.
    const onProxy = await fetch(`${gw.proxyUrl}/admin/v1/agents`, { headers: bearer(gw.adminToken), signal: AbortSignal.timeout(5000) });
    assert.notEqual(onProxy.status, 200, 'admin API must not be served on the proxy listener');
    await onProxy.text();

    const created = [];
    for (let i = 0; i < 5; i++) {
      const a = await newAgent(gw, { id: `pager-${i}`, name: `Pager ${i}`, owner: 'pager-owner', scopes: ['llm:chat'] },
        { secret: false });
      created.push(a.id);
    }
    const seen = [];
    const sizes = [];
    let token = '';
    for (let page = 0; page < 10; page++) {
      const q = new URLSearchParams({ owner: 'pager-owner', page_size: '2' });
      if (token) q.set('page_token', token);
      const r = await gw.admin('GET', `/admin/v1/agents?${q}`);
      assert.equal(r.status, 200, r.text);
      sizes.push(r.json.agents.length);
      for (const a of r.json.agents) {
        assert.equal(a.owner, 'pager-owner');
        assert.equal(a.status, 'active');
        seen.push(a.id);
      }
      token = r.json.next_page_token ?? '';
      if (!token) break;
    }
    assert.deepEqual(sizes, [2, 2, 1]);
    assert.deepEqual([...seen].sort(), [...created].sort(), 'every agent exactly once');
    const all = await gw.admin('GET', '/admin/v1/agents?page_size=500');
    assert.ok(all.json.agents.some((a) => a.id === E2E_AGENT), 'the bootstrap agent is listed');
    const bad = await gw.admin('GET', '/admin/v1/agents?page_size=0');
    assert.equal(bad.status, 400);
    // Secrets never appear in listings.
    const creds = await gw.admin('GET', `/admin/v1/agents/${agentA.id}/credentials`);
    assert.equal(creds.status, 200);
    assert.ok(creds.json.credentials.length >= 1);
    assert.ok(!creds.text.includes(agentA.secret), 'a listing shows the secret');
    assert.equal(creds.headers.get('cache-control'), 'no-store');
  });
});

describe('identity: token expiry (token_ttl 10s, clock_skew 0s)', { timeout: 60_000 }, () => {
  let gw;
  before(async () => {
    gw = await startAigis((dir) => baseConfig(dir, `
upstreams:
  - name: echo
    provider: echo
routes:
  - name: default
    upstreams: [echo]
`, { identity: 'token_ttl: 10s\nclock_skew: 0s' }));
  });
  after(async () => {
    if (gw) await gw.stop();
  });

  test('an aigis token is refused once it has expired', async () => {
    const as = await discover(gw);
    const s = await gw.admin('POST', `/admin/v1/agents/${E2E_AGENT}/credentials`, {});
    assert.equal(s.status, 201, s.text);
    const t = await clientCredentials(as, E2E_AGENT, oauth.ClientSecretBasic(s.json.client_secret));
    assert.equal(t.expires_in, 10);
    const { payload } = splitJwt(t.access_token);
    assert.equal(payload.exp - payload.iat, 10);
    assert.equal((await chat(gw, bearer(t.access_token))).status, 200, 'valid (and cached) at first');
    const waitMs = payload.exp * 1000 - Date.now() + 1200;
    assert.ok(waitMs < 13_000, `wait ${waitMs} ms`);
    await sleep(Math.max(0, waitMs));
    const r = await chat(gw, bearer(t.access_token));
    assert401(r, { why: 'expired token' });
    assert.match(r.headers.get('www-authenticate'), /expired/);
    // A fresh one works.
    const t2 = await clientCredentials(as, E2E_AGENT, oauth.ClientSecretBasic(s.json.client_secret));
    assert.equal((await chat(gw, bearer(t2.access_token))).status, 200);
  });
});

describe('identity: aigis refuses to start without its secrets', { timeout: 60_000 }, () => {
  const cfg = (dir) => baseConfig(dir, `
upstreams:
  - name: echo
    provider: echo
routes:
  - name: default
    upstreams: [echo]
`, { identity: false });

  test('no master key (no identity.master_key, AIGIS_MASTER_KEY unset)', async () => {
    const r = await runAigisExpectingExit(cfg, { env: { AIGIS_MASTER_KEY: undefined } });
    assert.equal(r.timedOut, false, `aigis kept running:\n${r.stderr}`);
    assert.notEqual(r.code, 0, `exit code ${r.code}\n${r.stderr}`);
    assert.equal(r.portsWritten, false, 'no ports file: it never served');
    assert.match(r.stderr, /identity\.master_key/, `stderr names identity.master_key:\n${r.stderr}`);
  });

  test('a placeholder or too-short master key', async () => {
    for (const key of ['changeme', Buffer.alloc(32, 7).toString('base64'), crypto.randomBytes(16).toString('base64')]) {
      const r = await runAigisExpectingExit(cfg, { env: { AIGIS_MASTER_KEY: key } });
      assert.equal(r.timedOut, false, `aigis kept running with master key ${key}:\n${r.stderr}`);
      assert.notEqual(r.code, 0, `master key ${key}: exit code ${r.code}\n${r.stderr}`);
      assert.ok(!r.stderr.includes(key) || key === 'changeme', 'the master key is not echoed');
    }
  });

  test('AIGIS_ADMIN_TOKEN shorter than 32 characters', async () => {
    const r = await runAigisExpectingExit((dir) => baseConfig(dir, `
upstreams:
  - name: echo
    provider: echo
routes:
  - name: default
    upstreams: [echo]
`), { env: { AIGIS_ADMIN_TOKEN: 'short-admin-token-31-characters' } });
    assert.equal('short-admin-token-31-characters'.length, 31);
    assert.equal(r.timedOut, false, `aigis kept running:\n${r.stderr}`);
    assert.notEqual(r.code, 0, `exit code ${r.code}\n${r.stderr}`);
    assert.equal(r.portsWritten, false);
    assert.match(r.stderr, /admin token|AIGIS_ADMIN_TOKEN/i, r.stderr);
    assert.ok(!r.stderr.includes('short-admin-token-31-characters'), 'the token is not echoed');
  });

  test('restart: keys persist under the same master key; another master key cannot unseal them', async () => {
    const shared = await fsp.mkdtemp(path.join(os.tmpdir(), 'aigis-e2e-shared-'));
    const withShared = (dir) => baseConfig(dir, `
upstreams:
  - name: echo
    provider: echo
routes:
  - name: default
    upstreams: [echo]
`).replace(/^data_dir: .*$/m, `data_dir: ${JSON.stringify(shared)}`);
    const masterKey = crypto.randomBytes(32).toString('base64');
    try {
      const gw1 = await startAigis(withShared, { env: { AIGIS_MASTER_KEY: masterKey } });
      let token;
      let secret;
      try {
        const s = await gw1.admin('POST', `/admin/v1/agents/${E2E_AGENT}/credentials`, {});
        assert.equal(s.status, 201, s.text);
        secret = s.json.client_secret;
        const as1 = await discover(gw1);
        token = (await clientCredentials(as1, E2E_AGENT, oauth.ClientSecretBasic(secret))).access_token;
        assert.equal((await chat(gw1, bearer(gw1.apiKey))).status, 200);
        await gw1.stop();
      } finally {
        await gw1.dispose();
      }
      // The issuer is the proxy address, which changes with the port: so the
      // old token's iss differs. What must survive is the signing key (same
      // kid published), the agent and its secret.
      const gw2 = await startAigis(withShared, { env: { AIGIS_MASTER_KEY: masterKey } });
      try {
        const jwks = await (await fetch(`${gw2.issuer}/.well-known/jwks.json`, { signal: AbortSignal.timeout(5000) })).json();
        assert.ok(jwks.keys.some((k) => k.kid === splitJwt(token).header.kid), 'the signing key survived the restart');
        const as2 = await discover(gw2);
        const t2 = (await clientCredentials(as2, E2E_AGENT, oauth.ClientSecretBasic(secret))).access_token;
        assert.equal(splitJwt(t2).header.kid, splitJwt(token).header.kid);
        assert.equal((await chat(gw2, bearer(t2))).status, 200);
        await gw2.stop();
      } finally {
        await gw2.dispose();
      }
      const other = await runAigisExpectingExit(withShared, { env: { AIGIS_MASTER_KEY: crypto.randomBytes(32).toString('base64') } });
      assert.equal(other.timedOut, false, `aigis kept running with another master key:\n${other.stderr}`);
      assert.notEqual(other.code, 0, `another master key: exit code ${other.code}\n${other.stderr}`);
      assert.equal(other.portsWritten, false);
    } finally {
      await fsp.rm(shared, { recursive: true, force: true });
    }
  });

  test('without AIGIS_ADMIN_TOKEN a token is generated into <data_dir>/admin.token (0600)', async () => {
    const gw = await startAigis((dir) => baseConfig(dir, `
upstreams:
  - name: echo
    provider: echo
routes:
  - name: default
    upstreams: [echo]
`), { env: { AIGIS_ADMIN_TOKEN: undefined } });
    try {
      const file = path.join(gw.dir, 'data', 'admin.token');
      const st = await fsp.stat(file);
      assert.equal(st.mode & 0o777, 0o600, `mode ${(st.mode & 0o777).toString(8)}`);
      assert.ok(gw.adminToken && gw.adminToken.length >= 32, 'a generated token of >= 32 characters');
      assert.ok(!gw.stderr.includes(gw.adminToken), 'the generated admin token is not logged');
      const r = await gw.admin('GET', '/admin/v1/agents');
      assert.equal(r.status, 200, r.text);
      await gw.stop();
    } finally {
      await gw.dispose();
    }
  });

  test('identity.master_key from the config file works without the env var', async () => {
    const key = crypto.randomBytes(32).toString('base64');
    const gw = await startAigis((dir) => `${cfg(dir)}
identity:
  master_key: ${key}
`, { env: { AIGIS_MASTER_KEY: undefined } });
    try {
      // No bootstrap agent: create one through the admin API and use it.
      assert.equal(gw.apiKey, null);
      const a = await gw.admin('POST', '/admin/v1/agents', { id: 'cfg-agent', name: 'cfg', scopes: ['llm:chat'] });
      assert.equal(a.status, 201, a.text);
      const k = await newApiKey(gw, 'cfg-agent');
      const r = await chat(gw, bearer(k.api_key));
      assert.equal(r.status, 200, r.text);
      assert.ok(!gw.stderr.includes(key), 'the master key is not logged');
      await gw.stop();
    } finally {
      await gw.dispose();
    }
  });
});
