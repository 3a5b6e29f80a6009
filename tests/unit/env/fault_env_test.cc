// FaultEnv: the durability model under Crash(), error injection, crash
// points and bit flips.
#include "env/fault_env.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "support/test_util.h"

namespace rkv {
namespace {

class FaultEnvTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(env_.CreateDir("/db"));
    ASSERT_OK(env_.SyncDir("/"));
  }

  // Writes `data` to `path`; syncs the file if `sync`. Leaves the directory
  // alone.
  void Write(const std::string& path, std::string_view data, bool sync) {
    Result<std::unique_ptr<WritableFile>> file = env_.NewWritableFile(path);
    ASSERT_OK(file);
    ASSERT_OK((*file)->Append(data));
    if (sync) ASSERT_OK((*file)->Sync());
  }

  // Appends to an existing file without syncing.
  void Append(const std::string& path, std::string_view data) {
    Result<std::unique_ptr<WritableFile>> file = env_.NewAppendableFile(path);
    ASSERT_OK(file);
    ASSERT_OK((*file)->Append(data));
  }

  std::string Read(const std::string& path) {
    Result<std::string> data = ReadFileToString(&env_, path);
    EXPECT_OK(data);
    return data.ok() ? *data : std::string("<error>");
  }

  FaultEnv env_;
};

TEST_F(FaultEnvTest, CrashKeepsSyncedBytesAndDropsTheRest) {
  Result<std::unique_ptr<WritableFile>> file = env_.NewWritableFile("/db/f");
  ASSERT_OK(file);
  ASSERT_OK((*file)->Append("abc"));
  ASSERT_OK((*file)->Sync());
  ASSERT_OK((*file)->Append("def"));
  ASSERT_OK(env_.SyncDir("/db"));
  EXPECT_EQ(env_.SyncedSize("/db/f"), 3u);
  EXPECT_EQ(Read("/db/f"), "abcdef");

  env_.Crash();
  EXPECT_EQ(Read("/db/f"), "abc");
  EXPECT_EQ(env_.SyncedSize("/db/f"), 3u);
}

TEST_F(FaultEnvTest, SyncThroughAnyHandleOrLinkCoversTheFile) {
  Write("/db/f", "abc", /*sync=*/false);
  ASSERT_OK(env_.LinkFile("/db/f", "/db/g"));
  Result<std::unique_ptr<WritableFile>> other = env_.NewAppendableFile("/db/g");
  ASSERT_OK(other);
  ASSERT_OK((*other)->Append("def"));
  ASSERT_OK((*other)->Sync());
  ASSERT_OK(env_.SyncDir("/db"));
  env_.Crash();
  EXPECT_EQ(Read("/db/f"), "abcdef");
  EXPECT_EQ(Read("/db/g"), "abcdef");
}

TEST_F(FaultEnvTest, FileCreatedWithoutSyncDirVanishes) {
  Write("/db/f", "synced", /*sync=*/true);
  EXPECT_FALSE(env_.IsDurable("/db/f"));
  EXPECT_EQ(env_.SyncedSize("/db/f"), 6u);
  env_.Crash();
  EXPECT_FALSE(env_.FileExists("/db/f"));

  Write("/db/f", "synced", /*sync=*/true);
  ASSERT_OK(env_.SyncDir("/db"));
  EXPECT_TRUE(env_.IsDurable("/db/f"));
  env_.Crash();
  EXPECT_EQ(Read("/db/f"), "synced");
}

TEST_F(FaultEnvTest, DurableEntryOfAnUnsyncedFileComesBackEmpty) {
  Write("/db/f", "never synced", /*sync=*/false);
  ASSERT_OK(env_.SyncDir("/db"));
  env_.Crash();
  EXPECT_TRUE(env_.FileExists("/db/f"));
  EXPECT_EQ(Read("/db/f"), "");
}

TEST_F(FaultEnvTest, DirectoryNeedsItsParentSynced) {
  ASSERT_OK(env_.CreateDir("/db/sub"));
  ASSERT_OK(env_.SyncDir("/db/sub"));
  EXPECT_FALSE(env_.IsDurable("/db/sub"));
  env_.Crash();
  EXPECT_FALSE(env_.FileExists("/db/sub"));

  ASSERT_OK(env_.CreateDir("/db/sub"));
  ASSERT_OK(env_.SyncDir("/db"));
  env_.Crash();
  EXPECT_TRUE(env_.FileExists("/db/sub"));
  EXPECT_TRUE(env_.FileExists("/db"));  // synced in SetUp
}

