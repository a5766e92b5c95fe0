#!/usr/bin/env bash
# Service memory: the resident set of `assay serve` (pinned to core 0, embedded store, API keys
# on) read from /proc/PID/status at each step: idle, with the trade workload registered, after
# 5 s of wrk (`-t1 -c32`, core 1) on `POST /v1/echo`, after 5 s on the trade pipeline, and
# after 5 s of h2load (`-c 4 -m 8`) on gRPC `Process`. Prints RssAnon, RssFile and VmHWM in kB;
# docs/benchmarks.md records them. Needs wrk (Debian `wrk`); h2load (Debian `nghttp2-client`)
# is optional.
#
#   scripts/bench-memory.sh                 # BIN=path/to/assay to measure another build
#   MIMALLOC_PURGE_DELAY=0 scripts/bench-memory.sh   # the environment reaches the server
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/assay}
SECS=${SECS:-5}
PORT=${PORT:-18190}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }

# shellcheck source=scripts/trade-server.sh
. scripts/trade-server.sh
start_trade_server
write_requests

show() { # step -> one line of figures
  awk -v step="$1" '/^(RssAnon|RssFile|VmHWM):/ {v[$1] = $2}
    END {printf "%-16s anon %6d  file %6d  total %6d  peak %6d kB\n", step,
         v["RssAnon:"], v["RssFile:"], v["RssAnon:"] + v["RssFile:"], v["VmHWM:"]}' "/proc/$server/status"
}

echo "binary: $BIN, $(stat -c %s "$BIN") bytes; $(date -u +%FT%TZ)"
sleep 1
show idle
register_trade
sleep 1
show registered

load() { # route -> requests/s
  saturate "$1" "$SECS" | awk '/Requests\/sec/ {print $2}'
}
echo "echo: $(load /v1/echo) req/s"
sleep 1
show "after echo"
echo "process: $(load /v1/pipelines/trade/process) req/s"
sleep 1
show "after process"

if command -v h2load >/dev/null; then
  rps=$(taskset -c 1 h2load -D "$SECS" -c 4 -m 8 -d "$work/process.grpc" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $KEY" \
    "$A/assay.v1.Engine/Process" | awk '/^finished in/ {print $4}')
  echo "gRPC process: $rps req/s"
  sleep 1
  show "after gRPC"
fi
echo "threads: $(awk '/^Threads:/ {print $2}' /proc/$server/status)"
