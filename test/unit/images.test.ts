import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ConnectTarget, Ctx } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import {
  ImagePushError,
  imagePushSteps,
  mapLimit,
  planImagePush,
  probeImageIds,
  pushImages,
  runCopyImages,
} from '../../src/cluster/images.js';
import type { Cmd } from '../../src/core/cmd.js';
import { copyImages } from '../../src/core/copy.js';
import { CommandError, UserError } from '../../src/core/errors.js';
import type { Executor, RunOptions, RunResult, Stream } from '../../src/core/executor.js';
import { formatPlan } from '../../src/core/plan.js';
import { imageInspectId, imageLoad, imageSave } from '../../src/docker/images.js';

const ID_A = `sha256:${'a'.repeat(64)}`;
const ID_B = `sha256:${'b'.repeat(64)}`;
const ID_OLD = `sha256:${'0'.repeat(64)}`;

describe('image builders (exact argv)', () => {
  it('inspect: the ID only, read-only (runs in --dry-run)', () => {
    const c = imageInspectId('registry.example.com:5000/app:1.4');
    expect(c.argv).toEqual([
      'docker',
      'image',
      'inspect',
      '--format',
      '{{.Id}}',
      'registry.example.com:5000/app:1.4',
    ]);
    expect(c.readOnly).toBe(true);
  });

  it('save: every image in one tar on stdout; not run in --dry-run', () => {
    const c = imageSave(['app:1', 'redis:7-alpine']);
    expect(c.argv).toEqual(['docker', 'save', 'app:1', 'redis:7-alpine']);
    expect(c.readOnly).toBeUndefined();
    expect(() => imageSave([])).toThrow(TypeError);
  });

  it('load: the tar on stdin', () => {
    expect(imageLoad().argv).toEqual(['docker', 'load']);
    expect(imageLoad().stdin).toBeUndefined();
  });
});

