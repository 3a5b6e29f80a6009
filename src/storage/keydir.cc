// Keydir implementation.
//
// Layout
// ------
// Entries live in an arena of 8-byte units, carved from 2 MiB chunks (the
// first chunk starts at 4 KiB and doubles up to 2 MiB, so a small keydir stays
// small). An entry is
//
//   [Location 12 B][key length u16][state u8][key bytes], 8-byte aligned
//
// so a 16-byte key takes 32 bytes. An entry is named by a 32-bit index
// (chunk << 18 | unit within the chunk), not by a pointer: both indexes hold
// 4-byte values, which halves their size, and the arena may move the first
// chunk while it grows. The arena addresses at most 2^32 units (32 GiB).
// Freed entries go on a free list per size class (number of units) and are
// reused for keys of the same class; the unused tail of a full chunk goes on
// the free list of its class too.
//
// Two indexes share each entry:
//  - point index: absl::flat_hash_set<uint32_t> whose hash and equality
//    dereference the entry and look at the key bytes; lookups are
//    heterogeneous by string_view, so Find does not allocate. 5 bytes a slot.
//  - ordered index: absl::btree_set<uint64_t> whose values are
//    (first 4 key bytes, big-endian, zero-padded) << 32 | entry index. The
//    prefix decides most comparisons without touching the entry; ties fall
//    back to comparing the full keys. New keys are appended to a pending list
//    and sorted into the btree in batches by Order() (by Put itself once the
//    list holds kMaxPending entries). A pending key that is erased is marked
//    dead and freed when Order() drains the list.
//
// The state byte of every entry (free, pending, dead-pending, ordered) lets
// the arena and the indexes check one another.
//
// Order() sorts the batch and, when consecutive batch values are expected to
// land close together in the btree (size <= batch * kWalkGap), walks the
// btree from one insertion point to the next instead of descending from the
// root for each value.
//
// Memory per key (16-byte keys): entry 32 B, hash slot 5 B x capacity/size
// (capacity is a power of two, load <= 7/8: 10.5 B at 1M, 8.4 B at 10M),
// btree 8 B x 1/fill plus node headers (~12 B), pending list <= 512 KiB.
//
// Measured with bench/keydir_bench.cc (raft-kv-keydir-bench, RelWithDebInfo,
// 16-byte random keys, random-order lookups) on the 2-core AMD EPYC VM while
// other jobs kept it oversubscribed (load average 6-9): wall ns / CPU ns per
// operation, with absl::flat_hash_map<array<uint64,2>, Location> measured in
// the same run for scale (64 ns at 1M / 90 ns at 10M on a quiet machine).
// Wall times under that load are up to 3x the CPU times; quote CPU times,
// and re-measure on a quiet machine.
//
//                            1M keys          10M keys
//   Find hit                 232 / 151        429 / 216
//   Find miss                 82 / 52         178 / 90
//   reference map Find hit   246 / 113        440 / 184
//   Put new (incl. Order)   1381 / 386       1311 / 615
//   Put overwrite            395 / 205        402 / 259
//   ScanFrom, 100 keys      6833 / 4073      9646 / 6109
//   Erase + Put again       2461 / 1103      3079 / 2047
//   RSS delta per key        58.5 B           47.3 B   (overhead 42.5 / 31.3 B)
//   MemoryBytes() per key    57.1 B           51.2 B   (overhead 41.1 / 35.2 B)
//
// Put new costs, by profile at 10M: the hash-set probe ~30%, ordering
// (sort + btree insertion) ~40%, hash-set growth (rehashing dereferences
// every entry) ~14%, page faults ~7%.
#include "storage/keydir.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "common/assert.h"