TEST_F(FaultEnvTest, DeleteWithoutSyncDirComesBack) {
  Write("/db/f", "keep me", /*sync=*/true);
  ASSERT_OK(env_.SyncDir("/db"));
  ASSERT_OK(env_.DeleteFile("/db/f"));
  EXPECT_FALSE(env_.FileExists("/db/f"));
  env_.Crash();
  EXPECT_EQ(Read("/db/f"), "keep me");

  ASSERT_OK(env_.DeleteFile("/db/f"));
  ASSERT_OK(env_.SyncDir("/db"));
  env_.Crash();
  EXPECT_FALSE(env_.FileExists("/db/f"));
}

TEST_F(FaultEnvTest, RenameRevertsWithoutSyncDir) {
  Write("/db/a", "new", /*sync=*/true);
  Write("/db/b", "old", /*sync=*/true);
  ASSERT_OK(env_.SyncDir("/db"));
  ASSERT_OK(env_.RenameFile("/db/a", "/db/b"));
  EXPECT_EQ(Read("/db/b"), "new");
  env_.Crash();
  EXPECT_EQ(Read("/db/a"), "new");
  EXPECT_EQ(Read("/db/b"), "old");

  ASSERT_OK(env_.RenameFile("/db/a", "/db/b"));
  ASSERT_OK(env_.SyncDir("/db"));
  env_.Crash();
  EXPECT_FALSE(env_.FileExists("/db/a"));
  EXPECT_EQ(Read("/db/b"), "new");
}

TEST_F(FaultEnvTest, TruncationIsDurableOnlyAfterSync) {
  Write("/db/f", "abcdef", /*sync=*/true);
  ASSERT_OK(env_.SyncDir("/db"));
  ASSERT_OK(env_.TruncateFile("/db/f", 3));
  Append("/db/f", "XY");
  EXPECT_EQ(Read("/db/f"), "abcXY");
  EXPECT_EQ(env_.SyncedSize("/db/f"), 6u);
  env_.Crash(CrashOptions{.keep_all_unsynced = true});
  EXPECT_EQ(Read("/db/f"), "abcdef");

  ASSERT_OK(env_.TruncateFile("/db/f", 3));
  {
    Result<std::unique_ptr<WritableFile>> file = env_.NewAppendableFile("/db/f");
    ASSERT_OK(file);
    ASSERT_OK((*file)->Append("XY"));
    ASSERT_OK((*file)->Sync());
  }
  env_.Crash();
  EXPECT_EQ(Read("/db/f"), "abcXY");
}

TEST_F(FaultEnvTest, RecreatingAFileIsATruncation) {
  Write("/db/f", "durable", /*sync=*/true);
  ASSERT_OK(env_.SyncDir("/db"));
  Write("/db/f", "other", /*sync=*/false);
  env_.Crash();
  EXPECT_EQ(Read("/db/f"), "durable");
}

TEST_F(FaultEnvTest, TornWritesKeepAPrefixOfTheUnsyncedBytes) {
  Write("/db/f", "abc", /*sync=*/true);
  ASSERT_OK(env_.SyncDir("/db"));
  Append("/db/f", "defgh");
  env_.Crash(CrashOptions{.keep_unsynced_bytes = 2});
  EXPECT_EQ(Read("/db/f"), "abcde");
  EXPECT_EQ(env_.SyncedSize("/db/f"), 5u);  // what survived is on disk now

  Append("/db/f", "XYZ");
  env_.Crash(CrashOptions{.keep_unsynced_bytes = 100});
  EXPECT_EQ(Read("/db/f"), "abcdeXYZ");

  Append("/db/f", "123");
  env_.Crash(CrashOptions{.keep_all_unsynced = true});
  EXPECT_EQ(Read("/db/f"), "abcdeXYZ123");
}