describe('planImagePush', () => {
  const ids = (o: Record<string, string | undefined>) => new Map(Object.entries(o));

  it('copies what a node lacks or has under another ID; skips the same ID', () => {
    const plan = planImagePush({
      source: 'root@10.0.0.1',
      sourceIds: ids({ 'app:1': ID_A, 'redis:7': ID_B }),
      targets: [
        { host: 'node1', ids: ids({ 'app:1': ID_A, 'redis:7': ID_B }) },
        { host: 'node2', ids: ids({ 'app:1': undefined, 'redis:7': ID_B }) },
        { host: 'node3', ids: ids({ 'app:1': ID_OLD, 'redis:7': undefined }) },
      ],
    });
    expect(plan.images).toEqual([
      { image: 'app:1', id: ID_A },
      { image: 'redis:7', id: ID_B },
    ]);
    expect(plan.items).toEqual([
      { host: 'node1', image: 'app:1', id: ID_A, action: 'present' },
      { host: 'node1', image: 'redis:7', id: ID_B, action: 'present' },
      { host: 'node2', image: 'app:1', id: ID_A, action: 'copy' },
      { host: 'node2', image: 'redis:7', id: ID_B, action: 'present' },
      { host: 'node3', image: 'app:1', id: ID_A, action: 'copy', replaces: ID_OLD },
      { host: 'node3', image: 'redis:7', id: ID_B, action: 'copy' },
    ]);
    // node1 has everything: no stream to it at all.
    expect(plan.copies).toEqual([
      { host: 'node2', images: ['app:1'] },
      { host: 'node3', images: ['app:1', 'redis:7'] },
    ]);
  });

  it('an image missing at the source is one clear error, before anything is copied', () => {
    const run = () =>
      planImagePush({
        source: 'root@10.0.0.1',
        sourceIds: ids({ 'app:1': ID_A, 'app:2': undefined }),
        targets: [{ host: 'node2', ids: ids({ 'app:1': undefined, 'app:2': undefined }) }],
      });
    expect(run).toThrow(UserError);
    expect(run).toThrow(
      'Image not found on root@10.0.0.1 (the source): app:2. Nothing was copied.',
    );
  });

  it('as pipeline steps: one copy step per node that lacks images, in one wave; = for the rest', () => {
    const push = planImagePush({
      source: 'root@10.0.0.1',
      sourceIds: ids({ 'app:1': ID_A, 'redis:7': ID_B }),
      targets: [
        { host: 'node1', ids: ids({ 'app:1': ID_A, 'redis:7': ID_B }) },
        { host: 'node2', ids: ids({ 'app:1': undefined, 'redis:7': ID_B }) },
        { host: 'node3', ids: ids({ 'app:1': ID_OLD, 'redis:7': undefined }) },
      ],
    });
    const labels = new Map([
      ['node1', 'root@10.0.0.1'],
      ['node2', 'root@10.0.0.2'],
      ['node3', 'deploy@10.0.0.3:2222'],
    ]);
    const plan = imagePushSteps(push, labels);
    expect(formatPlan(plan)).toBe(
      [
        'images push from root@10.0.0.1: 2 to change, 3 unchanged',
        '  = [root@10.0.0.1] app:1 on node1 (present, same ID)',
        '  = [root@10.0.0.1] redis:7 on node1 (present, same ID)',
        '  = [root@10.0.0.2] redis:7 on node2 (present, same ID)',
        '  + [root@10.0.0.2] Copy app:1 to node2',
        '      $ docker save app:1 | docker load  (from root@10.0.0.1)',
        '  + [deploy@10.0.0.3:2222] Copy app:1 (replaces 000000000000), redis:7 to node3',
        '      $ docker save app:1 redis:7 | docker load  (from root@10.0.0.1)',
      ].join('\n'),
    );
    const changes = plan.steps.filter((st) => st.action === 'change');
    expect(changes.map((st) => [st.id, st.wave])).toEqual([
      ['copy:node2', 'copy'],
      ['copy:node3', 'copy'],
    ]);
    expect(changes[1]?.cmds).toEqual([copyImages('root@10.0.0.1', ['app:1', 'redis:7'])]);
    expect(() => imagePushSteps(push, new Map())).toThrow('no session label for node node1');
  });
});

/** A scripted executor: `docker image inspect` answers from `images`; stream() from `onStream`. */
class FakeExecutor implements Executor {
  readonly ran: string[][] = [];
  readonly streamed: string[][] = [];
  killed = 0;
  constructor(
    readonly label: string,
    readonly images: Map<string, string> = new Map(),
    readonly onStream?: (c: Cmd, self: FakeExecutor) => Stream,
    readonly dockerUp = true,
  ) {}

  async run(c: Cmd, opts: RunOptions = {}): Promise<RunResult> {
    this.ran.push([...c.argv]);
    let r: RunResult;
    if (c.argv[1] === 'version') {
      r = this.dockerUp
        ? { stdout: '{}', stderr: '', exitCode: 0 }
        : { stdout: '', stderr: 'Cannot connect to the Docker daemon', exitCode: 1 };
    } else if (c.argv[1] === 'image' && c.argv[2] === 'inspect') {
      const ref = c.argv.at(-1) as string;
      const id = this.images.get(ref);
      r = id
        ? { stdout: `${id}\n`, stderr: '', exitCode: 0 }
        : { stdout: '', stderr: `Error: No such image: ${ref}\n`, exitCode: 1 };
    } else {
      throw new Error(`unexpected command ${c.argv.join(' ')}`);
    }
    if (r.exitCode !== 0 && !opts.allowFailure)
      throw new CommandError(this.label, c.argv, r.exitCode, r.stderr);
    return r;
  }

  async stream(c: Cmd): Promise<Stream> {
    this.streamed.push([...c.argv]);
    if (!this.onStream) throw new Error(`${this.label}: unexpected stream ${c.argv.join(' ')}`);
    return this.onStream(c, this);
  }

