#include "runtime/engine/engine_internal.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "runtime/engine/microbatch.h"
#include "runtime/engine/pt_io.h"
#include "runtime/schedule/lowering.h"
#include "runtime/stages/device.h"
#include "schemas/error.h"
#include "schemas/sha256.h"

namespace ppc::runtime {
namespace engine_detail {

schedule::StageGraph stage_graph_of(const manifest::Manifest& m) {
  std::vector<schedule::StageEdge> edges;
  for (const auto& st : m.stages)
    for (const auto& in : st.inputs)
      if (in.from_stage >= 0) edges.push_back({in.from_stage, st.index});
  return schedule::StageGraph::from_edges(static_cast<int>(m.stages.size()), edges);
}

at::Tensor wire_view(const at::Tensor& t) { return t.scalar_type() == at::kBool ? t.view(at::kByte) : t; }

void accumulate(at::Tensor& into, const at::Tensor& g) {
  if (!into.defined())
    into = g;
  else
    into = into + g;
}

void Engine::setup() {
  num_stages_ = static_cast<int>(m_.stages.size());
  const int P = t_.world_size();
  auto lowered = plan_schedule(m_, o_.schedule, P, o_.chunks, o_.train, o_.schedule_file);
  plan_ = lowered;
  graph_ = stage_graph_of(m_);
  actions_ = lowered.at(t_.rank());
  stage_rank_ = schedule::stage_ranks(lowered, num_stages_);
  action_index_.assign(lowered.size(), {});
  for (size_t r = 0; r < lowered.size(); ++r)
    for (size_t k = 0; k < lowered[r].size(); ++k) {
      const Action& a = lowered[r][k];
      action_index_[r].emplace(std::make_tuple(static_cast<int>(a.kind), a.stage, a.microbatch), static_cast<int>(k));
    }
  std::vector<int> mine;
  for (int s = 0; s < num_stages_; ++s)
    if (stage_rank_[s] == t_.rank()) mine.push_back(s);
  local_of_.assign(num_stages_, -1);

  build_links();
  tags_ = std::make_unique<wire::Tags>(num_stages_, o_.chunks, 3);  // header, data, data after a redirect
  find_headerless_links();
  check_outputs();
  load_local_stages(mine);
  if (!o_.resume_dir.empty()) resume();
}

// Links from the consumers' inputs (edges and transmitted ties).
void Engine::build_links() {
  std::map<std::pair<int, int>, int> link_of;
  links_in_.assign(num_stages_, {});
  links_out_.assign(num_stages_, {});
  for (const auto& st : m_.stages) {
    for (size_t i = 0; i < st.inputs.size(); ++i) {
      const auto& in = st.inputs[i];
      if (in.source == "model_input") continue;
      int p = in.from_stage;
      const auto& outs = m_.stages.at(p).outputs;
      auto it = std::find_if(outs.begin(), outs.end(), [&](const auto& o) { return o.name == in.name; });
      if (it == outs.end())
        throw Error(lm_.dir + "/manifest.json: stage " + std::to_string(st.index) + " input '" + in.name +
                    "' is not an output of stage " + std::to_string(p));
      auto key = std::make_pair(p, st.index);
      if (!link_of.count(key)) {
        link_of[key] = static_cast<int>(links_.size());
        Link l;
        l.producer = p;
        l.consumer = st.index;
        l.remote = rank_of(p) != rank_of(st.index);
        links_.push_back(l);
        links_in_[st.index].push_back(link_of[key]);
        links_out_[p].push_back(link_of[key]);
      }
      Link& l = links_[link_of[key]];
      l.out_idx.push_back(static_cast<int>(it - outs.begin()));
      l.in_idx.push_back(static_cast<int>(i));
      bool diff = true;
      for (const auto& e : m_.edges)
        if (e.value == in.name && e.producer == p) diff = e.differentiable;
      l.differentiable.push_back(diff);
    }
  }
}

// Which links need no shape header: each tensor's dims are numbers or
// symbols of the model inputs' dims, whose sizes every rank reads off the
// batch it loaded (the batch dim of a batch-split input is the
// micro-batch's size).
void Engine::find_headerless_links() {
  std::map<std::string, int> ref_of;
  for (const auto& mi : m_.model_inputs) {
    if (!mi.shape) continue;
    for (size_t d = 0; d < mi.shape->size(); ++d) {
      const std::string& sym = (*mi.shape)[d].symbol;
      if (sym.empty() || (*mi.shape)[d].value || ref_of.count(sym)) continue;
      ref_of[sym] = static_cast<int>(dim_refs_.size());
      dim_refs_.emplace_back(mi.name, static_cast<int>(d));
    }
  }
  for (Link& l : links_) {
    l.headerless = true;
    for (int i : l.in_idx) {
      const auto& in = m_.stages[l.consumer].inputs[i];
      std::vector<int64_t> dims;
      bool fixed = in.shape.has_value() && in.shape->size() <= static_cast<size_t>(wire::kMaxDims);
      for (size_t d = 0; fixed && d < in.shape->size(); ++d) {
        const auto& dim = (*in.shape)[d];
        auto ref = ref_of.find(dim.symbol);
        if (dim.value && *dim.value >= 0)
          dims.push_back(*dim.value);
        else if (ref != ref_of.end())
          dims.push_back(-1 - ref->second);
        else
          fixed = false;
      }
      at::ScalarType type = at::kFloat;
      try {
        type = scalar_type_of(in.dtype);
      } catch (const Error&) { fixed = false; }
      l.headerless = l.headerless && fixed;
      l.shapes.push_back(dims);
      l.dtypes.push_back(type);
    }
    if (!l.headerless) {
      l.shapes.clear();
      l.dtypes.clear();
    }
  }
}

// Training: the loss's stage and output. Inference with --output: every
// model output on one rank.
void Engine::check_outputs() {
  if (o_.train) {
    if (m_.model_outputs.size() != 1)
      throw Error("training needs a model with exactly one output (the loss is computed from it); this one has " +
                  std::to_string(m_.model_outputs.size()));
    const auto& mo = m_.model_outputs[0];
    loss_stage_ = mo.stage;
    const auto& outs = m_.stages.at(loss_stage_).outputs;
    for (size_t j = 0; j < outs.size(); ++j)
      if (outs[j].name == mo.name) loss_output_ = static_cast<int>(j);
    if (loss_output_ < 0)
      throw Error(lm_.dir + "/manifest.json: model output '" + mo.name + "' is not an output of its stage");
  } else if (!o_.output_path.empty()) {
    std::set<int> ranks;
    for (const auto& mo : m_.model_outputs) ranks.insert(rank_of(mo.stage));
    if (ranks.size() > 1) throw Error("--output: the model outputs are computed on several ranks; not supported yet");
  }
}

void Engine::load_local_stages(const std::vector<int>& mine) {
  for (int s : mine) {
    local_of_[s] = static_cast<int>(locals_.size());
    LocalStage ls;
    ls.index = s;
    ls.info = &m_.stages[s];
    ls.module = load_stage(lm_, s);
    ls.module->to(device_);
    ls.host_inputs = ls.module->inputs_on_host();
    ls.module->set_training(o_.train);
    std::vector<NamedTensor> trainable;
    for (auto& [name, p] : ls.module->parameters()) {
      ls.tensors[name] = p;
      trainable.emplace_back(name, p);
      ls.trainable.push_back(p);
    }
    for (auto& [name, b] : ls.module->buffers()) ls.tensors[name] = b;
    if (o_.train) ls.optimizer = std::make_unique<Optimizer>(o_.optimizer, trainable);
    locals_.push_back(std::move(ls));
  }
}

void Engine::load_batch(int64_t step) {
  std::vector<NamedTensor> batch;
  std::string where;
  if (o_.synthetic) {
    where = "synthetic batch";
    uint64_t seed = o_.seed * 1000003ULL + static_cast<uint64_t>(step % o_.synthetic_batches);
    batch = synthetic_batch(m_, o_.batch_size, o_.dims, o_.int_high, seed);
  } else {
    where = o_.input_files.at(static_cast<size_t>(step % static_cast<int64_t>(o_.input_files.size())));
    batch = load_tensor_dict(where);
  }
  const std::string target_key = o_.train && o_.loss != "model" && !o_.synthetic ? o_.target_key : "";
  const std::vector<NamedTensor> whole = batch;
  int64_t whole_samples = 0;
  std::vector<int64_t> shard_sizes;
  if (layout_.replicas > 1)
    batch = shard_batch(m_, batch, layout_.replicas, replica_, target_key, where, &whole_samples, &shard_sizes);
  MicroBatches mb = split_batch(m_, batch, o_.chunks, target_key, where);
  micro_inputs_ = std::move(mb.inputs);
  micro_targets_ = std::move(mb.targets);
  if (!device_.is_cpu()) {  // the whole batch to the GPU, once per step
    for (auto& [name, pieces] : micro_inputs_)
      for (at::Tensor& t : pieces) t = t.to(device_);
    for (at::Tensor& t : micro_targets_) t = t.to(device_);
  }
  micro_sizes_ = std::move(mb.sizes);
  batch_samples_ = layout_.replicas > 1 ? whole_samples : mb.batch_size;
  target_sizes_ = micro_sizes_;
  target_base_ = 0;
  if (layout_.replicas > 1) {
    target_sizes_.clear();
    for (int d = 0; d < layout_.replicas; ++d) {
      if (d == replica_) target_base_ = static_cast<int>(target_sizes_.size());
      for (int64_t n : micro_sizes(shard_sizes[static_cast<size_t>(d)], o_.chunks)) target_sizes_.push_back(n);
    }
  }
  full_batch_first_input_.clear();
  if (o_.synthetic && o_.train && o_.loss != "model") {
    for (const auto& [name, t] : whole) {
      if (at::isFloatingType(t.scalar_type())) {
        full_batch_first_input_ = {t};
        break;
      }
    }
  }
}

void Engine::reset_micro_states() {
  for (auto& ls : locals_) {
    ls.mb.clear();
    ls.mb.resize(o_.chunks);
    for (auto& st : ls.mb) {
      st.inputs.resize(ls.info->inputs.size());
      st.out_grads.resize(ls.info->outputs.size());
    }
  }
}

namespace {

// 56 bits of a SHA-256: exact in an int64 all-reduce of one non-zero term.
int64_t digest56(const std::string& hex) { return static_cast<int64_t>(std::stoull(hex.substr(0, 14), nullptr, 16)); }

}  // namespace

void Engine::agree_on_run() {
  const std::string manifest_sha = sha256_file_hex((std::filesystem::path(lm_.dir) / "manifest.json").string());
  std::ostringstream training;
  training << o_.loss << '|' << o_.target_key << '|' << o_.optimizer.kind << '|' << o_.optimizer.lr << '|'
           << o_.optimizer.momentum << '|' << o_.optimizer.weight_decay << '|' << o_.optimizer.beta1 << '|'
           << o_.optimizer.beta2 << '|' << o_.optimizer.eps;
  const std::vector<std::pair<std::string, int64_t>> fields = {
      {"manifest.json", digest56(manifest_sha)},
      {"schedule", digest56(sha256_hex(o_.schedule))},
      {"--chunks", o_.chunks},
      {"--steps", o_.steps},
      {"--train", o_.train ? 1 : 0},
      {"resumed step", start_step_},
      {"loss and optimizer settings", o_.train ? digest56(sha256_hex(training.str())) : 0},
      {"--dp", o_.dp},
      {"--dp-layout", digest56(sha256_hex(o_.dp_layout))},
      {"--dp-bucket-mb", static_cast<int64_t>(o_.dp_bucket_mb * 1024)},
      {"--save", o_.save_dir.empty() ? 0 : 1},  // a save gathers from every rank
      {"--save-every", o_.save_every},
  };
  const int64_t world = w_.world_size(), n = static_cast<int64_t>(fields.size());
  at::Tensor all = at::zeros({world, n}, at::kLong);
  for (int64_t f = 0; f < n; ++f) all[w_.rank()][f] = fields[f].second;
  std::vector<at::Tensor> ts{all};
  std::vector<int> ranks(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) ranks[r] = r;
  w_.all_reduce_sum(ts, ranks);
  const int64_t* v = ts[0].data_ptr<int64_t>();
  for (int64_t r = 1; r < world; ++r)
    for (int64_t f = 0; f < n; ++f) {
      if (v[r * n + f] == v[f]) continue;
      const std::string& what = fields[f].first;
      bool number = (what.rfind("--", 0) == 0 && what != "--dp-layout") || what == "resumed step";
      std::string how = number ? what + " " + std::to_string(v[r * n + f]) + " instead of " + std::to_string(v[f])
                               : "another " + what;
      if (what == "--save") how = v[f] ? "without --save" : "with --save";
      throw Error("rank " + std::to_string(r) + " was started differently from rank 0: " + how +
                  " (every rank must run the same pipeline with the same options)");
    }
}

void Engine::run() {
  setup();
  agree_on_run();
  plan_gradient_reduction();
  measure_ = std::make_unique<Measurement>(
      MeasuredRun{t_, w_, layout_, o_, log_, m_, num_stages_, plan_, graph_, start_step_, loss_stage_});
  Measurement& ms = *measure_;
  ms.start_run();
  for (int64_t i = 0; i < o_.steps; ++i) {
    step_ = start_step_ + i;
    // Node timing covers the profiled steps: all but the first of several.
    if (!o_.profile_path.empty() && (i == 0 || i == 1))
      for (auto& ls : locals_) ls.module->set_node_timing(true);
    auto t0 = std::chrono::steady_clock::now();
    load_batch(step_);
    reset_micro_states();
    step_loss_ = 0;
    loss_sum_ = at::Tensor();
    ms.start_step(step_);
    for (size_t k = 0; k < actions_.size(); ++k) {
      execute(actions_[k]);
      if (!reduce_after_.empty() && reduce_after_[k] >= 0) start_gradient_reduction(reduce_after_[k]);
    }
    double t = ms.now_us();
    wait_for_sends();
    recv_pool_.trim();
    for (Link& l : links_) l.guesses.end_step();  // every micro-batch of the step has arrived
    ms.record("wait for sends", "wait", -1, -1, t, ms.now_us());
    if (o_.train) {
      t = ms.now_us();
      finish_gradient_reduction();
      if (!replica_group_.empty()) ms.record("wait for gradient all-reduce", "wait", -1, -1, t, ms.now_us());
      t = ms.now_us();
      sync_tied_gradients();
      ms.record("tied-gradient all-reduce", "allreduce", -1, -1, t, ms.now_us());
      t = ms.now_us();
      for (auto& ls : locals_) {
        ls.optimizer->step();
        ls.optimizer->zero_grad();
      }
      ms.record("optimizer step", "optimizer", -1, -1, t, ms.now_us());
    }
    // One read of the losses per step (a GPU's kernels are then done too).
    if (loss_sum_.defined()) step_loss_ = loss_sum_.item<double>();
    if (ms.collecting()) {
      synchronize(device_);
      ms.end_step(step_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), step_loss_,
                  batch_samples_, pending_sends_, send_keepalive_);
    }
    if (o_.train && !o_.save_dir.empty() && o_.save_every > 0 && (step_ + 1) % o_.save_every == 0 && i + 1 < o_.steps) {
      for (auto& w : pending_sends_) w->wait();  // the step's statistics, before the save's own messages
      pending_sends_.clear();
      send_keepalive_.clear();
      save_checkpoint(step_ + 1);
    }
  }
  for (auto& w : pending_sends_) w->wait();  // the last step's statistics
  pending_sends_.clear();
  send_keepalive_.clear();
  if (w_.rank() == 0 && !o_.quiet && o_.train)
    log_ << "rank 0 held at most " << peak_in_flight_ << " of " << o_.chunks
         << " micro-batches of activations (schedule " << o_.schedule << ")" << std::endl;
  ms.end_run(locals_, micro_sizes_);
  if (!o_.train && !o_.output_path.empty()) write_outputs();
  if (o_.train && !o_.save_dir.empty()) save_checkpoint(start_step_ + o_.steps);
}

void Engine::execute(const Action& a) {
  const ActionClock clock = measure_->begin_action(a);
  switch (a.kind) {
    case Action::F: forward(a.stage, a.microbatch); break;
    case Action::B: backward(a.stage, a.microbatch, Backward::Full); break;
    case Action::I: backward(a.stage, a.microbatch, Backward::Input); break;
    case Action::W: backward_weight(a.stage, a.microbatch); break;
    case Action::RECV_F: post_recv_forward(a.stage, a.microbatch); break;
    case Action::SEND_F: send_forward(a.stage, a.microbatch); break;
    case Action::RECV_B: post_recv_backward(a.stage, a.microbatch); break;
    case Action::SEND_B: send_backward(a.stage, a.microbatch); break;
  }
  // A GPU's kernels run after they are queued: timing an action waits for
  // them (a no-op on the CPU; never without --profile, --trace or --timeline).
  if (a.is_compute() && measure_->timing_actions()) synchronize(device_);
  measure_->end_action(a, clock);
}

std::vector<int64_t> Engine::link_shape(const Link& l, size_t k, int m) const {
  std::vector<int64_t> dims = l.shapes[k];
  for (int64_t& d : dims)
    if (d < 0) {
      const auto& [input, axis] = dim_refs_.at(static_cast<size_t>(-1 - d));
      d = micro_inputs_.at(input).at(static_cast<size_t>(m)).size(axis);
    }
  return dims;
}

std::string Engine::guess_key(int m) const {
  std::string key;
  for (const auto& [name, per_mb] : micro_inputs_) {
    const at::Tensor& t = per_mb.at(static_cast<size_t>(m));
    key += name + ' ' + std::string(c10::toString(t.scalar_type())) + ' ' + shape_text(t) + ';';
  }
  return key;
}

// A headered link's receive is posted ahead with the guessed shapes where
// there is a guess (wire::ShapeGuesses), else the header's receive.
void Engine::post_recv_forward(int s, int m) {
  MicroState& st = local(s).mb[m];
  for (int li : links_in_[s]) {
    const Link& l = links_[li];
    if (!l.remote) continue;
    PendingRecv p;
    p.link = li;
    const wire::Shapes* guess = l.headerless ? nullptr : l.guesses.guess(guess_key(m));
    if (l.headerless) {
      std::vector<std::vector<int64_t>> shapes;
      for (size_t k = 0; k < l.in_idx.size(); ++k) shapes.push_back(link_shape(l, k, m));
      post_recv_data(p, 0, l.producer, s, m, shapes, l.dtypes);
    } else if (guess) {
      post_recv_data(p, 0, l.producer, s, m, guess->shapes, guess->dtypes);
      p.guessed = true;
    } else {
      p.microbatch = m;
      p.header = wire::header_buffer(static_cast<int>(l.in_idx.size()));
      p.header_work = t_.irecv(p.header, rank_of(l.producer), tags_->data(0, l.producer, s, m, 0));
    }
    st.recv_f.push_back(std::move(p));
  }
}

void Engine::finish_recv_forward(PendingRecv& p, MicroState& st, int m) {
  Link& l = links_[p.link];
  using Outcome = wire::ShapeGuesses::Outcome;
  Outcome outcome = Outcome::None;
  if (p.guessed) {
    finish_recv_data(p);
    outcome = p.redirected ? Outcome::Miss : Outcome::Hit;
    if (p.redirected) {  // not the guessed shapes: they follow in a header, the tensors under slot 2
      p.header = wire::header_buffer(static_cast<int>(l.in_idx.size()));
      p.header_work = t_.irecv(p.header, rank_of(l.producer), tags_->data(0, l.producer, l.consumer, m, 0));
    }
  }
  if (p.header_work) {
    p.header_work->wait();
    p.header_work.reset();
    std::vector<std::vector<int64_t>> shapes;
    std::vector<at::ScalarType> dtypes;
    for (const at::Tensor& t : wire::allocate_from_header(p.header, static_cast<int>(l.in_idx.size()))) {
      shapes.push_back(t.sizes().vec());
      dtypes.push_back(t.scalar_type());
    }
    post_recv_data(p, 0, l.producer, l.consumer, m, shapes, dtypes, outcome == Outcome::Miss ? 2 : 1);
    finish_recv_data(p);
  } else if (!p.guessed) {
    finish_recv_data(p);  // headerless
  }
  if (!l.headerless) {
    wire::Shapes seen;
    for (const at::Tensor& t : p.buffers) {
      seen.shapes.push_back(t.sizes().vec());
      seen.dtypes.push_back(t.scalar_type());
    }
    l.guesses.saw(m, guess_key(m), std::move(seen), outcome);
  }
  // On a GPU, received activations move there, but for the inputs the stage
  // reads only as sizes (a shape vector an earlier stage computed).
  const std::vector<bool>& on_host = local(l.consumer).host_inputs;
  for (size_t k = 0; k < p.buffers.size(); ++k) {
    const size_t i = static_cast<size_t>(l.in_idx[k]);
    const bool keep = device_.is_cpu() || (i < on_host.size() && on_host[i]);
    st.inputs[i] = keep || !p.buffers[k].defined() ? p.buffers[k] : p.buffers[k].to(device_);
  }
}

void Engine::post_recv_data(PendingRecv& p, int direction, int producer, int consumer, int m,
                            const std::vector<std::vector<int64_t>>& shapes, const std::vector<at::ScalarType>& dtypes,
                            int slot) {
  const int peer = rank_of(direction == 0 ? producer : consumer);
  p.works.clear();
  p.producer = producer;
  p.consumer = consumer;
  p.direction = direction;
  p.microbatch = m;
  p.incoming = wire::Incoming(shapes, dtypes, recv_pool_);
  const uint32_t tag = tags_->data(direction, producer, consumer, m, slot);
  for (const at::Tensor& buffer : p.incoming.messages()) p.works.push_back(t_.irecv(buffer, peer, tag));
}

void Engine::finish_recv_data(PendingRecv& p) {
  for (auto& w : p.works) w->wait();
  const bool received = !p.works.empty();
  p.works.clear();
  if (p.producer >= 0) {
    const int peer = rank_of(p.direction == 0 ? p.producer : p.consumer);
    const int sent_at = p.direction == 0 ? action_index(peer, Action::SEND_F, p.producer, p.microbatch)
                                         : action_index(peer, Action::SEND_B, p.consumer, p.microbatch);
    release_sends(peer, sent_at);
  }
  if (!p.incoming.messages().empty()) {
    const std::string bad = p.incoming.check({step_, p.direction, p.producer, p.consumer, p.microbatch});
    if (!bad.empty()) {
      const int peer = layout_.rank_of(replica_, rank_of(p.direction == 0 ? p.producer : p.consumer));
      throw PeerError(peer, "the message from rank " + std::to_string(peer) + " with stage " +
                                std::to_string(p.producer) + " -> " + std::to_string(p.consumer) + "'s " +
                                (p.direction ? "gradients" : "activations") + " of micro-batch " +
                                std::to_string(p.microbatch) + " (step " + std::to_string(step_ + 1) + ") is " + bad);
    }
    p.redirected = p.incoming.redirected();
    if (!p.redirected) p.buffers = p.incoming.tensors();
  }
  if (measure_ && measure_->counting_messages() && received && !p.redirected && p.producer >= 0) {
    const double bytes = static_cast<double>(p.incoming.bytes());
    measure_->message_received(p.direction, p.producer, p.consumer, bytes);
  }
  p.incoming = wire::Incoming();
}

void Engine::send_data(std::vector<at::Tensor> ts, int dst, uint32_t tag, int received_at, const wire::MessageId& id) {
  if (ts.empty()) return;
  // Messages travel from host memory (Gloo): a GPU's tensors are copied out.
  if (!device_.is_cpu())
    for (at::Tensor& t : ts) t = t.to(at::kCPU);
  // Small tensors packed into one message (a copy, whatever their strides),
  // large ones as they are (made contiguous), each alone (wire::Layout).
  for (at::Tensor& t : wire::outgoing(ts, id)) data_sends_.push_back({t_.isend(t, dst, tag), t, dst, received_at});
}

int Engine::action_index(int rank, Action::Kind kind, int s, int m) const {
  const auto& index = action_index_.at(static_cast<size_t>(rank));
  auto it = index.find(std::make_tuple(static_cast<int>(kind), s, m));
  return it == index.end() ? -1 : it->second;
}

void Engine::release_sends(int peer, int sent_at) {
  if (sent_at < 0) return;
  auto done = [&](const PendingSend& p) { return p.peer == peer && p.received_at >= 0 && p.received_at < sent_at; };
  for (PendingSend& p : data_sends_)
    if (done(p)) p.work->wait();  // arrived: returns at once
  data_sends_.erase(std::remove_if(data_sends_.begin(), data_sends_.end(), done), data_sends_.end());
}

void Engine::wait_for_sends() {
  for (PendingSend& p : data_sends_) p.work->wait();
  data_sends_.clear();
  for (auto& w : pending_sends_) w->wait();
  pending_sends_.clear();
  send_keepalive_.clear();
}

void Engine::forward(int s, int m) {
  LocalStage& ls = local(s);
  MicroState& st = ls.mb[m];
  if (st.recv_f.empty()) post_recv_forward(s, m);  // not hoisted by the schedule
  for (auto& p : st.recv_f) finish_recv_forward(p, st, m);
  st.recv_f.clear();
  measure_->compute_has_data();
  const auto& ins = ls.info->inputs;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i].source == "model_input") {
      st.inputs[i] = micro_inputs_.at(ins[i].name).at(m);
    } else if (!st.inputs[i].defined()) {
      throw std::logic_error("stage " + std::to_string(s) + " input '" + ins[i].name + "' of micro-batch " +
                             std::to_string(m) + " never arrived");
    } else if (o_.train) {
      at::Tensor x = st.inputs[i].detach();
      if (at::isFloatingType(x.scalar_type())) x.requires_grad_(true);
      st.inputs[i] = x;
    }
  }
  std::vector<at::Tensor> outs;
  if (o_.train) {
    outs = ls.module->forward(st.inputs);
    if (s == loss_stage_) {
      double t0 = measure_->now_us();
      st.loss = compute_loss(outs[loss_output_], m);
      measure_->add_loss_us(measure_->now_us() - t0);  // inside F's time too; profiled apart for ppc's cost model
    }
  } else {
    at::NoGradGuard no_grad;
    outs = ls.module->forward(st.inputs);
    collect_outputs(s, m, outs);
  }
  st.outputs = outs;
  st.forward_done = true;
  if (o_.train) peak_in_flight_ = std::max(peak_in_flight_, ++in_flight_);
  // Consumers on this rank get the tensors directly.
  for (int li : links_out_[s]) {
    const Link& l = links_[li];
    if (l.remote) continue;
    MicroState& cst = local(l.consumer).mb[m];
    for (size_t k = 0; k < l.out_idx.size(); ++k) cst.inputs[l.in_idx[k]] = outs[l.out_idx[k]];
  }
  if (!o_.train) st.inputs.clear();
}

