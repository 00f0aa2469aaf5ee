// The host runner `infer compile --target cuda` writes for one model: loads the seeded
// weights, allocates the Program's buffers and KV page pool, and generates for each prompt
// with continuous batching (runtime/batchGenerate.ts: every step one batched forward over
// the live sequences, prompts prefilled in chunks of the per-forward budget, each sequence
// sampled by its own seeded sampler), then prints what `infer run --json` prints.
//   runner [--tokens 1,2,3]... [--max-tokens N] [--json] [--temperature T] [--top-k K]
//          [--top-p P] [--seed S] [--ignore-eos] [--kv-pages N] [--max-tokens-per-forward N]
//          [--weights-hash] [--bench PROMPT,DECODE] [--weights FILE.gguf|FILE.safetensors|DIR]
//          [--write-hf FILE.safetensors]
//   runner --serve   (a device for a TypeScript ProgramRunner: serve.h)
// Environment: INFER_SYNC=1 waits for each launch (a device fault names its step);
// CUDA_EMU_BLOCK_ORDER / CUDA_EMU_THREAD_ORDER=reverse (runner-emu, emu/cuda_emu.h).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>
// First: the weight readers' standard headers must precede the emulation's macros (__noinline__).
#include "weights_load.h"
#include "weights_hf_writer.h"
#include "program_device.h"
#include "sampler.h"
#include "bench.h"
#include "serve.h"

namespace {

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "runner: %s\n", msg.c_str());
  std::exit(1);
}

int64_t parse_int(const char* flag, const char* text, int64_t lo, int64_t hi) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno || !*text || *end || v < lo || v > hi) usage_error(std::string(flag) + " needs an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got '" + text + "'");
  return v;
}

double parse_number(const char* flag, const char* text, double lo, double hi) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (!*text || *end || !(v >= lo && v <= hi)) usage_error(std::string(flag) + " needs a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + text + "'");
  return v;
}

std::vector<int> parse_tokens(const char* text) {
  std::vector<int> out;
  std::string s(text);
  size_t at = 0;
  for (;;) {
    const size_t comma = s.find(',', at);
    std::string part = s.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    part.erase(0, part.find_first_not_of(' '));
    part.erase(part.find_last_not_of(' ') + 1);
    out.push_back(int(parse_int("--tokens", part.c_str(), 0, int64_t(model::VOCAB) - 1)));
    if (comma == std::string::npos) return out;
    at = comma + 1;
  }
}

struct Request {
  std::vector<int> prompt, pending, out;
  int seq = -1;
  Sampler sampler;
  const char* stop = nullptr;
  std::string message;
};

struct Options {
  std::vector<std::vector<int>> prompts;
  int64_t max_tokens = 32, kv_pages = -1, tokens_per_forward = -1;
  bool json = false, ignore_eos = false, weights_hash = false;
  SamplingOptions sampling;
  int64_t bench_prompt = 0, bench_decode = 0;
  std::string weights, write_hf;
};

/** Continuous batching without prefix sharing (runtime/batchGenerate.ts BatchGenerator.step). */
class Generator {
 public:
  Generator(ProgramDevice& dev, KvSequences& kv, const Options& o, size_t max_seqs) : dev_(dev), kv_(kv), o_(o), max_seqs_(max_seqs) {}
  std::vector<Request> requests;
  size_t steps = 0, max_batch = 0;

  void add(const std::vector<int>& prompt) {
    Request r{prompt, prompt, {}, -1, Sampler(o_.sampling, o_.sampling.seed + int64_t(requests.size())), nullptr, ""};
    if (o_.max_tokens == 0) r.stop = "max_tokens";
    else if (prompt.size() > model::MAX_CONTEXT) end(r, "prompt_too_large", "the prompt has " + std::to_string(prompt.size()) + " tokens but the model's context holds " + std::to_string(model::MAX_CONTEXT));
    requests.push_back(std::move(r));
  }
  bool done() const { return std::all_of(requests.begin(), requests.end(), [](const Request& r) { return r.stop != nullptr; }); }

