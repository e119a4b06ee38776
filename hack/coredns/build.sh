#!/usr/bin/env bash
# Builds CoreDNS, the test cluster's DNS add-on, from this module into a cache outside the repository, keyed by its
# version and go.sum, and prints the binary's path. A warm cache is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(grep -oE "github.com/coredns/coredns v[0-9]+\.[0-9]+\.[0-9]+" "$here/go.mod" | head -n1 | cut -d" " -f2)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/tools.go" "$0" | sha256sum | cut -c1-12)
dir="${VIDCONV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vidconv}/coredns-$version-$key"
if [[ -x "$dir/coredns" ]]; then echo "$dir/coredns"; exit 0; fi

command -v go >/dev/null || { echo "go is not installed: install Go 1.26 or newer to build CoreDNS" >&2; exit 3; }
tmp="$dir.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cd "$here"
echo "building coredns $version into $dir (the first build takes a few minutes)" >&2
# Static and stripped, as CoreDNS's release builds it; it runs in a scratch image.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/coredns" github.com/coredns/coredns >&2
# Another build may have won the race: keep its binary (-T: never move ours into it); the trap drops ours.
mv -T "$tmp" "$dir" 2>/dev/null || [[ -x "$dir/coredns" ]]
echo "$dir/coredns"
