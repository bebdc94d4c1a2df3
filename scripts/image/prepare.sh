#!/usr/bin/env bash
# Makes this machine able to build and run the Dockerfile's image without a Docker engine, for `npm run test:image`:
# 1. podman, buildah and runc, from Debian's packages (as root) when missing;
# 2. the Dockerfile's base image (ARG NODE_IMAGE): pulled when a registry answers, else a stand-in assembled by
#    assemble-base.sh and imported under the official name, so the Dockerfile builds unchanged; the stand-in's
#    tarball is cached in $MOVR_IMAGE_CACHE (default /var/cache/movr-image) for the next run;
# 3. the runtime settings this machine needs, written to containers.conf only when a trial run fails without them.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${MOVR_IMAGE_CACHE:-/var/cache/movr-image}
# Bump when assemble-base.sh changes what it builds, so a cached stand-in is rebuilt.
standin_recipe=1

say() { echo "prepare-image: $*" >&2; }
die() { say "$*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "needs root to $1"; }
elapsed() { echo "$(( $(date +%s) - $1 )) s"; }

base=$(sed -n 's/^ARG NODE_IMAGE=//p' Dockerfile)
[[ $base =~ ^node:([0-9]+\.[0-9]+\.[0-9]+)-bookworm-slim$ ]] || die "the Dockerfile's ARG NODE_IMAGE ($base) is not node:X.Y.Z-bookworm-slim"
node_version=${BASH_REMATCH[1]}
ref=docker.io/library/$base

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  need_root "install podman and runc (apt-get install podman buildah runc)"
  started=$(date +%s)
  apt-get update -qq
  # buildah brings the network plugins podman's build and run expect.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman buildah runc >/dev/null
  say "installed podman, buildah and runc in $(elapsed "$started")"
fi

if podman image exists "$ref"; then
  say "base image $base present"
else
  tarball=$cache/${base//[:\/]/-}-standin$standin_recipe.tar
  started=$(date +%s)
  if [ ! -f "$tarball" ] && timeout 120 podman pull --quiet "$ref" >/dev/null 2>&1; then
    say "pulled $base in $(elapsed "$started")"
  else
    if [ ! -f "$tarball" ]; then
      need_root "assemble the base image stand-in (debootstrap)"
      say "no registry answers for $base: assembling a stand-in (Debian bookworm minbase + Node $node_version)"
      mkdir -p "$cache"
      bash scripts/image/assemble-base.sh "$node_version" "$tarball"
      say "assembled in $(elapsed "$started"), cached as $tarball"
    fi
    # The official image's config: PATH, NODE_VERSION, its entrypoint and `node` as the default command.
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "ENV NODE_VERSION=$node_version" \
      --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
      --change 'CMD ["node"]' \
      "$tarball" "$ref" >/dev/null
    say "imported the stand-in as $base ($(elapsed "$started"))"
  fi
fi

# A trial run, as the test runs its containers; on failure, the two settings this kind of sandbox is known to need.
trial() { podman run --rm --read-only --network none --user 1000:1000 "$ref" node -e 'process.exit(0)' 2>&1; }
conf=/etc/containers/containers.conf
write_conf() {
  cat >"$conf" <<CONF
# movr-image: written by scripts/image/prepare.sh after a trial container failed with the defaults
# (the file before, if any: $conf.before-movr-image)
[containers]
default_ulimits = ["nofile=$1:$1", "nproc=$2:$2"]

[engine]
runtime = "$3"
CONF
}
if ! output=$(trial); then
  need_root "adjust $conf (a trial container failed: $output)"
  grep -qs '^# movr-image' "$conf" && die "a trial container fails despite the settings in $conf: $output"
  [ -f "$conf" ] && cp "$conf" "$conf.before-movr-image"
  mkdir -p /etc/containers
  runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}')
  # crun refuses a hybrid cgroup layout ("cgroups in hybrid mode not supported"); runc runs there.
  [[ $output == *"hybrid mode"* || $runtime != runc ]] && runtime=runc
  # Podman's default nofile/nproc limits exceed what this sandbox lets the container's init set ("error setting
  # rlimit"): nofile within the hard limit, nproc the largest the runtime accepts (here below `ulimit -Hu`).
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  hard_nproc=$(ulimit -Hu)
  [ "$hard_nproc" = unlimited ] && hard_nproc=4194304
  for nproc in "$hard_nproc" 65536 32768 16384 4096; do
    [ "$nproc" -le "$hard_nproc" ] || continue
    write_conf "$nofile" "$nproc" "$runtime"
    output=$(trial) && break
  done
  output=$(trial) || { cp "$conf" "$conf.failed-movr-image"; rm -f "$conf"; [ -f "$conf.before-movr-image" ] && mv "$conf.before-movr-image" "$conf"; die "a trial container still fails with runc and limits within the hard ones: $output"; }
  say "wrote runtime = \"$runtime\", default_ulimits nofile=$nofile nproc=$nproc to $conf"
fi
say "ready: $(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}'), base $base"
