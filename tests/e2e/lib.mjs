// Helpers for the aigis end-to-end tests: run the real binary on a config in
// a fresh temp dir, a controllable fake upstream LLM, and a /metrics reader.
//
// Every wait here is bounded in time; servers bind 127.0.0.1 only.
import { spawn, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import Anthropic from '@anthropic-ai/sdk';
import * as jose from 'jose';
import OpenAI from 'openai';

export const AIGIS_BIN = process.env.AIGIS_BIN || new URL('../../build-asan/aigis', import.meta.url).pathname;

// Keys the tests configure: the client must never see them, the upstream must.
export const UPSTREAM_OPENAI_KEY = 'sk-upstream-openai-0123456789';
export const UPSTREAM_ANTHROPIC_KEY = 'sk-ant-upstream-0123456789';
// A credential aigis does not know: a request carrying it is refused (401).
export const CLIENT_KEY = 'sk-client-must-not-leak';

// The agent every test config bootstraps (identity.bootstrap_agent): its API
// key is written into the temp dir, and startAigis exposes it as gw.apiKey.
export const E2E_AGENT = 'e2e-agent';
export const E2E_AGENT_SCOPES = ['llm:chat', 'llm:embed', 'llm:models', 'tools:read'];
export const API_KEY_FILE = 'e2e-agent.key';

// Fresh secrets for one aigis run: a master key (base64 of 32 random bytes)
// and an admin token (>= 32 characters).
export function randomMasterKey() {
  return crypto.randomBytes(32).toString('base64');
}
export function randomAdminToken() {
  return crypto.randomBytes(32).toString('base64url');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves with `promise`'s value, or with null after ms (the timer does not
// keep the process alive).
export async function within(promise, ms) {
  let t;
  const timer = new Promise((r) => { t = setTimeout(() => r(null), ms); t.unref?.(); });
  try {
    return await Promise.race([promise, timer]);
  } finally {
    clearTimeout(t);
  }
}

// Polls fn() (sync or async) until it returns a truthy value or timeoutMs
// passes; returns the last value (falsy on timeout).
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 50 } = {}) {
  const until = Date.now() + timeoutMs;
  let v;
  for (let i = 0; i < 10_000; i++) {
    v = await fn();
    if (v) return v;
    if (Date.now() >= until) break;
    await sleep(intervalMs);
  }
  return v;
}

// Lines in sanitizer output that mean the run is not clean.
const SANITIZER_RE = /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:?/;
export function sanitizerLines(text) {
  return text.split('\n').filter((l) => SANITIZER_RE.test(l));
}

// Every aigis we start, so that a crashed test run does not leave one behind.
const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

// The common part of every test config: both listeners on free ports, no
// access log on stdout, data in the temp dir. `extra` is appended verbatim.
// `server` adds keys under server: (e.g. {max_body_bytes: '2KiB'}).
// `identity` adds YAML lines (unindented, e.g. 'token_ttl: 10s\nclock_skew: 0s')
// under the identity: section, which always carries the master key (from
// $AIGIS_MASTER_KEY) and the bootstrap agent; identity: false leaves the
// section out entirely (then `extra` may bring its own).
export function baseConfig(dir, extra = '', { threads = 2, watch = false, server = {}, identity = '' } = {}) {
  const serverLines = Object.entries({ threads, ...server }).map(([k, v]) => `  ${k}: ${v}`).join('\n');
  return `# written by tests/e2e
listeners:
  proxy:
    address: 127.0.0.1:0
  admin:
    address: 127.0.0.1:0
data_dir: ${JSON.stringify(path.join(dir, 'data'))}
log:
  level: info
  access_log: ${JSON.stringify(path.join(dir, 'access.log'))}
reload:
  watch: ${watch}
server:
${serverLines}
${identity === false ? '' : identitySection(dir, identity)}
${extra}`;
}

// The identity: section of baseConfig. `more` is YAML text whose lines go
// under identity: (indented here).
export function identitySection(dir, more = '') {
  const extraLines = String(more || '').split('\n').filter((l) => l.trim() !== '').map((l) => `  ${l}`).join('\n');
  return `identity:
  master_key: \${env:AIGIS_MASTER_KEY}
  bootstrap_agent:
    id: ${E2E_AGENT}
    name: e2e test agent
    scopes: [${E2E_AGENT_SCOPES.join(', ')}]
    api_key_file: ${JSON.stringify(path.join(dir, API_KEY_FILE))}
${extraLines}
`;
}

