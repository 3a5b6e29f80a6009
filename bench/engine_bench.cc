// The storage engine beside LMDB, LevelDB and RocksDB, on the same operations
// and value sizes, in one run (docs/benchmarks.md):
//
//   get_hot        Get of one key, over and over.
//   get_random     Get of a uniformly random key among N, all values in the
//                  page cache; N = min(1M, data cap / value size).
//   put_none       Put of new keys, one thread, no sync per write.
//   put_always     Put of new keys, one thread, durable on return (one
//                  fdatasync per write; two for LMDB, data then meta page).
//   put_group8/64  Put of new keys from 8 or 64 threads, durable on return:
//                  raft-kv group commit; LevelDB/RocksDB sync=true from N
//                  threads (they group concurrent writers into one WAL sync);
//                  LMDB durable commits, serialized by its writer lock.
//   open           raft-kv only: open with 1M keys (128-byte values) from hint
//                  files and without them; memory per key after open.
//
// Sync settings. none: raft-kv SyncMode::kNone; LMDB MDB_NOSYNC |
// MDB_NOMETASYNC; LevelDB/RocksDB WriteOptions::sync = false (WAL on).
// always and group: raft-kv kAlways / kGroup; LMDB env flags without NOSYNC
// (durable commit); LevelDB/RocksDB WriteOptions::sync = true.
//
// Engine settings. Keys are 16 bytes ("k" + 15 digits), values random bytes.
// LevelDB and RocksDB: no compression (values are random), 10-bit Bloom
// filters, default block caches; LevelDB with RocksDB's default 64 MiB
// memtable and table file size (write_buffer_size, max_file_size) and
// max_open_files 10000. LMDB: MDB_NOTLS, 32 GiB map; a read transaction
// renewed per Get. Every Get copies the value into a reused std::string.
//
// Usage:
//   raft-kv-engine-bench                          # full matrix (~15 min)
//   raft-kv-engine-bench --quick                  # 128B and 4K, fewer keys
//   raft-kv-engine-bench --benchmark_filter=get_random/4K
//   raft-kv-engine-bench --data_cap_mib=1024 --max_keys=500000
// RKV_BENCH_QUICK=1 in the environment is the same as --quick. Data goes to
// a fresh directory under $TMPDIR (or /tmp), removed at exit. Datasets for the
// gets are built once per engine and size and shared by its get benchmarks.
// A side-by-side summary (ns/op, MB/s) is printed at the end.
#include <benchmark/benchmark.h>
#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <leveldb/write_batch.h>
#include <lmdb.h>
#include <malloc.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "common/random.h"
#include "storage/engine.h"
#include "storage/options.h"

namespace rkv::bench {
namespace {

// ---------------------------------------------------------------------------
// Configuration

struct Config {
  bool quick = false;
  std::vector<size_t> sizes;
  uint64_t max_keys = 1'000'000;           // keys of a get dataset (at most)
  uint64_t data_cap_bytes = 2ull << 30;    // value bytes of a get dataset (at most)
  uint64_t put_none_bytes = 256ull << 20;  // value bytes one put_none run writes
  uint64_t put_none_ops = 200'000;         // and at most this many puts
  uint64_t open_keys = 1'000'000;
  double get_min_time = 0.25;
  uint64_t always_ops = 500;  // puts of one put_always run (and LMDB's group runs)
  uint64_t group_ops = 2000;  // puts of one put_group8 run; put_group64 does 8x
};

Config& Cfg() {
  static auto* config = new Config();
  return *config;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "raft-kv-engine-bench: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

std::string SizeName(size_t size) {
  if (size >= 1024 && size % 1024 == 0) return std::to_string(size / 1024) + "K";
  return std::to_string(size) + "B";
}

uint64_t KeysFor(size_t size) {
  return std::max<uint64_t>(1, std::min(Cfg().max_keys, Cfg().data_cap_bytes / size));
}

// ---------------------------------------------------------------------------
// Keys, values, temporary directories, memory

constexpr size_t kKeySize = 16;

// "k" + 15 decimal digits: byte order is numeric order.
void FormatKey(uint64_t i, char* out) {
  out[0] = 'k';
  for (size_t j = kKeySize - 1; j >= 1; --j) {
    out[j] = static_cast<char>('0' + i % 10);
    i /= 10;
  }
}

std::string Key(uint64_t i) {
  std::string key(kKeySize, '\0');
  FormatKey(i, key.data());
  return key;
}

// Random bytes; value i of a size is a window into them.
class Values {
 public:
  Values() : bytes_(kSpan + (64u << 10), '\0') {
    Random random(0x5eed);
    for (char& c : bytes_) c = static_cast<char>(random.Next() & 0xff);
  }
  std::string_view Get(uint64_t i, size_t size) const {
    return std::string_view(bytes_.data() + (i % 64) * (kSpan / 64), size);
  }

 private:
  static constexpr size_t kSpan = 4096;
  std::string bytes_;
};

const Values& TheValues() {
  static auto* values = new Values();
  return *values;
}

std::string& RootDir() {
  static auto* root = new std::string();
  return *root;
}

void RemoveRoot() {
  if (RootDir().empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(RootDir(), ec);
  RootDir().clear();
}

void MakeRoot() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/rkv-engine-bench-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) Die("cannot create a directory from " + pattern);
  RootDir() = pattern;
  std::atexit(RemoveRoot);
}

std::string NewDir(std::string_view name) {
  static uint64_t counter = 0;
  return RootDir() + "/" + std::string(name) + "-" + std::to_string(++counter);
}

// Anonymous resident memory of this process (heap, stacks), in bytes.
uint64_t RssAnonBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::stoull(line.substr(8)) * 1024;
  }
  return 0;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// ---------------------------------------------------------------------------
// The engines behind one interface

enum class Kind { kRaftKv, kLmdb, kLevelDb, kRocksDb };
constexpr Kind kKinds[] = {Kind::kRaftKv, Kind::kLmdb, Kind::kLevelDb, Kind::kRocksDb};

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kRaftKv:
      return "raft-kv";
    case Kind::kLmdb:
      return "LMDB";
    case Kind::kLevelDb:
      return "LevelDB";
    case Kind::kRocksDb:
      return "RocksDB";
  }
  return "?";
}

