// TLS on both sides: the proxy listener serving HTTPS, and upstreams reached
// over HTTPS with certificate + host-name verification (fail closed), SNI.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import https from "node:https";

import { API_KEY_FILE, identitySection, randomAdminToken, randomMasterKey } from "./lib.mjs";

const BIN = process.env.AIGIS_BIN ?? new URL("../../build-asan/aigis", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "aigis-tls-"));
const cert = join(dir, "cert.pem"), key = join(dir, "key.pem");
let upstream, upstreamPort, lastSni, lastAuth;

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// `yaml` is a function of the instance's own directory (its data_dir and
// the bootstrap agent's API key file live there). Authentication is on: the
// result carries the bootstrap agent's API key as apiKey.
async function startAigis(name, yaml) {
  const idir = join(dir, name);
  mkdirSync(idir);
  const cfg = join(idir, "aigis.yaml"), ports = join(idir, "ports.json");
  writeFileSync(cfg, yaml(idir));
  const proc = spawn(BIN, ["serve", "--config", cfg, "--ports-file", ports], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, AIGIS_MASTER_KEY: randomMasterKey(), AIGIS_ADMIN_TOKEN: randomAdminToken() },
  });
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  for (let i = 0; i < 200 && !existsSync(ports); i++) await sleep(100);
  if (!existsSync(ports)) { proc.kill("SIGKILL"); throw new Error(`aigis did not start:\n${stderr}`); }
  const p = JSON.parse(readFileSync(ports, "utf8"));
  return {
    ...p,
    apiKey: readFileSync(join(idir, API_KEY_FILE), "utf8").trim(),
    async stop() {
      const exited = new Promise((r) => proc.on("exit", (code) => r(code)));
      proc.kill("SIGTERM");
      const code = await exited;
      assert.equal(code, 0, `aigis exit code ${code}\n${stderr}`);
      assert.doesNotMatch(stderr, /AddressSanitizer|LeakSanitizer|runtime error:/);
    },
  };
}

function request(url, { ca, body, servername, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: "POST", ca, servername, headers: { "content-type": "application/json", ...headers } }, (res) => {
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, body: data }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const chat = JSON.stringify({ model: "m", messages: [{ role: "user", content: "over tls" }] });
const base = (idir) => `listeners: {proxy: {address: "127.0.0.1:0"}, admin: {address: "127.0.0.1:0"}}\nlog: {access_log: off, level: error}\ndata_dir: ${idir}/data\n${identitySection(idir)}`;
const auth = (a) => ({ authorization: `Bearer ${a.apiKey}` });

before(async () => {
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { stdio: "ignore" });
  upstream = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    lastSni = req.socket.servername;
    lastAuth = req.headers.authorization;
    let b = "";
    req.on("data", (d) => (b += d));
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ id: "x", object: "chat.completion", model: "m",
        choices: [{ index: 0, message: { role: "assistant", content: "tls ok" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } }));
    });
  });
  await new Promise((r) => upstream.listen(0, "127.0.0.1", r));
  upstreamPort = upstream.address().port;
});

after(() => { upstream?.close(); rmSync(dir, { recursive: true, force: true }); });

test("proxy listener serves HTTPS", async () => {
  const a = await startAigis("listener", (idir) => base(idir).replace('proxy: {address: "127.0.0.1:0"}',
    `proxy: {address: "127.0.0.1:0", tls: {cert_file: ${cert}, key_file: ${key}}}`));
  try {
    const r = await request(`https://127.0.0.1:${a.proxy}/v1/chat/completions`, { ca: readFileSync(cert), body: chat.replace('"m"', '"echo"'), headers: auth(a) });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).choices[0].message.content, "over tls");
    await assert.rejects(request(`https://127.0.0.1:${a.proxy}/v1/chat/completions`, { body: chat }), /self[- ]signed|certificate/i);
    // Without credentials: 401, over TLS too.
    const anon = await request(`https://127.0.0.1:${a.proxy}/v1/chat/completions`, { ca: readFileSync(cert), body: chat.replace('"m"', '"echo"') });
    assert.equal(anon.status, 401);
    // The default OAuth issuer follows the listener's scheme.
    const meta = await new Promise((resolve, reject) => {
      https.get(`https://127.0.0.1:${a.proxy}/.well-known/oauth-authorization-server`, { ca: readFileSync(cert) }, (res) => {
        let d = "";
        res.on("data", (c) => (d += c));
        res.on("end", () => resolve({ status: res.statusCode, body: d }));
      }).on("error", reject);
    });
    assert.equal(meta.status, 200);
    assert.equal(JSON.parse(meta.body).issuer, `https://127.0.0.1:${a.proxy}`);
  } finally { await a.stop(); }
});

test("upstream over HTTPS: verified with ca_file, SNI sent, key injected", async () => {
  const a = await startAigis("verified", (idir) => base(idir) + `upstreams:
  - {name: secure, provider: openai, base_url: "https://localhost:${upstreamPort}/v1", api_key: sk-upstream, tls: {ca_file: ${cert}}}
routes:
  - {name: r, upstreams: [secure]}
`);
  try {
    const res = await fetch(`http://127.0.0.1:${a.proxy}/v1/chat/completions`, { method: "POST", body: chat, headers: auth(a) });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).choices[0].message.content, "tls ok");
    assert.equal(lastSni, "localhost");
    assert.equal(lastAuth, "Bearer sk-upstream", "the upstream gets its key, never the client's");
  } finally { await a.stop(); }
});

test("upstream with an untrusted certificate fails closed (502)", async () => {
  const a = await startAigis("untrusted", (idir) => base(idir) + `upstreams:
  - {name: secure, provider: openai, base_url: "https://localhost:${upstreamPort}/v1"}
routes:
  - {name: r, upstreams: [secure]}
`);
  try {
    const res = await fetch(`http://127.0.0.1:${a.proxy}/v1/chat/completions`, { method: "POST", body: chat, headers: auth(a) });
    assert.equal(res.status, 502);
    const err = await res.json();
    assert.equal(err.error.code, "upstream_unavailable");
    assert.match(err.error.message, /TLS handshake/);
  } finally { await a.stop(); }
});

test("upstream whose certificate does not match server_name fails closed", async () => {
  const a = await startAigis("mismatch", (idir) => base(idir) + `upstreams:
  - {name: secure, provider: openai, base_url: "https://127.0.0.1:${upstreamPort}/v1", tls: {ca_file: ${cert}, server_name: other.example}}
routes:
  - {name: r, upstreams: [secure]}
`);
  try {
    const res = await fetch(`http://127.0.0.1:${a.proxy}/v1/chat/completions`, { method: "POST", body: chat, headers: auth(a) });
    assert.equal(res.status, 502);
  } finally { await a.stop(); }
});
