#!/usr/bin/env bash
# Usage: hack/tools/build.sh <helm|dockerfile-lint|staticcheck|actionlint|helm-docs>
#
# Builds one pinned tool from this module (versions in hack/tools/go.mod) into
# a cache outside the repository, keyed by the tool's version, and prints the
# binary's path. A second run finds the binary and prints its path at once;
# concurrent runs wait on a lock instead of building twice.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tool="${1:-}"
modversion() { (cd "$here" && go list -m -f '{{.Version}}' "$1"); }

case "$tool" in
helm)
	version="$(modversion helm.sh/helm/v3)"
	pkg=helm.sh/helm/v3/cmd/helm
	# The same -X flags as Helm's own Makefile: the version it reports and the
	# default Kubernetes version of `helm template` / `helm lint`, taken from
	# the client-go it is built with.
	k8s="$(modversion k8s.io/client-go)"; k8s="${k8s#v}"
	k8s_major=$(( ${k8s%%.*} + 1 )); k8s_minor="${k8s#*.}"; k8s_minor="${k8s_minor%%.*}"
	ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
	ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		ldflags+=" -X $p.k8sVersionMajor=$k8s_major -X $p.k8sVersionMinor=$k8s_minor"
	done
	;;
helm-docs)
	version="$(modversion github.com/norwoodj/helm-docs)"
	pkg=github.com/norwoodj/helm-docs/cmd/helm-docs
	ldflags="-s -w -X main.version=$version"
	;;
actionlint)
	version="$(modversion github.com/rhysd/actionlint)"
	pkg=github.com/rhysd/actionlint/cmd/actionlint
	ldflags="-s -w -X github.com/rhysd/actionlint.version=$version"
	;;
staticcheck)
	version="$(modversion honnef.co/go/tools)"
	pkg=honnef.co/go/tools/cmd/staticcheck
	ldflags="-s -w"
	;;
dockerfile-lint)
	version="$(modversion github.com/moby/buildkit)"
	pkg=./dockerfile-lint
	ldflags="-s -w"
	;;
*)
	echo "usage: $0 <helm|dockerfile-lint|staticcheck|actionlint|helm-docs>" >&2
	exit 2
	;;
esac

cache="${XDG_CACHE_HOME:-$HOME/.cache}/kube-ecr-refresher/tools"
# dockerfile-lint is this module's own code: key it by its source too.
if [[ "$tool" == dockerfile-lint ]]; then
	version+="-$(cat "$here/go.sum" "$here/dockerfile-lint/"*.go | sha256sum | cut -c1-12)"
fi
out="$cache/$tool-$version"

if [[ -x "$out" ]]; then
	echo "$out"
	exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ -x "$out" ]]; then
	echo "$out"
	exit 0
fi

echo "building $tool $version into $out (a few minutes on 2 cores the first time)" >&2
start=$SECONDS
tmp="$(mktemp "$cache/.$tool.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
(cd "$here" && CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg")
chmod 0755 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "built $tool in $((SECONDS - start))s" >&2
echo "$out"
