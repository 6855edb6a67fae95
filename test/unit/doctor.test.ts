import { describe, expect, it } from 'vitest';
import {
  CLOCK_FAIL_MS,
  CLOCK_WARN_MS,
  type ClockReading,
  checkClock,
  checkDisk,
  checkEngines,
  checkFirewallNode,
  checkMemory,
  checkPorts,
  checkQuorum,
  checkStackObjects,
  checkStaleConfigs,
  clockReading,
  DOCTOR_EXIT,
  type DoctorFacts,
  diagnose,
  doctorVerdict,
  firewallDisabled,
  matchesConstraints,
  memoryBytes,
  type NodeResources,
  planPrune,
  reservationsByNode,
  staleConfigs,
} from '../../src/cluster/doctor.js';
import {
  parseDate,
  probeClock,
  probeConfigUse,
  probeResources,
} from '../../src/cluster/doctor-probe.js';
import type { PortResult } from '../../src/cluster/ports.js';
import type { NodeFacts } from '../../src/cluster/probe.js';
import { validateConfig } from '../../src/config/load.js';
import type { Cmd } from '../../src/core/cmd.js';
import type { Executor } from '../../src/core/executor.js';
import { formatPlan } from '../../src/core/plan.js';
import type { FirewallCheck } from '../../src/firewall/plan.js';
import { buildStackModel } from '../../src/stack/model.js';

const node = (hostname: string, over: Partial<NodeFacts> = {}): NodeFacts => ({
  id: `id-${hostname}`,
  hostname,
  role: 'manager',
  labels: {},
  self: false,
  state: 'ready',
  availability: 'active',
  reachability: 'reachable',
  engine: '27.5.1',
  ...over,
});
const worker = (hostname: string, over: Partial<NodeFacts> = {}) =>
  node(hostname, { role: 'worker', reachability: undefined, ...over } as Partial<NodeFacts>);

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function config(extra: Record<string, unknown> = {}) {
  return validateConfig({
    domain: 'apps.example.com',
    email: 'ops@example.com',
    hosts: [
      { name: 'n1', address: '10.0.0.1' },
      { name: 'n2', address: '10.0.0.2' },
      { name: 'n3', address: '10.0.0.3', role: 'worker' },
    ],
    ...extra,
  }).config;
}

describe('checkQuorum', () => {
  it('3 managers, all reachable: ok, survives one failure', () => {
    const c = checkQuorum([node('n1', { self: true }), node('n2'), node('n3')]);
    expect(c.verdict).toBe('ok');
    expect(c.detail).toBe('3 managers: the cluster survives 1 manager failure');
    expect(c.next).toBeUndefined();
  });

  it('1 manager: warn, no HA; promoting two workers is the next command', () => {
    const c = checkQuorum([node('n1', { self: true }), worker('w1'), worker('w2')]);
    expect(c.verdict).toBe('warn');
    expect(c.detail).toMatch(
      /^1 manager: the cluster survives 0 manager failures: no high availability/,
    );
    expect(c.next).toBe('cluster-cli node promote w1 w2   # 3 managers survive one failure');
  });

  it('1 manager and no workers: join two managers', () => {
    const c = checkQuorum([node('n1')], ' -c prod.yaml');
    expect(c.next).toMatch(
      /^cluster-cli node join <user@host>,manager <user@host>,manager -c prod\.yaml/,
    );
  });

  it('2 managers, both up: warn (even), survives no failure', () => {
    const c = checkQuorum([node('n1', { self: true, leader: true }), node('n2')]);
    expect(c.verdict).toBe('warn');
    expect(c.detail).toContain('2 managers: the cluster survives 0 manager failures');
    expect(c.detail).toContain('use an odd number');
    expect(c.next).toBe(
      'cluster-cli node join <user@host>,manager   # 3 managers survive one failure',
    );
  });

  it('2 managers and a worker: promote the worker to make 3', () => {
    const c = checkQuorum([node('n1'), node('n2'), worker('w1')]);
    expect(c.next).toBe('cluster-cli node promote w1   # 3 managers survive 1 failure(s)');
  });

  it('2 managers, one down: quorum lost (fail)', () => {
    const c = checkQuorum([node('n1'), node('n2', { state: 'down', reachability: 'unreachable' })]);
    expect(c.verdict).toBe('fail');
    expect(c.detail).toBe('quorum lost: 1 of 2 managers reachable, 2 needed (down: n2)');
  });

  it('4 managers: warn, an even count', () => {
    const c = checkQuorum([node('a'), node('b'), node('c'), node('d')]);
    expect(c.verdict).toBe('warn');
    expect(c.detail).toContain(
      '4 managers: the cluster survives 1 manager failure (3 would survive',
    );
    expect(c.next).toBe('cluster-cli node demote a   # 3 managers survive as many failures');
  });

  it('5 managers, one unreachable: warn, still one failure to spare', () => {
    const c = checkQuorum([
      node('a'),
      node('b'),
      node('c'),
      node('d'),
      node('e', { reachability: 'unreachable' }),
    ]);
    expect(c.verdict).toBe('warn');
    expect(c.detail).toBe('4 of 5 managers reachable (down: e): survives 1 more failure');
  });

  it('3 managers, one down: warn, one more failure loses quorum', () => {
    const c = checkQuorum([node('a'), node('b'), node('c', { state: 'down' })]);
    expect(c.verdict).toBe('warn');
    expect(c.detail).toContain('one more failure loses quorum');
  });

  it('3 managers, two down: fail', () => {
    const c = checkQuorum([node('a'), node('b', { state: 'down' }), node('c', { state: 'down' })]);
    expect(c.verdict).toBe('fail');
  });
});

