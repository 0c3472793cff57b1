// --save and --resume: a trained pipeline written as a pipeline again (stage
// artifacts + manifest with new digests), the optimizer state per stage, and
// every state_dict() entry under its PyTorch name(s) gathered on rank 0.
//
// A kill at any moment must leave the newest complete checkpoint usable, so
// --save DIR is a symbolic link to DIR.d/step-<N>: every rank writes into
// DIR.d/.partial, rank 0 renames it to step-<N> once all files are there,
// points a new link at it and renames the link over DIR (both renames are
// atomic), and only then removes the checkpoints beyond --keep.
#include "runtime/engine/engine_internal.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "runtime/engine/microbatch.h"
#include "runtime/engine/pt_io.h"
#include "schemas/error.h"
#include "schemas/json_text.h"
#include "schemas/sha256.h"

namespace fs = std::filesystem;

namespace ppc::runtime {

int64_t read_resume_step(const EngineOptions& o) {
  fs::path state_file = fs::path(o.resume_dir) / "pprun_state.json";
  std::error_code ec;
  if (!fs::exists(state_file, ec))
    throw Error(state_file.string() + ": missing (is '" + o.resume_dir + "' a directory written by pprun --save?)");
  const std::string text = read_text_file(state_file.string(), state_file.string(), "the checkpoint state");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
    const auto& step = j.at("step");
    if (!step.is_number_integer() || (step.is_number_unsigned() && step.get<uint64_t>() > INT64_MAX) ||
        step.get<int64_t>() < 0)
      throw Error(state_file.string() + ": 'step' must be a whole number of 0 or more");
    std::string kind = j.at("optimizer").get<std::string>();
    if (o.train && kind != o.optimizer.kind)
      throw Error(state_file.string() + ": the checkpoint was trained with --optimizer " + kind + ", not " +
                  o.optimizer.kind);
    return step.get<int64_t>();
  } catch (const nlohmann::json::exception& e) { throw Error(state_file.string() + ": malformed: " + e.what()); }
}

}  // namespace ppc::runtime

namespace ppc::runtime::engine_detail {

void Engine::resume() {
  fs::path dir(o_.resume_dir);
  start_step_ = read_resume_step(o_);
  if (!o_.train) return;
  for (auto& ls : locals_) {
    fs::path f = dir / ("optimizer_stage" + std::to_string(ls.index) + ".pt");
    ls.optimizer->load_state(load_tensor_dict(f.string()), f.string());
  }
}

namespace {

// `base` or, when that is taken (a run saved that step already), "base.1", ...
std::string free_name(const fs::path& root, const std::string& base) {
  std::string name = base;
  std::error_code ec;
  for (int k = 1; fs::exists(fs::symlink_status(root / name, ec)); ++k) name = base + "." + std::to_string(k);
  return name;
}

// "step-000000012": checkpoints sort by name as by step.
std::string checkpoint_name(const fs::path& root, int64_t steps_done) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%09lld", static_cast<long long>(steps_done));
  return free_name(root, buf);
}

// Points `link` at `target` (relative to link's folder) atomically: a new
// link renamed over the old one. A real directory at `link` (a checkpoint
// written before links) is first moved into `root`.
void flip_link(const fs::path& link, const std::string& target, const fs::path& root) {
  std::error_code ec;
  if (fs::is_directory(fs::symlink_status(link, ec))) fs::rename(link, root / free_name(root, "previous"));
  fs::path tmp = link.string() + ".link-tmp";
  fs::remove(tmp, ec);
  fs::create_directory_symlink(target, tmp);
  fs::rename(tmp, link);
}

// Removes the checkpoints in `root` beyond the newest `keep` (`current`
// always stays): by step, then by the order they were written.
void prune(const fs::path& root, const std::string& current, int keep) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::string n = e.path().filename().string();
    if (n != current && (n.rfind("step-", 0) == 0 || n.rfind("previous", 0) == 0)) names.push_back(n);
  }
  auto key = [](const std::string& n) {
    size_t dot = n.find('.');
    long long step = n.rfind("step-", 0) == 0 ? std::atoll(n.c_str() + 5) : -1;
    int again = dot == std::string::npos ? 0 : std::atoi(n.c_str() + dot + 1);
    return std::make_pair(step, again);
  };
  std::sort(names.begin(), names.end(), [&](const auto& a, const auto& b) { return key(a) > key(b); });
  for (size_t i = 0; i < names.size(); ++i)
    if (static_cast<int>(i) >= keep - 1) fs::remove_all(root / names[i], ec);
}

}  // namespace

