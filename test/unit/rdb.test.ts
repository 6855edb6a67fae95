import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { RdbEofMarkStripper } from '../../src/backup/rdb.js';

const rdb = Buffer.concat([
  Buffer.from('REDIS0010'),
  Buffer.alloc(5000, 7),
  Buffer.from([0xff, 1, 2, 3, 4, 5, 6, 7, 8]),
]);
const mark = Buffer.from(`${'a'.repeat(20)}0123456789abcdef0123`);

async function through(parts: Buffer[]): Promise<Buffer> {
  return buffer(Readable.from(parts).pipe(new RdbEofMarkStripper()));
}

describe('RdbEofMarkStripper', () => {
  it('drops the diskless transfer mark after the RDB end, however the bytes are chunked', async () => {
    const all = Buffer.concat([rdb, mark]);
    for (const size of [1, 7, 48, 49, 50, 4096, all.length]) {
      const parts: Buffer[] = [];
      for (let i = 0; i < all.length; i += size) parts.push(all.subarray(i, i + size));
      expect((await through(parts)).equals(rdb), `chunks of ${size}`).toBe(true);
    }
  });

  it('leaves a snapshot without a mark as it is', async () => {
    expect((await through([rdb])).equals(rdb)).toBe(true);
    const notHex = Buffer.concat([rdb, Buffer.from('z'.repeat(40))]);
    expect((await through([notHex])).equals(notHex)).toBe(true);
    expect((await through([Buffer.from('tiny')])).toString()).toBe('tiny');
  });
});