namespace rkv::storage {
namespace {

constexpr size_t kUnit = 8;
constexpr size_t kHeaderBytes = 15;  // Location (12) + key length (2) + state (1)
constexpr size_t kMaxKeySize = 65535;
constexpr uint32_t kChunkShift = 18;  // 2^18 units = 2 MiB a chunk
constexpr uint32_t kChunkUnits = 1u << kChunkShift;
constexpr size_t kChunkBytes = size_t{kChunkUnits} * kUnit;
constexpr uint32_t kFirstChunkUnits = 512;                            // 4 KiB
constexpr size_t kMaxChunks = (size_t{1} << (32 - kChunkShift)) - 1;  // keeps kNil unused
constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kMinEntryUnits = 2;  // the header needs 15 bytes
constexpr uint32_t kMaxEntryUnits =
    static_cast<uint32_t>((kHeaderBytes + kMaxKeySize + kUnit - 1) / kUnit);
// Put orders the pending list itself once it is this long, which bounds the
// list and the work of a later Order().
constexpr size_t kMaxPending = 128 * 1024;
// Order() walks the btree from one insertion point to the next when the
// values of a batch are expected at most kWalkGap positions apart (about one
// leaf: each leaf crossed costs a cache miss, as much as the lower levels of
// a descent from the root), and gives up after kMaxWalk positions.
constexpr size_t kWalkGap = 16;
constexpr int kMaxWalk = 32;

enum class EntryState : uint8_t {
  kFree = 0xF0,         // on a free list
  kPending = 0xF1,      // in the hash set and the pending list
  kDeadPending = 0xF2,  // erased while pending: only in the pending list
  kOrdered = 0xF3,      // in the hash set and the ordered index
};

constexpr uint32_t UnitsFor(size_t key_size) {
  return static_cast<uint32_t>((kHeaderBytes + key_size + kUnit - 1) / kUnit);
}

// The first four key bytes as a big-endian number, zero-padded. Ordering by
// this number is consistent with byte order of the keys (ties aside).
inline uint32_t PrefixOf(std::string_view key) {
  unsigned char bytes[4] = {0, 0, 0, 0};
  std::memcpy(bytes, key.data(), std::min<size_t>(key.size(), 4));
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
         uint32_t{bytes[3]};
}

inline uint64_t OrderValue(uint32_t prefix, uint32_t index) {
  return (uint64_t{prefix} << 32) | index;
}
inline uint32_t IndexOf(uint64_t order_value) { return static_cast<uint32_t>(order_value); }
inline uint32_t PrefixOf(uint64_t order_value) { return static_cast<uint32_t>(order_value >> 32); }

// Blocks of whole 2 MiB pages, aligned to 2 MiB and advised to use huge
// pages: fewer TLB misses on random lookups in a large keydir.
size_t HugeBytes(size_t bytes) { return (bytes + kChunkBytes - 1) / kChunkBytes * kChunkBytes; }

void* MapHuge(size_t bytes) {
  const size_t size = HugeBytes(bytes);
  // Map one extra huge page and trim both ends to get the alignment.
  void* mapped =
      mmap(nullptr, size + kChunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  RKV_ASSERT_MSG(mapped != MAP_FAILED, "keydir: out of memory");
  const auto start = reinterpret_cast<uintptr_t>(mapped);
  const uintptr_t aligned = (start + kChunkBytes - 1) / kChunkBytes * kChunkBytes;
  if (aligned > start) RKV_ASSERT(munmap(mapped, aligned - start) == 0);
  const uintptr_t end = start + size + kChunkBytes;
  if (end > aligned + size) {
    RKV_ASSERT(munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size)) == 0);
  }
  void* block = reinterpret_cast<void*>(aligned);
  // Advice only: a failure changes nothing but speed.
  (void)madvise(block, size, MADV_HUGEPAGE);
  return block;
}

void UnmapHuge(void* block, size_t bytes) { RKV_ASSERT(munmap(block, HugeBytes(bytes)) == 0); }

// An allocator that counts the bytes it hands out, so MemoryBytes() is exact
// for the two abseil containers.
template <typename T>
class CountingAllocator {
 public:
  using value_type = T;

  explicit CountingAllocator(size_t* counter) : counter_(counter) {}
  template <typename U>
  CountingAllocator(const CountingAllocator<U>& other)  // NOLINT: rebinding must be implicit
      : counter_(other.counter()) {}

  // Large blocks (the hash table's array) come from MapHuge.
  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kChunkBytes) {
      *counter_ += HugeBytes(bytes);
      return static_cast<T*>(MapHuge(bytes));
    }
    *counter_ += bytes;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kChunkBytes) {
      RKV_ASSERT(*counter_ >= HugeBytes(bytes));
      *counter_ -= HugeBytes(bytes);
      UnmapHuge(p, bytes);
      return;
    }
    RKV_ASSERT(*counter_ >= bytes);
    *counter_ -= bytes;
    std::allocator<T>().deallocate(p, n);
  }

  size_t* counter() const { return counter_; }

  template <typename U>
  friend bool operator==(const CountingAllocator& a, const CountingAllocator<U>& b) {
    return a.counter_ == b.counter();
  }

 private:
  size_t* counter_;
};