void Engine::send_forward(int s, int m) {
  MicroState& st = local(s).mb[m];
  for (int li : links_out_[s]) {
    Link& l = links_[li];
    if (!l.remote) continue;
    std::vector<at::Tensor> ts;
    for (int j : l.out_idx) ts.push_back(st.outputs[j].detach());
    int dst = rank_of(l.consumer);
    if (l.headerless) {
      // The receiver has posted buffers of the manifest's shapes: a tensor of
      // another shape would fail there, far from its cause.
      for (size_t k = 0; k < ts.size(); ++k) {
        auto want = link_shape(l, k, m);
        if (ts[k].sizes() != at::IntArrayRef(want) || ts[k].scalar_type() != l.dtypes[k])
          throw Error(lm_.dir + "/manifest.json: stage " + std::to_string(s) + " output '" +
                      m_.stages[l.consumer].inputs[l.in_idx[k]].name + "' of micro-batch " + std::to_string(m) +
                      " is " + dtype_name(ts[k].scalar_type()) + " " + shape_text(ts[k]) +
                      ", but the manifest declares " + dtype_name(l.dtypes[k]) + " " + shape_text(want) +
                      " (its symbolic dims sized as in this micro-batch's model inputs)");
      }
    }
    const int received_at = action_index(dst, Action::F, l.consumer, m);
    const wire::MessageId id{step_, 0, s, l.consumer, m};
    if (l.headerless) {
      send_data(std::move(ts), dst, tags_->data(0, s, l.consumer, m, 1), received_at, id);
      continue;
    }
    // The receiver has posted its receive with the guess the sender makes
    // here (same key, same guesses: wire::ShapeGuesses), or a header's.
    wire::Shapes sent;
    for (const at::Tensor& t : ts) {
      sent.shapes.push_back(t.sizes().vec());
      sent.dtypes.push_back(t.scalar_type());
    }
    const std::string key = guess_key(m);
    const wire::Shapes* guess = l.guesses.guess(key);
    using Outcome = wire::ShapeGuesses::Outcome;
    Outcome outcome = !guess ? Outcome::None : *guess == sent ? Outcome::Hit : Outcome::Miss;
    if (outcome == Outcome::Hit) {
      send_data(std::move(ts), dst, tags_->data(0, s, l.consumer, m, 1), received_at, id);
    } else {
      if (outcome == Outcome::Miss)
        for (at::Tensor& t : wire::redirect(guess->shapes, guess->dtypes, id))
          data_sends_.push_back({t_.isend(t, dst, tags_->data(0, s, l.consumer, m, 1)), t, dst, received_at});
      at::Tensor header = wire::encode_header(ts);
      data_sends_.push_back({t_.isend(header, dst, tags_->data(0, s, l.consumer, m, 0)), header, dst, received_at});
      const int slot = outcome == Outcome::Miss ? 2 : 1;
      send_data(std::move(ts), dst, tags_->data(0, s, l.consumer, m, slot), received_at, id);
    }
    l.guesses.saw(m, key, std::move(sent), outcome);
  }
  if (!o_.train) st.outputs.clear();
}

