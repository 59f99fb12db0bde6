#!/usr/bin/env bash
# The one test command (README "Run the tests"). It installs what the tests
# need, then runs vet, the race-enabled test suite and short fuzz runs.
# CI (.ci/run) calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-5s}

echo "== installing test peers"
# node-smpp: the independent SMPP implementation our interop tests run against.
if [ -f smpp/testdata/node/package-lock.json ]; then
  (cd smpp/testdata/node && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== fuzz (each target ${FUZZTIME})"
# Every fuzz target in the tree, run briefly on top of its committed corpus.
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $target"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/optgate-fuzz.log 2>&1 || { cat /tmp/optgate-fuzz.log; exit 1; }
  done
done
echo "== all tests passed"