enum class Sync { kNone, kAlways, kGroup };

// One open database in its own directory, removed when the store goes.
class Store {
 public:
  explicit Store(std::string dir) : dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) Die("cannot create " + dir_ + ": " + ec.message());
  }
  virtual ~Store() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Copies the value of `key` into *value; false if absent.
  virtual bool Get(std::string_view key, std::string* value) = 0;
  // Dies on error. Thread-safe.
  virtual void Put(std::string_view key, std::string_view value) = 0;
  // Writes keys 0..n-1 (fast path where the engine has one; not timed).
  virtual void Load(uint64_t n, size_t size) {
    char key[kKeySize];
    for (uint64_t i = 0; i < n; ++i) {
      FormatKey(i, key);
      Put(std::string_view(key, kKeySize), TheValues().Get(i, size));
    }
  }
  // Waits until background work after a load (compactions) has finished.
  virtual void Settle() {}
  // fdatasync calls and records written since open, where the engine says.
  virtual bool SyncCounts(uint64_t* /*syncs*/, uint64_t* /*writes*/) { return false; }

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

class RaftKvStore final : public Store {
 public:
  RaftKvStore(std::string dir, Sync sync) : Store(std::move(dir)) {
    storage::Options options;
    options.sync_mode = sync == Sync::kNone     ? storage::SyncMode::kNone
                        : sync == Sync::kAlways ? storage::SyncMode::kAlways
                                                : storage::SyncMode::kGroup;
    auto engine = storage::Engine::Open(options, this->dir());
    if (!engine.ok()) Die("raft-kv open: " + engine.status().ToString());
    engine_ = std::move(*engine);
  }
  ~RaftKvStore() override {
    Status s = engine_->Close();
    if (!s.ok()) Die("raft-kv close: " + s.ToString());
    engine_.reset();
  }
  bool Get(std::string_view key, std::string* value) override {
    Status s = engine_->Get(key, value);
    if (!s.ok() && s.code() != StatusCode::kNotFound) Die("raft-kv get: " + s.ToString());
    return s.ok();
  }
  void Put(std::string_view key, std::string_view value) override {
    Status s = engine_->Put(key, value);
    if (!s.ok()) Die("raft-kv put: " + s.ToString());
  }
  bool SyncCounts(uint64_t* syncs, uint64_t* writes) override {
    const storage::Stats stats = engine_->GetStats();
    *syncs = stats.syncs;
    *writes = stats.writes;
    return true;
  }

 private:
  std::unique_ptr<storage::Engine> engine_;
};

void CheckMdb(int rc, const char* what) {
  if (rc != MDB_SUCCESS) Die(std::string("LMDB ") + what + ": " + mdb_strerror(rc));
}

