// HttpHandler over a fake KvService: routes, error shapes, decoding, limits.
#include "api/http/http_handler.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "support/test_util.h"

namespace rkv::http {
namespace {

namespace json = boost::json;

class FakeService : public KvService {
 public:
  void Get(std::string key, const ServiceReadOptions& options, GetCallback done) override {
    gets.push_back(key);
    last_read = options;
    if (!next_error.ok()) return done(next_error);
    auto it = data.find(key);
    if (it == data.end()) return done(Status::NotFound());
    done(it->second);
  }
  void Put(std::string key, std::string value, const ServiceWriteOptions& options,
           WriteCallback done) override {
    last_write = options;
    if (!next_error.ok()) return done(next_error);
    data[key] = value;
    done(Status::OK());
  }
  void Delete(std::string key, const ServiceWriteOptions& options, WriteCallback done) override {
    last_write = options;
    if (!next_error.ok()) return done(next_error);
    data.erase(key);
    done(Status::OK());
  }
  bool Healthy() const override { return healthy; }
  ServiceStatus NodeStatus() const override { return status; }
  void Cluster(std::function<void(ClusterInfo)> done) override { done(cluster); }
  MembershipInfo Members() const override { return membership; }
  void AddMember(MemberRequest request, MembershipCallback done) override {
    member_requests.push_back(request);
    if (!next_error.ok()) return done(next_error);
    done(membership);
  }
  void PromoteMember(uint64_t id, MembershipCallback done) override {
    promoted.push_back(id);
    if (!next_error.ok()) return done(next_error);
    done(membership);
  }
  void RemoveMember(uint64_t id, MembershipCallback done) override {
    removed.push_back(id);
    if (!next_error.ok()) return done(next_error);
    done(membership);
  }

  std::map<std::string, std::string> data;
  ServiceStatus status;
  ClusterInfo cluster;
  MembershipInfo membership;
  std::vector<MemberRequest> member_requests;
  std::vector<uint64_t> promoted;
  std::vector<uint64_t> removed;
  std::vector<std::string> gets;
  ServiceReadOptions last_read;
  ServiceWriteOptions last_write;
  Status next_error;
  bool healthy = true;
};

class HttpHandlerTest : public ::testing::Test {
 protected:
  HttpResponse Call(std::string method, std::string target, std::string body = {},
                    std::string idempotency_key = {}) {
    HttpHandler handler(&service_, limits_);
    std::optional<HttpResponse> out;
    int calls = 0;
    handler.Handle(HttpRequest{std::move(method), std::move(target), std::move(idempotency_key),
                               std::move(body)},
                   [&](HttpResponse r) {
                     ++calls;
                     out = std::move(r);
                   });
    EXPECT_EQ(calls, 1);
    return out ? *out : HttpResponse{};
  }

  static json::value Body(const HttpResponse& r) {
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v;
  }

  // Checks the {"error":{"code":..,"message":..}} shape and returns the code.
  static std::string ErrorCode(const HttpResponse& r) {
    json::value v = Body(r);
    if (!v.is_object() || !v.as_object().contains("error")) {
      ADD_FAILURE() << "not an error body: " << r.body;
      return {};
    }
    const json::value& e = v.at("error");
    EXPECT_TRUE(e.is_object());
    EXPECT_TRUE(e.as_object().contains("message")) << r.body;
    EXPECT_TRUE(e.at("message").is_string());
    EXPECT_EQ(e.as_object().size(), 2u) << r.body;
    return std::string(e.at("code").as_string());
  }

  static std::string PutBody(std::string_view value) {
    return json::serialize(json::object{{"value", json::string_view(value.data(), value.size())}});
  }