  async close(): Promise<void> {}
}

/** `docker save`: `total` bytes in 64 KiB chunks, produced only as fast as they are read. */
function saveStream(total: number, self: FakeExecutor, stats = { produced: 0 }): Stream {
  let sent = 0;
  const stdout = new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(64 * 1024, total - sent);
      sent += n;
      stats.produced = sent;
      this.push(Buffer.alloc(n, 1));
    },
  });
  // Like a process: exits 0 after writing everything, or dies when killed.
  const done = new Promise<RunResult>((resolve, reject) =>
    stdout.on('close', () =>
      sent >= total && stdout.readableEnded
        ? resolve({ stdout: '', stderr: '', exitCode: 0 })
        : reject(new CommandError(self.label, ['docker', 'save'], null, 'killed')),
    ),
  );
  done.catch(() => {});
  return {
    stdin: new PassThrough(),
    stdout,
    done,
    kill: () => {
      self.killed++;
      stdout.destroy();
    },
  };
}

/** `docker load`: counts what arrives (slowly, to exercise backpressure), then prints one line. */
function loadStream(
  self: FakeExecutor,
  opts: { failAfter?: number; slow?: boolean; stats?: { received: number; maxLag: number } } = {},
  source?: { produced: number },
): Stream {
  const stats = opts.stats ?? { received: 0, maxLag: 0 };
  const stdout = new PassThrough();
  let reject: (e: Error) => void = () => {};
  let resolve: (r: RunResult) => void = () => {};
  const done = new Promise<RunResult>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  done.catch(() => {});
  const stdin = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      stats.received += chunk.length;
      if (source) stats.maxLag = Math.max(stats.maxLag, source.produced - stats.received);
      if (opts.failAfter !== undefined && stats.received >= opts.failAfter) {
        reject(
          new CommandError(
            self.label,
            ['docker', 'load'],
            1,
            'write /var/lib/docker: no space left on device',
          ),
        );
        cb(new Error('write EPIPE'));
        return;
      }
      if (opts.slow) setImmediate(cb);
      else cb();
    },
    final(cb) {
      stdout.end('Loaded image: app:1\n');
      resolve({ stdout: '', stderr: '', exitCode: 0 });
      cb();
    },
  });
  return {
    stdin,
    stdout,
    done,
    kill: () => {
      self.killed++;
      stdin.destroy();
    },
  };
}

describe('probeImageIds', () => {
  it('"No such image" is the fact "absent"; an ID otherwise', async () => {
    const exec = new FakeExecutor('root@n1', new Map([['app:1', ID_A]]));
    const ids = await probeImageIds(exec, ['app:1', 'gone:1']);
    expect([...ids]).toEqual([
      ['app:1', ID_A],
      ['gone:1', undefined],
    ]);
  });

  it('any other failure throws with its cause instead of reading as absent', async () => {
    const exec = new FakeExecutor('deploy@n1');
    exec.run = async () => ({
      stdout: '',
      stderr: 'permission denied while trying to connect to the Docker daemon socket',
      exitCode: 1,
    });
    await expect(probeImageIds(exec, ['app:1'])).rejects.toThrow(
      /deploy@n1: command failed \(exit 1\): docker image inspect .*\n.*permission denied/,
    );
  });
});