describe('clock skew', () => {
  const ref = (offsetMs = 0, uncertaintyMs = 10) => ({
    name: 'n1',
    reading: { offsetMs, uncertaintyMs },
  });
  const at = (offsetMs: number): ClockReading => ({ offsetMs, uncertaintyMs: 10 });

  it('the reading: the node printed its time at the midpoint of the round trip', () => {
    expect(
      clockReading({ sentMs: 1000, receivedMs: 1100, remoteMs: 3050, resolutionMs: 1 }),
    ).toEqual({ offsetMs: 2000, uncertaintyMs: 51 });
  });

  it('within 1 s: ok; the reference manager itself is ok', () => {
    expect(checkClock('n2', at(400), ref(), 'root@10.0.0.2')).toMatchObject({
      verdict: 'ok',
      detail: '0.40 s ahead of n1 (±0.02 s, half the SSH round trips)',
    });
    expect(checkClock('n1', at(0), ref(), 'root@10.0.0.1').verdict).toBe('ok');
  });

  it('exactly 1 s: ok; just over: warn, with the NTP command on that node', () => {
    expect(checkClock('n2', at(CLOCK_WARN_MS), ref(), 'x').verdict).toBe('ok');
    const c = checkClock('n2', at(CLOCK_WARN_MS + 1), ref(), 'root@10.0.0.2:2222');
    expect(c.verdict).toBe('warn');
    expect(c.next).toBe(
      'ssh -p 2222 root@10.0.0.2 timedatectl set-ntp true   # or install chrony; then check: timedatectl',
    );
  });

  it('exactly 10 s: warn; just over: fail; behind counts the same as ahead', () => {
    expect(checkClock('n2', at(CLOCK_FAIL_MS), ref(), 'x').verdict).toBe('warn');
    const c = checkClock('n2', at(-(CLOCK_FAIL_MS + 1)), ref(), 'local');
    expect(c.verdict).toBe('fail');
    expect(c.detail).toMatch(/^10\.00 s behind n1/);
    expect(c.next).toMatch(/^timedatectl set-ntp true/);
  });

  it('measured against the reference, not against this machine', () => {
    // this machine is 60 s off both: the nodes agree with each other
    expect(checkClock('n2', at(60_300), ref(60_000), 'x').verdict).toBe('ok');
  });

  it('a clock that could not be read: warn, could not check', () => {
    expect(checkClock('n2', { error: 'date: not found' }, ref(), 'x')).toMatchObject({
      verdict: 'warn',
      detail: 'could not check: date: not found',
    });
  });

  it('date output: nanoseconds, or whole seconds without %N', () => {
    expect(parseDate('1700000000.250000000\n')).toEqual({ ms: 1_700_000_000_250, resolutionMs: 1 });
    expect(parseDate('1700000000.N')).toEqual({ ms: 1_700_000_000_000, resolutionMs: 1000 });
    expect(parseDate('Tue Nov 24')).toBeUndefined();
  });
});

