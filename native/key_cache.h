// The decoder's cache of object keys. Free of Node-API, as the rest of the parsing core
// (term_parser.h), so that the fuzz targets build it without Node.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace erlpeb {

// Object keys met before, across decodes: key bytes (UTF-8) -> slot. buildTerm keeps slot -> the
// key as an internalized JS string, set by dop::kKeyNew and used by dop::kKey: the same field
// names come back in every session, and V8 stores a property much faster under an internalized key
// than under a fresh string it must look up first. Bounded: short keys only, and when full it
// starts over (slots are then reassigned by kKeyNew before any kKey uses them).
class KeyCache {
 public:
  static constexpr uint32_t kMaxKeys = 2048;
  static constexpr uint32_t kTableSize = 4096;  // a power of two, at least 2 x kMaxKeys
  static constexpr size_t kMaxKeyBytes = 64;

  struct Mark {
    size_t size;
    uint64_t clears;
  };

  KeyCache() : table_(kTableSize, -1) {}

  static uint32_t Hash(std::string_view k) {
    uint32_t h = 2166136261u;  // FNV-1a
    for (unsigned char c : k) h = (h ^ c) * 16777619u;
    return h;
  }

  int32_t Find(std::string_view k, uint32_t h) const {
    for (uint32_t i = h & (kTableSize - 1);; i = (i + 1) & (kTableSize - 1)) {
      int32_t slot = table_[i];
      if (slot < 0) return -1;
      if (hashes_[slot] == h && keys_[slot] == k) return slot;
    }
  }

  // Adds k (not present) and returns its slot.
  uint32_t Add(std::string_view k, uint32_t h) {
    if (keys_.size() >= kMaxKeys) Clear();
    uint32_t slot = static_cast<uint32_t>(keys_.size());
    keys_.emplace_back(k);
    hashes_.push_back(h);
    Place(slot);
    return slot;
  }

  Mark mark() const { return Mark{keys_.size(), clears_}; }

  // Forgets the keys added since `m` (their kKeyNew ops never reached buildTerm).
  void Restore(Mark m) {
    if (m.clears != clears_) {
      Clear();
      return;
    }
    if (m.size == keys_.size()) return;
    keys_.resize(m.size);
    hashes_.resize(m.size);
    std::fill(table_.begin(), table_.end(), -1);
    for (uint32_t slot = 0; slot < keys_.size(); slot++) Place(slot);
  }

  void Clear() {
    keys_.clear();
    hashes_.clear();
    std::fill(table_.begin(), table_.end(), -1);
    clears_++;
  }

 private:
  void Place(uint32_t slot) {
    uint32_t i = hashes_[slot] & (kTableSize - 1);
    while (table_[i] >= 0) i = (i + 1) & (kTableSize - 1);
    table_[i] = static_cast<int32_t>(slot);
  }

  std::vector<int32_t> table_;
  std::vector<std::string> keys_;
  std::vector<uint32_t> hashes_;
  uint64_t clears_ = 0;
};

}  // namespace erlpeb
