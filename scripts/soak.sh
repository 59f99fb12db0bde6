#!/usr/bin/env bash
# The cluster soak: issue 16's SIGKILL test with more rounds than the test
# command runs (five). Each round sends 1,000 STOPs spread over three real
# `optgate serve` processes (embedded NATS, loopback only), SIGKILLs one
# node halfway and restarts it; every acknowledged STOP must then be
# refused on every node. Bounded: ROUNDS rounds, at most TIMEOUT in all.
#
#   scripts/soak.sh            # 20 rounds (about 4-5 minutes on 2 cores)
#   ROUNDS=50 TIMEOUT=60m scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-20}
TIMEOUT=${TIMEOUT:-30m}
export OPTGATE_SOAK_ROUNDS=$ROUNDS
exec go test -count=1 -timeout "$TIMEOUT" -run '^TestClusterSTOPStreamSurvivesSIGKILL$' ./cmd/optgate/
