#!/usr/bin/env bash
# Profile-guided release build of `assay`: the build to ship when speed matters. It builds an
# instrumented server, trains it on the trade workload (scripts/trade-corpus.py: varied trades,
# one in eight invalid, none of them examples/trade/trade.json) through HTTP process (JSON,
# MessagePack, canonical JSON; and CBOR through a composed schema and a transform run by jaq)
# and validate, an NDJSON batch, gRPC and the echo routes, merges the profile with
# llvm-profdata and builds again with it: LLVM then lays out and inlines the code by what the
# service really runs. Measured in docs/benchmarks.md ("Profile-guided build").
#
# Both builds are optimised for size (`opt-level = "s"`) with the standard library rebuilt the
# same way (`-Z build-std`, its `optimize_for_size` feature, no backtrace symbolizer): the
# profile still inlines and lays out the paths the training ran as hot code, and everything
# else stays small. On the reference machine that is a stripped binary under 12 MB with the
# trade's throughput of the opt-level 3 profile-guided build ("A binary under 12 MB").
# `-Z build-std` is an unstable Cargo feature: the script turns it on for these builds only,
# on the stable toolchain, with RUSTC_BOOTSTRAP=1 (as the Linux kernel does for its Rust code),
# and needs the standard library's source (`rustup component add rust-src`). SMALL=0 builds
# at opt-level 3 with the prebuilt standard library instead (about 15 MB).
#
# Needs wrk, curl, python3 and an llvm-profdata of the LLVM that rustc uses (`rustc -vV`):
# Debian's `llvm-NN` package, rustup's `llvm-tools` component, or LLVM_PROFDATA=path; h2load
# (Debian `nghttp2-client`) for the gRPC part of the training, which is left out without it.
#
#   scripts/build-pgo.sh          # -> target/pgo/use/<host>/release/assay
#   OUT=/tmp/pgo SECS=3 scripts/build-pgo.sh
#   SMALL=0 scripts/build-pgo.sh  # opt-level 3, prebuilt standard library
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-target/pgo}
SECS=${SECS:-5}
PORT=${PORT:-18197}
host=$(rustc -vV | sed -n 's/^host: //p')
llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')

profdata=${LLVM_PROFDATA:-}
if [ -z "$profdata" ]; then
  for candidate in "llvm-profdata-$llvm" "$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"; do
    if command -v "$candidate" >/dev/null; then profdata=$candidate; break; fi
  done
fi
[ -n "$profdata" ] || {
  echo "llvm-profdata of LLVM $llvm is missing: apt-get install llvm-$llvm, or set LLVM_PROFDATA" >&2
  exit 2
}
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 2; }
done

build_std=()
if [ "${SMALL:-1}" = 1 ]; then
  [ -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library" ] || {
    echo "the standard library's source is missing: rustup component add rust-src (or SMALL=0)" >&2
    exit 2
  }
  export RUSTC_BOOTSTRAP=1 CARGO_PROFILE_RELEASE_OPT_LEVEL=s
  build_std=(-Z "build-std=std,panic_unwind" -Z build-std-features=optimize_for_size)
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
profiles="$OUT/profiles"
# RUSTFLAGS replaces .cargo/config.toml's build.rustflags, so its flag is repeated here. With
# --target the flags reach the binary's code only, not build scripts and procedural macros.
base_flags="--cfg tokio_unstable"

RUSTFLAGS="$base_flags -Cprofile-generate=$profiles" \
  cargo build --release -p assay --locked "${build_std[@]}" --target "$host" --target-dir "$OUT/generate"
rm -rf "$profiles"

# The training: one instrumented server (it writes its profile as it exits after SIGTERM), and
# the command-line client that registers the workload.
(
  BIN="$OUT/generate/$host/release/assay"
  # shellcheck source=scripts/trade-server.sh
  . scripts/trade-server.sh
  start_trade_server
  register_trade
  write_requests
  python3 scripts/trade-corpus.py 2000 > "$work/corpus.ndjson"
  cat > "$work/corpus.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. os.getenv("ASSAY_API_KEY")
local bodies = {}
for line in io.lines("$work/corpus.ndjson") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
LUA
  for route in /v1/pipelines/trade/process /v1/schemas/trade-input/validate; do
    wrk -t1 -c16 -d"${SECS}s" -s "$work/corpus.lua" "$A$route" | grep 'Requests/sec'
  done
  wrk -t1 -c16 -d"$((SECS / 2 + 1))s" -s "$work/post.lua" "$A/v1/echo" | grep 'Requests/sec'
  # Beyond the trade pipeline's own paths, so that they are not laid out as code that never
  # runs: the other encodings, a schema composed with $ref, allOf, anyOf and oneOf, and a
  # program the direct evaluator leaves to jaq (`reduce`).
  "$BIN" schema put trade-input-modular examples/trade/input-modular.schema.json --server "$A" >/dev/null
  sed 's|\[\.fees\[\]?\.amount\] \| add // 0|reduce .fees[]?.amount as $a (0; . + $a)|' \
    examples/trade/transform.jq > "$work/reduce.jq"
  grep -q reduce "$work/reduce.jq"
  printf 'input_schema: trade-input-modular\noutput_schema: trade-output\noutput: cbor\n' > "$work/jaq.yaml"
  "$BIN" pipeline put trade-jaq "$work/jaq.yaml" --transform-file "$work/reduce.jq" --server "$A" >/dev/null
  for route in "/v1/pipelines/trade/process?encoding=msgpack" "/v1/pipelines/trade/process?encoding=jcs" \
    /v1/pipelines/trade-jaq/process; do
    wrk -t1 -c16 -d"$((SECS / 2 + 1))s" -s "$work/corpus.lua" "$A$route" | grep 'Requests/sec'
  done
  curl -sf "$A/v1/pipelines/trade/process" -H 'content-type: application/x-ndjson' \
    -H "authorization: Bearer $KEY" --data-binary @"$work/corpus.ndjson" | wc -l
  if command -v h2load >/dev/null; then
    # The first corpus trade the pipeline accepts, rather than trade.json.
    while IFS= read -r line; do
      code=$(curl -s -o /dev/null -w '%{http_code}' "$A/v1/pipelines/trade/process" \
        -H 'content-type: application/json' -H "authorization: Bearer $KEY" --data-binary "$line")
      [ "$code" = 200 ] && { printf '%s' "$line" > "$work/accepted.json"; break; }
    done < "$work/corpus.ndjson"
    DOC="$work/accepted.json" write_requests
    for method in Process Echo; do
      body=$([ "$method" = Echo ] && echo echo.grpc || echo process.grpc)
      h2load -D "$SECS" -c 4 -m 8 -d "$work/$body" -H 'content-type: application/grpc' \
        -H 'te: trailers' -H "authorization: Bearer $KEY" "$A/assay.v1.Engine/$method" \
        | grep '^finished'
    done
  fi
  curl -sf "$A/metrics" >/dev/null
  # Leaving the subshell stops the server with SIGTERM (trade-server.sh's trap): it drains,
  # exits and writes its profile.
)
ls "$profiles"/*.profraw >/dev/null || { echo "the training wrote no profile" >&2; exit 1; }

"$profdata" merge -o "$OUT/assay.profdata" "$profiles"
RUSTFLAGS="$base_flags -Cprofile-use=$OUT/assay.profdata" \
  cargo build --release -p assay --locked "${build_std[@]}" --target "$host" --target-dir "$OUT/use"
echo "built $OUT/use/$host/release/assay ($(stat -c %s "$OUT/use/$host/release/assay") bytes)"
