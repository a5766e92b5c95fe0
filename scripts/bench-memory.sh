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

work=$(mktemp -d)
KEY=$("$BIN" keys create --tenant bench --role admin --data-dir "$work/data" 2>/dev/null)
export ASSAY_API_KEY=$KEY
taskset -c 0 "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$work/data" 2>"$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
A="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$A/readyz" >/dev/null && break; sleep 0.1; done

show() { # step -> one line of figures
  awk -v step="$1" '/^(RssAnon|RssFile|VmHWM):/ {v[$1] = $2}
    END {printf "%-16s anon %6d  file %6d  total %6d  peak %6d kB\n", step,
         v["RssAnon:"], v["RssFile:"], v["RssAnon:"] + v["RssFile:"], v["VmHWM:"]}' "/proc/$server/status"
}

echo "binary: $BIN, $(stat -c %s "$BIN") bytes; $(date -u +%FT%TZ)"
sleep 1
show idle
"$BIN" schema put trade-input examples/trade/input.schema.json --server "$A" >/dev/null
"$BIN" schema put trade-output examples/trade/output.schema.json --server "$A" >/dev/null
printf 'input_schema: trade-input\noutput_schema: trade-output\noutput: json\n' > "$work/trade.yaml"
"$BIN" pipeline put trade "$work/trade.yaml" --transform-file examples/trade/transform.jq --server "$A" >/dev/null
curl -sf "$A/v1/pipelines/trade/process" -H 'content-type: application/json' \
  -H "authorization: Bearer $KEY" --data-binary @examples/trade/trade.json >/dev/null
sleep 1
show registered

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. os.getenv("ASSAY_API_KEY")
local f = io.open("examples/trade/trade.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA
load() { # route -> requests/s
  taskset -c 1 wrk -t1 -c32 -d"${SECS}s" -s "$work/post.lua" "$A$1" | awk '/Requests\/sec/ {print $2}'
}
echo "echo: $(load /v1/echo) req/s"
sleep 1
show "after echo"
echo "process: $(load /v1/pipelines/trade/process) req/s"
sleep 1
show "after process"

if command -v h2load >/dev/null; then
  python3 - "$work" <<'PY'
import sys
doc = open("examples/trade/trade.json", "rb").read()
def field(n, b):  # a length-delimited protobuf field
    out, k = bytearray([(n << 3) | 2]), len(b)
    while k >= 0x80:
        out.append((k & 0x7F) | 0x80); k >>= 7
    out.append(k)
    return bytes(out) + b
msg = field(1, b"trade") + field(2, doc)
open(f"{sys.argv[1]}/process.grpc", "wb").write(b"\0" + len(msg).to_bytes(4, "big") + msg)
PY
  rps=$(taskset -c 1 h2load -D "$SECS" -c 4 -m 8 -d "$work/process.grpc" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $KEY" \
    "$A/assay.v1.Engine/Process" | awk '/^finished in/ {print $4}')
  echo "gRPC process: $rps req/s"
  sleep 1
  show "after gRPC"
fi
echo "threads: $(awk '/^Threads:/ {print $2}' /proc/$server/status)"
