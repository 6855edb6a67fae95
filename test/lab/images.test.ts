import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { dockerOf, type Lab, type LabHost, labHost, readLab, runCli } from './lab.js';

/**
 * `cluster-cli images push` for real: the built CLI streams `docker save` on
 * lab1 (the first manager) into `docker load` on lab2 and lab3 over SSH.
 * It only adds and removes one uniquely named tag of the lab's app image, so
 * it can run next to other lab tests: no swarm state, containers or other
 * images are touched. Results are checked through each host's Docker API.
 */

const REPO = 'cluster-cli-test/push';
const TAG = randomBytes(4).toString('hex');
const IMAGE = `${REPO}:${TAG}`;

interface PushDoc {
  source: { from: string; host: string; node?: string };
  images: { image: string; id: string }[];
  nodes: {
    node: string;
    status: 'ok' | 'failed';
    bytes: number;
    ms: number;
    images: { image: string; status: string }[];
  }[];
  copied: number;
  present: number;
  failed: string[];
  timingsMs: { total: number; copy?: number };
}

let lab: Lab;
let hosts: LabHost[];
let dockers: Docker[];
let dir: string;
let config: string;

async function imageId(d: Docker, ref: string): Promise<string | undefined> {
  try {
    return ((await d.getImage(ref).inspect()) as { Id: string }).Id;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
}

function push(...args: string[]) {
  return runCli(['images', 'push', '-c', config, ...args], { cwd: dir });
}

beforeAll(async () => {
  lab = readLab();
  hosts = ['lab1', 'lab2', 'lab3'].map((n) => labHost(lab, n));
  dockers = hosts.map(dockerOf);
  // A new name for the lab's small app image, on lab1 only.
  await dockers[0]?.getImage(lab.images.app).tag({ repo: REPO, tag: TAG });

  dir = mkdtempSync(join(tmpdir(), 'cluster-cli-images-'));
  config = join(dir, 'cluster.yaml');
  writeFileSync(
    config,
    stringify({
      domain: 'app.lab.test',
      email: 'ops@lab.test',
      topology: 'three-node',
      ssh: { identityFile: lab.sshKey, knownHostsFile: lab.knownHosts },
      hosts: hosts.map((h, i) => ({
        name: h.name,
        address: h.address,
        user: 'root',
        role: i === 0 ? 'manager' : 'worker',
      })),
    }),
  );
});

afterAll(async () => {
  // Removing a tag the image has other names for only untags it.
  await Promise.all(
    (dockers ?? []).map((d) =>
      d
        .getImage(IMAGE)
        .remove({ noprune: true })
        .catch((err: { statusCode?: number }) => {
          if (err.statusCode !== 404) throw err;
        }),
    ),
  );
});

describe('cluster-cli images push (lab)', () => {
  it('streams the image from the first manager to the nodes that lack it', async () => {
    const id = await imageId(dockers[0] as Docker, IMAGE);
    expect(id).toMatch(/^sha256:/);
    expect(await imageId(dockers[1] as Docker, IMAGE)).toBeUndefined();
    expect(await imageId(dockers[2] as Docker, IMAGE)).toBeUndefined();

    const r = await push('--from', 'manager', IMAGE, '--yes', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as PushDoc;
    expect(doc.source).toEqual({
      from: 'manager',
      host: `root@${hosts[0]?.address}`,
      node: 'lab1',
    });
    expect(doc.images).toEqual([{ image: IMAGE, id }]);
    expect(doc.nodes.map((n) => [n.node, n.status, n.images])).toEqual([
      ['lab1', 'ok', [{ image: IMAGE, status: 'present' }]],
      ['lab2', 'ok', [{ image: IMAGE, status: 'copied' }]],
      ['lab3', 'ok', [{ image: IMAGE, status: 'copied' }]],
    ]);
    expect(doc.copied).toBe(2);
    expect(doc.failed).toEqual([]);
    // both copies ran in one wave of the shared pipeline
    expect(doc.timingsMs.copy).toBeGreaterThan(0);
    for (const n of doc.nodes.slice(1)) expect(n.bytes).toBeGreaterThan(1_000_000);
    console.log(
      `images push: ${doc.nodes
        .slice(1)
        .map((n) => `${n.node} ${n.bytes} bytes in ${n.ms} ms`)
        .join(', ')}; copy wave ${doc.timingsMs.copy} ms; whole command ${doc.timingsMs.total} ms`,
    );

    // What each node's own Docker says: the same image, under the same name.
    expect(await imageId(dockers[1] as Docker, IMAGE)).toBe(id);
    expect(await imageId(dockers[2] as Docker, IMAGE)).toBe(id);
  });

  it('a second run finds it everywhere and copies nothing', async () => {
    const r = await push('--from', 'manager', IMAGE, '--yes', '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as PushDoc;
    expect(doc.nodes.map((n) => [n.node, n.status, n.bytes, n.images])).toEqual(
      hosts.map((h) => [h.name, 'ok', 0, [{ image: IMAGE, status: 'present' }]]),
    );
    expect(doc.copied).toBe(0);
    expect(doc.present).toBe(3);
  });

  it('--dry-run in text: the plan, nothing copied', async () => {
    const r = await push('--from', 'manager', IMAGE, '--node', 'lab2,lab3', '--dry-run');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `images push from root@${hosts[0]?.address}: 0 to change, 2 unchanged`,
    );
    expect(r.stdout).toContain(`= [root@${hosts[1]?.address}] ${IMAGE} on lab2 (present, same ID)`);
    expect(r.stdout).toContain(`= [root@${hosts[2]?.address}] ${IMAGE} on lab3 (present, same ID)`);
    expect(r.stdout).not.toContain(' on lab1 ');
    expect(r.stdout).toContain('Dry run: nothing was changed (and nothing would be).');
  });

  it('an image missing at the source is one clear error line and a non-zero exit', async () => {
    const missing = `${REPO}:missing-${TAG}`;
    const r = await push('--from', 'manager', missing, '--yes');
    expect(r.code).toBe(2);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(
      `error: Image not found on root@${hosts[0]?.address} (the source): ${missing}. Nothing was copied.`,
    );
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^next: /);
    for (const d of dockers) expect(await imageId(d, missing)).toBeUndefined();
  });
});
