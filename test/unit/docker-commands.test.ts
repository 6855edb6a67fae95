import { describe, expect, it } from 'vitest';
import {
  APT_LOCK_WAIT_S,
  aptInstall,
  dockerInstallCmds,
  INSTALL_TIMEOUT_MS,
} from '../../src/cluster/docker-install.js';
import { formatCmd, stdinOf } from '../../src/core/cmd.js';
import { UserError } from '../../src/core/errors.js';
import { secret } from '../../src/core/secret.js';
import {
  configCreate,
  networkCreate,
  nodeLabelAdd,
  secretCreate,
  stackDeploy,
  swarmInit,
} from '../../src/docker/commands.js';

describe('docker command builders (exact argv)', () => {
  it('swarm init', () => {
    expect(swarmInit({ advertiseAddr: '10.0.0.5' }).argv).toEqual([
      'docker',
      'swarm',
      'init',
      '--advertise-addr',
      '10.0.0.5',
    ]);
  });

  it('overlay networks: attachable, internal for data, labelled as ours', () => {
    expect(
      networkCreate({ name: 'p-data', subnet: '10.0.30.0/24', internal: true, attachable: true })
        .argv,
    ).toEqual([
      'docker',
      'network',
      'create',
      '--driver',
      'overlay',
      '--subnet',
      '10.0.30.0/24',
      '--attachable',
      '--internal',
      '--label',
      'io.cluster-cli.managed=true',
      'p-data',
    ]);
    expect(
      networkCreate({ name: 'p-app', subnet: '10.0.20.0/24', internal: false, attachable: false })
        .argv,
    ).not.toContain('--internal');
  });

  it('secrets go through stdin, never argv', () => {
    const c = secretCreate('p_postgres_password', secret('hunter2-hunter2'));
    expect(c.argv).toEqual([
      'docker',
      'secret',
      'create',
      '--label',
      'io.cluster-cli.managed=true',
      'p_postgres_password',
      '-',
    ]);
    expect(c.argv.join(' ')).not.toContain('hunter2');
    expect(stdinOf(c)).toBe('hunter2-hunter2');
    expect(formatCmd(c)).toBe(
      'docker secret create --label io.cluster-cli.managed=true p_postgres_password - < [REDACTED]',
    );
  });

  it('configs and the stack file go through stdin too', () => {
    expect(configCreate('p_caddyfile_abc', 'x {}').argv).toEqual([
      'docker',
      'config',
      'create',
      '--label',
      'io.cluster-cli.managed=true',
      'p_caddyfile_abc',
      '-',
    ]);
    const d = stackDeploy({ name: 'p', resolveImage: 'never', prune: true }, 'services: {}\n');
    expect(d.argv).toEqual([
      'docker',
      'stack',
      'deploy',
      '--compose-file',
      '-',
      '--resolve-image',
      'never',
      '--prune',
      'p',
    ]);
    expect(d.stdin).toBe('services: {}\n');
  });

  it('node labels in a stable order', () => {
    expect(nodeLabelAdd('abc', { public_ip: 'true', db: 'primary' }).argv).toEqual([
      'docker',
      'node',
      'update',
      '--label-add',
      'db=primary',
      '--label-add',
      'public_ip=true',
      'abc',
    ]);
  });
});

describe('Docker install plan per OS family', () => {
  const os = (id: string, idLike: string[] = []) => ({ id, idLike, versionId: '', prettyName: id });

  it('Debian and Ubuntu: the distribution package (waiting for a busy apt, bounded), then enable the daemon', () => {
    for (const o of [os('debian'), os('ubuntu', ['debian'])]) {
      const [install, enable, ...rest] = dockerInstallCmds(o);
      expect(rest).toEqual([]);
      expect(install?.argv.slice(0, 2)).toEqual(['sh', '-c']);
      expect(install?.argv.slice(3)).toEqual(['sh', String(APT_LOCK_WAIT_S), 'docker.io']);
      expect(install?.progress).toBe(true);
      expect(install?.timeoutMs).toBe(INSTALL_TIMEOUT_MS);
      expect(install?.readOnly).toBeUndefined();
      expect(enable && formatCmd(enable)).toBe('systemctl enable --now docker');
    }
  });

  it('the apt script is POSIX sh that dash accepts', async () => {
    const script = aptInstall(['docker.io']).argv[2] as string;
    // -n: parse only. dash is /bin/sh on Debian and Ubuntu.
    const { execa } = await import('execa');
    for (const sh of ['dash', 'sh']) {
      const r = await execa(sh, ['-n', '-c', script], { reject: false });
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
    }
  });

  it('RHEL family: docker-ce repository', () => {
    expect(dockerInstallCmds(os('rocky', ['rhel', 'centos', 'fedora'])).map(formatCmd)).toEqual([
      'dnf install -y dnf-plugins-core',
      'dnf config-manager --add-repo https://download.docker.com/linux/rhel/docker-ce.repo',
      'dnf install -y docker-ce docker-ce-cli containerd.io',
      'systemctl enable --now docker',
    ]);
  });

  it('anything else: a clear error saying what to do', () => {
    expect(() => dockerInstallCmds(os('alpine'))).toThrow(UserError);
    expect(() => dockerInstallCmds(os('alpine'))).toThrow('Cannot install Docker on alpine');
  });
});
