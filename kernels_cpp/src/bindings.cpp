// The one pybind11 file: ferry_kernels' Python API (see kernels_cpp/README.md).
//
// Arrays are taken as py::array and checked, never converted: a silently force-cast copy would
// lose what a kernel writes into it. Every kernel runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <map>
#include <memory>
#include <sstream>

#include "ferry/cpu_features.h"
#include "ferry/kernel.h"
#include "ferry/plan.h"
#include "ferry/tensor.h"
#include "ferry/threadpool.h"

namespace py = pybind11;
using namespace ferry;

namespace {

using npy = py::detail::npy_api;

// ---- dtypes and arrays ---------------------------------------------------------------------

// DType of a numpy dtype; unknown for anything a kernel cannot take (incl. non-native order).
DType dtype_of(const py::dtype& d) {
  if (d.byteorder() == '>') return DType::unknown;
  const auto size = d.itemsize();
  switch (d.kind()) {
    case 'f': return size == 4 ? DType::f32 : size == 8 ? DType::f64 : size == 2 ? DType::f16
                                                                              : DType::unknown;
    case 'i': return size == 1 ? DType::i8 : size == 2 ? DType::i16 : size == 4 ? DType::i32
                   : size == 8 ? DType::i64 : DType::unknown;
    case 'u': return size == 1 ? DType::u8 : size == 2 ? DType::u16 : size == 4 ? DType::u32
                   : size == 8 ? DType::u64 : DType::unknown;
    case 'b': return size == 1 ? DType::boolean : DType::unknown;
    case 'V':  // ml_dtypes' bfloat16 is a user-defined numpy type
      if (size == 2 && py::str(d.attr("name")).cast<std::string>() == "bfloat16")
        return DType::bf16;
      return DType::unknown;
    default: return DType::unknown;
  }
}

// np.dtype(name), importing ml_dtypes for the names it adds (bfloat16, float8_*...).
py::dtype np_dtype(const std::string& name) {
  try {
    return py::dtype(name);
  } catch (py::error_already_set&) {
  }
  try {
    py::module_ ml = py::module_::import("ml_dtypes");
    if (py::hasattr(ml, name.c_str())) return py::dtype::from_args(ml.attr(name.c_str()));
  } catch (py::error_already_set&) {
  }
  throw py::value_error("unknown dtype '" + name + "'");
}

// A dtype argument: a str name, a numpy dtype, a scalar type; None -> "".
std::string dtype_arg(py::handle h) {
  if (h.is_none()) return "";
  if (py::isinstance<py::str>(h)) return h.cast<std::string>();
  return py::str(py::dtype::from_args(py::reinterpret_borrow<py::object>(h)).attr("name"));
}

Shape shape_arg(py::handle h, const std::string& what) {
  Shape s;
  if (h.is_none()) return s;
  for (py::handle d : py::reinterpret_borrow<py::iterable>(h)) {
    const int64_t v = py::int_(py::reinterpret_borrow<py::object>(d)).cast<int64_t>();
    if (v < 0) throw py::value_error(what + ": negative dimension");
    s.push_back(v);
  }
  return s;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

bool has_flag(const py::array& a, int flag) {
  return (py::detail::array_proxy(a.ptr())->flags & flag) == flag;
}

void clear_writeable(const py::array& a) {
  py::detail::array_proxy(a.ptr())->flags &= ~npy::NPY_ARRAY_WRITEABLE_;
}

// Checks one kernel/plan argument; returns the array. Raises ValueError naming `what`.
py::array check_array(py::handle h, const std::string& what, const Shape& shape, DType dt,
                      bool writeable) {
  if (!py::isinstance<py::array>(h))
    throw py::value_error(what + ": expected a numpy array, got " +
                          std::string(py::str(py::type::of(h).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(h);
  const DType got = dtype_of(a.dtype());
  if (got != dt || got == DType::unknown)
    throw py::value_error(what + ": expected dtype " + dtype_name(dt) + ", got " +
                          std::string(py::str(a.dtype())));
  if (shape_of(a) != shape)
    throw py::value_error(what + ": expected shape " + shape_str(shape) + ", got " +
                          shape_str(shape_of(a)));
  if (!has_flag(a, npy::NPY_ARRAY_C_CONTIGUOUS_))
    throw py::value_error(what + ": array is not C-contiguous");
  if (!has_flag(a, npy::NPY_ARRAY_ALIGNED_)) throw py::value_error(what + ": array is not aligned");
  if (writeable && !has_flag(a, npy::NPY_ARRAY_WRITEABLE_))
    throw py::value_error(what + ": array is not writeable");
  return a;
}

// ---- params --------------------------------------------------------------------------------

bool is_int_like(py::handle h) {
  if (PyBool_Check(h.ptr()) || PyLong_Check(h.ptr())) return true;
  // numpy integers and anything else with __index__, but not floats
  return !PyFloat_Check(h.ptr()) && PyIndex_Check(h.ptr());
}

ParamValue param_value(const std::string& key, py::handle h) {
  if (py::isinstance<py::str>(h)) return h.cast<std::string>();
  if (py::isinstance<py::bytes>(h)) return std::string(py::reinterpret_borrow<py::bytes>(h));
  if (is_int_like(h)) return py::int_(py::reinterpret_borrow<py::object>(h)).cast<int64_t>();
  if (PyFloat_Check(h.ptr()) || py::isinstance(h, py::module_::import("numpy").attr("floating")))
    return py::float_(py::reinterpret_borrow<py::object>(h)).cast<double>();
  if (py::isinstance<py::array>(h) || py::isinstance<py::list>(h) ||
      py::isinstance<py::tuple>(h)) {
    py::object seq = py::isinstance<py::array>(h)
                         ? py::reinterpret_borrow<py::array>(h).attr("ravel")().attr("tolist")()
                         : py::reinterpret_borrow<py::object>(h);
    bool all_int = true;
    for (py::handle x : seq) all_int = all_int && is_int_like(x);
    if (all_int) {
      std::vector<int64_t> v;
      for (py::handle x : seq) v.push_back(py::int_(py::reinterpret_borrow<py::object>(x)).cast<int64_t>());
      return v;
    }
    std::vector<double> v;
    for (py::handle x : seq) v.push_back(py::float_(py::reinterpret_borrow<py::object>(x)).cast<double>());
    return v;
  }
  throw py::value_error("parameter '" + key + "' has an unsupported type " +
                        std::string(py::str(py::type::of(h).attr("__name__"))));
}

Params params_arg(const py::dict& d) {
  Params p;
  for (auto kv : d) {
    const std::string key = py::str(kv.first);
    if (kv.second.is_none()) continue;  // None = not given
    p.values[key] = param_value(key, kv.second);
  }
  return p;
}

// ---- Kernel --------------------------------------------------------------------------------

struct KernelHandle {
  std::string name;
  std::unique_ptr<Kernel> impl;
  std::vector<Shape> in_shapes, out_shapes;
  std::vector<DType> in_dtypes, out_dtypes;
  // The constants given at make time, kept alive: a None input at a constant position reads
  // them, so a kernel that did not take a copy of a constant never sees a null pointer.
  std::map<int, py::array> constants;

  // Whether input i may be given as None (absent optional input or constant at make time).
  bool may_be_none(size_t i) const {
    return in_dtypes[i] == DType::unknown || constants.count(static_cast<int>(i));
  }

  void run(const py::sequence& inputs, const py::sequence& outputs) const {
    if (inputs.size() != in_shapes.size())
      throw py::value_error(name + ": expected " + std::to_string(in_shapes.size()) +
                            " inputs, got " + std::to_string(inputs.size()));
    if (outputs.size() != out_shapes.size())
      throw py::value_error(name + ": expected " + std::to_string(out_shapes.size()) +
                            " outputs, got " + std::to_string(outputs.size()));
    std::vector<const void*> in(in_shapes.size(), nullptr);
    std::vector<void*> out(out_shapes.size(), nullptr);
    for (size_t i = 0; i < in.size(); ++i) {
      py::object h = inputs[i];
      if (h.is_none()) {
        if (!may_be_none(i)) throw py::value_error(name + ": input " + std::to_string(i) +
                                                   " is None but required");
        if (auto c = constants.find(static_cast<int>(i)); c != constants.end())
          in[i] = c->second.data();
        continue;
      }
      if (in_dtypes[i] == DType::unknown)
        throw py::value_error(name + ": input " + std::to_string(i) +
                              " was declared absent; pass None");
      py::array a = check_array(h, name + ": input " + std::to_string(i), in_shapes[i],
                                in_dtypes[i], false);
      in[i] = a.data();
    }
    for (size_t i = 0; i < out.size(); ++i) {
      py::array a = check_array(outputs[i], name + ": output " + std::to_string(i),
                                out_shapes[i], out_dtypes[i], true);
      out[i] = a.mutable_data();
    }
    // inputs/outputs (the caller's sequences) keep the arrays alive while the GIL is released.
    py::gil_scoped_release nogil;
    impl->run(in.data(), out.data());
  }
};

std::shared_ptr<KernelHandle> make_kernel_py(const std::string& name, const py::dict& params,
                                             const py::sequence& in_shapes,
                                             const py::sequence& in_dtypes,
                                             const py::sequence& out_shapes,
                                             const py::sequence& out_dtypes,
                                             const py::object& constants) {
  auto h = std::make_shared<KernelHandle>();
  h->name = name;
  KernelArgs args;
  args.params = params_arg(params);
  if (in_shapes.size() != in_dtypes.size())
    throw py::value_error(name + ": in_shapes and in_dtypes differ in length");
  if (out_shapes.size() != out_dtypes.size())
    throw py::value_error(name + ": out_shapes and out_dtypes differ in length");
  for (size_t i = 0; i < in_shapes.size(); ++i) {
    const std::string dn = dtype_arg(in_dtypes[i]);
    const DType dt = dn.empty() ? DType::unknown : dtype_from_name(dn);
    if (!dn.empty() && dt == DType::unknown)
      throw py::value_error(name + ": input " + std::to_string(i) + " has unsupported dtype " + dn);
    args.in_shapes.push_back(dt == DType::unknown ? Shape{}
                                                  : shape_arg(in_shapes[i], name + ": in_shapes"));
    args.in_dtypes.push_back(dt);
  }
  for (size_t i = 0; i < out_shapes.size(); ++i) {
    const std::string dn = dtype_arg(out_dtypes[i]);
    const DType dt = dtype_from_name(dn);
    if (dt == DType::unknown)
      throw py::value_error(name + ": output " + std::to_string(i) + " has unsupported dtype '" +
                            dn + "'");
    args.out_shapes.push_back(shape_arg(out_shapes[i], name + ": out_shapes"));
    args.out_dtypes.push_back(dt);
  }
  if (!constants.is_none()) {
    for (auto kv : py::reinterpret_borrow<py::dict>(constants)) {
      const int64_t pos = py::int_(py::reinterpret_borrow<py::object>(kv.first)).cast<int64_t>();
      if (pos < 0 || pos >= static_cast<int64_t>(args.in_shapes.size()))
        throw py::value_error(name + ": constant for unknown input " + std::to_string(pos));
      if (args.in_dtypes[pos] == DType::unknown)
        throw py::value_error(name + ": constant given for absent input " + std::to_string(pos));
      py::array a = check_array(kv.second, name + ": constant input " + std::to_string(pos),
                                args.in_shapes[pos], args.in_dtypes[pos], false);
      args.constants[static_cast<int>(pos)] = ConstTensor{a.data(), args.in_dtypes[pos],
                                                          args.in_shapes[pos]};
      h->constants[static_cast<int>(pos)] = a;
    }
  }
  h->in_shapes = args.in_shapes;
  h->in_dtypes = args.in_dtypes;
  h->out_shapes = args.out_shapes;
  h->out_dtypes = args.out_dtypes;
  {
    // Packing weights can take a while; h->constants holds the arrays alive.
    py::gil_scoped_release nogil;
    h->impl = ferry::make_kernel(name, args);
  }
  return h;
}

// ---- Plan ----------------------------------------------------------------------------------

struct ValueMeta {
  PlanValue::Kind kind;
  Shape shape;
  py::dtype dtype;
  DType dt;  // unknown for dtypes kernels cannot take (callbacks only)
  py::object const_view;  // constants: a read-only view handed to callbacks
};

struct RunContext {
  const std::vector<py::array>* inputs;
  const std::vector<py::array>* outputs;
};

class PyPlan {
 public:
  PyPlan(size_t arena_bytes, const py::sequence& values, const py::sequence& steps,
         const py::object& schedule, int inter_op_threads)
      : requested_arena_(arena_bytes) {
    // Waves of tasks; a task is a step index or a list of step indices run in order.
    std::vector<Plan::Wave> waves;
    if (!schedule.is_none())
      for (py::handle w : py::reinterpret_borrow<py::iterable>(schedule)) {
        waves.emplace_back();
        for (py::handle t : py::reinterpret_borrow<py::iterable>(w)) {
          waves.back().emplace_back();
          if (py::isinstance<py::int_>(t)) {
            waves.back().back().push_back(t.cast<int>());
          } else {
            for (py::handle x : py::reinterpret_borrow<py::iterable>(t))
              waves.back().back().push_back(x.cast<int>());
          }
        }
      }
    const bool parallel = !waves.empty() && inter_op_threads > 1;
    std::vector<PlanValue> pv;
    for (size_t i = 0; i < values.size(); ++i) pv.push_back(parse_value(i, values[i]));
    // Scratch for kernel outputs nobody reads (-1): placed after the arena, shared by all steps
    // when steps run one after another; one region per step when they may run concurrently.
    const size_t scratch_base = (arena_bytes + 63) / 64 * 64;
    size_t scratch_max = 0, scratch_sum = 0;
    std::vector<PlanStep> ps;
    for (size_t s = 0; s < steps.size(); ++s) {
      py::tuple t = py::reinterpret_borrow<py::tuple>(py::tuple(steps[s]));
      if (t.size() != 3) throw py::value_error("step " + std::to_string(s) + ": expected a 3-tuple");
      PlanStep st;
      for (py::handle x : py::reinterpret_borrow<py::iterable>(t[1]))
        st.inputs.push_back(x.cast<int>());
      for (py::handle x : py::reinterpret_borrow<py::iterable>(t[2]))
        st.outputs.push_back(x.cast<int>());
      for (int id : st.inputs)
        if (id < -1 || id >= static_cast<int>(pv.size()))
          throw py::value_error("step " + std::to_string(s) + ": unknown input value " +
                                std::to_string(id));
      for (int id : st.outputs)
        if (id < -1 || id >= static_cast<int>(pv.size()))
          throw py::value_error("step " + std::to_string(s) + ": unknown output value " +
                                std::to_string(id));
      if (py::isinstance<KernelHandle>(t[0])) {
        auto k = t[0].cast<std::shared_ptr<KernelHandle>>();
        kernels_.push_back(k);
        st.kernel = k->impl.get();
        size_t scratch = 0;
        check_kernel_step(s, *k, st, pv, scratch_base + (parallel ? scratch_sum : 0), scratch);
        scratch_max = std::max(scratch_max, scratch);
        scratch_sum += scratch;
      } else if (PyCallable_Check(t[0].ptr())) {
        const size_t idx = callbacks_.size();
        callbacks_.push_back(py::reinterpret_borrow<py::object>(t[0]));
        callback_steps_.push_back({st.inputs, st.outputs});
        for (int id : st.outputs)
          if (id >= 0) check_writable_value(s, id, pv);
        st.callback = [this, idx](void* const* ptrs, void* ctx) {
          call_back(idx, ptrs, static_cast<RunContext*>(ctx));
        };
      } else {
        throw py::value_error("step " + std::to_string(s) +
                              ": expected a Kernel or a callable, got " +
                              std::string(py::str(py::type::of(t[0]).attr("__name__"))));
      }
      ps.push_back(std::move(st));
    }
    const size_t scratch_bytes = parallel ? scratch_sum : scratch_max;
    const size_t total = scratch_bytes ? scratch_base + scratch_bytes : arena_bytes;
    try {
      plan_ = std::make_unique<Plan>(total, std::move(pv), std::move(ps), std::move(waves),
                                     inter_op_threads);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }

  void run(const py::sequence& inputs, const py::sequence& outputs, const py::object& cancel,
           const py::object& timeout_s, const py::object& step_ns) {
    RunControl control;
    py::array_t<int64_t> step_times;
    if (!step_ns.is_none()) {
      if (!py::isinstance<py::array_t<int64_t>>(step_ns))
        throw py::value_error("step_ns: expected an int64 numpy array");
      step_times = py::reinterpret_borrow<py::array_t<int64_t>>(step_ns);
      if (step_times.ndim() != 1 || static_cast<size_t>(step_times.size()) != num_steps() ||
          !(step_times.flags() & py::array::c_style) || !step_times.writeable())
        throw py::value_error("step_ns: expected a writable int64 array of num_steps elements");
      if (plan_->inter_op_threads() > 1)
        throw py::value_error("step_ns: per-step times are kept for sequential plans only");
      control.step_ns = step_times.mutable_data();
    }
    py::array_t<uint8_t> cancel_flag;
    if (!cancel.is_none()) {
      cancel_flag = py::array_t<uint8_t>::ensure(cancel);
      if (!cancel_flag || cancel_flag.size() < 1 || !py::isinstance<py::array_t<uint8_t>>(cancel))
        throw py::value_error("cancel: expected a uint8 numpy array of at least one element");
      control.cancel = cancel_flag.data();
    }
    if (!timeout_s.is_none()) {
      const double s = timeout_s.cast<double>();
      control.has_deadline = true;
      control.deadline = std::chrono::steady_clock::now() +
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(s > 0 ? s : 0.0));
    }
    std::vector<py::array> ins, outs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!py::isinstance<py::array>(inputs[i]))
        throw py::value_error("plan input " + std::to_string(i) + ": expected a numpy array");
      ins.push_back(py::reinterpret_borrow<py::array>(inputs[i]));
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (!py::isinstance<py::array>(outputs[i]))
        throw py::value_error("plan output " + std::to_string(i) + ": expected a numpy array");
      outs.push_back(py::reinterpret_borrow<py::array>(outputs[i]));
    }
    if (ins.size() != n_inputs_)
      throw py::value_error("plan expects " + std::to_string(n_inputs_) + " inputs, got " +
                            std::to_string(ins.size()));
    if (outs.size() != n_outputs_)
      throw py::value_error("plan expects " + std::to_string(n_outputs_) + " outputs, got " +
                            std::to_string(outs.size()));
    const auto& pv = plan_->values();
    for (size_t i = 0; i < pv.size(); ++i) {
      const ValueMeta& m = meta_[i];
      if (m.kind == PlanValue::Kind::input)
        check_value_array(ins[pv[i].index], "plan input " + std::to_string(pv[i].index), m,
                          false);
      else if (m.kind == PlanValue::Kind::output)
        check_value_array(outs[pv[i].index], "plan output " + std::to_string(pv[i].index), m,
                          true);
    }
    std::vector<const void*> in_ptrs;
    std::vector<void*> out_ptrs;
    for (auto& a : ins) in_ptrs.push_back(a.data());
    for (auto& a : outs) out_ptrs.push_back(a.mutable_data());
    RunContext ctx{&ins, &outs};
    const bool controlled = control.cancel || control.has_deadline || control.step_ns;
    py::gil_scoped_release nogil;
    plan_->run(in_ptrs.data(), in_ptrs.size(), out_ptrs.data(), out_ptrs.size(), &ctx,
               controlled ? &control : nullptr);
  }

  size_t num_steps() const { return plan_->num_steps(); }
  size_t num_waves() const { return plan_->num_waves(); }
  size_t max_wave() const { return plan_->max_wave(); }
  int inter_op_threads() const { return plan_->inter_op_threads(); }
  size_t arena_bytes() const { return requested_arena_; }
  py::dict arena_stats() const {
    py::dict d;
    d["pooled"] = plan_->pooled_arenas();
    d["leased"] = plan_->leased_arenas();
    d["peak"] = plan_->peak_arenas();
    return d;
  }
  size_t trim() const { return plan_->trim(); }

 private:
  PlanValue parse_value(size_t i, py::handle h) {
    py::tuple t = py::tuple(py::reinterpret_borrow<py::object>(h));
    const std::string where = "value " + std::to_string(i);
    if (t.size() != 5) throw py::value_error(where + ": expected (kind, index, shape, dtype, array)");
    const std::string kind = t[0].cast<std::string>();
    ValueMeta m;
    PlanValue v;
    v.index = t[1].is_none() ? 0 : t[1].cast<int64_t>();
    m.shape = shape_arg(t[2], where);
    const std::string dname = dtype_arg(t[3]);
    py::object arr = t[4];
    if (kind == "const") {
      if (!py::isinstance<py::array>(arr)) throw py::value_error(where + ": const without array");
      auto a = py::reinterpret_borrow<py::array>(arr);
      if (std::string(py::str(a.dtype().attr("name"))) != dname)
        throw py::value_error(where + ": const array has dtype " +
                              std::string(py::str(a.dtype())) + ", declared " + dname);
      m.dtype = a.dtype();
    } else {
      m.dtype = np_dtype(dname);
    }
    m.dt = dtype_of(m.dtype);
    v.nbytes = static_cast<size_t>(numel(m.shape)) * static_cast<size_t>(m.dtype.itemsize());
    if (kind == "input") {
      v.kind = PlanValue::Kind::input;
      n_inputs_ = std::max<size_t>(n_inputs_, v.index + 1);
    } else if (kind == "output") {
      v.kind = PlanValue::Kind::output;
      n_outputs_ = std::max<size_t>(n_outputs_, v.index + 1);
    } else if (kind == "arena") {
      v.kind = PlanValue::Kind::arena;
      if (v.index % std::max<int64_t>(1, m.dtype.alignment()) != 0)
        throw py::value_error(where + ": arena offset is not aligned for its dtype");
    } else if (kind == "alias") {
      v.kind = PlanValue::Kind::alias;
      // The fifth field of an alias is None or its byte offset in the value it views.
      if (!arr.is_none()) {
        v.offset = arr.cast<int64_t>();
        if (v.offset < 0 || v.offset % std::max<int64_t>(1, m.dtype.alignment()) != 0)
          throw py::value_error(where + ": alias offset is negative or not aligned for its dtype");
      }
    } else if (kind == "const") {
      v.kind = PlanValue::Kind::constant;
      auto a = py::reinterpret_borrow<py::array>(arr);
      if (shape_of(a) != m.shape)
        throw py::value_error(where + ": const array has shape " + shape_str(shape_of(a)) +
                              ", declared " + shape_str(m.shape));
      if (!has_flag(a, npy::NPY_ARRAY_C_CONTIGUOUS_) || !has_flag(a, npy::NPY_ARRAY_ALIGNED_))
        throw py::value_error(where + ": const array must be C-contiguous and aligned");
      v.data = a.data();
      py::array view = a[py::ellipsis()];  // a view, so that callbacks cannot write the const
      clear_writeable(view);
      m.const_view = view;
      keep_.push_back(a);
    } else {
      throw py::value_error(where + ": unknown kind '" + kind + "'");
    }
    if (v.index < 0) throw py::value_error(where + ": negative index");
    m.kind = v.kind;
    meta_.push_back(std::move(m));
    return v;
  }

  // Follows aliases to the value that owns the memory.
  static int root_of(int id, const std::vector<PlanValue>& pv) {
    for (size_t hops = 0; pv[id].kind == PlanValue::Kind::alias; ++hops) {
      if (hops > pv.size() || pv[id].index < 0 || pv[id].index >= static_cast<int64_t>(pv.size()))
        throw py::value_error("bad alias chain at value " + std::to_string(id));
      id = static_cast<int>(pv[id].index);
    }
    return id;
  }

  void check_writable_value(size_t s, int id, const std::vector<PlanValue>& pv) const {
    const auto k = pv[root_of(id, pv)].kind;
    if (k == PlanValue::Kind::input || k == PlanValue::Kind::constant)
      throw py::value_error("step " + std::to_string(s) + " writes value " + std::to_string(id) +
                            ", which is a plan input or constant");
  }

  void check_kernel_step(size_t s, const KernelHandle& k, PlanStep& st,
                         std::vector<PlanValue>& pv, size_t scratch_base, size_t& scratch) {
    const std::string where = "step " + std::to_string(s) + " (" + k.name + ")";
    if (st.inputs.size() != k.in_shapes.size() || st.outputs.size() != k.out_shapes.size())
      throw py::value_error(where + ": kernel takes " + std::to_string(k.in_shapes.size()) +
                            " inputs and " + std::to_string(k.out_shapes.size()) + " outputs");
    for (size_t j = 0; j < st.inputs.size(); ++j) {
      const int id = st.inputs[j];
      if (id < 0) {
        if (!k.may_be_none(j))
          throw py::value_error(where + ": input " + std::to_string(j) + " has no value");
        continue;
      }
      if (k.in_dtypes[j] == DType::unknown)
        throw py::value_error(where + ": input " + std::to_string(j) + " was declared absent");
      if (meta_[id].dt != k.in_dtypes[j] || meta_[id].shape != k.in_shapes[j])
        throw py::value_error(where + ": input " + std::to_string(j) + " is " +
                              std::string(py::str(meta_[id].dtype)) + " " +
                              shape_str(meta_[id].shape) + ", kernel wants " +
                              dtype_name(k.in_dtypes[j]) + " " + shape_str(k.in_shapes[j]));
    }
    for (size_t j = 0; j < st.outputs.size(); ++j) {
      int id = st.outputs[j];
      if (id < 0) {  // unread output: give it scratch memory
        PlanValue v;
        v.kind = PlanValue::Kind::arena;
        v.index = static_cast<int64_t>(scratch_base + scratch);
        v.nbytes = static_cast<size_t>(numel(k.out_shapes[j])) * dtype_size(k.out_dtypes[j]);
        scratch += (v.nbytes + 63) / 64 * 64;
        ValueMeta m{PlanValue::Kind::arena, k.out_shapes[j], np_dtype(dtype_name(k.out_dtypes[j])),
                    k.out_dtypes[j], py::none()};
        meta_.push_back(m);
        pv.push_back(v);
        st.outputs[j] = static_cast<int>(pv.size() - 1);
        continue;
      }
      check_writable_value(s, id, pv);
      if (meta_[id].dt != k.out_dtypes[j] || meta_[id].shape != k.out_shapes[j])
        throw py::value_error(where + ": output " + std::to_string(j) + " is " +
                              std::string(py::str(meta_[id].dtype)) + " " +
                              shape_str(meta_[id].shape) + ", kernel writes " +
                              dtype_name(k.out_dtypes[j]) + " " + shape_str(k.out_shapes[j]));
    }
  }

  void check_value_array(const py::array& a, const std::string& what, const ValueMeta& m,
                         bool writeable) const {
    if (!npy::get().PyArray_EquivTypes_(a.dtype().ptr(), m.dtype.ptr()))
      throw py::value_error(what + ": expected dtype " + std::string(py::str(m.dtype)) + ", got " +
                            std::string(py::str(a.dtype())));
    if (shape_of(a) != m.shape)
      throw py::value_error(what + ": expected shape " + shape_str(m.shape) + ", got " +
                            shape_str(shape_of(a)));
    if (!has_flag(a, npy::NPY_ARRAY_C_CONTIGUOUS_) || !has_flag(a, npy::NPY_ARRAY_ALIGNED_))
      throw py::value_error(what + ": array is not C-contiguous and aligned");
    if (writeable && !has_flag(a, npy::NPY_ARRAY_WRITEABLE_))
      throw py::value_error(what + ": array is not writeable");
  }

  // A numpy view of value `id` for a callback. Its base keeps the memory alive: the caller's
  // array for inputs/outputs, this plan (whose arena pool outlives every run) for the arena.
  py::object view(int id, void* const* ptrs, RunContext* ctx, bool writeable) {
    const ValueMeta& m = meta_[id];
    const int r = plan_->root(id);
    const auto& rv = plan_->values()[r];
    if (meta_[r].kind == PlanValue::Kind::constant && r == id) return m.const_view;
    py::object base;
    switch (rv.kind) {
      case PlanValue::Kind::input: base = (*ctx->inputs)[rv.index]; break;
      case PlanValue::Kind::output: base = (*ctx->outputs)[rv.index]; break;
      case PlanValue::Kind::constant: base = meta_[r].const_view; break;
      default: base = py::cast(this, py::return_value_policy::reference); break;
    }
    std::vector<py::ssize_t> shape(m.shape.begin(), m.shape.end());
    py::array a(m.dtype, shape, std::vector<py::ssize_t>{}, ptrs[id], base);
    if (!writeable) clear_writeable(a);
    return std::move(a);
  }

  void call_back(size_t idx, void* const* ptrs, RunContext* ctx) {
    py::gil_scoped_acquire gil;
    const auto& io = callback_steps_[idx];
    py::tuple args(io.first.size());
    for (size_t j = 0; j < io.first.size(); ++j) {
      const int id = io.first[j];
      args[j] = id < 0 ? py::none() : view(id, ptrs, ctx, false);
    }
    py::object result = callbacks_[idx](*args);
    const auto& outs = io.second;
    std::vector<py::object> results;
    if (py::isinstance<py::tuple>(result)) {  // several outputs; a list is not an array
      for (py::handle r : result) results.push_back(py::reinterpret_borrow<py::object>(r));
    } else {
      results.push_back(result);
    }
    const std::string name = py::str(py::getattr(callbacks_[idx], "__name__", py::str("callback")));
    if (results.size() != outs.size())
      throw py::value_error("callback " + name + " returned " + std::to_string(results.size()) +
                            " values, the plan expects " + std::to_string(outs.size()));
    for (size_t j = 0; j < outs.size(); ++j) {
      const int id = outs[j];
      if (id < 0) continue;
      const ValueMeta& m = meta_[id];
      if (!py::isinstance<py::array>(results[j]) &&
          !py::isinstance(results[j], py::module_::import("numpy").attr("generic")))
        throw py::type_error("callback " + name + " output " + std::to_string(j) +
                             " is a " + std::string(py::str(py::type::of(results[j]).attr("__name__"))) +
                             ", not a numpy array");
      py::array a = py::array::ensure(results[j]);
      if (!a) throw py::error_already_set();
      const std::string what = "callback " + name + " output " + std::to_string(j);
      if (!npy::get().PyArray_EquivTypes_(a.dtype().ptr(), m.dtype.ptr()))
        throw py::type_error(what + ": dtype " + std::string(py::str(a.dtype())) +
                             ", the plan expects " + std::string(py::str(m.dtype)));
      if (shape_of(a) != m.shape)
        throw py::value_error(what + ": shape " + shape_str(shape_of(a)) + ", the plan expects " +
                              shape_str(m.shape));
      const size_t nbytes = static_cast<size_t>(numel(m.shape)) * m.dtype.itemsize();
      if (a.data() == ptrs[id]) continue;  // returned the planned buffer itself
      if (has_flag(a, npy::NPY_ARRAY_C_CONTIGUOUS_)) {
        if (nbytes) std::memmove(ptrs[id], a.data(), nbytes);
      } else {
        py::module_::import("numpy").attr("copyto")(view(id, ptrs, ctx, true), a);
      }
    }
  }

  size_t requested_arena_;
  size_t n_inputs_ = 0, n_outputs_ = 0;
  std::vector<ValueMeta> meta_;
  std::vector<py::object> keep_;
  std::vector<std::shared_ptr<KernelHandle>> kernels_;
  std::vector<py::object> callbacks_;
  std::vector<std::pair<std::vector<int>, std::vector<int>>> callback_steps_;
  std::unique_ptr<Plan> plan_;
};

}  // namespace

PYBIND11_MODULE(ferry_kernels, m) {
  m.doc() = "ferry's C++ CPU kernels, thread pool and plan loop.";
  py::register_exception<KernelArgError>(m, "KernelArgError", PyExc_ValueError);

  m.def("isa", [] { return std::string(isa_name(active_isa())); },
        "The ISA in use: 'avx512', 'avx2' or 'scalar' (capped by FERRY_MAX_ISA).");
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (Isa i : ferry::supported_isas()) out.emplace_back(isa_name(i));
    return out;
  }, "ISAs this CPU can run, best first, ignoring FERRY_MAX_ISA.");
  m.def("set_num_threads", [](int n) {
    py::gil_scoped_release nogil;
    ferry::set_num_threads(n);
  }, py::arg("n"), "Resize the thread pool (n <= 0: one per hardware thread).");
  m.def("get_num_threads", &ferry::num_threads);
  m.attr("DEFAULT_SPIN_US") = ferry::kDefaultSpinUs;
  m.def("set_spin_us", &ferry::set_spin_us, py::arg("us"),
        "How long idle pool workers spin for the next job before sleeping (DEFAULT_SPIN_US).");
  m.def("get_spin_us", &ferry::spin_us);
  m.def("wake_workers", &ferry::wake_workers,
        "Wake sleeping pool workers (a run is about to start); no-op when they are awake.");
  m.def("kernel_names", &ferry::kernel_names);

