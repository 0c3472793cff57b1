// pprun --blas: LibTorch's float32 GEMMs routed through pprun's sgemm_ to
// LibTorch's own BLAS or to OpenBLAS. This binary exports sgemm_ as pprun
// does (tools/pprun/sgemm.dynlist), so at::mm reaches it.
#include "runtime/stages/blas.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "schemas/error.h"

namespace ppc::runtime {
namespace {

// a @ b in double precision, the reference both libraries must meet.
at::Tensor reference_mm(const at::Tensor& a, const at::Tensor& b) {
  return at::mm(a.to(at::kDouble), b.to(at::kDouble)).to(at::kFloat);
}

struct Operands {
  at::Tensor a, b, bt;
};

Operands operands() {
  at::manual_seed(7);
  return {at::randn({64, 96}), at::randn({96, 80}), at::randn({80, 96})};
}

TEST(Blas, LibTorchsGemmsGoThroughPprunsSgemm) {
  const BlasInUse use = choose_blas(BlasChoice::Torch);
  EXPECT_FALSE(use.switched);
  EXPECT_EQ(use.name, use.own);
  EXPECT_NE(use.describe().find(", LibTorch's own (--blas torch)"), std::string::npos) << use.describe();
  const Operands o = operands();
  const int64_t before = blas_calls();
  at::Tensor y = at::mm(o.a, o.b);
  at::Tensor z = at::linear(o.a, o.bt);
  EXPECT_GE(blas_calls() - before, 2) << "at::mm and at::linear did not call sgemm_";
  EXPECT_TRUE(at::allclose(y, reference_mm(o.a, o.b), 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(z, reference_mm(o.a, o.bt.t()), 1e-4, 1e-4));
}

TEST(Blas, OpenBlasComputesTheSameProductsAsLibTorchsOwn) {
  const Operands o = operands();
  choose_blas(BlasChoice::Torch);
  at::Tensor own = at::mm(o.a, o.b);
  at::Tensor own_t = at::mm(o.a.t().contiguous().t(), o.bt.t());  // transposed operands: other sgemm_ flags
  BlasInUse use;
  try {
    use = choose_blas(BlasChoice::OpenBlas);
  } catch (const Error& e) { GTEST_SKIP() << e.what(); }
  EXPECT_TRUE(use.switched);
  EXPECT_EQ(use.name.rfind("OpenBLAS", 0), 0u) << use.name;
  EXPECT_NE(use.describe().find(" in place of LibTorch's "), std::string::npos) << use.describe();
  set_blas_threads(1);
  const int64_t before = blas_calls();
  at::Tensor theirs = at::mm(o.a, o.b);
  at::Tensor theirs_t = at::mm(o.a.t().contiguous().t(), o.bt.t());
  EXPECT_EQ(blas_calls() - before, 2);
  EXPECT_TRUE(at::allclose(theirs, reference_mm(o.a, o.b), 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(theirs, own, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(theirs_t, own_t, 1e-5, 1e-5));
  // And back: --blas torch after openblas restores LibTorch's own.
  EXPECT_FALSE(choose_blas(BlasChoice::Torch).switched);
  EXPECT_TRUE(at::allclose(at::mm(o.a, o.b), own, 1e-5, 1e-5));
}

TEST(Blas, ChoicesParse) {
  EXPECT_EQ(parse_blas_choice("auto"), BlasChoice::Auto);
  EXPECT_EQ(parse_blas_choice("torch"), BlasChoice::Torch);
  EXPECT_EQ(parse_blas_choice("openblas"), BlasChoice::OpenBlas);
  try {
    parse_blas_choice("mkl");
    FAIL() << "mkl was accepted";
  } catch (const Error& e) { EXPECT_NE(std::string(e.what()).find("--blas 'mkl'"), std::string::npos) << e.what(); }
}

}  // namespace
}  // namespace ppc::runtime