// A seeded crash keeps a random prefix of each file's unsynced bytes, and the
// same seed keeps the same prefixes.
TEST_F(FaultEnvTest, SeededCrashIsRandomButReplayable) {
  const uint64_t seed = test::TestSeed(42);
  SCOPED_TRACE("seed " + std::to_string(seed));
  const std::string unsynced(1000, 'u');
  auto run = [&](FaultEnv* env) -> std::vector<uint64_t> {
    EXPECT_OK(env->CreateDir("/d"));
    EXPECT_OK(env->SyncDir("/"));
    for (int i = 0; i < 8; ++i) {
      Result<std::unique_ptr<WritableFile>> file = env->NewWritableFile("/d/" + std::to_string(i));
      EXPECT_OK(file);
      EXPECT_OK((*file)->Append("synced"));
      EXPECT_OK((*file)->Sync());
      EXPECT_OK((*file)->Append(unsynced));
    }
    EXPECT_OK(env->SyncDir("/d"));
    env->Crash(CrashOptions{.seed = seed});
    std::vector<uint64_t> sizes;
    for (int i = 0; i < 8; ++i) {
      Result<std::string> data = ReadFileToString(env, "/d/" + std::to_string(i));
      EXPECT_OK(data);
      EXPECT_EQ(data->substr(0, 6), "synced");
      EXPECT_EQ(*data, ("synced" + unsynced).substr(0, data->size()));
      sizes.push_back(data->size());
    }
    return sizes;
  };
  FaultEnv a;
  FaultEnv b;
  const std::vector<uint64_t> first = run(&a);
  EXPECT_EQ(first, run(&b));
  // Eight draws from [6, 1006] that all agree would mean no randomness.
  bool varied = false;
  for (uint64_t size : first) varied |= size != first[0];
  EXPECT_TRUE(varied);
}

TEST_F(FaultEnvTest, HandlesFromBeforeACrashAreStale) {
  Write("/db/f", "abc", /*sync=*/true);
  ASSERT_OK(env_.SyncDir("/db"));
  Result<std::unique_ptr<WritableFile>> writer = env_.NewAppendableFile("/db/f");
  ASSERT_OK(writer);
  Result<std::unique_ptr<RandomAccessFile>> reader = env_.NewRandomAccessFile("/db/f");
  ASSERT_OK(reader);

  env_.Crash();
  EXPECT_EQ((*writer)->Append("x"), Status::IOError("crashed"));
  EXPECT_EQ((*writer)->Sync(), Status::IOError("crashed"));
  char scratch[4];
  std::string_view got;
  EXPECT_EQ((*reader)->Read(0, 3, scratch, &got), Status::IOError("crashed"));
  EXPECT_EQ((*writer)->Close(), Status::IOError("crashed"));
  EXPECT_EQ(Read("/db/f"), "abc");  // the stale append did not land

  // New handles work.
  Result<std::unique_ptr<WritableFile>> fresh = env_.NewAppendableFile("/db/f");
  ASSERT_OK(fresh);
  ASSERT_OK((*fresh)->Append("d"));
  EXPECT_EQ(Read("/db/f"), "abcd");
}

TEST_F(FaultEnvTest, CrashReleasesLocks) {
  Result<std::unique_ptr<FileLock>> lock = env_.LockFile("/db/LOCK");
  ASSERT_OK(lock);
  EXPECT_TRUE(env_.LockFile("/db/LOCK").status().IsBusy());
  ASSERT_OK(env_.SyncDir("/db"));
  env_.Crash();
  Result<std::unique_ptr<FileLock>> after = env_.LockFile("/db/LOCK");
  ASSERT_OK(after);
  lock->reset();  // the stale lock going away does not release the new one
  EXPECT_TRUE(env_.LockFile("/db/LOCK").status().IsBusy());
}

TEST_F(FaultEnvTest, PersistentFailureAfterNSuccesses) {
  Result<std::unique_ptr<WritableFile>> file = env_.NewWritableFile("/db/f");
  ASSERT_OK(file);
  const Status eio = Status::IOError("injected EIO");
  env_.FailAfter(2, FaultOp::kAppend, eio);
  ASSERT_OK((*file)->Append("a"));
  ASSERT_OK((*file)->Append("b"));
  EXPECT_EQ((*file)->Append("c"), eio);
  EXPECT_EQ((*file)->Append("d"), eio);
  EXPECT_EQ((*file)->Size(), 2u);
  EXPECT_EQ(Read("/db/f"), "ab");  // a failed append writes nothing
  ASSERT_OK((*file)->Sync());      // other kinds are unaffected
  EXPECT_EQ(env_.InjectedFailureCount(), 2u);

  env_.ClearFaults();
  ASSERT_OK((*file)->Append("e"));
  EXPECT_EQ(Read("/db/f"), "abe");
}

