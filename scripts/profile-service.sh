#!/usr/bin/env bash
# Where a served request's CPU time goes, in the server as it runs (not in a benchmark loop):
# `perf record` samples the pinned server (cpu-clock, which needs no hardware counters, with
# call stacks unwound from DWARF) while wrk drives one route from the other core, or oha at a
# fixed RATE; the samples are split into the engine, the response's write (in which the
# kernel also delivers the bytes to the client over loopback and wakes it), the read, the
# HTTP stack and so on, in microseconds per request, the routes side by side. Sampling slows
# the server; compare routes and builds within one run. Needs perf (Debian `linux-perf`),
# wrk, and for RATE oha. The binary must keep its symbols: built by default as the release
# profile without stripping, into target/symbols.
#
#   scripts/profile-service.sh                      # echo and process, 4 s each
#   RATE=20000 scripts/profile-service.sh           # at a fixed rate (oha) instead of wrk's most
#   BUILD=0 BIN=path/to/unstripped/assay ROUTES="/v1/echo" scripts/profile-service.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-4}
PORT=${PORT:-18183}
FREQ=${FREQ:-3000}
ROUTES=${ROUTES:-/v1/echo /v1/pipelines/trade/process}
BIN=${BIN:-target/symbols/release/assay}
if [ "${BUILD:-1}" = 1 ]; then
  CARGO_PROFILE_RELEASE_STRIP=false cargo build --release -p assay --target-dir target/symbols
fi
for tool in perf wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 2; }
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# One server, one route: writes $out/N.txt (the samples) and $out/N.rps (requests/s).
profile() ( # index route
  # shellcheck source=scripts/trade-server.sh
  . scripts/trade-server.sh
  start_trade_server
  register_trade
  write_requests
  perf record -q -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 -p "$server" \
    -o "$out/$1.data" -- sleep "$((SECS + 1))" 2>/dev/null &
  recorder=$!
  sleep 0.3
  if [ -n "${RATE:-}" ]; then
    fixed_rate "$2" "$((SECS * RATE))" "$RATE"
  else
    saturate "$2" "$SECS"
  fi | awk '/Requests\/sec/ {print $2}' > "$out/$1.rps"
  wait "$recorder" || true
  perf script -i "$out/$1.data" 2>/dev/null > "$out/$1.txt"
)

i=0
for route in $ROUTES; do
  i=$((i + 1))
  profile "$i" "$route"
done

# shellcheck disable=SC2086 # ROUTES is a list of routes
python3 - "$out" "$SECS" "$FREQ" $ROUTES <<'PY'
import collections, re, sys

out, secs, freq, routes = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
# A sample goes to the first category one of its frames matches, in this order.
CATEGORIES = [
    ("engine (parse, validate, transform, encode)", ["engine::"]),
    ("write the response (kernel: TCP, loopback, wake the client)", ["__GI___writev", "__libc_write"]),
    ("read the request (kernel)", ["recvfrom", "__libc_recv", "__libc_read"]),
    ("wait for events (epoll)", ["epoll_wait"]),
    ("other system calls", ["entry_SYSCALL"]),
    ("HTTP/1 parse and encode (hyper)", ["Http1Transaction>::parse", "Http1Transaction>::encode"]),
    ("tracing spans", ["tracing_subscriber::", "tracing_core::"]),
    ("allocator (mimalloc)", ["mi_malloc", "mi_free", "_mi_", "mi_theap", "mi_realloc", "mi_zalloc"]),
    ("clock reads", ["clock_gettime"]),
    ("copies (memcpy, memmove)", ["memcpy", "memmove"]),
    ("kernel, elsewhere", ["[kernel"]),
]
FRAME = re.compile(r"\s*[0-9a-f]+ (.*?)(?:\+0x[0-9a-f]+)? \((.*)\)$")

def split(path):
    counts, total = collections.Counter(), 0
    for block in open(path).read().split("\n\n"):
        frames = []
        for line in block.strip().split("\n")[1:]:
            m = FRAME.match(line)
            if m:
                frames.append(m.group(1) + (" [kernel" if "kernel" in m.group(2) else ""))
        if not frames:
            continue
        total += 1
        label = "server's own code, axum, tower, tokio"
        for name, keys in CATEGORIES:
            if any(k in f for f in frames for k in keys):
                label = name
                break
        counts[label] += 1
    return counts, total

columns = []
for i, route in enumerate(routes, 1):
    rps = float(open(f"{out}/{i}.rps").read().strip() or 0)
    counts, total = split(f"{out}/{i}.txt")
    per = 1e6 / freq / max(rps * secs, 1)  # microseconds of CPU a sample stands for, per request
    columns.append((route, rps, total * per, {k: v * per for k, v in counts.items()}))

labels = [n for n, _ in CATEGORIES] + ["server's own code, axum, tower, tokio"]
print(f"{'microseconds of server CPU per request':62s}" + "".join(f"{r:>30s}" for r, *_ in columns))
print(f"{'requests/s (slowed by sampling)':62s}" + "".join(f"{rps:30,.0f}" for _, rps, *_ in columns))
print(f"{'all':62s}" + "".join(f"{t:30.2f}" for _, _, t, _ in columns))
for label in labels:
    print(f"{label:62s}" + "".join(f"{c.get(label, 0):30.2f}" for *_, c in columns))
PY