  void step() {
    std::vector<Request*> running, waiting, admitted;
    for (Request& r : requests) if (!r.stop) (r.seq >= 0 ? running : waiting).push_back(&r);
    std::vector<std::pair<Request*, size_t>> feed;
    size_t budget = dev_.sizing.max_tokens;
    std::vector<Request*> order = running;
    std::stable_sort(order.begin(), order.end(), [](Request* a, Request* b) { return a->pending.size() < b->pending.size(); });
    for (Request* r : order) {
      const size_t n = std::min(r->pending.size(), budget);
      if (n > 0) { feed.push_back({r, n}); budget -= n; }
    }
    for (Request* r : waiting) {
      if (running.size() + admitted.size() >= max_seqs_) break;
      const size_t need = r->prompt.size(), n = std::min(need, budget);
      if (n == 0 || (n < need && need <= dev_.sizing.max_tokens)) break;
      r->seq = kv_.join();
      r->pending = r->prompt;
      feed.push_back({r, n});
      budget -= n;
      admitted.push_back(r);
    }
    // Batch order: running sequences (in request order), then the admitted ones.
    std::vector<std::pair<Request*, size_t>> batch;
    for (Request* r : running) for (auto& f : feed) if (f.first == r) batch.push_back(f);
    for (Request* r : admitted) for (auto& f : feed) if (f.first == r) batch.push_back(f);
    while (!batch.empty()) {
      std::vector<std::pair<int, std::vector<int>>> items;
      for (auto& [r, n] : batch) items.push_back({r->seq, std::vector<int>(r->pending.begin(), r->pending.begin() + long(n))});
      BatchStep st;
      try {
        st = kv_.build_step(items);
      } catch (const KvPoolExhausted& e) {
        // New prompts wait for pages; then the newest running sequence gives its pages up.
        Request* newest = admitted.empty() ? nullptr : admitted.back();
        if (newest) admitted.pop_back();
        else for (auto& f : batch) newest = f.first;
        batch.erase(std::remove_if(batch.begin(), batch.end(), [&](auto& f) { return f.first == newest; }), batch.end());
        kv_.free(newest->seq);
        newest->seq = -1;
        if (!newest->out.empty()) end(*newest, "kv_exhausted", "stopped after " + std::to_string(newest->out.size()) + " tokens: " + e.what());
        else if (batch.empty() && kv_.pool.used() == 0) end(*newest, "prompt_too_large", "the prompt's " + std::to_string(newest->prompt.size()) + " tokens do not fit the KV pool (" + e.what() + ")");
        else newest->pending = newest->prompt;
        continue;
      }
      const std::vector<float> rows = dev_.forward(st, st.last_row);
      steps++;
      max_batch = std::max(max_batch, batch.size());
      for (size_t i = 0; i < batch.size(); i++) {
        Request& r = *batch[i].first;
        r.pending.erase(r.pending.begin(), r.pending.begin() + long(batch[i].second));
        if (r.pending.empty()) take(r, rows.data() + i * model::VOCAB);
      }
      return;
    }
  }

