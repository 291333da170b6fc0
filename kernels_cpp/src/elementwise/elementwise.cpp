// float32 unary and binary elementwise kernels. Binary ops take any numpy broadcast: at make
// time the shapes are aligned, size-1 output axes dropped and neighbouring axes merged while
// both operands keep the same advance pattern; the innermost merged axis then picks one of
// three loops (both advance / only A / only B) and the outer axes are walked with counters.
// So same-shape and scalar cases are one flat loop, [N, C] + [C] a loop per row,
// [N, C, H, W] + [C, 1, 1] a scalar-broadcast loop per (n, c) plane, and NCHWc
// [N, C/8, H, W, 8] * [N, C/8, 1, 1, 8] a loop per channel block against the tiled block.
#include <algorithm>
#include <cmath>
#include <string>

#include "ferry/kernel.h"
#include "ferry/threadpool.h"
#include "table.h"

namespace ferry {
namespace elementwise {

const Table& table_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return table_avx512();
    case Isa::avx2: return table_avx2();
    default: return table_scalar();
  }
}

namespace {

void check_f32(const KernelArgs& a, size_t n_in, const char* name) {
  if (a.in_shapes.size() < n_in || a.out_shapes.size() != 1)
    throw KernelArgError(std::string(name) + ": wrong number of inputs or outputs");
  if (a.in_dtypes[0] != DType::f32 || a.out_dtypes[0] != DType::f32)
    throw KernelArgError(std::string(name) + ": float32 only");
}

// ---- unary ----------------------------------------------------------------------------------
// Elements per task: transcendental ops cost ~10x a Relu per element.
int64_t unary_grain(int op) {
  switch (op) {
    case kRelu: case kClip: case kAbs: case kNeg: case kLeakyRelu: case kHardSigmoid:
    case kHardSwish: case kFloor: case kCeil: case kRound: case kSign: case kThresholdedRelu:
      return 1 << 16;
    default:
      return 1 << 13;
  }
}

class UnaryKernel : public Kernel {
 public:
  UnaryKernel(UnaryFn fn, UnaryArgs args, int64_t n, int64_t grain)
      : fn_(fn), args_(args), n_(n), grain_(grain) {}
  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    parallel_for(n_, grain_, [&](int64_t b, int64_t e) { fn_(x + b, y + b, e - b, args_); });
  }

 protected:
  UnaryFn fn_;
  UnaryArgs args_;
  int64_t n_, grain_;
};

template <int Op> std::unique_ptr<Kernel> make_unary(const KernelArgs& a) {
  check_f32(a, 1, "unary");
  if (numel(a.in_shapes[0]) != numel(a.out_shapes[0]))
    throw KernelArgError("unary: input and output sizes differ");
  UnaryArgs args;
  const Params& p = a.params;
  switch (Op) {
    case kLeakyRelu: args.alpha = static_cast<float>(p.get_float("alpha", 0.01)); break;
    case kHardSigmoid:
      args.alpha = static_cast<float>(p.get_float("alpha", 0.2));
      args.beta = static_cast<float>(p.get_float("beta", 0.5));
      break;
    case kElu: case kCelu: args.alpha = static_cast<float>(p.get_float("alpha", 1.0)); break;
    case kThresholdedRelu: args.alpha = static_cast<float>(p.get_float("alpha", 1.0)); break;
    case kSelu:
      args.alpha = static_cast<float>(p.get_float("alpha", 1.67326319217681884765625));
      args.beta = static_cast<float>(p.get_float("gamma", 1.05070102214813232421875));
      break;
    default: break;
  }
  int op = Op;
  if (Op == kGeluErf && p.has("approximate") && p.get_str("approximate") == "tanh")
    op = kGeluTanh;
  UnaryFn fn = table_for(active_isa()).unary[op];
  return std::make_unique<UnaryKernel>(fn, args, numel(a.out_shapes[0]), unary_grain(op));
}

