'use strict';
// Benchmark peer: the seed PR's startup hygiene, as a standalone script for bun and node.
//   bun  bench/peers/seed.js PROJECT_DIR
//   node bench/peers/seed.js PROJECT_DIR
// 1. Reap <project>/.orchestrator-state/active-session-<pid> files whose pid is gone
//    (probe: process.kill(pid, 0); EPERM means alive).
// 2. Read every /proc/<pid>/cmdline; for those referencing orchestrator/dist/server.js,
//    walk up to 8 parents through /proc/<pid>/stat looking for comm "claude".
//    Report (never kill) the ones without such an ancestor.
const fs = require('node:fs');
const path = require('node:path');

const PATTERN = 'orchestrator/dist/server.js';
const MAX_HOPS = 8;

function reapStaleActiveSessionFiles(project) {
  const dir = path.join(project, '.orchestrator-state');
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  let reaped = 0;
  for (const name of names) {
    const m = /^active-session-(\d+)$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (!(pid > 0)) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = e.code === 'EPERM';
    }
    if (alive) continue;
    try {
      fs.unlinkSync(path.join(dir, name));
      reaped++;
    } catch {
      // lost a race with another session: the next startup retries
    }
  }
  return reaped;
}

function readStat(pid) {
  let s;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const close = s.lastIndexOf(')');
  const open = s.indexOf('(');
  if (open < 0 || close < open) return null;
  const rest = s.slice(close + 2).split(' ');
  return { comm: s.slice(open + 1, close), ppid: Number(rest[1]) };
}

function hasClaudeAncestor(pid) {
  const self = readStat(pid);
  if (!self) return true; // gone: not an orphan
  let cur = self.ppid;
  for (let hop = 0; hop < MAX_HOPS && cur > 0; hop++) {
    const st = readStat(cur);
    if (!st) return false;
    if (st.comm === 'claude') return true;
    cur = st.ppid;
  }
  return false;
}

function findOrphanMcps() {
  if (process.platform !== 'linux') return [];
  const suspects = [];
  let entries;
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return suspects;
  }
  for (const name of entries) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let cmdline;
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!cmdline.includes(PATTERN)) continue;
    if (!hasClaudeAncestor(pid)) suspects.push({ pid, cmdline: cmdline.split('\0').join(' ').trim() });
  }
  return suspects;
}

const project = process.argv[2] || process.cwd();
const reaped = reapStaleActiveSessionFiles(project);
if (reaped > 0) console.log(`startup hygiene: reaped ${reaped} stale active-session file(s)`);
for (const s of findOrphanMcps()) {
  console.error(`startup hygiene: possible orphan MCP pid ${s.pid} (no claude ancestor within ${MAX_HOPS} hops): ${s.cmdline}`);
}
