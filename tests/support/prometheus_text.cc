#include "support/prometheus_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <utility>

namespace rkv::test {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

bool ValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(IsAlpha(c) || c == ':' || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

// A label set as a set: two samples with the same pairs in another order are
// the same series.
metrics::Labels Sorted(metrics::Labels labels) {
  std::sort(labels.begin(), labels.end());
  return labels;
}

std::string FormatLabels(const metrics::Labels& labels) {
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ",";
    out += fmt::format("{}=\"{}\"", labels[i].first, labels[i].second);
  }
  return out + "}";
}

// A float as the format writes one: Go's ParseFloat syntax without hex, plus
// the spellings Prometheus uses for the special values.
bool ParseFloat(std::string_view s, double* out) {
  if (s == "+Inf" || s == "Inf") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-Inf") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "NaN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  // from_chars would take "inf", "nan" and the like; only digits, '.', and
  // an exponent are numbers here.
  if (s.empty() || !(IsDigit(s[0]) || s[0] == '.')) return false;
  for (char c : s) {
    if (!(IsDigit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) return false;
  }
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  *out = negative ? -v : v;
  return true;
}

bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<std::vector<PrometheusFamily>> Run() {
    size_t pos = 0;
    int line_no = 0;
    while (pos < text_.size()) {
      ++line_no;
      size_t end = text_.find('\n', pos);
      const bool terminated = end != std::string_view::npos;
      if (!terminated) end = text_.size();
      line_ = text_.substr(pos, end - pos);
      line_no_ = line_no;
      lines_.push_back(line_);
      pos = end + 1;
      if (!terminated) return Error("the last line does not end with a newline");
      Status s = ParseLine();
      if (!s.ok()) return s;
    }
    Status s = CloseCurrent();
    if (!s.ok()) return s;
    return std::move(families_);
  }

 private:
  struct FamilyState {
    bool has_help = false;
    bool has_type = false;
    bool closed = false;  // a later family's line came: no more lines of this one
  };

  Status Error(std::string_view what) const { return ErrorAt(line_no_, what); }
  Status ErrorAt(int line_no, std::string_view what) const {
    const std::string_view line = line_no >= 1 && static_cast<size_t>(line_no) <= lines_.size()
                                      ? lines_[static_cast<size_t>(line_no) - 1]
                                      : std::string_view();
    return Status::InvalidArgument(fmt::format("line {}: {}: `{}`", line_no, what, line));
  }

  Status ParseLine() {
    size_t i = 0;
    while (i < line_.size() && IsBlank(line_[i])) ++i;
    if (i == line_.size()) return Status::OK();  // empty lines are allowed
    if (line_[i] == '#') return ParseComment(i + 1);
    return ParseSample(i);
  }

  // Reads [a-zA-Z_:][a-zA-Z0-9_:]* at *i.
  std::string_view ReadName(size_t* i) const {
    const size_t start = *i;
    while (*i < line_.size() &&
           (IsAlpha(line_[*i]) || line_[*i] == ':' || (*i > start && IsDigit(line_[*i])))) {
      ++*i;
    }
    return line_.substr(start, *i - start);
  }

  void SkipBlanks(size_t* i) const {
    while (*i < line_.size() && IsBlank(line_[*i])) ++*i;
  }

  // Moves to `name`'s family for a HELP, TYPE or sample line: it must not
  // have been left for another family before.
  Status Enter(const std::string& name) {
    if (current_ == name) return Status::OK();
    if (state_[name].closed) {
      return Error(fmt::format("the lines of {} are not together (it appeared before line {})",
                               name, first_line_[name]));
    }
    RKV_RETURN_IF_ERROR(CloseCurrent());
    current_ = name;
    first_line_.emplace(name, line_no_);
    return Status::OK();
  }

  PrometheusFamily& FamilyNamed(const std::string& name) {
    auto it = index_.find(name);
    if (it == index_.end()) {
      it = index_.emplace(name, families_.size()).first;
      families_.push_back(PrometheusFamily{name, "", "", {}});
    }
    return families_[it->second];
  }

  Status ParseComment(size_t i) {
    SkipBlanks(&i);
    const size_t word_start = i;
    while (i < line_.size() && !IsBlank(line_[i])) ++i;
    const std::string_view word = line_.substr(word_start, i - word_start);
    if (word != "HELP" && word != "TYPE") return Status::OK();  // a plain comment
    SkipBlanks(&i);
    const std::string name(ReadName(&i));
    if (name.empty() || !ValidMetricName(name)) return Error(fmt::format("bad metric name in # {}", word));
    if (i < line_.size() && !IsBlank(line_[i])) {
      return Error(fmt::format("bad metric name in # {}", word));
    }
    RKV_RETURN_IF_ERROR(Enter(name));
    PrometheusFamily& family = FamilyNamed(name);
    FamilyState& state = state_[name];
    if (!family.samples.empty()) return Error(fmt::format("# {} of {} after its samples", word, name));

    if (word == "HELP") {
      if (state.has_help) return Error(fmt::format("a second # HELP for {}", name));
      state.has_help = true;
      // One blank separates the name from the text; the rest is the text.
      if (i < line_.size()) ++i;
      std::string help;
      for (; i < line_.size(); ++i) {
        const char c = line_[i];
        if (c != '\\') {
          help.push_back(c);
          continue;
        }
        if (i + 1 == line_.size()) return Error("help text ends in a lone backslash");
        const char e = line_[++i];
        if (e == '\\') {
          help.push_back('\\');
        } else if (e == 'n') {
          help.push_back('\n');
        } else {
          return Error(fmt::format("bad escape \\{} in help text (only \\\\ and \\n)", e));
        }
      }
      family.help = std::move(help);
      return Status::OK();
    }

    if (state.has_type) return Error(fmt::format("a second # TYPE for {}", name));
    SkipBlanks(&i);
    const size_t type_start = i;
    while (i < line_.size() && !IsBlank(line_[i])) ++i;
    const std::string type(line_.substr(type_start, i - type_start));
    SkipBlanks(&i);
    if (i != line_.size()) return Error("text after the type in # TYPE");
    if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
        type != "untyped") {
      return Error(fmt::format("unknown type \"{}\"", type));
    }
    if (type == "counter" && !name.ends_with("_total")) {
      return Error(fmt::format("counter {} does not end in _total", name));
    }
    state.has_type = true;
    family.type = type;
    return Status::OK();
  }