// Clip: bounds from parameters (opset < 11) or from optional scalar inputs 1 and 2, which are
// read at run time unless they were constant at make time.
class ClipKernel : public UnaryKernel {
 public:
  ClipKernel(UnaryFn fn, UnaryArgs args, int64_t n, bool lo_in, bool hi_in)
      : UnaryKernel(fn, args, n, 1 << 16), lo_in_(lo_in), hi_in_(hi_in) {}
  void run(const void* const* in, void* const* out) const override {
    UnaryArgs args = args_;
    if (lo_in_ && in[1]) args.alpha = *static_cast<const float*>(in[1]);
    if (hi_in_ && in[2]) args.beta = *static_cast<const float*>(in[2]);
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    parallel_for(n_, grain_, [&](int64_t b, int64_t e) { fn_(x + b, y + b, e - b, args); });
  }

 private:
  bool lo_in_, hi_in_;
};

std::unique_ptr<Kernel> make_clip(const KernelArgs& a) {
  check_f32(a, 1, "Clip");
  UnaryArgs args;
  args.alpha = -INFINITY;
  args.beta = INFINITY;
  if (a.params.has("min")) args.alpha = static_cast<float>(a.params.get_float("min"));
  if (a.params.has("max")) args.beta = static_cast<float>(a.params.get_float("max"));
  bool bound_in[2] = {false, false};
  for (int i = 1; i <= 2 && i < static_cast<int>(a.in_shapes.size()); ++i) {
    if (a.in_dtypes[i] == DType::unknown) continue;  // absent
    if (a.in_dtypes[i] != DType::f32 || numel(a.in_shapes[i]) != 1)
      throw KernelArgError("Clip: min and max must be float32 scalars");
    auto c = a.constants.find(i);
    float v = 0.0f;
    if (c != a.constants.end()) {
      v = *static_cast<const float*>(c->second.data);
      (i == 1 ? args.alpha : args.beta) = v;
    } else {
      bound_in[i - 1] = true;
    }
  }
  return std::make_unique<ClipKernel>(table_for(active_isa()).unary[kClip], args,
                                      numel(a.out_shapes[0]), bound_in[0], bound_in[1]);
}

// ---- binary ---------------------------------------------------------------------------------
constexpr int kMaxDims = 12;
// Tiled copy of a repeated innermost block (below): at most this many floats per outer row.
constexpr int64_t kTile = 128;

class BinaryKernel : public Kernel {
 public:
  // repeat: 0, or 1 / 2 when the innermost `block` elements of A / B repeat along the rest of
  // each inner row (inner = block x repeats): the row runs as one both-advance loop against a
  // tiled copy of the block.
  BinaryKernel(BinaryFn fn, int kind, int ndims, const int64_t* dims, const int64_t* sa,
               const int64_t* sb, int64_t inner, int64_t outer, int repeat = 0,
               int64_t block = 0)
      : fn_(fn), kind_(kind), ndims_(ndims), inner_(inner), outer_(outer), repeat_(repeat),
        block_(block) {
    for (int i = 0; i < ndims; ++i) {
      dims_[i] = dims[i];
      sa_[i] = sa[i];
      sb_[i] = sb[i];
    }
  }

  void run(const void* const* in, void* const* out) const override {
    const float* a = static_cast<const float*>(in[0]);
    const float* b = static_cast<const float*>(in[1]);
    float* y = static_cast<float*>(out[0]);
    if (outer_ == 0 || inner_ == 0) return;
    if (ndims_ == 0 && !repeat_) {  // one flat loop
      parallel_for(inner_, 1 << 15, [&](int64_t s, int64_t e) {
        fn_(kind_ == kSV ? a : a + s, kind_ == kVS ? b : b + s, y + s, e - s);
      });
      return;
    }
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / inner_);
    parallel_for(outer_, grain, [&](int64_t s, int64_t e) {
      // Multi-index of outer row s over the outer dims (last fastest).
      int64_t idx[kMaxDims];
      int64_t oa = 0, ob = 0, rem = s;
      for (int d = ndims_ - 1; d >= 0; --d) {
        idx[d] = rem % dims_[d];
        rem /= dims_[d];
        oa += idx[d] * sa_[d];
        ob += idx[d] * sb_[d];
      }
      // Repeated blocks: up to kTile floats of the block tiled once per outer row.
      float tile[kTile];
      for (int64_t r = s; r < e; ++r) {
        if (repeat_) {
          const float* blk = repeat_ == 1 ? a + oa : b + ob;
          const float* full = repeat_ == 1 ? b + ob : a + oa;
          const int64_t reps = std::min<int64_t>(kTile / block_, inner_ / block_);
          for (int64_t k = 0; k < reps; ++k) std::copy(blk, blk + block_, tile + k * block_);
          for (int64_t j = 0; j < inner_; j += reps * block_) {
            const int64_t n = std::min(reps * block_, inner_ - j);
            if (repeat_ == 1)
              fn_(tile, full + j, y + r * inner_ + j, n);
            else
              fn_(full + j, tile, y + r * inner_ + j, n);
          }
        } else {
          fn_(a + oa, b + ob, y + r * inner_, inner_);
        }
        for (int d = ndims_ - 1; d >= 0; --d) {
          oa += sa_[d];
          ob += sb_[d];
          if (++idx[d] < dims_[d]) break;
          oa -= dims_[d] * sa_[d];
          ob -= dims_[d] * sb_[d];
          idx[d] = 0;
        }
      }
    });
  }

 private:
  BinaryFn fn_;
  int kind_, ndims_;
  int64_t dims_[kMaxDims], sa_[kMaxDims], sb_[kMaxDims];  // outer dims, element strides
  int64_t inner_, outer_;
  int repeat_ = 0;
  int64_t block_ = 0;
};

