// Keydir micro-benchmarks: point lookups, inserts, overwrites and short scans
// at 1M and 10M random 16-byte keys, plus memory per key.
//
//   raft-kv-keydir-bench                       # everything (10M needs ~1 GiB)
//   raft-kv-keydir-bench --benchmark_filter=/1000000
//
// Counters: ns_per_key (Put of new keys, the Order() work included),
// rss_B_per_key (growth of the process's resident set while the keydir was
// filled, divided by N), mem_B_per_key (Keydir::MemoryBytes() / N) and
// overhead_B_per_key (rss_B_per_key minus the 16 key bytes).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "common/random.h"
#include "storage/keydir.h"

namespace rkv::storage {
namespace {

constexpr size_t kKeySize = 16;

// Resident set size of this process, from /proc/self/statm.
size_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0;
  unsigned long resident = 0;
  const int read = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (read != 2) return 0;
  return static_cast<size_t>(resident) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// AnonHugePages of this process in bytes, from /proc/self/smaps_rollup.
size_t HugePageBytes() {
  std::FILE* f = std::fopen("/proc/self/smaps_rollup", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kib = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    unsigned long value = 0;
    if (std::sscanf(line, "AnonHugePages: %lu kB", &value) == 1) kib = value;
  }
  std::fclose(f);
  return kib * 1024;
}

// N random keys, stored back to back in one buffer.
class KeySet {
 public:
  KeySet(size_t n, uint64_t seed) : n_(n), bytes_(n * kKeySize, '\0') {
    Random random(seed);
    for (size_t i = 0; i < bytes_.size(); i += 8) {
      const uint64_t word = random.Next();
      for (size_t b = 0; b < 8; ++b) bytes_[i + b] = static_cast<char>((word >> (8 * b)) & 0xff);
    }
  }
  size_t size() const { return n_; }
  std::string_view operator[](size_t i) const {
    return std::string_view(bytes_.data() + i * kKeySize, kKeySize);
  }

 private:
  size_t n_;
  std::string bytes_;
};

// Random keys of a KeySet, copied in batches into a small buffer that stays
// in L1, so a lookup benchmark measures the keydir and not the cache misses
// of fetching the key from a large array (a server gets its keys from a
// request buffer in cache). The copy (independent loads, amortized over the
// batch) is inside the timed loop, for ours and the reference alike.
class RandomKeys {
 public:
  RandomKeys(const KeySet& keys, uint64_t seed) : keys_(keys), random_(seed) {}
  std::string_view Next() {
    if (next_ == kBatch) Refill();
    return std::string_view(buffer_ + (next_++) * kKeySize, kKeySize);
  }