describe('memory and disk headroom', () => {
  const res = (memGiB: number, diskShare = 0.5): NodeResources => ({
    memKb: memGiB * 1024 * 1024,
    memAvailableKb: 1024 * 1024,
    disk: { path: '/var/lib', totalKb: 100_000_000, availKb: diskShare * 100_000_000 },
  });

  it('sizes are binary, as Docker reads them', () => {
    expect(memoryBytes('256M')).toBe(256 * MiB);
    expect(memoryBytes('1.5G')).toBe(1.5 * GiB);
    expect(memoryBytes('64K')).toBe(65536);
  });

  it('constraints: role, labels, hostname, == and !=; an unknown form matches', () => {
    const n = worker('w1', { labels: { db: 'primary' } });
    expect(matchesConstraints(n, ['node.role == worker', 'node.labels.db == primary'])).toBe(true);
    expect(matchesConstraints(n, ['node.role == manager'])).toBe(false);
    expect(matchesConstraints(n, ['node.hostname != w1'])).toBe(false);
    expect(matchesConstraints(n, ['engine.labels.x == y'])).toBe(true);
  });

  it('placement: proxy on managers, databases on the first manager, app replicas spread', () => {
    const model = buildStackModel(config({ app: { replicas: 3 } }));
    const nodes = [node('n1'), node('n2'), worker('n3')];
    const placed = reservationsByNode(model, nodes);
    expect(placed.get('n1')).toEqual([
      { service: 'proxy', tasks: 1, bytes: 64 * MiB },
      { service: 'app', tasks: 1, bytes: 256 * MiB },
      { service: 'postgres', tasks: 1, bytes: 256 * MiB },
      { service: 'redis', tasks: 1, bytes: 64 * MiB },
    ]);
    expect(placed.get('n3')).toEqual([{ service: 'app', tasks: 1, bytes: 256 * MiB }]);
  });

  it('placement: db=primary takes the databases; a drained node takes nothing; replicas round up', () => {
    const model = buildStackModel(
      config({
        app: { replicas: 3 },
        hosts: [
          { name: 'n1', address: '10.0.0.1' },
          { name: 'n3', address: '10.0.0.3', role: 'worker', labels: { db: 'primary' } },
          { name: 'n4', address: '10.0.0.4', role: 'worker' },
        ],
      }),
    );
    const nodes = [
      node('n1'),
      worker('n3', { labels: { db: 'primary' } }),
      worker('n4', { availability: 'drain' }),
    ];
    const placed = reservationsByNode(model, nodes);
    expect(placed.get('n3')?.map((p) => [p.service, p.tasks])).toEqual([
      ['app', 2],
      ['postgres', 1],
      ['redis', 1],
    ]);
    expect(placed.get('n4')).toEqual([]);
  });

  it('memory: ok with headroom, the reservations listed', () => {
    const c = checkMemory('n1', res(4), [
      { service: 'proxy', tasks: 1, bytes: 64 * MiB },
      { service: 'app', tasks: 2, bytes: 512 * MiB },
    ]);
    expect(c.verdict).toBe('ok');
    expect(c.detail).toBe(
      'reserved 576 MiB of 4.0 GiB (proxy, app ×2): 85 % headroom; 1.0 GiB available now',
    );
  });

  it('memory: exactly 20 % left is ok, under is warn, more reserved than the node has is fail', () => {
    const total = 5 * GiB; // 20 % of it is a whole 1 GiB
    const at = (bytes: number) =>
      checkMemory('n1', res(5), [{ service: 'postgres', tasks: 1, bytes }], ' -c prod.yaml');
    const edge = at(4 * GiB);
    expect(edge.verdict).toBe('ok');
    expect(edge.detail).toContain(': 20 % headroom');
    const warn = at(4 * GiB + 1);
    expect(warn.verdict).toBe('warn');
    expect(warn.detail).toContain(': 19 % headroom');
    expect(warn.next).toBe(
      'cluster-cli config set resources.postgres.reservation <smaller size> -c prod.yaml   # or give n1 more memory',
    );
    expect(at(total).verdict).toBe('warn');
    expect(at(total).detail).toContain(': 0 % headroom');
    const fail = at(total + 1);
    expect(fail.verdict).toBe('fail');
    expect(fail.detail).toContain('the reservations exceed the node');
  });

  it('disk: 20 % free is ok, under warns, under 5 % fails', () => {
    expect(checkDisk('n1', res(4, 0.2), 'x').verdict).toBe('ok');
    expect(checkDisk('n1', res(4, 0.19), 'x').verdict).toBe('warn');
    expect(checkDisk('n1', res(4, 0.05), 'x').verdict).toBe('warn');
    const c = checkDisk('n1', res(4, 0.04), 'root@10.0.0.1');
    expect(c.verdict).toBe('fail');
    expect(c.detail).toBe('/var/lib: 3.8 GiB free of 95.4 GiB (4 %)');
    expect(c.next).toMatch(/^ssh root@10\.0\.0\.1 docker system df/);
  });
});

