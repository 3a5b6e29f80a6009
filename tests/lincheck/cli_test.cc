// raft-kv-lincheck on small files: the exit status says the verdict.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "support/test_util.h"

namespace rkv {
namespace {

struct ToolRun {
  int exit_code;
  std::string output;
};

ToolRun RunLincheck(const std::string& args) {
  const std::string cmd = std::string(RKV_BIN_DIR) + "/raft-kv-lincheck " + args + " 2>&1";
  ToolRun run{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return run;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) run.output.append(buf, n);
  const int status = pclose(p);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class LincheckCliTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_.Join(name);
    std::ofstream(path) << text;
    return path;
  }
  test::TempDir dir_;
};

TEST_F(LincheckCliTest, LinearizableExitsZero) {
  const auto run = RunLincheck(Write("ok.txt", "1 1 invoke put x a\n2 1 ok\n3 2 invoke get x\n4 2 ok a\n"));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find(": linearizable"), std::string::npos) << run.output;
}

TEST_F(LincheckCliTest, NotLinearizableExitsOneAndExplains) {
  const auto run = RunLincheck(Write(
      "bad.txt", "1 1 invoke put x a\n2 1 ok\n3 1 invoke put x b\n4 1 ok\n5 2 invoke get x\n6 2 ok a\n"));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("not linearizable"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("key x"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("(line 5)"), std::string::npos) << run.output;
}

TEST_F(LincheckCliTest, BudgetExceededExitsTwo) {
  // Twelve concurrent puts and reads of one key, then two reads no order
  // explains; three steps are not enough to decide.
  std::string text;
  for (int i = 0; i < 12; ++i) {
    text += std::to_string(i) + " " + std::to_string(i) + " invoke put k v" + std::to_string(i) + "\n";
  }
  for (int i = 0; i < 12; ++i) text += "100 " + std::to_string(i) + " ok\n";
  text += "200 50 invoke get k\n201 50 ok v1\n202 50 invoke get k\n203 50 ok v0\n";
  const std::string path = Write("hard.txt", text);
  const auto run = RunLincheck("--max-steps 3 " + path);
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_NE(run.output.find("unknown"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("key k"), std::string::npos) << run.output;
  EXPECT_EQ(RunLincheck(path).exit_code, 1);
}

TEST_F(LincheckCliTest, BadInputExitsThreeNamingTheLine) {
  const auto run = RunLincheck(Write("malformed.txt", "1 1 invoke put x a\n2 1 ok\n3 1 invoke frob x\n"));
  EXPECT_EQ(run.exit_code, 3) << run.output;
  EXPECT_NE(run.output.find("line 3"), std::string::npos) << run.output;
  EXPECT_EQ(RunLincheck(dir_.Join("missing.txt")).exit_code, 3);
  EXPECT_EQ(RunLincheck("").exit_code, 3);  // no file given
}

TEST_F(LincheckCliTest, HelpPointsToTheFormat) {
  const auto run = RunLincheck("--help");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("docs/formats/history.md"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("invoke cas"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace rkv