 private:
  static constexpr size_t kBatch = 256;
  void Refill() {
    for (size_t i = 0; i < kBatch; ++i) {
      std::memcpy(buffer_ + i * kKeySize, keys_[random_.Uniform(keys_.size())].data(), kKeySize);
    }
    next_ = 0;
  }
  const KeySet& keys_;
  Random random_;
  size_t next_ = kBatch;
  char buffer_[kBatch * kKeySize];
};

Location LocationFor(size_t i) {
  return Location{static_cast<uint32_t>(i % 1000), static_cast<uint32_t>(i), 100};
}

// One filled keydir per N, kept between benchmarks so 10M is built once.
struct Filled {
  std::unique_ptr<KeySet> keys;
  std::unique_ptr<Keydir> keydir;
  double rss_per_key = 0;
  double mem_per_key = 0;
  double huge_page_mib = 0;
  double seconds = 0;
};
std::map<size_t, Filled>& FilledSets() {
  static auto* sets = new std::map<size_t, Filled>();
  return *sets;
}

// Fills an empty keydir with N new keys, then Order(): the amortized cost of
// an insert including the ordering work.
Filled Fill(size_t n) {
  FilledSets().clear();  // one big keydir at a time
  Filled filled;
  filled.keys = std::make_unique<KeySet>(n, 1234);
  const size_t rss_before = ResidentBytes();
  auto keydir = std::make_unique<Keydir>();
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < n; ++i) keydir->Put((*filled.keys)[i], LocationFor(i));
  keydir->Order();
  filled.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  filled.rss_per_key = static_cast<double>(ResidentBytes() - rss_before) / static_cast<double>(n);
  filled.mem_per_key = static_cast<double>(keydir->MemoryBytes()) / static_cast<double>(n);
  filled.huge_page_mib = static_cast<double>(HugePageBytes()) / (1 << 20);
  filled.keydir = std::move(keydir);
  return filled;
}

// Keeps the keydir it filled for the other benchmarks of the same N.
void BM_PutNew(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  Filled filled;
  for (auto _ : state) {
    filled = Fill(n);
    state.SetIterationTime(filled.seconds);
  }
  state.counters["ns_per_key"] = filled.seconds * 1e9 / static_cast<double>(n);
  state.counters["rss_B_per_key"] = filled.rss_per_key;
  state.counters["mem_B_per_key"] = filled.mem_per_key;
  state.counters["overhead_B_per_key"] = filled.rss_per_key - static_cast<double>(kKeySize);
  state.counters["huge_page_MiB"] = filled.huge_page_mib;
  FilledSets()[n] = std::move(filled);
}

Filled& Get(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  auto it = FilledSets().find(n);
  if (it == FilledSets().end()) it = FilledSets().emplace(n, Fill(n)).first;
  return it->second;
}

void BM_FindHit(benchmark::State& state) {
  Filled& filled = Get(state);
  RandomKeys keys(*filled.keys, 99);
  for (auto _ : state) {
    const Location* location = filled.keydir->Find(keys.Next());
    benchmark::DoNotOptimize(location);
  }
}

void BM_FindMiss(benchmark::State& state) {
  Filled& filled = Get(state);
  KeySet misses(1 << 20, 777);
  RandomKeys keys(misses, 99);
  for (auto _ : state) {
    const Location* location = filled.keydir->Find(keys.Next());
    benchmark::DoNotOptimize(location);
  }
}

void BM_PutOverwrite(benchmark::State& state) {
  Filled& filled = Get(state);
  RandomKeys keys(*filled.keys, 5);
  size_t i = 0;
  for (auto _ : state) {
    auto previous = filled.keydir->Put(keys.Next(), LocationFor(i++));
    benchmark::DoNotOptimize(previous);
  }
}

void BM_ScanFrom100(benchmark::State& state) {
  Filled& filled = Get(state);
  filled.keydir->Order();
  Random random(11);
  const size_t n = filled.keys->size();
  uint64_t sum = 0;
  for (auto _ : state) {
    int left = 100;
    filled.keydir->ScanFrom((*filled.keys)[random.Uniform(n)],
                            [&](std::string_view key, const Location& location) {
                              sum += key.size() + location.offset;
                              return --left > 0;
                            });
  }
  benchmark::DoNotOptimize(sum);
}

// Erase of a random ordered key and Put of it again right away: the pending
// path plus free-list reuse (the Order() work is included via the 64K limit).
void BM_EraseReinsert(benchmark::State& state) {
  Filled& filled = Get(state);
  RandomKeys keys(*filled.keys, 17);
  for (auto _ : state) {
    const std::string_view key = keys.Next();
    auto previous = filled.keydir->Erase(key);
    filled.keydir->Put(key, *previous);
  }
  filled.keydir->Order();
}

// Reference for reading the numbers above on a shared machine: the same
// lookups in absl::flat_hash_map with the 16-byte keys inline in the slots
// (no ordered index, no arena). Run in the same process, right after.
void BM_ReferenceFlatHashMapFindHit(benchmark::State& state) {
  Filled& filled = Get(state);
  const size_t n = filled.keys->size();
  using Key = std::array<uint64_t, 2>;
  auto to_key = [](std::string_view s) {
    Key key;
    std::memcpy(key.data(), s.data(), sizeof(key));
    return key;
  };
  absl::flat_hash_map<Key, Location> map;
  for (size_t i = 0; i < n; ++i) map.emplace(to_key((*filled.keys)[i]), LocationFor(i));
  RandomKeys keys(*filled.keys, 99);
  for (auto _ : state) {
    auto it = map.find(to_key(keys.Next()));
    benchmark::DoNotOptimize(it);
  }
}

void Register(int64_t n) {
  benchmark::RegisterBenchmark("BM_PutNew", BM_PutNew)
      ->Arg(n)
      ->Iterations(1)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_FindHit", BM_FindHit)->Arg(n);
  benchmark::RegisterBenchmark("BM_FindMiss", BM_FindMiss)->Arg(n);
  benchmark::RegisterBenchmark("BM_PutOverwrite", BM_PutOverwrite)->Arg(n);
  benchmark::RegisterBenchmark("BM_ScanFrom100", BM_ScanFrom100)->Arg(n);
  benchmark::RegisterBenchmark("BM_EraseReinsert", BM_EraseReinsert)->Arg(n);
  benchmark::RegisterBenchmark("BM_ReferenceFlatHashMapFindHit", BM_ReferenceFlatHashMapFindHit)
      ->Arg(n);
}

}  // namespace
}  // namespace rkv::storage

int main(int argc, char** argv) {
  rkv::storage::Register(1'000'000);
  rkv::storage::Register(10'000'000);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
