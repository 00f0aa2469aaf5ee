// safetensors checkpoints for the runner, as runtime/weights/safetensors.ts and
// safetensorsShards.ts read them: an 8-byte little-endian header length, a JSON header
// ({ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {...} }), then
// the data; or shards listed by model.safetensors.index.json ({ "weight_map": { tensor:
// shard file } }), or a directory holding either. A small JSON reader (depth and size
// bounded) parses both; every entry is checked (dtype known to model.h's SAFETENSORS_TYPES,
// sizes agree, inside the file, no overlaps) before any tensor is read.
#pragma once
#include "weights_file.h"

/** A JSON value (numbers kept as their text, so integers stay exact). */
struct Json {
  enum Kind { NUL, BOOL, NUMBER, STRING, ARRAY, OBJECT } kind = NUL;
  std::string text;
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;
  uint64_t at = 0;
};

/** Parses JSON text; `base` is the byte offset of text[0] in its file, for messages. */
class JsonReader {
 public:
  JsonReader(const std::string& file, const std::string& text, uint64_t base) : file_(file), s_(text), base_(base) {}
  Json parse() {
    Json v = value(0);
    ws();
    if (i_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw WeightError(file_, base_ + i_, "bad header JSON: " + what); }
  void ws() { while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) i_++; }
  bool eat(char c) { ws(); if (i_ < s_.size() && s_[i_] == c) { i_++; return true; } return false; }
  Json value(int depth) {
    if (depth > 64) fail("nested more than 64 deep");
    ws();
    if (i_ >= s_.size()) fail("the text ends where a value should be");
    Json v;
    v.at = base_ + i_;
    const char c = s_[i_];
    if (c == '{') {
      v.kind = Json::OBJECT;
      i_++;
      if (eat('}')) return v;
      do {
        ws();
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string key");
        std::string key = string();
        if (!eat(':')) fail("expected ':' after a key");
        v.members.emplace_back(std::move(key), value(depth + 1));
      } while (eat(','));
      if (!eat('}')) fail("expected ',' or '}' in an object");
    } else if (c == '[') {
      v.kind = Json::ARRAY;
      i_++;
      if (eat(']')) return v;
      do v.items.push_back(value(depth + 1)); while (eat(','));
      if (!eat(']')) fail("expected ',' or ']' in an array");
    } else if (c == '"') {
      v.kind = Json::STRING;
      v.text = string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = Json::NUMBER;
      const size_t from = i_;
      while (i_ < s_.size() && std::strchr("+-0123456789.eE", s_[i_])) i_++;
      v.text = s_.substr(from, i_ - from);
    } else if (s_.compare(i_, 4, "true") == 0 || s_.compare(i_, 4, "null") == 0) {
      v.kind = c == 't' ? Json::BOOL : Json::NUL;
      i_ += 4;
    } else if (s_.compare(i_, 5, "false") == 0) {
      v.kind = Json::BOOL;
      i_ += 5;
    } else {
      fail("unexpected character");
    }
    return v;
  }
  /** A string's bytes (\uXXXX escapes kept as UTF-8 for the BMP; names are compared byte for byte). */
  std::string string() {
    std::string out;
    i_++;
    for (;;) {
      if (i_ >= s_.size()) fail("a string is not closed");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 32) fail("a control character inside a string");
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) fail("a string is not closed");
      const char e = s_[i_++];
      const char* simple = std::strchr("\"\\/bfnrt", e);
      if (simple && e) { out += "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]; continue; }
      if (e != 'u' || i_ + 4 > s_.size()) fail("a bad escape in a string");
      unsigned cp = 0;
      for (int k = 0; k < 4; k++) {
        const char h = s_[i_++];
        cp = cp * 16 + unsigned(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
        if (cp > 0xffff) fail("a bad \\u escape in a string");
      }
      if (cp < 0x80) out += char(cp);
      else if (cp < 0x800) { out += char(0xc0 | (cp >> 6)); out += char(0x80 | (cp & 63)); }
      else { out += char(0xe0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 63)); out += char(0x80 | (cp & 63)); }
    }
  }
  const std::string& file_;
  const std::string& s_;
  const uint64_t base_;
  size_t i_ = 0;
};

