/**
 * The JS classes that stand for Erlang terms with no native JS counterpart.
 *
 * Every class carries a numeric `TERM_KIND` on its prototype, so both codecs can tell the kinds
 * apart with one property read instead of a chain of `instanceof` checks.
 */

export const TERM_KIND: unique symbol = Symbol.for('erl-peb.termKind') as never;

/** Numbers stored on each class prototype under TERM_KIND; the native encoder switches on them. */
export enum Kind {
  Atom = 1,
  Tuple = 2,
  Pid = 3,
  Ref = 4,
  Port = 5,
  Fun = 6,
  Export = 7,
  BitBinary = 8,
  ImproperList = 9,
  Charlist = 10,
  Float = 11,
}

const atomTable = new Map<string, Atom>();

/** An Erlang atom. Interned: `atom('ok') === atom('ok')`. Create with `atom(name)`. */
export class Atom {
  declare readonly [TERM_KIND]: Kind.Atom;
  readonly name: string;
  /** @internal use atom() */
  constructor(name: string) {
    this.name = name;
  }
  toString(): string {
    return this.name;
  }
  toJSON(): string {
    return this.name;
  }
}

/** The interned atom named `name`. Atoms longer than 255 characters cannot be encoded. */
export function atom(name: string): Atom {
  let a = atomTable.get(name);
  if (a === undefined) {
    if (typeof name !== 'string') throw new TypeError('atom name must be a string');
    a = new Atom(name);
    atomTable.set(name, a);
  }
  return a;
}

/** An Erlang tuple. `tuple(atom('ok'), 1)` is `{ok, 1}`. */
export class Tuple {
  declare readonly [TERM_KIND]: Kind.Tuple;
  readonly elements: Term[];
  constructor(elements: Term[]) {
    this.elements = elements;
  }
  get length(): number {
    return this.elements.length;
  }
  /** Element `i`, zero-based (Erlang's `element(i + 1, T)`). */
  at(i: number): Term | undefined {
    return this.elements[i];
  }
  [Symbol.iterator](): Iterator<Term> {
    return this.elements[Symbol.iterator]();
  }
}

export function tuple(...elements: Term[]): Tuple {
  return new Tuple(elements);
}

/** An Erlang process identifier. */
export class Pid {
  declare readonly [TERM_KIND]: Kind.Pid;
  constructor(
    readonly node: Atom,
    readonly id: number,
    readonly serial: number,
    readonly creation: number,
  ) {}
  toString(): string {
    return `<${this.node.name}.${this.id}.${this.serial}>`;
  }
}

/** An Erlang reference. `ids` holds the 32-bit words as Erlang writes them (1 to 5 of them). */
export class Ref {
  declare readonly [TERM_KIND]: Kind.Ref;
  constructor(
    readonly node: Atom,
    readonly creation: number,
    readonly ids: readonly number[],
  ) {}
  toString(): string {
    return `#Ref<${this.node.name}.${[...this.ids].reverse().join('.')}>`;
  }
}

/** An Erlang port identifier. `id` is a number, or a bigint past 2^53 (V4_PORT_EXT ids are 64-bit). */
export class Port {
  declare readonly [TERM_KIND]: Kind.Port;
  constructor(
    readonly node: Atom,
    readonly id: number | bigint,
    readonly creation: number,
  ) {}
  toString(): string {
    return `#Port<${this.node.name}.${this.id}>`;
  }
}

/**
 * An Erlang fun (NEW_FUN_EXT). Opaque: it keeps the exact bytes it was decoded from (tag
 * included), so it can be sent back to Erlang unchanged; `module`, `arity` and `index` are there to read.
 */
export class Fun {
  declare readonly [TERM_KIND]: Kind.Fun;
  constructor(
    readonly bytes: Buffer,
    readonly module: Atom,
    readonly arity: number,
    readonly index: number,
  ) {}
}

/** An external fun, `fun Module:Function/Arity`. */
export class Export {
  declare readonly [TERM_KIND]: Kind.Export;
  readonly module: Atom;
  readonly function: Atom;
  readonly arity: number;
  constructor(module: Atom, fn: Atom, arity: number) {
    this.module = module;
    this.function = fn;
    this.arity = arity;
  }
}

/** A bitstring whose length in bits is not a multiple of 8: `bits` (1..8) of the last byte are used. */
export class BitBinary {
  declare readonly [TERM_KIND]: Kind.BitBinary;
  constructor(
    readonly buffer: Buffer,
    readonly bits: number,
  ) {}
}

/** A list whose tail is not `[]`: `[a, b | tail]`. */
export class ImproperList {
  declare readonly [TERM_KIND]: Kind.ImproperList;
  constructor(
    readonly elements: Term[],
    readonly tail: Term,
  ) {}
}

/** An Erlang string: a list of character codes, as Erlang's `"abc"` (encode with `charlist()`). */
export class Charlist {
  declare readonly [TERM_KIND]: Kind.Charlist;
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

/** `charlist('abc')` encodes as the Erlang string "abc" (a list of character codes), not a binary. */
export function charlist(value: string): Charlist {
  return new Charlist(value);
}

/**
 * An Erlang float whose value is integral (`2.0`). JS numbers that are integers encode as Erlang
 * integers, so `float(2)` is how to send 2.0; the decoder gives one back for an integral float, so
 * that a decoded term re-encodes to the same term.
 */
export class Float {
  declare readonly [TERM_KIND]: Kind.Float;
  constructor(readonly value: number) {}
  valueOf(): number {
    return this.value;
  }
  toString(): string {
    return String(this.value);
  }
  toJSON(): number {
    return this.value;
  }
}

export function float(value: number): Float {
  return new Float(value);
}

const kinds: Array<[{ prototype: object }, Kind]> = [
  [Atom, Kind.Atom],
  [Tuple, Kind.Tuple],
  [Pid, Kind.Pid],
  [Ref, Kind.Ref],
  [Port, Kind.Port],
  [Fun, Kind.Fun],
  [Export, Kind.Export],
  [BitBinary, Kind.BitBinary],
  [ImproperList, Kind.ImproperList],
  [Charlist, Kind.Charlist],
  [Float, Kind.Float],
];
for (const [cls, kind] of kinds) {
  Object.defineProperty(cls.prototype, TERM_KIND, { value: kind, enumerable: false });
}

/** Any value the codecs map to or from an Erlang term (see the term mapping in the README). */
export type Term =
  | number
  | bigint
  | boolean
  | null
  | undefined
  | string
  | symbol
  | Buffer
  | Uint8Array
  | Atom
  | Tuple
  | Pid
  | Ref
  | Port
  | Fun
  | Export
  | BitBinary
  | ImproperList
  | Charlist
  | Float
  | Term[]
  | Map<Term, Term>
  | { [key: string]: Term };
