// Schedules as CSV, the format torch.distributed.pipelining's `_dump_csv` and
// `_load_csv` use: one row per rank (row r = rank r), one action per cell in
// execution order, no header. Empty cells (torch writes them for idle steps)
// are skipped when reading.
#pragma once

#include <string>

#include "runtime/schedule/action.h"

namespace ppc::runtime::schedule {

/// Writes one line per rank, cells joined by ',' and lines ended by '\n'
/// (Python's csv.writer ends lines with "\r\n"; both read back the same).
/// A rank with no actions is an empty line.
std::string write_csv(const Schedule& schedule);

/// Reads what write_csv (or torch's `_dump_csv`) writes. Lines end with '\n'
/// or "\r\n"; a final line break does not start another rank. Cells are
/// trimmed of spaces and may be wrapped in double quotes; empty cells are
/// skipped. Throws ppc::Error "NAME:ROW:COL: invalid action ..." with the
/// 1-based row (= rank + 1) and the 1-based character column of the cell.
Schedule read_csv(const std::string& text, const std::string& name = "<schedule>");

}  // namespace ppc::runtime::schedule