describe('checkPorts', () => {
  const r = (to: string, port: number, result: PortResult['result'] = 'ok'): PortResult => ({
    from: 'n3',
    to,
    addr: `10.0.0.${to.slice(1)}`,
    port,
    what: port === 2377 ? 'swarm management' : 'node gossip',
    result,
  });

  it('every port answers: ok, counted', () => {
    const c = checkPorts('n3', [r('n1', 2377), r('n1', 7946), r('n2', 7946)], false);
    expect(c).toMatchObject({
      verdict: 'ok',
      detail: 'reaches 2377/tcp on 1 manager(s), 7946/tcp on 2 node(s)',
    });
  });

  it('a single node has nothing to reach', () => {
    expect(checkPorts('n1', [], false).detail).toBe('no other node to reach');
  });

  it('a blocked port: fail, naming the pair; the fix depends on the firewall', () => {
    const results = [r('n1', 2377, 'timeout'), r('n2', 7946, 'refused')];
    const c = checkPorts('n3', results, false);
    expect(c.verdict).toBe('fail');
    expect(c.detail).toBe(
      'n1 (10.0.0.1) 2377/tcp swarm management: no answer (filtered?); n2 (10.0.0.2) 7946/tcp node gossip: refused',
    );
    expect(c.next).toBe(
      'open 2377/tcp, 7946/tcp from n3 to n1, n2 (host firewall, cloud security group)',
    );
    expect(checkPorts('n3', results, true).next).toMatch(/^cluster-cli firewall apply/);
  });
});

describe('checkEngines', () => {
  it('same major.minor: ok (patch levels may differ)', () => {
    const c = checkEngines([node('n1'), node('n2', { engine: '27.5.0' })]);
    expect(c).toMatchObject({ verdict: 'ok', detail: '2 engine(s) on 27.5 (27.5.1, 27.5.0)' });
  });

  it('one node on another engine: warn naming every node and version', () => {
    const c = checkEngines([node('n1'), node('n2'), worker('n3', { engine: '20.10.24+dfsg1' })]);
    expect(c.verdict).toBe('warn');
    expect(c.detail).toBe('not in step: n1 27.5.1, n2 27.5.1, n3 20.10.24+dfsg1');
    expect(c.next).toMatch(/^upgrade Docker on n3 to 27\.5/);
  });

  it('an unknown version is named, not compared', () => {
    const c = checkEngines([node('n1'), node('n2', { engine: undefined })]);
    expect(c.verdict).toBe('ok');
    expect(c.detail).toContain('unknown on n2');
  });
});

describe('checkStackObjects', () => {
  const needs = {
    secrets: ['platform_postgres_password', 'platform_redis_password'],
    configs: [
      { name: 'platform_caddyfile_0123456789ab', service: 'platform_proxy', drifted: false },
    ],
  };
  const all = { secrets: [...needs.secrets], configs: ['platform_caddyfile_0123456789ab'] };

  it('all there: ok', () => {
    expect(checkStackObjects(needs, all)).toMatchObject({
      verdict: 'ok',
      detail: "the stack's 2 secret(s) and 1 config(s) exist",
    });
  });

  it('a missing secret: fail, cluster-cli apply', () => {
    const c = checkStackObjects(needs, { ...all, secrets: ['platform_postgres_password'] });
    expect(c).toMatchObject({
      verdict: 'fail',
      detail: 'missing: secret platform_redis_password',
      next: 'cluster-cli apply',
    });
  });

  it('a missing config: fail; warn when its service runs another revision (a pending change)', () => {
    expect(checkStackObjects(needs, { ...all, configs: [] }).verdict).toBe('fail');
    const pending = checkStackObjects(
      {
        ...needs,
        configs: [{ ...(needs.configs[0] as (typeof needs.configs)[0]), drifted: true }],
      },
      { ...all, configs: [] },
    );
    expect(pending.verdict).toBe('warn');
    expect(pending.detail).toContain('cluster.yaml changed');
  });
});

