// A Program on the device, as runtime/runner/buffers.ts and programRunner.ts do it: every
// buffer allocated once for the chosen tokens per forward, pool pages and batch size
// (activations that share an arena bound under each member's index), params filled, the
// rest zeroed; a forward uploads the inputs, picks each step's variant (largest minTokens
// that fits) and grid for T tokens, launches the dispatch list in order, checking each.
#pragma once
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>
#include "runner_device.h"
#include "model.h"
#include "kv_pool.h"
#include "random_weights.h"

struct Sizing { uint64_t max_tokens, pages, max_seqs; };

inline uint64_t buffer_bytes(const model::Buffer& b, const Sizing& s) {
  return b.fixed + b.per_token * s.max_tokens + b.per_page * s.pages + b.per_seq * s.max_seqs;
}

class ProgramDevice {
 public:
  explicit ProgramDevice(const Sizing& s) : sizing(s) {
    for (const model::Buffer& a : model::ARENAS) if (a.kind >= 0) arenas_.push_back(allocate(buffer_bytes(a, s)));
    for (size_t i = 0; i < model::BUFFER_COUNT; i++) {
      const model::Buffer& b = model::BUFFERS[i];
      ptrs_.push_back(b.storage >= 0 ? arenas_[size_t(b.storage)] : allocate(buffer_bytes(b, s)));
      sizes_.push_back(buffer_bytes(b, s));
    }
  }
  ~ProgramDevice() { for (void* p : owned_) cudaFree(p); }
  ProgramDevice(const ProgramDevice&) = delete;
  ProgramDevice& operator=(const ProgramDevice&) = delete;

  const Sizing sizing;
  uint64_t bytes_allocated = 0;

  void* buffer(int i) const { return ptrs_[size_t(i)]; }
  uint64_t size(int i) const { return sizes_[size_t(i)]; }

  /** Fills every param from the seeded random weights (model.h's per-tensor hash and scale; a part: its slice of the stream), a chunk at a time. */
  void load_random_weights() {
    std::vector<float> host;
    for (size_t i = 0; i < model::RANDOM_PARAM_COUNT; i++) {
      const model::RandomParam& p = model::RANDOM_PARAMS[i];
      if (p.elements * 4 != size(p.buffer)) throw std::runtime_error("param buffer " + std::to_string(p.buffer) + " size differs from its tensor");
      RandomStream stream(p.hash, p.a, p.base);
      stream.skip(p.skip);
      for (uint64_t at = 0; at < p.elements; at += host.size()) {
        host.resize(size_t(std::min<uint64_t>(p.elements - at, 1u << 22)));
        stream.fill(host.data(), host.size());
        write(p.buffer, at * 4, host.data(), host.size() * 4);
      }
    }
  }

  /** Copies host bytes into buffer `i` at byte `offset` (checked against its size). */
  void write(int i, uint64_t offset, const void* data, uint64_t bytes) {
    if (offset > size(i) || bytes > size(i) - offset) throw std::runtime_error("a write of " + std::to_string(bytes) + " bytes at " + std::to_string(offset) + " overflows buffer " + std::to_string(i) + " (" + std::to_string(size(i)) + " bytes)");
    if (bytes) CUDA_CHECK(cudaMemcpy(static_cast<char*>(buffer(i)) + offset, data, bytes, cudaMemcpyHostToDevice));
  }

  /** FNV-1a of every param buffer's device bytes, in buffer order. */
  std::vector<uint32_t> param_hashes() const {
    std::vector<uint32_t> out;
    std::vector<unsigned char> host;
    for (size_t i = 0; i < model::BUFFER_COUNT; i++) {
      if (model::BUFFERS[i].kind != model::KIND_PARAM) continue;
      host.resize(sizes_[i]);
      CUDA_CHECK(cudaMemcpy(host.data(), ptrs_[i], sizes_[i], cudaMemcpyDeviceToHost));
      out.push_back(fnv1a(host.data(), host.size()));
    }
    return out;
  }

