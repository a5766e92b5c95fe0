#!/usr/bin/env bash
# Instructions per request, counted by callgrind: the user-space instructions the server
# executes for one `POST /v1/echo`, one `POST /v1/schemas/trade-input/validate` and one
# `POST /v1/pipelines/trade/process` of trade.json. Unlike requests per second, the count does not move with the machine's load or
# speed, so it compares builds on a shared, noisy machine (it leaves out the kernel, cache
# misses and waiting). Needs valgrind (Debian `valgrind`) and wrk.
#
# Each route is measured in two server runs that differ only in how long wrk sends requests
# (SHORT and LONG seconds); the difference of their totals over the difference of their
# request counts leaves out start-up, registration and shutdown.
#
#   scripts/bench-instructions.sh                    # target/release/assay, built first
#   BUILD=0 BIN=/tmp/assay scripts/bench-instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SHORT=${SHORT:-3}
LONG=${LONG:-12}
PORT=${PORT:-18181}
BIN=${BIN:-target/release/assay}
[ "${BUILD:-1}" = 1 ] && cargo build --release -p assay
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }

# One server under callgrind, wrk on one route for $2 seconds: prints "requests instructions".
measure() ( # route seconds
  # shellcheck source=scripts/trade-server.sh
  . scripts/trade-server.sh
  out=$(mktemp)
  WRAP="valgrind --tool=callgrind --callgrind-out-file=$out" READY_TRIES=600 start_trade_server
  register_trade
  write_requests
  n=$(taskset -c 1 wrk -t1 -c8 -d"$2s" -s "$work/post.lua" "$A$1" | awk '/requests in/ {print $1}')
  # callgrind writes its totals when the server exits.
  kill "$server"
  wait "$server" 2>/dev/null || true
  echo "$n $(awk '/^totals:/ {print $2}' "$out")"
  rm -f "$out"
)

echo "date: $(date -u +%FT%TZ)  cpu: $(nproc) x $(lscpu | sed -n 's/^Model name: *//p')"
echo "binary: $BIN ($(stat -c %s "$BIN") bytes)"
echo "route  requests(short, long)  instructions per request"
for route in ${ROUTES:-/v1/echo /v1/schemas/trade-input/validate /v1/pipelines/trade/process}; do
  read -r n1 i1 < <(measure "$route" "$SHORT")
  read -r n2 i2 < <(measure "$route" "$LONG")
  echo "$route  $n1, $n2  $(( (i2 - i1) / (n2 - n1) ))"
done
