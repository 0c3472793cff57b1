// The engine's state, shared by the files that implement it: engine.cpp
// (the interpreter: actions, micro-batches, loss, tied gradients),
// checkpoint.cpp (--save / --resume) and plan.cpp. Measurement (per-step
// statistics, traces, timelines, profiles) is its own component, measure.h,
// which observes the engine. Not part of the runtime's interface.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "runtime/engine/engine.h"
#include "runtime/engine/measure.h"
#include "runtime/engine/optimizer.h"
#include "runtime/engine/replicas.h"
#include "runtime/engine/split_backward.h"
#include "runtime/engine/wire.h"
#include "runtime/schedule/stage_graph.h"
#include "runtime/schedule/timeline.h"
#include "runtime/stages/stage_module.h"

namespace ppc::runtime::engine_detail {

using schedule::Action;

/// The manifest's stage graph (an edge per stage input read from another stage).
schedule::StageGraph stage_graph_of(const manifest::Manifest& m);
/// Gloo has no bool type: bools travel as bytes.
at::Tensor wire_view(const at::Tensor& t);
/// into += g (into may be undefined).
void accumulate(at::Tensor& into, const at::Tensor& g);

/// The tensors stage `producer` sends to stage `consumer`, in the consumer's
/// input order: out_idx[k] of the producer's outputs is in_idx[k] of the consumer's inputs.
struct Link {
  int producer = 0, consumer = 0;
  std::vector<int> out_idx, in_idx;
  std::vector<bool> differentiable;
  bool remote = false;
  /// Every tensor's dtype and shape are fixed by the manifest up to the
  /// symbolic dims of model inputs, which every rank reads off its batch
  /// (-1 - j in `shapes`: the size of Engine::dim_refs_[j]): its activations
  /// travel without a header, and the receiver posts their receives as early
  /// as the schedule lets it, instead of waiting for a header to learn the
  /// shapes.
  bool headerless = false;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<at::ScalarType> dtypes;
  /// Otherwise (remote): the shapes both ends guess for a micro-batch, so
  /// that the receive is posted ahead as for a headerless link; a wrong
  /// guess is redirected (wire::redirect).
  wire::ShapeGuesses guesses;
};

/// A receive in flight: activations (header first) or gradients.
struct PendingRecv {
  int link = 0;
  at::Tensor header;
  std::unique_ptr<Work> header_work;
  std::vector<int> slots;           ///< which entries of the link the buffers hold (gradients)
  std::vector<at::Tensor> buffers;  ///< the tensors, once finished
  std::vector<std::unique_ptr<Work>> works;
  wire::Incoming incoming;  ///< the messages in flight
  /// The stage edge (producer, consumer), direction (1: gradients) and micro-batch.
  int producer = -1, consumer = -1, direction = 0, microbatch = -1;
  /// Activations of a headered link posted with its guessed shapes, and
  /// whether the sender redirected them (the buffers then hold nothing).
  bool guessed = false, redirected = false;
};

/// A data message sent and not yet known to have arrived. A Gloo send
/// completes only once the receiver has posted the matching receive, and its
/// work cannot be polled; so the engine tells from the schedule when a send
/// is done: once a message arrives from the peer that the peer sent after the
/// action that received this one, this one has arrived, and its wait()
/// returns at once (nothing held until the step's end).
struct PendingSend {
  std::unique_ptr<Work> work;
  at::Tensor keep;
  int peer = 0;
  int received_at = -1;  ///< the peer's action (index in its lowered schedule) that receives it; -1: not known
};

/// One stage's state for one micro-batch, from its forward to its backward.
struct MicroState {
  std::vector<at::Tensor> inputs, outputs, out_grads, in_grads;
  at::Tensor loss;
  SplitBackward split;  ///< kept from I to W (zero-bubble schedules)
  std::vector<PendingRecv> recv_f, recv_b;
  bool forward_done = false;
};

/// Data parallel: a stage's gradients being summed across the replicas, in
/// one flat buffer (or the gradient itself when it is the only one).
struct GradBucket {
  int stage = 0;
  std::vector<at::Tensor> grads;
  at::Tensor flat;
  bool in_place = false;  ///< flat is grads[0]'s own storage
  std::unique_ptr<Work> work;
  double start_us = 0;
};

struct LocalStage {
  int index = 0;
  const manifest::Stage* info = nullptr;
  std::unique_ptr<StageModule> module;
  std::unique_ptr<Optimizer> optimizer;
  std::map<std::string, at::Tensor> tensors;  ///< parameters and buffers by artifact name
  std::vector<at::Tensor> trainable;          ///< what W differentiates
  std::vector<bool> host_inputs;              ///< per input: read only as sizes, kept on the host
  std::vector<MicroState> mb;
};

class Engine {
 public:
  /// `t`: this rank's pipeline (ranks 0..P-1); `world`: every rank of every
  /// replica (the same transport as `t` without data parallelism).
  Engine(const LoadedManifest& lm, Transport& t, Transport& world, const ReplicaLayout& layout, const EngineOptions& o,
         std::ostream& log)
      : lm_(lm),
        m_(lm.manifest),
        t_(t),
        w_(world),
        layout_(layout),
        replica_(layout.replica_of(world.rank())),
        o_(o),
        log_(log),
        device_(o.device) {}

