/**
 * TCP listening sockets on this machine and the processes that hold them, read from /proc: what
 * the loopback-only tests check a node and EPMD against.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { ipv4, ipv6 } from '../../lib/cli/server';

export interface Listener {
  address: string;
  port: number;
  inode: string;
}

/** The addresses a listener may have and still be reachable from this machine only. */
export const LOOPBACK = ['127.0.0.1', '::1'];

/** Every TCP socket in LISTEN state on this machine, from /proc/net/tcp and tcp6. */
export function tcpListeners(): Listener[] {
  const out: Listener[] = [];
  for (const [file, v6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]] as const) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue; // 0A: LISTEN
      const [addr, port] = f[1]!.split(':');
      out.push({ address: v6 ? ipv6(addr!) : ipv4(addr!), port: parseInt(port!, 16), inode: f[9]! });
    }
  }
  return out;
}

/** The socket inodes a process holds open. */
export function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** The listening sockets a process holds. */
export function listenersOf(pid: number): Listener[] {
  const inodes = socketInodes(pid);
  return tcpListeners().filter((l) => inodes.has(l.inode));
}

/** The process holding a socket inode (among the processes this user may look into). */
export function ownerOf(inode: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (socketInodes(Number(entry)).has(inode)) return Number(entry);
    } catch {
      // not ours, or gone
    }
  }
  return undefined;
}
