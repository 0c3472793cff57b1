// Runs the torch.export cases written by pt2_cases.py through Pt2Program and
// compares with what eager PyTorch computed there: outputs at a batch size
// other than the export's, the gradients of sum_i out_i * cot_i with respect
// to the float inputs and every parameter, the buffers after the forward, and
// (batch norm) the outputs in eval mode. Then adds 0.5 to every parameter and
// saves the program (saved.pt2, saved_state.pt, saved_out.pt), which
// `pt2_cases.py saved` opens with torch.export.load. Bad archives: the load
// error must contain the case's error.txt, with and without check_only.
//
// Usage: pt2_program_check CASES_DIR    (one line per case; exit 1 on a mismatch)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "runtime/engine/pt_io.h"
#include "runtime/stages/pt2_program.h"
#include "schemas/error.h"
#include "tests/unit/runtime/tensor_diff.h"

namespace fs = std::filesystem;
using ppc::runtime::NamedTensor;
using ppc::runtime::Pt2Program;
using ppc::test::max_diff;

namespace {

bool expect_error(const fs::path& dir, const std::string& name) {
  std::ifstream f(dir / "error.txt");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string want = ss.str();
  bool ok = true;
  for (bool check_only : {false, true}) {
    Pt2Program::Options o;
    o.check_only = check_only;
    try {
      Pt2Program::load((dir / "model.pt2").string(), o);
      std::cout << "FAIL  " << name << ": loaded (check_only " << check_only << "), expected an error containing '"
                << want << "'\n";
      ok = false;
    } catch (const ppc::Error& err) {
      std::string msg = err.what();
      bool good = msg.find(want) != std::string::npos && msg.find('\n') == std::string::npos;
      if (!good) std::cout << "FAIL  " << name << ": error '" << msg << "' lacks '" << want << "'\n";
      if (good && !check_only) std::cout << "ok    " << name << ": " << msg << "\n";
      ok = ok && good;
    }
  }
  return ok;
}

struct Checker {
  std::string name;
  double worst = 0;
  bool ok = true;
  void cmp(const std::string& what, const at::Tensor& got, const at::Tensor& want, double tolerance = 1e-5) {
    std::string why;
    double d = max_diff(got, want, why, /*same_dtype=*/false);
    worst = std::max(worst, d);
    if (d > tolerance) {
      std::cout << "FAIL  " << name << ": " << what << " differs by " << d << (why.empty() ? "" : " (" + why + ")")
                << "\n";
      ok = false;
    }
  }
  void check(bool good, const std::string& what) {
    if (!good) std::cout << "FAIL  " << name << ": " << what << "\n";
    ok = ok && good;
  }
};

std::vector<at::Tensor> inputs_of(Pt2Program& p, std::map<std::string, at::Tensor>& io) {
  std::vector<at::Tensor> ins;
  for (const auto& n : p.input_names()) ins.push_back(io.at("in." + n).clone());
  return ins;
}

#ifdef PPC_FAKE_DEVICE
// The program moved to the tests' stand-in for a GPU (tests/device/
// fake_device.cpp: its own device type, which refuses every mix with CPU
// tensors): its outputs and gradients there equal eager PyTorch's, the
// gradients reach the tensors parameters() returns, and the state stays there.
// The tolerance is 1e-4, not 1e-5: some operators take other kernels on
// another device type (LLaMA's embedding gradient differs by 1.9e-5 here).
void check_on_device(const fs::path& dir, std::map<std::string, at::Tensor>& io, Checker& c) {
  const c10::Device fake(c10::DeviceType::PrivateUse1, 0);
  auto program = Pt2Program::load((dir / "model.pt2").string());
  const size_t params = program->parameters().size();
  program->to(fake);
  c.check(program->parameters().size() == params, "to(device) keeps the parameters");
  std::vector<at::Tensor> ins = inputs_of(*program, io);
  for (auto& t : ins) {
    t = t.to(fake);
    if (t.is_floating_point()) t.set_requires_grad(true);
  }
  std::vector<at::Tensor> outs;
  try {
    outs = program->run(ins);
  } catch (const ppc::Error& e) {
    c.check(false, std::string("on the device: ") + e.what());
    return;
  }
  at::Tensor loss = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(fake));
  for (size_t i = 0; i < outs.size(); ++i) {
    c.check(outs[i].device().type() == fake.type(), "output " + std::to_string(i) + " on the device");
    c.cmp("output " + std::to_string(i) + " on the device", outs[i].cpu(), io.at("out." + std::to_string(i)), 1e-4);
    loss = loss + (outs[i] * io.at("cot." + std::to_string(i)).to(fake)).sum();
  }
  loss.backward();
  for (const auto& [fqn, p] : program->parameters()) {
    c.check(p.device().type() == fake.type(), "parameter " + fqn + " on the device");
    c.cmp("gradient of " + fqn + " on the device", p.grad().defined() ? p.grad().cpu() : at::zeros_like(p).cpu(),
          io.at("grad." + fqn), 1e-4);
  }
  for (const auto& [fqn, b] : program->buffers())
    c.check(b.device().type() == fake.type(), "buffer " + fqn + " on the device");
}
#endif

