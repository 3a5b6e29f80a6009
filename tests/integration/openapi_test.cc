// docs/openapi.yaml against a real server: every operation it documents is
// sent, in the file's order, with its x-test request, and must answer the
// x-test status, which must be one of the operation's documented responses.
// And every route the server has is documented.
//
// The YAML is read line by line in the narrow style the file keeps (two
// spaces per level, x-test as one flow mapping), not by a general parser.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "client/http_client.h"
#include "integration/server_process.h"
#include "support/test_util.h"

namespace rkv::test {
namespace {

struct Operation {
  std::string path;    // as documented, "/v1/kv/{key}"
  std::string method;  // "GET", ...
  std::set<int> responses;
  std::string test_target;  // x-test path (default: the documented path)
  std::string test_body;
  int test_status = 0;
};

size_t Indent(const std::string& line) { return line.find_first_not_of(' '); }

// The value of `name` in a flow mapping "{path: /x, body: '...', status: 200}".
std::string FlowValue(const std::string& map, const std::string& name) {
  size_t at = map.find(name + ": ");
  if (at == std::string::npos) return "";
  at += name.size() + 2;
  if (map[at] == '\'' || map[at] == '"') {
    const char quote = map[at];
    std::string out;
    for (size_t i = at + 1; i < map.size(); ++i) {
      if (map[i] == quote) {
        if (quote == '\'' && i + 1 < map.size() && map[i + 1] == '\'') {  // '' is a quote
          out += '\'';
          ++i;
          continue;
        }
        return out;
      }
      out += map[i];
    }
    return out;
  }
  const size_t end = map.find_first_of(",}", at);
  return map.substr(at, end - at);
}

std::vector<Operation> ReadOperations(const std::string& file) {
  std::ifstream in(file);
  EXPECT_TRUE(in.good()) << file;
  std::vector<Operation> out;
  std::string line;
  bool in_paths = false;
  bool in_responses = false;
  std::string path;
  while (std::getline(in, line)) {
    if (line.empty() || line.find_first_not_of(' ') == std::string::npos || line[Indent(line)] == '#') continue;
    const size_t indent = Indent(line);
    const std::string text = line.substr(indent);
    if (indent == 0) {
      in_paths = text == "paths:";
      continue;
    }
    if (!in_paths) continue;
    if (indent == 2 && text.back() == ':') {
      path = text.substr(0, text.size() - 1);
      continue;
    }
    if (indent == 4) {
      in_responses = false;
      for (const char* m : {"get", "put", "post", "delete"}) {
        if (text == std::string(m) + ":") {
          Operation op;
          op.path = path;
          for (const char* c = m; *c; ++c) op.method += static_cast<char>(*c - 'a' + 'A');
          op.test_target = path;
          out.push_back(op);
        }
      }
      continue;
    }
    if (out.empty() || out.back().path != path) continue;
    Operation& op = out.back();
    if (indent == 6) {
      in_responses = text == "responses:";
      if (text.rfind("x-test: ", 0) == 0) {
        const std::string map = text.substr(8);
        if (std::string target = FlowValue(map, "path"); !target.empty()) op.test_target = target;
        op.test_body = FlowValue(map, "body");
        op.test_status = std::stoi(FlowValue(map, "status"));
      }
      continue;
    }
    if (indent == 8 && in_responses && text[0] == '"') op.responses.insert(std::stoi(text.substr(1, 3)));
  }
  return out;
}

TEST(OpenApiTest, EveryDocumentedOperationAnswersAsDocumented) {
  const std::vector<Operation> ops = ReadOperations(std::string(RKV_SOURCE_DIR) + "/docs/openapi.yaml");
  ASSERT_GE(ops.size(), 20u);

  // Every route of the server is documented, and nothing else is.
  std::set<std::string> documented;
  for (const Operation& op : ops) documented.insert(op.method + " " + op.path);
  const std::set<std::string> routes = {
      "GET /healthz", "GET /readyz", "GET /metrics", "GET /v1/status", "GET /v1/cluster",
      "POST /v1/cluster/leader", "GET /v1/cluster/members", "POST /v1/cluster/members",
      "POST /v1/cluster/members/{id}/promote", "DELETE /v1/cluster/members/{id}",
      "GET /v1/kv/{key}", "PUT /v1/kv/{key}", "DELETE /v1/kv/{key}", "GET /v1/kv", "POST /v1/txn",
      "GET /v1/snapshot", "GET /{key}", "POST /{key}", "PUT /{key}", "DELETE /{key}"};
  EXPECT_EQ(documented, routes);

  TempDir dir;
  // With a peer listener, so the membership routes can change members.
  ServerProcess server(dir.path(), dir.Join("data"), {"--peer-listen", "127.0.0.1:0"});
  ASSERT_OK(server.Start());
  client::HttpClient c(server.host(), server.port(), std::chrono::seconds(15));
  for (const Operation& op : ops) {
    SCOPED_TRACE(op.method + " " + op.path + " as " + op.test_target);
    ASSERT_NE(op.test_status, 0) << "no x-test";
    EXPECT_TRUE(op.responses.count(op.test_status)) << "x-test status " << op.test_status << " is not documented";
    auto reply = c.Request(op.method, op.test_target, op.test_body);
    ASSERT_OK(reply);
    EXPECT_EQ(reply->status, op.test_status) << reply->body;
    EXPECT_TRUE(op.responses.count(reply->status)) << "answered an undocumented " << reply->status;
  }
}

}  // namespace
}  // namespace rkv::test
