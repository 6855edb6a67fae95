import { describe, expect, it } from 'vitest';
import {
  type ApiService,
  type ApiTask,
  failedUpdate,
  isConverged,
  MissingImageError,
  missingImageRef,
  missingImages,
  normalizeSpec,
  sameSpec,
  serviceState,
  stalledOn,
  strandedGlobalTasks,
  waitForConvergence,
} from '../../src/cluster/converge.js';
import type { ApiRequest, DockerApi } from '../../src/core/api.js';

/** Engine JSON as the lab's 20.10 daemon returns it (trimmed). */
const template = {
  ContainerSpec: { Image: 'cluster-lab/redis:7', Labels: { a: 'b' }, DNSConfig: {} },
  Resources: { Limits: { MemoryBytes: 134217728 } },
  ForceUpdate: 0,
  Runtime: 'container',
};
const taskSpec = {
  ContainerSpec: { Labels: { a: 'b' }, Image: 'cluster-lab/redis:7' },
  Resources: { Limits: { MemoryBytes: 134217728 } },
};
const svc = (over: object = {}) => ({
  ID: 's1',
  Spec: { Name: 'p_redis', TaskTemplate: template, Mode: { Replicated: { Replicas: 1 } } },
  ...over,
});
const task = (state: string, spec: unknown = taskSpec) => ({
  ID: `t-${state}`,
  ServiceID: 's1',
  Spec: spec,
  DesiredState: 'running',
  Status: { State: state },
});

