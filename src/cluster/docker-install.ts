import { type Cmd, cmd } from '../core/cmd.js';
import { UserError } from '../core/errors.js';
import { type OsInfo, osFamily } from './parse.js';

const DOCKER_CE_RHEL_REPO = 'https://download.docker.com/linux/rhel/docker-ce.repo';

/**
 * Commands that install Docker Engine and leave the daemon enabled and running.
 * Debian/Ubuntu: the distribution's signed docker.io package (no curl | sh).
 * RHEL family: Docker's own docker-ce repository (RHEL ships only podman).
 */
export function dockerInstallCmds(os: OsInfo): Cmd[] {
  const enable = cmd(['systemctl', 'enable', '--now', 'docker']);
  switch (osFamily(os)) {
    case 'debian':
      return [
        cmd(['apt-get', 'update']),
        cmd([
          'env',
          'DEBIAN_FRONTEND=noninteractive',
          'apt-get',
          'install',
          '-y',
          '--no-install-recommends',
          'docker.io',
        ]),
        enable,
      ];
    case 'rhel':
      return [
        cmd(['dnf', 'install', '-y', 'dnf-plugins-core']),
        cmd(['dnf', 'config-manager', '--add-repo', DOCKER_CE_RHEL_REPO]),
        cmd(['dnf', 'install', '-y', 'docker-ce', 'docker-ce-cli', 'containerd.io']),
        enable,
      ];
    default:
      throw new UserError(
        `Cannot install Docker on ${os.prettyName}: only Debian, Ubuntu and RHEL-family hosts are supported.`,
        'install Docker Engine on the host yourself, then run `cluster-cli init` again',
      );
  }
}

/** Docker is installed but its daemon is down: start it and keep it enabled. */
export function dockerStartCmds(): Cmd[] {
  return [cmd(['systemctl', 'enable', '--now', 'docker'])];
}