export async function makeTempDir() {
  return fsp.mkdtemp(path.join(os.tmpdir(), 'aigis-e2e-'));
}

// The environment aigis runs with: ours, plus a fresh AIGIS_MASTER_KEY and
// AIGIS_ADMIN_TOKEN unless `env` sets them; a key set to undefined in `env`
// is removed.
function aigisEnv(env) {
  const out = {
    ...process.env,
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1:halt_on_error=1',
    AIGIS_MASTER_KEY: randomMasterKey(),
    AIGIS_ADMIN_TOKEN: randomAdminToken(),
    ...env,
  };
  for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
  return out;
}

// Runs aigis on a config that must make it refuse to start: resolves with
// {code, signal, stderr, stdout} once it exits (SIGKILL after timeoutMs, then
// code is null and timedOut true).
export async function runAigisExpectingExit(config, { timeoutMs = 15_000, env = {} } = {}) {
  const dir = await makeTempDir();
  try {
    const configPath = path.join(dir, 'aigis.yaml');
    await fsp.writeFile(configPath, typeof config === 'function' ? config(dir) : config);
    const proc = spawn(AIGIS_BIN, ['serve', '--config', configPath, '--ports-file', path.join(dir, 'ports.json')], {
      cwd: dir, env: aigisEnv(env), stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(proc);
    let stderr = '';
    let stdout = '';
    proc.stderr.setEncoding('utf8');
    proc.stdout.setEncoding('utf8');
    proc.stderr.on('data', (d) => { stderr += d; });
    proc.stdout.on('data', (d) => { stdout += d; });
    const exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => { live.delete(proc); resolve({ code, signal }); });
      proc.on('error', (err) => { live.delete(proc); resolve({ code: -1, signal: null, error: err }); });
    });
    let e = await within(exited, timeoutMs);
    let timedOut = false;
    if (!e) {
      timedOut = true;
      proc.kill('SIGKILL');
      e = (await within(exited, 5000)) ?? { code: null, signal: 'SIGKILL' };
    }
    // Let the pipes drain.
    await sleep(50);
    return { ...e, timedOut, stderr, stdout, portsWritten: fs.existsSync(path.join(dir, 'ports.json')) };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

// Starts aigis. `config` is the YAML text, or a function (dir) => text.
// Resolves once the ports file exists; rejects (with aigis' stderr) if it
// does not appear within timeoutMs or aigis exits first.
// `env` adds to (or, with undefined values, removes from) the environment;
// AIGIS_MASTER_KEY and AIGIS_ADMIN_TOKEN are fresh random values unless set
// there. The gateway object carries:
//   apiKey      the bootstrap agent's API key (null if the config has none)
//   adminToken  the admin bearer token (env, or <data_dir>/admin.token)
//   masterKey   the master key the run used (env)
//   issuer      http://127.0.0.1:<proxy port>, the default OAuth issuer
export async function startAigis(config, { timeoutMs = 20_000, env = {} } = {}) {
  if (!fs.existsSync(AIGIS_BIN)) {
    throw new Error(`aigis binary not found at ${AIGIS_BIN} (set AIGIS_BIN)`);
  }
  const dir = await makeTempDir();
  const configPath = path.join(dir, 'aigis.yaml');
  const portsPath = path.join(dir, 'ports.json');
  const text = typeof config === 'function' ? config(dir) : config;
  await fsp.writeFile(configPath, text);

  const runEnv = aigisEnv(env);
  const proc = spawn(AIGIS_BIN, ['serve', '--config', configPath, '--ports-file', portsPath], {
    cwd: dir,
    env: runEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  let stderr = '';
  let stdout = '';
  proc.stderr.setEncoding('utf8');
  proc.stdout.setEncoding('utf8');
  proc.stderr.on('data', (d) => { stderr += d; });
  proc.stdout.on('data', (d) => { stdout += d; });
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    });
    // Spawn failures (EACCES while the binary is being relinked, ...).
    proc.on('error', (err) => {
      live.delete(proc);
      stderr += `\n[spawn error] ${err.message}\n`;
      resolve({ code: -1, signal: null, error: err });
    });
  });
  let exitInfo = null;
  exited.then((e) => { exitInfo = e; });

  let ports = null;
  const until = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < until && !exitInfo; i++) {
    try {
      ports = JSON.parse(await fsp.readFile(portsPath, 'utf8'));
      break;
    } catch {
      await sleep(25);
    }
  }
  if (!ports) {
    if (!exitInfo) {
      proc.kill('SIGKILL');
      await within(exited, 5000);
    }
    await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    throw new Error(
      `aigis did not write ${portsPath} within ${timeoutMs} ms` +
        (exitInfo ? ` (exited code=${exitInfo.code} signal=${exitInfo.signal})` : '') +
        `\n--- config ---\n${text}\n--- aigis stderr ---\n${stderr}`,
    );
  }

  // The bootstrap agent's API key (written before the ports file) and the
  // admin token (env, else the file aigis generated).
  const apiKey = (await fsp.readFile(path.join(dir, API_KEY_FILE), 'utf8').catch(() => '')).trim() || null;
  let adminToken = runEnv.AIGIS_ADMIN_TOKEN?.trim() || null;
  if (!adminToken) {
    const m = /^data_dir:\s*(.+)$/m.exec(text);
    const dataDir = m ? JSON.parse(m[1]) : path.join(dir, 'data');
    adminToken = (await fsp.readFile(path.join(dataDir, 'admin.token'), 'utf8').catch(() => '')).trim() || null;
  }

  const gw = {
    dir,
    configPath,
    proc,
    pid: proc.pid,
    ports,
    apiKey,
    adminToken,
    masterKey: runEnv.AIGIS_MASTER_KEY ?? null,
    issuer: `http://127.0.0.1:${ports.proxy}`,
    proxyUrl: `http://127.0.0.1:${ports.proxy}`,
    adminUrl: `http://127.0.0.1:${ports.admin}`,
    get stderr() { return stderr; },
    get stdout() { return stdout; },
    get exitInfo() { return exitInfo; },
    exited,
    openaiBaseURL: `http://127.0.0.1:${ports.proxy}/v1`,
    anthropicBaseURL: `http://127.0.0.1:${ports.proxy}`,
    async writeConfig(newText) {
      // Write-then-rename so that a reload never reads a half-written file.
      const tmp = `${configPath}.tmp`;
      await fsp.writeFile(tmp, typeof newText === 'function' ? newText(dir) : newText);
      await fsp.rename(tmp, configPath);
    },
    signal(sig) {
      proc.kill(sig);
    },
    metrics() {
      return scrapeMetrics(gw.adminUrl);
    },
    // Headers that authenticate a data-plane call as the bootstrap agent.
    auth(extra = {}) {
      return { authorization: `Bearer ${gw.apiKey}`, ...extra };
    },
    // An admin REST call: {status, headers, text, json}. `body` (an object)
    // is sent as JSON; `token` overrides the admin token (null: none).
    async admin(method, p, body, { token = gw.adminToken, headers = {}, timeoutMs = 10_000 } = {}) {
      const h = { ...headers };
      if (token !== null) h.authorization = `Bearer ${token}`;
      if (body !== undefined) h['content-type'] = 'application/json';
      const r = await fetch(`${gw.adminUrl}${p}`, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const t = await r.text();
      let json = null;
      try { json = JSON.parse(t); } catch { /* not JSON */ }
      return { status: r.status, headers: r.headers, text: t, json };
    },
    async metric(name, labels = {}) {
      return metricValue(await gw.metrics(), name, labels);
    },
    // Waits (bounded) until pred(value of the metric) holds; returns the last
    // value seen.
    async waitMetric(name, labels, pred, timeoutMs = 3000) {
      let last;
      await waitFor(async () => {
        last = await gw.metric(name, labels);
        return pred(last);
      }, { timeoutMs, intervalMs: 50 });
      return last;
    },
    // Waits for exit (bounded) and asserts a clean run: exit code 0 and no
    // sanitizer report on stderr.
    async assertCleanExit(timeoutMs = 20_000) {
      const e = await within(exited, timeoutMs);
      if (!e) {
        proc.kill('SIGKILL');
        await within(exited, 5000);
        assert.fail(`aigis did not exit within ${timeoutMs} ms after SIGTERM\n--- stderr ---\n${stderr}`);
      }
      const bad = sanitizerLines(stderr);
      assert.deepEqual(bad, [], `sanitizer reported problems:\n${stderr}`);
      assert.equal(e.signal, null, `aigis was killed by ${e.signal}\n--- stderr ---\n${stderr}`);
      assert.equal(e.code, 0, `aigis exited with ${e.code}\n--- stderr ---\n${stderr}`);
    },
    // Kills aigis if still running (no assertions) and removes the temp dir.
    async dispose() {
      if (!exitInfo) {
        proc.kill('SIGKILL');
        await within(exited, 5000);
      }
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
    // SIGTERM, then assertCleanExit, then the audit check below. Safe to
    // call twice.
    async stop(timeoutMs = 20_000) {
      if (gw._stopped) return;
      gw._stopped = true;
      if (!exitInfo) proc.kill('SIGTERM');
      await gw.assertCleanExit(timeoutMs);
      await assertEveryExchangeAudited(text, dir);
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
  return gw;
}

// --------------------------------------------------------------- audit ----

// The records of an audit log directory (<data_dir>/audit), every tenant:
// the records file is frames of a 4-byte little-endian length and the
// record's JSON (docs/audit.md).
export function readAuditRecords(auditDir) {
  const out = [];
  if (!fs.existsSync(auditDir)) return out;
  for (const tenant of fs.readdirSync(auditDir)) {
    const file = path.join(auditDir, tenant, 'records');
    if (!fs.existsSync(file)) continue;
    const buf = fs.readFileSync(file);
    for (let at = 0; at + 4 <= buf.length;) {
      const len = buf.readUInt32LE(at);
      // A running gateway may be writing the last frame while we read.
      if (at + 4 + len > buf.length) break;
      out.push(JSON.parse(buf.subarray(at + 4, at + 4 + len).toString('utf8')));
      at += 4 + len;
    }
  }
  return out;
}

// After a clean stop: every exchange of the run (a line of the access log)
// has exactly one audit record, and the log verifies offline. Runs for
// every gateway a test stops (gw.stop), so the whole e2e suite checks it.
// Skipped when the run kept no access log file or no audit log, or used a
// data directory outside its own temp dir.
async function assertEveryExchangeAudited(configText, dir) {
  const m = /^data_dir:\s*(.+)$/m.exec(configText);
  const dataDir = m ? JSON.parse(m[1]) : path.join(dir, 'data');
  const auditDir = path.join(dataDir, 'audit');
  // A data directory shared across runs (the crash test) holds other runs' records.
  if (!path.resolve(dataDir).startsWith(path.resolve(dir) + path.sep)) return;
  const a = /^\s*access_log:\s*(".*")\s*$/m.exec(configText);
  if (!a || !fs.existsSync(auditDir)) return;
  const accessFile = JSON.parse(a[1]);
  if (!fs.existsSync(accessFile)) return;
  const count = (ids) => ids.reduce((m2, id) => m2.set(id, (m2.get(id) ?? 0) + 1), new Map());
  const access = count(fs.readFileSync(accessFile, 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l)).filter((e) => e.kind === 'access').map((e) => e.request_id));
  const audited = count(readAuditRecords(auditDir).filter((r) => r.kind === 'exchange').map((r) => r.request_id));
  const diff = [];
  for (const [id, n] of access) if ((audited.get(id) ?? 0) !== n) diff.push(`${id}: ${n} exchanges, ${audited.get(id) ?? 0} records`);
  for (const [id, n] of audited) if (!access.has(id)) diff.push(`${id}: ${n} records, no exchange`);
  assert.deepEqual(diff, [], 'every exchange has exactly one audit record');
  for (const tenant of fs.readdirSync(auditDir).filter((t) => fs.existsSync(path.join(auditDir, t, 'records')))) {
    const r = spawnSync(AIGIS_BIN, ['audit', 'verify', '--data-dir', dataDir, '--tenant', tenant], { encoding: 'utf8' });
    // A log with no checkpoint yet (a run shorter than the interval) has
    // nothing signed to verify against.
    if (/no checkpoint/.test(r.stdout)) continue;
    assert.equal(r.status, 0, `aigis audit verify (${tenant}): ${r.stdout}${r.stderr}`);
  }
}

// ------------------------------------------------------------- metrics ----

export async function scrapeMetrics(adminUrl) {
  const r = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(r.status, 200, 'GET /metrics');
  return r.text();
}

function parseLabels(s) {
  const out = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(s))) out[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  return out;
}

// Every sample of a metric: [{labels, value}].
export function metricSamples(text, name) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    out.push({ labels: m[3] ? parseLabels(m[3]) : {}, value: Number(m[4]) });
  }
  return out;
}