  void run();

 private:
  void setup();
  void build_links();
  void find_headerless_links();
  void check_outputs();
  void load_local_stages(const std::vector<int>& stages);
  /// Every rank checks, in one all-reduce, that all ranks run the same
  /// manifest, schedule, micro-batches, steps and training settings; a rank
  /// started differently is named by every rank (ppc::Error) before any
  /// step, instead of a hang or a shape error mid-run.
  void agree_on_run();
  void load_batch(int64_t step);
  void reset_micro_states();
  void execute(const Action& a);
  void forward(int s, int m);
  enum class Backward { Full, Input };
  void backward(int s, int m, Backward kind);
  void backward_weight(int s, int m);
  void post_recv_forward(int s, int m);
  void post_recv_backward(int s, int m);
  void send_forward(int s, int m);
  void send_backward(int s, int m);
  void finish_recv_forward(PendingRecv& p, MicroState& st, int m);
  /// Posts the receive of an edge's tensors of one micro-batch in one
  /// direction (0: activations from `producer`, 1: gradients from
  /// `consumer`): one message, packed when there are several tensors.
  void post_recv_data(PendingRecv& p, int direction, int producer, int consumer, int m,
                      const std::vector<std::vector<int64_t>>& shapes, const std::vector<at::ScalarType>& dtypes,
                      int slot = 1);
  /// Waits for it and checks it (wire::Incoming::check: a corrupted or
  /// wrong-size message is a PeerError naming its sender, edge and
  /// micro-batch); p.buffers then holds the tensors.
  void finish_recv_data(PendingRecv& p);
  /// The sending side: `ts` as one message, packed when several;
  /// `received_at`: the action of `dst` that receives it (PendingSend).
  void send_data(std::vector<at::Tensor> ts, int dst, uint32_t tag, int received_at, const wire::MessageId& id);
  /// The index of action (kind, stage, micro-batch) in `rank`'s lowered schedule, or -1.
  int action_index(int rank, Action::Kind kind, int s, int m) const;
  /// A message from `peer` that it sent in its action `sent_at` has arrived:
  /// every send to `peer` that it received before that action is done.
  void release_sends(int peer, int sent_at);
  /// Waits for every data message sent in this step.
  void wait_for_sends();
  /// The key of micro-batch m's shape guesses: its model inputs' dtypes and shapes.
  std::string guess_key(int m) const;
  /// A headerless link's k-th tensor shape for micro-batch m.
  std::vector<int64_t> link_shape(const Link& l, size_t k, int m) const;
  at::Tensor compute_loss(const at::Tensor& out, int m);
  void sync_tied_gradients();
  /// Data parallel: which stage's gradients to start summing after each of
  /// this rank's actions (its last backward of the step), and the sub-groups.
  void plan_gradient_reduction();
  /// Starts summing stage `s`'s gradients across the replicas, in buckets.
  void start_gradient_reduction(int s);
  /// Waits for every bucket of the step and puts the sums into the gradients.
  void finish_gradient_reduction();
  /// Inference with --output and data parallelism: one model output's
  /// pieces (per step and micro-batch) of every replica, on replica 0, in
  /// batch order (empty on the other replicas).
  std::vector<at::Tensor> gather_replica_outputs(const std::vector<at::Tensor>& pieces, int dim);
  void collect_outputs(int s, int m, const std::vector<at::Tensor>& outs);
  void write_outputs();
  void save_checkpoint(int64_t steps_done);
  void resume();
  LocalStage& local(int s) { return locals_[local_of_[s]]; }
  bool is_local(int s) const { return local_of_[s] >= 0; }
  int rank_of(int s) const { return stage_rank_[s]; }

