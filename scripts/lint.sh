#!/usr/bin/env bash
# lint.sh: run golangci-lint v2 (the version pinned below, with the
# repository's .golangci.yml) over every module of the Go workspace.
#
# golangci-lint analyses one module at a time, so it runs once per module
# directory listed in go.work. The pinned binary is taken from ./bin, from
# $(go env GOPATH)/bin or PATH when its version matches, and otherwise
# installed into ./bin with `go install` (from the Go module proxy).
set -euo pipefail

version=v2.15.0
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

has_version() { [[ -x $1 ]] && "$1" version 2>/dev/null | grep -q "version ${version#v} "; }

lint=""
for candidate in "$root/bin/golangci-lint" "$(go env GOPATH)/bin/golangci-lint" "$(command -v golangci-lint || true)"; do
	if [[ -n $candidate ]] && has_version "$candidate"; then
		lint=$candidate
		break
	fi
done
if [[ -z $lint ]]; then
	echo "lint: installing golangci-lint $version into bin/"
	GOBIN="$root/bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
	lint="$root/bin/golangci-lint"
fi

status=0
# The shell scripts too, where shellcheck is installed (it is optional:
# apt-get install shellcheck).
if command -v shellcheck >/dev/null; then
	echo "lint: shell scripts"
	shellcheck scripts/*.sh .ci/run || status=1
fi
for dir in $(go list -m -f '{{.Dir}}'); do
	rel=${dir#"$root"/}
	echo "lint: $rel"
	(cd "$dir" && "$lint" run --config "$root/.golangci.yml" ./...) || status=1
done
exit $status