  FakeService service_;
  HttpLimits limits_;
};

TEST_F(HttpHandlerTest, PostThenGetThenDelete) {
  HttpResponse r = Call("POST", "/hello", R"({"value":"world"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r), json::parse(R"({"success":true})"));
  EXPECT_EQ(service_.data["hello"], "world");

  r = Call("GET", "/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r), json::parse(R"({"value":"world"})"));

  r = Call("DELETE", "/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r), json::parse(R"({"success":true})"));
  EXPECT_EQ(service_.data.count("hello"), 0u);

  r = Call("GET", "/hello");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
}

TEST_F(HttpHandlerTest, PutIsLikePost) {
  HttpResponse r = Call("PUT", "/k", R"({"value":"v"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(service_.data["k"], "v");
}

TEST_F(HttpHandlerTest, DeleteOfAbsentKeySucceeds) {
  EXPECT_EQ(Call("DELETE", "/nothing").status, 200);
}

TEST_F(HttpHandlerTest, Healthz) {
  HttpResponse r = Call("GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r), json::parse(R"({"status":"ok"})"));
  service_.healthy = false;
  r = Call("GET", "/healthz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorCode(r), "unavailable");
  EXPECT_EQ(r.Header("retry-after"), "1");
}

TEST_F(HttpHandlerTest, HealthzOtherMethodIs405) {
  HttpResponse r = Call("POST", "/healthz", R"({"value":"x"})");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "GET");
  EXPECT_EQ(ErrorCode(r), "method_not_allowed");
}

TEST_F(HttpHandlerTest, EmptyKeyIsUnknownRoute) {
  HttpResponse r = Call("GET", "/");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
  EXPECT_TRUE(service_.gets.empty());
  EXPECT_EQ(Call("POST", "/", R"({"value":"x"})").status, 404);
}

TEST_F(HttpHandlerTest, WrongMethodIs405WithAllow) {
  for (const char* method : {"PATCH", "HEAD", "OPTIONS", "get"}) {
    HttpResponse r = Call(method, "/k");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(r.Header("Allow"), "GET, POST, PUT, DELETE") << method;
    EXPECT_EQ(ErrorCode(r), "method_not_allowed");
  }
}

TEST_F(HttpHandlerTest, KeyIsPercentDecoded) {
  EXPECT_EQ(Call("POST", "/a%20b%2Fc%3F", R"({"value":"1"})").status, 200);
  EXPECT_EQ(service_.data.count("a b/c?"), 1u);
  EXPECT_EQ(Call("POST", "/x/y", R"({"value":"2"})").status, 200);
  EXPECT_EQ(service_.data.count("x/y"), 1u);
  EXPECT_EQ(Call("POST", "/%E2%82%AC", R"({"value":"3"})").status, 200);
  EXPECT_EQ(service_.data.count("\xE2\x82\xAC"), 1u);
  HttpResponse r = Call("GET", "/a%20b%2Fc%3F");
  EXPECT_EQ(Body(r), json::parse(R"({"value":"1"})"));
}

TEST_F(HttpHandlerTest, InvalidPercentEncodingIs400) {
  for (const char* target : {"/a%zz", "/a%2", "/%", "no-slash", "/a b"}) {
    HttpResponse r = Call("GET", target);
    EXPECT_EQ(r.status, 400) << target;
    EXPECT_EQ(ErrorCode(r), "invalid_argument") << target;
  }
  EXPECT_TRUE(service_.gets.empty());
}

TEST_F(HttpHandlerTest, ValuesRoundTripEscapesAndUtf8) {
  const std::string value = "quote\" backslash\\ newline\n tab\t ctl\x01 euro\xE2\x82\xAC emoji\xF0\x9F\x98\x80";
  EXPECT_EQ(Call("POST", "/k", PutBody(value)).status, 200);
  EXPECT_EQ(service_.data["k"], value);
  HttpResponse r = Call("GET", "/k");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r).at("value").as_string(), value);
  // \u escapes in the request decode to UTF-8.
  EXPECT_EQ(Call("POST", "/u", R"({"value":"\u00e9\ud83d\ude00"})").status, 200);
  EXPECT_EQ(service_.data["u"], "\xC3\xA9\xF0\x9F\x98\x80");
  // The empty string is a value.
  EXPECT_EQ(Call("POST", "/e", R"({"value":""})").status, 200);
  EXPECT_EQ(Body(Call("GET", "/e")), json::parse(R"({"value":""})"));
}

TEST_F(HttpHandlerTest, BadBodiesAre400) {
  const std::vector<std::string> bodies = {
      "",
      "not json",
      R"({"value":"x")",
      R"({"value":"x"} trailing)",
      R"({"value":"x"}{})",
      R"({"value":1})",
      R"({"value":null})",
      R"({"value":["x"]})",
      R"({"val":"x"})",
      R"(["x"])",
      R"("x")",
      "{\"value\":\"\xC3\x28\"}",   // invalid UTF-8
      "{\"value\":\"\xFF\"}",
  };
  for (const auto& body : bodies) {
    HttpResponse r = Call("POST", "/k", body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(ErrorCode(r), "invalid_argument") << body;
  }
  EXPECT_TRUE(service_.data.empty());
}

TEST_F(HttpHandlerTest, ExtraFieldsAreIgnored) {
  EXPECT_EQ(Call("POST", "/k", R"({"value":"v","other":1})").status, 200);
  EXPECT_EQ(service_.data["k"], "v");
}

TEST_F(HttpHandlerTest, LimitsAre413) {
  limits_.max_key_bytes = 8;
  limits_.max_value_bytes = 10;
  limits_.max_body_bytes = 100;
  EXPECT_EQ(Call("POST", "/12345678", PutBody("0123456789")).status, 200);

  HttpResponse r = Call("POST", "/123456789", PutBody("v"));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorCode(r), "too_large");
  EXPECT_EQ(Call("GET", "/123456789").status, 413);
  EXPECT_EQ(Call("DELETE", "/123456789").status, 413);
  // Percent-encoded key: the decoded length counts.
  EXPECT_EQ(Call("GET", "/%41%41%41%41%41%41%41%41").status, 404);

  r = Call("POST", "/k", PutBody("01234567890"));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorCode(r), "too_large");

  r = Call("POST", "/k", PutBody(std::string(200, 'x')));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorCode(r), "too_large");
  EXPECT_EQ(service_.data.size(), 1u);
}

TEST_F(HttpHandlerTest, ConsistencyParsing) {
  service_.data["k"] = "v";
  EXPECT_EQ(Call("GET", "/k").status, 200);
  EXPECT_EQ(service_.last_read.consistency, ReadConsistency::kLinearizable);
  EXPECT_EQ(Call("GET", "/k?consistency=stale").status, 200);
  EXPECT_EQ(service_.last_read.consistency, ReadConsistency::kStale);
  EXPECT_EQ(Call("GET", "/k?consistency=lease").status, 200);
  EXPECT_EQ(service_.last_read.consistency, ReadConsistency::kLease);
  EXPECT_EQ(Call("GET", "/k?consistency=linearizable").status, 200);
  EXPECT_EQ(service_.last_read.consistency, ReadConsistency::kLinearizable);
  EXPECT_EQ(Call("GET", "/k?other=1").status, 200);

  HttpResponse r = Call("GET", "/k?consistency=eventual");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "invalid_argument");
  // The query is not part of the key.
  EXPECT_EQ(service_.gets.back(), "k");
}

TEST_F(HttpHandlerTest, IdempotencyKeyReachesTheService) {
  EXPECT_EQ(Call("POST", "/k", PutBody("v"), "abc-123").status, 200);
  EXPECT_EQ(service_.last_write.idempotency_key, "abc-123");
  EXPECT_EQ(Call("DELETE", "/k", "", "del-1").status, 200);
  EXPECT_EQ(service_.last_write.idempotency_key, "del-1");
}

TEST_F(HttpHandlerTest, ServiceErrorsMapToStatuses) {
  struct Case {
    Status status;
    int http;
    const char* code;
  };
  const std::vector<Case> cases = {
      {Status::Busy("queue full"), 503, "unavailable"},
      {Status::ShuttingDown("bye"), 503, "unavailable"},
      {Status::NotLeader("elsewhere"), 503, "unavailable"},
      {Status::IOError("disk on fire"), 500, "internal"},
      {Status::NoSpace("full"), 500, "internal"},
      {Status::Corruption("bad crc"), 500, "internal"},
      {Status::InvalidArgument("nope"), 400, "invalid_argument"},
  };
  for (const auto& c : cases) {
    service_.next_error = c.status;
    for (auto [method, body] : {std::pair<const char*, std::string>{"GET", ""},
                                {"POST", PutBody("v")},
                                {"DELETE", ""}}) {
      HttpResponse r = Call(method, "/k", body);
      EXPECT_EQ(r.status, c.http) << c.status.ToString() << " " << method;
      EXPECT_EQ(ErrorCode(r), c.code);
      if (c.http == 503) {
        EXPECT_EQ(r.Header("Retry-After"), "1");
      }
    }
  }
  service_.next_error = Status::IOError("disk on fire");
  HttpResponse r = Call("GET", "/k");
  EXPECT_NE(Body(r).at("error").at("message").as_string().find("disk on fire"), json::string::npos);
}

TEST_F(HttpHandlerTest, StatusToResponseIsTheOneMapping) {
  EXPECT_EQ(StatusToResponse(Status::OK()).status, 200);
  EXPECT_EQ(StatusToResponse(Status::NotFound()).status, 404);
  EXPECT_EQ(StatusToResponse(Status::Timeout("slow")).status, 503);
  EXPECT_EQ(StatusToResponse(Status::NotSupported("x")).status, 500);
  EXPECT_EQ(StatusToResponse(Status::Aborted("x")).status, 500);
}

TEST_F(HttpHandlerTest, StatusRoundTripsThroughItsJson) {
  service_.status.id = 2;
  service_.status.role = "follower";
  service_.status.leader = 3;
  service_.status.term = 7;
  service_.status.commit_index = 41;
  service_.status.applied_index = 40;
  service_.status.voters = {1, 2, 3};
  service_.status.learners = {4};
  service_.status.leader_http = "127.0.0.1:8003";
  HttpResponse r = Call("GET", "/v1/status");
  ASSERT_EQ(r.status, 200) << r.body;
  Result<ServiceStatus> parsed = ParseServiceStatus(r.body);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->id, 2u);
  EXPECT_EQ(parsed->role, "follower");
  EXPECT_EQ(parsed->leader, 3u);
  EXPECT_EQ(parsed->term, 7u);
  EXPECT_EQ(parsed->commit_index, 41u);
  EXPECT_EQ(parsed->applied_index, 40u);
  EXPECT_EQ(parsed->voters, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(parsed->learners, std::vector<uint64_t>{4});
  EXPECT_EQ(parsed->leader_http, "127.0.0.1:8003");
  EXPECT_FALSE(ParseServiceStatus(R"({"id":1,"role":"leader","leader":1,"term":1,"commit_index":1,)"
                                  R"("applied_index":1,"voters":[0]})")
                   .ok());
  EXPECT_EQ(Call("POST", "/v1/status", PutBody("x")).status, 405);
  EXPECT_FALSE(ParseServiceStatus("{\"id\":1}").ok());
  EXPECT_FALSE(ParseServiceStatus("not json").ok());
}

TEST_F(HttpHandlerTest, ClusterListsMembersWithTheirStatus) {
  service_.cluster.cluster_id = 0xab;
  service_.cluster.self.id = 1;
  service_.cluster.self.leader = 1;
  service_.cluster.self.term = 3;
  service_.cluster.self.match_index = {{1, 9}, {2, 8}};
  MemberInfo one;
  one.id = 1;
  one.peer_address = "127.0.0.1:7001";
  one.http_address = "127.0.0.1:8001";
  one.status = ServiceStatus{};
  one.status->role = "leader";
  one.status->applied_index = 9;
  MemberInfo two;
  two.id = 2;
  two.error = "connection refused";
  service_.cluster.members = {one, two};
  HttpResponse r = Call("GET", "/v1/cluster");
  ASSERT_EQ(r.status, 200) << r.body;
  json::value v = Body(r);
  EXPECT_EQ(v.at("leader").as_int64(), 1);
  EXPECT_EQ(v.at("cluster_id").as_string(), "00000000000000ab");
  const json::array& members = v.at("members").as_array();
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].at("leader").as_bool(), true);
  EXPECT_EQ(members[0].at("http").as_string(), "127.0.0.1:8001");
  EXPECT_EQ(members[0].at("applied_index").as_int64(), 9);
  EXPECT_EQ(members[0].at("match_index").as_int64(), 9);
  EXPECT_EQ(members[1].at("reachable").as_bool(), false);
  EXPECT_EQ(members[1].at("error").as_string(), "connection refused");
}

