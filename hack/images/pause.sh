#!/usr/bin/env bash
# Builds the pod sandbox ("pause") image a container runtime needs for every pod, from pause/main.go, into the
# buildah store of hack/images/buildah, and prints its name. No registry here to pull registry.k8s.io/pause from.
# The tag is the source's hash: a warm store is a lookup.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
buildah="$here/buildah"
name="localhost/vidconv-pause:$(cat "$here/pause/main.go" "$0" | sha256sum | cut -c1-12)"
if "$buildah" inspect --type image "$name" >/dev/null 2>&1; then echo "$name"; exit 0; fi
command -v go >/dev/null || { echo "go is not installed: the pause image is built from Go" >&2; exit 3; }
tmp=$(mktemp -d)
container=""
cleanup() { [[ -z "$container" ]] || "$buildah" rm "$container" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
# Static, stripped, no module needed (standard library only).
(cd "$here/pause" && CGO_ENABLED=0 GO111MODULE=off go build -trimpath -ldflags "-s -w" -o "$tmp/pause" main.go)
container=$("$buildah" from scratch)
"$buildah" copy --quiet "$container" "$tmp/pause" /pause >/dev/null
"$buildah" config --os linux --arch "$(go env GOARCH)" --entrypoint '["/pause"]' --user 65535:65535 "$container"
"$buildah" commit --quiet --rm "$container" "$name" >/dev/null
container=""
echo "$name"
