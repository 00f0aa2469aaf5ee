// The KV page pool and its sequences, ported from runtime/kv/pagePool.ts, sequences.ts and
// batchStep.ts: pages handed out lowest number first (a sorted free stack), whole-page
// growth, sliding-window eviction, and the CSR block tables the kernels read, packed as
// program/kv.ts packKvTable does. Prefix sharing (and so copy-on-write) is not ported: every
// sequence owns its pages, which changes which pages hold a token, never what is computed.
#pragma once
#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

/** The pool has fewer free pages than a step needs; nothing was changed. */
struct KvPoolExhausted : std::runtime_error {
  KvPoolExhausted(size_t asked, size_t free, size_t total)
      : std::runtime_error("KV page pool exhausted: asked for " + std::to_string(asked) + " pages, " + std::to_string(free) + " of " + std::to_string(total) + " free") {}
};

class PagePool {
 public:
  explicit PagePool(int total) : refs_(size_t(total), 0) {
    for (int p = total - 1; p >= 0; p--) free_.push_back(p); // lowest on top (the back)
  }
  size_t total() const { return refs_.size(); }
  size_t free() const { return free_.size(); }
  size_t used() const { return total() - free(); }
  std::vector<int> alloc(size_t n) {
    if (n > free_.size()) throw KvPoolExhausted(n, free_.size(), total());
    std::vector<int> out;
    for (size_t i = 0; i < n; i++) { out.push_back(free_.back()); free_.pop_back(); refs_[size_t(out.back())] = 1; }
    return out;
  }
  void release(int page) {
    if (--refs_[size_t(page)] == 0) {
      // Keep the stack sorted, lowest on top, so reuse order does not depend on history.
      auto at = std::find_if(free_.begin(), free_.end(), [&](int p) { return p < page; });
      free_.insert(at, page);
    }
  }

 private:
  std::vector<int> refs_;
  std::vector<int> free_;
};

/** One step of a batch: tokens flattened in batch order, their positions and slots, the block tables. */
struct BatchStep {
  std::vector<int> tokens, positions, slots, seq_of, table;
  /** Per item: the row of its last token in the step. */
  std::vector<size_t> last_row;
};

class KvSequences {
 public:
  KvSequences(int pages, int page_size, int window, int max_length) : pool(pages), page_size_(page_size), window_(window), max_length_(max_length) {}
  PagePool pool;

  int join() { seqs_[next_] = Sequence{}; return next_++; }
  int length(int id) const { return seqs_.at(id).length; }
  void free(int id) {
    for (int p : seqs_.at(id).pages) if (p >= 0) pool.release(p);
    seqs_.erase(id);
  }
  int max_length() const { return max_length_; }

  /** Pages appending n tokens to `id` takes from the pool. */
  size_t pages_needed(int id, int n) const {
    const Sequence& s = seqs_.at(id);
    const size_t last = size_t((s.length + n + page_size_ - 1) / page_size_);
    return last > s.pages.size() ? last - s.pages.size() : 0;
  }

  /** Lays out one step for `items` (sequence, tokens); all or nothing: KvPoolExhausted changes nothing. */
  BatchStep build_step(const std::vector<std::pair<int, std::vector<int>>>& items) {
    size_t need = 0;
    for (const auto& [id, toks] : items) {
      if (seqs_.at(id).length + int(toks.size()) > max_length_) throw std::runtime_error("a sequence would exceed the model's context");
      need += pages_needed(id, int(toks.size()));
    }
    if (need > pool.free()) throw KvPoolExhausted(need, pool.free(), pool.total());
    BatchStep st;
    std::vector<int> indptr{0}, last_len, pages;
    for (size_t b = 0; b < items.size(); b++) {
      Sequence& s = seqs_.at(items[b].first);
      const std::vector<int>& toks = items[b].second;
      const int start = s.length, end = start + int(toks.size());
      const size_t last_page = size_t((end + page_size_ - 1) / page_size_);
      if (last_page > s.pages.size()) for (int p : pool.alloc(last_page - s.pages.size())) s.pages.push_back(p);
      for (int p = start; p < end; p++) {
        st.tokens.push_back(toks[size_t(p - start)]);
        st.positions.push_back(p);
        st.slots.push_back(s.pages[size_t(p / page_size_)] * page_size_ + p % page_size_);
        st.seq_of.push_back(int(b));
      }
      // Pages wholly before the earliest key the first new token reads are dead.
      if (window_ >= 0) {
        const int keep_from = start - window_ + 1;
        for (size_t i = 0; int(i + 1) * page_size_ <= keep_from; i++) if (s.pages[i] >= 0) { pool.release(s.pages[i]); s.pages[i] = -1; }
      }
      s.length = end;
      st.last_row.push_back(st.tokens.size() - 1);
      pages.insert(pages.end(), s.pages.begin(), s.pages.end());
      indptr.push_back(int(pages.size()));
      last_len.push_back(s.length - int(s.pages.size() - 1) * page_size_);
    }
    // packKvTable: [B, indptr[0..B], lastLen[0..B-1], pages...]
    st.table.push_back(int(items.size()));
    st.table.insert(st.table.end(), indptr.begin(), indptr.end());
    st.table.insert(st.table.end(), last_len.begin(), last_len.end());
    st.table.insert(st.table.end(), pages.begin(), pages.end());
    return st;
  }

  /** Slots holding live tokens (no sharing: each sequence's own). */
  size_t slots_used() const {
    size_t n = 0;
    for (const auto& [id, s] : seqs_) n += size_t(window_ >= 0 ? std::min(s.length, window_) : s.length);
    return n;
  }

 private:
  struct Sequence { std::vector<int> pages; int length = 0; };
  std::map<int, Sequence> seqs_;
  int next_ = 0;
  int page_size_, window_, max_length_;
};
