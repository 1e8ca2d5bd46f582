#!/usr/bin/env bash
# npm run fuzz [-- --seconds N] [--target decode|encode] [--update-corpus]
#
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) into build-fuzz/ and runs each for
# its share of N seconds (default 60, split evenly; all of it with --target). A target starts from
# a working corpus in build-fuzz/corpus/<target>/ (kept between runs), the committed corpus
# fuzz/corpus/<target>/, the regression inputs fuzz/regressions/<target>/ and, for `decode`, every
# encoding in test/vectors/vectors.json. It fails when libFuzzer finds a crash, a sanitizer report
# or a broken invariant; the input is then in build-fuzz/artifacts/<target>/ (keep it in
# fuzz/regressions/<target>/ once fixed).
#
# --update-corpus: after the run, replaces fuzz/corpus/<target>/ with the smallest set of inputs
# (libFuzzer -merge=1) that reaches every edge the committed corpus, the seeds and the working
# corpus reach, plus a sample of up to 150 more that make a difference in hit counts (libFuzzer's
# features), so that the corpus stays small (a few hundred files).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
targets=(decode encode)
update=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --target) targets=("${2:?--target needs decode or encode}"); shift 2 ;;
    --target=*) targets=("${1#*=}"); shift ;;
    --update-corpus) update=1; shift ;;
    *) echo "fuzz: unknown argument $1 (use --seconds N, --target decode|encode, --update-corpus)" >&2; exit 2 ;;
  esac
done
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -lt 1 ]]; then
  echo "fuzz: --seconds takes a whole number of seconds, got '$seconds'" >&2
  exit 2
fi
for t in "${targets[@]}"; do
  if [[ "$t" != decode && "$t" != encode ]]; then
    echo "fuzz: no target '$t' (decode or encode)" >&2
    exit 2
  fi
done

# libFuzzer comes with clang: on Debian, as root with apt, install it when it is missing (as
# scripts/setup.js does for Erlang); anywhere else the message below names what to install.
fuzzer_rt() { find /usr/lib/llvm-14/lib/clang -name 'libclang_rt.fuzzer-x86_64.a' 2> /dev/null | head -1; }
if [[ -z "${FUZZ_CXX:-}" ]] && { ! command -v clang++-14 > /dev/null || [[ -z "$(fuzzer_rt)" ]]; } &&
  [[ -f /etc/debian_version && "$(id -u)" == 0 && "${ERL_PEB_NO_APT:-}" != 1 ]] && command -v apt-get > /dev/null; then
  echo "fuzz: installing clang-14 libclang-rt-14-dev with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev > /dev/null ||
    echo "fuzz: apt-get failed" >&2
fi

cxx="${FUZZ_CXX:-}"
if [[ -z "$cxx" ]]; then
  for c in clang++-14 clang++; do
    if command -v "$c" > /dev/null; then cxx="$c"; break; fi
  done
fi
if [[ -z "$cxx" ]]; then
  echo "fuzz: clang++ was not found (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi
# Symbolized stack traces in sanitizer reports.
for s in llvm-symbolizer-14 llvm-symbolizer; do
  if command -v "$s" > /dev/null; then export ASAN_SYMBOLIZER_PATH="$(command -v "$s")"; break; fi
done

generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
if [[ ! -f build-fuzz/CMakeCache.txt ]]; then
  mkdir -p build-fuzz
  cmake -S fuzz -B build-fuzz "${generator[@]}" -DCMAKE_CXX_COMPILER="$cxx" > build-fuzz/configure.log 2>&1 ||
    { cat build-fuzz/configure.log >&2; rm -f build-fuzz/CMakeCache.txt; exit 1; }
fi
cmake --build build-fuzz

