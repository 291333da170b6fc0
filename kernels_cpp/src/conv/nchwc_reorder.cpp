// "NchwcReorderInput" (NCHW [N, C, H, W] -> NCHWc [N, C/8, H, W, 8]) and "NchwcReorderOutput"
// (NCHWc -> NCHW), float32, C % 8 == 0, no parameters. Work items: (image, channel block,
// chunk of pixels), spread over the threads; the loops are in nchwc_reorder_impl.h.
#include <algorithm>
#include <string>

#include "nchwc_reorder.h"
#include "ferry/cpu_features.h"
#include "ferry/kernel.h"
#include "ferry/threadpool.h"

namespace ferry {
namespace {

// Pixels per work item: 2048 pixels of 8 channels, 64 KB in and out (the pool's per-task cost
// is then small next to the copy, and 56x56 maps still split in two).
constexpr int64_t kReorderChunk = 2048;

class NchwcReorderKernel : public Kernel {
 public:
  NchwcReorderKernel(const KernelArgs& a, bool to_blocked) : to_blocked_(to_blocked) {
    const std::string name = to_blocked ? "NchwcReorderInput" : "NchwcReorderOutput";
    if (a.in_shapes.size() != 1 || a.out_shapes.size() != 1 || a.in_dtypes[0] != DType::f32 ||
        a.out_dtypes[0] != DType::f32)
      throw KernelArgError(name + " takes one float32 input and one float32 output");
    const Shape& plain = to_blocked ? a.in_shapes[0] : a.out_shapes[0];
    const Shape& blocked = to_blocked ? a.out_shapes[0] : a.in_shapes[0];
    if (plain.size() != 4) throw KernelArgError(name + ": the NCHW side must be [N, C, H, W]");
    if (plain[1] % 8 != 0)
      throw KernelArgError(name + ": channels must be a multiple of 8, got " +
                           std::to_string(plain[1]));
    const Shape expect{plain[0], plain[1] / 8, plain[2], plain[3], 8};
    if (blocked != expect)
      throw KernelArgError(name + ": the NCHWc side must be [N, C/8, H, W, 8] of the NCHW one");
    blocks_ = plain[0] * (plain[1] / 8);
    plane_ = plain[2] * plain[3];
    switch (active_isa()) {
      case Isa::avx512:
        fn_ = to_blocked ? conv::nchwc_to_blocked_avx512 : conv::nchwc_from_blocked_avx512;
        break;
      case Isa::avx2:
        fn_ = to_blocked ? conv::nchwc_to_blocked_avx2 : conv::nchwc_from_blocked_avx2;
        break;
      default:
        fn_ = to_blocked ? conv::nchwc_to_blocked_scalar : conv::nchwc_from_blocked_scalar;
        break;
    }
  }

  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    if (blocks_ == 0 || plane_ == 0) return;
    const int64_t chunks = (plane_ + kReorderChunk - 1) / kReorderChunk;
    parallel_for(blocks_ * chunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t it = b; it < e; ++it) {
        const int64_t blk = it / chunks, p0 = (it % chunks) * kReorderChunk;
        const int64_t p1 = std::min(plane_, p0 + kReorderChunk);
        // Either way the block is 8 * plane floats at offset blk * 8 * plane.
        fn_(x + blk * 8 * plane_, y + blk * 8 * plane_, plane_, p0, p1);
      }
    });
  }

 private:
  bool to_blocked_;
  int64_t blocks_ = 0, plane_ = 0;
  conv::NchwcReorderFn fn_ = nullptr;
};

}  // namespace

FERRY_REGISTER_KERNEL("NchwcReorderInput", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<NchwcReorderKernel>(a, true);
});
FERRY_REGISTER_KERNEL("NchwcReorderOutput", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<NchwcReorderKernel>(a, false);
});

}  // namespace ferry
