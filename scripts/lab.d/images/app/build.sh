# cluster-lab/app:1 -- FROM scratch. Runs ON THE MACHINE (not in a chroot),
# with /bin/sh -eu, from the recipe directory; fills the empty "$ROOTFS".
# BUSYBOX is the static busybox from Debian's busybox-static.
: "${ROOTFS:?}" "${BUSYBOX:?}"
mkdir -p "$ROOTFS/bin" "$ROOTFS/etc" "$ROOTFS/www" "$ROOTFS/root" "$ROOTFS/tmp" "$ROOTFS/var/www"
chmod 1777 "$ROOTFS/tmp"
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
chmod 0755 "$ROOTFS/bin/busybox"
for applet in $("$BUSYBOX" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$ROOTFS/bin/$applet"
done
for required in sh httpd wget cat hostname; do
	[ -L "$ROOTFS/bin/$required" ] || { echo "busybox has no $required applet" >&2; exit 1; }
done
install -m 0644 index.html "$ROOTFS/www/index.html"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$ROOTFS/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$ROOTFS/etc/group"
