// Byte-moving kernels: Concat, Transpose, Gather. They take any fixed-width element type
// (the element size is all that matters), so float16/bfloat16/int8/bool... run here too.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "ferry/kernel.h"
#include "ferry/threadpool.h"

namespace ferry {
namespace tensor {
namespace {

int64_t esize(DType t, const char* name) {
  const size_t s = dtype_size(t);
  if (s == 0) throw KernelArgError(std::string(name) + ": unsupported element type");
  return static_cast<int64_t>(s);
}

// ---- Concat ---------------------------------------------------------------------------------
class ConcatKernel : public Kernel {
 public:
  ConcatKernel(int64_t outer, std::vector<int64_t> block, int64_t out_row)
      : outer_(outer), block_(std::move(block)), out_row_(out_row) {
    offset_.assign(block_.size(), 0);
    for (size_t i = 1; i < block_.size(); ++i) offset_[i] = offset_[i - 1] + block_[i - 1];
  }
  void run(const void* const* in, void* const* out) const override {
    char* y = static_cast<char*>(out[0]);
    const int64_t k = static_cast<int64_t>(block_.size());
    const int64_t avg = std::max<int64_t>(1, out_row_ / std::max<int64_t>(1, k));
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / avg);
    parallel_for(outer_ * k, grain, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / k, i = t % k;
        if (block_[i])
          std::memcpy(y + o * out_row_ + offset_[i],
                      static_cast<const char*>(in[i]) + o * block_[i], block_[i]);
      }
    });
  }

 private:
  int64_t outer_;
  std::vector<int64_t> block_, offset_;  // bytes per outer row: of each input, its place
  int64_t out_row_;
};

std::unique_ptr<Kernel> make_concat(const KernelArgs& a) {
  if (a.in_shapes.empty() || a.out_shapes.size() != 1)
    throw KernelArgError("Concat: at least one input and one output");
  const Shape& ys = a.out_shapes[0];
  const int64_t axis = a.params.get_int("axis");
  if (axis < 0 || axis >= static_cast<int64_t>(ys.size()))
    throw KernelArgError("Concat: axis out of range");
  const int64_t es = esize(a.out_dtypes[0], "Concat");
  int64_t outer = 1, total = 0;
  for (int64_t i = 0; i < axis; ++i) outer *= ys[i];
  std::vector<int64_t> block;
  for (size_t i = 0; i < a.in_shapes.size(); ++i) {
    const Shape& xs = a.in_shapes[i];
    if (a.in_dtypes[i] != a.out_dtypes[0] || xs.size() != ys.size())
      throw KernelArgError("Concat: inputs must match the output's dtype and rank");
    for (size_t d = 0; d < ys.size(); ++d)
      if (static_cast<int64_t>(d) != axis && xs[d] != ys[d])
        throw KernelArgError("Concat: input shapes differ off the axis");
    total += xs[axis];
    int64_t inner = es;
    for (size_t d = axis; d < xs.size(); ++d) inner *= xs[d];
    block.push_back(inner);
  }
  if (total != ys[axis]) throw KernelArgError("Concat: sizes along the axis do not add up");
  int64_t out_row = es;
  for (size_t d = axis; d < ys.size(); ++d) out_row *= ys[d];
  return std::make_unique<ConcatKernel>(outer, std::move(block), out_row);
}

// ---- Transpose ------------------------------------------------------------------------------
// After dropping size-1 axes and merging input axes that stay adjacent in the output, either
// the output's last axis is contiguous in the input (rows are copied) or it is not (2-D tiles
// of the output's last axis and the input's last axis are transposed through the cache).
constexpr int kMaxDims = 16;

struct Dim { int64_t n, in_stride, out_stride; };

template <class T> void tile(const T* x, T* y, int64_t nj, int64_t nr, int64_t out_j,
                             int64_t in_r) {
  // y[j * out_j + r] = x[j + r * in_r] over j < nj, r < nr (a tile).
  for (int64_t j = 0; j < nj; ++j) {
    T* yr = y + j * out_j;
    const T* xc = x + j;
    for (int64_t r = 0; r < nr; ++r) yr[r] = xc[r * in_r];
  }
}

class TransposeKernel : public Kernel {
 public:
  static constexpr int64_t kTile = 16;
  TransposeKernel(std::vector<Dim> outer, Dim j, Dim r, bool copy_rows, int64_t es,
                  int64_t total)
      : outer_(std::move(outer)), j_(j), r_(r), copy_rows_(copy_rows), es_(es), total_(total) {}

