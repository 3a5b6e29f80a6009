// The behaviour every Env shares, run against PosixEnv (in a temporary
// directory), MemEnv and FaultEnv (with no fault armed).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "env/env.h"
#include "env/fault_env.h"
#include "env/mem_env.h"
#include "support/test_util.h"

namespace rkv {
namespace {

enum class EnvKind { kPosix, kMem, kFault };

std::string KindName(const testing::TestParamInfo<EnvKind>& info) {
  switch (info.param) {
    case EnvKind::kPosix: return "Posix";
    case EnvKind::kMem: return "Mem";
    case EnvKind::kFault: return "Fault";
  }
  return "Unknown";
}

class EnvBehaviourTest : public testing::TestWithParam<EnvKind> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case EnvKind::kPosix:
        temp_ = std::make_unique<test::TempDir>();
        env_ = Env::Posix();
        dir_ = temp_->path();
        return;
      case EnvKind::kMem: owned_ = std::make_unique<MemEnv>(); break;
      case EnvKind::kFault: owned_ = std::make_unique<FaultEnv>(); break;
    }
    env_ = owned_.get();
    dir_ = "/test";
    ASSERT_OK(env_->CreateDir(dir_));
  }

  std::string Path(const std::string& name) const { return JoinPath(dir_, name); }

  void Write(const std::string& name, std::string_view data) {
    Result<std::unique_ptr<WritableFile>> file = env_->NewWritableFile(Path(name));
    ASSERT_OK(file);
    ASSERT_OK((*file)->Append(data));
    ASSERT_OK((*file)->Close());
  }

  std::string Read(const std::string& name) {
    Result<std::string> data = ReadFileToString(env_, Path(name));
    EXPECT_OK(data);
    return data.ok() ? *data : std::string("<error>");
  }

  std::unique_ptr<test::TempDir> temp_;
  std::unique_ptr<Env> owned_;
  Env* env_ = nullptr;
  std::string dir_;
};

TEST_P(EnvBehaviourTest, AppendsAreReadBack) {
  Result<std::unique_ptr<WritableFile>> file = env_->NewWritableFile(Path("f"));
  ASSERT_OK(file);
  EXPECT_EQ((*file)->Size(), 0u);
  ASSERT_OK((*file)->Append("hello"));
  ASSERT_OK((*file)->Append(" world"));
  EXPECT_EQ((*file)->Size(), 11u);
  ASSERT_OK((*file)->Sync());

  // Unbuffered: a reader sees the bytes before the writer is closed.
  Result<std::unique_ptr<RandomAccessFile>> reader = env_->NewRandomAccessFile(Path("f"));
  ASSERT_OK(reader);
  char scratch[16];
  std::string_view got;
  ASSERT_OK((*reader)->Read(6, 5, scratch, &got));
  EXPECT_EQ(got, "world");
  ASSERT_OK((*reader)->Read(0, 0, scratch, &got));
  EXPECT_EQ(got, "");

  ASSERT_OK((*file)->Close());
  Result<uint64_t> size = env_->GetFileSize(Path("f"));
  ASSERT_OK(size);
  EXPECT_EQ(*size, 11u);
  EXPECT_TRUE(env_->FileExists(Path("f")));
  EXPECT_EQ(Read("f"), "hello world");
}

TEST_P(EnvBehaviourTest, NewWritableFileTruncatesAndAppendableContinues) {
  Write("f", "old contents");
  Write("f", "new");
  EXPECT_EQ(Read("f"), "new");

  Result<std::unique_ptr<WritableFile>> file = env_->NewAppendableFile(Path("f"));
  ASSERT_OK(file);
  EXPECT_EQ((*file)->Size(), 3u);
  ASSERT_OK((*file)->Append("+more"));
  EXPECT_EQ((*file)->Size(), 8u);
  ASSERT_OK((*file)->Close());
  EXPECT_EQ(Read("f"), "new+more");

  Result<std::unique_ptr<WritableFile>> created = env_->NewAppendableFile(Path("fresh"));
  ASSERT_OK(created);
  EXPECT_EQ((*created)->Size(), 0u);
  EXPECT_TRUE(env_->FileExists(Path("fresh")));
}

TEST_P(EnvBehaviourTest, ReadPastEndIsShortRead) {
  Write("f", "0123456789");
  Result<std::unique_ptr<RandomAccessFile>> reader = env_->NewRandomAccessFile(Path("f"));
  ASSERT_OK(reader);
  char scratch[32];
  std::string_view got;
  for (const auto& [offset, n] :
       std::vector<std::pair<uint64_t, size_t>>{{5, 6}, {10, 1}, {50, 2}}) {
    Status s = (*reader)->Read(offset, n, scratch, &got);
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    EXPECT_NE(s.message().find("short read"), std::string::npos) << s.ToString();
    EXPECT_NE(s.message().find(Path("f")), std::string::npos) << s.ToString();
  }
  ASSERT_OK((*reader)->Read(5, 5, scratch, &got));
  EXPECT_EQ(got, "56789");
}

