#!/usr/bin/env node
// Builds the Erlang session server with plain `erlc`: erlang/src/*.erl -> erlang/ebin/*.beam, and
// erlang/src/erl_peb.app.src -> erlang/ebin/erl_peb.app with its module list filled in.
// Exits non-zero, with the compiler's output, when anything fails to compile.
//
//   node scripts/build-erlang.js                 build erlang/ebin (nothing to do when up to date)
//   node scripts/build-erlang.js --force         build even when up to date
//   node scripts/build-erlang.js --tests DIR     also compile erlang/test/*.erl into DIR
//   node scripts/build-erlang.js --optional      without Erlang/OTP installed, warn and exit 0
//                                                (for `npm install` on a machine that only runs
//                                                the Node client against a server elsewhere)
//   ERLC=/path/to/erlc node scripts/build-erlang.js
//
// The new ebin is built beside the old one and swapped in, so that a node already running from
// erlang/ebin (or a second build started at the same time) never sees a half-written directory.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const src = path.join(root, 'erlang', 'src');
const ebin = path.join(root, 'erlang', 'ebin');
const testSrc = path.join(root, 'erlang', 'test');
const erlc = process.env.ERLC || 'erlc';
let optional = false;

function fail(message) {
  process.stderr.write(`build-erlang: ${message}\n`);
  process.exit(1);
}

// Modules that define a behaviour (`-callback`) come first, so that the modules implementing it
// are checked against it in the same run.
function erlFiles(dir) {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.erl'))
    .sort()
    .map((f) => path.join(dir, f));
  const definesBehaviour = (f) => /^-callback\s/m.test(fs.readFileSync(f, 'utf8'));
  return [...files.filter(definesBehaviour), ...files.filter((f) => !definesBehaviour(f))];
}

function compile(files, outDir, extra) {
  fs.mkdirSync(outDir, { recursive: true });
  const args = ['-o', outDir, '-pa', outDir, '+debug_info', '-Wall', '-I', src, ...extra, ...files];
  const result = spawnSync(erlc, args, { encoding: 'utf8' });
  const discard = () => {
    if (path.basename(outDir).startsWith('ebin.new-')) fs.rmSync(outDir, { recursive: true, force: true });
  };
  if (result.error) {
    discard();
    if (result.error.code !== 'ENOENT') fail(`${erlc}: ${result.error.message}`);
    const missing = `${erlc} not found: install Erlang/OTP (Debian: apt-get install erlang-nox erlang-dev) or set ERLC`;
    if (!optional) fail(missing);
    process.stderr.write(`build-erlang: ${missing}; the session server is not built\n`);
    process.exit(0);
  }
  const output = `${result.stdout}${result.stderr}`.trim();
  if (result.status !== 0) {
    discard();
    fail(`erlc failed (exit ${result.status}):\n${output}`);
  }
  if (output) process.stdout.write(`${output}\n`);
}

function writeApp(outDir) {
  const appSrc = path.join(src, 'erl_peb.app.src');
  const text = fs.readFileSync(appSrc, 'utf8');
  const modules = erlFiles(src).map((f) => path.basename(f, '.erl')).sort();
  const filled = text.replace(/\{modules,\s*\[[^\]]*\]\}/, `{modules, [${modules.join(', ')}]}`);
  if (filled === text && modules.length > 0) fail(`${appSrc} has no {modules, [...]} entry to fill in`);
  fs.writeFileSync(path.join(outDir, 'erl_peb.app'), filled);
}

// Up to date: ebin holds exactly the .app and a beam per module, and nothing in erlang/src (or
// this script) is newer than the oldest of them.
function upToDate() {
  const mtime = (f) => fs.statSync(f).mtimeMs;
  const outputs = [
    path.join(ebin, 'erl_peb.app'),
    ...erlFiles(src).map((f) => path.join(ebin, `${path.basename(f, '.erl')}.beam`)),
  ];
  if (!outputs.every((f) => fs.existsSync(f))) return false;
  // A beam whose source was removed makes it stale too.
  if (fs.readdirSync(ebin).length !== outputs.length) return false;
  const inputs = [...fs.readdirSync(src).map((f) => path.join(src, f)), __filename];
  return Math.max(...inputs.map(mtime)) <= Math.min(...outputs.map(mtime));
}

// A build killed half-way leaves its directory behind: remove those whose process is gone.
function removeAbandoned() {
  const dir = path.dirname(ebin);
  for (const name of fs.readdirSync(dir)) {
    const m = /^ebin\.(?:new|old)-(\d+)$/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if (e.code === 'ESRCH') fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    }
  }
}

function build() {
  removeAbandoned();
  const fresh = `${ebin}.new-${process.pid}`;
  const old = `${ebin}.old-${process.pid}`;
  fs.rmSync(fresh, { recursive: true, force: true });
  compile(erlFiles(src), fresh, []);
  writeApp(fresh);
  // Another build running at the same moment may swap first: its result is the same.
  const tolerate = (fn, codes) => {
    try {
      fn();
    } catch (e) {
      if (!codes.includes(e.code)) throw e;
    }
  };
  tolerate(() => fs.renameSync(ebin, old), ['ENOENT']);
  tolerate(() => fs.renameSync(fresh, ebin), ['ENOTEMPTY', 'EEXIST']);
  fs.rmSync(fresh, { recursive: true, force: true });
  fs.rmSync(old, { recursive: true, force: true });
}

function main(argv) {
  let testsOut;
  let force = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--tests' && argv[i + 1]) testsOut = path.resolve(argv[++i]);
    else if (argv[i] === '--force') force = true;
    else if (argv[i] === '--optional') optional = true;
    else fail(`unknown argument ${argv[i]} (usage: build-erlang.js [--force] [--optional] [--tests DIR])`);
  }
  if (force || !upToDate()) build();
  if (testsOut) compile(erlFiles(testSrc), testsOut, ['-pa', ebin]);
}

main(process.argv.slice(2));
