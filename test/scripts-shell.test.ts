// The shell scripts (set-up, CI, the GPU box's): under `pipefail`, no pipeline ends in a reader
// that stops early. `ldconfig -p | grep -q libvulkan.so.1` failed 2 to 5 checks in 200 here: grep
// exits at the first match, ldconfig dies of SIGPIPE on its next write, and pipefail reports the
// pipeline as failed (once `npm start` stopped with "Mesa >= 25 Vulkan is still not available"
// with Mesa 25 installed). A lint over every script, and setup.sh's Vulkan check run 200 times
// against an ldconfig whose output goes on long after the match (which made the old check fail
// every time instead of now and then).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));

/** Every shell script in the repository: *.sh, and files whose first line names bash or sh. */
function shellScripts(dir = repo): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === '.git' || name === 'runs') continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...shellScripts(p));
    else if (st.isFile() && st.size < 1 << 20) {
      const text = readFileSync(p, 'utf8');
      if (name.endsWith('.sh') || /^#!.*\b(bash|sh)\b/.test(text.split('\n', 1)[0]!)) out.push(p);
    }
  }
  return out;
}

// A reader that can exit before its writer is done: grep -q/-m/-l/-L (or the long forms), head,
// sed with a q command, awk with exit.
const EARLY_READER = new RegExp([
  String.raw`\bgrep\s+(?:[^|;&]*\s)?(?:-[A-Za-z]*[qmlL][A-Za-z0-9]*|--(?:quiet|silent|max-count|files-with(?:out)?-match(?:es)?)\b)`,
  String.raw`\bhead\b`,
  String.raw`\bsed\s+(?:-[A-Za-z]+\s+)*(['"])[^'"]*(?:^|[;{}\s\d/$])q\d*(?:[;}\s]|\1)`,
  String.raw`\bawk\b[^|]*\bexit\b`,
].map((s) => `(?:${s})`).join('|'));

/**
 * Lines of a script where `... | <early reader>` appears (comments ignored). Every script is
 * checked, not only those that set pipefail: a sourced one (box-env.sh) runs under its caller's.
 */
export function earlyReaderPipes(text: string): string[] {
  const hits: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\s*#.*$/, '').replace(/\s#\s.*$/, '');
    // Each stage after a single | (not ||).
    const stages = line.split(/(?<!\|)\|(?!\|)/).slice(1);
    if (stages.some((s) => new RegExp(`^\\s*(?:${EARLY_READER.source})`).test(s))) hits.push(raw.trim());
  }
  return hits;
}

test('the lint itself: finds early readers after a pipe, and only there', () => {
  const pf = (l: string) => earlyReaderPipes(`set -euo pipefail\n${l}\n`);
  for (const bad of [
    'ldconfig -p | grep -q libvulkan.so.1',
    'ls a b 2>/dev/null | grep -q .',
    'x=$(cmd | head -n 1)',
    'cmd | grep -m1 foo',
    'cmd | grep -qxF foo && echo',
    'cmd | grep --quiet foo',
    "cmd | sed '1q'",
    "cmd | awk '/x/{print; exit}'",
    'cmd | sort | head -3',
  ]) assert.equal(pf(bad).length, 1, bad);
  for (const ok of [
    'du -h f | cut -f1',
    'node x.js | tee log',
    "dpkg-query -W pkg | sed -E 's/^[0-9]+://'",
    'a || grep -q x file',
    'grep -qxF x file || echo x >> file',
    '# ldconfig -p | grep -q libvulkan   (a comment)',
    "awk 'NR==1' f | sed 's/a/b/' > out",
    'cmd | grep -v foo',
  ]) assert.equal(pf(ok), [], ok);
  assert.equal(earlyReaderPipes('# shellcheck shell=bash\nldconfig -p | grep -q x\n').length, 1, 'a sourced script runs under its caller\'s pipefail');
});

test('no shell script pipes into an early reader', () => {
  const scripts = shellScripts();
  const names = scripts.map((p) => relative(repo, p));
  for (const must of ['scripts/setup.sh', '.ci/run', 'scripts/gpu-box/run.sh', 'scripts/gpu-box/box-env.sh']) assert.ok(names.includes(must), `${must} is scanned (found ${names.join(', ')})`);
  const found = scripts.flatMap((p) => earlyReaderPipes(readFileSync(p, 'utf8')).map((l) => `${relative(repo, p)}: ${l}`));
  assert.equal(found, [], `pipelines that fail at random under pipefail (capture the output, then match it):\n${found.join('\n')}`);
});

test('setup.sh --check-vulkan: the same answer 200 times, with ldconfig writing long after the match', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hps-setup-'));
  try {
    // Stubs in front of PATH: an ldconfig whose loader line comes first and 256 KiB of others
    // after it (more than a pipe holds), and dpkg-query reporting a Mesa 25 from backports.
    const lines = ['\tlibvulkan.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libvulkan.so.1'];
    for (let i = 0; lines.join('\n').length < 256 << 10; i++) lines.push(`\tlibstub${i}.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libstub${i}.so.0`);
    writeFileSync(join(dir, 'ldconfig.out'), lines.join('\n') + '\n');
    const stub = (name: string, body: string) => { writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`); chmodSync(join(dir, name), 0o755); };
    stub('ldconfig', `exec cat '${join(dir, 'ldconfig.out')}'`);
    stub('dpkg-query', 'printf "%s" "${HPS_STUB_MESA}"');
    const check = (mesa: string) => spawnSync('bash', [join(repo, 'scripts/setup.sh'), '--check-vulkan'], {
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, HPS_STUB_MESA: mesa }, encoding: 'utf8', timeout: 30_000,
    });
    const codes = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const r = check('25.0.7-2~bpo12+1');
      const k = `exit ${r.status ?? r.signal}${r.stderr ? `: ${r.stderr.trim()}` : ''}`;
      codes.set(k, (codes.get(k) ?? 0) + 1);
    }
    assert.equal([...codes], [['exit 0', 200]], 'Mesa 25 and the loader are there: usable, every time');
    // And the check is not trivially true (unless this machine has a vendor driver, which wins).
    const vendor = ['/usr/share/vulkan/icd.d/nvidia_icd.json', '/etc/vulkan/icd.d/nvidia_icd.json', '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json'].some(existsSync);
    if (!vendor) {
      assert.is(check('22.3.6-1+deb12u1').status, 1, 'Mesa 22 is too old');
      assert.is(check('').status, 1, 'no Mesa at all');
      stub('ldconfig', "echo '\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6'");
      assert.is(check('25.0.7-2~bpo12+1').status, 1, 'Mesa 25 without the loader');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