  py::class_<KernelHandle, std::shared_ptr<KernelHandle>>(m, "Kernel")
      .def("run", &KernelHandle::run, py::arg("inputs"), py::arg("outputs"),
           "Run on C-contiguous arrays of the declared shapes and dtypes (GIL released).")
      .def_property_readonly("name", [](const KernelHandle& k) { return k.name; })
      .def("__repr__", [](const KernelHandle& k) { return "<ferry_kernels.Kernel " + k.name + ">"; });

  m.def("make_kernel", &make_kernel_py, py::arg("name"), py::arg("params"), py::arg("in_shapes"),
        py::arg("in_dtypes"), py::arg("out_shapes"), py::arg("out_dtypes"),
        py::arg("constants") = py::none(),
        "Make a kernel for fixed shapes and dtypes; constants (input position -> array) may be "
        "pre-packed. An absent optional input has dtype None.");

  py::class_<PyPlan>(m, "Plan")
      .def(py::init<size_t, const py::sequence&, const py::sequence&, const py::object&, int>(),
           py::arg("arena_bytes"), py::arg("values"), py::arg("steps"),
           py::arg("schedule") = py::none(), py::arg("inter_op_threads") = 1,
           "values: (kind, index, shape, dtype, extra) with kind input/output (index: "
           "position), arena (index: byte offset), const (extra: the array) or alias (index: "
           "the value viewed; extra: None or a byte offset into it). "
           "schedule: waves, each a list of tasks (a step index, or a list of step indices run "
           "in order; each step once); with inter_op_threads > 1 the tasks of a wave run "
           "concurrently and a wave starts when the previous one ends.")
      .def("run", &PyPlan::run, py::arg("inputs"), py::arg("outputs"),
           py::arg("cancel") = py::none(), py::arg("timeout_s") = py::none(),
           py::arg("step_ns") = py::none(),
           "Run every step (GIL released; callbacks take it). Safe from several threads. "
           "cancel: a uint8 array whose first element, once nonzero, stops the run before the "
           "next step; timeout_s: stop once that many seconds have passed. A stop raises "
           "RuntimeError. step_ns: an int64 array (num_steps) to which each step's run time "
           "in nanoseconds is added (sequential plans).")
      .def_property_readonly("num_steps", &PyPlan::num_steps)
      .def_property_readonly("num_waves", &PyPlan::num_waves,
                             "Waves run (num_steps when sequential).")
      .def_property_readonly("max_wave", &PyPlan::max_wave, "Tasks in the widest wave.")
      .def_property_readonly("inter_op_threads", &PyPlan::inter_op_threads,
                             "Threads a wave may use (1 when sequential).")
      .def_property_readonly("arena_bytes", &PyPlan::arena_bytes)
      .def("arena_stats", &PyPlan::arena_stats,
           "Arenas pooled for reuse, leased by running calls, and the most leased at once.")
      .def("trim", &PyPlan::trim, "Free the pooled (idle) arenas; returns the bytes freed.");
}