describe('convergence means the new revision runs', () => {
  it('a task runs the service spec when they differ only in zero values and defaults', () => {
    expect(sameSpec(template, taskSpec)).toBe(true);
    expect(normalizeSpec({ a: {}, b: [], c: '', d: 0, e: false, f: null, g: 1 })).toEqual({ g: 1 });
    expect(
      sameSpec(template, {
        ...taskSpec,
        ContainerSpec: { ...taskSpec.ContainerSpec, Image: 'x:2' },
      }),
    ).toBe(false);
  });

  it('counts only running tasks of the current spec', () => {
    const old = { ...taskSpec, ContainerSpec: { Image: 'cluster-lab/redis:6' } };
    expect(serviceState(svc(), [task('running', old)])).toEqual({
      name: 'p_redis',
      running: 0,
      desired: 1,
    });
    const s = serviceState(svc(), [task('running')]);
    expect(s).toEqual({ name: 'p_redis', running: 1, desired: 1 });
    expect(isConverged([s], ['p_redis'])).toBe(true);
  });

  it('an update under way is not converged, even with the replicas running', () => {
    const s = serviceState(svc({ UpdateStatus: { State: 'updating' } }), [task('running')]);
    expect(s.update).toBe('updating');
    expect(isConverged([s], ['p_redis'])).toBe(false);
  });

  it('a rollback since the deploy is a failure; an older one is history', () => {
    const since = new Date('2026-11-23T10:00:00Z');
    const rolled = svc({
      UpdateStatus: {
        State: 'rollback_completed',
        StartedAt: '2026-11-23T10:00:05Z',
        Message: 'rollback completed',
      },
    });
    expect(failedUpdate(rolled as never, since)).toBe('rollback completed: rollback completed');
    const old = svc({
      UpdateStatus: { State: 'rollback_completed', StartedAt: '2026-11-22T10:00:05Z' },
    });
    expect(failedUpdate(old as never, since)).toBeUndefined();
    expect(failedUpdate(svc({ UpdateStatus: { State: 'completed' } }) as never, since)).toBe(
      undefined,
    );
  });

  it('a global service wants one task per eligible node', () => {
    const g = svc({
      Spec: { Name: 'p_proxy', TaskTemplate: template, Mode: { Global: {} } },
    });
    expect(serviceState(g as never, [task('running'), task('starting')])).toEqual({
      name: 'p_proxy',
      running: 1,
      desired: 2,
    });
  });

  it('a global service wants a running task on every node that is up, active and eligible', () => {
    const g = svc({
      Spec: {
        Name: 'p_proxy',
        TaskTemplate: { ...template, Placement: { Constraints: ['node.role == manager'] } },
        Mode: { Global: {} },
      },
    });
    const node = (
      id: string,
      role: 'manager' | 'worker',
      state = 'ready',
      availability = 'active',
    ) => ({
      id,
      name: id,
      role,
      labels: {},
      state,
      availability,
    });
    const on = (n: string, state: string) => ({
      ...task(state, { ...taskSpec, Placement: { Constraints: ['node.role == manager'] } }),
      ID: n,
      NodeID: n,
    });
    const nodes = [node('m1', 'manager'), node('m2', 'manager'), node('w1', 'worker')];
    // a manager that just joined has no task yet: it is waited for
    expect(serviceState(g as never, [on('m1', 'running')], nodes)).toMatchObject({
      running: 1,
      desired: 2,
    });
    expect(
      serviceState(g as never, [on('m1', 'running'), on('m2', 'running')], nodes),
    ).toMatchObject({ running: 2, desired: 2 });
    // a node that is down (its task pending there) or drained is not waited for
    const m2down = [node('m1', 'manager'), node('m2', 'manager', 'down'), node('w1', 'worker')];
    expect(
      serviceState(g as never, [on('m1', 'running'), on('m2', 'pending')], m2down),
    ).toMatchObject({ running: 1, desired: 1 });
    const m2drained = [node('m1', 'manager'), node('m2', 'manager', 'ready', 'drain')];
    expect(serviceState(g as never, [on('m1', 'running')], m2drained)).toMatchObject({
      running: 1,
      desired: 1,
    });
    // The leader stopped during the update: Swarm's updater waits on its slot
    // forever, though every node that is up runs the new spec. That is done;
    // while a node that is up still lags, or nothing is down, it is not.
    const updating = {
      ...g,
      UpdateStatus: { State: 'updating' },
    };
    expect(
      serviceState(updating as never, [on('m1', 'running'), on('m2', 'pending')], m2down),
    ).toEqual({ name: 'p_proxy', running: 1, desired: 1 });
    const m3down = [...nodes, node('m3', 'manager', 'unknown')];
    expect(
      serviceState(updating as never, [on('m1', 'running'), on('m3', 'pending')], m3down),
    ).toMatchObject({ running: 1, desired: 2, update: 'updating' });
    expect(
      serviceState(updating as never, [on('m1', 'running'), on('m2', 'running')], nodes),
    ).toMatchObject({ update: 'updating' });
    // a paused or rolled-back update stays a failure whatever is down
    expect(
      serviceState(
        { ...g, UpdateStatus: { State: 'paused' } } as never,
        [on('m1', 'running')],
        m2down,
      ),
    ).toMatchObject({ update: 'paused' });
    // a constraint a node listing cannot answer: fall back to Swarm's own tasks
    const odd = svc({
      Spec: {
        Name: 'p_x',
        TaskTemplate: { ...template, Placement: { Constraints: ['engine.labels.x == y'] } },
        Mode: { Global: {} },
      },
    });
    expect(serviceState(odd as never, [task('running')], nodes)).toMatchObject({ desired: 1 });
    // a replicated service's count is its replicas, whatever the nodes
    expect(serviceState(svc() as never, [on('m2', 'pending')], m2down)).toMatchObject({
      running: 0,
      desired: 1,
    });
  });
});

