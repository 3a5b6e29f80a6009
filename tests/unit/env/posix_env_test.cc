// PosixEnv specifics: memory-mapped reads, errno mapping, locks between
// processes. The behaviour shared with the other Envs is in
// env_behaviour_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "env/env.h"
#include "support/test_util.h"

namespace rkv {
namespace {

class PosixEnvTest : public testing::Test {
 protected:
  Env* env_ = Env::Posix();
  test::TempDir dir_;
};

TEST_F(PosixEnvTest, IsASingleton) { EXPECT_EQ(Env::Posix(), Env::Posix()); }

TEST_F(PosixEnvTest, MappedReadsSeeAGrowingFileWithoutCopying) {
  const std::string path = dir_.Join("active.data");
  Result<std::unique_ptr<WritableFile>> writer = env_->NewWritableFile(path);
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Append(std::string(100, 'a')));

  RandomAccessOptions options;
  options.map_bytes = 1 << 20;  // far beyond the current size
  Result<std::unique_ptr<RandomAccessFile>> reader = env_->NewRandomAccessFile(path, options);
  ASSERT_OK(reader);

  std::string scratch(256, '\0');
  std::string_view got;
  ASSERT_OK((*reader)->Read(0, 100, scratch.data(), &got));
  EXPECT_EQ(got, std::string(100, 'a'));
  // Served from the mapping, not copied into scratch.
  EXPECT_TRUE(got.data() < scratch.data() || got.data() >= scratch.data() + scratch.size());
  const char* base = got.data();

  // Bytes appended after the mapping was made are visible through it.
  ASSERT_OK((*writer)->Append(std::string(50, 'b')));
  ASSERT_OK((*reader)->Read(90, 60, scratch.data(), &got));
  EXPECT_EQ(got, std::string(10, 'a') + std::string(50, 'b'));
  EXPECT_EQ(got.data(), base + 90);
}

TEST_F(PosixEnvTest, ReadsBeyondTheMappingFallBackToPread) {
  const std::string path = dir_.Join("f");
  std::string contents;
  for (int i = 0; i < 3 * 4096; ++i) contents.push_back(static_cast<char>('a' + i % 26));
  {
    Result<std::unique_ptr<WritableFile>> writer = env_->NewWritableFile(path);
    ASSERT_OK(writer);
    ASSERT_OK((*writer)->Append(contents));
  }
  RandomAccessOptions options;
  options.map_bytes = 4096;
  Result<std::unique_ptr<RandomAccessFile>> reader = env_->NewRandomAccessFile(path, options);
  ASSERT_OK(reader);

  std::string scratch(8192, '\0');
  std::string_view got;
  // Straddles the end of the mapping: read with pread into scratch.
  ASSERT_OK((*reader)->Read(4000, 200, scratch.data(), &got));
  EXPECT_EQ(got, contents.substr(4000, 200));
  EXPECT_EQ(got.data(), scratch.data());
  // Entirely past the mapping.
  ASSERT_OK((*reader)->Read(8192, 4096, scratch.data(), &got));
  EXPECT_EQ(got, contents.substr(8192, 4096));
  // Past the end of the file: the pread path reports a short read.
  Status s = (*reader)->Read(3 * 4096 - 10, 20, scratch.data(), &got);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find("short read"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
}

TEST_F(PosixEnvTest, ErrorsNameTheSystemCallAndThePath) {
  const std::string missing = dir_.Join("missing");
  Status s = env_->NewRandomAccessFile(missing).status();
  ASSERT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_EQ(s.message(), "open " + missing + ": No such file or directory");

  // A directory cannot be opened for writing: EISDIR becomes an IOError.
  Status dir = env_->NewWritableFile(dir_.path()).status();
  EXPECT_TRUE(dir.IsIOError()) << dir.ToString();
  EXPECT_NE(dir.message().find(dir_.path()), std::string::npos);
}

TEST_F(PosixEnvTest, FullDiskIsNoSpace) {
  // /dev/full fails every write with ENOSPC.
  if (!env_->FileExists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  Result<std::unique_ptr<WritableFile>> file = env_->NewAppendableFile("/dev/full");
  ASSERT_OK(file);
  Status s = (*file)->Append("x");
  EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
  EXPECT_NE(s.message().find("/dev/full"), std::string::npos) << s.ToString();
}

// A lock held by another process is Busy; and our lock is a real OS lock that
// another process cannot take. Synchronized with pipes, no sleeps.
TEST_F(PosixEnvTest, LockConflictsWithAnotherProcess) {
  const std::string path = dir_.Join("LOCK");
  int to_child[2];
  int to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: take the lock with flock directly, report, wait for release.
    const int fd = open(path.c_str(), O_RDWR | O_CREAT, 0644);
    char c = (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) ? 'L' : 'E';
    if (write(to_parent[1], &c, 1) != 1) _exit(2);
    if (read(to_child[0], &c, 1) != 1) _exit(3);
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  ASSERT_EQ(c, 'L');
  Result<std::unique_ptr<FileLock>> lock = env_->LockFile(path);
  EXPECT_TRUE(lock.status().IsBusy()) << lock.status().ToString();
  EXPECT_NE(lock.status().message().find("another raft-kv process"), std::string::npos);
  c = 'x';
  ASSERT_EQ(write(to_child[1], &c, 1), 1);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) close(fd);

  // The child is gone, and its lock with it.
  Result<std::unique_ptr<FileLock>> ours = env_->LockFile(path);
  ASSERT_OK(ours);
  // While we hold it, a new open file description cannot take it either.
  const int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_NE(flock(fd, LOCK_EX | LOCK_NB), 0);
  close(fd);
  // Closing that other descriptor did not drop our lock.
  EXPECT_TRUE(env_->LockFile(path).status().IsBusy());
}

TEST_F(PosixEnvTest, CreateDirOnAFileFails) {
  const std::string path = dir_.Join("f");
  ASSERT_OK(WriteFileAtomically(env_, path, "x", /*sync=*/false));
  Status s = env_->CreateDir(path);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find("mkdir " + path), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace rkv
