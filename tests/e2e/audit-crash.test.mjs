// Crash safety of the audit log in sync mode: under concurrent traffic,
// aigis is killed with SIGKILL at a random moment, several times over the
// same data directory. After each restart every request whose response the
// client received in full has its record, and the log verifies (live, and
// offline with `aigis audit verify --data-dir` at the end).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import {
  AIGIS_BIN, baseConfig, makeTempDir, randomAdminToken, randomMasterKey, sleep, startAigis, waitFor, within,
} from './lib.mjs';

const ROUNDS = 4;
const WORKERS = 6;
const MAX_REQUESTS_PER_ROUND = 3000;  // bounded even if the kill came late
const MIN_ACKED_PER_ROUND = 15;  // the kill waits for these (at most 20 s)

describe('audit log: kill -9 during traffic in sync mode', { timeout: 240_000 }, () => {
  let dataDir;
  const env = { AIGIS_MASTER_KEY: randomMasterKey(), AIGIS_ADMIN_TOKEN: randomAdminToken() };
  after(async () => {
    if (dataDir) await fsp.rm(dataDir, { recursive: true, force: true }).catch(() => {});
  });

  const config = (dir) => baseConfig(dir, `
audit:
  mode: sync
  checkpoint_interval: 200ms
`).replace(/^data_dir: .*$/m, `data_dir: ${JSON.stringify(dataDir)}`);

  async function recordedIds(gw) {
    const ids = new Set();
    let from = 0;
    for (let page = 0; page < 1000; page++) {
      const r = await gw.admin('GET', `/admin/v1/audit/records?from=${from}&limit=1000`);
      assert.equal(r.status, 200, r.text);
      for (const x of r.json.records) ids.add(x.record.request_id);
      if (r.json.next === undefined) break;
      from = r.json.next;
    }
    return ids;
  }

  test('no acknowledged record is lost and the log verifies after every restart', async () => {
    dataDir = await makeTempDir();
    const acked = [];
    let total = 0;
    let apiKey = null;
    for (let round = 0; round < ROUNDS; round++) {
      const gw = await startAigis(config, { env });
      try {
        // aigis writes the bootstrap agent's key only when it creates the
        // agent (round 0); the later rounds, on the same data, reuse it.
        apiKey ??= gw.apiKey;
        assert.ok(apiKey, 'aigis wrote no API key for the bootstrap agent');
        gw.apiKey = apiKey;
        if (round > 0) {
          // What the previous rounds acknowledged survived the kill.
          const ids = await recordedIds(gw);
          const lost = acked.filter((id) => !ids.has(id));
          assert.deepEqual(lost, [], `round ${round}: ${lost.length} acknowledged records lost`);
          const v = await gw.admin('POST', '/admin/v1/audit/verify');
          assert.equal(v.json.ok, true, `round ${round}: ${v.text}`);
        }
        let stop = false;
        let n = 0;
        const worker = async (w) => {
          while (!stop && n < MAX_REQUESTS_PER_ROUND) {
            const id = `crash-${round}-${w}-${n++}`;
            try {
              const r = await fetch(`${gw.openaiBaseURL}/chat/completions`, {
                method: 'POST',
                headers: { ...gw.auth(), 'content-type': 'application/json', 'x-request-id': id },
                body: JSON.stringify({ model: 'echo-1', messages: [{ role: 'user', content: `request ${id}` }] }),
                signal: AbortSignal.timeout(10_000),
              });
              const body = await r.text();  // the whole response: acknowledged
              if (r.status === 200 && body.includes(`request ${id}`)) acked.push(id);
            } catch {
              // The process died under this request: not acknowledged.
              if (stop) return;
            }
          }
        };
        const running = Array.from({ length: WORKERS }, (_, w) => worker(w));
        // Kill during traffic, once this round has some acknowledged
        // requests (a slow sanitizer build on a busy host may take seconds
        // for the first ones), at a random point after that.
        const before = acked.length;
        const enough = await waitFor(() => acked.length - before >= MIN_ACKED_PER_ROUND, { timeoutMs: 20_000 });
        assert.ok(enough, `round ${round}: ${acked.length - before} requests acknowledged in 20 s`);
        await sleep(100 + Math.floor(Math.random() * 500));
        gw.signal('SIGKILL');
        stop = true;
        await within(gw.exited, 10_000);
        await within(Promise.all(running), 15_000);
        total = acked.length;
      } finally {
        await gw.dispose();
      }
    }
    assert.ok(total > 50, `only ${total} requests acknowledged over ${ROUNDS} rounds`);

    // The last round's acknowledged records, then an offline check.
    const gw = await startAigis(config, { env });
    try {
      const ids = await recordedIds(gw);
      const lost = acked.filter((id) => !ids.has(id));
      assert.deepEqual(lost, [], `${lost.length} acknowledged records lost`);
      assert.equal((await gw.admin('POST', '/admin/v1/audit/verify')).json.ok, true);
    } finally {
      await gw.stop();
    }
    const out = spawnSync(AIGIS_BIN, ['audit', 'verify', '--data-dir', dataDir], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /^ok: \d+ records/);
    assert.ok(fs.existsSync(path.join(dataDir, 'audit', 'default', 'records')));
  });
});
