#include "json_render.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <string_view>
#include <vector>

namespace rkv::cli {
namespace {

namespace json = boost::json;

bool IsScalar(const json::value& v) { return !v.is_object() && !v.is_array(); }

// Strings print bare (no quotes, no escapes), everything else as compact
// JSON; a table cell or a "name: value" line reads better that way.
std::string Scalar(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  return json::serialize(v);
}

bool IsTable(const json::array& array) {
  return !array.empty() &&
         std::all_of(array.begin(), array.end(), [](const json::value& v) { return v.is_object(); });
}

void RenderValue(const json::value& v, int indent, std::string* out);

void RenderTable(const json::array& rows, int indent, std::string* out) {
  // Columns in the order they first appear, so a server's field order holds.
  std::vector<std::string> columns;
  for (const json::value& row : rows) {
    for (const auto& member : row.as_object()) {
      const std::string name(member.key());
      if (std::find(columns.begin(), columns.end(), name) == columns.end()) columns.push_back(name);
    }
  }
  std::vector<std::vector<std::string>> cells;
  cells.push_back(columns);
  for (const json::value& row : rows) {
    std::vector<std::string> line;
    for (const std::string& column : columns) {
      const json::value* cell = row.as_object().if_contains(column);
      line.push_back(cell == nullptr ? "-" : Scalar(*cell));
    }
    cells.push_back(std::move(line));
  }
  std::vector<size_t> widths(columns.size(), 0);
  for (const auto& line : cells) {
    for (size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], line[i].size());
  }
  for (const auto& line : cells) {
    std::string text(static_cast<size_t>(indent), ' ');
    for (size_t i = 0; i < line.size(); ++i) {
      text += line[i];
      if (i + 1 < line.size()) text += std::string(widths[i] - line[i].size() + 2, ' ');
    }
    *out += text + "\n";
  }
}

void RenderObject(const json::object& object, int indent, std::string* out) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  for (const auto& member : object) {
    const std::string name(member.key());
    const json::value& v = member.value();
    if (IsScalar(v)) {
      *out += pad + name + ": " + Scalar(v) + "\n";
    } else if (v.is_array() && std::all_of(v.as_array().begin(), v.as_array().end(), IsScalar)) {
      std::string joined;
      for (const json::value& item : v.as_array()) {
        joined += (joined.empty() ? "" : ", ") + Scalar(item);
      }
      *out += pad + name + ": " + joined + "\n";
    } else {
      *out += pad + name + ":\n";
      RenderValue(v, indent + 2, out);
    }
  }
}

void RenderValue(const json::value& v, int indent, std::string* out) {
  if (v.is_object()) {
    RenderObject(v.as_object(), indent, out);
  } else if (v.is_array() && IsTable(v.as_array())) {
    RenderTable(v.as_array(), indent, out);
  } else if (v.is_array()) {
    for (const json::value& item : v.as_array()) {
      if (IsScalar(item)) {
        *out += std::string(static_cast<size_t>(indent), ' ') + "- " + Scalar(item) + "\n";
      } else {
        RenderValue(item, indent + 2, out);
      }
    }
  } else {
    *out += std::string(static_cast<size_t>(indent), ' ') + Scalar(v) + "\n";
  }
}

// A leader id from a field's value, or nullopt for "none".
std::optional<std::string> LeaderId(const json::value& v) {
  if (v.is_object()) {
    const json::value* id = v.as_object().if_contains("id");
    return id == nullptr ? std::nullopt : LeaderId(*id);
  }
  if (v.is_int64() && v.as_int64() > 0) return std::to_string(v.as_int64());
  if (v.is_uint64() && v.as_uint64() > 0) return std::to_string(v.as_uint64());
  if (v.is_string() && !v.as_string().empty() && v.as_string() != "0") {
    return std::string(v.as_string());
  }
  return std::nullopt;
}

bool IsLeaderMember(const json::object& member) {
  for (std::string_view field : {"role", "state"}) {
    if (const json::value* v = member.if_contains(field); v && v->is_string()) {
      std::string role(v->as_string());
      std::transform(role.begin(), role.end(), role.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (role == "leader") return true;
    }
  }
  for (std::string_view field : {"is_leader", "leader"}) {
    if (const json::value* v = member.if_contains(field); v && v->is_bool() && v->as_bool()) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string RenderJson(const json::value& value) {
  std::string out;
  RenderValue(value, 0, &out);
  return out;
}

std::optional<std::string> FindLeader(const json::value& cluster) {
  const json::object* object = cluster.if_object();
  if (object == nullptr) return std::nullopt;
  for (std::string_view field : {"leader", "leader_id"}) {
    if (const json::value* v = object->if_contains(field)) {
      if (auto id = LeaderId(*v)) return id;
    }
  }
  for (std::string_view field : {"members", "nodes", "peers"}) {
    const json::value* list = object->if_contains(field);
    if (list == nullptr || !list->is_array()) continue;
    for (const json::value& member : list->as_array()) {
      if (!member.is_object() || !IsLeaderMember(member.as_object())) continue;
      const json::value* id = member.as_object().if_contains("id");
      if (id != nullptr) {
        if (auto found = LeaderId(*id)) return found;
      }
    }
  }
  return std::nullopt;
}

}  // namespace rkv::cli