TEST_F(FaultEnvTest, NoSpaceOnEveryKindOfWrite) {
  env_.FailAfter(0, FaultOp::kAppend | FaultOp::kCreate, Status::NoSpace("injected ENOSPC"));
  EXPECT_TRUE(env_.NewWritableFile("/db/f").status().IsNoSpace());
  EXPECT_FALSE(env_.FileExists("/db/f"));
  EXPECT_TRUE(env_.CreateDir("/db/sub").IsNoSpace());
  env_.ClearFaults();
  Result<std::unique_ptr<WritableFile>> file = env_.NewWritableFile("/db/f");
  ASSERT_OK(file);
  env_.FailAfter(0, FaultOp::kAll, Status::NoSpace("injected ENOSPC"));
  Status s = (*file)->Append("x");
  EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
  EXPECT_EQ(s.message(), "injected ENOSPC");
  EXPECT_TRUE((*file)->Preallocate(4096).IsNoSpace());
  EXPECT_TRUE(env_.RenameFile("/db/f", "/db/g").IsNoSpace());
  EXPECT_TRUE(env_.FileExists("/db/f"));  // the failed rename changed nothing
}

TEST_F(FaultEnvTest, OneShotFailureFailsOnlyOnce) {
  Result<std::unique_ptr<WritableFile>> file = env_.NewWritableFile("/db/f");
  ASSERT_OK(file);
  ASSERT_OK((*file)->Append("x"));
  env_.FailAfter(1, FaultOp::kSync, Status::IOError("injected EIO"), FaultMode::kOneShot);
  ASSERT_OK((*file)->Sync());
  EXPECT_TRUE((*file)->Sync().IsIOError());
  ASSERT_OK((*file)->Sync());
  ASSERT_OK((*file)->Sync());
  EXPECT_EQ(env_.InjectedFailureCount(), 1u);
}

TEST_F(FaultEnvTest, RulesCountOnlyTheirOwnKinds) {
  Write("/db/f", "0123456789", /*sync=*/false);
  env_.FailAfter(1, FaultOp::kSyncDir | FaultOp::kDelete, Status::IOError("dir"));
  env_.FailAfter(2, FaultOp::kRead, Status::IOError("read"), FaultMode::kOneShot);
  Result<std::unique_ptr<RandomAccessFile>> reader = env_.NewRandomAccessFile("/db/f");
  ASSERT_OK(reader);
  char scratch[4];
  std::string_view got;
  ASSERT_OK((*reader)->Read(0, 1, scratch, &got));
  ASSERT_OK(env_.SyncDir("/db"));  // the first dir operation succeeds
  ASSERT_OK((*reader)->Read(1, 1, scratch, &got));
  EXPECT_EQ((*reader)->Read(2, 1, scratch, &got), Status::IOError("read"));
  ASSERT_OK((*reader)->Read(2, 1, scratch, &got));
  EXPECT_EQ(env_.DeleteFile("/db/f"), Status::IOError("dir"));
  EXPECT_EQ(env_.SyncDir("/db"), Status::IOError("dir"));
  EXPECT_TRUE(env_.FileExists("/db/f"));
}

TEST_F(FaultEnvTest, RulesCanBeLimitedToAPathPrefix) {
  ASSERT_OK(env_.CreateDir("/db/wal"));
  ASSERT_OK(env_.CreateDir("/db/data"));
  Result<std::unique_ptr<WritableFile>> wal = env_.NewWritableFile("/db/wal/1.log");
  ASSERT_OK(wal);
  Result<std::unique_ptr<WritableFile>> data = env_.NewWritableFile("/db/data/1.data");
  ASSERT_OK(data);
  env_.FailAfter(1, FaultOp::kSync, Status::IOError("wal fsync"), FaultMode::kPersistent,
                 "/db//wal/../wal/");  // compared with normalized paths: "/db/wal/"
  Result<std::unique_ptr<WritableFile>> wal2 = env_.NewWritableFile("/db/wal2");
  ASSERT_OK(wal2);
  ASSERT_OK((*data)->Sync());  // not counted: another directory
  ASSERT_OK((*wal2)->Sync());  // "/db/wal2" does not start with "/db/wal/"
  ASSERT_OK((*wal)->Sync());
  ASSERT_OK((*data)->Sync());
  EXPECT_EQ((*wal)->Sync(), Status::IOError("wal fsync"));
  ASSERT_OK((*data)->Sync());
  ASSERT_OK((*wal2)->Sync());
}