  const LoadedManifest& lm_;
  const manifest::Manifest& m_;
  Transport& t_;  ///< this replica's pipeline
  Transport& w_;  ///< the world
  const ReplicaLayout layout_;
  const int replica_;
  const EngineOptions& o_;
  std::ostream& log_;
  const c10::Device device_;  ///< where the stages compute (--device)

  int num_stages_ = 0;
  std::vector<LocalStage> locals_;
  std::vector<int> local_of_;
  std::vector<int> stage_rank_;  ///< where the schedule places each stage
  std::vector<Link> links_;
  std::vector<std::vector<int>> links_in_, links_out_;  // per stage: indices into links_
  std::unique_ptr<wire::Tags> tags_;
  schedule::RankSchedule actions_;
  int loss_stage_ = -1, loss_output_ = -1;
  int64_t start_step_ = 0;

  // The current batch.
  std::map<std::string, std::vector<at::Tensor>> micro_inputs_;  // model input -> per micro-batch
  /// The model input dims that give symbolic link dims their size: (input, axis).
  std::vector<std::pair<std::string, int>> dim_refs_;
  std::vector<at::Tensor> micro_targets_;
  std::vector<int64_t> micro_sizes_;
  int64_t batch_samples_ = 0;  ///< the whole batch's, over every replica
  /// Synthetic targets come from the whole batch: every replica's
  /// micro-batch sizes in replica order, and where this replica's begin.
  std::vector<int64_t> target_sizes_;
  int target_base_ = 0;
  at::Tensor synthetic_teacher_;
  std::vector<at::Tensor> full_batch_first_input_;  // synthetic targets are computed from it
  double step_loss_ = 0;
  at::Tensor loss_sum_;  ///< the step's loss so far, on the loss's device

  int in_flight_ = 0, peak_in_flight_ = 0;  // micro-batches between F and B on this rank (training)

  schedule::Schedule plan_;  ///< every rank's lowered schedule
  schedule::StageGraph graph_;
  int64_t step_ = 0;
  /// Traces, step statistics and profiles: an observer, made when the run starts.
  std::unique_ptr<Measurement> measure_;

  std::vector<int> reduce_after_;   ///< per action of actions_: the stage to reduce after it, or -1
  std::vector<int> replica_group_;  ///< the world ranks of this pipeline position, one per replica
  std::vector<GradBucket> buckets_;

  std::vector<std::unique_ptr<Work>> pending_sends_;  ///< the statistics' messages to rank 0
  std::vector<at::Tensor> send_keepalive_;
  std::vector<PendingSend> data_sends_;
  wire::RecvPool recv_pool_;  ///< receive buffers, kept across steps
  /// Per pipeline rank: (kind, stage, micro-batch) -> the action's index in its lowered schedule.
  std::vector<std::map<std::tuple<int, int, int>, int>> action_index_;
  std::map<std::string, std::vector<at::Tensor>> collected_;  // model output -> pieces
};

}  // namespace ppc::runtime::engine_detail
