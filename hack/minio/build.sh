#!/usr/bin/env bash
# Builds the MinIO server from its Go module at a pinned version into a cache outside the repository and prints
# the bin directory. A warm cache is reused. VIDCONV_MINIO=/path/to/minio makes the tests use that binary instead.
set -euo pipefail
# MinIO's release tags (RELEASE.2025-10-15T17-29-55Z) are not semver, so the module is pinned by pseudo-version.
# This one is the community edition's last commit: RELEASE.2025-10-15T17-29-55Z's code, README changes since,
# and the only github.com/minio/minio version the Go module proxy lists.
version=v0.0.0-20260212201848-7aac2a2c5b7c
bin="${VIDCONV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vidconv}/minio-$version/bin"
if [[ -x "$bin/minio" ]]; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "go is not installed: install Go 1.24 or newer to build MinIO" >&2; exit 3; }
# What MinIO's own buildscripts/gen-ldflags.go sets, from the pseudo-version: `minio --version` names the commit.
stamp=${version#v0.0.0-}; commit=${stamp#*-}; stamp=${stamp%%-*}
released="${stamp:0:4}-${stamp:4:2}-${stamp:6:2}T${stamp:8:2}:${stamp:10:2}:${stamp:12:2}Z"
ldflags="-s -w -X github.com/minio/minio/cmd.Version=$released -X github.com/minio/minio/cmd.CopyrightYear=${stamp:0:4}"
ldflags+=" -X github.com/minio/minio/cmd.ReleaseTag=DEVELOPMENT.${released//:/-}"
ldflags+=" -X github.com/minio/minio/cmd.CommitID=$commit -X github.com/minio/minio/cmd.ShortCommitID=$commit"
tmp="$bin.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "building minio $version into $bin (the first build takes a few minutes)" >&2
# CGO off: a static binary, as MinIO's releases are; -trimpath keeps local paths out of it. The module has no
# replace directives, so `go install module@version` builds it as published, checksums verified.
CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "github.com/minio/minio@$version" >&2
# Another build may have won the race: keep its binary (-T: never move ours into it); the trap drops ours.
mv -T "$tmp" "$bin" 2>/dev/null || [[ -x "$bin/minio" ]]
echo "$bin"
