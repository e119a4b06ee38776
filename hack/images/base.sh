#!/usr/bin/env bash
# Puts the image our Dockerfiles start FROM (python:3.11-slim-bookworm) into the buildah store of hack/images/buildah
# when it is not there yet, and prints its name. Where a registry is reachable, `hack/images/buildah pull` it
# instead and this does nothing. Where none is (the development machines), this makes a local stand-in, so the
# Dockerfiles build unchanged: a Debian bookworm root filesystem from debootstrap with Debian's Python 3.11 (the
# same minor version), `python`, `python3` and `pip` in /usr/local/bin as in the official image, pip not
# "externally managed" (the official image isn't either), and this machine's CA certificates trusted as well as
# Debian's (a proxy that re-signs TLS would otherwise break pip and apt over https inside the builds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
buildah="$here/buildah"
from=$(awk '$1 == "FROM" { print $2; exit }' "$here/../../api/Dockerfile")
# Docker's short names mean Docker Hub's official images; stored under the full name, any lookup finds it.
name="docker.io/library/$from"
if "$buildah" inspect --type image "$name" >/dev/null 2>&1; then echo "$name"; exit 0; fi

command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 3; }
mirror=${VIDCONV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache="${VIDCONV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vidconv}"
mkdir -p "$cache"
rootfs=$(mktemp -d "$cache/base-rootfs.XXXXXX")
container=""
cleanup() {
  [[ -z "$container" ]] || "$buildah" rm "$container" >/dev/null 2>&1 || true
  rm -rf "$rootfs"
}
trap cleanup EXIT

echo "making $name: debootstrap bookworm from $mirror with python3" >&2
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# The official image's sources: bookworm, its updates and security fixes (the transcoder installs ffmpeg).
rm -f "$rootfs/etc/apt/sources.list"
cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python3"
ln -sf python3 "$rootfs/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
# Each certificate this machine trusts and Debian's bundle lacks, one file each, as update-ca-certificates wants.
python3 - /etc/ssl/certs/ca-certificates.crt "$rootfs" <<'PY'
import re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
host, root = open(sys.argv[1]).read(), sys.argv[2]
known = set(pem.findall(open(root + "/etc/ssl/certs/ca-certificates.crt").read()))
for n, cert in enumerate(c for c in pem.findall(host) if c not in known):
    open(f"{root}/usr/local/share/ca-certificates/host-{n}.crt", "w").write(cert + "\n")
PY
chroot "$rootfs" update-ca-certificates >/dev/null
# What the slim image leaves out: package lists, caches, docs.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log

container=$("$buildah" from scratch)
mount=$("$buildah" mount "$container")
cp -a "$rootfs/." "$mount/"
"$buildah" umount "$container" >/dev/null
version=$(chroot "$rootfs" python3 -c 'import platform; print(platform.python_version())')
"$buildah" config --os linux --arch "$(dpkg --print-architecture)" \
  --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
  --env PYTHON_VERSION="$version" --cmd python3 \
  --label org.opencontainers.image.description="local stand-in for $from: debootstrap bookworm + Debian's python3" \
  "$container"
"$buildah" commit --quiet --rm "$container" "$name" >/dev/null
container=""
echo "$name"
