import { type Cmd, cmd, shellScript } from '../core/cmd.js';
import { UserError } from '../core/errors.js';
import { type OsInfo, osFamily } from './parse.js';

const DOCKER_CE_RHEL_REPO = 'https://download.docker.com/linux/rhel/docker-ce.repo';

/** At most this long waiting for another apt/dpkg (unattended-upgrades on a new VPS). */
export const APT_LOCK_WAIT_S = 300;
/** The whole install, lock wait included: a mirror that stops answering must not hang init. */
export const INSTALL_TIMEOUT_MS = 20 * 60_000;

/**
 * apt on a host that may be busy or half-installed. A fresh VPS often runs
 * unattended-upgrades at first boot: wait (bounded) while any apt/dpkg lock is
 * held, reporting who holds it on stderr (shown as progress); the holder is
 * found in /proc/locks, so no tool beyond Debian's required set is needed.
 * An install killed halfway (a dropped connection, a reboot) leaves dpkg
 * "interrupted", which apt refuses to touch until `dpkg --configure -a`: run
 * it only then. Another apt that takes a lock between the check and the
 * command sends us back to waiting. $1 = seconds to wait at most; the rest =
 * packages to install (none: only wait and mend an interrupted install).
 */
const APT_INSTALL_SCRIPT = `max=$1; shift; waited=0
holder() {
  for f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
    [ -e "$f" ] || continue
    ino=$(stat -c %i "$f") || continue
    pid=$(awk -v ino="$ino" '$2 != "->" { n = split($6, a, ":"); if (a[n] == ino) { print $5; exit } }' /proc/locks)
    [ -n "$pid" ] || continue
    echo "$f is held by $(cat "/proc/$pid/comm" 2>/dev/null || echo '?') (pid $pid)"
    return 0
  done
  return 1
}
busy() { case $1 in *"Could not get lock"*|*"Unable to acquire the dpkg"*|*"frontend lock"*|*"locked by another process"*) return 0;; esac; return 1; }
pause() { sleep 3; waited=$((waited + 3)); }
while :; do
  if h=$(holder); then
    if [ "$waited" -ge "$max" ]; then echo "the package manager is still busy after $waited s: $h; nothing was installed" >&2; exit 75; fi
    echo "waiting for the package manager: $h, $waited s of at most $max s" >&2
    pause; continue
  fi
  if [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ]; then
    echo "finishing an interrupted package install: dpkg --configure -a" >&2
    out=$(DEBIAN_FRONTEND=noninteractive dpkg --configure -a 2>&1) || { if busy "$out"; then pause; continue; fi; printf '%s\\n' "$out" >&2; exit 1; }
  fi
  if [ "$#" -eq 0 ]; then
    # Nothing to install: only mend what an interrupted install left (a
    # package dpkg could not finish is reinstalled from apt's cache).
    [ -z "$(dpkg --audit 2>/dev/null)" ] && exit 0
    out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -f -o DPkg::Lock::Timeout=60 2>&1) || { if busy "$out"; then pause; continue; fi; printf '%s\\n' "$out" >&2; exit 1; }
    exit 0
  fi
  out=$(apt-get -o Acquire::Retries=3 -o Acquire::http::Timeout=60 update 2>&1) || { if busy "$out"; then pause; continue; fi; printf '%s\\n' "$out" >&2; exit 1; }
  out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=60 -o Acquire::Retries=3 -o Acquire::http::Timeout=60 "$@" 2>&1) || { if busy "$out"; then pause; continue; fi; printf '%s\\n' "$out" >&2; exit 1; }
  exit 0
done`;

/** Install Debian/Ubuntu packages, waiting for a busy package manager and finishing an interrupted install first. */
export function aptInstall(packages: readonly string[]): Cmd {
  return shellScript(APT_INSTALL_SCRIPT, [String(APT_LOCK_WAIT_S), ...packages], {
    timeoutMs: INSTALL_TIMEOUT_MS,
    progress: true,
  });
}

/**
 * Commands that install Docker Engine and leave the daemon enabled and running.
 * Debian/Ubuntu: the distribution's signed docker.io package (no curl | sh).
 * RHEL family: Docker's own docker-ce repository (RHEL ships only podman).
 */
export function dockerInstallCmds(os: OsInfo): Cmd[] {
  const enable = cmd(['systemctl', 'enable', '--now', 'docker'], { timeoutMs: 5 * 60_000 });
  const timeoutMs = INSTALL_TIMEOUT_MS;
  switch (osFamily(os)) {
    case 'debian':
      return [aptInstall(['docker.io']), enable];
    case 'rhel':
      return [
        cmd(['dnf', 'install', '-y', 'dnf-plugins-core'], { timeoutMs }),
        cmd(['dnf', 'config-manager', '--add-repo', DOCKER_CE_RHEL_REPO], { timeoutMs }),
        cmd(['dnf', 'install', '-y', 'docker-ce', 'docker-ce-cli', 'containerd.io'], { timeoutMs }),
        enable,
      ];
    default:
      throw new UserError(
        `Cannot install Docker on ${os.prettyName}: only Debian, Ubuntu and RHEL-family hosts are supported.`,
        'install Docker Engine on the host yourself, then run `cluster-cli init` again',
      );
  }
}

/**
 * Docker is installed but its daemon is down: start it and keep it enabled.
 * On Debian/Ubuntu first let a running apt finish and finish an interrupted
 * one (an install cut off before it configured the daemon lands here).
 */
export function dockerStartCmds(os?: OsInfo): Cmd[] {
  const start = cmd(['systemctl', 'enable', '--now', 'docker'], { timeoutMs: 5 * 60_000 });
  return os && osFamily(os) === 'debian' ? [aptInstall([]), start] : [start];
}
