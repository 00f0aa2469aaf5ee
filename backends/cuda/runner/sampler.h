// Sampling, ported from runtime/sampling.ts so a seed gives the same draws as `infer run`:
// greedy (lowest id on ties, NaN never chosen); otherwise logits / temperature, top-k,
// softmax in double, top-p prefix, renormalise, one splitmix32 draw with 53 random bits.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <vector>

/** splitmix32, as runtime/sampling.ts Rng. */
class Rng {
 public:
  explicit Rng(int64_t seed) : state_(uint32_t(int32_t(seed)) ^ 0x9e3779b9u) {}
  uint32_t next_u32() {
    state_ += 0x9e3779b9u;
    uint32_t z = state_;
    z = (z ^ (z >> 16)) * 0x85ebca6bu;
    z = (z ^ (z >> 13)) * 0xc2b2ae35u;
    return z ^ (z >> 16);
  }
  double next() {
    const uint32_t hi = next_u32() >> 5, lo = next_u32() >> 6;
    return (double(hi) * 67108864.0 + double(lo)) / 9007199254740992.0;
  }

 private:
  uint32_t state_;
};

struct SamplingOptions { double temperature = 0; int top_k = 0; double top_p = 1; int64_t seed = 0; };

inline int greedy(const float* logits, size_t n) {
  int best = -1;
  float max = -INFINITY;
  for (size_t i = 0; i < n; i++) if (logits[i] > max || (best < 0 && logits[i] == max)) { max = logits[i]; best = int(i); }
  if (best < 0) throw std::runtime_error("cannot sample: every logit is NaN");
  return best;
}

class Sampler {
 public:
  Sampler(const SamplingOptions& o, int64_t seed) : o_(o), rng_(seed) {}
  bool is_greedy() const { return o_.temperature == 0 || o_.top_k == 1; }

  int sample(const float* logits, size_t n) {
    if (is_greedy()) return greedy(logits, n);
    const double t = o_.temperature;
    // Ids by descending logit, ties by ascending id; the top k survive.
    std::vector<int> ids(n);
    std::iota(ids.begin(), ids.end(), 0);
    std::sort(ids.begin(), ids.end(), [&](int a, int b) {
      const double d = double(logits[b]) - double(logits[a]);
      return d != 0 && !std::isnan(d) ? d < 0 : a < b;
    });
    if (o_.top_k > 0 && size_t(o_.top_k) < n) ids.resize(size_t(o_.top_k));
    const double max = double(logits[ids[0]]) / t;
    std::vector<double> probs(ids.size());
    for (size_t i = 0; i < ids.size(); i++) probs[i] = std::exp(double(logits[ids[i]]) / t - max);
    normalise(probs);
    if (o_.top_p < 1) {
      double cum = 0;
      size_t keep = 0;
      while (keep < ids.size() && cum < o_.top_p) cum += probs[keep++];
      ids.resize(keep);
      probs.resize(keep);
      normalise(probs);
    }
    const double u = rng_.next();
    double cum = 0;
    for (size_t i = 0; i < ids.size(); i++) {
      cum += probs[i];
      if (u < cum) return ids[i];
    }
    return ids.back(); // u landed in the rounding gap at the top
  }

 private:
  static void normalise(std::vector<double>& p) {
    double sum = 0;
    for (double q : p) sum += q;
    for (double& q : p) q /= sum;
  }
  SamplingOptions o_;
  Rng rng_;
};