// The arena of entries.
class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena() {
    for (size_t i = 0; i < chunks_.size(); ++i) {
      if (i + 1 == chunks_.size() && last_units_ < kChunkUnits) {
        std::free(chunks_[i]);
      } else {
        UnmapHuge(chunks_[i], kChunkBytes);
      }
    }
  }

  // Entry accessors. `index` must name an entry (live or free).
  char* Base(uint32_t index) const {
    const uint32_t chunk = index >> kChunkShift;
    RKV_DASSERT(chunk < chunks_.size());
    return reinterpret_cast<char*>(chunks_[chunk] + (index & (kChunkUnits - 1)));
  }
  Location* Loc(uint32_t index) const { return reinterpret_cast<Location*>(Base(index)); }
  size_t KeySize(uint32_t index) const {
    uint16_t size;
    std::memcpy(&size, Base(index) + 12, sizeof(size));
    return size;
  }
  std::string_view Key(uint32_t index) const {
    const char* base = Base(index);
    uint16_t size;
    std::memcpy(&size, base + 12, sizeof(size));
    return std::string_view(base + kHeaderBytes, size);
  }
  EntryState State(uint32_t index) const {
    return static_cast<EntryState>(static_cast<uint8_t>(Base(index)[14]));
  }
  void SetState(uint32_t index, EntryState state) { Base(index)[14] = static_cast<char>(state); }

  // Makes a new entry in state kPending.
  uint32_t New(std::string_view key, const Location& location) {
    RKV_ASSERT(!key.empty() && key.size() <= kMaxKeySize);
    const uint32_t units = UnitsFor(key.size());
    const uint32_t index = Allocate(units);
    char* base = Base(index);
    std::memcpy(base, &location, sizeof(Location));
    const auto size = static_cast<uint16_t>(key.size());
    std::memcpy(base + 12, &size, sizeof(size));
    base[14] = static_cast<char>(EntryState::kPending);
    std::memcpy(base + kHeaderBytes, key.data(), key.size());
    live_units_ += units;
    return index;
  }

  // Returns a live or dead-pending entry to its free list.
  void Free(uint32_t index) {
    const EntryState state = State(index);
    RKV_ASSERT(state == EntryState::kPending || state == EntryState::kDeadPending ||
               state == EntryState::kOrdered);
    const uint32_t units = UnitsFor(KeySize(index));
    RKV_ASSERT(live_units_ >= units);
    live_units_ -= units;
    PushFree(index, units);
  }

  // Bytes of chunks held, plus the arena's own tables.
  size_t MemoryBytes() const {
    return chunk_units_total_ * kUnit + chunks_.capacity() * sizeof(uint64_t*) +
           free_heads_.capacity() * sizeof(uint32_t);
  }
  size_t live_units() const { return live_units_; }

 private:
  // A free entry keeps the free-list link in bytes 0..3, its size in units in
  // bytes 4..7 and kFree in the state byte.
  void PushFree(uint32_t index, uint32_t units) {
    RKV_ASSERT(units >= kMinEntryUnits && units <= kMaxEntryUnits);
    if (free_heads_.size() <= units) free_heads_.resize(units + 1, kNil);
    char* base = Base(index);
    std::memcpy(base, &free_heads_[units], sizeof(uint32_t));
    std::memcpy(base + 4, &units, sizeof(uint32_t));
    base[14] = static_cast<char>(EntryState::kFree);
    free_heads_[units] = index;
  }

  uint32_t Allocate(uint32_t units) {
    RKV_ASSERT(units >= kMinEntryUnits && units <= kMaxEntryUnits);
    if (units < free_heads_.size() && free_heads_[units] != kNil) {
      const uint32_t index = free_heads_[units];
      const char* base = Base(index);
      RKV_ASSERT(State(index) == EntryState::kFree);
      uint32_t next;
      uint32_t free_units;
      std::memcpy(&next, base, sizeof(next));
      std::memcpy(&free_units, base + 4, sizeof(free_units));
      RKV_ASSERT(free_units == units);
      free_heads_[units] = next;
      return index;
    }
    if (chunks_.empty() || top_ + units > last_units_) AddSpace(units);
    RKV_ASSERT(top_ + units <= last_units_);
    const uint32_t index = static_cast<uint32_t>(((chunks_.size() - 1) << kChunkShift) | top_);
    top_ += units;
    return index;
  }

  // Makes room for `units` more units at the top of the last chunk. Only the
  // first chunk is ever smaller than kChunkUnits: it lives on the heap and
  // doubles (indexes stay valid when it moves) until it is full-size, then it
  // moves into a huge-page block like every later chunk.
  void AddSpace(uint32_t units) {
    if (!chunks_.empty() && last_units_ < kChunkUnits) {
      RKV_ASSERT(chunks_.size() == 1);
      uint32_t new_units = last_units_;
      while (top_ + units > new_units) new_units *= 2;
      RKV_ASSERT(new_units <= kChunkUnits);
      void* grown = nullptr;
      if (new_units < kChunkUnits) {
        grown = std::realloc(chunks_.back(), size_t{new_units} * kUnit);
        RKV_ASSERT_MSG(grown != nullptr, "keydir: out of memory");
      } else {
        grown = MapHuge(kChunkBytes);
        std::memcpy(grown, chunks_.back(), size_t{last_units_} * kUnit);
        std::free(chunks_.back());
      }
      chunks_.back() = static_cast<uint64_t*>(grown);
      chunk_units_total_ += new_units - last_units_;
      last_units_ = new_units;
      return;
    }
    if (!chunks_.empty()) {
      // Put the unused tail of the full chunk on a free list.
      const uint32_t tail = last_units_ - top_;
      RKV_ASSERT(tail < units);  // so the tail fits a size class
      if (tail >= kMinEntryUnits) {
        const auto index = static_cast<uint32_t>(((chunks_.size() - 1) << kChunkShift) | top_);
        PushFree(index, tail);
      }
      top_ = last_units_;
    }
    RKV_ASSERT_MSG(chunks_.size() < kMaxChunks, "keydir: arena full (32 GiB of entries)");
    uint32_t new_units = chunks_.empty() ? kFirstChunkUnits : kChunkUnits;
    while (units > new_units) new_units *= 2;
    RKV_ASSERT(new_units <= kChunkUnits);
    void* chunk = nullptr;
    if (new_units == kChunkUnits) {
      chunk = MapHuge(kChunkBytes);
    } else {
      chunk = std::malloc(size_t{new_units} * kUnit);
      RKV_ASSERT_MSG(chunk != nullptr, "keydir: out of memory");
    }
    chunks_.push_back(static_cast<uint64_t*>(chunk));
    chunk_units_total_ += new_units;
    last_units_ = new_units;
    top_ = 0;
  }

  std::vector<uint64_t*> chunks_;
  uint32_t last_units_ = 0;  // capacity of the last chunk, in units
  uint32_t top_ = 0;         // units used at the start of the last chunk
  size_t chunk_units_total_ = 0;
  size_t live_units_ = 0;
  std::vector<uint32_t> free_heads_;  // by size in units
};

