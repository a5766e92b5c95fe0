#!/usr/bin/env bash
# Service benchmark: `POST /v1/pipelines/trade/process` against the bare `POST /v1/echo` of the
# same server with the same payload (trade.json), side by side in one run. The server is
# pinned to core 0 and the load tool to core 1. Needs wrk (Debian `wrk`) and, for the latency
# at a fixed rate, oha (`cargo install oha`); for gRPC, h2load (Debian `nghttp2-client`).
# Prints figures; docs/benchmarks.md records them.
#
#   scripts/bench-service.sh            # RUNS=3 rounds of 10 s per route; HTTP=0 runs gRPC only
#   BUILD=0 BIN=/tmp/assay scripts/bench-service.sh    # another binary, not built here
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SECS=${SECS:-10}
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
if [ "${HTTP:-1}" = 1 ]; then
echo "round  echo_rps  process_rps  ratio  others_on_core0"
for i in $(seq "$RUNS"); do
  read -r all0 busy0 < <(core0); s0=$(server_ticks)
  e=$(rate /v1/echo)
  p=$(rate /v1/pipelines/trade/process)
  read -r all1 busy1 < <(core0); s1=$(server_ticks)
  echo "$i  $e  $p  $(python3 -c "print(f'{$p/$e:.2f}')")  $(others "$all0" "$busy0" "$s0" "$all1" "$busy1" "$s1")"
  last_process=$p
done
echo "server peak RSS under load: $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)"

if command -v oha >/dev/null; then
  half=$(python3 -c "print(int($last_process / 2))")
  # Echo at the same rate is the reference: what of the tail the server's HTTP stack, the
  # load tool and the machine make without any processing.
  for route in /v1/pipelines/trade/process /v1/echo; do
    echo "latency of $route at a fixed $half req/s (half the last measured process rate), ${SECS}s:"
    fixed_rate "$route" "$SECS" "$half" \
      | grep -E 'Success rate|Requests/sec|50.00%|99.00%|99.90%'
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
  for i in $(seq "$RUNS"); do
    e=$(grpc_rate Echo echo.grpc)
    p=$(grpc_rate Process process.grpc)
    echo "$i  $e  $p  $(python3 -c "print(f'{$p/$e:.2f}')")"
  done
  # h2load counts HTTP 200s; gRPC failures are 200s too, so the status codes come from metrics.
  curl -sf "$A/metrics" | grep -E '^assay_grpc_requests_total\{method="/assay.v1.Engine/(Echo|Process)"'
  echo "server peak RSS after gRPC load: $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)"
fi