describe('a deploy whose image is on no node and no registry fails fast', () => {
  const since = new Date('2026-11-23T10:00:00Z');
  const app: ApiService = {
    ID: 'sa',
    Spec: {
      Name: 'platform_app',
      TaskTemplate: { ContainerSpec: { Image: 'cluster-lab/app:1' } },
      Mode: { Replicated: { Replicas: 2 } },
    },
  };
  let n = 0;
  const t = (o: {
    state?: string;
    err?: string;
    at?: string;
    node?: string;
    spec?: unknown;
    service?: string;
  }): ApiTask => ({
    ID: `t${++n}`,
    ServiceID: o.service ?? 'sa',
    NodeID: o.node ?? 'node2id0123456789',
    Spec: o.spec ?? { ContainerSpec: { Image: 'cluster-lab/app:1' } },
    DesiredState: 'running',
    CreatedAt: o.at ?? '2026-11-23T10:00:03Z',
    Status: {
      State: o.state ?? 'rejected',
      ...(o.err === '' ? {} : { Err: o.err ?? 'No such image: cluster-lab/app:1@sha256:0123abcd' }),
    },
  });

  it("reads the reference from Swarm's error, without the digest", () => {
    expect(missingImageRef('No such image: cluster-lab/app:1@sha256:0123abcd')).toBe(
      'cluster-lab/app:1',
    );
    expect(missingImageRef('rejected: no such image: busybox:1.36')).toBe('busybox:1.36');
    expect(missingImageRef('pull access denied for x')).toBeUndefined();
  });

  it('two rejections since the deploy decide it, naming the image and the nodes', () => {
    const tasks = [
      t({ node: 'node2id0123456789', at: '2026-11-23T10:00:02Z' }),
      t({ node: 'node3id0123456789', at: '2026-11-23T10:00:04Z' }),
      t({ node: 'node2id0123456789', at: '2026-11-23T10:00:09Z' }),
    ];
    expect(missingImages([app], tasks, since)).toEqual([
      {
        service: 'platform_app',
        image: 'cluster-lab/app:1',
        nodes: ['node2id0123456789', 'node3id0123456789'],
      },
    ]);
  });

  it('one rejection is not enough: Swarm may still place the task elsewhere', () => {
    expect(missingImages([app], [t({}), t({ state: 'pending', err: '' })], since)).toEqual([]);
  });

  it('rejections from before the deploy are history', () => {
    const old = [t({ at: '2026-11-23T09:58:00Z' }), t({ at: '2026-11-23T09:59:00Z' })];
    expect(missingImages([app], old, since)).toEqual([]);
    expect(missingImages([app], [...old, t({})], since)).toEqual([]);
  });

  it('a task running the current spec means the image is there somewhere', () => {
    expect(missingImages([app], [t({}), t({}), t({ state: 'running', err: '' })], since)).toEqual(
      [],
    );
    // a task of the previous spec still running does not count
    const previous = t({ state: 'running', err: '', spec: { ContainerSpec: { Image: 'x:0' } } });
    expect(missingImages([app], [t({}), t({}), previous], since)).toHaveLength(1);
  });

  it('other errors, other states, other services and a missing `since` decide nothing', () => {
    const denied = 'pull access denied for cluster-lab/app, repository does not exist';
    expect(missingImages([app], [t({ err: denied }), t({ err: denied })], since)).toEqual([]);
    expect(missingImages([app], [t({ state: 'failed' }), t({ state: 'failed' })], since)).toEqual(
      [],
    );
    expect(missingImages([app], [t({ service: 'sb' }), t({ service: 'sb' })], since)).toEqual([]);
    expect(missingImages([app], [t({}), t({})], undefined)).toEqual([]);
  });

  it('the error names nodes by hostname, one line per service, and the push to run', () => {
    const e = new MissingImageError(
      [
        { service: 'platform_app', image: 'cluster-lab/app:1', nodes: ['id2', 'id3'] },
        { service: 'platform_agent', image: 'cluster-lab/agent:1', nodes: ['id9'] },
      ],
      new Map([
        ['id2', 'lab2'],
        ['id3', 'lab3'],
      ]),
    );
    expect(e.message.split('\n')).toEqual([
      'The image of platform_app is not on lab2, lab3 and no registry gave it: cluster-lab/app:1',
      'The image of platform_agent is not on id9 and no registry gave it: cluster-lab/agent:1',
    ]);
    expect(e.next).toContain('cluster-cli images push cluster-lab/app:1 cluster-lab/agent:1 --yes');
    expect(e.exitCode).toBe(1);
    // Only platform services: push every image of the stack, not just the ones seen so far.
    const platformOnly = new MissingImageError([
      { service: 'platform_app', image: 'cluster-lab/app:1', nodes: ['id2'] },
    ]);
    expect(platformOnly.next).toContain('cluster-cli images push --yes');
  });

  it('waitForConvergence stops at the first poll that decides it, one task listing per poll', async () => {
    // A fake engine: the decision is pure, this only checks the wiring.
    const calls: string[] = [];
    const api: DockerApi = {
      async request<T>(r: ApiRequest): Promise<T> {
        calls.push(r.path);
        if (r.path === '/services') return [app] as T;
        if (r.path === '/tasks') return [t({ node: 'id2' }), t({ node: 'id3' })] as T;
        if (r.path === '/nodes')
          return [
            { ID: 'id2', Description: { Hostname: 'lab2' } },
            { ID: 'id3', Description: { Hostname: 'lab3' } },
          ] as T;
        throw new Error(`unexpected ${r.path}`);
      },
      async close() {},
    };
    const wait = waitForConvergence(api, {
      stack: 'platform',
      services: ['platform_app'],
      timeoutMs: 300_000,
      since,
    });
    await expect(wait).rejects.toThrow(
      'The image of platform_app is not on lab2, lab3 and no registry gave it: cluster-lab/app:1',
    );
    expect(calls).toEqual(['/services', '/tasks', '/nodes']);
  });
});

