// What one message (a stage edge's tensors for one micro-batch, one way)
// costs in a running pipeline: the one struct for it, with its units in the
// names. A profile calibrates it (profile::Profile::message_cost), pprun
// --profile writes it (schedule::calibrate_message_cost), ppc's step model
// and pprun --simulate read it, and schedule::set_message_cost turns it into
// the simulator's settings. Header-only, standard library only.
#pragma once

namespace ppc {

struct MessageCost {
  double latency_ms = 0;             ///< in flight, per message
  double bytes_per_second = 0;       ///< in flight, its bytes at this rate (0: bytes take no time)
  double rank_ms = 0;                ///< rank time at each end, per message
  double rank_bytes_per_second = 0;  ///< rank time at each end for its bytes, at this rate (0: none)

  /// Whether a message costs anything (latency, bytes or rank time).
  bool priced() const { return latency_ms > 0 || bytes_per_second > 0 || rank_ms > 0 || rank_bytes_per_second > 0; }
};

}  // namespace ppc