template <int Op> std::unique_ptr<Kernel> make_binary(const KernelArgs& a) {
  if (a.in_shapes.size() != 2 || a.out_shapes.size() != 1)
    throw KernelArgError("binary op: two inputs and one output");
  if (a.in_dtypes[0] != DType::f32 || a.in_dtypes[1] != DType::f32 ||
      a.out_dtypes[0] != DType::f32)
    throw KernelArgError("binary op: float32 only");
  Shape sa = a.in_shapes[0], sb = a.in_shapes[1];
  const Shape& so = a.out_shapes[0];
  if (a.params.has("b_shape")) {  // B seen with another shape of the same size (old opsets)
    Shape v = a.params.get_ints("b_shape");
    if (numel(v) != numel(sb)) throw KernelArgError("binary op: b_shape changes B's size");
    sb = v;
  }
  const int rank = static_cast<int>(so.size());
  // Leading 1s beyond the output's rank change nothing (a 0-d value may arrive as [1]).
  for (Shape* s : {&sa, &sb})
    while (static_cast<int>(s->size()) > rank && s->front() == 1) s->erase(s->begin());
  if (static_cast<int>(sa.size()) > rank || static_cast<int>(sb.size()) > rank)
    throw KernelArgError("binary op: an input has a higher rank than the output");
  // Align right; per output axis: does A / B advance along it?
  std::vector<int64_t> da(rank, 1), db(rank, 1);
  for (size_t i = 0; i < sa.size(); ++i) da[rank - sa.size() + i] = sa[i];
  for (size_t i = 0; i < sb.size(); ++i) db[rank - sb.size() + i] = sb[i];
  struct Ax { int64_t n; bool a, b; };
  std::vector<Ax> axes;
  for (int i = 0; i < rank; ++i) {
    if ((da[i] != so[i] && da[i] != 1) || (db[i] != so[i] && db[i] != 1))
      throw KernelArgError("binary op: shapes do not broadcast to the output");
    if (so[i] == 1) continue;
    Ax ax{so[i], da[i] != 1, db[i] != 1};
    if (!axes.empty() && axes.back().a == ax.a && axes.back().b == ax.b)
      axes.back().n *= ax.n;  // same advance pattern: merge with the previous axis
    else
      axes.push_back(ax);
  }
  const Table& t = table_for(active_isa());
  if (numel(so) == 0)
    return std::make_unique<BinaryKernel>(t.binary[Op][kVV], kVV, 0, nullptr, nullptr,
                                          nullptr, 0, 0);
  if (axes.empty()) axes.push_back({1, true, true});
  Ax in = axes.back();
  axes.pop_back();
  int kind = in.a && in.b ? kVV : in.a ? kVS : kSV;
  // A short innermost block both operands advance along, under an axis only one of them
  // advances along: NCHWc values times a per-channel [n, C/8, 1, 1, 8] (squeeze-excitation
  // gates): one call per 8 floats otherwise. The two axes become one inner row, and the
  // operand that stays is tiled per row.
  int repeat = 0;
  int64_t block = 0;
  // (Only under another outer axis: the threads split outer rows, and a single one would
  // run on one thread.)
  if (kind == kVV && in.n <= 64 && axes.size() >= 2 && axes.back().a != axes.back().b) {
    repeat = axes.back().a ? 2 : 1;
    block = in.n;
    in.n *= axes.back().n;
    axes.pop_back();
  }
  // Element strides of the outer axes (over the merged, non-size-1 axes).
  int nd = static_cast<int>(axes.size());
  if (nd > kMaxDims) throw KernelArgError("binary op: too many axes after merging");
  int64_t dims[kMaxDims], stra[kMaxDims], strb[kMaxDims];
  int64_t step_a = repeat == 1 ? block : in.a ? in.n : 1;
  int64_t step_b = repeat == 2 ? block : in.b ? in.n : 1, outer = 1;
  for (int d = nd - 1; d >= 0; --d) {
    dims[d] = axes[d].n;
    stra[d] = axes[d].a ? step_a : 0;
    strb[d] = axes[d].b ? step_b : 0;
    if (axes[d].a) step_a *= axes[d].n;
    if (axes[d].b) step_b *= axes[d].n;
    outer *= axes[d].n;
  }
  return std::make_unique<BinaryKernel>(t.binary[Op][kind], kind, nd, dims, stra, strb, in.n,
                                        outer, repeat, block);
}

}  // namespace

