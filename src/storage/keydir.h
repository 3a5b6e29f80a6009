// Keydir: the in-memory index of a Bitcask engine, key -> newest record.
//
// Every live key is in memory with the location of its newest record, so a
// Get costs one lookup plus one read. Two access paths share one copy of each
// key:
//  - point lookups (Find/Put/Erase) through a hash table, and
//  - ordered scans (ScanFrom) through an ordered index that is brought up to
//    date lazily: new keys wait in a pending list until Order() sorts them in,
//    so writes do not pay for ordering unless someone scans.
// See keydir.cc for the memory layout and the measured cost per key.
//
// Not thread-safe: the engine guards it (shared lock for Find and ScanFrom,
// exclusive for everything else).
#ifndef RKV_STORAGE_KEYDIR_H_
#define RKV_STORAGE_KEYDIR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace rkv::storage {

// Where a record lives: 12 bytes.
struct Location {
  uint32_t file = 0;    // handle of the data file in the engine's file table
  uint32_t offset = 0;  // offset of the record's first byte in that file
  uint32_t size = 0;    // record size in bytes, plus kExpiryFlag if it has an expiry

  static constexpr uint32_t kExpiryFlag = 1u << 31;
  uint32_t record_size() const { return size & ~kExpiryFlag; }
  bool has_expiry() const { return (size & kExpiryFlag) != 0; }

  friend bool operator==(const Location&, const Location&) = default;
};
static_assert(sizeof(Location) == 12);

class Keydir {
 public:
  Keydir();
  ~Keydir();
  Keydir(const Keydir&) = delete;
  Keydir& operator=(const Keydir&) = delete;

  size_t size() const;

  // The location of `key`, or nullptr. The pointer is valid until the next
  // call of a non-const method.
  const Location* Find(std::string_view key) const;

  // Inserts `key` or overwrites its location. Returns the previous location
  // if the key was present. REQUIRES: 1 <= key.size() <= 65535.
  std::optional<Location> Put(std::string_view key, const Location& location);

  // Removes `key`; returns its location if it was present.
  std::optional<Location> Erase(std::string_view key);

  // Sets the location of `key` to `location` only if it is now `expected`
  // (merge uses this to move a record that no writer replaced meanwhile).
  bool ReplaceIf(std::string_view key, const Location& expected, const Location& location);

  // True while keys inserted since the last Order() are not yet in the
  // ordered index.
  bool NeedsOrdering() const;
  // Brings the ordered index up to date.
  void Order();

  // Calls fn(key, location) for each key >= start in byte order until fn
  // returns false. REQUIRES: !NeedsOrdering().
  void ScanFrom(std::string_view start,
                const std::function<bool(std::string_view, const Location&)>& fn) const;

  // Calls fn(key, location) for every key in no particular order.
  void ForEach(const std::function<void(std::string_view, const Location&)>& fn) const;

  // Bytes of memory held (entries, hash table, ordered index, pending list).
  size_t MemoryBytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rkv::storage

#endif  // RKV_STORAGE_KEYDIR_H_