class LmdbStore final : public Store {
 public:
  LmdbStore(std::string dir, Sync sync) : Store(std::move(dir)) {
    CheckMdb(mdb_env_create(&env_), "env_create");
    CheckMdb(mdb_env_set_mapsize(env_, size_t{32} << 30), "set_mapsize");
    CheckMdb(mdb_env_set_maxreaders(env_, 256), "set_maxreaders");
    unsigned int flags = MDB_NOTLS;
    if (sync == Sync::kNone) flags |= MDB_NOSYNC | MDB_NOMETASYNC;
    CheckMdb(mdb_env_open(env_, this->dir().c_str(), flags, 0644), "env_open");
    MDB_txn* txn = nullptr;
    CheckMdb(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
    CheckMdb(mdb_dbi_open(txn, nullptr, 0, &dbi_), "dbi_open");
    CheckMdb(mdb_txn_commit(txn), "txn_commit");
  }
  ~LmdbStore() override {
    if (read_txn_ != nullptr) mdb_txn_abort(read_txn_);
    mdb_env_close(env_);
  }
  // Single reader thread (the get benchmarks): one read transaction, renewed
  // per Get as LMDB recommends for repeated short reads.
  bool Get(std::string_view key, std::string* value) override {
    if (read_txn_ == nullptr) {
      CheckMdb(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &read_txn_), "txn_begin(rdonly)");
    } else {
      CheckMdb(mdb_txn_renew(read_txn_), "txn_renew");
    }
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{0, nullptr};
    const int rc = mdb_get(read_txn_, dbi_, &k, &v);
    if (rc == MDB_SUCCESS) value->assign(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_txn_reset(read_txn_);
    if (rc == MDB_NOTFOUND) return false;
    CheckMdb(rc, "get");
    return true;
  }
  void Put(std::string_view key, std::string_view value) override {
    MDB_txn* txn = nullptr;
    CheckMdb(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{value.size(), const_cast<char*>(value.data())};
    CheckMdb(mdb_put(txn, dbi_, &k, &v, 0), "put");
    CheckMdb(mdb_txn_commit(txn), "txn_commit");
  }
  // Keys in order, appended, 10,000 per transaction.
  void Load(uint64_t n, size_t size) override {
    char key[kKeySize];
    for (uint64_t i = 0; i < n;) {
      MDB_txn* txn = nullptr;
      CheckMdb(mdb_txn_begin(env_, nullptr, 0, &txn), "txn_begin");
      for (uint64_t end = std::min(n, i + 10'000); i < end; ++i) {
        FormatKey(i, key);
        const std::string_view value = TheValues().Get(i, size);
        MDB_val k{kKeySize, key};
        MDB_val v{value.size(), const_cast<char*>(value.data())};
        CheckMdb(mdb_put(txn, dbi_, &k, &v, MDB_APPEND), "put(append)");
      }
      CheckMdb(mdb_txn_commit(txn), "txn_commit");
    }
  }

 private:
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  MDB_txn* read_txn_ = nullptr;
};

class LevelDbStore final : public Store {
 public:
  LevelDbStore(std::string dir, Sync sync) : Store(std::move(dir)) {
    filter_.reset(leveldb::NewBloomFilterPolicy(10));
    leveldb::Options options;
    options.create_if_missing = true;
    options.compression = leveldb::kNoCompression;
    options.filter_policy = filter_.get();
    options.write_buffer_size = size_t{64} << 20;
    options.max_file_size = size_t{64} << 20;
    options.max_open_files = 10'000;
    leveldb::DB* db = nullptr;
    leveldb::Status s = leveldb::DB::Open(options, this->dir(), &db);
    if (!s.ok()) Die("LevelDB open: " + s.ToString());
    db_.reset(db);
    write_options_.sync = sync != Sync::kNone;
  }
  ~LevelDbStore() override { db_.reset(); }
  bool Get(std::string_view key, std::string* value) override {
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), leveldb::Slice(key.data(), key.size()), value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) Die("LevelDB get: " + s.ToString());
    return true;
  }
  void Put(std::string_view key, std::string_view value) override {
    leveldb::Status s = db_->Put(write_options_, leveldb::Slice(key.data(), key.size()),
                                 leveldb::Slice(value.data(), value.size()));
    if (!s.ok()) Die("LevelDB put: " + s.ToString());
  }
  // Keys in order, 1,000 per batch, no sync.
  void Load(uint64_t n, size_t size) override {
    char key[kKeySize];
    leveldb::WriteBatch batch;
    for (uint64_t i = 0; i < n; ++i) {
      FormatKey(i, key);
      const std::string_view value = TheValues().Get(i, size);
      batch.Put(leveldb::Slice(key, kKeySize), leveldb::Slice(value.data(), value.size()));
      if (i % 1000 == 999 || i + 1 == n) {
        leveldb::Status s = db_->Write(leveldb::WriteOptions(), &batch);
        if (!s.ok()) Die("LevelDB load: " + s.ToString());
        batch.Clear();
      }
    }
  }
  // Until level 0 is below its compaction trigger (4 files), at most 60 s.
  void Settle() override {
    const auto start = std::chrono::steady_clock::now();
    std::string files;
    while (Seconds(start) < 60) {
      if (db_->GetProperty("leveldb.num-files-at-level0", &files) && std::stoi(files) < 4) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

 private:
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<leveldb::DB> db_;
  leveldb::WriteOptions write_options_;
};

class RocksDbStore final : public Store {
 public:
  RocksDbStore(std::string dir, Sync sync) : Store(std::move(dir)) {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.compression = rocksdb::kNoCompression;
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(options, this->dir(), &db);
    if (!s.ok()) Die("RocksDB open: " + s.ToString());
    db_.reset(db);
    write_options_.sync = sync != Sync::kNone;
  }
  ~RocksDbStore() override {
    rocksdb::Status s = db_->Close();
    if (!s.ok()) Die("RocksDB close: " + s.ToString());
    db_.reset();
  }
  bool Get(std::string_view key, std::string* value) override {
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) Die("RocksDB get: " + s.ToString());
    return true;
  }
  void Put(std::string_view key, std::string_view value) override {
    rocksdb::Status s = db_->Put(write_options_, rocksdb::Slice(key.data(), key.size()),
                                 rocksdb::Slice(value.data(), value.size()));
    if (!s.ok()) Die("RocksDB put: " + s.ToString());
  }
  // Keys in order, 1,000 per batch, no sync.
  void Load(uint64_t n, size_t size) override {
    char key[kKeySize];
    rocksdb::WriteBatch batch;
    for (uint64_t i = 0; i < n; ++i) {
      FormatKey(i, key);
      const std::string_view value = TheValues().Get(i, size);
      batch.Put(rocksdb::Slice(key, kKeySize), rocksdb::Slice(value.data(), value.size()));
      if (i % 1000 == 999 || i + 1 == n) {
        rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
        if (!s.ok()) Die("RocksDB load: " + s.ToString());
        batch.Clear();
      }
    }
  }
  // Until no flush or compaction is running or pending, at most 60 s.
  void Settle() override {
    const auto start = std::chrono::steady_clock::now();
    while (Seconds(start) < 60) {
      uint64_t pending = 0, compactions = 0, flushes = 0, flush_pending = 0;
      db_->GetIntProperty("rocksdb.compaction-pending", &pending);
      db_->GetIntProperty("rocksdb.num-running-compactions", &compactions);
      db_->GetIntProperty("rocksdb.num-running-flushes", &flushes);
      db_->GetIntProperty("rocksdb.mem-table-flush-pending", &flush_pending);
      if (pending + compactions + flushes + flush_pending == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_options_;
};

std::unique_ptr<Store> OpenStore(Kind kind, Sync sync) {
  std::string dir = NewDir(KindName(kind));
  switch (kind) {
    case Kind::kRaftKv:
      return std::make_unique<RaftKvStore>(std::move(dir), sync);
    case Kind::kLmdb:
      return std::make_unique<LmdbStore>(std::move(dir), sync);
    case Kind::kLevelDb:
      return std::make_unique<LevelDbStore>(std::move(dir), sync);
    case Kind::kRocksDb:
      return std::make_unique<RocksDbStore>(std::move(dir), sync);
  }
  Die("unknown engine");
}

// ---------------------------------------------------------------------------
// Get datasets: one at a time, built on first use and kept while the next
// benchmark wants the same engine and size (registration order makes the
// get benchmarks of an engine and size adjacent).

struct Dataset {
  Kind kind = Kind::kRaftKv;
  size_t value_size = 0;
  uint64_t keys = 0;
  std::unique_ptr<Store> store;
};

std::unique_ptr<Dataset>& CurrentDataset() {
  static auto* current = new std::unique_ptr<Dataset>();
  return *current;
}

void ReleaseDataset() { CurrentDataset().reset(); }

Dataset& AcquireDataset(Kind kind, size_t size) {
  std::unique_ptr<Dataset>& current = CurrentDataset();
  if (current != nullptr && current->kind == kind && current->value_size == size) return *current;
  current.reset();
  auto dataset = std::make_unique<Dataset>();
  dataset->kind = kind;
  dataset->value_size = size;
  dataset->keys = KeysFor(size);
  const auto start = std::chrono::steady_clock::now();
  dataset->store = OpenStore(kind, Sync::kNone);
  dataset->store->Load(dataset->keys, size);
  const double load_s = Seconds(start);
  dataset->store->Settle();
  std::fprintf(stderr, "# dataset %s %s: %llu keys loaded in %.1f s, settled in %.1f s\n", KindName(kind),
               SizeName(size).c_str(), static_cast<unsigned long long>(dataset->keys), load_s,
               Seconds(start) - load_s);
  std::string value;
  if (!dataset->store->Get(Key(dataset->keys - 1), &value) ||
      value != TheValues().Get(dataset->keys - 1, size)) {
    Die(std::string(KindName(kind)) + ": the last loaded key reads back wrong");
  }
  current = std::move(dataset);
  return *current;
}

// ---------------------------------------------------------------------------
// Benchmarks

void SetRates(benchmark::State& state, size_t size) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

void BM_GetHot(benchmark::State& state, Kind kind, size_t size) {
  Dataset& dataset = AcquireDataset(kind, size);
  const std::string key = Key(dataset.keys / 2);
  std::string value;
  for (auto _ : state) {
    if (!dataset.store->Get(key, &value)) Die("hot key missing");
    benchmark::DoNotOptimize(value.data());
  }
  if (value.size() != size) Die("hot key has the wrong size");
  SetRates(state, size);
}

void BM_GetRandom(benchmark::State& state, Kind kind, size_t size) {
  Dataset& dataset = AcquireDataset(kind, size);
  Random random(42);
  char key[kKeySize];
  std::string value;
  for (auto _ : state) {
    FormatKey(random.Uniform(dataset.keys), key);
    if (!dataset.store->Get(std::string_view(key, kKeySize), &value)) Die("random key missing");
    benchmark::DoNotOptimize(value.data());
  }
  SetRates(state, size);
  state.counters["keys"] = static_cast<double>(dataset.keys);
}

// The store every thread of one put run writes to, and the next key.
std::unique_ptr<Store>& PutStore() {
  static auto* store = new std::unique_ptr<Store>();
  return *store;
}
std::atomic<uint64_t> g_next_key{0};

// Thread 0 opens a fresh store before the loop and closes it after; the
// benchmark library holds every thread at the start and end of the loop.
void BM_Put(benchmark::State& state, Kind kind, size_t size, Sync sync) {
  if (state.thread_index() == 0) {
    ReleaseDataset();
    PutStore() = OpenStore(kind, sync);
    g_next_key.store(0);
  }
  char key[kKeySize];
  for (auto _ : state) {
    const uint64_t i = g_next_key.fetch_add(1, std::memory_order_relaxed);
    FormatKey(i, key);
    PutStore()->Put(std::string_view(key, kKeySize), TheValues().Get(i, size));
  }
  SetRates(state, size);
  if (state.thread_index() == 0) {
    uint64_t syncs = 0, writes = 0;
    if (PutStore()->SyncCounts(&syncs, &writes) && writes != 0) {
      state.counters["syncs_per_put"] = static_cast<double>(syncs) / static_cast<double>(writes);
    }
    PutStore().reset();
  }
}

// raft-kv open with and without hint files. The data directory is built once
// (Open keys, 128-byte values, sync none, closed cleanly).
struct OpenDataset {
  std::unique_ptr<Store> holder;  // owns (and finally removes) the directory
  std::string dir;
  uint64_t keys = 0;
};

std::unique_ptr<OpenDataset>& TheOpenDataset() {
  static auto* dataset = new std::unique_ptr<OpenDataset>();
  return *dataset;
}

// A Store that only owns a directory.
class DirOnly final : public Store {
 public:
  explicit DirOnly(std::string dir) : Store(std::move(dir)) {}
  bool Get(std::string_view, std::string*) override { return false; }
  void Put(std::string_view, std::string_view) override {}
};

size_t CountFiles(const std::string& dir, std::string_view suffix) {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      ++n;
  }
  return n;
}

OpenDataset& AcquireOpenDataset() {
  std::unique_ptr<OpenDataset>& current = TheOpenDataset();
  if (current != nullptr) return *current;
  auto dataset = std::make_unique<OpenDataset>();
  dataset->keys = Cfg().open_keys;
  dataset->dir = NewDir("raft-kv-open");
  dataset->holder = std::make_unique<DirOnly>(dataset->dir);
  const auto start = std::chrono::steady_clock::now();
  {
    storage::Options options;
    options.sync_mode = storage::SyncMode::kNone;
    auto engine = storage::Engine::Open(options, dataset->dir);
    if (!engine.ok()) Die("raft-kv open: " + engine.status().ToString());
    char key[kKeySize];
    for (uint64_t i = 0; i < dataset->keys; ++i) {
      FormatKey(i, key);
      Status s = (*engine)->Put(std::string_view(key, kKeySize), TheValues().Get(i, 128));
      if (!s.ok()) Die("raft-kv put: " + s.ToString());
    }
    Status s = (*engine)->Close();
    if (!s.ok()) Die("raft-kv close: " + s.ToString());
  }
  std::fprintf(stderr, "# open dataset: %llu keys x 128B in %.1f s; %zu data files, %zu hint files\n",
               static_cast<unsigned long long>(dataset->keys), Seconds(start),
               CountFiles(dataset->dir, ".data"), CountFiles(dataset->dir, ".hint"));
  current = std::move(dataset);
  return *current;
}

void BM_Open(benchmark::State& state, bool hints) {
  ReleaseDataset();
  OpenDataset& dataset = AcquireOpenDataset();
  double rss_per_key = 0, keydir_per_key = 0, hint_files = 0, scanned_files = 0, data_files = 0;
  for (auto _ : state) {
    if (!hints) {
      for (const auto& entry : std::filesystem::directory_iterator(dataset.dir)) {
        if (entry.path().extension() == ".hint") std::filesystem::remove(entry.path());
      }
    }
    malloc_trim(0);
    const uint64_t rss_before = RssAnonBytes();
    const auto start = std::chrono::steady_clock::now();
    storage::Options options;
    options.sync_mode = storage::SyncMode::kNone;
    auto engine = storage::Engine::Open(options, dataset.dir);
    const double open_s = Seconds(start);
    if (!engine.ok()) Die("raft-kv open: " + engine.status().ToString());
    state.SetIterationTime(open_s);
    malloc_trim(0);
    const uint64_t rss_after = RssAnonBytes();
    const storage::Stats stats = (*engine)->GetStats();
    if (stats.keys != dataset.keys) Die("raft-kv open: wrong key count " + std::to_string(stats.keys));
    rss_per_key =
        (static_cast<double>(rss_after) - static_cast<double>(rss_before)) / static_cast<double>(stats.keys);
    keydir_per_key = static_cast<double>(stats.keydir_bytes) / static_cast<double>(stats.keys);
    hint_files = static_cast<double>(stats.recovered_hint_files);
    scanned_files = static_cast<double>(stats.recovered_scanned_files);
    data_files = static_cast<double>(stats.data_files);
    Status s = (*engine)->Close();
    if (!s.ok()) Die("raft-kv close: " + s.ToString());
  }
  state.counters["keys"] = static_cast<double>(dataset.keys);
  state.counters["rss_B_per_key"] = rss_per_key;
  state.counters["keydir_B_per_key"] = keydir_per_key;
  state.counters["files"] = data_files;
  state.counters["from_hint"] = hint_files;
  state.counters["scanned"] = scanned_files;
}

// ---------------------------------------------------------------------------
// Registration

const char* const kGetOps[] = {"get_hot", "get_random"};
const char* const kPutOps[] = {"put_none", "put_always", "put_group8", "put_group64"};

std::string BenchName(const char* op, size_t size, Kind kind) {
  return std::string(op) + "/" + SizeName(size) + "/" + KindName(kind);
}

void RegisterAll() {
  const Config& cfg = Cfg();
  for (size_t size : cfg.sizes) {
    for (Kind kind : kKinds) {
      benchmark::RegisterBenchmark(BenchName("get_hot", size, kind).c_str(), BM_GetHot, kind, size)
          ->MinTime(cfg.get_min_time);
      benchmark::RegisterBenchmark(BenchName("get_random", size, kind).c_str(), BM_GetRandom, kind, size)
          ->MinTime(cfg.get_min_time);
      const auto none_ops =
          static_cast<int64_t>(std::clamp<uint64_t>(cfg.put_none_bytes / size, 2000, cfg.put_none_ops));
      benchmark::RegisterBenchmark(BenchName("put_none", size, kind).c_str(), BM_Put, kind, size, Sync::kNone)
          ->Iterations(none_ops);
      // Synced puts run a fixed number of times: an fdatasync costs from
      // ~0.1 to several ms on a shared disk, so a time-based count could run
      // for minutes. LMDB, serialized and two syncs per commit, gets the
      // single-writer count in the group runs too.
      benchmark::RegisterBenchmark(BenchName("put_always", size, kind).c_str(), BM_Put, kind, size,
                                   Sync::kAlways)
          ->Iterations(static_cast<int64_t>(cfg.always_ops));
      for (int threads : {8, 64}) {
        const std::string op = "put_group" + std::to_string(threads);
        const uint64_t total =
            kind == Kind::kLmdb ? cfg.always_ops : cfg.group_ops * static_cast<uint64_t>(threads) / 8;
        benchmark::RegisterBenchmark(BenchName(op.c_str(), size, kind).c_str(), BM_Put, kind, size,
                                     Sync::kGroup)
            ->Threads(threads)
            ->UseRealTime()
            ->Iterations(static_cast<int64_t>((total + static_cast<uint64_t>(threads) - 1) /
                                              static_cast<uint64_t>(threads)));
      }
    }
  }
  benchmark::RegisterBenchmark("open/128B/raft-kv-hints", BM_Open, true)->UseManualTime()->Iterations(3);
  benchmark::RegisterBenchmark("open/128B/raft-kv-nohints", BM_Open, false)->UseManualTime()->Iterations(3);
}

// ---------------------------------------------------------------------------
// The side-by-side summary

class SummaryReporter final : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred || run.iterations == 0) continue;
      Sample sample;
      // Gets (one thread, in memory): CPU time of the benchmark thread, which
      // other processes on a shared machine do not inflate. Everything else
      // waits on the disk or on other threads: wall time.
      const bool get = run.run_name.function_name.rfind("get_", 0) == 0;
      sample.ns = (get ? run.cpu_accumulated_time : run.real_accumulated_time) * 1e9 /
                  static_cast<double>(run.iterations);
      for (const auto& [name, counter] : run.counters) sample.counters[name] = counter.value;
      samples_[run.run_name.function_name].push_back(std::move(sample));
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::string out = Summary();
    GetOutputStream() << out;
    GetOutputStream().flush();
  }

 private:
  struct Sample {
    double ns = 0;
    std::map<std::string, double> counters;
  };

  // The median sample (by ns/op) of a benchmark, or nullptr.
  const Sample* Find(const std::string& name) const {
    auto it = samples_.find(name);
    if (it == samples_.end() || it->second.empty()) return nullptr;
    std::vector<const Sample*> sorted;
    for (const Sample& s : it->second) sorted.push_back(&s);
    std::sort(sorted.begin(), sorted.end(), [](const Sample* a, const Sample* b) { return a->ns < b->ns; });
    return sorted[sorted.size() / 2];
  }

  // Three significant digits or more: 12345, 123, 12.3, 1.23, 0.123.
  static std::string Number(double a) {
    return Format(a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : "%.3f", a);
  }

  static std::string Format(const char* format, double a) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), format, a);
    return buf;
  }

  std::string Table(bool mbps) const {
    std::string out;
    char line[256];
    std::snprintf(line, sizeof(line), "%-12s %5s %10s %10s %10s %10s   %8s %8s %8s\n", "op", "size",
                  "raft-kv", "LMDB", "LevelDB", "RocksDB", "LMDB/rkv", "LvDB/rkv", "Rcks/rkv");
    out += line;
    std::vector<std::string> ops(std::begin(kGetOps), std::end(kGetOps));
    ops.insert(ops.end(), std::begin(kPutOps), std::end(kPutOps));
    for (const std::string& op : ops) {
      for (size_t size : Cfg().sizes) {
        double ns[4] = {0, 0, 0, 0};
        bool any = false;
        for (size_t k = 0; k < 4; ++k) {
          if (const Sample* s = Find(BenchName(op.c_str(), size, kKinds[k]))) {
            ns[k] = s->ns;
            any = true;
          }
        }
        if (!any) continue;
        std::string cells[4], ratios[3];
        for (size_t k = 0; k < 4; ++k) {
          if (ns[k] <= 0) {
            cells[k] = "-";
          } else {
            cells[k] = Number(mbps ? static_cast<double>(size) * 1e3 / ns[k] : ns[k]);
          }
        }
        for (size_t k = 1; k < 4; ++k) {
          ratios[k - 1] = ns[0] > 0 && ns[k] > 0 ? Format("%.2fx", ns[k] / ns[0]) : "-";
        }
        std::snprintf(line, sizeof(line), "%-12s %5s %10s %10s %10s %10s   %8s %8s %8s\n", op.c_str(),
                      SizeName(size).c_str(), cells[0].c_str(), cells[1].c_str(), cells[2].c_str(),
                      cells[3].c_str(), ratios[0].c_str(), ratios[1].c_str(), ratios[2].c_str());
        out += line;
      }
    }
    return out;
  }

  std::string Summary() const {
    if (samples_.empty()) return "";
    std::string out =
        "\nSide by side: ns/op, median of repetitions. get_*: CPU time of the benchmark thread; "
        "put_*: wall time (put_group*: wall time / total puts).\n";
    out += "Ratio columns: other engine's ns/op / raft-kv's (> 1: raft-kv is faster).\n";
    out += Table(false);
    out += "\nSide by side: MB/s of values (value size / ns/op).\n";
    out += Table(true);

    std::string keys = "\nget_random keys per size:";
    bool any_keys = false;
    for (size_t size : Cfg().sizes) {
      for (Kind kind : kKinds) {
        const Sample* s = Find(BenchName("get_random", size, kind));
        if (s == nullptr || s->counters.count("keys") == 0) continue;
        keys += " " + SizeName(size) + "=" + Format("%.0f", s->counters.at("keys"));
        any_keys = true;
        break;
      }
    }
    if (any_keys) out += keys + "\n";

    std::string group;
    for (size_t size : Cfg().sizes) {
      const Sample* always = Find(BenchName("put_always", size, Kind::kRaftKv));
      const Sample* g8 = Find(BenchName("put_group8", size, Kind::kRaftKv));
      const Sample* g64 = Find(BenchName("put_group64", size, Kind::kRaftKv));
      if (always == nullptr || (g8 == nullptr && g64 == nullptr)) continue;
      auto syncs = [](const Sample* s) {
        auto it = s->counters.find("syncs_per_put");
        return it == s->counters.end() ? std::string() : Format(" [%.3f syncs/put]", it->second);
      };
      group +=
          "  " + SizeName(size) + ": always " + Format("%.0f", 1e9 / always->ns) + " ops/s" + syncs(always);
      if (g8 != nullptr) {
        group +=
            ", group8 " + Format("%.0f", 1e9 / g8->ns) + Format(" (%.1fx)", always->ns / g8->ns) + syncs(g8);
      }
      if (g64 != nullptr) {
        group += ", group64 " + Format("%.0f", 1e9 / g64->ns) + Format(" (%.1fx)", always->ns / g64->ns) +
                 syncs(g64);
      }
      group += "\n";
    }
    if (!group.empty()) out += "\nraft-kv group commit vs always (ops/s):\n" + group;

    bool first_open = true;
    for (const char* name : {"open/128B/raft-kv-hints", "open/128B/raft-kv-nohints"}) {
      const Sample* s = Find(name);
      if (s == nullptr) continue;
      if (first_open) out += "\n";
      first_open = false;
      auto counter = [&](const char* c) { return s->counters.count(c) != 0 ? s->counters.at(c) : 0.0; };
      char line[320];
      std::snprintf(line, sizeof(line),
                    "%s: %.0f keys opened in %.3f s (%.0f files: %.0f from hint files, %.0f scanned); "
                    "RSS +%.1f B/key, keydir %.1f B/key\n",
                    name, counter("keys"), s->ns / 1e9, counter("files"), counter("from_hint"),
                    counter("scanned"), counter("rss_B_per_key"), counter("keydir_B_per_key"));
      out += line;
    }
    return out;
  }

  std::map<std::string, std::vector<Sample>> samples_;
};