describe('pushImages (save → load, streamed)', () => {
  it('pipes every byte from save to load and counts them', async () => {
    const source = new FakeExecutor('root@n1', new Map(), (_c, self) =>
      saveStream(5_000_000, self),
    );
    const stats = { received: 0, maxLag: 0 };
    const target = new FakeExecutor('root@n2', new Map(), (_c, self) =>
      loadStream(self, { stats }),
    );
    const seen: number[] = [];
    const r = await pushImages(source, target, ['app:1'], { onBytes: (b) => seen.push(b) });
    expect(r.bytes).toBe(5_000_000);
    expect(stats.received).toBe(5_000_000);
    expect(seen.at(-1)).toBe(5_000_000);
    expect(r.loaded).toBe('Loaded image: app:1');
    expect(source.streamed).toEqual([['docker', 'save', 'app:1']]);
    expect(target.streamed).toEqual([['docker', 'load']]);
    expect(source.killed + target.killed).toBe(0);
  });

  it('memory stays bounded: a slow target holds the source back (backpressure)', async () => {
    const produced = { produced: 0 };
    const source = new FakeExecutor('root@n1', new Map(), (_c, self) =>
      saveStream(32 * 1024 * 1024, self, produced),
    );
    const stats = { received: 0, maxLag: 0 };
    const target = new FakeExecutor('root@n2', new Map(), (_c, self) =>
      loadStream(self, { slow: true, stats }, produced),
    );
    const r = await pushImages(source, target, ['big:1']);
    expect(r.bytes).toBe(32 * 1024 * 1024);
    // Only the streams' buffers are ever in flight (a few 64 KiB chunks), not the image.
    expect(stats.maxLag).toBeLessThan(512 * 1024);
  });

  it('a failing load stops both sides and names the target, the image and the cause', async () => {
    const source = new FakeExecutor('root@n1', new Map(), (_c, self) =>
      saveStream(100 * 1024 * 1024, self),
    );
    const target = new FakeExecutor('root@n2', new Map(), (_c, self) =>
      loadStream(self, { failAfter: 1024 * 1024 }),
    );
    const err = await pushImages(source, target, ['app:1', 'redis:7']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImagePushError);
    const e = err as ImagePushError;
    expect(e.host).toBe('root@n2');
    expect(e.images).toEqual(['app:1', 'redis:7']);
    // docker load's own error, not the EPIPE it left on the stream
    expect(e.message).toMatch(
      /^root@n2: copying app:1, redis:7 failed: root@n2: command failed \(exit 1\): docker load\n.*no space left on device/,
    );
    expect(source.killed).toBe(1);
    expect(target.killed).toBe(1);
  });
});

describe('runCopyImages (the copy apply() is given)', () => {
  it('streams, then checks the IDs on the target against the source’s', async () => {
    const source = new FakeExecutor('root@n1', new Map(), (_c, self) => saveStream(1000, self));
    const target = new FakeExecutor('root@n2', new Map(), (_c, self) => {
      target.images.set('app:1', ID_A);
      return loadStream(self);
    });
    const seen: number[] = [];
    const r = await runCopyImages(copyImages('root@n1', ['app:1']), source, target, {
      ids: new Map([['app:1', ID_A]]),
      onBytes: (b) => seen.push(b),
    });
    expect(r.bytes).toBe(1000);
    expect(seen.at(-1)).toBe(1000);
    expect(target.ran.map((a) => a.join(' '))).toEqual([
      'docker image inspect --format {{.Id}} app:1',
    ]);
  });

  it('a name that points at another image after docker load is a failed copy', async () => {
    const source = new FakeExecutor('root@n1', new Map(), (_c, self) => saveStream(1000, self));
    const target = new FakeExecutor('root@n2', new Map(), (_c, self) => {
      target.images.set('app:1', ID_OLD);
      return loadStream(self);
    });
    const err = await runCopyImages(copyImages('root@n1', ['app:1']), source, target, {
      ids: new Map([['app:1', ID_A]]),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImagePushError);
    expect((err as Error).message).toBe(
      `root@n2: copying app:1 failed: after docker load the target has app:1 = ${ID_OLD}, not the source's ${ID_A}`,
    );
  });
});

describe('mapLimit', () => {
  it('runs at most `limit` at once and keeps the input order', async () => {
    let running = 0;
    let peak = 0;
    const r = await mapLimit([5, 1, 4, 2, 3, 0], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((res) => setTimeout(res, n));
      running--;
      return n * 10;
    });
    expect(r).toEqual([50, 10, 40, 20, 30, 0]);
    expect(peak).toBe(2);
  });
});

