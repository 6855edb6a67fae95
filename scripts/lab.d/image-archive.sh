# shellcheck shell=bash
# Sourced by scripts/lab and scripts/build-image: one-layer `docker save`-format
# archives, built without a build daemon or a registry. Needs rm_tree (rm -rf
# that stays on one filesystem) from the caller.

# make_archive ROOT CONFIG TAG OUT: a `docker save`-style archive of ROOT as a
# single layer, so `docker load` gives the same image ID on every host. CONFIG
# is the image config's "config" object (Env, Entrypoint, Cmd, ...). Writes
# OUT and beside it OUT-without-.tar + .id (the image ID, "sha256:..."); the
# scratch space is ROOT's sibling "archive".
# Optional environment:
#   ARCHIVE_EPOCH       a Unix time: the image's "created" and every file's
#                       mtime, with name-sorted entries and owner root:0, so
#                       the same ROOT contents give the same image ID.
#                       Unset: "created" is now and the tar is as found.
#   ARCHIVE_CREATED_BY  the history entry's created_by
make_archive() {
	local root=$1 config=$2 tag=$3 out=$4 a diff cfg created by tar_opts=(--numeric-owner) outer_opts=()
	by=${ARCHIVE_CREATED_BY:-"scripts/lab images (${out##*/})"}
	a=$(dirname "$root")/archive
	rm_tree "$a"
	mkdir -p "$a"
	if [ -n "${ARCHIVE_EPOCH:-}" ]; then
		tar_opts+=(--sort=name --owner=0 --group=0 --mtime="@$ARCHIVE_EPOCH")
		outer_opts=(--numeric-owner --owner=0 --group=0 --mtime="@$ARCHIVE_EPOCH")
		created=$(date -u -d "@$ARCHIVE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
	else
		created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	fi
	diff=$(tar "${tar_opts[@]}" -C "$root" -cf - . | tee "$a/layer.tar" | sha256sum | cut -c1-64)
	mkdir "$a/$diff"
	mv "$a/layer.tar" "$a/$diff/layer.tar"
	{
		printf '{"architecture":"%s","os":"linux","created":"%s",\n"config":' "$(dpkg --print-architecture)" "$created"
		cat "$config"
		printf ',\n"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},\n' "$diff"
		printf '"history":[{"created":"%s","created_by":"%s"}]}\n' "$created" "$by"
	} >"$a/config.json"
	cfg=$(sha256sum "$a/config.json" | cut -c1-64)
	mv "$a/config.json" "$a/$cfg.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$cfg" "$tag" "$diff" >"$a/manifest.json"
	tar "${outer_opts[@]}" -C "$a" -cf "$out.part" manifest.json "$cfg.json" "$diff/layer.tar"
	echo "sha256:$cfg" >"${out%.tar}.id"
	mv "$out.part" "$out"
	rm_tree "$a"
}