// Takes our own flags out of argv; the rest goes to the benchmark library.
void ParseFlags(int* argc, char** argv) {
  Config& cfg = Cfg();
  const char* env_quick = std::getenv("RKV_BENCH_QUICK");
  cfg.quick = env_quick != nullptr && *env_quick != '\0' && std::strcmp(env_quick, "0") != 0;
  uint64_t data_cap_mib = 0, max_keys = 0;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      cfg.quick = true;
    } else if (arg.rfind("--data_cap_mib=", 0) == 0) {
      data_cap_mib = std::stoull(std::string(arg.substr(15)));
    } else if (arg.rfind("--max_keys=", 0) == 0) {
      max_keys = std::stoull(std::string(arg.substr(11)));
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  if (cfg.quick) {
    cfg.sizes = {128, 4096};
    cfg.max_keys = 100'000;
    cfg.data_cap_bytes = 256ull << 20;
    cfg.put_none_bytes = 32ull << 20;
    cfg.put_none_ops = 50'000;
    cfg.open_keys = 200'000;
    cfg.get_min_time = 0.1;
    cfg.always_ops = 200;
    cfg.group_ops = 800;
  } else {
    cfg.sizes = {128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  }
  if (data_cap_mib != 0) cfg.data_cap_bytes = data_cap_mib << 20;
  if (max_keys != 0) cfg.max_keys = max_keys;
}

}  // namespace
}  // namespace rkv::bench

int main(int argc, char** argv) {
  using namespace rkv::bench;  // NOLINT(build/namespaces)
  ParseFlags(&argc, argv);
  rkv::log::SetLevel(rkv::log::Level::kWarn);
  MakeRoot();
  RegisterAll();
  // The summary rides on the console reporter; other formats run plain.
  bool console = true;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.rfind("--benchmark_format=", 0) == 0 && arg != "--benchmark_format=console") console = false;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const Config& cfg = Cfg();
  std::fprintf(stderr, "# raft-kv-engine-bench%s: data in %s; random-get keys = min(%llu, %llu MiB / size)\n",
               cfg.quick ? " --quick" : "", RootDir().c_str(), static_cast<unsigned long long>(cfg.max_keys),
               static_cast<unsigned long long>(cfg.data_cap_bytes >> 20));
  if (console) {
    SummaryReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
  } else {
    benchmark::RunSpecifiedBenchmarks();
  }
  ReleaseDataset();
  TheOpenDataset().reset();
  benchmark::Shutdown();
  RemoveRoot();
  return 0;
}
