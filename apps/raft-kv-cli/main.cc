// raft-kv-cli: the command-line client (get, put, del, scan, txn), the
// cluster views and admin commands (cluster, status, member, leader,
// snapshot) and local-cluster, which runs N raft-kv nodes on this machine.
// Exit codes: kv_commands.h.
#include <signal.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include "common/result.h"
#include "env/env.h"
#include "kv_commands.h"
#include "local_cluster.h"
#include "snapshot_restore.h"

namespace {

constexpr char kDescription[] =
    "raft-kv-cli: talk to a raft-kv cluster over its HTTP API, or run one on this machine.\n"
    "Any node takes any request; give several with --endpoints and the CLI moves on\n"
    "when one is down, and follows the leader for what only the leader does.";

constexpr char kFooter[] = R"(Examples:
  export RAFT_KV_ENDPOINTS=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
  raft-kv-cli put hello world                    store a value (prints OK)
  raft-kv-cli put photo - < photo.jpg            the value from stdin, byte for byte
  raft-kv-cli get hello                          print it; exit 1 if the key does not exist
  raft-kv-cli get hello --consistency stale      the node's own copy, possibly behind
  raft-kv-cli put lock me --if-revision 0        only if absent; exit 3 if it exists
  raft-kv-cli del hello                          OK also when the key was absent
  raft-kv-cli scan --prefix user/ --limit 10     keys and values in byte order
  raft-kv-cli txn batch.json                     compares and operations, all or nothing
  raft-kv-cli cluster status                     members, roles, leader, indexes, lag
  raft-kv-cli member add 4 127.0.0.1:7104 --http 127.0.0.1:7004
  raft-kv-cli leader transfer 2                  make member 2 the leader
  raft-kv-cli snapshot save backup.snap          a consistent backup of everything
  raft-kv-cli snapshot restore backup.snap --data ./restored
  raft-kv-cli local-cluster --nodes 3            3 nodes on 127.0.0.1:7001-7003 until Ctrl-C

--json prints JSON for scripts instead of text for people.
Exit codes: 0 ok; 1 not found (get); 2 bad input or a request the server
refused; 3 a condition did not hold (--if-revision, a txn compare), nothing
written; 4 the cluster could not be reached or had no leader within the
attempts, or a local file could not be read or written: retry later.
Writes carry an Idempotency-Key; a write whose connection failed, or that got
503, is sent again with the same key (up to --attempts times, to the next
endpoint), so it is applied once. Run "raft-kv-cli SUBCOMMAND --help" for a
subcommand's options. More: docs/cli.md.)";

// The whole of stdin, byte for byte (binary mode: no newline is added or
// dropped).
std::string ReadStdin() {
  std::string value;
  char buffer[65536];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, stdin)) > 0) value.append(buffer, n);
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  // A server that closes the connection must not kill the CLI; the write
  // fails with EPIPE and is retried or reported instead.
  ::signal(SIGPIPE, SIG_IGN);

  CLI::App app{kDescription, "raft-kv-cli"};
  app.set_version_flag("--version", std::string("raft-kv-cli ") + RKV_VERSION);
  app.require_subcommand(1);
  // Global options may follow the subcommand: `raft-kv-cli get k -e host:port`.
  app.fallthrough();

  std::string endpoints_text = "127.0.0.1:8080";
  // The older single-endpoint variable still works when the new one is unset.
  if (const char* one = std::getenv("RAFT_KV_ENDPOINT"); one != nullptr && *one != '\0') endpoints_text = one;
  double timeout_s = 10;
  int attempts = 5;
  bool json = false;
  app.add_option("-e,--endpoints,--endpoint", endpoints_text,
                 "HOST:PORT of the nodes to talk to, comma-separated; tried in order")
      ->envname("RAFT_KV_ENDPOINTS")
      ->capture_default_str();
  app.add_option("--timeout", timeout_s, "Seconds to wait for a connection and for each reply")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_option("--attempts", attempts,
                 "Tries per request; a lost connection or a 503 is retried on the next endpoint, "
                 "with backoff once each was tried, waiting at least what Retry-After asks")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_flag("--json", json, "Print JSON (for scripts) instead of text");

  std::string key;
  std::string value;
  std::string consistency;
  const auto add_consistency = [&](CLI::App* sub) {
    sub->add_option("--consistency", consistency,
                    "linearizable (default: sees every write acknowledged before it), lease "
                    "(the leader's lease, no heartbeat round), or stale (the node's own copy)")
        ->check(CLI::IsMember({"linearizable", "lease", "stale"}));
  };

  CLI::App* get = app.add_subcommand(
      "get", "Print KEY's value (its bytes) and a newline; exit 1 if KEY does not exist.\n"
             "With --json: {\"key\",\"value\" (or \"value_base64\"),\"revision\"}.\n"
             "  raft-kv-cli get hello");
  get->add_option("KEY", key, "The key")->required();
  add_consistency(get);

  rkv::cli::WriteOptions write;
  uint64_t if_revision = 0;
  CLI::App* put = app.add_subcommand(
      "put", "Set KEY to VALUE (\"-\" reads the value from stdin, byte for byte); prints OK.\n"
             "  raft-kv-cli put hello world\n"
             "  raft-kv-cli put counter 2 --if-revision 17   only if its revision is still 17");
  put->add_option("KEY", key, "The key")->required();
  put->add_option("VALUE", value, "The value, or - for stdin")->required();
  CLI::Option* put_if = put->add_option(
      "--if-revision", if_revision,
      "Write only if KEY's revision is N (0: only if absent); else exit 3, nothing written");
  put->add_option("--ttl", write.ttl_seconds, "Delete KEY this many seconds after the write")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10} * 365 * 86400));

  CLI::App* del = app.add_subcommand(
      "del", "Delete KEY; prints OK, also when KEY was absent.\n"
             "  raft-kv-cli del hello");
  del->alias("delete");
  del->add_option("KEY", key, "The key")->required();
  CLI::Option* del_if = del->add_option(
      "--if-revision", if_revision, "Delete only if KEY's revision is N; else exit 3, nothing deleted");

  rkv::cli::ScanArgs scan_args;
  std::string prefix, start, end;
  CLI::App* scan = app.add_subcommand(
      "scan", "Print the keys of a range in byte order, \"KEY<TAB>VALUE\" per line\n"
              "(page after page; a scan is not one snapshot: see docs/api.md).\n"
              "  raft-kv-cli scan --prefix user/ --limit 100\n"
              "  raft-kv-cli scan --start a --end b --keys-only\n"
              "  raft-kv-cli scan --prefix ''               every key");
  CLI::Option* scan_prefix = scan->add_option("--prefix", prefix, "Keys that start with P");
  CLI::Option* scan_start = scan->add_option("--start", start, "Keys at or after S");
  CLI::Option* scan_end = scan->add_option("--end", end, "Keys before E");
  scan->add_option("--limit", scan_args.limit, "At most N keys (default: all of them)");
  scan->add_flag("--keys-only", scan_args.keys_only, "Keys without values");
  add_consistency(scan);

  std::string txn_file = "-";
  CLI::App* txn = app.add_subcommand(
      "txn", "Apply a transaction from FILE (or stdin): JSON compares and put/delete ops,\n"
             "all applied if every compare holds, else none (exit 3). Format: docs/api.md.\n"
             "  echo '{\"compare\":[{\"key\":\"a\",\"revision\":0}],\n"
             "        \"ops\":[{\"op\":\"put\",\"key\":\"a\",\"value\":\"1\"}]}' | raft-kv-cli txn");
  txn->add_option("FILE", txn_file, "The request, or - for stdin")->capture_default_str();

  CLI::App* cluster = app.add_subcommand(
      "cluster", "Show the cluster as the node sees it: members, roles, leader, term, commit\n"
                 "and applied index, replication lag per follower (GET /v1/cluster).\n"
                 "  raft-kv-cli cluster status");
  cluster->require_subcommand(0, 1);
  cluster->add_subcommand("status", "The same: the members as a table");

  CLI::App* status = app.add_subcommand(
      "status", "Show one node's own state (GET /v1/status).\n"
                "  raft-kv-cli -e 127.0.0.1:7002 status");

  rkv::cli::MemberCommand member_command;
  CLI::App* member = app.add_subcommand(
      "member", "List or change the members of the cluster (changes go to the leader).\n"
                "A new node normally adds itself: raft-kv --join (see raft-kv --help).");
  member->require_subcommand(1);
  CLI::App* member_list = member->add_subcommand("list", "The members, their roles and addresses");
  CLI::App* member_add = member->add_subcommand(
      "add", "Add member ID, reached by its peers at PEER, as a learner. Then start its\n"
             "raft-kv with --id ID --peer-listen PEER --join (it finds itself added).\n"
             "  raft-kv-cli member add 4 127.0.0.1:7104 --http 127.0.0.1:7004");
  member_add->add_option("ID", member_command.id, "The new member's id")->required();
  member_add->add_option("PEER", member_command.peer, "Its peer address, HOST:PORT")->required();
  member_add->add_option("--http", member_command.http, "Its HTTP address, HOST:PORT");
  member_add->add_flag("--voter", member_command.voter,
                       "Add it as a voter at once (it counts toward every commit while it "
                       "catches up; a learner first is safer)");
  CLI::App* member_promote = member->add_subcommand(
      "promote", "Make learner ID a voter; the leader waits until it has caught up.\n"
                 "  raft-kv-cli member promote 4");
  member_promote->add_option("ID", member_command.id, "The learner's id")->required();
  CLI::App* member_remove = member->add_subcommand(
      "remove", "Take member ID out of the cluster (the leader too: the others elect\n"
                "a new one). The removed node stops serving; stop its process.\n"
                "  raft-kv-cli member remove 3");
  member_remove->add_option("ID", member_command.id, "The member's id")->required();

  uint64_t leader_id = 0;
  CLI::App* leader = app.add_subcommand("leader", "Move the leadership.");
  leader->require_subcommand(1);
  CLI::App* leader_transfer = leader->add_subcommand(
      "transfer", "Hand leadership to voter ID (default: the most caught-up voter) once it has\n"
                  "caught up; answers when it leads. Writes pause for that moment, none is lost.\n"
                  "  raft-kv-cli leader transfer 2");
  CLI::Option* leader_id_option = leader_transfer->add_option("ID", leader_id, "The voter to lead");

  std::string snapshot_file;
  rkv::cli::RestoreArgs restore;
  CLI::App* snapshot = app.add_subcommand("snapshot", "Back up a cluster, or seed a new one from a backup.");
  snapshot->require_subcommand(1);
  CLI::App* snapshot_save = snapshot->add_subcommand(
      "save", "Write a consistent backup of every key to FILE (GET /v1/snapshot: it holds\n"
              "every write acknowledged before it began). FILE is replaced atomically.\n"
              "  raft-kv-cli snapshot save backup.snap");
  snapshot_save->add_option("FILE", snapshot_file, "Where to write it")->required();
  CLI::App* snapshot_restore = snapshot->add_subcommand(
      "restore", "Seed the data directory of one member of a NEW cluster from FILE; run it for\n"
                 "each member with its --id and the same --initial-cluster, then start each\n"
                 "raft-kv with the same flags. The backup's checksums are checked first.\n"
                 "  raft-kv-cli snapshot restore backup.snap --data ./node1 --id 1 \\\n"
                 "      --initial-cluster 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103");
  snapshot_restore->add_option("FILE", restore.file, "The backup")->required();
  snapshot_restore->add_option("--data", restore.data_dir, "The new member's data directory (new or empty)")
      ->required();
  snapshot_restore->add_option("--id", restore.id, "The member's id")->capture_default_str();
  snapshot_restore->add_option("--initial-cluster", restore.initial_cluster,
                               "The new cluster's members, ID=HOST:PORT,... as raft-kv takes them "
                               "(empty: a one-member cluster)");
  snapshot_restore->add_option("--cluster-http", restore.cluster_http, "Their HTTP addresses, as raft-kv takes them");
  snapshot_restore->add_option("--cluster-token", restore.cluster_token, "As raft-kv takes it");
  snapshot_restore->add_option("--max-key-bytes", restore.max_key_bytes, "As raft-kv takes it")
      ->capture_default_str();
  snapshot_restore->add_option("--max-value-bytes", restore.max_value_bytes, "As raft-kv takes it")
      ->capture_default_str();

  rkv::cli::LocalClusterOptions local;
  CLI::App* local_cluster = app.add_subcommand(
      "local-cluster",
      "Run NODES raft-kv processes on 127.0.0.1 until Ctrl-C.\n"
      "Node i serves HTTP on BASE+i and talks to its peers on BASE+100+i;\n"
      "its data and log are in DATA/node<i>. Run it again to restart the same\n"
      "cluster from its data. Arguments after -- go to every node.\n"
      "  raft-kv-cli local-cluster --nodes 3 --fresh -- --sync always");
  local_cluster->add_option("-n,--nodes", local.nodes, "How many nodes (1-9)")->capture_default_str();
  local_cluster->add_option("--base-port", local.base_port, "HTTP on BASE+i, peers on BASE+100+i")
      ->capture_default_str();
  local_cluster->add_option("--data-dir", local.data_dir, "Where the nodes keep their data and logs")
      ->capture_default_str();
  local_cluster->add_option("--server", local.server,
                            "The raft-kv binary (default: the one beside raft-kv-cli)");
  local_cluster->add_flag("--fresh", local.fresh,
                          "Delete DATA first and start a new cluster (only a directory "
                          "local-cluster made is deleted)");
  local_cluster->add_option("SERVER_ARGS", local.server_args,
                            "Extra raft-kv flags for every node, after --");

  // Set last: subcommands created before it would copy it into their help.
  app.footer(kFooter);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return rkv::cli::Fail(std::string(e.what()) + " (see raft-kv-cli --help)");
  }

  if (local_cluster->parsed()) return rkv::cli::RunLocalCluster(local);
  if (snapshot_restore->parsed()) {
    restore.json = json;
    return rkv::cli::RunSnapshotRestore(restore);
  }

  auto endpoints = rkv::cli::ParseEndpoints(endpoints_text);
  if (!endpoints.ok()) return rkv::cli::Fail(endpoints.status().message());
  rkv::cli::RequestOptions options;
  options.endpoints = std::move(*endpoints);
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  options.max_attempts = attempts;
  options.json = json;

  if (get->parsed()) return rkv::cli::RunGet(options, key, consistency);
  if (put->parsed()) {
    if (put_if->count() > 0) write.if_revision = if_revision;
    return rkv::cli::RunPut(options, key, value == "-" ? ReadStdin() : value, write);
  }
  if (del->parsed()) {
    if (del_if->count() > 0) write.if_revision = if_revision;
    return rkv::cli::RunDelete(options, key, write);
  }
  if (scan->parsed()) {
    if (scan_prefix->count() > 0) scan_args.prefix = prefix;
    if (scan_start->count() > 0) scan_args.start = start;
    if (scan_end->count() > 0) scan_args.end = end;
    scan_args.consistency = consistency;
    return rkv::cli::RunScan(options, scan_args);
  }
  if (txn->parsed()) {
    std::string request;
    if (txn_file == "-") {
      request = ReadStdin();
    } else {
      rkv::Result<std::string> text = rkv::ReadFileToString(rkv::Env::Posix(), txn_file);
      if (!text.ok()) {
        return rkv::cli::Fail("cannot read " + txn_file + ": " + text.status().ToString(),
                              rkv::cli::kExitUnavailable);
      }
      request = std::move(*text);
    }
    return rkv::cli::RunTxn(options, request);
  }
  if (cluster->parsed()) return rkv::cli::RunShow(options, "/v1/cluster");
  if (status->parsed()) return rkv::cli::RunShow(options, "/v1/status");
  if (member->parsed()) {
    for (CLI::App* sub : {member_list, member_add, member_promote, member_remove}) {
      if (sub->parsed()) member_command.action = sub->get_name();
    }
    return rkv::cli::RunMember(options, member_command);
  }
  if (leader_transfer->parsed()) {
    std::optional<uint64_t> id;
    if (leader_id_option->count() > 0) id = leader_id;
    return rkv::cli::RunLeaderTransfer(options, id);
  }
  if (snapshot_save->parsed()) return rkv::cli::RunSnapshotSave(options, snapshot_file);
  return rkv::cli::Fail("no subcommand (see raft-kv-cli --help)");
}
