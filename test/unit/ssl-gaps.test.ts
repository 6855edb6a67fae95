import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import type { ConnectFn } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { checkRules } from '../../src/config/rules.js';
import {
  Config,
  type ConfigInput,
  LETS_ENCRYPT,
  LETS_ENCRYPT_STAGING,
} from '../../src/config/schema.js';
import type { Cmd } from '../../src/core/cmd.js';
import type { Executor } from '../../src/core/executor.js';
import {
  configLs,
  dockerInfo,
  networkLs,
  nodeInspect,
  nodeLs,
  secretLs,
  stackServices,
} from '../../src/docker/commands.js';
import { buildStackModel } from '../../src/stack/model.js';
import { renderStack } from '../../src/stack/render.js';
import { testCtx } from '../helpers/ctx.js';
import { dockerCliAvailable, dockerStackConfig } from '../helpers/docker-stack-config.js';

/**
 * Gaps of the TLS / admin-users feature: `ssl enable --staging`, the proxy's
 * own ACME on more than one replica, and the first admin handed to the app.
 *
 * The CA is on the internet, so node:https is replaced by a fake CA that
 * records every URL asked and answers with an ACME directory; the hosts are
 * fake swarm managers that answer the read-only probes (anything else fails
 * the test). The rest is the real program, run in-process.
 */

const ca = vi.hoisted(() => ({ asked: [] as string[] }));

vi.mock('node:https', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:https')>();
  const { EventEmitter } = await import('node:events');
  const request = (url: URL | string, _opts: unknown, cb: (res: IncomingMessage) => void) => {
    ca.asked.push(String(url));
    const req = Object.assign(new EventEmitter(), {
      setTimeout: () => req,
      destroy: (err?: Error) => {
        if (err) req.emit('error', err);
        return req;
      },
      end: () => {
        const base = new URL(String(url)).origin;
        const body = JSON.stringify({
          newNonce: `${base}/acme/new-nonce`,
          newAccount: `${base}/acme/new-acct`,
          newOrder: `${base}/acme/new-order`,
        });
        const res = Object.assign(Readable.from([Buffer.from(body)]), {
          statusCode: 200,
          headers: { 'content-type': 'application/json' },
        });
        setImmediate(() => cb(res as unknown as IncomingMessage));
        return req;
      },
    });
    return req;
  };
  return { ...real, request, default: { ...real, request } };
});

// ------------------------------------------------------------ fake swarm --

interface FakeNode {
  readonly name: string;
  /** Address cluster-cli connects to over SSH (cluster.yaml's `address`). */
  readonly address: string;
  /** Swarm address (Status.Addr). */
  readonly addr: string;
  readonly role: 'manager' | 'worker';
  readonly state?: 'ready' | 'down';
  readonly labels?: Record<string, string>;
}

const SWARM_ID = 'c1uster1d0000000000000000';
const id = (n: FakeNode) => `n0de${n.name}`.padEnd(25, '0');
const same = (c: Cmd, want: Cmd) => c.argv.join('\u0000') === want.argv.join('\u0000');

/** A manager of a fresh swarm (no stack deployed yet): answers the read-only probes only. */
function fakeManager(me: FakeNode, nodes: readonly FakeNode[], ran: string[]): Executor {
  const ok = (stdout = '') => ({ stdout, stderr: '', exitCode: 0 });
  const lines = (xs: unknown[]) => `${xs.map((x) => JSON.stringify(x)).join('\n')}\n`;
  return {
    label: `root@${me.address}`,
    address: me.address,
    async run(c: Cmd) {
      ran.push(c.argv.join(' '));
      if (same(c, dockerInfo()))
        return ok(
          JSON.stringify({
            Swarm: {
              LocalNodeState: 'active',
              ControlAvailable: true,
              NodeID: id(me),
              NodeAddr: me.addr,
              Cluster: { ID: SWARM_ID },
            },
          }),
        );
      if (same(c, nodeLs())) return ok(lines(nodes.map((n) => ({ ID: id(n), Self: n === me }))));
      if (
        c.argv.slice(0, 3).join(' ') === 'docker node inspect' &&
        same(c, nodeInspect(c.argv.slice(5)))
      )
        return ok(
          lines(
            nodes
              .filter((n) => c.argv.includes(id(n)))
              .map((n) => ({
                ID: id(n),
                Spec: { Role: n.role, Availability: 'active', Labels: n.labels ?? {} },
                Description: { Hostname: n.name, Engine: { EngineVersion: '27.5.1' } },
                Status: { State: n.state ?? 'ready', Addr: n.addr },
                ManagerStatus:
                  n.role === 'manager'
                    ? { Addr: `${n.addr}:2377`, Reachability: 'reachable', Leader: n === me }
                    : null,
              })),
          ),
        );
      if (same(c, networkLs()) || same(c, secretLs()) || same(c, configLs())) return ok('');
      if (same(c, stackServices('platform'))) return ok('');
      throw new Error(`fake manager ${me.name}: unexpected command: ${c.argv.join(' ')}`);
    },
    stream: () => Promise.reject(new Error('fake manager: no streams')),
    close: async () => {},
  };
}