namespace safetensors_detail {

/** A non-negative integer that fits 2^53 (as the TypeScript reader accepts), or fail. */
inline uint64_t integer(const std::string& path, const Json& v, const std::string& what, const std::string& tensor) {
  if (v.kind != Json::NUMBER || v.text.empty() || v.text.size() > 16 || v.text.find_first_not_of("0123456789") != std::string::npos) throw WeightError(path, v.at, "bad header: " + what + " must be a non-negative integer", tensor);
  const uint64_t n = std::stoull(v.text);
  if (n > (1ull << 53)) throw WeightError(path, v.at, "bad header: " + what + " is too large", tensor);
  return n;
}

/** Reads one safetensors file's header into `out`. */
inline void read_file(const std::string& path, WeightContainer& out) {
  out.files.push_back(std::make_unique<WeightFile>(path));
  const WeightFile& f = *out.files.back();
  if (f.size < 8) throw WeightError(path, 0, "truncated: the file has " + std::to_string(f.size) + " bytes; a safetensors file starts with an 8-byte header length");
  uint64_t n = 0;
  f.read(0, &n, 8, "the header length");
  if (n > 100000000ull) throw WeightError(path, 0, "the header length " + std::to_string(n) + " is over the format's limit of 100000000 bytes (not a safetensors file?)");
  if (n < 2) throw WeightError(path, 0, "the header length " + std::to_string(n) + " is too small for a JSON object");
  if (8 + n > f.size) throw WeightError(path, 0, "truncated: the header length says " + std::to_string(n) + " bytes of JSON follow, but the file has only " + std::to_string(f.size - 8) + " more");
  std::string text(size_t(n), '\0');
  f.read(8, &text[0], n, "the header");
  const Json h = JsonReader(path, text, 8).parse();
  if (h.kind != Json::OBJECT) throw WeightError(path, 8, "bad header: the JSON is not an object of tensors");
  const uint64_t data = 8 + n, data_bytes = f.size - data;
  const size_t first = out.tensors.size();
  for (const auto& [name, e] : h.members) {
    if (name == "__metadata__") continue;
    if (e.kind != Json::OBJECT) throw WeightError(path, e.at, "bad header: the entry is not an object", name);
    const Json *dtype = nullptr, *shape = nullptr, *offs = nullptr;
    for (const auto& [k, v] : e.members) {
      if (k == "dtype") dtype = &v;
      else if (k == "shape") shape = &v;
      else if (k == "data_offsets") offs = &v;
    }
    if (!dtype || dtype->kind != Json::STRING) throw WeightError(path, e.at, "bad header: no dtype string", name);
    const model::SafetensorsType* st = nullptr;
    for (unsigned k = 0; k < model::SAFETENSORS_TYPE_COUNT; k++) if (dtype->text == model::SAFETENSORS_TYPES[k].name) st = &model::SAFETENSORS_TYPES[k];
    if (!st) throw WeightError(path, dtype->at, "unknown dtype \"" + printable(dtype->text, 20) + "\"", name);
    if (!shape || shape->kind != Json::ARRAY || shape->items.size() > 4) throw WeightError(path, e.at, "bad header: shape must be an array of at most 4 non-negative integers", name);
    if (!offs || offs->kind != Json::ARRAY || offs->items.size() != 2) throw WeightError(path, e.at, "bad header: data_offsets must be [begin, end]", name);
    FileTensor t;
    t.file = &f;
    t.name = name;
    t.type_name = st->as ? st->as : st->name;
    t.type = st->as ? file_type_named(st->as) : nullptr;
    t.block_bytes = st->bytes;
    t.elements = 1;
    for (auto d = shape->items.rbegin(); d != shape->items.rend(); ++d) {
      const uint64_t v = integer(path, *d, "a shape dimension", name);
      if (v != 0 && t.elements > (1ull << 53) / v) throw WeightError(path, d->at, "bad header: the shape has too many elements", name);
      t.dims.push_back(v);
      t.elements *= v;
    }
    if (t.dims.empty()) t.dims.push_back(1);
    const uint64_t begin = integer(path, offs->items[0], "data_offsets[0]", name), end = integer(path, offs->items[1], "data_offsets[1]", name);
    if (begin > end) throw WeightError(path, offs->at, "bad header: data_offsets must be [begin, end] with begin <= end", name);
    t.bytes = t.elements * st->bytes;
    if (end - begin != t.bytes) throw WeightError(path, data + begin, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] hold " + std::to_string(end - begin) + " bytes, but the shape of " + st->name + " needs " + std::to_string(t.bytes), name);
    if (end > data_bytes) throw WeightError(path, data + begin, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] run past the end of the file (its data section has " + std::to_string(data_bytes) + " bytes)", name);
    t.offset = data + begin;
    t.info_offset = e.at;
    out.tensors.push_back(std::move(t));
  }
  std::vector<const FileTensor*> sorted;
  for (size_t i = first; i < out.tensors.size(); i++) if (out.tensors[i].bytes > 0) sorted.push_back(&out.tensors[i]);
  std::sort(sorted.begin(), sorted.end(), [](const FileTensor* a, const FileTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < sorted.size(); i++) {
    if (sorted[i - 1]->offset + sorted[i - 1]->bytes > sorted[i]->offset) throw WeightError(path, sorted[i]->offset, "data overlaps tensor " + printable(sorted[i - 1]->name), sorted[i]->name);
  }
}

inline bool is_directory(const std::string& p) { struct stat st; return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode); }
inline bool exists(const std::string& p) { struct stat st; return ::stat(p.c_str(), &st) == 0; }
inline bool ends_with(const std::string& s, const std::string& e) { return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0; }

}  // namespace safetensors_detail

