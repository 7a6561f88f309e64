#!/usr/bin/env bash
# Measures flowrun and writes BENCHMARKS.md. Run from the repository root
# after `cargo build --release` (or through `make bench`).
#
# Engine overhead: 1,000-step no-op pipelines (wide: independent steps;
# chain: each step depends on the previous), cold (empty store) and fully
# cached, with the flowrun-testkit binary.
set -euo pipefail
cd "$(dirname "$0")/.."

testkit=./target/release/flowrun-testkit
repeats=${BENCH_REPEATS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints the median wall time in seconds of running "$@" $repeats times.
# $prepare runs before each timing and is not timed.
median_seconds() {
  local prepare=$1; shift
  local times=()
  for _ in $(seq "$repeats"); do
    eval "$prepare"
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    times+=("$(( (end - start) / 1000000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]/1000}'
}

write_pipeline() {
  local shape=$1 file=$2
  {
    echo "name: bench_$shape"
    echo "steps:"
    for i in $(seq 0 999); do
      echo "  s$i:"
      echo "    uses: noop"
      echo "    params: {n: $i}"
      if [ "$shape" = chain ] && [ "$i" -gt 0 ]; then
        echo "    inputs: {in: s$((i - 1)).out}"
      fi
    done
  } >"$file"
}

engine_rows=""
for shape in wide chain; do
  file="$work/$shape.yaml"
  write_pipeline "$shape" "$file"
  store="$work/store-$shape"
  cold=$(median_seconds "rm -rf '$store'" "$testkit" --store "$store" run "$file")
  "$testkit" --store "$store" run "$file" >/dev/null 2>&1
  cached=$(median_seconds ":" "$testkit" --store "$store" run "$file")
  engine_rows+="| 1,000 no-op steps, $shape | $cold s | $cached s |"$'\n'
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
memory=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1024/1024}' /proc/meminfo)
cat >BENCHMARKS.md <<MD
# Benchmarks

Measured by \`make bench\` (\`scripts/bench.sh\`) on $(date -u +%Y-%m-%d).
Machine: $(nproc) cores ($cpu), $memory RAM, $(uname -sr).
Each figure is the median wall time of $repeats runs of the release build.

## Engine overhead

Command: \`flowrun-testkit --store STORE run PIPELINE\` on generated
pipelines of 1,000 \`noop\` steps. Cold means an empty store; cached means
every step is taken from the cache. Target: a cached run of 1,000 steps in
under one second.

| pipeline | cold | fully cached |
|---|---|---|
$engine_rows
MD
echo "wrote BENCHMARKS.md"
cat BENCHMARKS.md
