import { Duplex } from 'node:stream';
import type { Stream } from '../core/executor.js';

/**
 * An http socket made of a command's stdin and stdout. Node's http agent also
 * calls the socket methods of a TCP socket on it; those are no-ops here.
 */
export class StreamSocket extends Duplex {
  readonly #s: Stream;
  constructor(s: Stream) {
    super();
    this.#s = s;
    s.stdout.on('data', (d: Buffer) => {
      if (!this.push(d)) s.stdout.pause();
    });
    s.stdout.on('end', () => this.push(null));
    s.stdout.on('error', (e) => this.destroy(e));
    s.stdin.on('error', (e) => this.destroy(e));
    // stdout's end ends the socket; a failed command destroys it with its error.
    s.done.catch((e: unknown) => this.destroy(e instanceof Error ? e : new Error(String(e))));
  }
  override _read(): void {
    this.#s.stdout.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.#s.stdin.write(chunk, cb);
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.#s.stdin.end();
    cb();
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.#s.kill();
    cb(err);
  }
  /** What pg calls on a stream it was given: there is nothing to dial, the command is the connection. */
  connect(): this {
    queueMicrotask(() => this.emit('connect'));
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}
