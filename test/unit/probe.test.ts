import { spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DOCKER_MISSING_EXIT,
  dockerLookup,
  ProbeError,
  probeCluster,
  probeDocker,
  probeHost,
} from '../../src/cluster/probe.js';
import type { Cmd } from '../../src/core/cmd.js';
import { CommandError } from '../../src/core/errors.js';
import type { Executor, RunOptions, RunResult } from '../../src/core/executor.js';

/**
 * Probes against a scripted executor (the failure causes are what is under
 * test; the lab and the sshd tests run real hosts): a probe that fails for
 * another reason than its fact must say so, never return an empty fact.
 */
function scripted(answer: (argv: string) => Partial<RunResult> | undefined): Executor {
  return {
    label: 'root@host',
    async run(c: Cmd, opts: RunOptions = {}) {
      const a = answer(c.argv.join(' ')) ?? {};
      const r: RunResult = {
        stdout: a.stdout ?? '',
        stderr: a.stderr ?? '',
        exitCode: a.exitCode ?? 0,
      };
      if (r.exitCode !== 0 && !opts.allowFailure)
        throw new CommandError('root@host', [...c.argv], r.exitCode, r.stderr);
      return r;
    },
    stream: () => Promise.reject(new Error('no streams')),
    close: async () => {},
  };
}

const healthy = (argv: string): Partial<RunResult> | undefined => {
  if (argv === 'cat /etc/os-release')
    return { stdout: 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n' };
  if (argv === 'hostname') return { stdout: 'node1\n' };
  if (argv === 'nproc') return { stdout: '2\n' };
  if (argv === 'cat /proc/meminfo') return { stdout: 'MemTotal: 4000000 kB\n' };
  if (argv.startsWith('df '))
    return {
      stdout:
        'Filesystem 1024-blocks Used Available Capacity Mounted\n/dev/vda 80000000 1 70000000 1% /\n',
    };
  if (argv.startsWith('sh -c cat "/proc/net')) return { stdout: '' };
  if (argv.startsWith('ip -o -4 addr'))
    return { stdout: '2: eth0    inet 203.0.113.10/24 brd x scope global eth0\n' };
  if (argv.startsWith('ip -4 route get'))
    return { exitCode: 2, stderr: 'RTNETLINK answers: Network is unreachable\n' };
  if (argv === 'sh -c command -v docker || exit 3 sh') return { exitCode: 3 };
  return undefined;
};

describe('probes fail loudly', () => {
  it('a fresh host without Docker and without a default route is facts, not errors', async () => {
    const f = await probeHost(scripted(healthy), 'platform');
    expect(f.docker).toEqual({ installed: false });
    expect(f.routeSrc).toBeUndefined();
    expect(f.cpus).toBe(2);
  });

  it('a missing tool stops with its cause instead of reading as 0 vCPU', async () => {
    const ex = scripted((a) =>
      a === 'nproc' ? { exitCode: 127, stderr: 'sh: 1: nproc: not found' } : healthy(a),
    );
    const err = await probeHost(ex, 'platform').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProbeError);
    expect((err as Error).message).toBe(
      'Could not check the CPU count on root@host: root@host: command failed (exit 127): nproc | sh: 1: nproc: not found',
    );
  });

  it('a route lookup that fails for another reason than "unreachable" is an error', async () => {
    const ex = scripted((a) =>
      a.startsWith('ip -4 route get')
        ? { exitCode: 1, stderr: 'ip: permission denied' }
        : healthy(a),
    );
    await expect(probeHost(ex, 'platform')).rejects.toThrow(
      'Could not check the default route on root@host: ip: permission denied',
    );
  });

  it('Docker: a stopped daemon is a fact; a refused socket is not', async () => {
    const installed = (stderr: string) =>
      scripted((a) =>
        a === 'sh -c command -v docker || exit 3 sh'
          ? { stdout: '/usr/bin/docker\n' }
          : a.startsWith('docker version')
            ? { exitCode: 1, stdout: '{"Client":{"Version":"20.10.24"},"Server":null}\n', stderr }
            : undefined,
      );
    expect(
      await probeDocker(
        installed(
          'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?',
        ),
      ),
    ).toMatchObject({ installed: true, clientVersion: '20.10.24' });
    await expect(
      probeDocker(
        installed('permission denied while trying to connect to the Docker daemon socket'),
      ),
    ).rejects.toThrow('Could not check the Docker daemon on root@host: permission denied');
  });

  it('a network removed between ls and inspect is gone, not an error; another inspect failure is', async () => {
    const manager = (inspectErr: string) =>
      scripted((a) => {
        if (a.startsWith('docker node ls')) return { stdout: '{"ID":"n1","Self":true}\n' };
        if (a.startsWith('docker node inspect'))
          return {
            stdout: '{"ID":"n1","Spec":{"Role":"manager"},"Description":{"Hostname":"node1"}}\n',
          };
        if (a.startsWith('docker network ls')) return { stdout: 'p-app\np-netcheck-1\n' };
        if (a.startsWith('docker network inspect'))
          return {
            exitCode: 1,
            stdout: '{"Name":"p-app","Internal":false,"Attachable":true}\n',
            stderr: inspectErr,
          };
        return { stdout: '' };
      });
    const c = await probeCluster(
      manager('Error response from daemon: network p-netcheck-1 not found\n'),
      'p',
    );
    expect(c.networks.map((n) => n.name)).toEqual(['p-app']);
    await expect(
      probeCluster(
        manager('permission denied while trying to connect to the Docker daemon socket\n'),
        'p',
      ),
    ).rejects.toThrow('Could not check the overlay networks on root@host: permission denied');
  });
});

describe('the Docker lookup script, run by real shells', () => {
  // Debian and Ubuntu run sh as dash, where `command -v` of a missing command
  // exits 127, not 1 as in bash: found on a fresh Debian VPS.
  const [, ...args] = dockerLookup().argv;
  const empty = mkdtempSync(join(tmpdir(), 'no-docker-'));
  const withDocker = mkdtempSync(join(tmpdir(), 'fake-docker-'));
  symlinkSync('/bin/true', join(withDocker, 'docker'));
  for (const shell of ['/bin/dash', '/bin/bash']) {
    it(`${shell}: no docker on PATH exits ${DOCKER_MISSING_EXIT} with nothing on stdout; found prints its path`, () => {
      const missing = spawnSync(shell, args, { env: { PATH: empty }, encoding: 'utf8' });
      expect(missing.status).toBe(DOCKER_MISSING_EXIT);
      expect(missing.stdout).toBe('');
      const found = spawnSync(shell, args, { env: { PATH: withDocker }, encoding: 'utf8' });
      expect(found.status).toBe(0);
      expect(found.stdout.trim()).toBe(join(withDocker, 'docker'));
    });
  }
});
