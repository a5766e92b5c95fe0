#!/usr/bin/env bash
# Times the assay CLI against jq on the trade workload: 100,000 generated trades (about 10%
# invalid on purpose), NDJSON in and out.
#
# jq only transforms; `assay run` also validates every input and every output, and still has
# to be at least 10x faster. The script also compares `--jobs 1` with the default job count.
# Results go to stdout and, as Markdown tables, to target/bench-cli/; copy them into
# docs/benchmarks.md together with the machine and date that this script prints.
#
# Usage: scripts/bench-cli.sh [COUNT]       (default 100000)
# Environment: ASSAY_SHARED  the shared folder holding workloads/ (default: ../shared)
#              RUNS          timed runs per command (default 5)
#              BUILD=0       time the existing target/release/assay instead of building it
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

count=${1:-100000}
runs=${RUNS:-5}
shared=${ASSAY_SHARED:-$root/../shared}
gen=$shared/workloads/trade/gen.py
pipeline=examples/trade/pipeline.yaml
program=examples/trade/transform.jq
assay=target/release/assay
results=target/bench-cli

die() {
    echo "bench-cli: $*" >&2
    exit 2
}

[ -f "$gen" ] || die "no trade generator at $gen: this script needs the shared workloads folder next to the repository (or ASSAY_SHARED=/path/to/shared)"
[ -f "$program" ] || die "no $program in the repository"
[ -f "$pipeline" ] || die "no $pipeline in the repository"
command -v python3 >/dev/null || die "python3 is needed to generate the trades"

# hyperfine and jq come from the distribution; the package index is refreshed once, and only
# when something has to be installed.
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v jq >/dev/null || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "bench-cli: installing ${missing[*]}" >&2
    $sudo apt-get update
    $sudo apt-get install -y "${missing[@]}"
fi

if [ "${BUILD:-1}" != 0 ]; then
    cargo build --release -p assay
fi
[ -x "$assay" ] || die "no $assay; build it with 'cargo build --release -p assay'"
"$assay" run --help >/dev/null 2>&1 || die "$assay has no working 'run' subcommand yet"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trades=$work/trades.ndjson
python3 "$gen" "$count" --seed 7 >"$trades"

echo "== machine"
echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpus:      $(nproc) x $(lscpu | sed -n 's/^Model name:[[:space:]]*//p')"
echo "memory:    $(free -h | awk '/^Mem:/ {print $2}')"
echo "rustc:     $(rustc --version)"
echo "assay:     $assay built $(date -u -r "$assay" '+%Y-%m-%d %H:%M UTC'); repository HEAD $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "jq:        $(jq --version)"
echo "hyperfine: $(hyperfine --version)"
echo "input:     $count trades, $(wc -c <"$trades") bytes, generated with gen.py --seed 7"

# What each tool produces, so the figures compare runs that did the work. assay exits 1 when
# it rejects documents, which it must do here.
jq_lines=$(jq -c -f "$program" "$trades" | wc -l)
set +e
assay_lines=$("$assay" run --pipeline "$pipeline" "$trades" 2>/dev/null | wc -l)
assay_status=${PIPESTATUS[0]}
set -e
echo "output:    jq wrote $jq_lines records; assay wrote $assay_lines (exit status $assay_status, 1 = some rejected)"
[ "$assay_lines" -gt 0 ] || die "assay produced no output; check '$assay run --pipeline $pipeline'"

mkdir -p "$results"
echo
echo "== jq vs assay run (default jobs)"
# -i: assay exits 1 because ~10% of the trades are rejected on purpose.
hyperfine -i --warmup 1 --runs "$runs" \
    --export-markdown "$results/jq-vs-assay.md" \
    -n "jq $(jq --version)" "jq -c -f $program $trades > /dev/null" \
    -n "assay run" "$assay run --pipeline $pipeline $trades > /dev/null"

echo
echo "== assay run: --jobs 1 vs default"
hyperfine -i --warmup 1 --runs "$runs" \
    --export-markdown "$results/assay-jobs.md" \
    -n "assay run --jobs 1" "$assay run --pipeline $pipeline --jobs 1 $trades > /dev/null" \
    -n "assay run (default jobs)" "$assay run --pipeline $pipeline $trades > /dev/null"

echo
echo "Markdown tables: $results/jq-vs-assay.md, $results/assay-jobs.md"