// The sum of the samples of `name` whose labels include all of `labels`;
// undefined when no sample matches.
export function metricValue(text, name, labels = {}) {
  let sum;
  for (const s of metricSamples(text, name)) {
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === String(v))) sum = (sum ?? 0) + s.value;
  }
  return sum;
}

// ------------------------------------------------------- fake upstream ----

// A port that refuses connections: bind a free one, then close it.
export async function closedPort() {
  const srv = net.createServer();
  await new Promise((res, rej) => srv.listen(0, '127.0.0.1', res).on('error', rej));
  const { port } = srv.address();
  await new Promise((res) => srv.close(res));
  return port;
}

// A fake LLM upstream the test controls. Every request is recorded as
// {method, url, headers, body, json, socketClosed, closedAt, received}.
// The test sets `up.handler = (req, res, rec) => ...` (default: 404); the
// answer helpers below build common handlers.
// keepAliveTimeoutMs: how long the upstream keeps an idle connection open.
// One 'close' listener per socket, however many requests a keep-alive
// connection carries (a listener per request trips Node's leak warning).
const socketCloseCallbacks = new WeakMap();
function onSocketClose(socket, fn) {
  let list = socketCloseCallbacks.get(socket);
  if (!list) {
    list = [];
    socketCloseCallbacks.set(socket, list);
    socket.once('close', () => { for (const f of list.splice(0)) f(); });
  }
  list.push(fn);
}