TEST_F(FaultEnvTest, BitFlipsAlterReadsNotTheFile) {
  Write("/db/f", std::string(8, '\0'), /*sync=*/false);
  env_.FlipBitOnRead("/db/f", 3, 0);
  env_.FlipBitOnRead("/db//f", 5, 7);  // any spelling of the path
  Result<std::unique_ptr<RandomAccessFile>> reader = env_.NewRandomAccessFile("/db/f");
  ASSERT_OK(reader);
  char scratch[8];
  std::string_view got;
  ASSERT_OK((*reader)->Read(0, 8, scratch, &got));
  EXPECT_EQ(got, std::string("\0\0\0\x01\0\x80\0\0", 8));
  ASSERT_OK((*reader)->Read(4, 2, scratch, &got));
  EXPECT_EQ(got, std::string("\0\x80", 2));
  ASSERT_OK((*reader)->Read(4, 1, scratch, &got));  // the flipped byte is outside
  EXPECT_EQ(got, std::string(1, '\0'));

  env_.ClearBitFlips();
  ASSERT_OK((*reader)->Read(0, 8, scratch, &got));
  EXPECT_EQ(got, std::string(8, '\0'));
}

TEST_F(FaultEnvTest, OperationCountCountsMutatingOperations) {
  const uint64_t start = env_.OperationCount();
  Result<std::unique_ptr<WritableFile>> file = env_.NewWritableFile("/db/f");  // 1
  ASSERT_OK(file);
  ASSERT_OK((*file)->Append("a"));  // 2
  ASSERT_OK((*file)->Sync());       // 3
  ASSERT_OK(env_.SyncDir("/db"));   // 4
  EXPECT_EQ(Read("/db/f"), "a");    // reads do not count
  EXPECT_TRUE(env_.GetChildren("/db").ok());
  EXPECT_TRUE(env_.DeleteFile("/db/nope").IsNotFound());  // 5: attempted
  EXPECT_EQ(env_.OperationCount() - start, 5u);
}

TEST_F(FaultEnvTest, CrashPointRefusesEveryLaterMutation) {
  Result<std::unique_ptr<WritableFile>> file = env_.NewWritableFile("/db/f");
  ASSERT_OK(file);
  ASSERT_OK(env_.SyncDir("/db"));
  env_.SetCrashPoint(2);
  ASSERT_OK((*file)->Append("a"));
  ASSERT_OK((*file)->Sync());
  EXPECT_FALSE(env_.CrashPointReached());
  EXPECT_TRUE((*file)->Append("b").IsIOError());
  EXPECT_TRUE(env_.CrashPointReached());
  EXPECT_TRUE(env_.CreateDir("/db/x").IsIOError());
  EXPECT_FALSE(env_.FileExists("/db/x"));
  EXPECT_EQ(Read("/db/f"), "a");  // reads still work

  env_.Crash();
  EXPECT_FALSE(env_.CrashPointReached());
  EXPECT_EQ(Read("/db/f"), "a");
  ASSERT_OK(env_.CreateDir("/db/x"));  // cleared by the crash
}

// The documented crash loop: cut WriteFileAtomically at every operation; the
// file always holds the old or the new contents, never a mix or nothing.
TEST_F(FaultEnvTest, CrashAtEveryStepOfAnAtomicWrite) {
  bool saw_old = false;
  bool saw_new = false;
  uint64_t k = 0;
  for (;; ++k) {
    FaultEnv env;
    ASSERT_OK(env.CreateDir("/db"));
    ASSERT_OK(env.SyncDir("/"));
    ASSERT_OK(WriteFileAtomically(&env, "/db/CURRENT", "old", /*sync=*/true));
    env.SetCrashPoint(k);
    const Status s = WriteFileAtomically(&env, "/db/CURRENT", "new", /*sync=*/true);
    const bool cut = env.CrashPointReached();
    EXPECT_EQ(s.ok(), !cut) << "k=" << k;
    env.Crash(CrashOptions{.seed = k + 1});
    Result<std::string> data = ReadFileToString(&env, "/db/CURRENT");
    ASSERT_OK(data);
    EXPECT_TRUE(*data == "old" || *data == "new") << "k=" << k << " got '" << *data << "'";
    saw_old |= *data == "old";
    saw_new |= *data == "new";
    if (!cut) {
      EXPECT_EQ(*data, "new");
      break;
    }
  }
  EXPECT_TRUE(saw_old);
  EXPECT_TRUE(saw_new);
  EXPECT_EQ(k, 5u);  // create, append, sync, rename, sync dir: cut at 0..4, then clean
}

}  // namespace
}  // namespace rkv