TEST_F(HttpHandlerTest, StaleReadsSayHowCurrentTheyAre) {
  service_.data["k"] = "v";
  service_.status.applied_index = 17;
  service_.status.leader = 2;
  HttpResponse stale = Call("GET", "/k?consistency=stale");
  EXPECT_EQ(stale.status, 200);
  EXPECT_EQ(stale.Header("X-Raft-Applied-Index"), "17");
  EXPECT_EQ(stale.Header("X-Raft-Leader"), "2");
  HttpResponse linearizable = Call("GET", "/k");
  EXPECT_EQ(linearizable.Header("X-Raft-Applied-Index"), "");
}

TEST_F(HttpHandlerTest, ErrorMessagesAreValidJsonForAnyText) {
  HttpResponse r = ErrorResponse(400, "invalid_argument", "quote \" and \\ and \n");
  EXPECT_EQ(Body(r).at("error").at("message").as_string(), "quote \" and \\ and \n");
}

TEST_F(HttpHandlerTest, AsyncCompletionFromAnotherCall) {
  // A service that answers later (as the writer threads do).
  class LaterService : public FakeService {
   public:
    void Put(std::string, std::string, const ServiceWriteOptions&, WriteCallback done) override {
      pending = std::move(done);
    }
    WriteCallback pending;
  } later;
  HttpHandler handler(&later, limits_);
  std::optional<HttpResponse> out;
  handler.Handle(HttpRequest{"POST", "/k", "", PutBody("v")}, [&](HttpResponse r) { out = r; });
  EXPECT_FALSE(out.has_value());
  ASSERT_TRUE(later.pending);
  later.pending(Status::OK());
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->status, 200);
}