export async function startFakeUpstream({ keepAliveTimeoutMs = 30_000 } = {}) {
  const sockets = new Set();
  const timers = new Set();
  const requests = [];
  const waiters = [];
  const up = {
    requests,
    handler: null,
    port: 0,
    get url() { return `http://127.0.0.1:${up.port}`; },
    get v1() { return `http://127.0.0.1:${up.port}/v1`; },
    last() { return requests[requests.length - 1]; },
    // Resolves with the n-th request (1-based) once it has arrived.
    async nth(n, timeoutMs = 5000) {
      if (requests.length >= n) return requests[n - 1];
      const rec = await within(new Promise((resolve) => waiters.push({ n, resolve })), timeoutMs);
      if (!rec) throw new Error(`fake upstream: request #${n} not received in ${timeoutMs} ms`);
      return rec;
    },
    // A timer that is cleared when the upstream closes.
    every(ms, fn) {
      const t = setInterval(fn, ms);
      timers.add(t);
      return { stop: () => { clearInterval(t); timers.delete(t); } };
    },
    async close() {
      for (const t of timers) clearInterval(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise((res) => server.close(() => res()));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json = null;
      try { json = JSON.parse(body); } catch { /* not JSON */ }
      let markClosed;
      const rec = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
        json,
        received: Date.now(),
        closedAt: null,
        socketClosed: new Promise((r) => { markClosed = r; }),
      };
      const onClose = () => {
        if (rec.closedAt === null) {
          rec.closedAt = Date.now();
          markClosed(rec.closedAt);
        }
      };
      if (req.socket.destroyed) onClose();
      else onSocketClose(req.socket, onClose);
      requests.push(rec);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (requests.length >= waiters[i].n) {
          waiters[i].resolve(requests[waiters[i].n - 1]);
          waiters.splice(i, 1);
        }
      }
      const h = up.handler;
      if (!h) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'no handler', type: 'invalid_request_error', param: null, code: null } }));
        return;
      }
      try {
        h(req, res, rec, up);
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(e));
      }
    });
  });
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((res, rej) => server.listen(0, '127.0.0.1', res).on('error', rej));
  up.port = server.address().port;
  return up;
}