void Engine::post_recv_backward(int s, int m) {
  MicroState& st = local(s).mb[m];
  for (int li : links_out_[s]) {
    const Link& l = links_[li];
    if (!l.remote) continue;
    PendingRecv p;
    p.link = li;
    std::vector<std::vector<int64_t>> shapes;
    std::vector<at::ScalarType> dtypes;
    for (size_t k = 0; k < l.out_idx.size(); ++k) {
      const at::Tensor& out = st.outputs.at(l.out_idx[k]);
      if (!l.differentiable[k] || !at::isFloatingType(out.scalar_type())) continue;
      p.slots.push_back(static_cast<int>(k));
      shapes.push_back(out.sizes().vec());
      dtypes.push_back(out.scalar_type());
    }
    post_recv_data(p, 1, s, l.consumer, m, shapes, dtypes);
    st.recv_b.push_back(std::move(p));
  }
}

void Engine::backward(int s, int m, Backward kind) {
  LocalStage& ls = local(s);
  MicroState& st = ls.mb[m];
  if (!st.forward_done) throw std::logic_error("backward of stage " + std::to_string(s) + " before its forward");
  bool expects_remote = false;
  for (int li : links_out_[s]) expects_remote |= links_[li].remote;
  if (expects_remote && st.recv_b.empty()) post_recv_backward(s, m);
  for (auto& p : st.recv_b) {
    const Link& l = links_[p.link];
    finish_recv_data(p);
    for (size_t i = 0; i < p.buffers.size(); ++i)
      accumulate(st.out_grads[l.out_idx[p.slots[i]]], device_.is_cpu() ? p.buffers[i] : p.buffers[i].to(device_));
  }
  st.recv_b.clear();
  measure_->compute_has_data();
  std::vector<at::Tensor> roots, grads;
  if (st.loss.defined()) {
    roots.push_back(st.loss);
    grads.push_back(at::ones_like(st.loss));
  }
  for (size_t j = 0; j < st.outputs.size(); ++j) {
    if (st.out_grads[j].defined() && st.outputs[j].requires_grad()) {
      roots.push_back(st.outputs[j]);
      grads.push_back(st.out_grads[j]);
    }
  }
  st.in_grads.assign(st.inputs.size(), at::Tensor());
  if (kind == Backward::Full) {
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    for (size_t i = 0; i < st.inputs.size(); ++i) {
      const at::Tensor& x = st.inputs[i];
      if (!x.defined() || !x.requires_grad()) continue;
      st.in_grads[i] = x.grad().defined() ? x.grad() : at::zeros_like(x);
    }
  } else {
    // Zero-bubble: gradients of the inputs only, keeping what W needs.
    st.in_grads = st.split.input_pass(std::move(roots), std::move(grads), st.inputs, ls.trainable);
    for (size_t i = 0; i < st.inputs.size(); ++i)
      if (st.inputs[i].defined() && st.inputs[i].requires_grad() && !st.in_grads[i].defined())
        st.in_grads[i] = at::zeros_like(st.inputs[i]);
  }
  ls.module->end_backward();  // per-node backward times, when profiling
  // Producers on this rank: their output gradients accumulate directly.
  for (int li : links_in_[s]) {
    const Link& l = links_[li];
    if (l.remote) continue;
    MicroState& pst = local(l.producer).mb[m];
    for (size_t k = 0; k < l.in_idx.size(); ++k) {
      const at::Tensor& g = st.in_grads[l.in_idx[k]];
      if (l.differentiable[k] && g.defined()) accumulate(pst.out_grads[l.out_idx[k]], g);
    }
  }
  st.inputs.clear();
  st.outputs.clear();
  st.out_grads.clear();
  st.loss = at::Tensor();
  if (kind == Backward::Full) --in_flight_;
}