bool run_case(const fs::path& dir) {
  std::string name = dir.filename().string();
  if (fs::exists(dir / "error.txt")) return expect_error(dir, name);
  std::map<std::string, at::Tensor> io;
  for (auto& [k, v] : ppc::runtime::load_tensor_dict((dir / "io.pt").string())) io[k] = v;
  auto program = Pt2Program::load((dir / "model.pt2").string());
  Checker c{name};
  std::vector<at::Tensor> ins = inputs_of(*program, io);
  for (auto& t : ins)
    if (t.is_floating_point()) t.set_requires_grad(true);
  std::vector<at::Tensor> outs = program->run(ins);
  at::Tensor loss = at::zeros({}, at::kDouble);
  for (size_t i = 0; i < outs.size(); ++i) {
    c.cmp("output " + std::to_string(i), outs[i], io.at("out." + std::to_string(i)));
    loss = loss + (outs[i] * io.at("cot." + std::to_string(i))).sum();
  }
  loss.backward();
  for (size_t i = 0; i < ins.size(); ++i)
    if (io.count("gin." + program->input_names()[i]))
      c.cmp("gradient of input " + program->input_names()[i], ins[i].grad(), io.at("gin." + program->input_names()[i]));
  size_t params = 0;
  for (const auto& [fqn, p] : program->parameters()) {
    ++params;
    c.cmp("gradient of " + fqn, p.grad().defined() ? p.grad() : at::zeros_like(p), io.at("grad." + fqn));
  }
  // Every buffer of the eager module; the program's state also holds its
  // lifted tensor constants, which the module has no buffer for.
  size_t buffers = 0, want_buffers = 0;
  for (const auto& [key, t] : io) want_buffers += key.rfind("buf.", 0) == 0;
  for (const auto& [fqn, b] : program->buffers())
    if (io.count("buf." + fqn)) {
      c.cmp("buffer " + fqn, b, io.at("buf." + fqn));
      ++buffers;
    }
  c.check(buffers == want_buffers, "every buffer of the module is the program's state");
  if (io.count("eval.0")) {
    program->set_training(false);
    at::NoGradGuard g;
    std::vector<at::Tensor> e = program->run(inputs_of(*program, io));
    for (size_t i = 0; i < e.size(); ++i)
      c.cmp("eval output " + std::to_string(i), e[i], io.at("eval." + std::to_string(i)));
    program->set_training(true);
  }
  // Train a little (+0.5 everywhere), save, and record what the saved file must hold.
  {
    at::NoGradGuard g;
    for (auto& [fqn, p] : program->parameters()) p.add_(0.5);
    std::vector<NamedTensor> state = program->parameters();
    for (auto& b : program->buffers()) state.push_back(b);
    program->save((dir / "saved.pt2").string());
    ppc::runtime::save_tensor_dict((dir / "saved_state.pt").string(), state);
    // The saved file read back here runs as exported, as torch.export.load's module does.
    auto saved = Pt2Program::load((dir / "saved.pt2").string());
    std::vector<at::Tensor> after = saved->run(inputs_of(*saved, io));
    std::vector<NamedTensor> named;
    for (size_t i = 0; i < after.size(); ++i) named.emplace_back("out." + std::to_string(i), after[i]);
    ppc::runtime::save_tensor_dict((dir / "saved_out.pt").string(), named);
  }
#ifdef PPC_FAKE_DEVICE
  check_on_device(dir, io, c);
#endif
  if (c.ok)
    std::cout << "ok    " << name << ": " << program->num_nodes() << " nodes, " << outs.size() << " outputs, " << params
              << " parameters, max diff " << c.worst << "\n";
  return c.ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: pt2_program_check CASES_DIR\n";
    return 2;
  }
  at::set_num_threads(1);  // as pt2_cases.py computes the reference: one summation order
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(argv[1]))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  int failed = 0;
  for (const auto& d : dirs) {
    try {
      failed += !run_case(d);
    } catch (const std::exception& e) {
      std::cout << "FAIL  " << d.filename().string() << ": " << e.what() << "\n";
      ++failed;
    }
  }
  std::cout << dirs.size() - failed << "/" << dirs.size() << " cases passed\n";
  return failed ? 1 : 0;
}
