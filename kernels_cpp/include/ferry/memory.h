// Allocation of long-lived large buffers (packed weights, plan arenas).
#pragma once
#include <cstddef>

namespace ferry {

// 64-byte aligned memory for std::free, never null (throws std::bad_alloc). From 2 MB up it
// is 2 MB aligned and asks the kernel for transparent huge pages (madvise): a model's
// weights and activations stream through hundreds of 4 KB pages per kernel, and on a VM each
// TLB miss is a two-level page walk (1-3% of a MatMul chain's or ResNet-50's time here when
// the host is busy, neutral otherwise).
void* alloc_large(size_t bytes);

}  // namespace ferry
