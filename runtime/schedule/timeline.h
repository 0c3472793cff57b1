// Pictures of a run: what each rank did when, measured by pprun or predicted
// by the simulator, as a Chrome trace (chrome://tracing, Perfetto) and as an
// SVG timeline in the style of PiPPy's README (ranks as rows, micro-batches
// coloured, F/B/I/W labelled). Standard library only.
#pragma once

#include <string>
#include <vector>

#include "runtime/schedule/simulator.h"

namespace ppc::runtime::schedule {

/// One slice of a rank's timeline. For actions, `name` is the action's text
/// (`0F3`); other work (optimizer step, tied-gradient all-reduce, waiting for
/// a receive) has its own name and stage = microbatch = -1.
struct TraceEvent {
  std::string name;
  std::string category;  ///< "F", "B", "I", "W", "SEND_F", ..., "optimizer", "allreduce", "wait"
  int rank = 0;
  int stage = -1;
  int microbatch = -1;
  int step = 0;
  double start_us = 0;  ///< microseconds since the run's common start
  double end_us = 0;
  /// Category "memory": a sample (at start_us) of the rank's heap in use, MiB.
  double value = 0;
};

/// Chrome trace JSON (the "traceEvents" array form): one process "pprun",
/// one thread (track) per rank named "rank N" (and "rank N gradient
/// all-reduce" for its events of category "dp"), a complete event per slice
/// with its stage, micro-batch and step as args; events of category
/// "memory" are counter samples ("heap MiB" of rank N).
std::string chrome_trace_json(const std::vector<TraceEvent>& events, int num_ranks);

/// An SVG picture of compute slices (F, B, I, W; other slices are drawn as
/// thin grey bars): one row per rank, time to the right, each micro-batch its
/// own colour, each slice labelled with its kind and micro-batch ("F3"), an
/// axis in `unit` ("ms" or "steps"), and `title` on top.
std::string timeline_svg(const std::vector<TraceEvent>& events, int num_ranks, const std::string& title,
                         const std::string& unit);

/// The simulator's timeline as events (one time unit = 1000 "us", so the
/// SVG axis reads in the cost unit).
std::vector<TraceEvent> events_of(const SimResult& result);

}  // namespace ppc::runtime::schedule