// --------------------------------------------- fake upstream answers ----

export function answerJson(status, obj, headers = {}) {
  return (req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(obj));
  };
}

// A status with a native-looking error body.
export function answerStatus(status, body = { error: { message: `upstream says ${status}`, type: 'server_error', param: null, code: null } }) {
  return answerJson(status, body);
}

// Never answers (the connection stays open until the peer closes it).
export function answerHang() {
  return () => {};
}

// Streams SSE: `events` is a list of strings (each already framed, e.g.
// "data: {...}\n\n"), written one every intervalMs. Stops early when the
// connection closes.
export function answerSse(events, { intervalMs = 0, status = 200 } = {}) {
  return (req, res, rec, up) => {
    res.writeHead(status, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let i = 0;
    rec.eventsWritten = 0;
    rec.eventsTotal = events.length;
    if (intervalMs <= 0) {
      for (const e of events) res.write(e);
      rec.eventsWritten = events.length;
      res.end();
      return;
    }
    const t = up.every(intervalMs, () => {
      if (res.destroyed || res.writableEnded) { t.stop(); return; }
      if (i >= events.length) { t.stop(); res.end(); return; }
      res.write(events[i++]);
      rec.eventsWritten = i;
    });
    res.on('close', () => t.stop());
  };
}

export const sseData = (obj) => `data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`;
export const sseNamed = (event, obj) => `event: ${event}\ndata: ${JSON.stringify(obj)}\n\n`;

// OpenAI chat.completion body.
export function openaiCompletion(model, text, usage = { prompt_tokens: 11, completion_tokens: 7 }) {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 1700000000,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
  };
}

