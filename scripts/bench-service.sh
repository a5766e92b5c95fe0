#!/usr/bin/env bash
# Service benchmark: `POST /v1/pipelines/trade/process` against the bare `POST /v1/echo` of the
# same server with the same payload (trade.json), side by side in one run. The server is
# pinned to core 0 and the load tool to core 1. Needs wrk (Debian `wrk`) and, for the latency
# at a fixed rate, oha (`cargo install oha`); for gRPC, h2load (Debian `nghttp2-client`).
# Prints figures; docs/benchmarks.md records them.
#
#   scripts/bench-service.sh            # RUNS=3 rounds of 10 s per route; HTTP=0 runs gRPC only
#   RUNS=9 SECS=4 LAT_RUNS=7 scripts/bench-service.sh   # more, shorter rounds: medians
#   BUILD=0 BIN=/tmp/assay scripts/bench-service.sh    # another binary, not built here
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SECS=${SECS:-10}
LAT_RUNS=${LAT_RUNS:-5}
LAT_REQUESTS=${LAT_REQUESTS:-60000}
PORT=${PORT:-18180}
BIN=${BIN:-target/release/assay}   # BIN=path/to/assay (with BUILD=0) measures another build
[ "${BUILD:-1}" = 1 ] && cargo build --release -p assay
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }

# shellcheck source=scripts/trade-server.sh
. scripts/trade-server.sh
start_trade_server
register_trade
write_requests

rate() { # route -> requests/s
  saturate "$1" "$SECS" | awk '/Requests\/sec/ {print $2}'
}

# The server's core is shared with whatever else the machine runs. `core0` prints the core's
# ticks so far (all, and busy), `server_ticks` the server's own; `others` turns two readings
# into the share of the core that neither the server nor idleness took: other processes,
# interrupts the server was not charged for, and time the hypervisor says it stole. It does
# not see a core made slower by other guests on the same host.
core0() { awk '/^cpu0 / {print $2+$3+$4+$5+$6+$7+$8+$9, $2+$3+$4+$7+$8+$9}' /proc/stat; }
server_ticks() { awk '{print $14+$15}' "/proc/$server/stat"; }
others() { # all0 busy0 server0 all1 busy1 server1 -> percent
  python3 -c "print(f'{100 * (($5 - $2) - ($6 - $3)) / max($4 - $1, 1):.0f}%')"
}

echo "date: $(date -u +%FT%TZ)  cpu: $(nproc) x $(lscpu | sed -n 's/^Model name: *//p')"
echo "binary: $(stat -c %s "$BIN") bytes ($BIN, release profile strips symbols)"
# The guest's halt polling changes what waking the load tool costs (docs/benchmarks.md, "The
# load tool's own pauses, and medians"): say which setting the figures are from.
poll=/sys/module/haltpoll/parameters/guest_halt_poll_ns
[ -r "$poll" ] && echo "guest halt polling: $(cat "$poll") ns"
median() { python3 -c 'import statistics, sys; print(round(statistics.median(map(float, sys.argv[1:])), 2))' "$@"; }

if [ "${HTTP:-1}" = 1 ]; then
echo "round  echo_rps  process_rps  ratio  others_on_core0"
ratios=() processes=()
for i in $(seq "$RUNS"); do
  read -r all0 busy0 < <(core0); s0=$(server_ticks)
  e=$(rate /v1/echo)
  p=$(rate /v1/pipelines/trade/process)
  read -r all1 busy1 < <(core0); s1=$(server_ticks)
  ratio=$(python3 -c "print(f'{$p/$e:.2f}')")
  echo "$i  $e  $p  $ratio  $(others "$all0" "$busy0" "$s0" "$all1" "$busy1" "$s1")"
  ratios+=("$ratio") processes+=("$p")
done
echo "median of $RUNS rounds: ratio $(median "${ratios[@]}"), process $(median "${processes[@]}") req/s"
echo "server peak RSS under load: $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)"

if command -v oha >/dev/null; then
  half=$(python3 -c "print(int($(median "${processes[@]}") / 2))")
  # LAT_RUNS runs of LAT_REQUESTS requests per route, the routes alternately, at half the
  # median process rate; echo at the same rate is the reference: what of the tail the
  # server's HTTP stack, the load tool and the machine make without any processing. Runs stay
  # under 65,536 requests, where oha pauses to grow its store of results (trade-server.sh).
  echo "latency at a fixed $half req/s (half the median process rate), $LAT_RUNS runs of $LAT_REQUESTS requests per route, ms:"
  echo "run  route  p50  p99  p99.9  success"
  declare -A p99s=()
  at() { awk -v q="$1" '$1 == q {print $3}' <<<"$report"; } # percentile -> ms, of $report
  for i in $(seq "$LAT_RUNS"); do
    for route in /v1/pipelines/trade/process /v1/echo; do
      report=$(fixed_rate "$route" "$LAT_REQUESTS" "$half")
      p99=$(at 99.00%)
      echo "$i  $route  $(at 50.00%)  $p99  $(at 99.90%)  $(awk '/Success rate/ {print $3}' <<<"$report")"
      p99s[$route]+=" $p99"
    done
  done
  for route in /v1/pipelines/trade/process /v1/echo; do
    # shellcheck disable=SC2086 # a list of numbers
    echo "median p99 of $route: $(median ${p99s[$route]}) ms"
  done
fi
fi # HTTP

# gRPC: unary `assay.v1.Engine/Process` against the bare `Echo` RPC, same document, driven by
# h2load (Debian `nghttp2-client`) over h2c with gRPC-framed request bodies.
if command -v h2load >/dev/null; then
  grpc_rate() { # method body -> requests/s
    taskset -c 1 h2load -D "$SECS" -c 4 -m 8 -d "$work/$2" \
      -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $KEY" \
      "$A/assay.v1.Engine/$1" \
      | awk '/^finished in/ {print $4}'
  }
  echo "gRPC round  echo_rps  process_rps  ratio"
  grpc_ratios=()
  for i in $(seq "$RUNS"); do
    e=$(grpc_rate Echo echo.grpc)
    p=$(grpc_rate Process process.grpc)
    ratio=$(python3 -c "print(f'{$p/$e:.2f}')")
    echo "$i  $e  $p  $ratio"
    grpc_ratios+=("$ratio")
  done
  echo "gRPC median ratio of $RUNS rounds: $(median "${grpc_ratios[@]}")"
  # h2load counts HTTP 200s; gRPC failures are 200s too, so the status codes come from metrics.
  curl -sf "$A/metrics" | grep -E '^assay_grpc_requests_total\{method="/assay.v1.Engine/(Echo|Process)"'
  echo "server peak RSS after gRPC load: $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)"
fi
