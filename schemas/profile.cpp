#include "schemas/profile.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "schemas/error.h"
#include "schemas/json_text.h"

namespace ppc::profile {

namespace {

double time_at(const nlohmann::json& j, const char* key, double fallback, const std::string& where,
               const char* what = "a time") {
  if (!j.contains(key)) return fallback;
  double v = j.at(key).get<double>();
  if (!(v >= 0) || !std::isfinite(v)) throw Error(where + ": '" + key + "' must be " + what + " of 0 or more");
  return v;
}

// An integer that fits an int: nlohmann's get<int>() of a float outside that
// range is undefined behaviour (found by fuzzing).
int int_at(const nlohmann::json& j, const char* key, int fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  const auto& v = j.at(key);
  if (!v.is_number_integer() || v.get<long long>() < INT_MIN || v.get<long long>() > INT_MAX ||
      (v.is_number_unsigned() && v.get<unsigned long long>() > static_cast<unsigned long long>(INT_MAX)))
    throw Error(where + ": '" + key + "' must be an integer (between " + std::to_string(INT_MIN) + " and " +
                std::to_string(INT_MAX) + ")");
  return v.get<int>();
}

}  // namespace

std::string Host::summary() const {
  return std::to_string(local_ranks) + " ranks x " + std::to_string(threads) + (threads == 1 ? " thread" : " threads") +
         " on " + std::to_string(cores) + " cores";
}

bool Profile::has_work_times() const {
  bool all = !stages.empty();
  for (const StageTimes& t : stages) all = all && t.cpu_ms >= 0;
  return host.oversubscribed() && all;
}

double Profile::shared_cores() const {
  return host.one_host() && (has_work_times() || !host.oversubscribed()) ? host.rank_cores() : 0.0;
}

MessageCost Profile::message_cost() const {
  MessageCost m;
  const bool calibrated = message_ms >= 0;
  m.latency_ms = message_ms > 0 ? message_ms : 0.0;
  m.bytes_per_second = calibrated && message_bytes_per_second > 0 ? message_bytes_per_second : 0.0;
  m.rank_ms = calibrated ? message_cpu_ms : 0.0;
  m.rank_bytes_per_second = calibrated ? message_cpu_bytes_per_second : 0.0;
  return m;
}

Profile Profile::as_work() const {
  Profile p = *this;
  if (!has_work_times()) return p;
  for (size_t s = 0; s < p.stages.size(); ++s) {
    StageTimes& t = p.stages[s];
    const double total = t.total_ms();
    const double k = total > 0 ? std::min(1.0, t.cpu_ms / total) : 1.0;
    t.f *= k, t.b *= k, t.i *= k, t.w *= k;
    for (auto& n : t.nodes) n.f *= k, n.b *= k;
    if (static_cast<int>(s) == loss_stage) p.loss_ms *= k;
  }
  return p;
}

Profile read_profile(const std::string& path) {
  const std::string text = read_text_file(path, path, "the costs file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) { throw Error(path + ": not JSON: " + e.what()); }
  Profile p;
  p.file = path;
  try {
    p.schedule = j.value("schedule", std::string());
    p.chunks = int_at(j, "chunks", 0, path);
    p.steps_measured = int_at(j, "steps_measured", 0, path);
    p.source_sha256 = j.value("source_sha256", std::string());
    p.micro_batch_size = j.value("micro_batch_size", 1.0);
    if (!(p.micro_batch_size > 0) || !std::isfinite(p.micro_batch_size))
      throw Error(path + ": 'micro_batch_size' must be positive");
    p.loss_stage = int_at(j, "loss_stage", -1, path);
    p.loss_ms = time_at(j, "loss_ms", 0.0, path);
    if (j.contains("link")) {
      const auto& l = j.at("link");
      p.has_link = true;
      p.latency_ms = time_at(l, "latency_ms", 0.0, path + ": link");
      p.bytes_per_second = time_at(l, "bytes_per_second", 0.0, path + ": link");
      p.message_ms = time_at(l, "message_ms", -1.0, path + ": link");
      p.message_bytes_per_second = time_at(l, "message_bytes_per_second", 0.0, path + ": link", "a rate");
      p.message_cpu_ms = time_at(l, "message_cpu_ms", 0.0, path + ": link");
      p.message_cpu_bytes_per_second = time_at(l, "message_cpu_bytes_per_second", 0.0, path + ": link", "a rate");
    }
    if (j.contains("step_ms")) p.step_ms = time_at(j, "step_ms", -1.0, path);
    if (j.contains("simulated_step_ms")) p.simulated_step_ms = time_at(j, "simulated_step_ms", -1.0, path);
    if (j.contains("overhead_ms")) p.overhead_ms = time_at(j, "overhead_ms", -1.0, path);
    if (j.contains("host")) {
      const auto& h = j.at("host");
      auto count = [&](const char* key) {
        if (!h.contains(key)) throw Error(path + ": host: no '" + key + "'");
        const int v = int_at(h, key, 0, path + ": host");
        if (v < 1) throw Error(path + ": host: '" + key + "' must be 1 or more");
        return v;
      };
      p.host.cores = count("cores");
      p.host.threads = count("threads");
      if (h.contains("local_ranks")) p.host.local_ranks = count("local_ranks");
      if (h.contains("ranks")) p.host.ranks = count("ranks");
    }
    const auto& st = j.at("stages");
    if (!st.is_array() || st.empty()) throw Error(path + ": 'stages' must be a non-empty list");
    for (size_t s = 0; s < st.size(); ++s) {
      const auto& c = st[s];
      const std::string where = path + ": stage " + std::to_string(s);
      StageTimes t;
      t.f = time_at(c, "f", -1.0, where);
      if (t.f < 0) throw Error(where + ": no 'f' (forward ms)");
      t.b = time_at(c, "b", 0.0, where);
      t.i = time_at(c, "i", 0.0, where);
      t.w = time_at(c, "w", 0.0, where);
      t.first_node = c.value("first_node", std::string());
      t.last_node = c.value("last_node", std::string());
      t.cpu_ms = time_at(c, "cpu_ms", -1.0, where);
      if (c.contains("nodes"))
        for (const auto& nd : c.at("nodes")) {
          std::string name = nd.at("node").get<std::string>();
          const std::string at = where + ": node '" + name + "'";
          t.nodes.push_back({name, time_at(nd, "f", 0.0, at), time_at(nd, "b", 0.0, at)});
        }
      p.stages.push_back(std::move(t));
    }
    if (j.contains("edges"))
      for (const auto& e : j.at("edges")) {
        EdgeBytes b;
        if (!e.contains("from") || !e.contains("to")) throw Error(path + ": an edge without 'from' and 'to'");
        b.from = int_at(e, "from", 0, path + ": edge");
        b.to = int_at(e, "to", 0, path + ": edge");
        const std::string where = path + ": edge " + std::to_string(b.from) + " -> " + std::to_string(b.to);
        if (b.from < 0 || b.to <= b.from || b.to >= static_cast<int>(p.stages.size()))
          throw Error(where + ": not an edge between two of the " + std::to_string(p.stages.size()) +
                      " stages (from an earlier stage to a later one)");
        b.bytes = time_at(e, "bytes", 0.0, where, "a size");
        b.grad_bytes = time_at(e, "grad_bytes", 0.0, where, "a size");
        p.edges.push_back(b);
      }
  } catch (const nlohmann::json::exception& e) { throw Error(path + ": malformed costs file: " + e.what()); }
  return p;
}

std::string profile_json(const Profile& p) {
  nlohmann::ordered_json j;
  j["version"] = 1;
  j["unit"] = "ms";
  j["schedule"] = p.schedule;
  j["chunks"] = p.chunks;
  j["steps_measured"] = p.steps_measured;
  j["source_sha256"] = p.source_sha256;
  j["micro_batch_size"] = p.micro_batch_size;
  if (p.loss_stage >= 0) {
    j["loss_stage"] = p.loss_stage;
    j["loss_ms"] = p.loss_ms;
  }
  if (p.has_link) {
    j["link"] = {{"latency_ms", p.latency_ms}, {"bytes_per_second", p.bytes_per_second}};
    if (p.message_ms >= 0) j["link"]["message_ms"] = p.message_ms;
    if (p.message_bytes_per_second > 0) j["link"]["message_bytes_per_second"] = p.message_bytes_per_second;
    if (p.message_ms >= 0) j["link"]["message_cpu_ms"] = p.message_cpu_ms;
    if (p.message_cpu_bytes_per_second > 0) j["link"]["message_cpu_bytes_per_second"] = p.message_cpu_bytes_per_second;
  }
  if (p.step_ms >= 0) j["step_ms"] = p.step_ms;
  if (p.simulated_step_ms >= 0) j["simulated_step_ms"] = p.simulated_step_ms;
  if (p.overhead_ms >= 0) j["overhead_ms"] = p.overhead_ms;
  if (p.host.cores > 0) {
    j["host"] = {{"cores", p.host.cores}, {"threads", p.host.threads}};
    if (p.host.local_ranks > 0) j["host"]["local_ranks"] = p.host.local_ranks;
    if (p.host.ranks > 0) j["host"]["ranks"] = p.host.ranks;
  }
  j["stages"] = nlohmann::ordered_json::array();
  for (size_t s = 0; s < p.stages.size(); ++s) {
    const StageTimes& t = p.stages[s];
    nlohmann::ordered_json o = {{"stage", s},
                                {"f", t.f},
                                {"b", t.b},
                                {"i", t.i},
                                {"w", t.w},
                                {"first_node", t.first_node},
                                {"last_node", t.last_node}};
    if (t.cpu_ms >= 0) o["cpu_ms"] = t.cpu_ms;
    if (!t.nodes.empty()) {
      auto& nodes = o["nodes"] = nlohmann::ordered_json::array();
      for (const auto& n : t.nodes) nodes.push_back({{"node", n.node}, {"f", n.f}, {"b", n.b}});
    }
    j["stages"].push_back(std::move(o));
  }
  if (!p.edges.empty()) {
    auto& edges = j["edges"] = nlohmann::ordered_json::array();
    for (const auto& e : p.edges)
      edges.push_back({{"from", e.from}, {"to", e.to}, {"bytes", e.bytes}, {"grad_bytes", e.grad_bytes}});
  }
  return j.dump(2) + "\n";
}

}  // namespace ppc::profile
