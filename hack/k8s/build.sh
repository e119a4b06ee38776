#!/usr/bin/env bash
# Builds etcd, the control plane (kube-apiserver, kube-controller-manager, kube-scheduler), the node (kubelet,
# kube-proxy) and kubectl from this module into a cache outside the repository, keyed by the Kubernetes version
# and go.sum, and prints the bin directory. A warm cache is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(grep -oE "k8s.io/kubernetes v[0-9]+\.[0-9]+\.[0-9]+" "$here/go.mod" | head -n1 | cut -d" " -f2)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/etcd/main.go" "$0" | sha256sum | cut -c1-12)
bin="${VIDCONV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vidconv}/k8s-$version-$key/bin"
commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
# The directory appears whole (one rename below): one binary in it means all are there.
if [[ -x "$bin/kubectl" ]]; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "go is not installed: install Go 1.25 or newer to build the control plane" >&2; exit 3; }
minor=${version#v1.}; minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
tmp="$bin.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cd "$here"
echo "building etcd ${commands[*]} $version into $bin (the first build takes a while)" >&2
# CGO off: static binaries, as the Kubernetes release builds them; -trimpath keeps the cache key meaningful.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/" ./etcd "${commands[@]/#/k8s.io/kubernetes/cmd/}" >&2
# Another build may have won the race: keep its binaries (-T: never move ours into it); the trap drops ours.
mv -T "$tmp" "$bin" 2>/dev/null || [[ -x "$bin/kubectl" ]]
echo "$bin"