void Engine::backward_weight(int s, int m) {
  LocalStage& ls = local(s);
  MicroState& st = ls.mb[m];
  if (!ls.trainable.empty()) {
    st.split.weight_pass(ls.trainable);  // into .grad, as a backward accumulates
    ls.module->end_backward();
  }
  --in_flight_;
}

void Engine::send_backward(int s, int m) {
  MicroState& st = local(s).mb[m];
  for (int li : links_in_[s]) {
    const Link& l = links_[li];
    if (!l.remote) continue;
    std::vector<at::Tensor> gs;
    for (size_t k = 0; k < l.in_idx.size(); ++k) {
      const at::Tensor& g = st.in_grads.at(l.in_idx[k]);
      // The producer expects a gradient for every differentiable floating
      // entry: exactly the inputs that required grad, whose gradient backward() set.
      if (!l.differentiable[k] || !g.defined()) continue;
      gs.push_back(g);
    }
    const int dst = rank_of(l.producer);
    int received_at = action_index(dst, Action::B, l.producer, m);
    if (received_at < 0) received_at = action_index(dst, Action::I, l.producer, m);
    send_data(std::move(gs), dst, tags_->data(1, l.producer, s, m, 1), received_at, {step_, 1, l.producer, s, m});
  }
  st.in_grads.clear();
}

