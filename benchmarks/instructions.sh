#!/usr/bin/env bash
# Instructions per record (callgrind): benchmarks/instructions.sh [export|map|native|payload] [iterations]
set -euo pipefail
stage=${1:-export}
n=${2:-2}
records=512
py=${PYTHON:-.venv/bin/python}
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$py" benchmarks/instructions.py \
    --stage "$stage" --iterations "$1" --records $records 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
base=$(count 0)
total=$(count "$n")
echo "$stage: $(( (total - base) / (n * records) )) instructions/record"
