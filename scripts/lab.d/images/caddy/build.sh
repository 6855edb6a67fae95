# cluster-lab/caddy:2 -- runs inside a chroot of the Debian bookworm base,
# with /bin/sh -eu, from the recipe directory.
apt-get install -y --no-install-recommends caddy ca-certificates wget
mkdir -p /config/caddy /data/caddy /etc/caddy /usr/share/caddy /srv
[ -s /etc/caddy/Caddyfile ] || install -m 0644 Caddyfile /etc/caddy/Caddyfile
[ -s /usr/share/caddy/index.html ] || echo 'Caddy works!' > /usr/share/caddy/index.html