at::Tensor Engine::compute_loss(const at::Tensor& out, int m) {
  double scale = static_cast<double>(micro_sizes_.at(m)) / static_cast<double>(batch_samples_);
  at::Tensor loss;
  if (o_.loss == "model") {
    if (out.numel() != 1)
      throw Error("--loss model: the model output '" + m_.model_outputs[0].name + "' has " +
                  std::to_string(out.numel()) + " elements, expected a scalar loss");
    loss = out.reshape({});
  } else {
    at::Tensor target;
    if (o_.synthetic) {
      target = synthetic_target(out, full_batch_first_input_, target_sizes_, target_base_ + m, o_.loss, o_.seed,
                                synthetic_teacher_);
    } else {
      target = micro_targets_.at(m);
    }
    target = target.to(out.device());
    if (o_.loss == "mse") {
      if (!target.sizes().equals(out.sizes()))
        throw Error("--loss mse: target shape " + shape_text(target) + " differs from the output shape " +
                    shape_text(out));
      loss = at::mse_loss(out, target.to(out.scalar_type()));
    } else {
      int64_t classes = out.size(-1);
      at::Tensor flat_t = target.reshape({-1});
      at::Tensor flat_o = out.reshape({-1, classes});
      if (flat_t.size(0) != flat_o.size(0))
        throw Error("--loss cross_entropy: target shape " + shape_text(target) + " does not match the output shape " +
                    shape_text(out) + " (classes are the last output dim)");
      loss = at::cross_entropy_loss(flat_o, flat_t.to(at::kLong));
    }
  }
  loss = loss * scale;
  // Summed on the loss's device, in double as the step's loss is reported:
  // no host sync per micro-batch.
  at::Tensor l = loss.detach().to(at::kDouble);
  loss_sum_ = loss_sum_.defined() ? loss_sum_ + l : l;
  return loss;
}