/** A single .safetensors file, a model.safetensors.index.json over shards, or a directory holding either. */
inline void read_safetensors(const std::string& path, WeightContainer& out) {
  using namespace safetensors_detail;
  out.path = path;
  out.format = "safetensors";
  out.missing_at = 8;
  std::string index = path;
  if (is_directory(path)) {
    if (exists(path + "/model.safetensors.index.json")) index = path + "/model.safetensors.index.json";
    else if (exists(path + "/model.safetensors")) { read_file(path + "/model.safetensors", out); out.index(); return; }
    else throw WeightError(path, 0, "a directory without model.safetensors.index.json or model.safetensors");
  }
  if (!ends_with(index, ".json")) { read_file(path, out); out.index(); return; }
  WeightFile f(index);
  if (f.size > 100000000ull) throw WeightError(index, 0, "an index of " + std::to_string(f.size) + " bytes is over 100000000 (not a shard index?)");
  std::string text(size_t(f.size), '\0');
  f.read(0, &text[0], f.size, "the index");
  const Json j = JsonReader(index, text, 0).parse();
  const Json* map = nullptr;
  if (j.kind == Json::OBJECT) for (const auto& [k, v] : j.members) if (k == "weight_map") map = &v;
  if (!map || map->kind != Json::OBJECT) throw WeightError(index, 0, "no \"weight_map\" object (a shard index maps each tensor to its file)");
  const size_t slash = index.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : index.substr(0, slash + 1);
  std::map<std::string, std::vector<std::string>> shards;
  for (const auto& [tensor, file] : map->members) {
    if (file.kind != Json::STRING || file.text.empty() || file.text.find('/') != std::string::npos || file.text == "." || file.text == "..") throw WeightError(index, file.at, "the weight_map entry must be a plain file name beside the index", tensor);
    shards[file.text].push_back(tensor);
  }
  for (const auto& [file, listed] : shards) {
    const size_t first = out.tensors.size();
    read_file(dir + file, out);
    for (const std::string& t : listed) {
      bool found = false;
      for (size_t i = first; i < out.tensors.size() && !found; i++) found = out.tensors[i].name == t;
      if (!found) throw WeightError(index, 0, "the index puts tensor " + printable(t) + " in " + printable(file) + ", which does not have it", t);
    }
  }
  out.index();
  for (const FileTensor& t : out.tensors) {
    if (out.find(t.name) != &t) throw WeightError(t.file->path, t.offset, "is also in another shard: a tensor may be in one shard only", t.name);
  }
}
