#!/usr/bin/env bash
# Runs every fuzz target of the workspace for FUZZTIME (default 30s) each,
# one after another, and copies the inputs each run found interesting (new
# coverage, kept by Go in its fuzz cache) into the package's
# testdata/fuzz/<target>/, where go test runs them as seeds from then on:
# commit them. A target that fails leaves its failing input in testdata too
# (Go writes it there); the script goes on with the others and exits 1.
#
#   scripts/fuzz.sh                     every target
#   scripts/fuzz.sh FuzzDecode ...      only these
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}
go=${GO:-go}
cache="$($go env GOCACHE)/fuzz"

# Every package directory holding a fuzz target, with the targets' names.
mapfile -t modules < <($go list -m -f '{{.Dir}}')
targets=()
for mod in "${modules[@]}"; do
	while IFS= read -r file; do
		dir=$(dirname "$file")
		while IFS= read -r name; do
			targets+=("${dir#"$PWD"/} $name")
		done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*testing\.F).*/\1/p' "$file")
	done < <(grep -rl --include='*_test.go' '^func Fuzz' "$mod" | sort)
done

if [ "$#" -gt 0 ]; then
	wanted=" $* "
	selected=()
	for t in "${targets[@]}"; do
		[[ $wanted == *" ${t#* } "* ]] && selected+=("$t")
	done
	targets=("${selected[@]}")
fi
if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

# entries lists the files of a corpus directory, sorted (none if absent).
entries() {
	[ -d "$1" ] || return 0
	find "$1" -maxdepth 1 -type f -printf '%f\n' | sort
}

failed=()
summary=()
for t in "${targets[@]}"; do
	dir=${t% *}
	name=${t#* }
	pkg=$($go list -f '{{.ImportPath}}' "./$dir")
	found="$cache/$pkg/$name"
	seeds="$dir/testdata/fuzz/$name"
	before=$(mktemp)
	entries "$found" >"$before"
	echo "== $dir $name ($fuzztime)"
	status=ok
	if ! $go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"; then
		status=FAILED
		failed+=("$dir $name")
	fi
	added=0
	while IFS= read -r f; do
		mkdir -p "$seeds"
		cp "$found/$f" "$seeds/$f"
		added=$((added + 1))
	done < <(entries "$found" | comm -13 "$before" -)
	rm -f "$before"
	summary+=("$(printf '%-8s %-28s %-24s %d new inputs in %s' "$status" "$dir" "$name" "$added" "$seeds")")
done

echo
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzz: failing inputs are in testdata/fuzz of: ${failed[*]}" >&2
	exit 1
fi