void Engine::sync_tied_gradients() {
  for (const auto& g : m_.ties) {
    if (g.policy != "replicate") continue;
    std::set<int> holder_ranks;
    std::vector<std::pair<at::Tensor, bool>> mine;  // parameter, transposed
    for (const auto& mem : g.members) {
      for (int s : mem.stages) {
        holder_ranks.insert(rank_of(s));
        if (!is_local(s)) continue;
        // Tie members name the parameter as the IR does; TorchScript stages
        // store it under a flat artifact name (params[].original maps back).
        std::string name = mem.param;
        for (const auto& p : m_.stages[s].params)
          if (p.name != mem.param && p.original == mem.param) name = p.name;
        auto it = local(s).tensors.find(name);
        if (it == local(s).tensors.end())
          throw Error(lm_.dir + "/manifest.json: tie '" + g.name + "': stage " + std::to_string(s) +
                      " has no parameter '" + mem.param + "'");
        // A frozen tensor read by several stages (a buffer, an exporter's
        // constant) is one only in name: nothing to sync, nothing to step.
        if (!it->second.requires_grad()) continue;
        mine.emplace_back(it->second, mem.relation == "transpose");
      }
    }
    if (mine.empty()) continue;
    if (mine.size() == 1 && holder_ranks.size() == 1) continue;
    at::Tensor sum;
    for (auto& [p, transposed] : mine) {
      at::Tensor gr = p.grad().defined() ? p.grad() : at::zeros_like(p);
      if (transposed) gr = gr.t();
      accumulate(sum, gr);
    }
    sum = sum.contiguous();
    if (holder_ranks.size() > 1) {
      std::vector<at::Tensor> ts{sum};
      t_.all_reduce_sum(ts, std::vector<int>(holder_ranks.begin(), holder_ranks.end()));
      sum = ts[0];
    }
    for (auto& [p, transposed] : mine) p.mutable_grad() = transposed ? sum.t().contiguous() : sum.clone();
  }
}