function yamlOf(nodes: readonly FakeNode[]): string {
  return [
    '# the shop',
    'domain: apps.example.com',
    'email: ops@example.com',
    'hosts:',
    ...nodes.flatMap((n) => [
      `  - name: ${n.name}`,
      `    address: ${n.address}`,
      ...(n.role === 'worker' ? ['    role: worker'] : []),
    ]),
    '',
  ].join('\n');
}

/** cluster.yaml in a fresh folder, a swarm of `nodes`, and `cluster-cli …` run in-process. */
function harness(nodes: readonly FakeNode[]) {
  const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-ssl-gaps-'));
  const file = join(cwd, 'cluster.yaml');
  const text = yamlOf(nodes);
  writeFileSync(file, text);
  const ran: string[] = [];
  const connected: string[] = [];
  const connect: ConnectFn = async (t) => {
    const me = nodes.find((n) => n.address === t.address);
    if (!me) throw new Error(`no fake host at ${t.address}`);
    connected.push(me.name);
    return fakeManager(me, nodes, ran);
  };
  const t = testCtx({ cwd, connect });
  return {
    ran,
    connected,
    text,
    fileText: () => readFileSync(file, 'utf8'),
    stdout: t.stdout,
    stderr: t.stderr,
    run: async (...argv: string[]) => {
      t.reset();
      ran.length = 0;
      connected.length = 0;
      ca.asked.length = 0;
      return main(argv, t.ctx);
    },
  };
}

const node1: FakeNode = {
  name: 'node1',
  address: '203.0.113.11',
  addr: '10.0.0.1',
  role: 'manager',
};
const node2: FakeNode = {
  name: 'node2',
  address: '203.0.113.12',
  addr: '10.0.0.2',
  role: 'manager',
};
const worker: FakeNode = {
  name: 'worker1',
  address: '203.0.113.13',
  addr: '10.0.0.3',
  role: 'worker',
};

interface PlanJson {
  dryRun: boolean;
  plan: { title: string; steps: { id: string; title: string; action: string }[] };
}

// ---------------------------------------------------------- ssl --staging --

describe('ssl enable --staging', () => {
  it("asks Let's Encrypt's staging directory, and the plan obtains the certificate from it", async () => {
    const t = harness([node1]);
    expect(await t.run('ssl', 'enable', '--staging', '--dry-run', '--json'), t.stderr()).toBe(0);
    // The only CA contacted is the staging one: never production.
    expect(ca.asked).toEqual([LETS_ENCRYPT_STAGING]);
    const j = JSON.parse(t.stdout()) as PlanJson;
    expect(j.dryRun).toBe(true);
    const cert = j.plan.steps.filter((s) => s.id === 'certificate');
    expect(cert.map((s) => s.title)).toEqual([
      `Obtain one certificate for apps.example.com from ${LETS_ENCRYPT_STAGING} (cluster-cli's agent, HTTP-01), then serve it from every proxy replica`,
    ]);
    // A dry run: cluster.yaml as it was, and only read-only probes on the manager.
    expect(t.fileText()).toBe(t.text);
    expect(t.ran.every((c) => /^docker (info|node|network|secret|config|service) /.test(c))).toBe(
      true,
    );
  });

  it("without --staging (or --acme-ca) the production Let's Encrypt directory is used", async () => {
    const t = harness([node1]);
    expect(await t.run('ssl', 'enable', '--dry-run', '--json'), t.stderr()).toBe(0);
    expect(ca.asked).toEqual([LETS_ENCRYPT]);
    const titles = (JSON.parse(t.stdout()) as PlanJson).plan.steps.map((s) => s.title);
    expect(titles.filter((s) => s.includes(LETS_ENCRYPT))).toHaveLength(1);
    expect(titles.join('\n')).not.toContain('acme-staging');
  });

  it('with the proxy owning the certificate, --staging is still the CA asked', async () => {
    const t = harness([node1]);
    const code = await t.run('ssl', 'enable', '--staging', '--managed-by', 'proxy', '--dry-run');
    expect(code, t.stderr()).toBe(0);
    expect(ca.asked).toEqual([LETS_ENCRYPT_STAGING]);
    // No agent order: the proxy talks to the CA itself.
    expect(t.stdout()).not.toContain('Obtain one certificate');
    expect(t.stdout()).toContain('Dry run: nothing was changed');
  });

  it('--staging with --acme-ca names two CAs: refused before any host or CA is contacted', async () => {
    const t = harness([node1]);
    const code = await t.run(
      'ssl',
      'enable',
      '--staging',
      '--acme-ca',
      'https://ca.internal:9000/acme/acme/directory',
      '--dry-run',
    );
    expect(code).toBe(2);
    expect(t.stderr()).toBe(
      'error: --staging and --acme-ca name two CAs.\nnext: pass one of them\n',
    );
    expect(ca.asked).toEqual([]);
    expect(t.connected).toEqual([]);
  });
});

