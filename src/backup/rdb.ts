import { Transform, type TransformCallback } from 'node:stream';

/**
 * `redis-cli --rdb -` writes the snapshot to stdout, and when the server
 * sends it diskless (the default from Redis 7) the 40-character EOF mark of
 * that transfer comes after the RDB's own end (opcode 0xFF and an 8-byte
 * checksum): redis-cli would truncate it off a file, but cannot off a pipe.
 * Redis loads such a file as dump.rdb, yet refuses it as an AOF base. This
 * passthrough holds back the last 49 bytes and drops the mark when they are
 * exactly 0xFF, a checksum and 40 hex digits.
 */
export class RdbEofMarkStripper extends Transform {
  #tail = Buffer.alloc(0);
  static readonly HOLD = 1 + 8 + 40;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const all = Buffer.concat([this.#tail, chunk]);
    const keep = Math.max(0, all.length - RdbEofMarkStripper.HOLD);
    this.#tail = all.subarray(keep);
    cb(null, keep > 0 ? all.subarray(0, keep) : undefined);
  }

  override _flush(cb: TransformCallback): void {
    const t = this.#tail;
    const marked =
      t.length === RdbEofMarkStripper.HOLD &&
      t[0] === 0xff &&
      /^[0-9a-f]{40}$/.test(t.subarray(9).toString('latin1'));
    cb(null, marked ? t.subarray(0, 9) : t);
  }
}