  // Parses `{a="x",b="y"}` at *i (just past the '{').
  Status ParseLabels(size_t* i, metrics::Labels* labels) const {
    for (;;) {
      SkipBlanks(i);
      if (*i >= line_.size()) return Error("labels not closed by }");
      if (line_[*i] == '}') {
        ++*i;
        return Status::OK();
      }
      const size_t name_start = *i;
      while (*i < line_.size() && (IsAlpha(line_[*i]) || (*i > name_start && IsDigit(line_[*i])))) ++*i;
      const std::string name(line_.substr(name_start, *i - name_start));
      if (name.empty()) return Error("bad label name");
      if (name.starts_with("__")) return Error(fmt::format("reserved label name {}", name));
      SkipBlanks(i);
      if (*i >= line_.size() || line_[*i] != '=') return Error(fmt::format("no = after label {}", name));
      ++*i;
      SkipBlanks(i);
      if (*i >= line_.size() || line_[*i] != '"') {
        return Error(fmt::format("the value of label {} is not quoted", name));
      }
      ++*i;
      std::string value;
      for (;;) {
        if (*i >= line_.size()) return Error(fmt::format("the value of label {} is not closed", name));
        const char c = line_[(*i)++];
        if (c == '"') break;
        if (c != '\\') {
          value.push_back(c);
          continue;
        }
        if (*i >= line_.size()) return Error(fmt::format("the value of label {} is not closed", name));
        const char e = line_[(*i)++];
        if (e == '\\') {
          value.push_back('\\');
        } else if (e == '"') {
          value.push_back('"');
        } else if (e == 'n') {
          value.push_back('\n');
        } else {
          return Error(fmt::format("bad escape \\{} in the value of label {}", e, name));
        }
      }
      for (const auto& [seen, v] : *labels) {
        if (seen == name) return Error(fmt::format("label {} twice", name));
      }
      labels->emplace_back(name, std::move(value));
      SkipBlanks(i);
      if (*i < line_.size() && line_[*i] == ',') {
        ++*i;
        continue;
      }
      if (*i < line_.size() && line_[*i] == '}') {
        ++*i;
        return Status::OK();
      }
      return Error("expected , or } after a label");
    }
  }

