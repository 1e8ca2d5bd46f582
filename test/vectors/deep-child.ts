/**
 * Run in a child process by test/codec/mutations.test.ts: decodes a list nested 1,000,000 deep
 * (1,000,000 `108 0 0 0 1` headers and nothing else) with the largest maxDepth the options allow,
 * with the codec named by argv[2], and prints the verdict as one JSON line. In a child process, a
 * stack overflow (a RangeError, or a crash of the native code) is a reported failure, not a dead
 * test runner.
 */
import { DecodeError } from '../../lib/errors';

const which = process.argv[2];
const depth = 1_000_000;
const bytes = Buffer.alloc(1 + depth * 5);
bytes[0] = 131;
for (let i = 0; i < depth; i++) bytes.set([108, 0, 0, 0, 1], 1 + i * 5);

// eslint-disable-next-line @typescript-eslint/no-require-imports
const mod = which === 'native' ? require('../../lib/codec/native') : require('../../lib/codec/decode');
try {
  mod.binaryToTerm(bytes, { maxDepth: 1_000_000 });
  console.log(JSON.stringify({ verdict: 'term' }));
} catch (e) {
  if (e instanceof DecodeError) console.log(JSON.stringify({ verdict: 'DecodeError', offset: e.offset, message: e.message }));
  else console.log(JSON.stringify({ verdict: 'other', error: String(e) }));
}
