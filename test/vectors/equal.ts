/**
 * Deep equality for decoded terms that tells apart what a loose deep-equal blurs: Buffer from
 * Uint8Array from string, number from bigint, Float from number, -0 from 0, Map from object, the
 * interned Atom from another Atom of the same name, and any class from another.
 *
 * termDiff(actual, expected) gives null when they match, else a message naming the first place
 * (`$[2].keys[0]`) where they differ.
 */
import { inspect } from 'node:util';
import {
  Atom,
  BitBinary,
  Charlist,
  Export,
  Float,
  Fun,
  ImproperList,
  Pid,
  Port,
  Ref,
  Tuple,
} from '../../lib/terms';

/** An expectation that is a predicate: gives null when `value` is right, else what is wrong. */
export class Check<C = unknown> {
  constructor(
    readonly description: string,
    readonly test: (value: unknown, context: C) => string | null,
  ) {}
}

export interface DiffOptions<C = unknown> {
  /** Map entries and object keys must come in the same order (default: any order, as in Erlang). */
  ordered?: boolean;
  /** Passed to Check predicates. */
  context?: C;
}

export function show(v: unknown): string {
  if (v instanceof Atom) return `atom(${JSON.stringify(v.name)})`;
  return inspect(v, { depth: 3, maxArrayLength: 8, maxStringLength: 60, breakLength: Infinity });
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  if (Buffer.isBuffer(v)) return 'Buffer';
  const proto = Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null;
  if (proto === null) return 'null-prototype object';
  return proto.constructor?.name ?? 'object';
}

