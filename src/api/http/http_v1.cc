// The v1 routes of the HTTP front end (docs/api.md, "API v1"): raw-byte
// keys and values with revisions, conditional writes, transactions, scans,
// leadership transfer, readiness, metrics and backups.
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <tuple>
#include <vector>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "api/http/http_handler.h"
#include "api/http/http_util.h"
#include "common/json_fields.h"
#include "common/text.h"
#include "common/metrics.h"

namespace rkv::http {
namespace {

namespace json = boost::json;
using internal::JsonResponse;
using internal::MethodNotAllowed;

constexpr std::string_view kOctetStream = "application/octet-stream";
// A TTL above this (about 31 years) is surely a mistake in units.
constexpr uint64_t kMaxTtlSeconds = 1'000'000'000;

HttpResponse BadRequest(std::string_view message) { return ErrorResponse(400, "invalid_argument", message); }

bool ParseU64(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool ParseBool(std::string_view text, bool* out) {
  if (text == "true" || text == "1" || text.empty()) {
    *out = true;
  } else if (text == "false" || text == "0") {
    *out = false;
  } else {
    return false;
  }
  return true;
}

// The query parameters of a v1 route, checked: unknown names are refused,
// so a typo (`if_rev=3`) never silently turns a conditional write into an
// unconditional one.
struct Query {
  ServiceReadOptions read;
  std::optional<uint64_t> if_revision;
  uint64_t ttl_s = 0;
  // Scans.
  std::optional<std::string> prefix, start, end, continue_from;
  uint64_t limit = 100;
  bool keys_only = false;
  bool base64 = false;
};

// Parses `target`'s query, allowing only `allowed` names (comma-separated
// list). Returns the error reply for a bad one.
std::optional<HttpResponse> ParseQuery(std::string_view target, std::string_view allowed, Query* q) {
  auto parsed = boost::urls::parse_origin_form(target);
  if (parsed.has_error()) return BadRequest("malformed request target");
  if (!internal::ParseConsistency(*parsed, &q->read)) {
    return BadRequest("consistency must be linearizable, lease or stale");
  }
  for (auto param : parsed->params()) {
    const std::string& key = param.key;
    const std::string& value = param.value;
    bool known = false;
    for (size_t pos = 0; pos <= allowed.size();) {
      const size_t comma = std::min(allowed.find(',', pos), allowed.size());
      if (allowed.substr(pos, comma - pos) == key) known = true;
      pos = comma + 1;
    }
    if (!known) {
      return BadRequest(fmt::format("unknown query parameter \"{}\" (this route takes: {})", key, allowed));
    }
    if (key == "consistency") continue;
    if (key == "if_revision") {
      uint64_t n = 0;
      if (!ParseU64(value, &n)) return BadRequest("if_revision must be a revision number (0: only if absent)");
      q->if_revision = n;
    } else if (key == "ttl") {
      if (!ParseU64(value, &q->ttl_s) || q->ttl_s == 0 || q->ttl_s > kMaxTtlSeconds) {
        return BadRequest("ttl must be a number of seconds from 1");
      }
    } else if (key == "limit") {
      if (!ParseU64(value, &q->limit) || q->limit == 0) return BadRequest("limit must be a number from 1");
    } else if (key == "keys_only") {
      if (!ParseBool(value, &q->keys_only)) return BadRequest("keys_only must be true or false");
    } else if (key == "encoding") {
      if (value != "utf8" && value != "base64") return BadRequest("encoding must be utf8 or base64");
      q->base64 = value == "base64";
    } else if (key == "prefix") {
      q->prefix = value;
    } else if (key == "start") {
      q->start = value;
    } else if (key == "end") {
      q->end = value;
    } else if (key == "continue") {
      q->continue_from = value;
    }
  }
  return std::nullopt;
}

void AddReadHeaders(KvService* service, HttpResponse* response) {
  const ServiceStatus status = service->NodeStatus();
  response->headers.emplace_back("X-Raft-Applied-Index", std::to_string(status.applied_index));
}

// A write's answer: its revision, or 409 with the key's current revision.
HttpResponse WriteResponse(const Result<TxnResult>& result) {
  if (!result.ok()) return StatusToResponse(result.status());
  if (!result->succeeded) {
    const uint64_t current = result->compare_revisions.empty() ? 0 : result->compare_revisions[0];
    HttpResponse response = JsonResponse(
        409, json::object{{"error", json::object{{"code", "condition_failed"},
                                                 {"message", current == 0 ? std::string("the key does not exist")
                                                                          : fmt::format("the key's revision is {}",
                                                                                        current)}}},
                          {"revision", current}});
    response.headers.emplace_back("X-Revision", std::to_string(current));
    return response;
  }
  HttpResponse response = JsonResponse(200, json::object{{"revision", result->revision}});
  response.headers.emplace_back("X-Revision", std::to_string(result->revision));
  return response;
}

// A key or value of a txn body or scan answer in the request's encoding.
struct Codec {
  bool base64 = false;
  std::optional<std::string> Decode(const json::value* v) const {
    if (v == nullptr || !v->is_string()) return std::nullopt;
    std::string_view text(v->get_string().data(), v->get_string().size());
    if (!base64) return std::string(text);
    return Base64Decode(text);
  }
  std::optional<json::string> Encode(std::string_view bytes) const {
    if (base64) return json::string(Base64Encode(bytes));
    if (!IsValidUtf8(bytes)) return std::nullopt;
    return json::string(bytes);
  }
};

Result<TxnRequest> ParseTxn(std::string_view body, const HttpLimits& limits, bool* base64_out) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return Status::InvalidArgument("request body is not valid JSON: " + ec.message());
  const json::object* o = doc.if_object();
  if (o == nullptr) return Status::InvalidArgument("request body must be a JSON object");
  for (const auto& field : *o) {
    if (field.key() != "compare" && field.key() != "ops" && field.key() != "encoding") {
      return Status::InvalidArgument(
          fmt::format("unknown field \"{}\" (a transaction has compare, ops and encoding)",
                      std::string_view(field.key().data(), field.key().size())));
    }
  }
  Codec codec;
  if (const json::value* e = o->if_contains("encoding")) {
    if (!e->is_string() || (e->get_string() != "utf8" && e->get_string() != "base64")) {
      return Status::InvalidArgument("\"encoding\" must be \"utf8\" or \"base64\"");
    }
    codec.base64 = e->get_string() == "base64";
  }
  *base64_out = codec.base64;
  const auto list = [&](const char* name) -> Result<const json::array*> {
    const json::value* v = o->if_contains(name);
    if (v == nullptr) return static_cast<const json::array*>(nullptr);
    if (!v->is_array()) return Status::InvalidArgument(fmt::format("\"{}\" must be a list", name));
    if (v->get_array().size() > limits.max_txn_ops) {
      return Status::InvalidArgument(fmt::format("\"{}\" has {} entries; the limit is {}", name,
                                                 v->get_array().size(), limits.max_txn_ops));
    }
    return &v->get_array();
  };
  const auto key_of = [&](const json::object& item, std::string_view what, size_t i) -> Result<std::string> {
    std::optional<std::string> key = codec.Decode(item.if_contains("key"));
    if (!key) {
      return Status::InvalidArgument(fmt::format("{} {}: \"key\" must be a {}string", what, i,
                                                 codec.base64 ? "base64 " : ""));
    }
    if (key->empty()) return Status::InvalidArgument(fmt::format("{} {}: the key is empty", what, i));
    if (key->size() > limits.max_key_bytes) {
      return Status::InvalidArgument(
          fmt::format("{} {}: key is {} bytes; the limit is {}", what, i, key->size(), limits.max_key_bytes));
    }
    return std::move(*key);
  };

  TxnRequest request;
  RKV_ASSIGN_OR_RETURN(const json::array* compares, list("compare"));
  if (compares != nullptr) {
    for (size_t i = 0; i < compares->size(); ++i) {
      const json::object* item = (*compares)[i].if_object();
      if (item == nullptr) return Status::InvalidArgument(fmt::format("compare {} must be an object", i));
      Compare c;
      RKV_ASSIGN_OR_RETURN(c.key, key_of(*item, "compare", i));
      std::string_view target = "revision";
      if (const json::value* t = item->if_contains("target")) {
        if (!t->is_string()) return Status::InvalidArgument(fmt::format("compare {}: \"target\" must be a string", i));
        target = std::string_view(t->get_string().data(), t->get_string().size());
      } else if (item->contains("value") && !item->contains("revision")) {
        target = "value";
      }
      std::string_view op = "==";
      if (const json::value* v = item->if_contains("op")) {
        if (!v->is_string()) return Status::InvalidArgument(fmt::format("compare {}: \"op\" must be a string", i));
        op = std::string_view(v->get_string().data(), v->get_string().size());
      }
      if (op == "==") {
        c.op = Compare::Op::kEqual;
      } else if (op == "!=") {
        c.op = Compare::Op::kNotEqual;
      } else if (op == "<") {
        c.op = Compare::Op::kLess;
      } else if (op == ">") {
        c.op = Compare::Op::kGreater;
      } else {
        return Status::InvalidArgument(fmt::format("compare {}: \"op\" must be \"==\", \"!=\", \"<\" or \">\"", i));
      }
      if (target == "revision") {
        c.target = Compare::Target::kRevision;
        if (!json_fields::GetU64(*item, "revision", &c.revision)) {
          return Status::InvalidArgument(fmt::format("compare {}: \"revision\" must be a number (0: absent)", i));
        }
      } else if (target == "value") {
        c.target = Compare::Target::kValue;
        std::optional<std::string> value = codec.Decode(item->if_contains("value"));
        if (!value) return Status::InvalidArgument(fmt::format("compare {}: \"value\" must be a string", i));
        c.value = std::move(*value);
      } else {
        return Status::InvalidArgument(fmt::format("compare {}: \"target\" must be \"revision\" or \"value\"", i));
      }
      request.compares.push_back(std::move(c));
    }
  }
  RKV_ASSIGN_OR_RETURN(const json::array* ops, list("ops"));
  if (ops != nullptr) {
    for (size_t i = 0; i < ops->size(); ++i) {
      const json::object* item = (*ops)[i].if_object();
      if (item == nullptr) return Status::InvalidArgument(fmt::format("op {} must be an object", i));
      BatchOp op;
      RKV_ASSIGN_OR_RETURN(op.key, key_of(*item, "op", i));
      const json::value* kind = item->if_contains("op");
      if (kind != nullptr && kind->is_string() && kind->get_string() == "put") {
        op.type = BatchOp::Type::kPut;
        std::optional<std::string> value = codec.Decode(item->if_contains("value"));
        if (!value) return Status::InvalidArgument(fmt::format("op {}: a put needs a \"value\" string", i));
        if (value->size() > limits.max_value_bytes) {
          return Status::InvalidArgument(fmt::format("op {}: value is {} bytes; the limit is {}", i, value->size(),
                                                     limits.max_value_bytes));
        }
        op.value = std::move(*value);
        if (item->contains("ttl")) {
          uint64_t ttl = 0;
          if (!json_fields::GetU64(*item, "ttl", &ttl) || ttl == 0 || ttl > kMaxTtlSeconds) {
            return Status::InvalidArgument(fmt::format("op {}: \"ttl\" must be a number of seconds from 1", i));
          }
          op.ttl_ms = ttl * 1000;
        }
      } else if (kind != nullptr && kind->is_string() && kind->get_string() == "delete") {
        op.type = BatchOp::Type::kDelete;
      } else {
        return Status::InvalidArgument(fmt::format("op {}: \"op\" must be \"put\" or \"delete\"", i));
      }
      request.ops.push_back(std::move(op));
    }
  }
  return request;
}

}  // namespace

void HttpHandler::HandleKeyV1(std::string key, HttpRequest request, Callback done) {
  const std::string& method = request.method;
  const bool is_get = method == "GET";
  const bool is_put = method == "PUT" || method == "POST";
  const bool is_delete = method == "DELETE";
  if (!is_get && !is_put && !is_delete) {
    done(MethodNotAllowed("GET, PUT, DELETE"));
    return;
  }
  if (key.empty()) {
    done(ErrorResponse(404, "not_found", "no key given; use /v1/kv/{key}, or GET /v1/kv?prefix= to scan"));
    return;
  }
  if (key.size() > limits_.max_key_bytes) {
    done(internal::TooLarge("key", key.size(), limits_.max_key_bytes));
    return;
  }
  Query q;
  const std::string_view allowed = is_get ? "consistency" : is_put ? "if_revision,ttl" : "if_revision";
  if (auto bad = ParseQuery(request.target, allowed, &q)) {
    done(std::move(*bad));
    return;
  }
  KvService* service = service_;
  if (is_get) {
    service_->GetEntry(std::move(key), q.read, [service, done = std::move(done)](Result<KvEntry> entry) {
      HttpResponse response;
      if (entry.ok()) {
        response.content_type = std::string(kOctetStream);
        response.body = std::move(entry->value);
        response.headers.emplace_back("X-Revision", std::to_string(entry->revision));
      } else {
        response = StatusToResponse(entry.status());
      }
      AddReadHeaders(service, &response);
      done(std::move(response));
    });
    return;
  }
  if (is_put && request.body.size() > limits_.max_value_bytes) {
    done(internal::TooLarge("value", request.body.size(), limits_.max_value_bytes));
    return;
  }
  TxnRequest txn;
  if (q.if_revision) {
    txn.compares.push_back(Compare{key, Compare::Target::kRevision, Compare::Op::kEqual, *q.if_revision, {}});
  }
  BatchOp op;
  op.type = is_put ? BatchOp::Type::kPut : BatchOp::Type::kDelete;
  op.key = std::move(key);
  if (is_put) {
    op.value = std::move(request.body);  // no copy of the value
    op.ttl_ms = q.ttl_s * 1000;
  }
  txn.ops.push_back(std::move(op));
  ServiceWriteOptions options;
  options.idempotency_key = std::move(request.idempotency_key);
  service_->Txn(std::move(txn), options,
                [done = std::move(done)](Result<TxnResult> result) { done(WriteResponse(result)); });
}

void HttpHandler::HandleScan(const HttpRequest& request, Callback done) {
  if (request.method != "GET") {
    done(MethodNotAllowed("GET"));
    return;
  }
  Query q;
  if (auto bad = ParseQuery(request.target, "prefix,start,end,limit,keys_only,continue,encoding,consistency", &q)) {
    done(std::move(*bad));
    return;
  }
  const Codec codec{q.base64};
  ScanRequest scan;
  const auto decode = [&](const std::optional<std::string>& param, const char* name,
                          std::string* out) -> std::optional<HttpResponse> {
    if (!param) return std::nullopt;
    if (!q.base64) {
      *out = *param;
      return std::nullopt;
    }
    std::optional<std::string> bytes = Base64Decode(*param);
    if (!bytes) return BadRequest(fmt::format("{} is not base64 (encoding=base64)", name));
    *out = std::move(*bytes);
    return std::nullopt;
  };
  std::string continue_from;
  for (auto [param, name, out] : {std::tuple{&q.prefix, "prefix", &scan.prefix}, std::tuple{&q.start, "start", &scan.start},
                                  std::tuple{&q.end, "end", &scan.end},
                                  std::tuple{&q.continue_from, "continue", &continue_from}}) {
    if (auto bad = decode(*param, name, out)) {
      done(std::move(*bad));
      return;
    }
  }
  if (!q.prefix && !q.start && !q.end && !q.continue_from) {
    // Not an error to scan everything, but it must be asked for: an empty
    // prefix says so.
    done(BadRequest("give prefix= (empty for every key), or start= and/or end="));
    return;
  }
  if (q.limit > limits_.max_scan_limit) {
    done(BadRequest(fmt::format("limit is {}; at most {} keys per page", q.limit, limits_.max_scan_limit)));
    return;
  }
  if (!continue_from.empty()) {
    if (continue_from < scan.start) {
      done(BadRequest("continue is before start: pass the page's next as it was given"));
      return;
    }
    scan.start = std::move(continue_from);
  }
  scan.limit = q.limit;
  scan.keys_only = q.keys_only;
  KvService* service = service_;
  service_->Scan(std::move(scan), q.read, [service, codec, done = std::move(done)](Result<ScanResult> page) {
    if (!page.ok()) {
      done(StatusToResponse(page.status()));
      return;
    }
    json::array kvs;
    kvs.reserve(page->entries.size());
    for (const KvEntry& e : page->entries) {
      json::object item;
      std::optional<json::string> key = codec.Encode(e.key);
      std::optional<json::string> value = codec.Encode(e.value);
      if (!key || !value) {
        done(BadRequest("a key or value in the range is not valid UTF-8: scan with encoding=base64"));
        return;
      }
      item["key"] = std::move(*key);
      item["value"] = std::move(*value);
      item["revision"] = e.revision;
      kvs.push_back(std::move(item));
    }
    json::object out;
    out["kvs"] = std::move(kvs);
    out["more"] = page->more;
    if (page->more) {
      std::optional<json::string> next = codec.Encode(page->next_key);
      if (!next) {
        done(BadRequest("the next key is not valid UTF-8: scan with encoding=base64"));
        return;
      }
      out["next"] = std::move(*next);
    }
    out["applied_index"] = page->applied_index;
    HttpResponse response = JsonResponse(200, out);
    AddReadHeaders(service, &response);
    done(std::move(response));
  });
}

void HttpHandler::HandleTxn(const HttpRequest& request, Callback done) {
  if (request.method != "POST") {
    done(MethodNotAllowed("POST"));
    return;
  }
  if (request.body.size() > limits_.max_body_bytes) {
    done(internal::TooLarge("request body", request.body.size(), limits_.max_body_bytes));
    return;
  }
  bool base64 = false;
  Result<TxnRequest> txn = ParseTxn(request.body, limits_, &base64);
  if (!txn.ok()) {
    done(StatusToResponse(txn.status()));
    return;
  }
  std::vector<std::string> compared;
  for (const Compare& c : txn->compares) compared.push_back(c.key);
  ServiceWriteOptions options;
  options.idempotency_key = request.idempotency_key;
  service_->Txn(std::move(*txn), options,
                [compared = std::move(compared), base64, done = std::move(done)](Result<TxnResult> result) {
                  if (!result.ok()) {
                    done(StatusToResponse(result.status()));
                    return;
                  }
                  if (result->succeeded) {
                    HttpResponse response =
                        JsonResponse(200, json::object{{"succeeded", true}, {"revision", result->revision}});
                    response.headers.emplace_back("X-Revision", std::to_string(result->revision));
                    done(std::move(response));
                    return;
                  }
                  json::array revisions;
                  for (uint64_t r : result->compare_revisions) revisions.emplace_back(r);
                  const size_t i = result->failed_compare;
                  std::string key = i < compared.size() ? compared[i] : std::string();
                  if (base64 || !IsValidUtf8(key)) key = Base64Encode(key);
                  const uint64_t have = i < result->compare_revisions.size() ? result->compare_revisions[i] : 0;
                  done(JsonResponse(
                      409, json::object{{"succeeded", false},
                                        {"failed_compare", i},
                                        {"revisions", std::move(revisions)},
                                        {"error", json::object{{"code", "condition_failed"},
                                                               {"message", fmt::format("compare {} failed: key \"{}\" "
                                                                                       "has revision {}",
                                                                                       i, key, have)}}}}));
                });
}

void HttpHandler::HandleLeader(const HttpRequest& request, Callback done) {
  if (request.method != "POST") {
    done(MethodNotAllowed("POST"));
    return;
  }
  uint64_t id = 0;
  if (!request.body.empty()) {
    boost::system::error_code ec;
    json::value doc = json::parse(json::string_view(request.body.data(), request.body.size()), ec);
    const json::object* o = ec ? nullptr : doc.if_object();
    if (o == nullptr || (o->contains("id") && !json_fields::GetU64(*o, "id", &id))) {
      done(BadRequest("body must be {\"id\":N} (the member to lead) or {} (the most caught-up voter)"));
      return;
    }
  }
  KvService* service = service_;
  service_->TransferLeader(id, [service, target = request.target, done = std::move(done)](Result<LeaderInfo> r) {
    if (r.ok()) {
      done(JsonResponse(200, json::object{{"leader", r->leader}, {"term", r->term}}));
      return;
    }
    if (r.status().IsNotLeader()) {
      if (auto redirect = internal::RedirectToLeader(service, target, r.status().message())) {
        done(std::move(*redirect));
        return;
      }
    }
    if (r.status().code() == StatusCode::kAborted) {
      HttpResponse response = ErrorResponse(503, "unavailable", r.status().message());
      response.headers.emplace_back("Retry-After", "1");
      done(std::move(response));
      return;
    }
    done(StatusToResponse(r.status()));
  });
}

void HttpHandler::HandleSnapshot(const HttpRequest& request, Callback done) {
  if (request.method != "GET") {
    done(MethodNotAllowed("GET"));
    return;
  }
  service_->TakeBackup([done = std::move(done)](Result<Backup> backup) {
    if (!backup.ok()) {
      done(StatusToResponse(backup.status()));
      return;
    }
    HttpResponse response;
    response.content_type = std::string(kOctetStream);
    response.headers.emplace_back("X-Raft-Applied-Index", std::to_string(backup->applied_index));
    response.headers.emplace_back("X-Raft-Applied-Term", std::to_string(backup->applied_term));
    response.body = std::move(backup->data);
    done(std::move(response));
  });
}

void HttpHandler::HandleMetrics(Callback done) {
  if (metrics_ == nullptr) {
    done(ErrorResponse(404, "not_found", "this server keeps no metrics"));
    return;
  }
  HttpResponse response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = metrics_->Render();
  done(std::move(response));
}

void HttpHandler::HandleReady(Callback done) {
  const Readiness ready = service_->Ready();
  if (ready.ready) {
    done(JsonResponse(200, json::object{{"status", "ready"}}));
    return;
  }
  done(JsonResponse(503, json::object{{"status", "not_ready"}, {"reason", ready.reason}}));
}

}  // namespace rkv::http
