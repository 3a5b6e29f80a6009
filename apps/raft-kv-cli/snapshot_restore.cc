#include "snapshot_restore.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <string>

#include "common/logging.h"
#include "env/env.h"
#include "node/initial_cluster.h"
#include "node/restore.h"
#include "kv_commands.h"

namespace rkv::cli {

int RunSnapshotRestore(const RestoreArgs& args) {
  std::map<uint64_t, std::string> peers;
  std::map<uint64_t, std::string> http;
  std::string error;
  if (!ParseMemberList(args.initial_cluster, &peers, &error)) return Fail("--initial-cluster: " + error);
  if (!ParseMemberList(args.cluster_http, &http, &error)) return Fail("--cluster-http: " + error);
  if (!peers.empty() && peers.count(args.id) == 0) {
    return Fail(fmt::format("--initial-cluster does not list --id {}", args.id));
  }
  RestoreOptions options;
  options.id = NodeId{args.id};
  // The same id raft-kv derives from the same flags, so the restored node
  // and its flags agree.
  options.cluster_id = ClusterIdFor(args.cluster_token, peers);
  if (peers.empty()) {
    options.members[args.id] = MemberAddress{};
  } else {
    for (const auto& [id, address] : peers) {
      const auto h = http.find(id);
      options.members[id] = MemberAddress{address, h != http.end() ? h->second : ""};
    }
  }
  options.state_machine.max_key_size = args.max_key_bytes;
  options.state_machine.max_value_size = args.max_value_bytes;

  Result<std::string> backup = ReadFileToString(Env::Posix(), args.file);
  if (!backup.ok()) return Fail("cannot read " + args.file + ": " + backup.status().ToString(), kExitUnavailable);
  log::SetLevel(log::Level::kWarn);
  Result<RestoreSummary> summary = RestoreBackup(*backup, args.data_dir, options);
  if (!summary.ok()) {
    const Status& s = summary.status();
    if (s.IsCorruption()) return Fail(args.file + " is not an intact backup: " + s.ToString());
    if (s.IsInvalidArgument() || s.code() == StatusCode::kNotSupported) return Fail(s.ToString());
    return Fail("restoring into " + args.data_dir + ": " + s.ToString(), kExitUnavailable);
  }
  if (args.json) {
    const boost::json::object out{{"data", args.data_dir}, {"id", args.id},           {"index", summary->index},
                                  {"term", summary->term}, {"records", summary->records}, {"bytes", summary->bytes}};
    std::printf("%s\n", boost::json::serialize(out).c_str());
  } else {
    std::string start = fmt::format("raft-kv --id {} --data {}", args.id, args.data_dir);
    if (!args.initial_cluster.empty()) start += " --initial-cluster " + args.initial_cluster;
    if (!args.cluster_http.empty()) start += " --cluster-http " + args.cluster_http;
    if (!args.cluster_token.empty()) start += " --cluster-token " + args.cluster_token;
    std::printf("restored %s (index %llu, %llu records) into %s as member %llu of a new %zu-member cluster\n"
                "start it with: %s\n",
                args.file.c_str(), static_cast<unsigned long long>(summary->index),
                static_cast<unsigned long long>(summary->records), args.data_dir.c_str(),
                static_cast<unsigned long long>(args.id), options.members.size(), start.c_str());
  }
  return 0;
}

}  // namespace rkv::cli
