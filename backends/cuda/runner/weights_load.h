// `--weights FILE`: fills every param buffer from a GGUF file or a Hugging Face safetensors
// checkpoint, as runtime/runner/buffers.ts does with runtime/weights' readers. model.h's
// PARAM_WEIGHTS row of each buffer says which tensor(s) it binds, the param's shape, the
// columns a part holds, and its device type; here each is found and checked (present, shape,
// a conversion from the file's type: weights_convert.h) before any data is read, then read
// a few MiB of rows at a time (never the whole tensor or file), converted and copied to the
// device at its offset. A part of a split param reads only its columns' rows; HF q/k rows
// are read in GGUF's RoPE order (hfLlama.ts ropePermuteRows); HF experts stack in order.
#pragma once
#include "weights_convert.h"
#include "weights_gguf.h"
#include "weights_safetensors.h"
#include "program_device.h"

namespace load_detail {

inline std::vector<uint64_t> trim_ones(std::vector<uint64_t> d) {
  while (d.size() > 1 && d.back() == 1) d.pop_back();
  return d;
}

inline std::string dims_text(const std::vector<uint64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); i++) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

/** A param buffer bound to its tensors, checked. */
struct Bound {
  const model::ParamWeights* p;
  std::vector<const FileTensor*> pieces;
  std::vector<ConvertFn> convert;
  /** Weights per row (dim 0), rows per piece, and the rows of the whole param this buffer holds. */
  uint64_t K, piece_rows, first_row, rows;
  /** Heads of the RoPE row reordering (HF checkpoints only), 0 for none. */
  unsigned permute_heads;
};

inline Bound bind(const WeightContainer& c, const model::ParamWeights& p) {
  const model::DeviceType& dt = model::DEVICE_TYPES[p.device_type];
  const bool gguf = c.format == "GGUF";
  const std::vector<uint64_t> shape(p.shape, p.shape + p.ndims);
  const char* first_name = model::NAMES[gguf ? p.gguf_first : p.hf_first];
  Bound b{&p, {}, {}, shape[0], 0, 0, 0, 0};
  if (gguf) {
    for (unsigned i = 0; i < p.gguf_count && b.pieces.empty(); i++) if (const FileTensor* t = c.find(model::NAMES[p.gguf_first + i])) b.pieces.push_back(t);
    if (b.pieces.empty()) throw WeightError(c.path, c.missing_at, "missing: param buffer " + std::to_string(p.buffer) + " " + dims_text(shape) + " needs it, and none of the file's " + std::to_string(c.tensors.size()) + " tensors has that name", first_name);
  } else {
    if (p.hf_count == 0) throw WeightError(c.path, c.missing_at, "param buffer " + std::to_string(p.buffer) + " (GGUF name " + printable(model::NAMES[p.gguf_first]) + ") has no Hugging Face llama name");
    for (unsigned i = 0; i < p.hf_count; i++) {
      const FileTensor* t = c.find(model::NAMES[p.hf_first + i]);
      if (!t) throw WeightError(c.path, c.missing_at, "missing: param buffer " + std::to_string(p.buffer) + " " + dims_text(shape) + " needs it, and none of the checkpoint's " + std::to_string(c.tensors.size()) + " tensors has that name", model::NAMES[p.hf_first + i]);
      b.pieces.push_back(t);
    }
  }
  // Stacked pieces (HF experts) split the last axis; each is the param with a last dim of 1.
  std::vector<uint64_t> piece = shape;
  const uint64_t n = b.pieces.size();
  if (piece.back() % n != 0) throw WeightError(c.path, c.missing_at, "param buffer " + std::to_string(p.buffer) + " " + dims_text(shape) + " does not split into its " + std::to_string(n) + " tensors", first_name);
  piece.back() /= n;
  uint64_t total = 1;
  for (uint64_t d : shape) total *= d;
  for (const FileTensor* t : b.pieces) {
    if (trim_ones(t->dims) != trim_ones(piece)) throw WeightError(t->file->path, t->info_offset, "has dims " + dims_text(t->dims) + " (ggml order, [in, out]), but param buffer " + std::to_string(p.buffer) + " is " + dims_text(shape) + (n > 1 ? " over " + std::to_string(n) + " tensors" : ""), t->name);
    const ConvertFn fn = find_conversion(t->type_name, dt);
    if (!fn) throw WeightError(t->file->path, t->info_offset, "type " + printable(t->type_name) + " cannot fill a param the Program keeps as " + dt.name + " (loadable: " + loadable_into(dt) + "; compile with this file's weight types: infer compile --weights FILE)", t->name);
    if (b.K % t->block_elements != 0 || b.K % dt.block_elements != 0) throw WeightError(t->file->path, t->info_offset, "rows of " + std::to_string(b.K) + " weights are not whole blocks of " + t->type_name + " and " + dt.name, t->name);
    b.convert.push_back(fn);
  }
  // A part holds columns of the last axis: rows first_col * per_col .. (a 2-D param's rows are its columns).
  const uint64_t rows = total / b.K, per_col = shape.size() > 1 ? rows / shape.back() : rows;
  b.piece_rows = rows / n;
  b.first_row = shape.size() > 1 ? p.first_col * per_col : 0;
  b.rows = shape.size() > 1 ? p.cols * per_col : rows;
  b.permute_heads = gguf ? 0 : p.permute_heads;
  if (b.permute_heads && b.piece_rows % (2ull * p.permute_heads) != 0) throw WeightError(b.pieces[0]->file->path, b.pieces[0]->info_offset, "has " + std::to_string(b.piece_rows) + " rows, which do not split into " + std::to_string(b.permute_heads) + " heads of an even size for the RoPE reordering", b.pieces[0]->name);
  return b;
}

