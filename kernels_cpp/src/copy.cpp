// "Copy": the output is the input's bytes (Reshape, Flatten, Squeeze, Identity...). The plan
// usually turns these nodes into views and drops the step; this kernel runs when it cannot.
#include <cstring>

#include "ferry/kernel.h"

namespace ferry {
namespace {

class CopyKernel : public Kernel {
 public:
  explicit CopyKernel(size_t nbytes) : nbytes_(nbytes) {}
  void run(const void* const* in, void* const* out) const override {
    if (nbytes_ && in[0] != out[0]) std::memcpy(out[0], in[0], nbytes_);
  }

 private:
  size_t nbytes_;
};

std::unique_ptr<Kernel> make_copy(const KernelArgs& a) {
  if (a.in_shapes.empty() || a.out_shapes.size() != 1)
    throw KernelArgError("Copy takes one input and one output");
  size_t in_bytes = numel(a.in_shapes[0]) * dtype_size(a.in_dtypes[0]);
  size_t out_bytes = numel(a.out_shapes[0]) * dtype_size(a.out_dtypes[0]);
  if (in_bytes != out_bytes || dtype_size(a.in_dtypes[0]) == 0)
    throw KernelArgError("Copy: input and output sizes differ");
  return std::make_unique<CopyKernel>(out_bytes);
}

}  // namespace

FERRY_REGISTER_KERNEL("Copy", make_copy);

}  // namespace ferry