// ------------------------------------------- the proxy's own ACME: 1 replica --

describe("ssl enable --managed-by proxy (the proxy's own ACME) needs a single proxy replica", () => {
  it('two ready managers run two proxy replicas: refused, cluster.yaml unchanged, the way out named', async () => {
    const t = harness([node1, node2]);
    const code = await t.run('ssl', 'enable', '--managed-by', 'proxy', '--yes');
    expect(code).toBe(2);
    expect(t.stderr()).toBe(
      'error: The proxy runs 2 replicas; with its own ACME each would hold a different certificate, lost with its node.\n' +
        'next: let the cluster own it: cluster-cli ssl enable (without --managed-by proxy)\n',
    );
    expect(t.fileText()).toBe(t.text);
    // Nothing but the read-only probes ran: --yes did not get as far as a change.
    expect(t.ran.every((c) => /^docker (info|node|network|secret|config|service) /.test(c))).toBe(
      true,
    );
  });

  it('a manager that is down counts too (its replica comes back with it); refused before any CA is asked', async () => {
    const t = harness([node1, { ...node2, state: 'down' }]);
    ca.asked.length = 0;
    expect(await t.run('ssl', 'enable', '--managed-by', 'proxy', '--yes')).toBe(2);
    expect(t.stderr()).toContain('The proxy runs 2 replicas');
    expect(ca.asked).toEqual([]);
  });

  it('the same two managers are fine when the cluster owns the certificate', async () => {
    const t = harness([node1, node2]);
    expect(await t.run('ssl', 'enable', '--dry-run'), t.stderr()).toBe(0);
    expect(t.stdout()).toContain('Obtain one certificate for apps.example.com');
  });

  it('one manager and a worker: the proxy runs on the manager only, so one replica is accepted', async () => {
    const t = harness([node1, worker]);
    const code = await t.run('ssl', 'enable', '--managed-by', 'proxy', '--dry-run');
    expect(code, t.stderr()).toBe(0);
    expect(t.stderr()).toBe('');
  });

  it('two managers, one labelled public_ip=true: the proxy runs there only, so one replica is accepted', async () => {
    const t = harness([{ ...node1, labels: { public_ip: 'true' } }, node2]);
    const code = await t.run('ssl', 'enable', '--managed-by', 'proxy', '--dry-run');
    expect(code, t.stderr()).toBe(0);
    // Both labelled: two replicas again, refused.
    const both = harness([
      { ...node1, labels: { public_ip: 'true' } },
      { ...node2, labels: { public_ip: 'true' } },
    ]);
    expect(await both.run('ssl', 'enable', '--managed-by', 'proxy', '--dry-run')).toBe(2);
    expect(both.stderr()).toContain('The proxy runs 2 replicas');
  });
});

describe('cluster.yaml rule: ssl.acme proxy on more than one proxy replica is warned about', () => {
  const base = {
    domain: 'apps.example.com',
    email: 'ops@example.com',
  } satisfies Partial<ConfigInput>;
  const acmeWarning = (input: ConfigInput) =>
    checkRules(Config.parse(input)).warnings.filter((w) => w.path === 'ssl.acme');

  it('counts managers only: workers run no proxy', () => {
    expect(
      acmeWarning({
        ...base,
        hosts: [
          { name: 'm1', address: '203.0.113.10' },
          { name: 'w1', address: '203.0.113.11', role: 'worker' },
          { name: 'w2', address: '203.0.113.12', role: 'worker' },
        ],
      }),
    ).toEqual([]);
  });

  it('with public_ip labels, counts the public managers only', () => {
    const hosts = (publicOnes: number): ConfigInput['hosts'] =>
      ['m1', 'm2', 'm3'].map((name, i) => ({
        name,
        address: `203.0.113.${20 + i}`,
        ...(i < publicOnes ? { labels: { public_ip: 'true' } } : {}),
      }));
    expect(acmeWarning({ ...base, hosts: hosts(1) })).toEqual([]);
    expect(acmeWarning({ ...base, hosts: hosts(2) })).toEqual([
      {
        path: 'ssl.acme',
        message:
          '2 proxy replicas each run their own ACME (separate certificates, lost with their node); run cluster-cli ssl enable to share one',
      },
    ]);
    // No label at all: every manager runs the proxy.
    expect(acmeWarning({ ...base, hosts: hosts(0) })[0]?.message).toMatch(/^3 proxy replicas /);
  });
});

