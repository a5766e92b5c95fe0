# shellcheck shell=bash
# Sourced by the service benchmarks (bench-service.sh, bench-memory.sh, bench-instructions.sh,
# profile-service.sh)
# and by build-pgo.sh's training:
# one `assay serve` on a fresh embedded store with an admin key, pinned to core 0, and the
# trade workload's requests for the load tools on core 1. Expects BIN and PORT (and takes
# WRAP, a command to run the server under, and READY_TRIES, tenths of a second to wait for
# it); sets work, KEY (exported as ASSAY_API_KEY, which the --server commands and post.lua
# read), server and A, and removes the server and $work on exit.

start_trade_server() {
  work=$(mktemp -d)
  # Every request carries an API key, as in production (bench-limits.sh compares modes).
  KEY=$("$BIN" keys create --tenant bench --role admin --data-dir "$work/data" 2>/dev/null)
  export ASSAY_API_KEY=$KEY
  # shellcheck disable=SC2086 # WRAP is a command and its arguments
  taskset -c 0 ${WRAP:-} "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$work/data" 2>"$work/server.log" &
  server=$!
  # SIGTERM, so the server drains and exits as in production (an instrumented build writes its
  # profile then). `|| true`: under `set -e` a server already gone would fail the trap.
  trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
  A="http://127.0.0.1:$PORT"
  for _ in $(seq "${READY_TRIES:-100}"); do curl -sf "$A/readyz" >/dev/null && break; sleep 0.1; done
}

# Registers the schemas and the `trade` pipeline, and processes one document.
register_trade() {
  "$BIN" schema put trade-input examples/trade/input.schema.json --server "$A" >/dev/null
  "$BIN" schema put trade-output examples/trade/output.schema.json --server "$A" >/dev/null
  printf 'input_schema: trade-input\noutput_schema: trade-output\noutput: json\n' > "$work/trade.yaml"
  "$BIN" pipeline put trade "$work/trade.yaml" --transform-file examples/trade/transform.jq --server "$A" >/dev/null
  curl -sf "$A/v1/pipelines/trade/process" -H 'content-type: application/json' \
    -H "authorization: Bearer $KEY" --data-binary @examples/trade/trade.json >/dev/null
}

# $work/post.lua (wrk: POST trade.json with the key), and the gRPC-framed request bodies
# $work/process.grpc (`Process`, pipeline `trade`) and $work/echo.grpc (`Echo`) for h2load, of
# trade.json or of the file DOC names.
write_requests() {
  cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. os.getenv("ASSAY_API_KEY")
local f = io.open("examples/trade/trade.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA
  python3 - "$work" "${DOC:-examples/trade/trade.json}" <<'PY'
import sys
work, document = sys.argv[1], sys.argv[2]
doc = open(document, "rb").read()
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
}

# The load tools on core 1, POSTing trade.json with the key to route $1: wrk at its most (32
# connections) for $2 seconds, and oha sending $2 requests at a fixed rate of $3 a second
# (`--latency-correction`: a request's latency counts from when oha's timer released it, not
# from when its connection was free). Both print their full reports.
#
# oha's timer has tokio's millisecond resolution, so it releases requests in bursts (about 50
# every 1.6 ms at 25,000/s): the server drains a burst at a time, which is most of the median
# latency at half load. And oha keeps every result in one vector that doubles as it fills: at
# 65,536 results (about 9 MB) and 131,072 it stops for milliseconds to copy, and the requests
# due meanwhile carry the stall as latency (docs/benchmarks.md, "The load tool's own pauses").
# Tail latencies are therefore taken from runs of fewer requests than that (bench-service.sh's
# LAT_REQUESTS), several of them.
saturate() { # route seconds
  taskset -c 1 wrk -t1 -c32 -d"$2s" -s "$work/post.lua" "$A$1"
}
fixed_rate() { # route requests rate
  taskset -c 1 oha --no-tui -u ms -n "$2" -q "$3" --latency-correction -c 32 -m POST \
    -H 'content-type: application/json' -H "authorization: Bearer $KEY" \
    -D examples/trade/trade.json "$A$1"
}