# The seeds: every encoding Erlang made for test/vectors (the decode input is an options byte, then
# the bytes binaryToTerm gets), under the default options and under each flag. Inputs larger than
# max_len are left out: libFuzzer would only cut them.
max_len=16384
seeds=build-fuzz/seeds/decode
rm -rf "$seeds"
mkdir -p "$seeds"
node - "$seeds" "$max_len" <<'EOF'
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const [dir, maxLen] = [process.argv[2], Number(process.argv[3])];
const file = JSON.parse(readFileSync('test/vectors/vectors.json', 'utf8'));
const all = [];
for (const v of file.vectors) for (const hex of Object.values(v.encodings)) if (hex) all.push([v.name, hex]);
for (const h of file.handmade) all.push([h.name, h.hex]);
let n = 0;
for (const [name, hex] of all) {
  const bytes = Buffer.from(hex, 'hex');
  if (bytes.length + 1 > maxLen) continue;
  for (const options of [0, 1, 2, 4, 7]) {
    writeFileSync(join(dir, `${name}-${n++}-o${options}`), Buffer.concat([Buffer.from([options]), bytes]));
  }
}
// A map decoded as an object with more keys than the decoder's key cache holds (2048), whole and
// cut short: small inputs never fill the cache, so its clearing is reached only from here.
const keys = 2100;
const parts = [Buffer.from([4, 131, 116]), Buffer.alloc(4)];
parts[1].writeUInt32BE(keys);
for (let k = 0; k < keys; k++) {
  const name = Buffer.from(`k${k}`);
  parts.push(Buffer.from([119, name.length]), name, Buffer.from([106]));
}
const full = Buffer.concat(parts);
writeFileSync(join(dir, 'object-past-key-cache'), full);
writeFileSync(join(dir, 'object-past-key-cache-cut'), full.subarray(0, full.length - 1));
EOF

# Each target in turn, for its share of the time.
status=0
summary=()
share=$(( seconds / ${#targets[@]} ))
[[ $share -lt 1 ]] && share=1
for t in "${targets[@]}"; do
  work="build-fuzz/corpus/$t"
  artifacts="build-fuzz/artifacts/$t"
  mkdir -p "$work" "$artifacts" "fuzz/corpus/$t" "fuzz/regressions/$t"
  dirs=("$work" "fuzz/corpus/$t" "fuzz/regressions/$t")
  [[ -d "build-fuzz/seeds/$t" ]] && dirs+=("build-fuzz/seeds/$t")
  log="build-fuzz/$t.log"
  echo "fuzz: $t for ${share}s"
  rc=0
  # One process (the machine's cores are shared); -timeout: an input that takes this long is a hang.
  "build-fuzz/$t" -max_total_time="$share" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${dirs[@]}" > "$log" 2>&1 || rc=$?
  stats="$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 || true)"
  execs="$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)"
  runs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)"
  if [[ $rc -ne 0 ]]; then
    status=1
    grep -v '^INFO:' "$log" | tail -40 >&2
    crash="$(ls -t "$artifacts" 2> /dev/null | head -1 || true)"
    echo "fuzz: $t FAILED (exit $rc); the input: $artifacts/$crash; full log: $log" >&2
    echo "fuzz: run it again with: build-fuzz/$t $artifacts/$crash" >&2
    summary+=("$t: FAILED, input in $artifacts/$crash")
  else
    summary+=("$t: ok, ${runs:-?} runs, ${execs:-?} execs/s; last: ${stats:-?}")
  fi
  if [[ $update -eq 1 && $rc -eq 0 ]]; then
    merged="build-fuzz/merged/$t"
    rm -rf "$merged" "$merged.edges"
    mkdir -p "$merged" "$merged.edges"
    seeds_dir=()
    [[ -d "build-fuzz/seeds/$t" ]] && seeds_dir=("build-fuzz/seeds/$t")
    "build-fuzz/$t" -merge=1 -max_len="$max_len" "$merged" "fuzz/corpus/$t" "${seeds_dir[@]}" "$work" \
      > "build-fuzz/$t.merge.log" 2>&1
    "build-fuzz/$t" -merge=1 -use_counters=0 -max_len="$max_len" "$merged.edges" "$merged" \
      >> "build-fuzz/$t.merge.log" 2>&1
    # The sample: names are content hashes, so the first ones in name order are a fair pick.
    comm -23 <(ls "$merged" | sort) <(ls "$merged.edges" | sort) > "$merged.rest"
    head -150 "$merged.rest" | while read -r f; do cp "$merged/$f" "$merged.edges/"; done
    rm -rf "fuzz/corpus/$t"
    mv "$merged.edges" "fuzz/corpus/$t"
    echo "fuzz: fuzz/corpus/$t now holds $(ls "fuzz/corpus/$t" | wc -l) inputs ($(( $(cat "fuzz/corpus/$t"/* | wc -c) / 1024 )) KB)"
  fi
done

echo "fuzz: summary"
for line in "${summary[@]}"; do echo "  $line"; done
exit $status
