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

work=$(mktemp -d)
# Every request carries an API key, as in production (scripts/bench-limits.sh compares modes).
KEY=$("$BIN" keys create --tenant bench --role admin --data-dir "$work/data" 2>/dev/null)
export ASSAY_API_KEY=$KEY
taskset -c 0 "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$work/data" 2>"$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
A="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$A/readyz" >/dev/null && break; sleep 0.1; done

"$BIN" schema put trade-input examples/trade/input.schema.json --server "$A" >/dev/null
"$BIN" schema put trade-output examples/trade/output.schema.json --server "$A" >/dev/null
printf 'input_schema: trade-input\noutput_schema: trade-output\noutput: json\n' > "$work/trade.yaml"
"$BIN" pipeline put trade "$work/trade.yaml" --transform-file examples/trade/transform.jq --server "$A" >/dev/null
curl -sf "$A/v1/pipelines/trade/process" -H 'content-type: application/json' \
  -H "authorization: Bearer $KEY" --data-binary @examples/trade/trade.json >/dev/null

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. os.getenv("ASSAY_API_KEY")
local f = io.open("examples/trade/trade.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA

rate() { # route -> requests/s
  taskset -c 1 wrk -t1 -c32 -d"${SECS}s" -s "$work/post.lua" "$A$1" | awk '/Requests\/sec/ {print $2}'
}

echo "date: $(date -u +%FT%TZ)  cpu: $(nproc) x $(lscpu | sed -n 's/^Model name: *//p')"
echo "binary: $(stat -c %s "$BIN") bytes ($BIN, release profile strips symbols)"
if [ "${HTTP:-1}" = 1 ]; then
echo "round  echo_rps  process_rps  ratio"
for i in $(seq "$RUNS"); do
  e=$(rate /v1/echo)
  p=$(rate /v1/pipelines/trade/process)
  echo "$i  $e  $p  $(python3 -c "print(f'{$p/$e:.2f}')")"
  last_process=$p
done
echo "server peak RSS under load: $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)"

if command -v oha >/dev/null; then
  half=$(python3 -c "print(int($last_process / 2))")
  echo "latency at a fixed $half req/s (half the last measured process rate), ${SECS}s:"
  taskset -c 1 oha --no-tui -z "${SECS}s" -q "$half" --latency-correction -c 32 -m POST \
    -H 'content-type: application/json' -H "authorization: Bearer $KEY" \
    -D examples/trade/trade.json "$A/v1/pipelines/trade/process" \
    | grep -E 'Success rate|Requests/sec|50.00%|99.00%|99.90%'
fi
fi # HTTP

# gRPC: unary `assay.v1.Engine/Process` against the bare `Echo` RPC, same document, driven by
# h2load (Debian `nghttp2-client`) over h2c with gRPC-framed request bodies.
if command -v h2load >/dev/null; then
  python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
doc = open("examples/trade/trade.json", "rb").read()
def field(n, b):  # a length-delimited protobuf field
    out, k = bytearray([(n << 3) | 2]), len(b)
    while k >= 0x80:
        out.append((k & 0x7F) | 0x80); k >>= 7
    out.append(k)
    return bytes(out) + b
def frame(msg):  # gRPC message framing: not compressed, 4-byte big-endian length
    return b"\0" + len(msg).to_bytes(4, "big") + msg
open(f"{work}/process.grpc", "wb").write(frame(field(1, b"trade") + field(2, doc)))
open(f"{work}/echo.grpc", "wb").write(frame(field(1, doc)))
PY
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
