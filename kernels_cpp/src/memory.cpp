#include "ferry/memory.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ferry {

namespace {
constexpr size_t kHuge = size_t(2) << 20;
}

void* alloc_large(size_t bytes) {
  const size_t size = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  const bool want_huge = size >= kHuge;
  // posix_memalign: aligned_alloc wants the size a multiple of the alignment.
  void* p = nullptr;
  if (posix_memalign(&p, want_huge ? kHuge : 64, size) != 0 || !p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Whole huge pages only: a last partial one stays in 4 KB pages, so that the advice never
  // costs more than the buffer's own bytes. Advice only: with THP off the pages stay 4 KB.
  if (want_huge) madvise(p, size / kHuge * kHuge, MADV_HUGEPAGE);
#endif
  return p;
}

}  // namespace ferry