export function termDiff(actual: unknown, expected: unknown, options: DiffOptions = {}, path = '$'): string | null {
  if (expected instanceof Check) {
    const problem = expected.test(actual, options.context);
    return problem === null ? null : `${path}: ${problem} (expected ${expected.description}, got ${show(actual)})`;
  }
  const bad = (what = ''): string => `${path}: expected ${show(expected)}, got ${show(actual)}${what ? ` (${what})` : ''}`;
  if (typeof actual !== typeof expected) return bad(`${typeof actual} instead of ${typeof expected}`);
  if (typeof expected === 'number') return Object.is(actual, expected) ? null : bad();
  if (typeof expected !== 'object' || expected === null || actual === null) return actual === expected ? null : bad();
  const a = actual as object;
  const e = expected as object;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(e)) return bad(`${kindOf(a)} instead of ${kindOf(e)}`);

  if (e instanceof Uint8Array) {
    return Buffer.from(e.buffer, e.byteOffset, e.byteLength).equals(a as Uint8Array) ? null : bad('bytes differ');
  }
  if (e instanceof Atom) {
    if (a === e) return null;
    return bad((a as Atom).name === e.name ? 'an Atom of that name that is not the interned one' : '');
  }
  if (e instanceof Float) return Object.is((a as Float).value, e.value) ? null : bad();
  if (Array.isArray(e)) {
    const arr = a as unknown[];
    if (arr.length !== e.length) return bad(`length ${arr.length} instead of ${e.length}`);
    for (let i = 0; i < e.length; i++) {
      const d = termDiff(arr[i], e[i], options, `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (e instanceof Tuple) {
    return termDiff((a as Tuple).elements, e.elements, options, `${path}.elements`);
  }
  if (e instanceof ImproperList) {
    const il = a as ImproperList;
    return termDiff(il.elements, e.elements, options, `${path}.elements`) ?? termDiff(il.tail, e.tail, options, `${path}.tail`);
  }
  if (e instanceof Map) return mapDiff(a as Map<unknown, unknown>, e, options, path);
  if (e instanceof Pid) {
    const p = a as Pid;
    return fieldsDiff(path, [
      ['node', p.node, e.node],
      ['id', p.id, e.id],
      ['serial', p.serial, e.serial],
      ['creation', p.creation, e.creation],
    ], options);
  }
  if (e instanceof Ref) {
    const r = a as Ref;
    return fieldsDiff(path, [
      ['node', r.node, e.node],
      ['creation', r.creation, e.creation],
      ['ids', r.ids, e.ids],
    ], options);
  }
  if (e instanceof Port) {
    const p = a as Port;
    return fieldsDiff(path, [
      ['node', p.node, e.node],
      ['id', p.id, e.id],
      ['creation', p.creation, e.creation],
    ], options);
  }
  if (e instanceof Export) {
    const x = a as Export;
    return fieldsDiff(path, [
      ['module', x.module, e.module],
      ['function', x.function, e.function],
      ['arity', x.arity, e.arity],
    ], options);
  }
  if (e instanceof Fun) {
    const f = a as Fun;
    return fieldsDiff(path, [
      ['bytes', f.bytes, e.bytes],
      ['module', f.module, e.module],
      ['arity', f.arity, e.arity],
      ['index', f.index, e.index],
    ], options);
  }
  if (e instanceof BitBinary) {
    const b = a as BitBinary;
    return fieldsDiff(path, [
      ['bits', b.bits, e.bits],
      ['buffer', b.buffer, e.buffer],
    ], options);
  }
  if (e instanceof Charlist) return (a as Charlist).value === e.value ? null : bad();
  const proto = Object.getPrototypeOf(e);
  if (proto === Object.prototype || proto === null) return objectDiff(a as Record<string, unknown>, e as Record<string, unknown>, options, path);
  return `${path}: cannot compare a ${kindOf(e)}`;
}

function fieldsDiff(path: string, fields: Array<[string, unknown, unknown]>, options: DiffOptions): string | null {
  for (const [name, a, e] of fields) {
    const d = termDiff(a, e, options, `${path}.${name}`);
    if (d) return d;
  }
  return null;
}

function objectDiff(a: Record<string, unknown>, e: Record<string, unknown>, options: DiffOptions, path: string): string | null {
  const ak = Object.keys(a);
  const ek = Object.keys(e);
  const sameKeys = options.ordered
    ? ak.length === ek.length && ak.every((k, i) => k === ek[i])
    : ak.length === ek.length && ek.every((k) => Object.prototype.hasOwnProperty.call(a, k));
  if (!sameKeys) return `${path}: keys ${JSON.stringify(ak)} instead of ${JSON.stringify(ek)}`;
  if (Object.getOwnPropertySymbols(a).length > 0) return `${path}: has symbol keys`;
  for (const k of ek) {
    const d = termDiff(a[k], e[k], options, `${path}[${JSON.stringify(k)}]`);
    if (d) return d;
  }
  return null;
}

function mapDiff(a: Map<unknown, unknown>, e: Map<unknown, unknown>, options: DiffOptions, path: string): string | null {
  if (a.size !== e.size) return `${path}: a Map of ${a.size} entries instead of ${e.size} (${show(a)})`;
  const actual = [...a];
  if (options.ordered) {
    let i = 0;
    for (const [k, v] of e) {
      const d =
        termDiff(actual[i][0], k, options, `${path}.keys[${i}]`) ?? termDiff(actual[i][1], v, options, `${path}.values[${i}]`);
      if (d) return d;
      i++;
    }
    return null;
  }
  // Erlang maps have no order: match every expected key to an unused actual key.
  const used = new Set<number>();
  for (const [k, v] of e) {
    const j = actual.findIndex(([ak], idx) => !used.has(idx) && termDiff(ak, k, options) === null);
    if (j < 0) return `${path}: no key ${show(k)} among ${show([...a.keys()])}`;
    used.add(j);
    const d = termDiff(actual[j][1], v, options, `${path}.get(${show(k)})`);
    if (d) return d;
  }
  return null;
}

/** Fails with every problem listed in full (an assertion diff would cut long lines short). */
export function noProblems(problems: string[], what = ''): void {
  if (problems.length === 0) return;
  const shown = problems.slice(0, 40);
  const more = problems.length > shown.length ? `\n... and ${problems.length - shown.length} more` : '';
  throw new Error(`${what ? `${what}: ` : ''}${problems.length} problem(s):\n${shown.join('\n')}${more}`);
}
