#!/usr/bin/env bash
# The one test command (README "Run the tests"). It installs what the tests
# need, then runs vet, the race-enabled test suite and short fuzz runs.
# CI (.ci/run) calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" when -fuzztime expires while
# a worker is mid-run (golang/go#75804, fixed in Go 1.27).
FUZZTIME=${FUZZTIME:-50000x}

echo "== installing test peers"
# node-smpp: the independent SMPP implementation our interop tests run against.
if [ -f smpp/testdata/node/package-lock.json ]; then
  (cd smpp/testdata/node && npm ci --no-audit --no-fund --loglevel=error)
fi
# The other independent peers: Kannel (bearerbox/smsbox, gateway/kannel_interop_test.go),
# Net::SMPP (smpp/interop_perl_test.go), tshark/text2pcap (smpp/wireshark_test.go) and
# promtool from the prometheus package (configs/scrape_test.go checks the alert rules).
have_peers() {
  { [ -x /usr/sbin/bearerbox ] || command -v bearerbox >/dev/null; } &&
    { [ -x /usr/sbin/smsbox ] || command -v smsbox >/dev/null; } &&
    perl -MNet::SMPP -e 1 2>/dev/null &&
    command -v tshark >/dev/null && command -v text2pcap >/dev/null &&
    command -v promtool >/dev/null
}
if ! have_peers; then
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kannel libnet-smpp-perl tshark prometheus
fi
# Every interop test fails, rather than skips, when its peer is missing.
export OPTGATE_INTEROP=required

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
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 200x "$pkg" >/tmp/optgate-fuzz.log 2>&1 || { cat /tmp/optgate-fuzz.log; exit 1; }
  done
done
echo "== all tests passed"
