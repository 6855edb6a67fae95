# cluster-lab/redis:7 -- runs inside a chroot of the Debian bookworm base,
# with /bin/sh -eu, from the recipe directory.
apt-get install -y --no-install-recommends redis-server redis-tools
install -m 0755 docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
mkdir -p /data
chown redis:redis /data