void Engine::save_checkpoint(int64_t steps_done) {
  if (replica_ != 0) return;  // the replicas hold the same parameters: replica 0 writes them
  fs::path link(o_.save_dir);
  while (link.has_parent_path() && link.filename().empty()) link = link.parent_path();  // "ck/" -> "ck"
  fs::path root = link.string() + ".d";
  fs::path tmp = root / ".partial";
  std::error_code ec;
  if (t_.rank() == 0) {
    if (fs::exists(link, ec) && !fs::is_empty(link, ec) && !fs::exists(link / "pprun_state.json", ec))
      throw Error(o_.save_dir + ": exists and is not a pprun checkpoint; refusing to replace it");
    fs::remove_all(tmp, ec);
    fs::create_directories(root);
  }
  t_.barrier();
  fs::create_directories(tmp);
  for (auto& ls : locals_) {
    ls.module->save((tmp / ls.info->artifact).string());
    save_tensor_dict((tmp / ("optimizer_stage" + std::to_string(ls.index) + ".pt")).string(), ls.optimizer->state());
  }
  // Rank 0 gathers the artifacts' digests and every parameter (manifest order).
  manifest::Manifest out = m_;
  std::vector<NamedTensor> params;
  std::set<std::string> seen;
  std::map<std::string, at::Tensor> by_param;  // original name -> value, for the ties below
  std::set<std::string> transposed;            // tie members stored transposed: a folded copy, no name of their own
  for (const auto& g : m_.ties)
    for (const auto& mem : g.members)
      if (mem.relation == "transpose") transposed.insert(mem.param);
  auto keep = [&](const std::string& name, const at::Tensor& value) {
    if (seen.insert(name).second) params.emplace_back(name, value);
  };
  for (int s = 0; s < num_stages_; ++s) {
    const auto& info = m_.stages[s];
    int r = rank_of(s);
    if (t_.rank() != 0 && r != t_.rank()) continue;
    // The artifact's digest and, for an ONNX stage saved with external data
    // (as it was read, or over 2 GiB), its data file's; zeros: none.
    const fs::path data_file = tmp / (info.artifact + ".data");
    at::Tensor d = at::zeros({128}, at::kByte);
    if (r == t_.rank()) {
      std::string digest = sha256_file_hex((tmp / info.artifact).string());
      if (fs::exists(data_file, ec)) digest += sha256_file_hex(data_file.string());
      std::copy(digest.begin(), digest.end(), d.data_ptr<uint8_t>());
    }
    if (r != 0) {
      if (t_.rank() == r)
        t_.isend(d, 0, wire::Tags::kSaveDigest)->wait();
      else
        t_.irecv(d, r, wire::Tags::kSaveDigest)->wait();
    }
    if (t_.rank() == 0) {
      const char* digests = reinterpret_cast<const char*>(d.data_ptr<uint8_t>());
      out.stages[s].sha256 = std::string(digests, 64);
      const bool has_data = digests[64] != 0;
      out.stages[s].data_file = has_data ? data_file.filename().string() : "";
      out.stages[s].data_sha256 = has_data ? std::string(digests + 64, 64) : "";
    }
    for (const auto& p : info.params) {
      at::Tensor value;
      if (r == t_.rank()) value = local(s).tensors.at(p.name).detach().contiguous();
      if (r != 0) {
        if (t_.rank() == r) {
          t_.isend(wire_view(value), 0, wire::Tags::kSaveParam)->wait();
        } else {
          value = at::empty(p.shape, at::TensorOptions().dtype(scalar_type_of(p.dtype)));
          t_.irecv(wire_view(value), r, wire::Tags::kSaveParam)->wait();
        }
      }
      if (t_.rank() != 0 || !p.state || transposed.count(p.original)) continue;
      by_param.emplace(p.original, value);
      keep(p.original, value);
      for (const auto& alias : p.aliases) keep(alias, value);
    }
  }
  if (t_.rank() != 0) return;
  // Every name of a tied parameter, as in the module's state_dict(): a member
  // that no stage holds under its own name (transmitted) gets the group's value.
  for (const auto& g : m_.ties) {
    auto first = by_param.find(g.members.front().param);
    if (first == by_param.end()) continue;
    for (const auto& mem : g.members)
      if (mem.relation == "identity" && !by_param.count(mem.param)) keep(mem.param, first->second);
  }
  save_tensor_dict((tmp / "params.pt").string(), params);
  {
    std::ofstream mf(tmp / "manifest.json");
    mf << manifest::to_json_text(out);
    nlohmann::ordered_json st;
    st["version"] = 1;
    st["step"] = steps_done;
    st["optimizer"] = o_.optimizer.kind;
    std::ofstream sf(tmp / "pprun_state.json");
    sf << st.dump(2) << "\n";
  }
  std::string name = checkpoint_name(root, steps_done);
  fs::rename(tmp, root / name);
  flip_link(link, root.filename().string() + "/" + name, root);
  prune(root, name, std::max(1, o_.keep));
}

}  // namespace ppc::runtime::engine_detail
