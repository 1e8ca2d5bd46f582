/**
 * Loads vectors.json (written by make-vectors.sh from etf_vectors.erl) into Buffers.
 *
 * A vector made by term_to_binary has up to five encodings; one that is byte for byte the same as
 * `default` is stored as null and comes back here as the default bytes. Hand-made vectors (tags
 * OTP reads but no longer writes) have one encoding, `default`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ENCODINGS = ['default', 'minor0', 'minor1', 'minor2', 'compressed'] as const;
export type EncodingName = (typeof ENCODINGS)[number];

/** Facts Erlang gave about a term made at run time (pid_to_list and the like, fun_info). */
export interface RuntimeInfo {
  kind: 'pid' | 'port' | 'ref' | 'fun';
  text?: string;
  node?: string;
  module?: string;
  arity?: number;
  index?: number;
  numfree?: number;
  pid?: string;
}

export interface Vector {
  name: string;
  /** How Erlang prints the term (cut at 200 characters). */
  erlang: string;
  handmade: boolean;
  /** For hand-made vectors, the tag they are made to show. */
  tag?: string;
  runtime?: RuntimeInfo;
  /** Every encoding, nulls resolved to the default bytes. */
  encodings: Record<EncodingName, Buffer>;
  /** The encodings whose bytes differ from each other (default first). */
  distinct: Array<[EncodingName, Buffer]>;
  /** ETF tags per encoding (not for hand-made vectors). */
  tags?: Partial<Record<EncodingName, string[]>>;
}

export interface VectorFile {
  otpRelease: string;
  ertsVersion: string;
  /** The node that made the run-time terms, and its creation. */
  node: string;
  creation: number;
  tagsCovered: string[];
  vectors: Vector[];
}

interface RawVector {
  name: string;
  erlang: string;
  runtime?: RuntimeInfo;
  tags: Record<EncodingName, string[]>;
  encodings: Record<EncodingName, string | null>;
}
interface RawHandmade {
  name: string;
  tag: string;
  erlang: string;
  hex: string;
}

export const VECTORS_PATH = join(__dirname, 'vectors.json');

let cached: VectorFile | undefined;

export function loadVectors(): VectorFile {
  if (cached) return cached;
  const raw = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as {
    otp_release: string;
    erts_version: string;
    node: string;
    creation: number;
    tags_covered: string[];
    vectors: RawVector[];
    handmade: RawHandmade[];
  };
  const vectors: Vector[] = [];
  for (const v of raw.vectors) {
    const def = Buffer.from(v.encodings.default!, 'hex');
    const encodings = {} as Record<EncodingName, Buffer>;
    const distinct: Array<[EncodingName, Buffer]> = [];
    for (const e of ENCODINGS) {
      const hex = v.encodings[e];
      const bytes = hex === null || hex === undefined ? def : Buffer.from(hex, 'hex');
      encodings[e] = bytes;
      if (!distinct.some(([, b]) => b.equals(bytes))) distinct.push([e, bytes]);
    }
    vectors.push({ name: v.name, erlang: v.erlang, handmade: false, runtime: v.runtime, encodings, distinct, tags: v.tags });
  }
  for (const h of raw.handmade) {
    const bytes = Buffer.from(h.hex, 'hex');
    const encodings = Object.fromEntries(ENCODINGS.map((e) => [e, bytes])) as Record<EncodingName, Buffer>;
    vectors.push({ name: h.name, erlang: h.erlang, handmade: true, tag: h.tag, encodings, distinct: [['default', bytes]] });
  }
  cached = {
    otpRelease: raw.otp_release,
    ertsVersion: raw.erts_version,
    node: raw.node,
    creation: raw.creation,
    tagsCovered: raw.tags_covered,
    vectors,
  };
  return cached;
}

/** Deterministic pseudo-random bytes: the LCG of etf_vectors:prng_bytes/2. */
export function prngBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    // (x * 1103515245 + 12345) mod 2^31: the low 31 bits of the 32-bit product are exact.
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
    out[i] = (x >>> 16) & 255;
  }
  return out;
}
