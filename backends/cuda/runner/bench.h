// `runner --bench PROMPT,DECODE`: device time of one prefill of PROMPT tokens and of DECODE
// single-token decode steps after it, measured with CUDA events around the launches only
// (no readback), and the device-to-device copy bandwidth measured in the same run, so the
// decode's achieved bandwidth (weights + the KV it reads, per step) reads as a fraction of
// what this device's memory can do. Prints one JSON object.
#pragma once
#include "program_device.h"

inline float elapsed_ms(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  CUDA_CHECK(cudaEventSynchronize(b));
  CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms;
}

/** Device-to-device copy bandwidth in GB/s (bytes read + written), over a 256 MiB buffer (16 MiB emulated). */
inline double copy_bandwidth_gbps() {
#ifdef INFER_EMU
  const size_t bytes = size_t(16) << 20; // host memory: a smaller copy says as much
#else
  const size_t bytes = size_t(256) << 20;
#endif
  void *a = nullptr, *b = nullptr;
  CUDA_CHECK(cudaMalloc(&a, bytes));
  CUDA_CHECK(cudaMalloc(&b, bytes));
  CUDA_CHECK(cudaMemset(a, 1, bytes));
  CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  const int reps = 10;
  CUDA_CHECK(cudaEventRecord(e0));
  for (int i = 0; i < reps; i++) CUDA_CHECK(cudaMemcpy(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice));
  CUDA_CHECK(cudaEventRecord(e1));
  const double ms = elapsed_ms(e0, e1);
  CUDA_CHECK(cudaEventDestroy(e0));
  CUDA_CHECK(cudaEventDestroy(e1));
  CUDA_CHECK(cudaFree(a));
  CUDA_CHECK(cudaFree(b));
  return 2.0 * double(bytes) * reps / (ms / 1000) / 1e9;
}

inline int run_bench(ProgramDevice& dev, int64_t prompt, int64_t decode) {
  if (uint64_t(prompt) > dev.sizing.max_tokens) { std::fprintf(stderr, "runner: --bench prompt of %lld tokens exceeds the %llu tokens per forward\n", (long long)prompt, (unsigned long long)dev.sizing.max_tokens); return 1; }
  if (prompt + decode > int64_t(model::MAX_CONTEXT)) { std::fprintf(stderr, "runner: --bench %lld + %lld tokens exceed the context of %u\n", (long long)prompt, (long long)decode, model::MAX_CONTEXT); return 1; }
  KvSequences kv(int(dev.sizing.pages), int(model::KV_PAGE_SIZE), model::KV_WINDOW, int(model::MAX_CONTEXT));
  const int seq = kv.join();
  std::vector<int> ids(static_cast<size_t>(prompt));
  for (size_t i = 0; i < ids.size(); i++) ids[i] = int((i * 7 + 1) % model::VOCAB);
  cudaEvent_t e0, e1, e2;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  CUDA_CHECK(cudaEventCreate(&e2));
  // Warm-up on a throwaway sequence (first launches load modules).
  { const int w = kv.join(); dev.run(kv.build_step({std::make_pair(w, std::vector<int>{1})})); CUDA_CHECK(cudaDeviceSynchronize()); kv.free(w); }
  const BatchStep pre = kv.build_step({std::make_pair(seq, ids)});
  CUDA_CHECK(cudaEventRecord(e0));
  dev.run(pre);
  CUDA_CHECK(cudaEventRecord(e1));
  const double prefill_ms = elapsed_ms(e0, e1);
  double decode_ms = 0;
  for (int64_t i = 0; i < decode; i++) {
    const BatchStep st = kv.build_step({std::make_pair(seq, std::vector<int>{int((i + 3) % model::VOCAB)})});
    CUDA_CHECK(cudaEventRecord(e1));
    dev.run(st);
    CUDA_CHECK(cudaEventRecord(e2));
    decode_ms += elapsed_ms(e1, e2);
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  // Bytes one decode step must read: every weight once, plus the KV of the tokens before it.
  const double avg_context = double(prompt) + double(decode) / 2;
  const double step_bytes = double(model::PARAM_BYTES) + avg_context * double(model::KV_TOKEN_BYTES);
  const double per_token_ms = decode > 0 ? decode_ms / double(decode) : 0;
  const double achieved = per_token_ms > 0 ? step_bytes / (per_token_ms / 1000) / 1e9 : 0;
  const double copy = copy_bandwidth_gbps();
  std::printf("{\"bench\":{\"prefill_tokens\":%lld,\"prefill_ms\":%.4f,\"prefill_tokens_per_s\":%.1f,\"decode_steps\":%lld,\"decode_ms_per_token\":%.4f,"
              "\"decode_tokens_per_s\":%.1f,\"param_bytes\":%llu,\"decode_bytes_per_token\":%.0f,\"decode_gb_per_s\":%.2f,\"copy_gb_per_s\":%.2f,\"fraction_of_copy\":%.3f}}\n",
              (long long)prompt, prefill_ms, prompt / (prefill_ms / 1000), (long long)decode, per_token_ms, per_token_ms > 0 ? 1000 / per_token_ms : 0.0,
              (unsigned long long)model::PARAM_BYTES, step_bytes, achieved, copy, copy > 0 ? achieved / copy : 0.0);
  return 0;
}
