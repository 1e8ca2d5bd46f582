/**
 * Every error erl-peb throws is an ErlPebError with a stable string `code`. The native addon is
 * handed these classes once at load and throws them itself, so native and TS errors are the same.
 */

export class ErlPebError extends Error {
  readonly code: string;
  constructor(message: string, code = 'ERL_PEB_ERROR', options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
  override get name(): string {
    return this.constructor.name;
  }
}

/** Bytes that are not a valid Erlang term. `offset` is where in the input the problem is. */
export class DecodeError extends ErlPebError {
  readonly offset: number;
  constructor(message: string, offset: number, options?: { cause?: unknown }) {
    super(`${message} at byte ${offset}`, 'ERL_PEB_DECODE', options);
    this.offset = offset;
  }
}

/** A JS value with no Erlang counterpart. `path` names where it is, e.g. `$.user.roles[2]`. */
export class EncodeError extends ErlPebError {
  readonly path: string;
  constructor(message: string, path: string, options?: { cause?: unknown }) {
    super(`${message} at ${path}`, 'ERL_PEB_ENCODE', options);
    this.path = path;
  }
}

/** Could not connect, or the connection was lost. */
export class ConnectionError extends ErlPebError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERL_PEB_CONNECTION', options);
  }
}

/** No reply within the timeout. */
export class TimeoutError extends ErlPebError {
  readonly timeout: number;
  constructor(message: string, timeout: number, options?: { cause?: unknown }) {
    super(message, 'ERL_PEB_TIMEOUT', options);
    this.timeout = timeout;
  }
}

/** The connection was closed by this side (before or during the call). */
export class ClosedError extends ErlPebError {
  constructor(message = 'connection is closed', options?: { cause?: unknown }) {
    super(message, 'ERL_PEB_CLOSED', options);
  }
}

/** Erlang answered with an error: `reason` is the decoded Erlang term, `kind` error/exit/throw where known. */
export class RemoteError extends ErlPebError {
  readonly reason: unknown;
  readonly kind: 'error' | 'exit' | 'throw' | 'badrpc' | undefined;
  constructor(message: string, reason: unknown, kind?: RemoteError['kind'], options?: { cause?: unknown }) {
    super(message, 'ERL_PEB_REMOTE', options);
    this.reason = reason;
    this.kind = kind;
  }
}

/** Invalid options or configuration. */
export class ConfigError extends ErlPebError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERL_PEB_CONFIG', options);
  }
}