TEST_F(HttpHandlerTest, MembersListsTheMembership) {
  service_.membership.cluster_id = 0xabc;
  service_.membership.members = {MemberInfo{1, true, "h1:7001", "h1:8001", {}, {}},
                                 MemberInfo{4, false, "h4:7001", "", {}, {}}};
  HttpResponse r = Call("GET", "/v1/cluster/members");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r), json::parse(R"({"cluster_id":"0000000000000abc","members":[)"
                                 R"({"id":1,"voter":true,"peer":"h1:7001","http":"h1:8001"},)"
                                 R"({"id":4,"voter":false,"peer":"h4:7001","http":""}]})"));
  EXPECT_TRUE(service_.data.empty());  // a route, not the key "v1/cluster/members"
}

TEST_F(HttpHandlerTest, AddMemberParsesTheRequest) {
  HttpResponse r = Call("POST", "/v1/cluster/members", R"({"id":4,"peer":"h4:7001","http":"h4:8001"})");
  EXPECT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(service_.member_requests.size(), 1u);
  EXPECT_EQ(service_.member_requests[0].id, 4u);
  EXPECT_EQ(service_.member_requests[0].peer_address, "h4:7001");
  EXPECT_EQ(service_.member_requests[0].http_address, "h4:8001");
  EXPECT_TRUE(service_.member_requests[0].learner);  // learner unless asked otherwise

  r = Call("POST", "/v1/cluster/members", R"({"id":5,"peer":"h5:7001","learner":false})");
  EXPECT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(service_.member_requests.size(), 2u);
  EXPECT_FALSE(service_.member_requests[1].learner);
  EXPECT_EQ(service_.member_requests[1].http_address, "");
}