  void run(const void* const* in, void* const* out) const override {
    const char* x = static_cast<const char*>(in[0]);
    char* y = static_cast<char*>(out[0]);
    if (total_ == 0) return;
    if (outer_.empty() && copy_rows_) {  // an identity after merging
      parallel_for(total_ * es_, 1 << 20, [&](int64_t b, int64_t e) {
        std::memcpy(y + b, x + b, e - b);
      });
      return;
    }
    int64_t count = 1;
    for (const Dim& d : outer_) count *= d.n;
    const int64_t jtiles = copy_rows_ ? 1 : (j_.n + kTile - 1) / kTile;
    const int64_t per_task = copy_rows_ ? r_.n : std::min(j_.n, kTile) * r_.n;
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, per_task));
    parallel_for(count * jtiles, grain, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        int64_t rem = t / jtiles, xo = 0, yo = 0;
        for (int d = static_cast<int>(outer_.size()) - 1; d >= 0; --d) {
          const int64_t i = rem % outer_[d].n;
          rem /= outer_[d].n;
          xo += i * outer_[d].in_stride;
          yo += i * outer_[d].out_stride;
        }
        if (copy_rows_) {
          std::memcpy(y + yo * es_, x + xo * es_, r_.n * es_);
          continue;
        }
        const int64_t j0 = (t % jtiles) * kTile, nj = std::min(kTile, j_.n - j0);
        xo += j0 * j_.in_stride;
        yo += j0 * j_.out_stride;
        for (int64_t r0 = 0; r0 < r_.n; r0 += kTile) {
          const int64_t nr = std::min(kTile, r_.n - r0);
          const int64_t xi = xo + r0 * r_.in_stride, yi = yo + r0;
          switch (es_) {
            case 1: tile(reinterpret_cast<const uint8_t*>(x) + xi,
                         reinterpret_cast<uint8_t*>(y) + yi, nj, nr, j_.out_stride,
                         r_.in_stride); break;
            case 2: tile(reinterpret_cast<const uint16_t*>(x) + xi,
                         reinterpret_cast<uint16_t*>(y) + yi, nj, nr, j_.out_stride,
                         r_.in_stride); break;
            case 4: tile(reinterpret_cast<const uint32_t*>(x) + xi,
                         reinterpret_cast<uint32_t*>(y) + yi, nj, nr, j_.out_stride,
                         r_.in_stride); break;
            default: tile(reinterpret_cast<const uint64_t*>(x) + xi,
                          reinterpret_cast<uint64_t*>(y) + yi, nj, nr, j_.out_stride,
                          r_.in_stride); break;
          }
        }
      }
    });
  }

 private:
  std::vector<Dim> outer_;
  Dim j_, r_;  // j: the input's innermost axis (tiled case); r: the output's innermost
  bool copy_rows_;
  int64_t es_, total_;
};

std::unique_ptr<Kernel> make_transpose(const KernelArgs& a) {
  if (a.in_shapes.size() != 1 || a.out_shapes.size() != 1 || a.in_dtypes[0] != a.out_dtypes[0])
    throw KernelArgError("Transpose: one input and one output of the same dtype");
  const Shape& xs = a.in_shapes[0];
  const std::vector<int64_t> perm = a.params.get_ints("perm");
  const size_t rank = xs.size();
  if (perm.size() != rank) throw KernelArgError("Transpose: perm has the wrong length");
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(rank) || seen[p])
      throw KernelArgError("Transpose: perm is not a permutation");
    seen[p] = true;
  }
  for (size_t i = 0; i < rank; ++i)
    if (a.out_shapes[0].size() != rank || a.out_shapes[0][i] != xs[perm[i]])
      throw KernelArgError("Transpose: output shape does not match perm");
  int64_t es = esize(a.in_dtypes[0], "Transpose");
  if (es != 1 && es != 2 && es != 4 && es != 8)
    throw KernelArgError("Transpose: element size must be 1, 2, 4 or 8 bytes");
  // Input strides (elements), then output axes in order with their input axis; drop size 1.
  std::vector<int64_t> in_stride(rank, 1);
  for (int64_t i = static_cast<int64_t>(rank) - 2; i >= 0; --i)
    in_stride[i] = in_stride[i + 1] * xs[i + 1];
  struct Ax { int64_t n, in_stride; int64_t in_axis; };
  std::vector<Ax> axes;
  for (size_t i = 0; i < rank; ++i) {
    const int64_t p = perm[i];
    if (xs[p] == 1) continue;
    // Merge with the previous output axis when it is the input axis just before this one
    // (through size-1 axes): the pair is then one contiguous run in both layouts.
    if (!axes.empty() && axes.back().in_stride == in_stride[p] * xs[p]) {
      axes.back().n *= xs[p];
      axes.back().in_stride = in_stride[p];
      axes.back().in_axis = p;
      continue;
    }
    axes.push_back({xs[p], in_stride[p], p});
  }
  const int64_t total = numel(xs);
  if (axes.size() > static_cast<size_t>(kMaxDims))
    throw KernelArgError("Transpose: too many axes");
  // Output strides of the merged axes.
  std::vector<Dim> dims(axes.size());
  int64_t os = 1;
  for (int64_t i = static_cast<int64_t>(axes.size()) - 1; i >= 0; --i) {
    dims[i] = {axes[i].n, axes[i].in_stride, os};
    os *= axes[i].n;
  }
  if (dims.empty() || dims.back().in_stride == 1) {
    Dim r = dims.empty() ? Dim{total, 1, 1} : dims.back();
    if (!dims.empty()) dims.pop_back();
    return std::make_unique<TransposeKernel>(std::move(dims), Dim{1, 0, 0}, r, true, es, total);
  }
  Dim r = dims.back();
  dims.pop_back();
  size_t jpos = 0;
  while (jpos < dims.size() && dims[jpos].in_stride != 1) ++jpos;
  if (jpos == dims.size()) throw KernelArgError("Transpose: internal error (no unit stride)");
  Dim j = dims[jpos];
  dims.erase(dims.begin() + jpos);
  return std::make_unique<TransposeKernel>(std::move(dims), j, r, false, es, total);
}

