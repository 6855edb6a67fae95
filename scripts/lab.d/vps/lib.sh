# shellcheck shell=bash
# scripts/lab.d/vps/lib.sh: shared by template, up, down and boot. Sourced,
# never run. See README.md in this directory.

export LC_ALL=C
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
readonly VPS_FAIL=3
readonly VPS_SUITE=bookworm
# The non-root login of every VPS (NOPASSWD sudo), as Debian's cloud images have.
readonly VPS_SUDO_USER=debian
readonly VPS_APT_PORT=3142

vps_say() { printf 'vps: %s\n' "$*" >&2; }
vps_die() {
	printf 'vps: error: %s\n' "$*" >&2
	exit "$VPS_FAIL"
}
vps_on_err() {
	if [ "$1" -ne "$VPS_FAIL" ]; then
		printf 'vps: error: unexpected failure of "%s" (exit %s) at %s line %s\n' "$3" "$1" "$4" "$2" >&2
	fi
	exit "$VPS_FAIL"
}

vps_require_root() { [ "$(id -u)" -eq 0 ] || vps_die "must run as root"; }

# vps_state DIR: validated, absolute state directory.
vps_state() {
	local p
	p=$(realpath -m -- "${1:-/var/tmp/cluster-cli-vps}")
	[[ $p =~ ^/[A-Za-z0-9._/-]+$ ]] || vps_die "state dir '$p' must be absolute and use only [A-Za-z0-9._/-]"
	case $p/ in
	/ | /run/* | /proc/* | /sys/* | /dev/*) vps_die "refusing state dir $p" ;;
	esac
	echo "$p"
}

# rm -rf that never crosses into another filesystem (a forgotten bind mount).
vps_rm_tree() {
	local d
	for d; do
		if [ -z "$d" ] || [ "$d" = / ]; then vps_die "rm_tree: bad path '$d'"; fi
		if [ -e "$d" ] || [ -L "$d" ]; then rm -rf --one-file-system -- "$d"; fi
	done
}

vps_alive() { # PID exists and is not a zombie
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

vps_read_pid() {
	local p=
	if [ -f "$1" ]; then read -r p <"$1" || true; fi
	if [[ $p =~ ^[0-9]+$ ]] && [ "$p" -gt 1 ]; then echo "$p"; fi
}

# vps_ours PID STATE: the process runs and carries CLUSTER_CLI_VPS_STATE=STATE
# in its environment (everything up starts on the machine does): guards every
# kill against PID reuse.
vps_ours() {
	[[ $1 =~ ^[0-9]+$ ]] && [ "$1" -gt 1 ] && vps_alive "$1" || return 1
	tr '\0' '\n' 2>/dev/null <"/proc/$1/environ" | grep -qxF -- "CLUSTER_CLI_VPS_STATE=$2"
}

# The cgroup hierarchies of this machine (v1 controllers, name=systemd, the
# v2 unified one, or the single v2 root): one directory each.
vps_hierarchies() {
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		echo /sys/fs/cgroup
		return
	fi
	awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts | sort -u
}

# vps_kill_cgroups NAME: KILL every process in /NAME of every hierarchy
# (nspawn's payload and supervisor included), then remove those cgroups.
# Prints what could not be removed.
vps_kill_cgroups() {
	local name=$1 h pids i
	for i in $(seq 1 50); do
		pids=$(for h in $(vps_hierarchies); do
			if [ -d "$h/$name" ]; then find "$h/$name" -name cgroup.procs -exec cat {} + 2>/dev/null; fi
		done | sort -nu | tr '\n' ' ')
		[ -n "${pids// /}" ] || break
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.2
	done
	for h in $(vps_hierarchies); do
		for i in $(seq 1 25); do
			[ -d "$h/$name" ] || break
			find "$h/$name" -depth -type d -exec rmdir {} + 2>/dev/null || sleep 0.2
		done
		if [ -d "$h/$name" ]; then echo "cgroup $h/$name"; fi
	done
}

# vps_addr GATEWAY N [BASE]: the address of host N on GATEWAY's /24 (.BASE+N, BASE 10).
vps_addr() { printf '%s.%s' "${1%.*}" "$((${3:-10} + $2))"; }

# The apt-cacher-ng instance of a state dir: its PID if it runs, else fail.
vps_acng_pid() {
	local p
	p=$(vps_read_pid "$1/apt-cacher-ng/acng.pid") || return 1
	[ -n "$p" ] && vps_ours "$p" "$1" || return 1
	echo "$p"
}

# The Debian mirror this machine's apt uses (deb822 sources first), e.g.
# http://deb.debian.org/debian. The template is built from it and
# apt-cacher-ng forwards the hosts' requests to it.
vps_mirror() {
	local m
	m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	if [ -z "$m" ]; then
		m=$(sed -e 's/\[[^]]*\]//' /etc/apt/sources.list 2>/dev/null | awk '$1 == "deb" { print $2; exit }' || true)
	fi
	m=${m:-http://deb.debian.org/debian}
	echo "${m%/}"
}

# vps_close_fds: close every inherited descriptor above 2 (a daemon started
# from a tool's job runner would otherwise hold its pipes open).
vps_close_fds() {
	local fd
	for fd in /proc/self/fd/*; do
		fd=${fd##*/}
		if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
	done
}
