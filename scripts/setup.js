#!/usr/bin/env node
// Runs before the addon is built (npm's install step): makes sure Erlang's erl_interface (ei.h and
// libei.a) and zlib's headers are there. On Debian, as root with apt, it installs what is missing;
// anywhere else it stops with a message naming exactly what to install.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');

function eiDir() {
  try {
    const dir = execFileSync('erl', ['-noshell', '-eval', 'io:format("~s",[code:lib_dir(erl_interface)])', '-s', 'init', 'stop'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60_000,
    });
    return fs.existsSync(`${dir}/include/ei.h`) && fs.existsSync(`${dir}/lib/libei.a`) ? dir : null;
  } catch {
    return null;
  }
}

const haveZlib = () => fs.existsSync('/usr/include/zlib.h');
const missing = () => [!eiDir() && 'erl_interface', !haveZlib() && 'zlib headers'].filter(Boolean);

let lacking = missing();
if (lacking.length === 0) process.exit(0);

const isDebian = fs.existsSync('/etc/debian_version');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
const packages = ['erlang-nox', 'erlang-dev', 'zlib1g-dev'];

if (isDebian && isRoot && hasApt && process.env.ERL_PEB_NO_APT !== '1') {
  console.error(`erl-peb: ${lacking.join(' and ')} missing; installing ${packages.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args) => spawnSync('apt-get', args, { stdio: 'inherit', env }).status === 0;
  if (!run(['update', '-qq']) || !run(['install', '-y', '-qq', ...packages])) {
    console.error('erl-peb: apt-get failed; install them yourself: apt-get install -y ' + packages.join(' '));
    process.exit(1);
  }
  lacking = missing();
  if (lacking.length === 0) process.exit(0);
}

console.error(
  `erl-peb needs Erlang/OTP's erl_interface (ei.h, libei.a), with \`erl\` on PATH, and zlib's headers.\n` +
    `Missing: ${lacking.join(', ')}.\n` +
    `  Debian/Ubuntu: sudo apt-get install ${packages.join(' ')}\n` +
    `  Fedora:        sudo dnf install erlang-erl_interface zlib-devel\n` +
    `  macOS:         brew install erlang`,
);
process.exit(1);
