#include "runtime/schedule/csv.h"

#include "schemas/error.h"

namespace ppc::runtime::schedule {

std::string write_csv(const Schedule& schedule) {
  std::string out;
  for (const RankSchedule& rank : schedule) {
    for (size_t i = 0; i < rank.size(); ++i) {
      if (i) out += ',';
      out += to_string(rank[i]);
    }
    out += '\n';
  }
  return out;
}

Schedule read_csv(const std::string& text, const std::string& name) {
  Schedule schedule;
  size_t pos = 0;
  int row = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    size_t next = eol == std::string::npos ? text.size() : eol + 1;
    std::string line = text.substr(pos, (eol == std::string::npos ? text.size() : eol) - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ++row;
    RankSchedule rank;
    size_t cell_start = 0;
    while (cell_start <= line.size()) {
      size_t comma = line.find(',', cell_start);
      size_t cell_end = comma == std::string::npos ? line.size() : comma;
      size_t b = cell_start, e = cell_end;
      while (b < e && (line[b] == ' ' || line[b] == '\t')) ++b;
      while (e > b && (line[e - 1] == ' ' || line[e - 1] == '\t')) --e;
      if (e - b >= 2 && line[b] == '"' && line[e - 1] == '"') ++b, --e;
      if (b < e) {
        try {
          rank.push_back(parse_action(line.substr(b, e - b)));
        } catch (const Error& err) {
          throw Error(name + ":" + std::to_string(row) + ":" + std::to_string(b + 1) + ": " + err.what());
        }
      }
      if (comma == std::string::npos) break;
      cell_start = comma + 1;
    }
    schedule.push_back(std::move(rank));
    pos = next;
  }
  return schedule;
}

}  // namespace ppc::runtime::schedule
