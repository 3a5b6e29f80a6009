// MemEnv specifics: path handling, copies into scratch, directory renames,
// concurrent use.
#include "env/mem_env.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "support/test_util.h"

namespace rkv {
namespace {

TEST(MemEnvTest, NormalizesPaths) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/", "/"},        {"//", "/"},         {"/a//b/", "/a/b"}, {"/a/./b", "/a/b"},
      {"/a/../b", "/b"}, {"/..", "/"},        {".", "."},         {"./", "."},
      {"a/b", "a/b"},    {"./a//b/.", "a/b"}, {"a/..", "."},      {"../a", "../a"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(MemEnv::NormalizePath(in), out) << in;
}

TEST(MemEnvTest, RelativePathsLiveUnderDot) {
  MemEnv env;
  ASSERT_OK(env.CreateDir("data"));
  ASSERT_OK(WriteFileAtomically(&env, "data/f", "x", /*sync=*/true));
  EXPECT_TRUE(env.FileExists("./data/f"));
  EXPECT_FALSE(env.FileExists("/data/f"));  // "/" is another tree
  Result<std::vector<std::string>> children = env.GetChildren(".");
  ASSERT_OK(children);
  EXPECT_EQ(*children, std::vector<std::string>{"data"});
  EXPECT_TRUE(env.NewWritableFile("../outside").status().IsInvalidArgument());
  EXPECT_TRUE(env.NewWritableFile("").status().IsInvalidArgument());
}

TEST(MemEnvTest, ReadsCopyIntoScratchEvenWhenAskedToMap) {
  MemEnv env;
  ASSERT_OK(WriteFileAtomically(&env, "/f", "abcdef", /*sync=*/false));
  RandomAccessOptions options;
  options.map_bytes = 1 << 20;
  Result<std::unique_ptr<RandomAccessFile>> reader = env.NewRandomAccessFile("/f", options);
  ASSERT_OK(reader);
  char scratch[8];
  std::string_view got;
  ASSERT_OK((*reader)->Read(1, 3, scratch, &got));
  EXPECT_EQ(got, "bcd");
  EXPECT_EQ(got.data(), scratch);
}

TEST(MemEnvTest, RenamingADirectoryMovesItsFiles) {
  MemEnv env;
  ASSERT_OK(env.CreateDir("/snap.tmp"));
  ASSERT_OK(WriteFileAtomically(&env, "/snap.tmp/f", "x", /*sync=*/false));
  ASSERT_OK(env.CreateDir("/snap"));  // an empty target is replaced
  ASSERT_OK(env.RenameFile("/snap.tmp", "/snap"));
  EXPECT_FALSE(env.FileExists("/snap.tmp"));
  Result<std::string> data = ReadFileToString(&env, "/snap/f");
  ASSERT_OK(data);
  EXPECT_EQ(*data, "x");
  EXPECT_FALSE(env.RenameFile("/snap", "/snap/inner").ok());  // into itself
  ASSERT_OK(WriteFileAtomically(&env, "/file", "y", /*sync=*/false));
  EXPECT_FALSE(env.RenameFile("/file", "/snap").ok());  // a file onto a directory
  EXPECT_FALSE(env.DeleteDir("/").ok());
}

TEST(MemEnvTest, ConcurrentWritersAndReaders) {
  MemEnv env;
  ASSERT_OK(env.CreateDir("/d"));
  constexpr int kThreads = 4;
  constexpr int kRecords = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&env, t] {
      const std::string path = "/d/" + std::to_string(t);
      Result<std::unique_ptr<WritableFile>> file = env.NewWritableFile(path);
      ASSERT_OK(file);
      Result<std::unique_ptr<RandomAccessFile>> reader = env.NewRandomAccessFile(path);
      ASSERT_OK(reader);
      char scratch[8];
      std::string_view got;
      for (int i = 0; i < kRecords; ++i) {
        const std::string record = std::to_string(1000 + i);  // 4 bytes each
        ASSERT_OK((*file)->Append(record));
        ASSERT_OK((*reader)->Read(static_cast<uint64_t>(i) * 4, 4, scratch, &got));
        ASSERT_EQ(got, record);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    Result<uint64_t> size = env.GetFileSize("/d/" + std::to_string(t));
    ASSERT_OK(size);
    EXPECT_EQ(*size, 4u * kRecords);
  }
}

}  // namespace
}  // namespace rkv