// The hash of a key. Keys of up to 16 bytes (the common case) are hashed
// inline with 128-bit multiplies (wyhash's mixing step), which is good in all
// 64 bits as abseil's tables need; longer keys use absl::Hash. Like
// absl::Hash, the hash is seeded per process (from an address, so by ASLR),
// so clients cannot precompute keys that collide.
inline uint64_t Mix(uint64_t a, uint64_t b) {
  __extension__ using Wide = unsigned __int128;
  const Wide product = static_cast<Wide>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

constexpr uint64_t kHashK0 = 0xa0761d6478bd642fULL;
constexpr uint64_t kHashK1 = 0xe7037ed1a0b428dbULL;
constexpr uint64_t kHashK2 = 0x8ebc6af09c88c6e3ULL;

const uint64_t kHashSeed = Mix(reinterpret_cast<uintptr_t>(&kHashSeed) ^ kHashK2, kHashK0);

inline uint64_t HashKey(std::string_view key) {
  const size_t n = key.size();
  const auto* p = reinterpret_cast<const unsigned char*>(key.data());
  uint64_t a = 0;
  uint64_t b = 0;
  if (n >= 8 && n <= 16) {
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + n - 8, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t lo;
    uint32_t hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    a = lo;
    b = hi;
  } else if (n > 0 && n < 4) {
    a = (uint64_t{p[0]} << 16) | (uint64_t{p[n / 2]} << 8) | p[n - 1];
  } else if (n > 16) {
    return absl::Hash<absl::string_view>()(absl::string_view(key.data(), n));
  }
  // Two rounds, each with a constant multiplier, so no key makes a product
  // vanish for a whole family of keys; the seed enters before both.
  return Mix(Mix(a ^ kHashSeed ^ kHashK1, kHashK0) ^ b ^ kHashSeed ^ kHashK2, kHashK1 ^ n);
}

// Hash and equality for the point index: entries are hashed by key bytes, so
// a lookup by key needs no entry.
struct EntryHash {
  using is_transparent = void;
  const Arena* arena;

  size_t operator()(uint32_t index) const { return HashKey(arena->Key(index)); }
  size_t operator()(absl::string_view key) const {
    return HashKey(std::string_view(key.data(), key.size()));
  }
};

struct EntryEq {
  using is_transparent = void;
  const Arena* arena;

  bool operator()(uint32_t a, uint32_t b) const { return a == b; }
  bool operator()(uint32_t a, absl::string_view key) const {
    return arena->Key(a) == std::string_view(key.data(), key.size());
  }
  bool operator()(absl::string_view key, uint32_t a) const { return (*this)(a, key); }
};

// A key looked up in the ordered index.
struct OrderProbe {
  uint32_t prefix;
  std::string_view key;
};

struct OrderLess {
  using is_transparent = void;
  const Arena* arena;

  bool operator()(uint64_t a, uint64_t b) const {
    if (PrefixOf(a) != PrefixOf(b)) return PrefixOf(a) < PrefixOf(b);
    if (a == b) return false;
    return arena->Key(IndexOf(a)) < arena->Key(IndexOf(b));
  }
  bool operator()(uint64_t a, const OrderProbe& b) const {
    if (PrefixOf(a) != b.prefix) return PrefixOf(a) < b.prefix;
    return arena->Key(IndexOf(a)) < b.key;
  }
  bool operator()(const OrderProbe& a, uint64_t b) const {
    if (a.prefix != PrefixOf(b)) return a.prefix < PrefixOf(b);
    return a.key < arena->Key(IndexOf(b));
  }
};

using PointIndex = absl::flat_hash_set<uint32_t, EntryHash, EntryEq, CountingAllocator<uint32_t>>;
using OrderedIndex = absl::btree_set<uint64_t, OrderLess, CountingAllocator<uint64_t>>;

inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

}  // namespace