  // Which declared family the sample `name` belongs to.
  Result<std::string> FamilyOf(const std::string& name) const {
    auto type_of = [this](const std::string& family) -> const std::string* {
      auto it = index_.find(family);
      if (it == index_.end() || families_[it->second].type.empty()) return nullptr;
      return &families_[it->second].type;
    };
    if (const std::string* type = type_of(name)) {
      if (*type == "histogram") {
        return Error(fmt::format("histogram {} has no sample named {} (only _bucket, _sum, _count)",
                                 name, name));
      }
      return name;
    }
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (!name.ends_with(suffix)) continue;
      const std::string base = name.substr(0, name.size() - suffix.size());
      const std::string* type = type_of(base);
      if (type == nullptr) continue;
      if (*type == "histogram" || (*type == "summary" && suffix != "_bucket")) return base;
      return Error(fmt::format("{} is a {}, which has no {} samples", base, *type, suffix));
    }
    return Error(fmt::format("sample {} belongs to no metric declared by a # TYPE line before it", name));
  }

  Status ParseSample(size_t i) {
    PrometheusSample sample;
    sample.line = line_no_;
    sample.name = std::string(ReadName(&i));
    if (sample.name.empty()) return Error("bad metric name");
    // Blanks may stand between the name and its labels, as Prometheus'
    // own parser allows; a value must be set off by a blank or the labels.
    size_t j = i;
    SkipBlanks(&j);
    if (j < line_.size() && line_[j] == '{') {
      i = j + 1;
      RKV_RETURN_IF_ERROR(ParseLabels(&i, &sample.labels));
    } else if (i < line_.size() && !IsBlank(line_[i])) {
      return Error("bad metric name");
    }
    SkipBlanks(&i);
    if (i >= line_.size()) return Error("no value");
    size_t start = i;
    while (i < line_.size() && !IsBlank(line_[i])) ++i;
    const std::string_view value = line_.substr(start, i - start);
    if (!ParseFloat(value, &sample.value)) return Error(fmt::format("bad value \"{}\"", value));
    SkipBlanks(&i);
    if (i < line_.size()) {
      start = i;
      while (i < line_.size() && !IsBlank(line_[i])) ++i;
      const std::string_view ts = line_.substr(start, i - start);
      int64_t ms = 0;
      if (!ParseInt64(ts, &ms)) return Error(fmt::format("bad timestamp \"{}\"", ts));
      sample.timestamp_ms = ms;
      SkipBlanks(&i);
      if (i < line_.size()) return Error("text after the timestamp");
    }

    RKV_ASSIGN_OR_RETURN(const std::string family_name, FamilyOf(sample.name));
    RKV_RETURN_IF_ERROR(Enter(family_name));
    PrometheusFamily& family = FamilyNamed(family_name);

    const auto le = std::find_if(sample.labels.begin(), sample.labels.end(),
                                 [](const auto& l) { return l.first == "le"; });
    const auto quantile = std::find_if(sample.labels.begin(), sample.labels.end(),
                                       [](const auto& l) { return l.first == "quantile"; });
    const bool is_count = family.type != "counter" && sample.name.ends_with("_count");
    const bool is_bucket = sample.name.ends_with("_bucket");
    if (family.type == "counter" && !(sample.value >= 0)) {
      return Error(fmt::format("counter {} is negative or NaN", sample.name));
    }
    if (family.type == "histogram") {
      if (is_bucket) {
        double bound = 0;
        if (le == sample.labels.end()) return Error(fmt::format("bucket of {} without le", family.name));
        if (!ParseFloat(le->second, &bound) || std::isnan(bound)) {
          return Error(fmt::format("bad le=\"{}\"", le->second));
        }
      } else if (le != sample.labels.end()) {
        return Error(fmt::format("{} has an le label", sample.name));
      }
      if ((is_bucket || is_count) && !(sample.value >= 0)) {
        return Error(fmt::format("{} is negative or NaN", sample.name));
      }
    }
    if (family.type == "summary" && sample.name == family.name && quantile == sample.labels.end()) {
      return Error(fmt::format("quantile of summary {} without a quantile label", family.name));
    }

    auto [it, inserted] = series_.emplace(std::make_pair(sample.name, Sorted(sample.labels)), line_no_);
    if (!inserted) {
      return Error(fmt::format("series {}{} appears twice (first at line {})", sample.name,
                               FormatLabels(sample.labels), it->second));
    }
    family.samples.push_back(std::move(sample));
    return Status::OK();
  }

  // The family being left: a histogram's series are complete now.
  Status CloseCurrent() {
    if (current_.empty()) return Status::OK();
    state_[current_].closed = true;
    const PrometheusFamily& family = families_[index_.at(current_)];
    current_.clear();
    if (family.type != "histogram") return Status::OK();

    struct Bucket {
      double le;
      double count;
      int line;
    };
    struct Series {
      std::vector<Bucket> buckets;
      const PrometheusSample* sum = nullptr;
      const PrometheusSample* count = nullptr;
      int last_line = 0;
    };
    std::map<metrics::Labels, Series> series;
    for (const PrometheusSample& s : family.samples) {
      metrics::Labels key;
      double bound = 0;
      for (const auto& label : s.labels) {
        if (label.first == "le") {
          (void)ParseFloat(label.second, &bound);  // checked when the sample was read
        } else {
          key.push_back(label);
        }
      }
      Series& out = series[Sorted(std::move(key))];
      out.last_line = std::max(out.last_line, s.line);
      if (s.name.ends_with("_bucket")) {
        out.buckets.push_back({bound, s.value, s.line});
      } else if (s.name.ends_with("_sum")) {
        out.sum = &s;
      } else {
        out.count = &s;
      }
    }
    for (auto& [labels, s] : series) {
      const std::string what = fmt::format("histogram {}{}", family.name, FormatLabels(labels));
      std::stable_sort(s.buckets.begin(), s.buckets.end(),
                       [](const Bucket& a, const Bucket& b) { return a.le < b.le; });
      for (size_t i = 1; i < s.buckets.size(); ++i) {
        if (s.buckets[i].le == s.buckets[i - 1].le) {
          return ErrorAt(std::max(s.buckets[i].line, s.buckets[i - 1].line),
                         fmt::format("{} has two buckets with le {}", what, s.buckets[i].le));
        }
        if (s.buckets[i].count < s.buckets[i - 1].count) {
          return ErrorAt(s.buckets[i].line,
                         fmt::format("{}: bucket le={} holds {}, fewer than {} in the bucket below "
                                     "it (buckets are cumulative)",
                                     what, s.buckets[i].le, s.buckets[i].count, s.buckets[i - 1].count));
        }
      }
      if (s.buckets.empty() || !std::isinf(s.buckets.back().le)) {
        return ErrorAt(s.last_line, fmt::format("{} has no le=\"+Inf\" bucket", what));
      }
      if (s.sum == nullptr) return ErrorAt(s.last_line, fmt::format("{} has no _sum", what));
      if (s.count == nullptr) return ErrorAt(s.last_line, fmt::format("{} has no _count", what));
      if (s.count->value != s.buckets.back().count) {
        return ErrorAt(s.count->line, fmt::format("{}: _count {} differs from the +Inf bucket's {}",
                                                  what, s.count->value, s.buckets.back().count));
      }
    }
    return Status::OK();
  }

  const std::string_view text_;
  std::string_view line_;
  int line_no_ = 0;
  std::vector<std::string_view> lines_;

  std::vector<PrometheusFamily> families_;
  std::map<std::string, size_t> index_;          // family name -> families_ slot
  std::map<std::string, FamilyState> state_;
  std::map<std::string, int> first_line_;        // family name -> its first line
  std::string current_;                          // the family whose lines come now
  std::map<std::pair<std::string, metrics::Labels>, int> series_;  // -> line
};

}  // namespace

Result<std::vector<PrometheusFamily>> ParsePrometheusText(std::string_view text) {
  return Parser(text).Run();
}

const PrometheusFamily* FindFamily(const std::vector<PrometheusFamily>& families,
                                   std::string_view name) {
  for (const PrometheusFamily& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::optional<double> SampleValue(const std::vector<PrometheusFamily>& families,
                                  std::string_view sample_name, const metrics::Labels& labels) {
  const metrics::Labels want = Sorted(labels);
  for (const PrometheusFamily& f : families) {
    for (const PrometheusSample& s : f.samples) {
      if (s.name == sample_name && Sorted(s.labels) == want) return s.value;
    }
  }
  return std::nullopt;
}

}  // namespace rkv::test