// ---------------------------------------------- the first admin for the app --

describe("the app gets the first admin's email and initial password (Docker secret)", () => {
  const input: ConfigInput = {
    domain: 'app.example.com',
    email: 'ops@example.com',
    hosts: [{ name: 'node1', address: '203.0.113.10' }],
    // The cluster owns TLS: the agent is rendered too, and must not get the password.
    proxy: { tls: 'acme', dashboard: 'proxy.example.com' },
    ssl: { acme: 'cluster' },
  };
  const withAdmin: ConfigInput = { ...input, app: { adminEmail: 'alice@example.com' } };
  const render = (i: ConfigInput) => renderStack(buildStackModel(Config.parse(i)));
  // biome-ignore lint/suspicious/noExplicitAny: parsed YAML is walked loosely in assertions
  type Any = any;

  it('declares admin_password (external), mounts it on the app only, and ADMIN_PASSWORD_FILE names its file', () => {
    const doc = parse(render(withAdmin).yaml);
    expect(doc.secrets.admin_password).toEqual({
      external: true,
      name: 'platform_admin_password',
    });
    const app = doc.services.app;
    const mount = app.secrets.find((s: Any) => s.source === 'admin_password');
    expect(mount).toEqual({ source: 'admin_password', target: 'admin_password' });
    // Docker puts a secret at /run/secrets/<target>: the env var must point there.
    expect(app.environment.ADMIN_PASSWORD_FILE).toBe(`/run/secrets/${mount.target}`);
    expect(app.environment.ADMIN_EMAIL).toBe('alice@example.com');
    // The password itself is nowhere in the file, and no other service sees the secret.
    for (const [name, svc] of Object.entries(doc.services as Record<string, Any>)) {
      if (name === 'app') continue;
      const sources = (svc.secrets ?? []).map((s: Any) => s.source);
      expect(sources, name).not.toContain('admin_password');
      expect(Object.keys(svc.environment ?? {}), name).not.toContain('ADMIN_PASSWORD_FILE');
      expect(Object.keys(svc.environment ?? {}), name).not.toContain('ADMIN_EMAIL');
    }
    expect(Object.keys(doc.services)).toEqual(['proxy', 'app', 'postgres', 'redis', 'agent']);
  });

  it('without an admin: no admin secret, no mount, no ADMIN_* variables', () => {
    const doc = parse(render(input).yaml);
    expect(Object.keys(doc.secrets).sort()).toEqual(['postgres_password', 'redis_password']);
    expect(doc.services.app.secrets.map((s: Any) => s.source)).toEqual([
      'postgres_password',
      'redis_password',
    ]);
    expect(Object.keys(doc.services.app.environment).filter((k) => k.startsWith('ADMIN_'))).toEqual(
      [],
    );
  });

  it('adding the first admin changes the app only; a deploy of the app alone declares the secret', () => {
    const before = render(input);
    const after = render(withAdmin);
    const changed = Object.keys(after.revisions).filter(
      (k) => after.revisions[k] !== before.revisions[k],
    );
    expect(changed).toEqual(['app']);
    const partial = parse(after.yamlFor(['app']));
    expect(partial.secrets.admin_password).toEqual({
      external: true,
      name: 'platform_admin_password',
    });
  });

  it.skipIf(!dockerCliAvailable())(
    'docker stack config accepts it and mounts the secret where ADMIN_PASSWORD_FILE points',
    () => {
      const r = render(withAdmin);
      for (const yaml of [r.yaml, r.yamlFor(['app'])]) {
        const out = dockerStackConfig(yaml);
        expect(out.status, out.stderr).toBe(0);
        const app = parse(out.stdout).services.app;
        const mount = app.secrets.find((s: Any) => s.source === 'admin_password');
        expect(mount.target).toBe('admin_password');
        expect(app.environment.ADMIN_PASSWORD_FILE).toBe('/run/secrets/admin_password');
      }
    },
  );
});