struct Keydir::Impl {
  Impl()
      : point(0, EntryHash{&arena}, EntryEq{&arena}, CountingAllocator<uint32_t>(&point_bytes)),
        ordered(OrderLess{&arena}, CountingAllocator<uint64_t>(&ordered_bytes)) {}

  uint64_t OrderValueOf(uint32_t index) const {
    return OrderValue(PrefixOf(arena.Key(index)), index);
  }

  // Fields are declared in construction order: the indexes refer to the
  // arena and the counters.
  Arena arena;
  size_t point_bytes = 0;
  size_t ordered_bytes = 0;
  PointIndex point;
  OrderedIndex ordered;
  // Entries (kPending or kDeadPending) not yet in `ordered`.
  std::vector<uint32_t> pending;
  size_t dead_pending = 0;
};

Keydir::Keydir() : impl_(std::make_unique<Impl>()) {}
Keydir::~Keydir() = default;

size_t Keydir::size() const { return impl_->point.size(); }

const Location* Keydir::Find(std::string_view key) const {
  auto it = impl_->point.find(AbslView(key));
  if (it == impl_->point.end()) return nullptr;
  return impl_->arena.Loc(*it);
}

std::optional<Location> Keydir::Put(std::string_view key, const Location& location) {
  RKV_ASSERT(!key.empty() && key.size() <= kMaxKeySize);
  Impl& impl = *impl_;
  bool inserted = false;
  auto it = impl.point.lazy_emplace(AbslView(key), [&](const PointIndex::constructor& construct) {
    construct(impl.arena.New(key, location));
    inserted = true;
  });
  if (!inserted) {
    Location* slot = impl.arena.Loc(*it);
    const Location previous = *slot;
    *slot = location;
    return previous;
  }
  impl.pending.push_back(*it);
  if (impl.pending.size() >= kMaxPending) Order();
  return std::nullopt;
}

