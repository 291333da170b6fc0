// CPUID + XCR0 detection and the FERRY_MAX_ISA cap. Computed once, on first use.
#include "ferry/cpu_features.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#define FERRY_X86 1
#include <cpuid.h>
#endif

namespace ferry {

namespace {

#ifdef FERRY_X86
uint64_t xgetbv0() {
  uint32_t eax, edx;
  // Encoded as bytes so that no -mxsave flag is needed for this baseline file.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

std::vector<Isa> detect() {
  std::vector<Isa> out;
#ifdef FERRY_X86
  unsigned a, b, c, d;
  bool avx2 = false, avx512 = false;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
               f16c = c & (1u << 29);
    if (osxsave && avx) {
      const uint64_t xcr0 = xgetbv0();
      const bool ymm_state = (xcr0 & 0x6) == 0x6;             // SSE + AVX state
      const bool zmm_state = ymm_state && (xcr0 & 0xE0) == 0xE0;  // opmask + ZMM_Hi256 + Hi16
      unsigned a7, b7, c7, d7;
      if (__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) {
        const bool has_avx2 = b7 & (1u << 5);
        const bool f = b7 & (1u << 16), dq = b7 & (1u << 17), bw = b7 & (1u << 30),
                   vl = b7 & (1u << 31);
        avx2 = ymm_state && has_avx2 && fma && f16c;
        avx512 = avx2 && zmm_state && f && dq && bw && vl;
      }
    }
  }
  if (avx512) out.push_back(Isa::avx512);
  if (avx2) out.push_back(Isa::avx2);
#endif
  out.push_back(Isa::scalar);
  return out;
}

Isa choose() {
  const std::vector<Isa> sup = detect();
  Isa best = sup.front();
  const char* cap = std::getenv("FERRY_MAX_ISA");
  if (cap && *cap) {
    Isa limit;
    if (!std::strcmp(cap, "scalar")) {
      limit = Isa::scalar;
    } else if (!std::strcmp(cap, "avx2")) {
      limit = Isa::avx2;
    } else if (!std::strcmp(cap, "avx512")) {
      limit = Isa::avx512;
    } else {
      std::fprintf(stderr, "ferry: ignoring FERRY_MAX_ISA=%s (want scalar, avx2 or avx512)\n",
                   cap);
      return best;
    }
    for (Isa i : sup)
      if (static_cast<int>(i) <= static_cast<int>(limit)) return i;
  }
  return best;
}

}  // namespace

std::vector<Isa> supported_isas() {
  static const std::vector<Isa> sup = detect();
  return sup;
}

Isa active_isa() {
  static const Isa isa = choose();
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace ferry
