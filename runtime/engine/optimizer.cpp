#include "runtime/engine/optimizer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>

#include "schemas/error.h"

namespace ppc::runtime {

Optimizer::Optimizer(OptimizerOptions options, std::vector<NamedTensor> params) : options_(std::move(options)) {
  const auto& o = options_;
  if (o.kind != "sgd" && o.kind != "adam" && o.kind != "adamw")
    throw Error("unknown optimizer '" + o.kind + "' (expected sgd, adam or adamw)");
  if (!(o.lr >= 0)) throw Error("learning rate must be >= 0");
  if (!(o.momentum >= 0)) throw Error("momentum must be >= 0");
  if (!(o.weight_decay >= 0)) throw Error("weight decay must be >= 0");
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1)) throw Error("betas must be in [0, 1)");
  if (!(o.eps >= 0)) throw Error("eps must be >= 0");
  for (auto& [name, p] : params) slots_.push_back(Slot{name, p, {}, {}, {}, 0});
}

void Optimizer::step() {
  at::NoGradGuard no_grad;
  const auto& o = options_;
  for (auto& s : slots_) {
    at::Tensor& p = s.param;
    const at::Tensor& g0 = p.grad();
    if (!g0.defined()) continue;
    if (o.kind == "sgd") {
      at::Tensor d = o.weight_decay != 0 ? g0.add(p, o.weight_decay) : g0;
      if (o.momentum != 0) {
        if (!s.momentum_buffer.defined()) {
          s.momentum_buffer = d.clone();
        } else {
          s.momentum_buffer.mul_(o.momentum).add_(d);  // dampening 0
        }
        d = s.momentum_buffer;
      }
      p.add_(d, -o.lr);
      continue;
    }
    // adam / adamw
    if (!s.exp_avg.defined()) {
      s.exp_avg = at::zeros_like(p);
      s.exp_avg_sq = at::zeros_like(p);
    }
    s.step += 1;
    at::Tensor g = g0;
    if (o.kind == "adamw") {
      p.mul_(1 - o.lr * o.weight_decay);
    } else if (o.weight_decay != 0) {
      g = g.add(p, o.weight_decay);
    }
    s.exp_avg.mul_(o.beta1).add_(g, 1 - o.beta1);
    s.exp_avg_sq.mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
    double bc1 = 1 - std::pow(o.beta1, static_cast<double>(s.step));
    double bc2 = 1 - std::pow(o.beta2, static_cast<double>(s.step));
    at::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(o.eps);
    p.addcdiv_(s.exp_avg, denom, -o.lr / bc1);
  }
}

void Optimizer::zero_grad() {
  for (auto& s : slots_) s.param.mutable_grad() = at::Tensor();
}

std::vector<NamedTensor> Optimizer::state() const {
  std::vector<NamedTensor> out;
  for (const auto& s : slots_) {
    if (s.momentum_buffer.defined()) out.emplace_back(s.name + ".momentum_buffer", s.momentum_buffer);
    if (s.exp_avg.defined()) {
      out.emplace_back(s.name + ".step", at::scalar_tensor(static_cast<int64_t>(s.step), at::kLong));
      out.emplace_back(s.name + ".exp_avg", s.exp_avg);
      out.emplace_back(s.name + ".exp_avg_sq", s.exp_avg_sq);
    }
  }
  return out;
}

void Optimizer::load_state(const std::vector<NamedTensor>& state, const std::string& where) {
  std::map<std::string, Slot*> by_name;
  for (auto& s : slots_) by_name[s.name] = &s;
  for (const auto& [key, t] : state) {
    auto dot = key.rfind('.');
    auto it = dot == std::string::npos ? by_name.end() : by_name.find(key.substr(0, dot));
    if (it == by_name.end())
      throw Error(where + ": optimizer state '" + key + "' belongs to no parameter of this stage");
    Slot& s = *it->second;
    std::string field = key.substr(dot + 1);
    if (field == "step") {
      s.step = t.item<int64_t>();
      continue;
    }
    if (!t.sizes().equals(s.param.sizes()))
      throw Error(where + ": optimizer state '" + key + "' has the wrong shape for its parameter");
    at::Tensor copy = t.to(s.param.device(), s.param.scalar_type()).clone();  // read on the host
    if (field == "momentum_buffer")
      s.momentum_buffer = copy;
    else if (field == "exp_avg")
      s.exp_avg = copy;
    else if (field == "exp_avg_sq")
      s.exp_avg_sq = copy;
    else
      throw Error(where + ": unknown optimizer state '" + key + "'");
  }
}

}  // namespace ppc::runtime