describe('cluster-cli images push (in-process, scripted executors)', () => {
  const CONFIG = `domain: app.example.com
email: ops@example.com
app:
  image: app:1
hosts:
  - { name: node1, address: 10.0.0.1 }
  - { name: node2, address: 10.0.0.2 }
  - { name: node3, address: 10.0.0.3 }
`;

  function harness(hosts: Record<string, FakeExecutor | Error>, config = CONFIG) {
    let stdout = '';
    let stderr = '';
    const connected: string[] = [];
    const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-images-'));
    writeFileSync(join(cwd, 'cluster.yaml'), config);
    const ctx: Ctx = {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      env: {},
      cwd,
      interactive: false,
      tty: false,
      prompts: {
        password: () => Promise.reject(new Error('no prompts')),
        input: () => Promise.reject(new Error('no prompts')),
        select: () => Promise.reject(new Error('no prompts')),
        confirm: () => Promise.reject(new Error('no prompts')),
      },
      connect: async (t: ConnectTarget) => {
        const key = t.address ?? 'local';
        connected.push(key);
        const h = hosts[key];
        if (h instanceof Error) throw h;
        if (!h) throw new Error(`no such test host ${key}`);
        return h;
      },
    };
    return {
      connected,
      run: (...argv: string[]) => main(argv, ctx),
      get stdout() {
        return stdout;
      },
      get stderr() {
        return stderr;
      },
    };
  }

  const local = () => new FakeExecutor('local', new Map(), undefined, false);

  it('an unknown --node fails before connecting anywhere and lists the known ones', async () => {
    const h = harness({});
    expect(await h.run('images', 'push', '--node', 'node2', '--node', 'nodeX', 'app:1')).toBe(2);
    expect(h.stderr).toBe(
      'error: Unknown node nodeX: cluster.yaml lists node1, node2, node3.\nnext: pass --node with one of: node1, node2, node3\n',
    );
    expect(h.connected).toEqual([]);
  });

  it('--dry-run --json: probes, plans, copies nothing', async () => {
    const n1 = new FakeExecutor('root@10.0.0.1', new Map([['app:1', ID_A]]));
    const n2 = new FakeExecutor('root@10.0.0.2');
    const n3 = new FakeExecutor('root@10.0.0.3', new Map([['app:1', ID_A]]));
    const h = harness({ local: local(), '10.0.0.1': n1, '10.0.0.2': n2, '10.0.0.3': n3 });
    expect(await h.run('images', 'push', 'app:1', '--dry-run', '--json')).toBe(0);
    // the shared pipeline's dry-run document: what was found (preflight) and the plan
    const doc = JSON.parse(h.stdout);
    expect(doc.dryRun).toBe(true);
    expect(doc.preflight.source).toEqual({ from: 'manager', host: 'root@10.0.0.1', node: 'node1' });
    expect(doc.preflight.images).toEqual([{ image: 'app:1', id: ID_A }]);
    expect(
      doc.preflight.nodes.map((n: { node: string; images: { status: string }[] }) => [
        n.node,
        n.images[0]?.status,
      ]),
    ).toEqual([
      ['node1', 'present'],
      ['node2', 'copy'],
      ['node3', 'present'],
    ]);
    expect(doc.plan.steps.filter((st: { action: string }) => st.action === 'change')).toEqual([
      {
        id: 'copy:node2',
        host: 'root@10.0.0.2',
        title: 'Copy app:1 to node2',
        action: 'change',
        commands: ['docker save app:1 | docker load  (from root@10.0.0.1)'],
      },
    ]);
    expect([...n1.streamed, ...n2.streamed, ...n3.streamed]).toEqual([]);
  });

  it('without an image argument it pushes the images the stack uses', async () => {
    const have = new Map([
      ['app:1', ID_A],
      ['postgres:16-alpine', ID_B],
      ['redis:7-alpine', ID_B],
      ['traefik:v3.6', ID_B],
    ]);
    const n1 = new FakeExecutor('root@10.0.0.1', have);
    const h = harness({ local: local(), '10.0.0.1': n1 });
    expect(await h.run('images', 'push', '--node', 'node1', '--dry-run')).toBe(0);
    expect(h.stdout).toContain('images push from root@10.0.0.1: 0 to change, 4 unchanged');
    expect(h.stdout).toContain('Dry run: nothing was changed (and nothing would be).');
    expect(n1.ran.filter((a) => a[2] === 'inspect').map((a) => a.at(-1))).toEqual([
      'app:1',
      'postgres:16-alpine',
      'redis:7-alpine',
      'traefik:v3.6',
      'app:1',
      'postgres:16-alpine',
      'redis:7-alpine',
      'traefik:v3.6',
    ]);
  });

  it('a failed node does not stop the others; exit 1 names it and the retry command', async () => {
    const n1 = new FakeExecutor('root@10.0.0.1', new Map([['app:1', ID_A]]), (_c, self) =>
      saveStream(300_000, self),
    );
    const n2 = new FakeExecutor('root@10.0.0.2', new Map(), (_c, self) => {
      // docker load "stores" the image
      n2.images.set('app:1', ID_A);
      return loadStream(self);
    });
    const h = harness({
      local: local(),
      '10.0.0.1': n1,
      '10.0.0.2': n2,
      '10.0.0.3': new UserError('Cannot connect to 10.0.0.3:22: connection refused.'),
    });
    expect(await h.run('images', 'push', 'app:1', '--from', 'manager', '--yes')).toBe(1);
    // before the plan: node3 is left out of it, with the reason
    expect(h.stdout).toContain(
      'Not in the plan (connect or probe failed):\n  node3 (10.0.0.3): Cannot connect to 10.0.0.3:22',
    );
    expect(h.stdout).toContain(
      '  + [root@10.0.0.2] Copy app:1 to node2\n      $ docker save app:1 | docker load  (from root@10.0.0.1)',
    );
    // progress (plain, no terminal) and the summary
    expect(h.stdout).toContain('    node2: done, 300.0 kB in ');
    expect(h.stdout).toMatch(
      /Copied 1 image\(s\) to 1 node\(s\), 300\.0 kB in all; 1 already present\.\n {2}node2 \(root@10\.0\.0\.2\): 300\.0 kB in [\d.]+s \(.*\/s\)\n {2}node3 \(10\.0\.0\.3\) FAILED: Cannot connect/,
    );
    expect(h.stderr).toBe(
      'error: images push failed on node3 (Cannot connect to 10.0.0.3:22: connection refused.).\nnext: cluster-cli images push --node node3 --from manager --yes app:1\n',
    );
    expect(h.connected).not.toContain('local');
  });

  it('--json: one document, per node and image: copied | present | failed, with bytes', async () => {
    const n1 = new FakeExecutor('root@10.0.0.1', new Map([['app:1', ID_A]]), (_c, self) =>
      saveStream(1000, self),
    );
    const n2 = new FakeExecutor('root@10.0.0.2', new Map(), (_c, self) => {
      n2.images.set('app:1', ID_A);
      return loadStream(self);
    });
    // node3 loads something else under that name: caught by the check after loading
    const n3 = new FakeExecutor('root@10.0.0.3', new Map(), (_c, self) => {
      n3.images.set('app:1', ID_OLD);
      return loadStream(self);
    });
    const h = harness({ local: local(), '10.0.0.1': n1, '10.0.0.2': n2, '10.0.0.3': n3 });
    expect(await h.run('images', 'push', 'app:1', '--yes', '--json')).toBe(1);
    const doc = JSON.parse(h.stdout);
    expect(
      doc.nodes.map((n: { node: string; status: string; bytes: number; images: unknown[] }) => [
        n.node,
        n.status,
        n.bytes,
        n.images,
      ]),
    ).toEqual([
      ['node1', 'ok', 0, [{ image: 'app:1', status: 'present' }]],
      ['node2', 'ok', 1000, [{ image: 'app:1', status: 'copied' }]],
      ['node3', 'failed', 1000, [{ image: 'app:1', status: 'failed' }]],
    ]);
    expect(doc.dryRun).toBe(false);
    expect(doc.copied).toBe(1);
    expect(doc.failed).toEqual(['node3']);
    expect(doc.nodes[2].error).toMatch(
      /^root@10\.0\.0\.3: copying app:1 failed: after docker load the target has app:1 = sha256:0+, not the source's sha256:a+$/,
    );
    expect(JSON.parse(h.stderr).next).toBe('cluster-cli images push --node node3 --yes app:1');
  });

  it('an image missing at the source: one error line, nothing streamed', async () => {
    const n1 = new FakeExecutor('root@10.0.0.1');
    const h = harness({ local: local(), '10.0.0.1': n1 });
    expect(await h.run('images', 'push', 'nope:1', '--node', 'node1', '--yes')).toBe(2);
    expect(h.stderr.split('\n')[0]).toBe(
      'error: Image not found on root@10.0.0.1 (the source): nope:1. Nothing was copied.',
    );
    expect(n1.streamed).toEqual([]);
  });

  it('without a terminal a copy needs --yes', async () => {
    const n1 = new FakeExecutor('root@10.0.0.1', new Map([['app:1', ID_A]]));
    const n2 = new FakeExecutor('root@10.0.0.2');
    const h = harness({ local: local(), '10.0.0.1': n1, '10.0.0.2': n2 });
    expect(await h.run('images', 'push', 'app:1', '--node', 'node2')).toBe(2);
    expect(h.stderr).toContain(
      'images push would make 1 change(s) on root@10.0.0.2; refusing without confirmation',
    );
    expect(n2.streamed).toEqual([]);
  });

  it('copies to at most 4 nodes at once; every node gets its own stream', async () => {
    const names = ['node1', 'node2', 'node3', 'node4', 'node5', 'node6', 'node7'];
    const config = `domain: app.example.com
email: ops@example.com
app:
  image: app:1
hosts:
${names.map((n, i) => `  - { name: ${n}, address: 10.0.0.${i + 1} }`).join('\n')}
`;
    let loading = 0;
    let peak = 0;
    const n1 = new FakeExecutor('root@10.0.0.1', new Map([['app:1', ID_A]]), (_c, self) =>
      saveStream(2_000_000, self),
    );
    const targets = names.slice(1).map((_n, i) => {
      const t: FakeExecutor = new FakeExecutor(`root@10.0.0.${i + 2}`, new Map(), (_c, self) => {
        loading++;
        peak = Math.max(peak, loading);
        const s = loadStream(self, { slow: true });
        s.done.then(
          () => {
            loading--;
            t.images.set('app:1', ID_A);
          },
          () => loading--,
        );
        return s;
      });
      return t;
    });
    const h = harness(
      {
        local: local(),
        '10.0.0.1': n1,
        ...Object.fromEntries(targets.map((t, i) => [`10.0.0.${i + 2}`, t])),
      },
      config,
    );
    expect(await h.run('images', 'push', 'app:1', '--yes', '--json')).toBe(0);
    expect(peak).toBe(4);
    expect(n1.streamed).toHaveLength(6);
    const doc = JSON.parse(h.stdout);
    expect(doc.copied).toBe(6);
    expect(doc.nodes.map((n: { bytes: number }) => n.bytes)).toEqual([
      0, 2_000_000, 2_000_000, 2_000_000, 2_000_000, 2_000_000, 2_000_000,
    ]);
    expect(doc.timingsMs.copy).toBeGreaterThan(0);
  });
});
