#!/usr/bin/env bash
# The image's base, made from Debian's own packages (no container registry needed): a minimal
# bookworm by debootstrap, with the Python 3.11 and the CA certificates the runtime needs, then
# imported into podman as $BASE_IMAGE. Nothing else: the Dockerfile's build stage adds what
# building needs (python3-venv), the runtime stage nothing.
#
# onnxruntime's wheel links only glibc, libstdc++ and libgcc (no libgomp: it brings its own thread
# pool); opencv-python-headless bundles its libraries and needs only zlib; all of those are in
# minbase. Usage: deploy/base.sh [--force]   (skips when the image exists, unless --force).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/defectlab-base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PODMAN=${PODMAN:-podman --runtime runc --cgroup-manager cgroupfs --storage-driver vfs}

if [[ "${1:-}" != "--force" ]] && $PODMAN image exists "$BASE_IMAGE"; then
    echo "$BASE_IMAGE exists (deploy/base.sh --force makes it again)."
    exit 0
fi

root=$(mktemp -d /tmp/defectlab-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
started=$SECONDS

echo "debootstrap --variant=minbase $SUITE into $root"
debootstrap --variant=minbase --include=python3,ca-certificates "$SUITE" "$root" "$MIRROR" \
    > "$root.log" 2>&1 || { tail -30 "$root.log"; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# The point release's fixes and the security archive, then drop what only apt needed.
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
SOURCES
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -q && apt-get upgrade -y -q' > "$root.log" 2>&1 \
    || { tail -30 "$root.log"; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# Packages installed later (the build stage's) leave their documentation out too.
cat > "$root/etc/dpkg/dpkg.cfg.d/excludes" <<'EXCLUDES'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EXCLUDES
echo 'APT::Install-Recommends "false";' > "$root/etc/apt/apt.conf.d/90no-recommends"
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$root"/usr/share/{man,info,locale}/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
    "$root"/var/log/* "$root"/tmp/* "$root"/var/cache/debconf/*-old

chmod 755 "$root"  # mktemp made it 0700: the image's / must be open to its user
tar --numeric-owner -C "$root" -c . | $PODMAN import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $SUITE + python3, ca-certificates" \
    - "$BASE_IMAGE" > /dev/null
echo "Made $BASE_IMAGE in $((SECONDS - started)) s: $($PODMAN image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"
