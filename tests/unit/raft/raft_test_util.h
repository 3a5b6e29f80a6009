// Small helpers shared by the Raft tests.
#ifndef RKV_TESTS_UNIT_RAFT_RAFT_TEST_UTIL_H_
#define RKV_TESTS_UNIT_RAFT_RAFT_TEST_UTIL_H_

#include <variant>
#include <vector>

#include "raft/message.h"

namespace rkv::raft::test {

// The messages of body type T, with their envelopes.
template <typename T>
std::vector<std::pair<Message, T>> OfType(const std::vector<Message>& messages) {
  std::vector<std::pair<Message, T>> out;
  for (const Message& m : messages) {
    if (const auto* body = std::get_if<T>(&m.body)) out.emplace_back(m, *body);
  }
  return out;
}

template <typename T>
size_t CountOf(const std::vector<Message>& messages) {
  return OfType<T>(messages).size();
}

}  // namespace rkv::raft::test

#endif  // RKV_TESTS_UNIT_RAFT_RAFT_TEST_UTIL_H_