TEST_F(HttpHandlerTest, AddMemberRefusesBadBodies) {
  for (const char* body : {"", "[]", R"({"peer":"h:1"})", R"({"id":0,"peer":"h:1"})",
                           R"({"id":-3,"peer":"h:1"})", R"({"id":4})", R"({"id":4,"peer":""})",
                           R"({"id":4,"peer":"h:1","learner":"yes"})", R"({"id":4,"peer":"h:1","http":7})"}) {
    HttpResponse r = Call("POST", "/v1/cluster/members", body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(ErrorCode(r), "invalid_argument") << body;
  }
  EXPECT_TRUE(service_.member_requests.empty());
}

TEST_F(HttpHandlerTest, PromoteAndRemoveTakeTheIdFromThePath) {
  EXPECT_EQ(Call("POST", "/v1/cluster/members/4/promote").status, 200);
  EXPECT_EQ(Call("DELETE", "/v1/cluster/members/7").status, 200);
  EXPECT_EQ(service_.promoted, std::vector<uint64_t>{4});
  EXPECT_EQ(service_.removed, std::vector<uint64_t>{7});

  service_.next_error = Status::NotFound("no member 9 in the cluster");
  HttpResponse r = Call("DELETE", "/v1/cluster/members/9");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
}

TEST_F(HttpHandlerTest, MemberRoutesRefuseWrongShapes) {
  EXPECT_EQ(Call("GET", "/v1/cluster/members/4").status, 405);
  EXPECT_EQ(Call("DELETE", "/v1/cluster/members").status, 405);
  EXPECT_EQ(Call("GET", "/v1/cluster/members/4/promote").status, 405);
  EXPECT_EQ(Call("POST", "/v1/cluster/members/x/promote").status, 404);
  EXPECT_EQ(Call("POST", "/v1/cluster/members/4/demote").status, 404);
  EXPECT_EQ(Call("DELETE", "/v1/cluster/members/0").status, 404);
  EXPECT_TRUE(service_.promoted.empty());
  EXPECT_TRUE(service_.removed.empty());
  EXPECT_TRUE(service_.data.empty());
}

TEST_F(HttpHandlerTest, ChangeOnAFollowerIsRedirectedToTheLeader) {
  service_.status.id = 2;
  service_.status.leader = 1;
  service_.status.leader_http = "127.0.0.1:8001";
  service_.next_error = Status::NotLeader("membership changes go to the leader (node 1)");
  HttpResponse r = Call("POST", "/v1/cluster/members/4/promote");
  EXPECT_EQ(r.status, 307);
  EXPECT_EQ(r.Header("Location"), "http://127.0.0.1:8001/v1/cluster/members/4/promote");
  EXPECT_EQ(ErrorCode(r), "not_leader");

  // No leader known (or no address for it): try again later.
  service_.status.leader_http.clear();
  r = Call("DELETE", "/v1/cluster/members/4");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Header("Retry-After"), "1");
}

}  // namespace
}  // namespace rkv::http
