#!/usr/bin/env node
// Writes dist/esm/*.mjs: ES module entry points that re-export the CommonJS build. One copy of the
// code serves both module systems, so atoms stay interned (`atom('ok') === atom('ok')`) and
// `instanceof` holds whichever way a program loads erl-peb.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const entries = { index: './index.js', pure: './pure.js', express: './express.js', fastify: './fastify.js', koa: './koa.js' };
fs.mkdirSync(path.join(dist, 'esm'), { recursive: true });
for (const [name, file] of Object.entries(entries)) {
  const abs = path.join(dist, file);
  if (!fs.existsSync(abs)) continue;
  const names = Object.keys(require(abs)).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n));
  const lines = [
    `import cjs from '../${file.slice(2)}';`,
    `export default cjs;`,
    `export const { ${names.join(', ')} } = cjs;`,
    '',
  ];
  fs.writeFileSync(path.join(dist, 'esm', `${name}.mjs`), lines.join('\n'));
}