FERRY_REGISTER_KERNEL("Relu", make_unary<kRelu>);
FERRY_REGISTER_KERNEL("Silu", make_unary<kSilu>);
FERRY_REGISTER_KERNEL("Sigmoid", make_unary<kSigmoid>);
FERRY_REGISTER_KERNEL("Tanh", make_unary<kTanh>);
FERRY_REGISTER_KERNEL("Exp", make_unary<kExp>);
FERRY_REGISTER_KERNEL("Log", make_unary<kLog>);
FERRY_REGISTER_KERNEL("Sqrt", make_unary<kSqrt>);
FERRY_REGISTER_KERNEL("Abs", make_unary<kAbs>);
FERRY_REGISTER_KERNEL("Neg", make_unary<kNeg>);
FERRY_REGISTER_KERNEL("Erf", make_unary<kErf>);
FERRY_REGISTER_KERNEL("LeakyRelu", make_unary<kLeakyRelu>);
FERRY_REGISTER_KERNEL("HardSigmoid", make_unary<kHardSigmoid>);
FERRY_REGISTER_KERNEL("HardSwish", make_unary<kHardSwish>);
FERRY_REGISTER_KERNEL("Elu", make_unary<kElu>);
FERRY_REGISTER_KERNEL("Softplus", make_unary<kSoftplus>);
FERRY_REGISTER_KERNEL("Gelu", make_unary<kGeluErf>);
FERRY_REGISTER_KERNEL("Selu", make_unary<kSelu>);
FERRY_REGISTER_KERNEL("Celu", make_unary<kCelu>);
FERRY_REGISTER_KERNEL("Softsign", make_unary<kSoftsign>);
FERRY_REGISTER_KERNEL("Mish", make_unary<kMish>);
FERRY_REGISTER_KERNEL("ThresholdedRelu", make_unary<kThresholdedRelu>);
FERRY_REGISTER_KERNEL("Reciprocal", make_unary<kReciprocal>);
FERRY_REGISTER_KERNEL("Floor", make_unary<kFloor>);
FERRY_REGISTER_KERNEL("Ceil", make_unary<kCeil>);
FERRY_REGISTER_KERNEL("Round", make_unary<kRound>);
FERRY_REGISTER_KERNEL("Sign", make_unary<kSign>);
FERRY_REGISTER_KERNEL("Clip", make_clip);
FERRY_REGISTER_KERNEL("Add", make_binary<kAdd>);
FERRY_REGISTER_KERNEL("Sub", make_binary<kSub>);
FERRY_REGISTER_KERNEL("Mul", make_binary<kMul>);
FERRY_REGISTER_KERNEL("Div", make_binary<kDiv>);
FERRY_REGISTER_KERNEL("PRelu", make_binary<kPRelu>);

}  // namespace elementwise
}  // namespace ferry
