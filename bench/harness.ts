/**
 * Shared by the benchmarks: timing with warm-up and rounds, table printing, `--json` output.
 * A figure is the median of several timed rounds, each long enough to swamp timer noise.
 */
export interface MeasureOptions {
  /** Length of one round, ms (default 200). */
  roundMs?: number;
  /** Timed rounds (default 5). */
  rounds?: number;
}

/** Median time of one call of `fn`, in microseconds. */
export function measure(fn: () => unknown, o: MeasureOptions = {}): number {
  const roundMs = o.roundMs ?? 200;
  const rounds = o.rounds ?? 5;
  // Warm-up, and a first guess of how many calls fill a round.
  let n = 1;
  let sink: unknown;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink = fn();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms > roundMs / 4) {
      n = Math.max(1, Math.round((n * roundMs) / ms));
      break;
    }
    n *= 4;
  }
  const perCall: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink = fn();
    perCall.push(Number(process.hrtime.bigint() - t0) / 1e3 / n);
  }
  keep(sink);
  return median(perCall);
}

let kept: unknown;
/** Keeps a result alive so the work that made it cannot be optimised away. */
export function keep(v: unknown): void {
  kept = v;
}
export const lastKept = (): unknown => kept;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: ArrayLike<number>, p: number): number {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export const wantJson = (): boolean => process.argv.includes('--json');

/** A line of progress on stderr (none with --json, whose stdout is the result). */
export function progress(s: string): void {
  if (!wantJson()) process.stderr.write(`${s}\n`);
}

export type Row = Record<string, string | number | null>;

/** Prints rows as a Markdown table (the README's form), or as one JSON line with `--json`. */
export function report(title: string, rows: Row[], extra: Record<string, unknown> = {}): void {
  if (wantJson()) {
    console.log(JSON.stringify({ benchmark: title, ...extra, rows }));
    return;
  }
  const cols = Object.keys(rows[0] ?? {});
  const cell = (v: Row[string]) => (v === null ? '–' : typeof v === 'number' ? fmt(v) : v);
  const lines = [
    `| ${cols.join(' | ')} |`,
    `| ${cols.map((c, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((r) => `| ${cols.map((c) => cell(r[c]!)).join(' | ')} |`),
  ];
  console.log(`\n${title}\n`);
  console.log(lines.join('\n'));
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export function machine(): Record<string, string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const os = require('node:os') as typeof import('node:os');
  return { node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cores: String(os.cpus().length) };
}