/** The file row holding param row r of a piece: HF's rotate-half order for q/k (s * half + i -> 2i + s within each head). */
inline uint64_t source_row(const Bound& b, uint64_t r) {
  if (!b.permute_heads) return r;
  const uint64_t hd = b.piece_rows / b.permute_heads, j = r % hd;
  return r - j + (j % 2) * (hd / 2) + j / 2;
}

inline void load(ProgramDevice& dev, const Bound& b) {
  const model::DeviceType& dt = model::DEVICE_TYPES[b.p->device_type];
  const uint64_t blocks = b.rows * b.K / dt.block_elements;
  const uint64_t body_bytes = dt.blocks ? uint64_t(dt.body_words) * 4 : dt.block_bytes;
  const uint64_t want = dt.blocks ? blocks * body_bytes + (blocks * dt.halves + 1) / 2 * 4 : b.rows * b.K * dt.block_bytes;
  if (want > dev.size(b.p->buffer)) throw std::runtime_error("param buffer " + std::to_string(b.p->buffer) + " has " + std::to_string(dev.size(b.p->buffer)) + " bytes, its weights " + std::to_string(want) + " (a generator bug)");
  std::vector<uint8_t> src;
  Staged st;
  for (uint64_t r = 0; r < b.rows;) {
    const uint64_t row = b.first_row + r, piece = row / b.piece_rows, at = source_row(b, row % b.piece_rows);
    const FileTensor& t = *b.pieces[piece];
    const uint64_t row_bytes = b.K / t.block_elements * t.block_bytes;
    const uint64_t most = std::max<uint64_t>(1, (8u << 20) / std::max<uint64_t>(1, row_bytes));
    uint64_t n = 1;
    while (r + n < b.rows && n < most && (row + n) / b.piece_rows == piece && source_row(b, (row + n) % b.piece_rows) == at + n) n++;
    src.resize(n * row_bytes);
    const uint64_t from = t.offset + at * row_bytes;
    t.file->read(from, src.data(), src.size(), "tensor data", t.name);
    try {
      b.convert[piece](src.data(), n * b.K, dt, st);
    } catch (const std::runtime_error& e) {
      throw WeightError(t.file->path, from, e.what(), t.name);
    }
    const uint64_t e0 = r * b.K;
    if (dt.blocks) {
      const uint64_t b0 = e0 / dt.block_elements;
      dev.write(b.p->buffer, b0 * body_bytes, st.main.data(), st.main.size());
      dev.write(b.p->buffer, blocks * body_bytes + b0 * 2 * dt.halves, st.halves.data(), st.halves.size());
    } else {
      dev.write(b.p->buffer, e0 * dt.block_bytes, st.main.data(), st.main.size());
    }
    r += n;
  }
}

}  // namespace load_detail

/** Parses FILE (GGUF by its magic; else safetensors: a file, an index, a directory). */
inline void open_weights(const std::string& path, WeightContainer& c) {
  using safetensors_detail::ends_with;
  if (safetensors_detail::is_directory(path) || ends_with(path, ".json")) return read_safetensors(path, c);
  unsigned char head[9] = {};
  {
    WeightFile f(path);
    if (f.size >= 9) f.read(0, head, 9, "the first bytes");
    else if (f.size >= 4) f.read(0, head, 4, "the magic");
  }
  if (std::memcmp(head, "GGUF", 4) == 0 || ends_with(path, ".gguf")) return read_gguf(path, c);
  if (ends_with(path, ".safetensors") || head[8] == '{') return read_safetensors(path, c);
  throw WeightError(path, 0, "not a GGUF file (no 'GGUF' magic) and not a safetensors file (name or header); the runner reads .gguf and .safetensors weights");
}

/** Checks every param buffer against FILE, then loads them one by one. */
inline void load_weight_file(ProgramDevice& dev, const std::string& path) {
  WeightContainer c;
  open_weights(path, c);
  std::vector<load_detail::Bound> bound;
  for (uint64_t i = 0; i < model::PARAM_WEIGHT_COUNT; i++) bound.push_back(load_detail::bind(c, model::PARAM_WEIGHTS[i]));
  for (const load_detail::Bound& b : bound) load_detail::load(dev, b);
}
