/**
 * OS-level helpers of `erl-peb server`: finding executables, free ports, whether a pid is a live
 * process (a zombie is not) and whether it is the node we think it is.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, isAbsolute, join } from 'node:path';

/** The full path of an executable on PATH, or undefined. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const candidates = isAbsolute(name) || name.includes('/') ? [name] : (env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Resolves true when nothing listens on 127.0.0.1:port (it binds and releases the port). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE' || e.code === 'EACCES') resolve(false);
      else reject(e);
    });
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Linux's view of a process state letter ('R', 'S', 'Z', ...), or undefined without /proc. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": comm may hold spaces and parentheses, so read after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** True while the process exists and has not exited (a zombie waiting to be reaped has). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return procState(pid) !== 'Z';
}

/**
 * Whether `pid` runs the Erlang node `node` (its command line names it). Undefined where the
 * command line cannot be read (no /proc): the caller then goes by the pid alone.
 */
export function isNodeProcess(pid: number, node: string): boolean | undefined {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && procState(process.pid) !== undefined) return false;
    return undefined;
  }
  const args = cmdline.split('\0');
  for (let i = 0; i + 1 < args.length; i++) {
    if ((args[i] === '-name' || args[i] === '-sname') && args[i + 1] === node) return true;
  }
  return false;
}

/** Waits until the process has exited or the deadline (a performance.now() time) passes. */
export async function waitForExit(pid: number, deadline: number): Promise<boolean> {
  let delay = 20;
  while (isAlive(pid)) {
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await sleep(Math.min(delay, left));
    delay = Math.min(delay * 2, 200);
  }
  return true;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