// ---- Gather ---------------------------------------------------------------------------------
class GatherKernel : public Kernel {
 public:
  GatherKernel(int64_t outer, int64_t dim, int64_t inner_bytes, int64_t count, bool idx64,
               std::vector<int64_t> const_idx)
      : outer_(outer), dim_(dim), inner_(inner_bytes), count_(count), idx64_(idx64),
        const_idx_(std::move(const_idx)) {}

  void run(const void* const* in, void* const* out) const override {
    const char* x = static_cast<const char*>(in[0]);
    char* y = static_cast<char*>(out[0]);
    std::vector<int64_t> own;
    const int64_t* idx = const_idx_.data();
    if (const_idx_.empty() && count_) {
      own = normalize(in[1], idx64_, count_, dim_);
      idx = own.data();
    }
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, inner_));
    parallel_for(outer_ * count_, grain, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / count_, k = t % count_;
        const char* src = x + (o * dim_ + idx[k]) * inner_;
        char* dst = y + t * inner_;
        switch (inner_) {  // single elements: a typed copy instead of a memcpy call
          case 4: *reinterpret_cast<uint32_t*>(dst) = *reinterpret_cast<const uint32_t*>(src);
                  break;
          case 8: *reinterpret_cast<uint64_t*>(dst) = *reinterpret_cast<const uint64_t*>(src);
                  break;
          default: std::memcpy(dst, src, inner_);
        }
      }
    });
  }

  // Indices made non-negative; one out of [-dim, dim) raises (IndexError in Python).
  static std::vector<int64_t> normalize(const void* p, bool idx64, int64_t count, int64_t dim) {
    std::vector<int64_t> v(count);
    for (int64_t k = 0; k < count; ++k) {
      int64_t i = idx64 ? static_cast<const int64_t*>(p)[k] : static_cast<const int32_t*>(p)[k];
      if (i < -dim || i >= dim)
        throw std::out_of_range("Gather: index " + std::to_string(i) + " is out of range [-" +
                                std::to_string(dim) + ", " + std::to_string(dim) + ")");
      v[k] = i < 0 ? i + dim : i;
    }
    return v;
  }

 private:
  int64_t outer_, dim_, inner_, count_;
  bool idx64_;
  std::vector<int64_t> const_idx_;
};

std::unique_ptr<Kernel> make_gather(const KernelArgs& a) {
  if (a.in_shapes.size() != 2 || a.out_shapes.size() != 1 || a.in_dtypes[0] != a.out_dtypes[0])
    throw KernelArgError("Gather: data, indices and one output of data's dtype");
  const DType it = a.in_dtypes[1];
  if (it != DType::i64 && it != DType::i32) throw KernelArgError("Gather: int32/int64 indices");
  const Shape& xs = a.in_shapes[0];
  const int64_t axis = a.params.get_int("axis");
  if (axis < 0 || axis >= static_cast<int64_t>(xs.size()))
    throw KernelArgError("Gather: axis out of range");
  const int64_t es = esize(a.in_dtypes[0], "Gather");
  int64_t outer = 1, inner = es;
  for (int64_t i = 0; i < axis; ++i) outer *= xs[i];
  for (size_t i = axis + 1; i < xs.size(); ++i) inner *= xs[i];
  const int64_t count = numel(a.in_shapes[1]);
  if (numel(a.out_shapes[0]) * es != outer * count * inner)
    throw KernelArgError("Gather: output size does not match");
  std::vector<int64_t> const_idx;
  auto c = a.constants.find(1);
  if (c != a.constants.end() && count) {
    try {
      const_idx = GatherKernel::normalize(c->second.data, it == DType::i64, count, xs[axis]);
    } catch (const std::out_of_range& e) {
      throw KernelArgError(e.what());
    }
  }
  return std::make_unique<GatherKernel>(outer, xs[axis], inner, count, it == DType::i64,
                                        std::move(const_idx));
}

}  // namespace

FERRY_REGISTER_KERNEL("Concat", make_concat);
FERRY_REGISTER_KERNEL("Transpose", make_transpose);
FERRY_REGISTER_KERNEL("Gather", make_gather);

}  // namespace tensor
}  // namespace ferry
