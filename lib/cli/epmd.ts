/**
 * Asks EPMD whether a node name is registered (PORT_PLEASE2_REQ), as a client connecting to the
 * node would: the answer tells "not running" apart from "running but not answering".
 */
import { connect as tcpConnect } from 'node:net';
import { ConfigError, ConnectionError } from '../errors';

export function epmdPort(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.ERL_EPMD_PORT;
  if (v === undefined || v === '') return 4369;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`ERL_EPMD_PORT must be a port number, got '${v}'`);
  return n;
}

export interface EpmdLookup {
  /** The node's distribution port, or undefined when no node has the name. */
  port: number | undefined;
  /** False when no EPMD answered (not started): then no node has the name either. */
  epmdRunning: boolean;
}

const PORT2_REQ = 122;
const PORT2_RESP = 119;

/** Looks up `alive` (the part of a node name before '@') in the EPMD on `host`. */
export function lookupNode(alive: string, host: string, port = epmdPort(), timeoutMs = 3000): Promise<EpmdLookup> {
  return new Promise((resolve, reject) => {
    const name = Buffer.from(alive, 'utf8');
    const req = Buffer.alloc(3 + name.length);
    req.writeUInt16BE(1 + name.length, 0);
    req[2] = PORT2_REQ;
    name.copy(req, 3);

    const chunks: Buffer[] = [];
    let settled = false;
    const done = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      fn();
    };
    const socket = tcpConnect({ host, port });
    socket.setTimeout(timeoutMs, () => done(() => reject(new ConnectionError(`EPMD on ${host}:${port} did not answer within ${timeoutMs} ms`))));
    socket.on('connect', () => socket.write(req));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED') done(() => resolve({ port: undefined, epmdRunning: false }));
      else done(() => reject(new ConnectionError(`cannot reach EPMD on ${host}:${port}: ${e.message}`)));
    });
    // EPMD closes the connection after its answer.
    socket.on('end', () => {
      const r = Buffer.concat(chunks);
      done(() => {
        if (r.length < 2 || r[0] !== PORT2_RESP) {
          reject(new ConnectionError(`unexpected answer from EPMD on ${host}:${port}`));
        } else if (r[1] !== 0) {
          resolve({ port: undefined, epmdRunning: true });
        } else if (r.length < 4) {
          reject(new ConnectionError(`short answer from EPMD on ${host}:${port}`));
        } else {
          resolve({ port: r.readUInt16BE(2), epmdRunning: true });
        }
      });
    });
  });
}