  /** Writes the step's inputs, runs the dispatch list for its T tokens and returns the logits rows of `rows`. */
  std::vector<float> forward(const BatchStep& st, const std::vector<size_t>& rows) {
    run(st);
    std::vector<float> out(rows.size() * model::VOCAB);
    const char* logits = static_cast<const char*>(buffer(model::LOGITS));
    for (size_t r = 0; r < rows.size(); r++) {
      CUDA_CHECK(cudaMemcpy(out.data() + r * model::VOCAB, logits + rows[r] * model::VOCAB * 4, model::VOCAB * 4, cudaMemcpyDeviceToHost));
    }
    return out;
  }

  /** Writes the step's inputs and launches the dispatch list (no readback, no wait). */
  void run(const BatchStep& st) {
    const unsigned T = unsigned(st.tokens.size());
    upload(model::IN_TOKENS, st.tokens);
    upload(model::IN_POSITIONS, st.positions);
    upload(model::IN_KV_SLOT, st.slots);
    upload(model::IN_KV_SEQ, st.seq_of);
    upload(model::IN_KV_TABLE, st.table);
    for (size_t s = 0; s < model::STEP_COUNT; s++) launch_step(s, T);
  }

  /** Launches step `s` of the dispatch list for T tokens. */
  void launch_step(size_t s, unsigned T) {
    const model::StepDecl& step = model::STEPS[s];
    const model::Variant* v = nullptr;
    for (unsigned i = 0; i < step.variants; i++) {
      const model::Variant& c = model::VARIANTS[step.first_variant + i];
      if (c.min_tokens <= T && (!v || c.min_tokens > v->min_tokens)) v = &c;
    }
    if (!v) throw std::runtime_error("step " + std::to_string(s) + ": no kernel variant accepts " + std::to_string(T) + " tokens");
    unsigned g[3];
    for (int d = 0; d < 3; d++) g[d] = (v->grid[d].per > 0 ? (T + v->grid[d].per - 1) / v->grid[d].per : 1u) * v->grid[d].groups;
    if (g[0] < 1 || g[1] < 1 || g[1] > 65535 || g[2] < 1 || g[2] > 65535) throw std::runtime_error("step " + std::to_string(s) + ": grid out of range");
    void* args[model::MAX_ARGS];
    for (unsigned i = 0; i < v->nargs; i++) args[i] = buffer(model::ARGS[v->first_arg + i]);
    v->launch(dim3(g[0], g[1], g[2]), dim3(v->block[0], v->block[1], v->block[2]), T, args);
    cudaError_t e = cudaGetLastError();
    // INFER_SYNC=1: wait for every launch, so a fault is reported by the step that made it.
    if (e == cudaSuccess && sync_each_launch_) e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
      std::fprintf(stderr, "runner: step %zu (kernel %d) failed: %s%s\n", s, v->kernel, cudaGetErrorString(e), sync_each_launch_ ? "" : " (INFER_SYNC=1 names the failing step exactly)");
      std::exit(1);
    }
  }

 private:
  void* allocate(uint64_t bytes) {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes));
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    owned_.push_back(p);
    bytes_allocated += bytes;
    return p;
  }
  void upload(int buf, const std::vector<int>& data) {
    if (buf < 0 || data.empty()) return;
    if (data.size() * 4 > size(buf)) throw std::runtime_error("input of " + std::to_string(data.size()) + " values overflows its buffer " + std::to_string(buf));
    CUDA_CHECK(cudaMemcpy(buffer(buf), data.data(), data.size() * 4, cudaMemcpyHostToDevice));
  }
  const bool sync_each_launch_ = std::getenv("INFER_SYNC") != nullptr && std::string(std::getenv("INFER_SYNC")) == "1";
  std::vector<void*> owned_, arenas_, ptrs_;
  std::vector<uint64_t> sizes_;
};
