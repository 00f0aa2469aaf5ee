#!/usr/bin/env bash
# `npm run bench`: every benchmark, one after another, each writing its own table to
# bench/results/<name>.md (and .json), then bench/results/README.md gathering them.
# INFER_BENCH_ONLY=kv,moe
# picks some of them.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
all=(latest:run profile:profile llamacpp:llamacpp vulkan:vulkan kv:kv moe:moe quant:quant spec:spec tokenizer:tokenizer serve:serve browser:browser bigmodel:bigModel)
only="${INFER_BENCH_ONLY:-}"
ran=()
for entry in "${all[@]}"; do
  name="${entry%%:*}" file="bench/${entry##*:}.ts"
  if [[ -n "$only" && ",$only," != *",$name,"* && ",$only," != *",${entry##*:},"* ]]; then continue; fi
  [[ -f "$file" ]] || continue
  echo "== bench: $file" >&2
  node --import tsx "$file" > /dev/null
  ran+=("$name")
done
{
  echo "# infer benchmarks"
  echo
  echo "Written by \`npm run bench\` on $(date -u +%Y-%m-%d) ($(uname -m), $(nproc) cores). Each section is bench/results/<name>.md."
  for name in "${ran[@]}"; do echo; sed 's/^# /## /' "bench/results/$name.md"; done
} > bench/results/README.md
echo "bench: wrote bench/results/README.md (${ran[*]})" >&2