void Engine::plan_gradient_reduction() {
  if (layout_.replicas < 2 || !o_.train) return;
  replica_group_ = layout_.replica_ranks(layout_.position_of(w_.rank()));
  // Sub-groups made once, before the first step, in the same order on every
  // rank: this position's replicas, then this replica's pipeline (its barrier).
  w_.connect_group(replica_group_);
  w_.connect_group(layout_.pipeline_ranks(replica_));
  reduce_after_.assign(actions_.size(), -1);
  std::map<int, size_t> last;  // stage -> its last action that adds to parameter gradients
  for (size_t k = 0; k < actions_.size(); ++k)
    if (actions_[k].kind == Action::B || actions_[k].kind == Action::W) last[actions_[k].stage] = k;
  for (const auto& [s, k] : last) reduce_after_[k] = s;
}

// Buckets in parameter order, one dtype each, of at most dp_bucket_mb MiB
// (a larger parameter alone). A parameter without a gradient (unused by the
// stage) has none on any replica: it stays out, as it would of PyTorch's step.
void Engine::start_gradient_reduction(int s) {
  const double t0 = measure_->now_us();
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(o_.dp_bucket_mb * 1024 * 1024));
  std::vector<at::Tensor> grads;
  int64_t bytes = 0;
  auto flush = [&]() {
    if (grads.empty()) return;
    GradBucket b;
    b.stage = s;
    b.start_us = t0;
    b.in_place = grads.size() == 1 && grads[0].is_contiguous();
    if (b.in_place) {
      b.flat = grads[0].view({-1});
    } else {
      std::vector<at::Tensor> parts;
      for (const at::Tensor& g : grads) parts.push_back(g.reshape({-1}));
      b.flat = at::cat(parts);
    }
    b.grads = std::move(grads);
    b.work = w_.iall_reduce_sum(b.flat, replica_group_);
    buckets_.push_back(std::move(b));
    grads.clear();
    bytes = 0;
  };
  for (const at::Tensor& p : local(s).trainable) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    const int64_t n = static_cast<int64_t>(g.nbytes());
    if (!grads.empty() && (grads[0].scalar_type() != g.scalar_type() || bytes + n > cap)) flush();
    grads.push_back(g);
    bytes += n;
  }
  flush();
}

