// float32 Softmax and LogSoftmax over the middle axis of an [outer, n, inner] view of the
// input; the view is resolved in Python (opset < 13 coerces to 2-D: inner = 1).
#include <algorithm>
#include <string>

#include "ferry/kernel.h"
#include "ferry/threadpool.h"
#include "table.h"

namespace ferry {
namespace softmax {

const Table& table_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return table_avx512();
    case Isa::avx2: return table_avx2();
    default: return table_scalar();
  }
}

namespace {

constexpr int64_t kTaskCols = 256;

class SoftmaxKernel : public Kernel {
 public:
  SoftmaxKernel(int64_t outer, int64_t n, int64_t inner, bool log, BlockFn fn)
      : outer_(outer), n_(n), inner_(inner), log_(log), fn_(fn) {}
  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    if (outer_ * n_ * inner_ == 0) return;
    // Tasks: (outer block, chunk of columns); rows are one task each.
    const int64_t chunks = (inner_ + kTaskCols - 1) / kTaskCols;
    const int64_t per_task = n_ * std::min(inner_, kTaskCols);
    const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, per_task));
    parallel_for(outer_ * chunks, grain, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / chunks, c = t % chunks;
        const int64_t off = o * n_ * inner_;
        fn_(x + off, y + off, n_, inner_, c * kTaskCols,
            std::min(inner_, (c + 1) * kTaskCols), log_);
      }
    });
  }

 private:
  int64_t outer_, n_, inner_;
  bool log_;
  BlockFn fn_;
};

template <bool Log> std::unique_ptr<Kernel> make_softmax(const KernelArgs& a) {
  const char* name = Log ? "LogSoftmax" : "Softmax";
  if (a.in_shapes.empty() || a.out_shapes.size() != 1 || a.in_dtypes[0] != DType::f32 ||
      a.out_dtypes[0] != DType::f32)
    throw KernelArgError(std::string(name) + ": one float32 input and output");
  const int64_t outer = a.params.get_int("outer"), n = a.params.get_int("n"),
                inner = a.params.get_int("inner");
  if (outer < 0 || n < 0 || inner < 0 || outer * n * inner != numel(a.in_shapes[0]) ||
      numel(a.out_shapes[0]) != numel(a.in_shapes[0]))
    throw KernelArgError(std::string(name) + ": outer * n * inner must be the input's size");
  return std::make_unique<SoftmaxKernel>(outer, n, inner, Log, table_for(active_isa()).block);
}

}  // namespace

FERRY_REGISTER_KERNEL("Softmax", make_softmax<false>);
FERRY_REGISTER_KERNEL("LogSoftmax", make_softmax<true>);

}  // namespace softmax
}  // namespace ferry