// OpenAI chat.completion.chunk events for `pieces`, then usage (if given) and [DONE].
export function openaiChunks(model, pieces, usage = null) {
  const base = { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1700000000, model };
  const ev = [sseData({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] })];
  for (const p of pieces) ev.push(sseData({ ...base, choices: [{ index: 0, delta: { content: p }, logprobs: null, finish_reason: null }] }));
  ev.push(sseData({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] }));
  if (usage) {
    ev.push(sseData({ ...base, choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } }));
  }
  ev.push('data: [DONE]\n\n');
  return ev;
}

// Anthropic message body.
export function anthropicMessage(model, text, usage = { input_tokens: 13, output_tokens: 5 }) {
  return {
    id: 'msg_fake',
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage,
  };
}

// Anthropic stream events for `pieces`.
export function anthropicEvents(model, pieces, usage = { input_tokens: 13, output_tokens: 5 }) {
  const ev = [
    sseNamed('message_start', {
      type: 'message_start',
      message: { id: 'msg_fake', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null,
        usage: { input_tokens: usage.input_tokens, output_tokens: 1 } },
    }),
    sseNamed('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    sseNamed('ping', { type: 'ping' }),
  ];
  for (const p of pieces) {
    ev.push(sseNamed('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } }));
  }
  ev.push(sseNamed('content_block_stop', { type: 'content_block_stop', index: 0 }));
  ev.push(sseNamed('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { output_tokens: usage.output_tokens } }));
  ev.push(sseNamed('message_stop', { type: 'message_stop' }));
  return ev;
}

// ------------------------------------------------------ native errors ----

// Asserts an OpenAI-shaped error body {"error":{"message","type","param","code"}}.
export function assertOpenAIError(body, { type } = {}) {
  assert.equal(typeof body, 'object', `error body is not an object: ${JSON.stringify(body)}`);
  assert.ok(body && body.error && typeof body.error === 'object', `no "error" object in ${JSON.stringify(body)}`);
  const e = body.error;
  assert.equal(typeof e.message, 'string', `error.message: ${JSON.stringify(body)}`);
  assert.ok(e.message.length > 0, 'error.message is empty');
  assert.equal(typeof e.type, 'string', `error.type: ${JSON.stringify(body)}`);
  assert.ok('param' in e, `error.param missing: ${JSON.stringify(body)}`);
  assert.ok('code' in e, `error.code missing: ${JSON.stringify(body)}`);
  if (type) assert.equal(e.type, type, `error.type in ${JSON.stringify(body)}`);
}

// Asserts an Anthropic-shaped error body {"type":"error","error":{"type","message"}}.
export function assertAnthropicError(body, { type } = {}) {
  assert.ok(body && typeof body === 'object', `error body is not an object: ${JSON.stringify(body)}`);
  assert.equal(body.type, 'error', `top-level type in ${JSON.stringify(body)}`);
  assert.ok(body.error && typeof body.error === 'object', `no "error" object in ${JSON.stringify(body)}`);
  assert.equal(typeof body.error.type, 'string', `error.type in ${JSON.stringify(body)}`);
  assert.equal(typeof body.error.message, 'string', `error.message in ${JSON.stringify(body)}`);
  assert.ok(body.error.message.length > 0, 'error.message is empty');
  if (type) assert.equal(body.error.type, type, `error.type in ${JSON.stringify(body)}`);
}

// Runs fn, which must throw; returns the error.
export async function expectThrow(fn, what = 'call') {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  assert.fail(`${what} succeeded but was expected to fail`);
}

// POST raw bytes with fetch; returns {status, headers, text, json}.
export async function rawPost(url, body, headers = {}, timeoutMs = 10_000) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

// ------------------------------------------------------------- clients ----

// SDK clients pointed at the gateway. No retries (a failure must show as
// the status aigis sent), a bounded timeout, and the bootstrap agent's API
// key (OpenAI: Authorization: Bearer; Anthropic: x-api-key), which must
// never reach an upstream.
export function openaiClient(gw, opts = {}) {
  return new OpenAI({ apiKey: gw.apiKey, baseURL: gw.openaiBaseURL, maxRetries: 0, timeout: 15_000, ...opts });
}
export function anthropicClient(gw, opts = {}) {
  return new Anthropic({ apiKey: gw.apiKey, baseURL: gw.anthropicBaseURL, maxRetries: 0, timeout: 15_000, ...opts });
}
export { OpenAI, Anthropic };

export const IDP_AUDIENCE = 'aigis-e2e';

// ------------------------------------------------------------ fake IdP ----

// An external identity provider: a JWKS on 127.0.0.1 and an ES256 key the
// test signs user tokens with. `other` is a key it does not publish.
// The identity: lines (for baseConfig's `identity` option) that make aigis
// trust the fake IdP; `more` is appended under the issuer entry.
export function trustFakeIdp(idp, more = '') {
  return `
trusted_issuers:
  - name: fake-idp
    issuer: ${idp.issuer}
    jwks_url: ${idp.jwksUrl}
    audiences: [${IDP_AUDIENCE}]
    algorithms: [ES256]
${more}`;
}

export async function startFakeIdp() {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256');
  const other = await jose.generateKeyPair('ES256');
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'idp-key-1', alg: 'ES256', use: 'sig' };
  let fetches = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/jwks') {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((res, rej) => server.listen(0, '127.0.0.1', res).on('error', rej));
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}/realms/e2e`;
  const idp = {
    issuer,
    jwksUrl: `http://127.0.0.1:${port}/jwks`,
    get fetches() { return fetches; },
    // A user token; `claims` overrides/extends the defaults, `header` the
    // protected header, `key` the signing key.
    async sign(claims = {}, { header = {}, key = privateKey } = {}) {
      const t = Math.floor(Date.now() / 1000);
      return new jose.SignJWT({
        iss: issuer, sub: 'user-1', aud: IDP_AUDIENCE, iat: t, nbf: t, exp: t + 300,
        jti: crypto.randomUUID(), scope: 'llm:chat tools:read', email: 'user-1@example.test', ...claims,
      }).setProtectedHeader({ alg: 'ES256', kid: 'idp-key-1', typ: 'JWT', ...header }).sign(key);
    },
    otherKey: other.privateKey,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
  return idp;
}

