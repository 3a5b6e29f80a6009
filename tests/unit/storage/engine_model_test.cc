// Random operations against the engine and a std::map at the same time, with
// reopens and merges in between: after every step the engine must agree with
// the map. Small data files force many rolls and merges.
#include <gtest/gtest.h>

#include <map>

#include "common/random.h"
#include "env/mem_env.h"
#include "storage/engine.h"
#include "support/test_util.h"

namespace rkv::storage {
namespace {

struct ModelParam {
  SyncMode mode;
  uint64_t seed;
};

class EngineModelTest : public ::testing::TestWithParam<ModelParam> {};

TEST_P(EngineModelTest, RandomOperationsMatchAMap) {
  const uint64_t seed = test::TestSeed(GetParam().seed);
  SCOPED_TRACE("seed=" + std::to_string(seed) + " (rerun with RKV_TEST_SEED)");
  Random rnd(seed);
  MemEnv env;
  Options options;
  options.env = &env;
  options.sync_mode = GetParam().mode;
  options.data_file_size_max = 2048;
  options.write_buffer_size = 4096;
  options.merge_dead_bytes_min = 0;
  options.background_merge = false;
  auto opened = Engine::Open(options, "/db");
  ASSERT_OK(opened);
  std::unique_ptr<Engine> engine = std::move(*opened);
  std::map<std::string, std::string> model;

  auto key = [&] { return "k" + std::to_string(rnd.Uniform(200)); };
  auto value = [&] { return std::string(rnd.Uniform(300), static_cast<char>('a' + rnd.Uniform(26))); };

  for (int step = 0; step < 4000; ++step) {
    const uint64_t op = rnd.Uniform(100);
    if (op < 50) {
      std::string k = key(), v = value();
      ASSERT_OK(engine->Put(k, v));
      model[k] = v;
    } else if (op < 65) {
      std::string k = key();
      ASSERT_OK(engine->Delete(k));
      model.erase(k);
    } else if (op < 75) {
      WriteBatch batch;
      std::map<std::string, std::string> next = model;
      for (uint64_t i = rnd.Uniform(6); i > 0; --i) {
        std::string k = key();
        if (rnd.OneIn(3)) {
          batch.Delete(k);
          next.erase(k);
        } else {
          std::string v = value();
          batch.Put(k, v);
          next[k] = v;
        }
      }
      ASSERT_OK(engine->Write(batch));
      model = std::move(next);
    } else if (op < 95) {
      std::string k = key(), v;
      Status s = engine->Get(k, &v);
      auto it = model.find(k);
      if (it == model.end()) {
        ASSERT_TRUE(s.IsNotFound()) << "step " << step << " key " << k << ": " << s.ToString();
      } else {
        ASSERT_OK(s);
        ASSERT_EQ(v, it->second) << "step " << step << " key " << k;
      }
    } else if (op < 97) {
      ASSERT_OK(engine->Merge());
    } else if (op < 99) {
      ASSERT_OK(engine->Close());
      engine.reset();
      opened = Engine::Open(options, "/db");
      ASSERT_OK(opened);
      engine = std::move(*opened);
    } else {
      ScanOptions scan;
      scan.limit = 100000;
      auto r = engine->Scan(scan);
      ASSERT_OK(r);
      ASSERT_EQ(r->size(), model.size()) << "step " << step;
      size_t i = 0;
      for (const auto& [k, v] : model) {
        ASSERT_EQ((*r)[i].key, k);
        ASSERT_EQ((*r)[i].value, v);
        ++i;
      }
    }
  }
  EXPECT_EQ(engine->GetStats().keys, model.size());
}

INSTANTIATE_TEST_SUITE_P(Seeds, EngineModelTest,
                         ::testing::Values(ModelParam{SyncMode::kNone, 1}, ModelParam{SyncMode::kNone, 2},
                                           ModelParam{SyncMode::kGroup, 3}, ModelParam{SyncMode::kAlways, 4}));

}  // namespace
}  // namespace rkv::storage