void Engine::finish_gradient_reduction() {
  for (GradBucket& b : buckets_) {
    b.work->wait();
    measure_->record("gradient all-reduce", "dp", b.stage, -1, b.start_us, measure_->now_us());
    if (b.in_place) continue;
    at::NoGradGuard no_grad;
    int64_t offset = 0;
    for (at::Tensor& g : b.grads) {
      const int64_t n = g.numel();
      g.copy_(b.flat.narrow(0, offset, n).view(g.sizes()));
      offset += n;
    }
  }
  buckets_.clear();
}

void Engine::collect_outputs(int s, int m, const std::vector<at::Tensor>& outs) {
  if (o_.output_path.empty()) return;
  const auto& info = m_.stages[s].outputs;
  for (size_t j = 0; j < info.size(); ++j)
    if (info[j].model_output) collected_[info[j].name].push_back(outs[j].to(at::kCPU));
}

void Engine::write_outputs() {
  bool here = false;
  for (const auto& mo : m_.model_outputs) here |= rank_of(mo.stage) == t_.rank();
  if (!here) return;
  std::vector<NamedTensor> out;
  for (const auto& mo : m_.model_outputs) {
    std::vector<at::Tensor> pieces = collected_[mo.name];
    if (pieces.empty()) continue;
    const bool scalars = pieces[0].dim() == 0;  // a scalar per micro-batch: one entry each
    const int dim = scalars ? 0 : mo.batch_dim.value_or(0);
    if (scalars)
      for (at::Tensor& p : pieces) p = p.reshape({1});
    if (layout_.replicas > 1) {
      pieces = gather_replica_outputs(pieces, dim);
      if (replica_ != 0) continue;
    }
    out.emplace_back(mo.name, at::cat(pieces, dim));
  }
  if (replica_ == 0) save_tensor_dict(o_.output_path, out);
}

// Replica d's outputs of step k are samples of batch k after those of
// replicas 0..d-1: each replica sends replica 0 its outputs of each step (a
// shape header, then the data), which puts them in that order.
std::vector<at::Tensor> Engine::gather_replica_outputs(const std::vector<at::Tensor>& pieces, int dim) {
  const int here = layout_.position_of(w_.rank());
  const size_t per_step = static_cast<size_t>(o_.chunks);
  std::vector<at::Tensor> steps;
  for (size_t k = 0; k + per_step <= pieces.size(); k += per_step)
    steps.push_back(at::cat(std::vector<at::Tensor>(pieces.begin() + k, pieces.begin() + k + per_step), dim));
  if (replica_ != 0) {
    for (const at::Tensor& t : steps) {
      at::Tensor c = t.contiguous();
      w_.isend(wire::encode_header({c}), layout_.rank_of(0, here), wire::Tags::kOutputs)->wait();
      w_.isend(wire_view(c), layout_.rank_of(0, here), wire::Tags::kOutputs)->wait();
    }
    return {};
  }
  std::vector<std::vector<at::Tensor>> theirs(static_cast<size_t>(layout_.replicas));
  for (int d = 1; d < layout_.replicas; ++d)
    for (size_t k = 0; k < steps.size(); ++k) {
      at::Tensor header = wire::header_buffer(1);
      w_.irecv(header, layout_.rank_of(d, here), wire::Tags::kOutputs)->wait();
      at::Tensor piece = wire::allocate_from_header(header, 1).at(0);
      w_.irecv(wire_view(piece), layout_.rank_of(d, here), wire::Tags::kOutputs)->wait();
      theirs[static_cast<size_t>(d)].push_back(piece);
    }
  std::vector<at::Tensor> ordered;
  for (size_t k = 0; k < steps.size(); ++k) {
    ordered.push_back(steps[k]);
    for (int d = 1; d < layout_.replicas; ++d) ordered.push_back(theirs[static_cast<size_t>(d)][k]);
  }
  return ordered;
}

}  // namespace engine_detail

void run_pipeline(const LoadedManifest& manifest, Transport& transport, const EngineOptions& options,
                  std::ostream& log) {
  const ReplicaLayout layout = replica_layout(transport.world_size(), options.dp, options.dp_layout);
  if (layout.replicas == 1) {
    engine_detail::Engine engine(manifest, transport, transport, layout, options, log);
    engine.run();
    return;
  }
  if (transport.rank() == 0 && !options.quiet) log << "pprun: " << layout.describe() << std::endl;
  auto pipeline = subset_transport(transport, layout.pipeline_ranks(layout.replica_of(transport.rank())));
  engine_detail::Engine engine(manifest, *pipeline, transport, layout, options, log);
  engine.run();
}

}  // namespace ppc::runtime
