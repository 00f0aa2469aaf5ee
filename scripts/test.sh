#!/usr/bin/env bash
# The test suite (`npm test`): type-check, then vitest in two phases, then one summary line.
# Why two phases: the CUDA tests (test/cuda/) are g++/nvcc builds and fiber-emulated kernels,
# and a lavapipe WebGPU test sharing the 2 cores with one of them runs up to 10x slower
# (measured in CI: the WebGPU and llama.cpp files went from ~400 s to ~1,100 s of test time
# when the CUDA files grew); each phase still runs two files at a time.
# With arguments, runs just those (`npm test -- test/gpu/kernels.test.ts`).
set -uo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json --noEmit || exit 1
mkdir -p .tmp
if [ $# -gt 0 ]; then exec npx vitest run "$@"; fi
rm -f .tmp/vitest-main.json .tmp/vitest-cuda.json
npx vitest run --exclude 'test/cuda/**' --reporter=default --reporter=json --outputFile.json=.tmp/vitest-main.json; main=$?
npx vitest run test/cuda --reporter=default --reporter=json --outputFile.json=.tmp/vitest-cuda.json; cuda=$?
node scripts/test-summary.mjs .tmp/vitest-main.json .tmp/vitest-cuda.json; summary=$?
[ $main -eq 0 ] && [ $cuda -eq 0 ] && [ $summary -eq 0 ]
