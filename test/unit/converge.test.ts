import { describe, expect, it } from 'vitest';
import {
  failedUpdate,
  isConverged,
  normalizeSpec,
  sameSpec,
  serviceState,
} from '../../src/cluster/converge.js';

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
});