 private:
  void end(Request& r, const char* stop, const std::string& message) {
    r.stop = stop;
    r.message = message;
    if (r.seq >= 0) { kv_.free(r.seq); r.seq = -1; }
  }
  void take(Request& r, const float* row) {
    const int id = r.sampler.sample(row, model::VOCAB);
    r.out.push_back(id);
    const int length = kv_.length(r.seq);
    r.pending = {id};
    if (!o_.ignore_eos && model::EOS >= 0 && id == model::EOS) r.stop = "eos";
    else if (int64_t(r.out.size()) >= o_.max_tokens) r.stop = "max_tokens";
    else if (length >= int(model::MAX_CONTEXT)) end(r, "max_context", "stopped after " + std::to_string(r.out.size()) + " tokens: the context of " + std::to_string(model::MAX_CONTEXT) + " is full");
    if (r.stop && r.seq >= 0) { kv_.free(r.seq); r.seq = -1; }
  }
  ProgramDevice& dev_;
  KvSequences& kv_;
  const Options& o_;
  size_t max_seqs_;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { if (i + 1 >= argc) usage_error(a + " needs a value"); return argv[++i]; };
    if (a == "--tokens") o.prompts.push_back(parse_tokens(value()));
    else if (a == "--max-tokens") o.max_tokens = parse_int("--max-tokens", value(), 0, 1 << 30);
    else if (a == "--json") o.json = true;
    else if (a == "--ignore-eos") o.ignore_eos = true;
    else if (a == "--weights-hash") o.weights_hash = true;
    else if (a == "--weights") o.weights = value();
    else if (a == "--write-hf") o.write_hf = value();
    else if (a == "--temperature") o.sampling.temperature = parse_number("--temperature", value(), 0, 1e30);
    else if (a == "--top-k") o.sampling.top_k = int(parse_int("--top-k", value(), 0, 1 << 30));
    else if (a == "--top-p") { o.sampling.top_p = parse_number("--top-p", value(), 0, 1); if (o.sampling.top_p == 0) usage_error("--top-p needs a number in (0, 1]"); }
    else if (a == "--seed") o.sampling.seed = parse_int("--seed", value(), 0, 4294967295LL);
    else if (a == "--kv-pages") o.kv_pages = parse_int("--kv-pages", value(), 1, 1 << 30);
    else if (a == "--max-tokens-per-forward") o.tokens_per_forward = parse_int("--max-tokens-per-forward", value(), 1, 1 << 20);
    else if (a == "--bench") {
      const std::string v = value();
      const size_t c = v.find(',');
      if (c == std::string::npos) usage_error("--bench needs PROMPT,DECODE (token counts)");
      o.bench_prompt = parse_int("--bench", v.substr(0, c).c_str(), 1, model::MAX_CONTEXT);
      o.bench_decode = parse_int("--bench", v.substr(c + 1).c_str(), 0, model::MAX_CONTEXT);
    } else usage_error("unknown flag '" + a + "' (flags: --tokens, --max-tokens, --json, --temperature, --top-k, --top-p, --seed, --ignore-eos, --kv-pages, --max-tokens-per-forward, --weights-hash, --bench, --weights, --write-hf)");
  }
  if (o.prompts.empty()) o.prompts.push_back({1});
  return o;
}

/** The spec's seeded weights, or FILE for a spec that binds a weight file (as `infer run --weights`). */
void load_weights(ProgramDevice& dev, const std::string& file) {
  if (model::RANDOM_WEIGHTS) {
    if (!file.empty()) std::fprintf(stderr, "note: --weights %s ignored: this model binds seeded random weights\n", printable(file, 400).c_str());
    dev.load_random_weights();
  } else {
    if (file.empty()) usage_error("this model binds a weight file ('weights gguf'): give it with --weights FILE.gguf (or a Hugging Face llama FILE.safetensors, index or directory)");
    load_weight_file(dev, file);
  }
}

void print_ints(const std::vector<int>& v) {
  std::printf("[");
  for (size_t i = 0; i < v.size(); i++) std::printf("%s%d", i ? "," : "", v[i]);
  std::printf("]");
}

