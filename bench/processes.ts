/**
 * The processes the session benchmarks start and watch: redis-server on a free loopback port, a
 * child's first line of output, a process's CPU time from /proc.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

/**
 * CPU time (user + system) a process has used, ms, from /proc (undefined elsewhere); with `tid`,
 * that one thread's.
 */
export function cpuMs(pid: number | undefined, tid?: number): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
    return (ticks * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
/** Linux's USER_HZ: 100 on every architecture Node runs on. */
const CLOCK_TICKS = 100;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Resolves with the first line of `child`'s stdout that matches, rejects if it exits first. */
export function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const rl = createInterface({ input: child.stdout! });
    const onExit = (code: number | null): void => reject(new Error(`${what} exited (${code}) before it was ready: ${stderr}`));
    child.once('exit', onExit);
    rl.on('line', (line) => {
      const m = pattern.exec(line);
      if (m) {
        child.off('exit', onExit);
        resolve(m);
      }
    });
  });
}

export interface Redis {
  port: number;
  pid: number | undefined;
  stop(): Promise<void>;
}

export async function startRedis(notes: string[]): Promise<Redis | null> {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    notes.push('connect-redis skipped: no redis-server on PATH (Debian: apt-get install redis-server)');
    return null;
  }
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await waitForLine(server, /Ready to accept connections/, 'redis-server');
  return {
    port,
    pid: server.pid,
    stop: () =>
      new Promise((resolve) => {
        if (server.exitCode !== null) return resolve();
        server.once('exit', () => resolve());
        server.kill('SIGTERM');
      }),
  };
}
