#!/usr/bin/env bash
# Builds the test cluster's DNS add-on image from the CoreDNS binary hack/coredns/build.sh makes, into the buildah
# store of hack/images/buildah, and prints its name. No registry here to pull registry.k8s.io/coredns from.
# The tag is the binary's and this script's hash: a warm store is a lookup.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
buildah="$here/buildah"
binary=$("$here/../coredns/build.sh" | tail -n1)
name="localhost/vidconv-coredns:$(cat "$binary" "$0" | sha256sum | cut -c1-12)"
if "$buildah" inspect --type image "$name" >/dev/null 2>&1; then echo "$name"; exit 0; fi
container=""
cleanup() { [[ -z "$container" ]] || "$buildah" rm "$container" >/dev/null 2>&1 || true; }
trap cleanup EXIT
container=$("$buildah" from scratch)
"$buildah" copy --quiet "$container" "$binary" /coredns >/dev/null
# Non-root, as the upstream image (distroless's nonroot user); the Corefile comes from a ConfigMap.
"$buildah" config --os linux --arch "$(go env GOARCH)" --entrypoint '["/coredns"]' --user 65532:65532 "$container"
"$buildah" commit --quiet --rm "$container" "$name" >/dev/null
container=""
echo "$name"
