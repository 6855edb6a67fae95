# cluster-lab/postgres:15 -- runs inside a chroot of the Debian bookworm base,
# with /bin/sh -eu, from the recipe directory. Stand-in for the official
# postgres:15 image (see docker-entrypoint.sh).
mkdir -p /etc/postgresql-common
echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
apt-get install -y --no-install-recommends postgresql-15 postgresql-client-15
# JIT is optional (postgres silently runs without it): drop LLVM, ~150 MB.
rm -rf /usr/lib/postgresql/15/lib/llvmjit.so /usr/lib/postgresql/15/lib/llvmjit_types.bc \
	/usr/lib/postgresql/15/lib/bitcode /usr/lib/*-linux-gnu/libLLVM-14.so* /usr/lib/*-linux-gnu/libz3.so*
install -m 0755 docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ln -s usr/local/bin/docker-entrypoint.sh /docker-entrypoint.sh
mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data /var/run/postgresql
chown postgres:postgres /var/lib/postgresql /var/lib/postgresql/data /var/run/postgresql
chmod 1777 /var/lib/postgresql/data
chmod 3777 /var/run/postgresql
