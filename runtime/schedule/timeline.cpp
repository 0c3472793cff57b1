#include "runtime/schedule/timeline.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

namespace ppc::runtime::schedule {

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

bool is_compute(const std::string& category) {
  return category == "F" || category == "B" || category == "I" || category == "W";
}

// A distinct, readable fill per micro-batch; the backward passes of a
// micro-batch get a darker shade of its forward colour.
std::string fill(int microbatch, int num_microbatches, const std::string& category) {
  double hue = std::fmod(microbatch * 360.0 / std::max(1, num_microbatches) * 0.97, 360.0);
  int light = category == "F" ? 72 : category == "W" ? 42 : 55;
  return "hsl(" + num(hue) + ",70%," + std::to_string(light) + "%)";
}

}  // namespace

std::string chrome_trace_json(const std::vector<TraceEvent>& events, int num_ranks) {
  std::ostringstream os;
  os << "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
  os << "  {\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 0, \"args\": {\"name\": \"pprun\"}}";
  for (int r = 0; r < num_ranks; ++r)
    os << ",\n  {\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": " << r
       << ", \"args\": {\"name\": \"rank " << r << "\"}}";
  // Collectives in flight beside a rank's actions (category "dp") get a track of their own.
  std::set<int> beside;
  for (const auto& e : events)
    if (e.category == "dp") beside.insert(e.rank);
  for (int r : beside)
    os << ",\n  {\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": " << num_ranks + r
       << ", \"args\": {\"name\": \"rank " << r << " gradient all-reduce\"}}";
  for (const auto& e : events) {
    if (e.category == "memory") {  // a counter: one series per rank
      os << ",\n  {\"name\": \"heap MiB rank " << e.rank << "\", \"cat\": \"memory\", \"ph\": \"C\", \"pid\": 0, "
         << "\"ts\": " << num(e.start_us) << ", \"args\": {\"MiB\": " << num(e.value) << ", \"step\": " << e.step
         << "}}";
      continue;
    }
    os << ",\n  {\"name\": " << json_string(e.name) << ", \"cat\": " << json_string(e.category)
       << ", \"ph\": \"X\", \"pid\": 0, \"tid\": " << (e.category == "dp" ? num_ranks + e.rank : e.rank)
       << ", \"ts\": " << num(e.start_us) << ", \"dur\": " << num(std::max(0.0, e.end_us - e.start_us))
       << ", \"args\": {\"step\": " << e.step;
    if (e.stage >= 0) os << ", \"stage\": " << e.stage << ", \"microbatch\": " << e.microbatch;
    os << "}}";
  }
  os << "\n]}\n";
  return os.str();
}

std::string timeline_svg(const std::vector<TraceEvent>& events, int num_ranks, const std::string& title,
                         const std::string& unit) {
  double t0 = 0, t1 = 1;
  bool first = true;
  int num_mb = 1;
  std::set<int> stages;
  for (const auto& e : events) {
    if (first || e.start_us < t0) t0 = e.start_us;
    if (first || e.end_us > t1) t1 = e.end_us;
    first = false;
    num_mb = std::max(num_mb, e.microbatch + 1);
    if (e.stage >= 0) stages.insert(e.stage);
  }
  const double left = 70, top = 40, row = 34, bar = 26, width = 1000;
  const double span = std::max(t1 - t0, 1e-9);
  const double scale = width / span;
  const double height = top + row * num_ranks + 40;
  // Time axis: about 10 ticks at a round step.
  const double div = 1000.0;  // events are in microseconds (the simulator's: milli-units)
  double step = std::pow(10.0, std::floor(std::log10(span / div / 10)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (span / div / (step * m) <= 12) {
      step *= m;
      break;
    }
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(left + width + 20) << "\" height=\"" << num(height)
     << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"" << num(left) << "\" y=\"20\" font-size=\"14\">" << xml_escape(title) << "</text>\n";
  for (int r = 0; r < num_ranks; ++r) {
    double y = top + r * row;
    os << "<text x=\"8\" y=\"" << num(y + bar / 2 + 4) << "\">rank " << r << "</text>\n";
    os << "<rect x=\"" << num(left) << "\" y=\"" << num(y) << "\" width=\"" << num(width) << "\" height=\"" << num(bar)
       << "\" fill=\"#f4f4f4\"/>\n";
  }
  for (const auto& e : events) {
    if (e.category == "memory") continue;
    double x = left + (e.start_us - t0) * scale, w = std::max(0.5, (e.end_us - e.start_us) * scale);
    double y = top + e.rank * row;
    if (!is_compute(e.category)) {
      os << "<rect x=\"" << num(x) << "\" y=\"" << num(y + bar - 4) << "\" width=\"" << num(w)
         << "\" height=\"4\" fill=\"#999\"><title>" << xml_escape(e.name) << "</title></rect>\n";
      continue;
    }
    os << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(w) << "\" height=\"" << num(bar)
       << "\" fill=\"" << fill(e.microbatch, num_mb, e.category) << "\" stroke=\"white\" stroke-width=\"0.5\"><title>"
       << xml_escape(e.name) << " (stage " << e.stage << ", micro-batch " << e.microbatch << ")</title></rect>\n";
    std::string label = e.category + std::to_string(e.microbatch);
    if (stages.size() > static_cast<size_t>(num_ranks)) label = std::to_string(e.stage) + label;
    if (w >= 7.0 * label.size())
      os << "<text x=\"" << num(x + w / 2) << "\" y=\"" << num(y + bar / 2 + 4) << "\" text-anchor=\"middle\">" << label
         << "</text>\n";
  }
  double axis_y = top + row * num_ranks + 6;
  os << "<line x1=\"" << num(left) << "\" y1=\"" << num(axis_y) << "\" x2=\"" << num(left + width) << "\" y2=\""
     << num(axis_y) << "\" stroke=\"black\"/>\n";
  for (double v = 0; v * div <= span + 1e-9; v += step) {
    double x = left + v * div * scale;
    os << "<line x1=\"" << num(x) << "\" y1=\"" << num(axis_y) << "\" x2=\"" << num(x) << "\" y2=\"" << num(axis_y + 4)
       << "\" stroke=\"black\"/><text x=\"" << num(x) << "\" y=\"" << num(axis_y + 16) << "\" text-anchor=\"middle\">"
       << num(v) << "</text>\n";
  }
  os << "<text x=\"" << num(left + width) << "\" y=\"" << num(axis_y + 30) << "\" text-anchor=\"end\">" << unit
     << "</text>\n";
  os << "</svg>\n";
  return os.str();
}

std::vector<TraceEvent> events_of(const SimResult& result) {
  std::vector<TraceEvent> out;
  for (size_t r = 0; r < result.timeline.size(); ++r) {
    for (const auto& t : result.timeline[r]) {
      if (!t.action.is_compute()) continue;
      TraceEvent e;
      e.name = to_string(t.action);
      e.category = kind_name(t.action.kind);
      e.rank = static_cast<int>(r);
      e.stage = t.action.stage;
      e.microbatch = t.action.microbatch;
      e.start_us = t.start * 1000;
      e.end_us = t.end * 1000;
      out.push_back(e);
    }
  }
  return out;
}

}  // namespace ppc::runtime::schedule
