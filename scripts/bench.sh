#!/usr/bin/env bash
# Measures flowrun and writes BENCHMARKS.md. Run from the repository root
# after `cargo build --release` (or through `make bench`).
#
# Engine overhead: 1,000-step no-op pipelines (wide: independent steps;
# chain: each step depends on the previous), cold (empty store) and fully
# cached, with the flowrun-testkit binary.
#
# Scoring server: single-row POST /invocations against `flowrun serve` with
# wrk (installed with apt-get when missing), then the same load while the
# production version is swapped 50 times, counting failed requests. It
# needs python3 to build the request body from the model's metadata.
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

# --- Scoring server -------------------------------------------------------

flowrun="$(pwd)/target/release/flowrun"
wrk_threads=${BENCH_WRK_THREADS:-2}
wrk_connections=${BENCH_WRK_CONNECTIONS:-8}
wrk_seconds=${BENCH_WRK_SECONDS:-20}
swaps=50

if ! command -v wrk >/dev/null; then
  echo "installing wrk with apt-get"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

serve_dir="$work/serve"
mkdir -p "$serve_dir/pipelines"
cp pipelines/training.yaml pipelines/deployment.yaml "$serve_dir/pipelines/"
data_dir="$(pwd)/data/olist-sample"
serve_store="$serve_dir/.flowrun"
stop_server() { "$flowrun" --store "$serve_store" serve stop >/dev/null 2>&1 || true; }
trap 'stop_server; rm -rf "$work"' EXIT

# Two versions of the model: a smaller first one (120 boosting rounds),
# which starts the server on a free port, and the default training
# settings, which the second deployment swaps in and the steady-state
# measurement scores with.
(
  cd "$serve_dir"
  "$flowrun" pipelines/deployment.yaml --set data_dir="$data_dir" --set port=0 \
    --set max_mse=100 --set train_model.iterations=120 >/dev/null 2>&1
  "$flowrun" pipelines/deployment.yaml --set data_dir="$data_dir" --set port=0 \
    --set max_mse=100 --set require_improvement=false >/dev/null 2>&1
)
port=$("$flowrun" --store "$serve_store" serve status --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')

# One valid row from the model's own feature list: numeric features get a
# typical value, categorical ones their most frequent level.
lua="$work/row.lua"
python3 - "$port" "$lua" <<'PY'
import json, sys, urllib.request
port, out = sys.argv[1], sys.argv[2]
meta = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata"))
row = {f["name"]: (1.0 if f["type"] == "numeric" else f["levels"][0]) for f in meta["features"]}
body = json.dumps({"dataframe_records": [row]})
with open(out, "w") as lua:
    lua.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    lua.write("wrk.body = [[" + body + "]]\n")
PY

url="http://127.0.0.1:$port/invocations"
wrk_cmd=(wrk "-t$wrk_threads" "-c$wrk_connections" --latency -s "$lua")
wrk_line() { grep -E "$1" "$2" | head -1 | awk "{print \$$3}"; }
errors_of() {
  local non2xx socket
  non2xx=$(grep -E 'Non-2xx' "$1" | awk '{print $NF}')
  socket=$(grep -E 'Socket errors' "$1" | sed -E 's/.*connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+).*/\1+\2+\3+\4/')
  echo "$(( ${non2xx:-0} + ${socket:-0} ))"
}

# A short warm-up, then the steady-state measurement.
"${wrk_cmd[@]}" -d3s "$url" >/dev/null
steady="$work/steady.txt"
"${wrk_cmd[@]}" "-d${wrk_seconds}s" "$url" >"$steady"
rps=$(wrk_line 'Requests/sec' "$steady" 2)
p50=$(wrk_line '^ +50%' "$steady" 2)
p99=$(wrk_line '^ +99%' "$steady" 2)
steady_errors=$(errors_of "$steady")

# The same load while the production version alternates between 1 and 2,
# with the swaps spread over the run: one every (duration - 4 s) / 50.
swapped="$work/swaps.txt"
swap_gap=$(awk -v s="$wrk_seconds" -v n="$swaps" 'BEGIN {printf "%.3f", (s - 4) / n}')
"${wrk_cmd[@]}" "-d${wrk_seconds}s" "$url" >"$swapped" &
wrk_pid=$!
sleep 1
swap_start=$(date +%s%N)
for i in $(seq "$swaps"); do
  "$flowrun" --store "$serve_store" models promote customer_satisfaction \
    $(( i % 2 + 1 )) production --reason "benchmark swap $i" >/dev/null
  sleep "$swap_gap"
done
swap_ms=$(( ($(date +%s%N) - swap_start) / 1000000 ))
wait "$wrk_pid"
if [ "$swap_ms" -ge $(( (wrk_seconds - 1) * 1000 )) ]; then
  echo "warning: the swaps took ${swap_ms} ms, longer than the load; raise BENCH_WRK_SECONDS" >&2
fi
swap_rps=$(wrk_line 'Requests/sec' "$swapped" 2)
swap_p99=$(wrk_line '^ +99%' "$swapped" 2)
swap_requests=$(grep -E 'requests in' "$swapped" | awk '{print $1}')
swap_errors=$(errors_of "$swapped")
served=$("$flowrun" --store "$serve_store" serve status --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
stop_server

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
## Scoring server

Command: \`flowrun serve\` as started by \`pipelines/deployment.yaml\`
(daemon, default settings: one worker per core, info-level log),
serving a model trained on the sample data with the default settings of
\`pipelines/training.yaml\` (gradient boosting). Load:
\`wrk -t$wrk_threads -c$wrk_connections -d${wrk_seconds}s --latency\` with one
\`dataframe_records\` row per POST /invocations, on the same machine, so
wrk and the server share its $(nproc) cores. Targets: at least 25,000
requests per second with a p99 under 5 ms, and no failed request during
the swaps.

| measure | value |
|---|---|
| single-row throughput | $rps requests/s |
| latency p50 / p99 | $p50 / $p99 |
| failed requests (non-2xx and socket errors) | $steady_errors |
| throughput during $swaps swaps | $swap_rps requests/s (p99 $swap_p99) |
| requests / failed requests during the swaps | $swap_requests / $swap_errors |
| time from the first to the last swap | $swap_ms ms; version served at the end: $served |

A swap is \`flowrun models promote customer_satisfaction N production\`,
alternating versions 1 and 2: a registry change, then a reload that
decodes the model and swaps it in while requests keep arriving. The swaps
are spread over the load run, one every $swap_gap s.

For scale, measured apart from this script on the same kind of machine:
MLflow's \`mlflow models serve\` (2 workers) served 121 requests per second
with a p99 of 318 ms for a LightGBM-sized model.
MD
echo "wrote BENCHMARKS.md"
./scripts/bench-training.sh
cat BENCHMARKS.md