describe('stale configs', () => {
  const old = 'platform_caddyfile_0123456789ab';
  const current = 'platform_caddyfile_abcdefabcdef';
  const rollback = 'platform_caddyfile_111111111111';

  it('only this stack content-addressed configs that no spec, previous spec or render wants', () => {
    const stale = staleConfigs(
      'platform',
      [
        old,
        current,
        rollback,
        'platform2_caddyfile_0123456789ab',
        'platform_mine',
        'other_x_0123456789ab',
      ],
      [rollback],
      [current],
    );
    expect(stale).toEqual([old]);
  });

  it('warn with the prune command (and the docker command)', () => {
    expect(checkStaleConfigs([]).verdict).toBe('ok');
    const c = checkStaleConfigs([old]);
    expect(c.verdict).toBe('warn');
    expect(c.next).toBe(`cluster-cli doctor --prune   # or on a manager: docker config rm ${old}`);
  });

  it('the prune plan: one docker config rm each, on the manager', () => {
    const plan = planPrune('platform', 'root@10.0.0.1', [old, 'platform_traefik_yml_0123456789ab']);
    expect(plan.steps.map((s) => s.cmds.map((c) => ('argv' in c ? c.argv.join(' ') : '')))).toEqual(
      [[`docker config rm ${old}`], ['docker config rm platform_traefik_yml_0123456789ab']],
    );
    expect(formatPlan(planPrune('platform', 'root@10.0.0.1', []))).toContain('0 to change');
  });
});

describe('firewall', () => {
  const check = (over: Partial<FirewallCheck>): FirewallCheck => ({
    state: 'in step',
    liveDiffers: {},
    staleFiles: [],
    unitOff: false,
    differences: [],
    notes: [],
    ...over,
  });

  it('not enabled: warn, the dry run is the next command', () => {
    expect(firewallDisabled(' -c prod.yaml')).toMatchObject({
      verdict: 'warn',
      next: 'cluster-cli firewall apply --dry-run -c prod.yaml',
    });
  });

  it('in step: ok; drifted: warn with what differs; absent: fail', () => {
    expect(checkFirewallNode('n1', check({})).verdict).toBe('ok');
    const d = checkFirewallNode(
      'n1',
      check({ state: 'drifted', differences: ['IPv4: no CLUSTER-CLI-INPUT chain'] }),
    );
    expect(d).toMatchObject({
      verdict: 'warn',
      detail: 'drifted: IPv4: no CLUSTER-CLI-INPUT chain',
    });
    expect(checkFirewallNode('n1', check({ state: 'absent' })).verdict).toBe('fail');
  });
});

describe('diagnose', () => {
  const resources: NodeResources = {
    memKb: 4 * 1024 * 1024,
    disk: { path: '/var/lib', totalKb: 100, availKb: 80 },
  };
  const facts = (over: Partial<DoctorFacts> = {}): DoctorFacts => {
    const cfg = config();
    return {
      stack: 'platform',
      cfg: '',
      firewallEnabled: true,
      swarm: [node('n1', { self: true }), node('n2'), node('n3')],
      reference: 'n1',
      hosts: ['n1', 'n2', 'n3'].map((name) => ({
        name,
        target: `root@10.0.0.${name.slice(1)}`,
        clock: { offsetMs: 0, uncertaintyMs: 5 },
        resources,
        ports: [],
        firewall: {
          state: 'in step' as const,
          liveDiffers: {},
          staleFiles: [],
          unitOff: false,
          differences: [],
          notes: [],
        },
      })),
      model: buildStackModel(cfg),
      needs: { secrets: [], configs: [] },
      have: { secrets: [], configs: [] },
      stale: [],
      ...over,
    };
  };

  it('all ok: exit 0; the cluster checks first, then per node', () => {
    const checks = diagnose(facts());
    expect(checks.map((c) => c.id)).toEqual([
      'quorum',
      'engines',
      'stack-objects',
      'stale-configs',
      ...['n1', 'n2', 'n3'].flatMap((n) => [
        `clock:${n}`,
        `memory:${n}`,
        `disk:${n}`,
        `ports:${n}`,
        `firewall:${n}`,
      ]),
    ]);
    expect(doctorVerdict(checks)).toBe('ok');
    expect(DOCTOR_EXIT[doctorVerdict(checks)]).toBe(0);
  });

  it('an unreachable node: one fail row, its other checks skipped', () => {
    const f = facts();
    const hosts = [
      ...f.hosts.slice(0, 2),
      {
        name: 'n3',
        target: '10.0.0.3',
        error: 'Cannot connect to 10.0.0.3:22: connection refused.',
      },
    ];
    const checks = diagnose({ ...f, hosts });
    const n3 = checks.filter((c) => c.id.endsWith(':n3'));
    expect(n3).toEqual([
      {
        id: 'ssh:n3',
        title: 'ssh n3',
        verdict: 'fail',
        detail:
          'unreachable, its checks were skipped: Cannot connect to 10.0.0.3:22: connection refused.',
        next: 'check the address, the SSH key and that sshd runs: ssh 10.0.0.3',
      },
    ]);
    expect(DOCTOR_EXIT[doctorVerdict(checks)]).toBe(2);
  });

  it('firewall off: one warn row instead of one per node (exit 1)', () => {
    const checks = diagnose(facts({ firewallEnabled: false }));
    expect(checks.filter((c) => c.id.startsWith('firewall'))).toEqual([firewallDisabled()]);
    expect(DOCTOR_EXIT[doctorVerdict(checks)]).toBe(1);
  });

  it('the stale configs could not be read: warn, not ok', () => {
    const c = diagnose(facts({ stale: { error: 'Could not check the configs' } })).find(
      (x) => x.id === 'stale-configs',
    );
    expect(c?.verdict).toBe('warn');
  });
});

