#!/usr/bin/env bash
# lint.sh: run golangci-lint v2 (the version pinned below, with the
# repository's .golangci.yml) over every module of the Go workspace, the
# shell scripts through shellcheck, and Redocly CLI over the reader's
# OpenAPI document.
#
#   scripts/lint.sh                  every step
#   scripts/lint.sh openapi go       only the steps named (go, shell, openapi)
#
# golangci-lint analyses one module at a time, so it runs once per module
# directory listed in go.work. The pinned binary is taken from ./bin, from
# $(go env GOPATH)/bin or PATH when its version matches, and otherwise
# installed into ./bin with `go install` (from the Go module proxy).
#
# Redocly CLI (@redocly/cli, the recommended rule set) is pinned by
# tools/openapi-lint/package.json and its lockfile and installed there with
# `npm ci` when missing or at another version; it needs Node.js 20.19+ and
# npm. Any problem it reports, warnings included, fails the step; the
# deliberate exceptions are listed, with reasons, in
# tools/openapi-lint/.redocly.lint-ignore.yaml.
set -euo pipefail

version=v2.15.0
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

steps=("$@")
if ((${#steps[@]} == 0)); then
	steps=(shell openapi go)
fi
for step in "${steps[@]}"; do
	case "$step" in
	go | shell | openapi) ;;
	*)
		echo "lint: unknown step $step (want go, shell, openapi)" >&2
		exit 2
		;;
	esac
done
# wants STEP: STEP was asked for.
wants() { [[ " ${steps[*]} " == *" $1 "* ]]; }

status=0

has_version() { [[ -x $1 ]] && "$1" version 2>/dev/null | grep -q "version ${version#v} "; }

lint_openapi() {
	local dir=tools/openapi-lint redocly want have out
	redocly=$dir/node_modules/.bin/redocly
	if ! command -v npm >/dev/null; then
		echo "lint: npm is missing (apt-get install nodejs npm, or Node.js 20.19+ from nodejs.org)" >&2
		return 1
	fi
	want=$(node -p "require('./$dir/package.json').devDependencies['@redocly/cli']")
	have=$(node -p "try { require('./$dir/node_modules/@redocly/cli/package.json').version } catch { '' }")
	if [[ ! -x $redocly || $have != "$want" ]]; then
		echo "lint: installing @redocly/cli $want into $dir/node_modules"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
	fi
	# No usage telemetry, no update check against the registry.
	out=$(REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_NOTIFICATIONS=true NO_COLOR=1 \
		"$redocly" lint --config "$dir/redocly.yaml" --format=stylish 2>&1) || {
		echo "$out"
		return 1
	}
	echo "$out"
	# Redocly exits 0 on warnings; the document is to lint clean.
	if grep -Eq '^ +[0-9]+:[0-9]+ +warning ' <<<"$out"; then
		echo "lint: openapi: warnings above" >&2
		return 1
	fi
}

if wants openapi; then
	echo "lint: reader/httpapi/openapi.yaml (Redocly CLI)"
	lint_openapi || status=1
fi

# Shell scripts, where shellcheck is installed (it is optional:
# apt-get install shellcheck).
if wants shell && command -v shellcheck >/dev/null; then
	echo "lint: shell scripts"
	shellcheck scripts/*.sh .ci/run || status=1
fi

if wants go; then
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
	for dir in $(go list -m -f '{{.Dir}}'); do
		rel=${dir#"$root"/}
		echo "lint: $rel"
		(cd "$dir" && "$lint" run --config "$root/.golangci.yml" ./...) || status=1
	done
fi
exit $status
