#!/usr/bin/env bash
# The base image both stages of the Containerfile start from: Debian bookworm (minbase) with its Python 3.11,
# the CA certificates, the time-zone data and the DejaVu fonts (the share picture's Greek and Cyrillic), made with mmdebstrap from a Debian mirror and imported into
# podman's store. For machines that reach Debian's mirror but no container registry; elsewhere any image
# with Debian bookworm's python3, ca-certificates, tzdata and fonts-dejavu-core will do (BASE_IMAGE,
# docs/deploying.md).
#
#   deploy/base-image.sh            # builds it unless a recent one exists (a week: security updates)
#   REBUILD_BASE=1 deploy/base-image.sh
set -euo pipefail

packages=python3,ca-certificates,tzdata,fonts-dejavu-core
# Its tag's suffix goes up with each change of the package list (also in Containerfile and .ci/image-check),
# so that a base made with another list is not kept for this one.
tag=${BASE_IMAGE:-localhost/eci-platform-base:bookworm-2}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
max_age_days=${BASE_MAX_AGE_DAYS:-7}

if [ -z "${REBUILD_BASE:-}" ] && podman image exists "$tag"; then
  created=$(podman image inspect --format '{{.Created.Unix}}' "$tag")
  if [ $(( $(date +%s) - created )) -lt $(( max_age_days * 86400 )) ]; then
    echo "base image $tag is recent: kept"
    exit 0
  fi
fi

command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# No documentation, manual pages or translations of Debian's own tools: nothing reads them in a container.
mmdebstrap --quiet --variant=minbase --mode=root \
  --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  bookworm "$work/rootfs.tar" "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
  "deb $mirror-security bookworm-security main"
podman import --quiet \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  --message "Debian bookworm minbase, python3, ca-certificates, tzdata, fonts-dejavu-core (mmdebstrap)" \
  "$work/rootfs.tar" "$tag" >/dev/null
echo "base image $tag built from $mirror"
