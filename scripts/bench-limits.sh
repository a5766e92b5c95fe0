#!/usr/bin/env bash
# What authentication and rate limiting cost the service: `POST /v1/pipelines/trade/process`
# with trade.json under four setups of the same binary, side by side in each round:
#   open   --auth none, no limits (the reference)
#   keys   an API key on every request, no limits
#   local  the key, and a per-tenant limit decided in process (a quota no run exhausts)
#   redis  the key, and the same limit shared through Redis (one script per request)
# The server is pinned to core 0 and wrk to core 1. Needs wrk and a Redis at $REDIS_URL
# (default redis://127.0.0.1:6379). Prints requests/s and the ratio to `open`.
#
#   scripts/bench-limits.sh            # RUNS=3 rounds of 10 s per setup
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SECS=${SECS:-10}
PORT=${PORT:-18181}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
BIN=target/release/assay
[ "${BUILD:-1}" = 1 ] && cargo build --release -p assay
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }

work=$(mktemp -d)
server=
stop() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; server=; }
trap 'stop; rm -rf "$work"' EXIT
A="http://127.0.0.1:$PORT"
ASSAY_API_KEY=$("$BIN" keys create --tenant bench --role admin --data-dir "$work/data" 2>/dev/null)
export ASSAY_API_KEY
printf 'input_schema: trade-input\noutput_schema: trade-output\noutput: json\n' > "$work/trade.yaml"
# A quota far above what one core can serve: every request is checked, none refused.
limits=(--rate-limit-per-second 1000000 --rate-limit-burst 1000000)

start() { # setup
  local args=(--listen "127.0.0.1:$PORT" --data-dir "$work/data")
  case $1 in
    open) args+=(--auth none) ;;
    keys) ;;
    local) args+=("${limits[@]}" --rate-limit-backend local) ;;
    redis) args+=("${limits[@]}" --rate-limit-backend redis --rate-limit-redis-url "$REDIS_URL"
                  --redis-prefix "assay-bench-$$") ;;
  esac
  taskset -c 0 "$BIN" serve "${args[@]}" 2>>"$work/server.log" &
  server=$!
  for _ in $(seq 100); do curl -sf "$A/readyz" >/dev/null && break; sleep 0.1; done
}

# Register the workload for tenant "bench" (the key's) and for "default" (open mode's); the
# store persists between setups.
register() {
  "$BIN" schema put trade-input examples/trade/input.schema.json --server "$A" >/dev/null
  "$BIN" schema put trade-output examples/trade/output.schema.json --server "$A" >/dev/null
  "$BIN" pipeline put trade "$work/trade.yaml" --transform-file examples/trade/transform.jq --server "$A" >/dev/null
}
start keys; register; stop
start open; register; stop

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key ~= "" then wrk.headers["authorization"] = "Bearer " .. key end
local f = io.open("examples/trade/trade.json", "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout
  if bad > 0 then io.stderr:write("errors: " .. bad .. "\n") end
end
LUA

rate() { # setup -> requests/s
  local key=$ASSAY_API_KEY
  [ "$1" = open ] && key=
  start "$1"
  BENCH_KEY=$key taskset -c 1 wrk -t1 -c32 -d"${SECS}s" -s "$work/post.lua" "$A/v1/pipelines/trade/process" \
    | awk '/Requests\/sec/ {print $2}'
  stop
}

echo "date: $(date -u +%FT%TZ)  cpu: $(nproc) x $(lscpu | sed -n 's/^Model name: *//p')"
echo "round  open  keys  local  redis  (requests/s; ratios to open)"
for i in $(seq "$RUNS"); do
  o=$(rate open); k=$(rate keys); l=$(rate local); r=$(rate redis)
  echo "$i  $o  $k  $l  $r  $(python3 -c "print(f'{$k/$o:.2f} {$l/$o:.2f} {$r/$o:.2f}')")"
done