TEST_P(EnvBehaviourTest, MissingPathsAreNotFound) {
  EXPECT_FALSE(env_->FileExists(Path("nope")));
  EXPECT_TRUE(env_->NewRandomAccessFile(Path("nope")).status().IsNotFound());
  EXPECT_TRUE(env_->GetFileSize(Path("nope")).status().IsNotFound());
  EXPECT_TRUE(env_->DeleteFile(Path("nope")).IsNotFound());
  EXPECT_TRUE(env_->RenameFile(Path("nope"), Path("other")).IsNotFound());
  EXPECT_TRUE(env_->GetChildren(Path("nodir")).status().IsNotFound());
  EXPECT_TRUE(env_->TruncateFile(Path("nope"), 0).IsNotFound());
  EXPECT_TRUE(env_->SyncDir(Path("nodir")).IsNotFound());
  Status s = env_->NewRandomAccessFile(Path("nope")).status();
  EXPECT_NE(s.message().find(Path("nope")), std::string::npos) << s.ToString();
}

TEST_P(EnvBehaviourTest, FilesNeedAnExistingDirectory) {
  EXPECT_TRUE(env_->NewWritableFile(Path("nodir/f")).status().IsNotFound());
  EXPECT_TRUE(env_->NewAppendableFile(Path("nodir/f")).status().IsNotFound());
  EXPECT_FALSE(env_->CreateDir(Path("a/b")).ok());  // not recursive
  ASSERT_OK(env_->CreateDir(Path("a")));
  ASSERT_OK(env_->CreateDir(Path("a")));  // already there: fine
  ASSERT_OK(env_->CreateDir(Path("a/b")));
  Write("a/b/f", "x");
  EXPECT_EQ(Read("a/b/f"), "x");
  Write("plain", "x");
  EXPECT_FALSE(env_->CreateDir(Path("plain")).ok());  // a file is in the way
}

TEST_P(EnvBehaviourTest, GetChildrenIsSortedAndListsDirectories) {
  Write("b", "");
  Write("a", "");
  Write("c.data", "");
  ASSERT_OK(env_->CreateDir(Path("sub")));
  Result<std::vector<std::string>> children = env_->GetChildren(dir_);
  ASSERT_OK(children);
  EXPECT_EQ(*children, (std::vector<std::string>{"a", "b", "c.data", "sub"}));
  Result<std::vector<std::string>> empty = env_->GetChildren(Path("sub"));
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
  EXPECT_FALSE(env_->GetChildren(Path("a")).ok());  // not a directory
}

TEST_P(EnvBehaviourTest, DeleteFileAndDir) {
  Write("f", "x");
  ASSERT_OK(env_->DeleteFile(Path("f")));
  EXPECT_FALSE(env_->FileExists(Path("f")));

  ASSERT_OK(env_->CreateDir(Path("d")));
  Write("d/f", "x");
  EXPECT_FALSE(env_->DeleteDir(Path("d")).ok());   // not empty
  EXPECT_FALSE(env_->DeleteFile(Path("d")).ok());  // a directory
  ASSERT_OK(env_->DeleteFile(Path("d/f")));
  ASSERT_OK(env_->DeleteDir(Path("d")));
  EXPECT_FALSE(env_->FileExists(Path("d")));
  EXPECT_TRUE(env_->DeleteDir(Path("d")).IsNotFound());
}

TEST_P(EnvBehaviourTest, RenameReplacesTheTarget) {
  Write("from", "new");
  Write("to", "old");
  ASSERT_OK(env_->RenameFile(Path("from"), Path("to")));
  EXPECT_FALSE(env_->FileExists(Path("from")));
  EXPECT_EQ(Read("to"), "new");
  Result<std::vector<std::string>> children = env_->GetChildren(dir_);
  ASSERT_OK(children);
  EXPECT_EQ(*children, std::vector<std::string>{"to"});
}

TEST_P(EnvBehaviourTest, OpenHandlesFollowARename) {
  Result<std::unique_ptr<WritableFile>> writer = env_->NewWritableFile(Path("a"));
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Append("one"));
  Result<std::unique_ptr<RandomAccessFile>> reader = env_->NewRandomAccessFile(Path("a"));
  ASSERT_OK(reader);
  ASSERT_OK(env_->RenameFile(Path("a"), Path("b")));
  ASSERT_OK((*writer)->Append("two"));
  char scratch[8];
  std::string_view got;
  ASSERT_OK((*reader)->Read(0, 6, scratch, &got));
  EXPECT_EQ(got, "onetwo");
  EXPECT_EQ(Read("b"), "onetwo");
}

TEST_P(EnvBehaviourTest, DeletedFileStaysReadableWhileOpen) {
  Write("f", "still here");
  Result<std::unique_ptr<RandomAccessFile>> reader = env_->NewRandomAccessFile(Path("f"));
  ASSERT_OK(reader);
  ASSERT_OK(env_->DeleteFile(Path("f")));
  EXPECT_FALSE(env_->FileExists(Path("f")));
  char scratch[16];
  std::string_view got;
  ASSERT_OK((*reader)->Read(0, 10, scratch, &got));
  EXPECT_EQ(got, "still here");
}

