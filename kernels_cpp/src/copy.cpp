// "Copy": output 0 = input 0, byte for byte (Identity, Reshape, Flatten... when not a view).
// Inputs after the first (e.g. Reshape's shape) are ignored.
#include <cstring>

#include "ferry/kernel.h"

namespace ferry {
namespace {

class CopyKernel : public Kernel {
 public:
  CopyKernel(size_t nbytes, const void* constant) : nbytes_(nbytes) {
    if (constant) {
      const auto* p = static_cast<const char*>(constant);
      constant_.assign(p, p + nbytes);
    }
  }
  void run(const void* const* in, void* const* out) const override {
    const void* src = constant_.empty() ? in[0] : constant_.data();
    if (nbytes_ && src != out[0]) std::memcpy(out[0], src, nbytes_);
  }

 private:
  size_t nbytes_;
  std::vector<char> constant_;  // input 0 when it was given at make time
};

std::unique_ptr<Kernel> make_copy(const KernelArgs& a) {
  if (a.in_shapes.empty() || a.out_shapes.size() != 1)
    throw KernelArgError("Copy takes at least one input and one output");
  if (a.in_dtypes[0] != a.out_dtypes[0] || numel(a.in_shapes[0]) != numel(a.out_shapes[0]))
    throw KernelArgError("Copy: input and output differ in dtype or size");
  auto c = a.constants.find(0);
  return std::make_unique<CopyKernel>(numel(a.in_shapes[0]) * dtype_size(a.in_dtypes[0]),
                                      c == a.constants.end() ? nullptr : c->second.data);
}

}  // namespace

FERRY_REGISTER_KERNEL("Copy", make_copy);

}  // namespace ferry
