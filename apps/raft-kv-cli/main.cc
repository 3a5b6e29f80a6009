// raft-kv-cli: the command-line client (get, put, delete), the cluster
// views (cluster, status) and local-cluster, which runs N raft-kv nodes on
// this machine. Exit codes: 0 ok, 1 not found (get), 2 any other error.
#include <signal.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "kv_commands.h"
#include "local_cluster.h"

namespace {

constexpr char kDescription[] =
    "raft-kv-cli: talk to a raft-kv node over its HTTP API, or run a cluster on this machine.\n"
    "Any node of a cluster accepts any request.";

constexpr char kFooter[] = R"(Examples:
  raft-kv-cli put hello world                    store a value (prints OK)
  printf 'two\nlines' | raft-kv-cli put note -   the value from stdin, byte for byte
  raft-kv-cli get hello                          print it; exit 1 if the key does not exist
  raft-kv-cli get hello --consistency stale      the node's own copy, possibly behind
  raft-kv-cli delete hello                       OK also when the key was absent
  raft-kv-cli cluster                            members, their addresses, who leads
  raft-kv-cli -e 127.0.0.1:7002 status           one node's own state
  raft-kv-cli local-cluster --nodes 3            3 nodes on 127.0.0.1:7001-7003 until Ctrl-C
  raft-kv-cli member list                        the members, their roles and addresses
  raft-kv-cli member remove 3                    take member 3 out of the cluster

Exit codes: 0 ok, 1 not found (get), 2 any other error (one line on stderr).
Writes carry an Idempotency-Key; a write whose connection failed, or that got
503, is sent again with the same key (up to --attempts times), so it is
applied once. Run "raft-kv-cli SUBCOMMAND --help" for a subcommand's options.)";

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

  std::string endpoint_text = "127.0.0.1:8080";
  double timeout_s = 10;
  int attempts = 5;
  app.add_option("-e,--endpoint", endpoint_text, "HOST:PORT of the node to talk to")
      ->envname("RAFT_KV_ENDPOINT")
      ->capture_default_str();
  app.add_option("--timeout", timeout_s, "Seconds to wait for a connection and for each reply")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_option("--attempts", attempts,
                 "Tries per request; a lost connection or a 503 is retried with backoff, "
                 "waiting at least what Retry-After asks")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();

  std::string key;
  std::string value;
  std::string consistency;
  bool raw_json = false;

  CLI::App* get = app.add_subcommand(
      "get", "Print KEY's value and a newline; exit 1 if KEY does not exist.\n"
             "  raft-kv-cli get hello");
  get->add_option("KEY", key, "The key")->required();
  get->add_option("--consistency", consistency,
                  "linearizable (default: sees every write acknowledged before it), lease "
                  "(the leader's lease, no heartbeat round), or stale (the node's own copy)")
      ->check(CLI::IsMember({"linearizable", "lease", "stale"}));

  CLI::App* put = app.add_subcommand(
      "put", "Set KEY to VALUE (\"-\" reads the value from stdin); prints OK.\n"
             "  raft-kv-cli put hello world");
  put->add_option("KEY", key, "The key")->required();
  put->add_option("VALUE", value, "The value (UTF-8 text), or - for stdin")->required();

  CLI::App* del = app.add_subcommand(
      "delete", "Delete KEY; prints OK, also when KEY was absent.\n"
                "  raft-kv-cli delete hello");
  del->add_option("KEY", key, "The key")->required();

  CLI::App* cluster = app.add_subcommand(
      "cluster", "Show the cluster as the node sees it: the members and who leads\n"
                 "(GET /v1/cluster).\n  raft-kv-cli cluster --json");
  cluster->add_flag("--json", raw_json, "Print the server's JSON as it is");

  CLI::App* status = app.add_subcommand(
      "status", "Show the node's own state (GET /v1/status).\n"
                "  raft-kv-cli -e 127.0.0.1:7002 status");
  status->add_flag("--json", raw_json, "Print the server's JSON as it is");

  rkv::cli::MemberCommand member_command;
  CLI::App* member = app.add_subcommand(
      "member", "List or change the members of the cluster (changes go to the leader).\n"
                "A new node normally adds itself: raft-kv --join (see raft-kv --help).");
  member->require_subcommand(1);
  member->add_flag("--json", raw_json, "Print the server's JSON as it is");
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

  auto endpoint = rkv::cli::ParseEndpoint(endpoint_text);
  if (!endpoint.ok()) return rkv::cli::Fail(endpoint.status().message());
  rkv::cli::RequestOptions options;
  options.endpoint = *endpoint;
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  options.max_attempts = attempts;

  if (get->parsed()) return rkv::cli::RunGet(options, key, consistency);
  if (put->parsed()) return rkv::cli::RunPut(options, key, value == "-" ? ReadStdin() : value);
  if (del->parsed()) return rkv::cli::RunDelete(options, key);
  if (cluster->parsed()) return rkv::cli::RunShow(options, "/v1/cluster", raw_json);
  if (status->parsed()) return rkv::cli::RunShow(options, "/v1/status", raw_json);
  if (member->parsed()) {
    for (CLI::App* sub : {member_list, member_add, member_promote, member_remove}) {
      if (sub->parsed()) member_command.action = sub->get_name();
    }
    return rkv::cli::RunMember(options, member_command, raw_json);
  }
  return rkv::cli::Fail("no subcommand (see raft-kv-cli --help)");
}
