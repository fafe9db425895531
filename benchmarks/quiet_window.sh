#!/usr/bin/env bash
# The speed targets of issues 16 (serving) and 17 (BLiMP), measured in one quiet window.
#
#     bash benchmarks/quiet_window.sh [--quick] [CHECKPOINT]
#
# Run it on the 2-core machine with nothing else running (the numbers are wall-clock times).
# It prints markdown to paste into benchmarks/RESULTS.md, in about 8-10 minutes:
#   1. the serving benchmark (benchmarks/serve.py, 8 streaming clients against one at a time
#      and against a Hugging Face generate() server) on the 10.9M Shakespeare shape and on
#      GPT-2 124M, 2 torch threads per server;
#   2. BLiMP, all 67,000 pairs, on the default model (the shakespeare-char preset), in float32
#      and with --dtype auto (bf16 on CPUs with AVX-512 BF16/AMX), 2 threads.
# CHECKPOINT is a default-preset checkpoint or run folder (default: runs/shakespeare-char).
# Without one, a 200-step default-preset run is trained first (~1 minute): BLiMP's speed does
# not depend on how well the model is trained, only on its shape and tokenizer.
# --quick: a short version to check that the script works (a few minutes on a busy machine).
# BYOLLM_MIRROR must point at the shared data folder (BLiMP.zip, the paper's results); it
# defaults to ../shared/data beside the repository.
set -euo pipefail

cd "$(dirname "$0")/.."
quick=0
if [[ "${1:-}" == "--quick" ]]; then
    quick=1
    shift
fi
checkpoint="${1:-runs/shakespeare-char}"
if [[ -z "${BYOLLM_MIRROR:-}" && -d ../shared/data ]]; then
    export BYOLLM_MIRROR="$PWD/../shared/data"
fi
errors=$(mktemp)  # the benchmarks' stderr (progress, warnings), shown if one fails
out=""
trap 'rm -rf "$errors" $out' EXIT
trap 'echo "**failed**; the last lines of stderr:"; tail -n 20 "$errors"' ERR
threads=${THREADS:-2}  # THREADS=1 to try it out in a busy machine's one-core lane
python=${PYTHON:-python}

stamp() { echo "_$(date -u '+%Y-%m-%d %H:%M:%S') UTC; load average $(cut -d' ' -f1-3 /proc/loadavg)_"; }

echo "# Quiet-window measurements"
echo
echo "- Machine: $(getconf _NPROCESSORS_ONLN) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "flags:$(grep -m1 -o -w -e avx512_bf16 -e amx_bf16 /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "- $($python -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}")')"
echo "- Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); torch threads: $threads"
echo "- Start: $(stamp)"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk "BEGIN {exit !($load > 0.5)}"; then
    echo "- **Warning**: load average $load at the start; the machine is not quiet."
fi

if [[ ! -e "$checkpoint" ]]; then
    echo
    echo "(no $checkpoint: training the default preset for 200 steps, for its shape and tokenizer)"
    out=$(mktemp -d)
    $python -m byollm train --max_steps 200 --sample_tokens 0 --threads $threads \
        --out_dir "$out" --no-progress >/dev/null 2>>"$errors"
    checkpoint="$out/shakespeare-char"
fi

if ((quick)); then
    serve_runs=("--model shakespeare --requests 1 --new-tokens 16")
    blimp_limit=(--limit 2000)
else
    serve_runs=(
        "--model shakespeare --requests 4 --new-tokens 128"
        "--model gpt2 --requests 2 --new-tokens 64"
    )
    blimp_limit=()
fi

echo
echo "## Serving (issue 16: batched >= 3x one at a time, >= 1.5x HF generate())"
for run in "${serve_runs[@]}"; do
    echo
    echo "\`python benchmarks/serve.py $run --threads $threads\`, $(stamp)"
    # shellcheck disable=SC2086  # $run is a list of options
    $python benchmarks/serve.py $run --threads $threads 2>>"$errors"
done

echo
echo "## BLiMP speed (issue 17: all 67,000 pairs under 2 minutes on 2 cores)"
for dtype in float32 auto; do
    echo
    echo "\`python benchmarks/blimp.py --checkpoint $checkpoint --dtype $dtype" \
        "--threads $threads ${blimp_limit[*]}\`, $(stamp)"
    echo
    $python benchmarks/blimp.py --checkpoint "$checkpoint" --dtype "$dtype" \
        --threads $threads "${blimp_limit[@]}" 2>>"$errors"
done
echo
echo "- End: $(stamp)"
