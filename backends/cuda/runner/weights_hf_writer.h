// `--write-hf FILE`: the spec's seeded weights as a Hugging Face llama safetensors file (F32,
// HF names from model.h's NAMES, HF shapes [out, in]), so PyTorch's LlamaForCausalLM can run
// the very model the runner runs (bench/gpu/run.py). q and k rows go back to HF's
// rotate-half order, the inverse of what the loader (weights_load.h, hfLlama.ts) applies:
// GGUF row 2i + s of each head is HF row s * head_dim / 2 + i. Each tensor is generated whole
// from its seeded stream (a split param once, from its first part's row), one at a time.
#pragma once
#include "weights_file.h"
#include "random_weights.h"

inline void write_hf_safetensors(const std::string& path) {
  if (!model::RANDOM_WEIGHTS) throw std::runtime_error("--write-hf writes the spec's seeded weights, and this model binds a weight file");
  struct Entry { const model::ParamWeights* p; const model::RandomParam* r; std::vector<uint64_t> shape; uint64_t elements; };
  std::vector<Entry> entries;
  for (uint64_t i = 0; i < model::PARAM_WEIGHT_COUNT; i++) {
    const model::ParamWeights& p = model::PARAM_WEIGHTS[i];
    if (p.first_col != 0) continue;  // a later part of a split param: written with its first
    if (p.hf_count != 1) throw std::runtime_error("param buffer " + std::to_string(p.buffer) + " (" + printable(model::NAMES[p.gguf_first]) + ") has no single Hugging Face llama tensor");
    const model::RandomParam* r = nullptr;
    for (uint64_t k = 0; k < model::RANDOM_PARAM_COUNT; k++) if (model::RANDOM_PARAMS[k].buffer == p.buffer) r = &model::RANDOM_PARAMS[k];
    if (!r || r->skip != 0) throw std::runtime_error("param buffer " + std::to_string(p.buffer) + " has no seeded stream (a generator bug)");
    Entry e{&p, r, std::vector<uint64_t>(p.shape, p.shape + p.ndims), 1};
    for (uint64_t d : e.shape) e.elements *= d;
    entries.push_back(e);
  }
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t at = 0;
  for (const Entry& e : entries) {
    // Names are checked to be plain (they come from model.h, generated from the spec's param names).
    const std::string name = model::NAMES[e.p->hf_first];
    if (name.find_first_of("\"\\") != std::string::npos) throw std::runtime_error("tensor name " + printable(name) + " cannot be written");
    header += ",\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[";
    for (size_t d = e.shape.size(); d-- > 0;) header += std::to_string(e.shape[d]) + (d ? "," : "");
    header += "],\"data_offsets\":[" + std::to_string(at) + "," + std::to_string(at + 4 * e.elements) + "]}";
    at += 4 * e.elements;
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("--write-hf: cannot create " + printable(path, 400) + ": " + std::strerror(errno));
  const uint64_t n = header.size();
  bool ok = std::fwrite(&n, 8, 1, f) == 1 && std::fwrite(header.data(), 1, n, f) == n;
  std::vector<float> values, rows;
  for (const Entry& e : entries) {
    values.resize(size_t(e.elements));
    RandomStream(e.r->hash, e.r->a, e.r->base).fill(values.data(), e.elements);
    const float* out = values.data();
    if (e.p->permute_heads) {
      const uint64_t K = e.shape[0], R = e.elements / K, hd = R / e.p->permute_heads;
      if (R % (2ull * e.p->permute_heads) != 0) throw std::runtime_error("param buffer " + std::to_string(e.p->buffer) + ": rows do not split into heads of an even size");
      rows.resize(values.size());
      for (uint64_t r = 0; r < R; r++) {
        const uint64_t j = r % hd, hf = r - j + (j % 2) * (hd / 2) + j / 2;
        std::memcpy(rows.data() + hf * K, values.data() + r * K, K * 4);
      }
      out = rows.data();
    }
    ok = ok && std::fwrite(out, 4, size_t(e.elements), f) == e.elements;
  }
  if (std::fclose(f) != 0 || !ok) throw std::runtime_error("--write-hf: writing " + printable(path, 400) + " failed: " + std::strerror(errno));
}