describe('a global task Swarm rejected and will not retry', () => {
  const constraints = ['node.role == manager'];
  const g = {
    ID: 'sp',
    Spec: {
      Name: 'p_proxy',
      TaskTemplate: { ...template, Placement: { Constraints: constraints } },
      Mode: { Global: {} },
    },
  } as ApiService;
  const node = (id: string, role: 'manager' | 'worker', state = 'ready') => ({
    id,
    name: id,
    role,
    labels: {},
    state,
    availability: 'active',
  });
  const nodes = [node('m1', 'manager', 'down'), node('m2', 'manager'), node('m3', 'manager')];
  const on = (id: string, n: string, state: string, at: string, message = '') =>
    ({
      ID: id,
      ServiceID: 'sp',
      NodeID: n,
      Spec: { ...taskSpec, Placement: { Constraints: constraints } },
      DesiredState: 'running',
      UpdatedAt: at,
      Status: { State: state, Message: message },
    }) as ApiTask;
  const enforcer = 'assigned node no longer meets constraints';

  it('is the newest task on an eligible node, rejected by the constraint enforcer, with nothing live there', () => {
    const tasks = [
      on('a', 'm1', 'pending', '2026-01-01T00:00:09Z'),
      on('b', 'm2', 'rejected', '2026-01-01T00:00:05Z', enforcer),
      on('c', 'm3', 'rejected', '2026-01-01T00:00:05Z', enforcer),
      on('d', 'm3', 'running', '2026-01-01T00:00:08Z'),
    ];
    // m1 is down (not eligible); m3 has a live replacement
    expect(strandedGlobalTasks(g, tasks, nodes).map((t) => t.ID)).toEqual(['b']);
    // any other rejection (an image, a mount) is not this case
    expect(
      strandedGlobalTasks(
        g,
        [on('b', 'm2', 'rejected', '2026-01-01T00:00:05Z', 'No such image')],
        nodes,
      ),
    ).toEqual([]);
    // a worker does not meet the constraint: Swarm was right to reject it there
    expect(
      strandedGlobalTasks(
        g,
        [on('w', 'w1', 'rejected', '2026-01-01T00:00:05Z', enforcer)],
        [node('w1', 'worker')],
      ),
    ).toEqual([]);
    // a replicated service is Swarm's to reschedule
    expect(
      strandedGlobalTasks(
        { ...g, Spec: { ...g.Spec, Mode: { Replicated: { Replicas: 1 } } } },
        tasks,
        nodes,
      ),
    ).toEqual([]);
  });

  it('waitForConvergence updates the service with --force once the task stays stranded', async () => {
    // A fake engine that keeps the task stranded until the service is force-updated,
    // then runs it: the decision is tested above, this checks the request sent.
    let forced: unknown;
    const api: DockerApi = {
      async request<T>(r: ApiRequest): Promise<T> {
        if (r.path === '/services') return [g] as T;
        if (r.path === '/nodes')
          return [
            {
              ID: 'm2',
              Spec: { Role: 'manager' },
              Description: { Hostname: 'lab2' },
              Status: { State: 'ready' },
            },
          ] as T;
        if (r.path === '/tasks')
          return (
            forced
              ? [on('n', 'm2', 'running', '2026-01-01T00:00:09Z')]
              : [on('b', 'm2', 'rejected', '2026-01-01T00:00:05Z', enforcer)]
          ) as T;
        if (r.path === '/services/sp' && r.method === 'GET')
          return {
            Version: { Index: 7 },
            Spec: {
              ...g.Spec,
              TaskTemplate: { ...(g.Spec.TaskTemplate as object), ForceUpdate: 2 },
            },
          } as T;
        if (r.path === '/services/sp/update') {
          forced = r;
          return {} as T;
        }
        throw new Error(`unexpected ${r.method} ${r.path}`);
      },
      async close() {},
    };
    const notices: string[] = [];
    await waitForConvergence(api, {
      stack: 'p',
      services: ['p_proxy'],
      timeoutMs: 20_000,
      intervalMs: 50,
      strandedGraceMs: 200,
      onNotice: (l) => notices.push(l),
    });
    expect(forced).toMatchObject({
      method: 'POST',
      query: { version: 7, registryAuthFrom: 'spec' },
      body: { Name: 'p_proxy', TaskTemplate: { ForceUpdate: 3 } },
    });
    expect(notices).toEqual([expect.stringContaining('p_proxy: Swarm rejected its task on lab2')]);
  });
});

