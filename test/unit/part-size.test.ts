import { describe, expect, it } from 'vitest';
import { MAX_PARTS, PART_SIZE, partSizeFor } from '../../src/backup/s3.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('partSizeFor', () => {
  it('is S3’s minimum part (5 MiB) without a hint or for anything up to ~45 GiB', () => {
    expect(PART_SIZE).toBe(5 * MiB);
    expect(partSizeFor()).toBe(5 * MiB);
    expect(partSizeFor(0)).toBe(5 * MiB);
    expect(partSizeFor(1.5 * GiB)).toBe(5 * MiB);
    expect(partSizeFor(40 * GiB)).toBe(5 * MiB);
  });

  it('grows in whole MiB so a large artifact stays under the part cap, with room to spare', () => {
    for (const size of [50 * GiB, 200 * GiB, 1024 * GiB]) {
      const part = partSizeFor(size);
      expect(part % MiB).toBe(0);
      expect(part).toBeGreaterThan(5 * MiB);
      // 5 % more than the hint still fits
      expect(Math.ceil((size * 1.05) / part)).toBeLessThanOrEqual(MAX_PARTS);
    }
    expect(partSizeFor(200 * GiB)).toBe(23 * MiB);
  });

  it('never exceeds S3’s largest part (5 GiB)', () => {
    expect(partSizeFor(100_000 * GiB)).toBe(5 * GiB);
  });
});