void print_sequence(const Request& r) {
  std::printf("\"tokens\":");
  print_ints(r.out);
  std::printf(",\"top_logprobs\":[");
  for (size_t i = 0; i < r.out.size(); i++) std::printf("%s[]", i ? "," : "");
  std::printf("],\"stop_reason\":\"%s\"", r.stop ? r.stop : "max_tokens");
  // Messages are built here from numbers and fixed text only.
  if (!r.message.empty()) std::printf(",\"message\":\"%s\"", r.message.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // runner --serve: the Device protocol on stdin/stdout (serve.h).
  if (argc == 2 && !std::strcmp(argv[1], "--serve")) return serve::run();
  const Options o = parse(argc, argv);
  const auto t_setup = std::chrono::steady_clock::now();
  const size_t max_seqs = std::max<size_t>(o.prompts.size() == 1 ? 1 : 2, std::min<size_t>(o.prompts.size(), 64));
  const uint64_t pages = o.kv_pages > 0 ? uint64_t(o.kv_pages) : max_seqs * model::KV_PAGES_PER_SEQUENCE;
  // Tokens per forward: the context, lowered so no per-token buffer exceeds 1 GiB.
  const uint64_t fit = (1ull << 30) / std::max<uint64_t>(1, model::WIDEST_PER_TOKEN_BYTES);
  const uint64_t tpf = o.tokens_per_forward > 0 ? uint64_t(o.tokens_per_forward) : std::min<uint64_t>(model::MAX_CONTEXT, fit);
  try {
    if (!o.write_hf.empty()) { write_hf_safetensors(o.write_hf); return 0; }
    ProgramDevice dev(Sizing{tpf, pages, max_seqs});
    load_weights(dev, o.weights);
    if (o.weights_hash) {
      std::printf("{\"param_hashes\":[");
      const std::vector<uint32_t> h = dev.param_hashes();
      for (size_t i = 0; i < h.size(); i++) std::printf("%s%u", i ? "," : "", h[i]);
      std::printf("]}\n");
      return 0;
    }
    const double setup_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_setup).count();
    if (o.bench_prompt > 0) return run_bench(dev, o.bench_prompt, o.bench_decode);
    KvSequences kv(int(pages), int(model::KV_PAGE_SIZE), model::KV_WINDOW, int(model::MAX_CONTEXT));
    Generator g(dev, kv, o, max_seqs);
    for (const auto& p : o.prompts) g.add(p);
    const auto t0 = std::chrono::steady_clock::now();
    while (!g.done()) g.step();
    const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    size_t generated = 0, prompt_tokens = 0;
    for (const Request& r : g.requests) { generated += r.out.size(); prompt_tokens += r.prompt.size(); }
    if (o.json) {
      const bool single = g.requests.size() == 1;
      std::printf("{");
      if (single) { print_sequence(g.requests[0]); std::printf(",\"stats\":{"); }
      else {
        std::printf("\"sequences\":[");
        for (size_t i = 0; i < g.requests.size(); i++) { std::printf("%s{", i ? "," : ""); print_sequence(g.requests[i]); std::printf("}"); }
        std::printf("],\"stats\":{");
      }
      std::printf("\"backend\":\"cuda\",\"sequences\":%zu,\"prompt_tokens\":%zu,\"generated_tokens\":%zu,\"steps\":%zu,\"max_batch\":%zu,\"wall_ms\":%.3f,"
                  "\"tokens_per_s\":%.3f,\"dispatches_per_step\":%zu,\"setup_ms\":%.3f,\"bytes_allocated\":%llu,\"kv\":{\"layout\":\"%s\",\"dtype\":\"%s\",\"page_size\":%u,\"pages_total\":%llu}}}\n",
                  g.requests.size(), prompt_tokens, generated, g.steps, g.max_batch, wall_ms, wall_ms > 0 ? generated / (wall_ms / 1000) : 0.0, model::STEP_COUNT, setup_ms,
                  (unsigned long long)dev.bytes_allocated, model::KV_LAYOUT, model::KV_DTYPE, model::KV_PAGE_SIZE, (unsigned long long)pages);
    } else {
      for (size_t i = 0; i < g.requests.size(); i++) {
        if (g.requests.size() > 1) std::printf("[%zu] ", i);
        for (size_t j = 0; j < g.requests[i].out.size(); j++) std::printf("%s%d", j ? " " : "", g.requests[i].out[j]);
        std::printf("\n");
      }
      std::fprintf(stderr, "%zu tokens in %.1f ms (%zu steps)\n", generated, wall_ms, g.steps);
    }
    // Exit status as `infer run`: 3 when a sequence ended short of eos / max tokens.
    int status = 0;
    for (size_t i = 0; i < g.requests.size(); i++) {
      const Request& r = g.requests[i];
      if (!r.stop || !std::strcmp(r.stop, "eos") || !std::strcmp(r.stop, "max_tokens")) continue;
      std::fprintf(stderr, "runner: [%zu] %s: %s\n", i, r.stop, r.message.c_str());
      status = 3;
    }
    return status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runner: %s\n", e.what());
    return 1;
  }
}