describe('a global update Swarm stalls on a node that is down', () => {
  const g = {
    ID: 'sp',
    Spec: { Name: 'p_proxy', TaskTemplate: template, Mode: { Global: {} } },
  } as ApiService;
  const node = (id: string, state = 'ready') => ({
    id,
    name: id,
    role: 'manager' as const,
    labels: {},
    state,
    availability: 'active',
  });
  const down = [node('lab1', 'down'), node('lab2'), node('lab3')];

  it('names the nodes that are not up while the update waits and a node that is up lags', () => {
    expect(
      stalledOn(g, { name: 'p_proxy', running: 1, desired: 2, update: 'updating' }, down),
    ).toEqual(['lab1']);
    // every node that is up runs it, or nothing is down, or no update: not stalled
    expect(
      stalledOn(g, { name: 'p_proxy', running: 2, desired: 2, update: 'updating' }, down),
    ).toEqual([]);
    expect(
      stalledOn(g, { name: 'p_proxy', running: 1, desired: 2, update: 'updating' }, [
        node('lab2'),
        node('lab3'),
      ]),
    ).toEqual([]);
    expect(
      stalledOn(g, { name: 'p_proxy', running: 1, desired: 2, update: 'paused' }, down),
    ).toEqual([]);
    const replicated = { ...g, Spec: { ...g.Spec, Mode: { Replicated: { Replicas: 2 } } } };
    expect(
      stalledOn(replicated, { name: 'p_proxy', running: 1, desired: 2, update: 'updating' }, down),
    ).toEqual([]);
  });

  it('waitForConvergence starts the update again once, when it makes no progress', async () => {
    // A fake engine: the update sits at one of two nodes until it is forced.
    let forced = 0;
    const tasksFor = () =>
      [
        {
          ID: 'a',
          ServiceID: 'sp',
          NodeID: 'lab2',
          Spec: forced ? taskSpec : { ...taskSpec, ContainerSpec: { Image: 'old:1' } },
          DesiredState: 'running',
          Status: { State: 'running' },
        },
        {
          ID: 'b',
          ServiceID: 'sp',
          NodeID: 'lab3',
          Spec: taskSpec,
          DesiredState: 'running',
          Status: { State: 'running' },
        },
      ] as ApiTask[];
    const api: DockerApi = {
      async request<T>(r: ApiRequest): Promise<T> {
        if (r.path === '/services')
          return [{ ...g, UpdateStatus: { State: forced ? 'completed' : 'updating' } }] as T;
        if (r.path === '/tasks') return tasksFor() as T;
        if (r.path === '/nodes')
          return [
            {
              ID: 'lab1',
              Spec: { Role: 'manager' },
              Description: { Hostname: 'lab1' },
              Status: { State: 'down' },
            },
            {
              ID: 'lab2',
              Spec: { Role: 'manager' },
              Description: { Hostname: 'lab2' },
              Status: { State: 'ready' },
            },
            {
              ID: 'lab3',
              Spec: { Role: 'manager' },
              Description: { Hostname: 'lab3' },
              Status: { State: 'ready' },
            },
          ] as T;
        if (r.path === '/services/sp' && r.method === 'GET')
          return { Version: { Index: 3 }, Spec: g.Spec } as T;
        if (r.path === '/services/sp/update') {
          forced++;
          return {} as T;
        }
        throw new Error(`unexpected ${r.method} ${r.path}`);
      },
      async close() {},
    };
    const notices: string[] = [];
    await waitForConvergence(api, {
      stack: 'p',
      services: ['p_proxy'],
      timeoutMs: 20_000,
      intervalMs: 20,
      stallMs: 150,
      onNotice: (l) => notices.push(l),
    });
    expect(forced).toBe(1);
    expect(notices).toEqual([
      "p_proxy: Swarm's rolling update waits on lab1, which is not up; starting it again (--force) so it goes on without it",
    ]);
  });
});