std::optional<Location> Keydir::Erase(std::string_view key) {
  Impl& impl = *impl_;
  auto it = impl.point.find(AbslView(key));
  if (it == impl.point.end()) return std::nullopt;
  const uint32_t index = *it;
  const Location previous = *impl.arena.Loc(index);
  impl.point.erase(it);
  switch (impl.arena.State(index)) {
    case EntryState::kPending:
      // Still referenced by the pending list; Order() frees it.
      impl.arena.SetState(index, EntryState::kDeadPending);
      ++impl.dead_pending;
      break;
    case EntryState::kOrdered: {
      const size_t erased = impl.ordered.erase(impl.OrderValueOf(index));
      RKV_ASSERT(erased == 1);
      impl.arena.Free(index);
      break;
    }
    default:
      RKV_ASSERT_MSG(false, "keydir: erased entry in a bad state");
  }
  return previous;
}

bool Keydir::ReplaceIf(std::string_view key, const Location& expected, const Location& location) {
  auto it = impl_->point.find(AbslView(key));
  if (it == impl_->point.end()) return false;
  Location* slot = impl_->arena.Loc(*it);
  if (!(*slot == expected)) return false;
  *slot = location;
  return true;
}

bool Keydir::NeedsOrdering() const { return !impl_->pending.empty(); }

void Keydir::Order() {
  Impl& impl = *impl_;
  if (impl.pending.empty()) return;
  // Free the dead, turn the rest into order values, sort them, and insert them
  // in order (each insertion then touches nodes close to the previous one).
  std::vector<uint64_t> values;
  values.reserve(impl.pending.size() - impl.dead_pending);
  size_t freed = 0;
  for (uint32_t index : impl.pending) {
    const EntryState state = impl.arena.State(index);
    if (state == EntryState::kDeadPending) {
      impl.arena.Free(index);
      ++freed;
      continue;
    }
    RKV_ASSERT(state == EntryState::kPending);
    impl.arena.SetState(index, EntryState::kOrdered);
    values.push_back(impl.OrderValueOf(index));
  }
  RKV_ASSERT(freed == impl.dead_pending);
  impl.pending.clear();
  if (impl.pending.capacity() > kMaxPending) impl.pending.shrink_to_fit();
  impl.dead_pending = 0;

  const OrderLess less{&impl.arena};
  std::sort(values.begin(), values.end(), less);
  // Consecutive values of the batch land about size/batch positions apart.
  // When that is short, walk the btree from the previous insertion (in-leaf
  // steps, decided by the prefix without touching entries) instead of
  // descending from the root for each value.
  const bool walk = impl.ordered.size() <= values.size() * kWalkGap;
  auto hint = impl.ordered.end();
  bool have_hint = false;
  for (uint64_t value : values) {
    if (have_hint && walk) {
      int steps = 0;
      while (hint != impl.ordered.end() && less(*hint, value) && steps < kMaxWalk) {
        ++hint;
        ++steps;
      }
      if (hint != impl.ordered.end() && less(*hint, value)) hint = impl.ordered.lower_bound(value);
    } else {
      hint = impl.ordered.lower_bound(value);
    }
    // `hint` is the first value greater than `value`: insertion there is O(1)
    // plus a possible split.
    auto it = impl.ordered.insert(hint, value);
    hint = std::next(it);
    have_hint = true;
  }
}

void Keydir::ScanFrom(std::string_view start,
                      const std::function<bool(std::string_view, const Location&)>& fn) const {
  RKV_ASSERT_MSG(!NeedsOrdering(), "keydir: ScanFrom before Order()");
  const Impl& impl = *impl_;
  auto it = start.empty() ? impl.ordered.begin()
                          : impl.ordered.lower_bound(OrderProbe{PrefixOf(start), start});
  for (; it != impl.ordered.end(); ++it) {
    const uint32_t index = IndexOf(*it);
    if (!fn(impl.arena.Key(index), *impl.arena.Loc(index))) return;
  }
}

void Keydir::ForEach(const std::function<void(std::string_view, const Location&)>& fn) const {
  const Impl& impl = *impl_;
  for (uint32_t index : impl.point) fn(impl.arena.Key(index), *impl.arena.Loc(index));
}

size_t Keydir::MemoryBytes() const {
  const Impl& impl = *impl_;
  return sizeof(Impl) + impl.arena.MemoryBytes() + impl.point_bytes + impl.ordered_bytes +
         impl.pending.capacity() * sizeof(uint32_t);
}

}  // namespace rkv::storage