TEST_P(EnvBehaviourTest, HardLinksShareContents) {
  Result<std::unique_ptr<WritableFile>> writer = env_->NewWritableFile(Path("a"));
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Append("abc"));
  ASSERT_OK(env_->LinkFile(Path("a"), Path("b")));
  ASSERT_OK((*writer)->Append("def"));
  EXPECT_EQ(Read("b"), "abcdef");
  ASSERT_OK(env_->DeleteFile(Path("a")));
  EXPECT_EQ(Read("b"), "abcdef");
  Write("c", "");
  EXPECT_FALSE(env_->LinkFile(Path("b"), Path("c")).ok());  // the target exists
  EXPECT_TRUE(env_->LinkFile(Path("nope"), Path("d")).IsNotFound());
}

TEST_P(EnvBehaviourTest, TruncateCutsTheFile) {
  Write("f", "0123456789");
  ASSERT_OK(env_->TruncateFile(Path("f"), 4));
  EXPECT_EQ(Read("f"), "0123");
  EXPECT_TRUE(env_->TruncateFile(Path("f"), 5).IsInvalidArgument());
  ASSERT_OK(env_->TruncateFile(Path("f"), 0));
  EXPECT_EQ(Read("f"), "");

  // An appendable file reopened after a truncation continues at the new end.
  Result<std::unique_ptr<WritableFile>> file = env_->NewAppendableFile(Path("f"));
  ASSERT_OK(file);
  ASSERT_OK((*file)->Append("xy"));
  EXPECT_EQ(Read("f"), "xy");
}

TEST_P(EnvBehaviourTest, LockIsExclusiveUntilReleased) {
  Result<std::unique_ptr<FileLock>> lock = env_->LockFile(Path("LOCK"));
  ASSERT_OK(lock);
  EXPECT_TRUE(env_->FileExists(Path("LOCK")));
  Result<std::unique_ptr<FileLock>> again = env_->LockFile(Path("LOCK"));
  ASSERT_TRUE(again.status().IsBusy()) << again.status().ToString();
  EXPECT_NE(again.status().message().find(Path("LOCK")), std::string::npos);
  EXPECT_NE(again.status().message().find("in use by another raft-kv process"), std::string::npos);
  // Another spelling of the same path is the same lock.
  EXPECT_TRUE(env_->LockFile(dir_ + "/./LOCK").status().IsBusy());

  Result<std::unique_ptr<FileLock>> other = env_->LockFile(Path("OTHER"));
  ASSERT_OK(other);
  lock->reset();
  Result<std::unique_ptr<FileLock>> relocked = env_->LockFile(Path("LOCK"));
  EXPECT_OK(relocked);
  EXPECT_TRUE(env_->LockFile(Path("nodir/LOCK")).status().IsNotFound());
}

TEST_P(EnvBehaviourTest, WriteFileAtomicallyReplacesContents) {
  ASSERT_OK(WriteFileAtomically(env_, Path("CURRENT"), "first", /*sync=*/true));
  EXPECT_EQ(Read("CURRENT"), "first");
  ASSERT_OK(WriteFileAtomically(env_, Path("CURRENT"), "second", /*sync=*/false));
  EXPECT_EQ(Read("CURRENT"), "second");
  Result<std::vector<std::string>> children = env_->GetChildren(dir_);
  ASSERT_OK(children);
  EXPECT_EQ(*children, std::vector<std::string>{"CURRENT"});  // no temporary left
}

TEST_P(EnvBehaviourTest, CloseIsIdempotentAndEndsTheHandle) {
  Result<std::unique_ptr<WritableFile>> file = env_->NewWritableFile(Path("f"));
  ASSERT_OK(file);
  ASSERT_OK((*file)->Append("x"));
  ASSERT_OK((*file)->Close());
  ASSERT_OK((*file)->Close());
  EXPECT_FALSE((*file)->Append("y").ok());
  EXPECT_FALSE((*file)->Sync().ok());
  EXPECT_EQ(Read("f"), "x");
}

TEST_P(EnvBehaviourTest, SyncPreallocateAndSyncDir) {
  Result<std::unique_ptr<WritableFile>> file = env_->NewWritableFile(Path("f"));
  ASSERT_OK(file);
  ASSERT_OK((*file)->Preallocate(1 << 20));
  EXPECT_EQ((*file)->Size(), 0u);
  ASSERT_OK((*file)->Append("data"));
  ASSERT_OK((*file)->Sync());
  ASSERT_OK(env_->SyncDir(dir_));
  Result<uint64_t> size = env_->GetFileSize(Path("f"));
  ASSERT_OK(size);
  EXPECT_EQ(*size, 4u);                         // preallocation does not change the size
  EXPECT_FALSE(env_->SyncDir(Path("f")).ok());  // not a directory
}

INSTANTIATE_TEST_SUITE_P(AllEnvs, EnvBehaviourTest,
                         testing::Values(EnvKind::kPosix, EnvKind::kMem, EnvKind::kFault),
                         KindName);

}  // namespace
}  // namespace rkv
