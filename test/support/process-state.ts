/**
 * Waits until an OS process is in a given state, as /proc shows it (Linux): a signal such as
 * SIGSTOP takes effect some time after kill() returns, and a test must not race it.
 */
import { readFile } from 'node:fs/promises';

/** The state letter of /proc/PID/stat: R running, S sleeping, T stopped, Z zombie, ... */
export async function processState(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // "pid (comm) S ...": comm may hold spaces and parentheses, so look after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

export async function waitForProcessState(pid: number, wanted: (state: string) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (wanted(await processState(pid))) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} did not become ${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
