// GGUF files for the runner (v2 and v3), as runtime/weights/ggufFormat.ts reads them:
//   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x (string key, u32 value_type, value)       (read past; only general.alignment is kept)
//   tensor_count x (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset)
//   padding to general.alignment (default 32), then the data section.
// Every count is checked against the bytes left before it is used, every tensor's type
// against model.h's FILE_TYPES (the GGUF type ids, emitted from ggufTypes.ts), and every
// tensor's bytes to lie inside the file without overlapping another's.
#pragma once
#include "weights_file.h"

namespace gguf_detail {

/** Bytes of a metadata value type (strings and arrays: their length prefix), by on-disk id; 0: unknown. */
inline uint64_t value_bytes(uint32_t type) {
  static const uint64_t BYTES[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8};
  return type < 13 ? BYTES[type] : 0;
}
constexpr uint32_t BOOL = 7, STRING = 8, ARRAY = 9, U32 = 4;

inline uint32_t value_type(HeaderCursor& c) {
  const uint64_t at = c.pos;
  const uint32_t t = c.get<uint32_t>("the value type");
  if (!value_bytes(t)) c.fail(c.what + ": unknown metadata value type " + std::to_string(t), at);
  return t;
}

/** Reads past one value, checking it (bools 0 or 1, lengths within the file, arrays at most 8 deep). */
inline void skip_value(HeaderCursor& c, uint32_t type, int depth) {
  if (type == STRING) { c.skip(c.count("a string length", 1), "a string"); return; }
  if (type == BOOL) {
    const uint64_t at = c.pos;
    if (c.get<uint8_t>("a bool") > 1) c.fail(c.what + ": a bool must be 0 or 1", at);
    return;
  }
  if (type != ARRAY) { c.skip(value_bytes(type), "a value"); return; }
  if (depth >= 8) c.fail(c.what + ": arrays nested more than 8 deep", c.pos);
  const uint32_t item = value_type(c);
  const uint64_t n = c.count("the array length", value_bytes(item));
  if (item == STRING || item == BOOL || item == ARRAY) {
    for (uint64_t i = 0; i < n; i++) skip_value(c, item, depth + 1);
  } else {
    c.skip(n * value_bytes(item), "the array's values");
  }
}

}  // namespace gguf_detail

/** Parses a GGUF file's header into `out` (format "GGUF"); throws WeightError on any defect. */
inline void read_gguf(const std::string& path, WeightContainer& out) {
  using namespace gguf_detail;
  out.path = path;
  out.format = "GGUF";
  out.files.push_back(std::make_unique<WeightFile>(path));
  const WeightFile& f = *out.files.back();
  HeaderCursor c(f);
  const uint32_t magic = c.get<uint32_t>("the magic");
  if (magic != 0x46554747u) c.fail("wrong magic: a GGUF file starts with 'GGUF'", 0);
  const uint32_t version = c.get<uint32_t>("the version");
  if (version != 2 && version != 3) c.fail("unsupported GGUF version " + std::to_string(version) + " (versions 2 and 3 are supported)", 4);
  const uint64_t tensor_count = c.count("the tensor count", 24);
  const uint64_t kv_count = c.count("the metadata count", 13);
  uint64_t alignment = 32;
  for (uint64_t i = 0; i < kv_count; i++) {
    c.what = "metadata entry " + std::to_string(i);
    const std::string key = c.string("its key");
    c.what = "metadata '" + printable(key) + "'";
    const uint64_t at = c.pos;
    const uint32_t type = value_type(c);
    if (key == "general.alignment") {
      if (type != U32) c.fail("general.alignment must be a power-of-two u32", at);
      const uint32_t a = c.get<uint32_t>("the alignment");
      if (a == 0 || (a & (a - 1)) != 0) c.fail("general.alignment must be a power-of-two u32, got " + std::to_string(a), at);
      alignment = a;
    } else {
      skip_value(c, type, 0);
    }
  }
  for (uint64_t i = 0; i < tensor_count; i++) {
    FileTensor t;
    t.file = &f;
    t.info_offset = c.pos;
    c.what = "tensor info " + std::to_string(i);
    t.name = c.string("its name");
    c.what = "tensor info " + std::to_string(i) + " (" + printable(t.name) + ")";
    const uint32_t nd = c.get<uint32_t>("n_dims");
    if (nd < 1 || nd > 4) c.fail("has " + std::to_string(nd) + " dimensions (1 to 4 are allowed)", c.pos - 4, t.name);
    t.elements = 1;
    for (uint32_t d = 0; d < nd; d++) {
      const uint64_t v = c.get<uint64_t>("a dim");
      // No tensor has more elements than the file has bits (which also rules out overflow).
      if (v != 0 && t.elements > f.size * 8 / v) c.fail("dims hold more elements than the file could store", c.pos - 8, t.name);
      t.elements *= v;
      t.dims.push_back(v);
    }
    const uint64_t type_at = c.pos;
    const uint32_t id = c.get<uint32_t>("the tensor type");
    for (unsigned k = 0; k < model::FILE_TYPE_COUNT; k++) if (model::FILE_TYPES[k].id == id) t.type = &model::FILE_TYPES[k];
    if (!t.type) c.fail("unknown tensor type " + std::to_string(id), type_at, t.name);
    t.type_name = t.type->name;
    t.block_elements = t.type->block_elements;
    t.block_bytes = t.type->block_bytes;
    if (t.dims[0] % t.block_elements != 0) c.fail(t.type_name + " packs " + std::to_string(t.block_elements) + " values per block, but dim 0 is " + std::to_string(t.dims[0]), type_at, t.name);
    t.bytes = t.elements / t.block_elements * t.block_bytes;
    const uint64_t offset_at = c.pos;
    t.offset = c.get<uint64_t>("the data offset");
    if (t.offset > f.size) c.fail("data offset " + std::to_string(t.offset) + " is past the end of the file (size " + std::to_string(f.size) + ")", offset_at, t.name);
    if (t.offset % alignment != 0) c.fail("data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(alignment), offset_at, t.name);
    for (const FileTensor& o : out.tensors) if (o.name == t.name) c.fail("duplicate tensor name", t.info_offset, t.name);
    out.tensors.push_back(std::move(t));
  }
  const uint64_t data = (c.pos + alignment - 1) / alignment * alignment;
  if (tensor_count > 0 && data > f.size) c.fail("truncated: the data section should start at byte " + std::to_string(data) + ", but the file ends at byte " + std::to_string(f.size), c.pos);
  out.missing_at = out.tensors.empty() ? data : out.tensors[0].info_offset;
  for (FileTensor& t : out.tensors) {
    t.offset += data;
    if (t.offset > f.size || t.bytes > f.size - t.offset) c.fail("data at bytes " + std::to_string(t.offset) + ".." + std::to_string(t.offset + t.bytes) + " runs past the end of the file (size " + std::to_string(f.size) + "): the file is truncated or the offset is wrong", t.offset, t.name);
  }
  std::vector<const FileTensor*> sorted;
  for (const FileTensor& t : out.tensors) if (t.bytes > 0) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const FileTensor* a, const FileTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < sorted.size(); i++) {
    if (sorted[i - 1]->offset + sorted[i - 1]->bytes > sorted[i]->offset) c.fail("data overlaps tensor " + printable(sorted[i - 1]->name), sorted[i]->offset, sorted[i]->name);
  }
  out.index();
}
