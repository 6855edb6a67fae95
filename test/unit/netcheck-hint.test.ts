import { describe, expect, it } from 'vitest';
import { throwOnOverlayProblems } from '../../src/cli/node-join.js';
import type { NetcheckReport } from '../../src/cluster/netcheck.js';
import { UserError } from '../../src/core/errors.js';

const thrown = (r: NetcheckReport | undefined): UserError | undefined => {
  try {
    throwOnOverlayProblems(r);
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  return undefined;
};

describe('after a join, the overlay check points at the cause', () => {
  it('every pair passing is no error', () => {
    expect(thrown({ pairs: [{ a: 'lab1', b: 'lab2', ok: true }], silent: [] })).toBeUndefined();
    expect(thrown(undefined)).toBeUndefined();
  });

  it('a blocked pair blames the ports', () => {
    const e = thrown({ pairs: [{ a: 'lab1', b: 'lab2', ok: false }], silent: [] });
    expect(e?.message).toContain('lab1 <-> lab2');
    expect(e?.next).toContain('open 4789/udp and 7946/udp');
    expect(e?.next).not.toContain('images push');
  });

  it('a node that did not finish for another reason still blames the ports', () => {
    const e = thrown({
      pairs: [],
      silent: [{ node: 'lab3', why: 'its check task did not finish' }],
    });
    expect(e?.next).toContain('open 4789/udp');
  });

  it("a node without the check's image is told to push that image, not to open ports", () => {
    const e = thrown({
      pairs: [{ a: 'lab1', b: 'lab2', ok: true }],
      silent: [
        { node: 'lab3', why: 'rejected: No such image: busybox:1.36@sha256:0123abcd' },
        { node: 'lab4', why: 'rejected: No such image: busybox:1.36' },
      ],
    });
    expect(e?.message.split('\n')[0]).toBe(
      'The nodes joined, but the overlay check could not run on lab3, lab4: its image is not there and no registry gave it (busybox:1.36):',
    );
    expect(e?.next).toMatch(
      /^copy the image to the nodes: cluster-cli images push busybox:1\.36 --yes/,
    );
    expect(e?.next).toContain('cluster-cli node join <the same targets>');
    expect(e?.next).not.toContain('4789');
  });

  it('a missing image and a blocked pair: push first, and name the ports too', () => {
    const e = thrown({
      pairs: [{ a: 'lab1', b: 'lab2', ok: false }],
      silent: [{ node: 'lab3', why: 'rejected: No such image: busybox:1.36' }],
    });
    expect(e?.next).toContain('cluster-cli images push busybox:1.36 --yes');
    expect(e?.next).toContain('open 4789/udp and 7946/udp between the pairs above');
  });
});
