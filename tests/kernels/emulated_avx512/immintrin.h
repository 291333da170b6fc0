// Test-only: a portable emulation of the few AVX-512 intrinsics the 12x32 GEMM micro-kernel
// uses, so that its logic (tails, masks, epilogue) is checked on CPUs without AVX-512.
// Used by tests/kernels/test_gemm.py::test_avx512_microkernel_emulated; never part of the module.
#pragma once
#include <cstdint>
#include <cmath>
struct __m512 { float v[16]; };
typedef uint16_t __mmask16;
// Prefetches are hints: nothing to emulate.
#define _MM_HINT_T0 3
static inline void _mm_prefetch(const char*, int) {}
static inline __m512 _mm512_setzero_ps() { __m512 r; for (int i=0;i<16;++i) r.v[i]=0; return r; }
static inline __m512 _mm512_set1_ps(float x) { __m512 r; for (int i=0;i<16;++i) r.v[i]=x; return r; }
static inline __m512 _mm512_loadu_ps(const void* p) { __m512 r; for (int i=0;i<16;++i) r.v[i]=((const float*)p)[i]; return r; }
static inline __m512 _mm512_maskz_loadu_ps(__mmask16 m, const void* p) { __m512 r; for (int i=0;i<16;++i) r.v[i]= (m>>i)&1 ? ((const float*)p)[i] : 0.f; return r; }
static inline void _mm512_storeu_ps(void* p, __m512 a) { for (int i=0;i<16;++i) ((float*)p)[i]=a.v[i]; }
static inline void _mm512_mask_storeu_ps(void* p, __mmask16 m, __m512 a) { for (int i=0;i<16;++i) if ((m>>i)&1) ((float*)p)[i]=a.v[i]; }
static inline __m512 _mm512_fmadd_ps(__m512 a, __m512 b, __m512 c) { __m512 r; for (int i=0;i<16;++i) r.v[i]=std::fma(a.v[i],b.v[i],c.v[i]); return r; }
static inline __m512 _mm512_mul_ps(__m512 a, __m512 b) { __m512 r; for (int i=0;i<16;++i) r.v[i]=a.v[i]*b.v[i]; return r; }
static inline __m512 _mm512_add_ps(__m512 a, __m512 b) { __m512 r; for (int i=0;i<16;++i) r.v[i]=a.v[i]+b.v[i]; return r; }
// x86 semantics: returns the second operand when either is NaN.
static inline __m512 _mm512_max_ps(__m512 a, __m512 b) { __m512 r; for (int i=0;i<16;++i) r.v[i]= a.v[i] > b.v[i] ? a.v[i] : b.v[i]; return r; }
static inline __m512 _mm512_min_ps(__m512 a, __m512 b) { __m512 r; for (int i=0;i<16;++i) r.v[i]= a.v[i] < b.v[i] ? a.v[i] : b.v[i]; return r; }