describe('doctor probes', () => {
  /** Answers each command line from a table (a function for answers that change). */
  const fake = (
    answers: Record<string, string | (() => string)>,
  ): Executor & { seen: string[] } => {
    const seen: string[] = [];
    return {
      label: 'root@10.0.0.2',
      seen,
      async run(c: Cmd) {
        const w = c.argv.join(' ');
        seen.push(w);
        expect(c.readOnly).toBe(true);
        const a = answers[w];
        if (a === undefined) throw new Error(`unexpected: ${w}`);
        return { stdout: typeof a === 'function' ? a() : a, stderr: '', exitCode: 0 };
      },
      stream: () => Promise.reject(new Error('no streams')),
      close: async () => {},
    };
  };

  it('the clock: three readings, the one with the shortest round trip kept', async () => {
    // this machine's clock ticks through these values, two per reading (sent, received)
    const local = [1000, 1400, 2000, 2040, 3000, 3200];
    const remote = ['1000.900000000', '1002.520000000', '1003.000000000'];
    let i = 0;
    const exec = fake({ 'date -u +%s.%N': () => `${remote[i++]}\n` });
    const reading = await probeClock(exec, () => local.shift() as number);
    expect(exec.seen).toHaveLength(3);
    // second reading: sent 2000, back 2040, the node said 1002.52 s: 500 ms ahead, ±(20 + 1) ms
    expect(reading.offsetMs).toBeCloseTo(1_002_520 - 2020, 3);
    expect(reading.uncertaintyMs).toBeCloseTo(21, 3);
  });

  it('the clock: output that is no time is a ProbeError, never a fact', async () => {
    await expect(probeClock(fake({ 'date -u +%s.%N': 'hello' }))).rejects.toThrow(
      /Could not check the clock on root@10\.0\.0\.2: date printed "hello"/,
    );
  });

  it('memory and disk', async () => {
    const r = await probeResources(
      fake({
        'cat /proc/meminfo': 'MemTotal:  4026000 kB\nMemAvailable:  3000000 kB\n',
        'df -Pk /var/lib':
          'Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 40000000 10000000 30000000 25% /\n',
      }),
    );
    expect(r).toEqual({
      memKb: 4_026_000,
      memAvailableKb: 3_000_000,
      disk: { path: '/var/lib', totalKb: 40_000_000, availKb: 30_000_000 },
    });
  });

  it("configs in use: every service's spec and previous spec", async () => {
    const svc = (id: string, spec: string[], previous?: string[]) =>
      JSON.stringify({
        ID: id,
        Spec: {
          TaskTemplate: { ContainerSpec: { Configs: spec.map((ConfigName) => ({ ConfigName })) } },
        },
        PreviousSpec: previous
          ? {
              TaskTemplate: {
                ContainerSpec: { Configs: previous.map((ConfigName) => ({ ConfigName })) },
              },
            }
          : null,
      });
    const use = await probeConfigUse(
      fake({
        'docker config ls --filter label=io.cluster-cli.managed=true --format {{.Name}}':
          'a\nb\nc\n',
        'docker service ls --format {{.ID}}': 's1\ns2\n',
        'docker service inspect --format {{json .}} s1 s2': `${svc('s1', ['a'], ['b'])}\n${svc('s2', [])}\n`,
      }),
    );
    expect(use).toEqual({ managed: ['a', 'b', 'c'], inUse: ['a', 'b'] });
  });
});
