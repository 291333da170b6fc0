// The one pybind11 file: ferry_kernels. Kernels are made from fully resolved parameters and
// run on numpy arrays without the GIL; a Plan runs a whole CPU partition in one call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ferry/cpu_features.h"
#include "ferry/kernel.h"
#include "ferry/threadpool.h"

namespace py = pybind11;
using namespace ferry;

namespace {

// ---- dtypes --------------------------------------------------------------------------------
DType dtype_of(const py::dtype& dt) {
  char kind = dt.kind();
  auto size = dt.itemsize();
  if (kind == 'f') return size == 4 ? DType::f32 : size == 8 ? DType::f64 : size == 2 ? DType::f16
                                                                                   : DType::unknown;
  if (kind == 'i') return size == 1 ? DType::i8 : size == 2 ? DType::i16 : size == 4 ? DType::i32
                                                                                    : DType::i64;
  if (kind == 'u') return size == 1 ? DType::u8 : size == 2 ? DType::u16 : size == 4 ? DType::u32
                                                                                    : DType::u64;
  if (kind == 'b') return DType::boolean;
  std::string name = py::str(dt.attr("name"));
  if (name == "bfloat16") return DType::bf16;
  // Other exotic types (float8, int4 containers...) travel as raw bytes of their width:
  // only byte-moving kernels (Copy, Transpose, Gather...) accept them.
  return size == 1 ? DType::u8 : size == 2 ? DType::u16 : size == 4 ? DType::u32
         : size == 8 ? DType::u64 : DType::unknown;
}

DType dtype_from_obj(const py::handle& h) {
  if (h.is_none()) return DType::unknown;
  return dtype_of(py::dtype::from_args(py::reinterpret_borrow<py::object>(h)));
}

Shape shape_from_obj(const py::handle& h) {
  Shape s;
  if (h.is_none()) return s;
  for (auto d : h) s.push_back(py::cast<int64_t>(d));
  return s;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

ParamValue param_from_obj(const std::string& key, const py::handle& v) {
  if (py::isinstance<py::bool_>(v)) return static_cast<int64_t>(py::cast<bool>(v));
  if (py::isinstance<py::int_>(v) || py::isinstance(v, py::module_::import("numpy").attr("integer")))
    return py::cast<int64_t>(v);
  if (py::isinstance<py::float_>(v) || py::isinstance(v, py::module_::import("numpy").attr("floating")))
    return py::cast<double>(v);
  if (py::isinstance<py::str>(v)) return py::cast<std::string>(v);
  if (py::isinstance<py::sequence>(v) || py::isinstance<py::array>(v)) {
    bool all_int = true;
    std::vector<py::object> items;
    for (auto item : v) {
      items.push_back(py::reinterpret_borrow<py::object>(item));
      bool is_int = py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item) ||
                    py::isinstance(item, py::module_::import("numpy").attr("integer"));
      all_int = all_int && is_int;
    }
    if (all_int) {
      std::vector<int64_t> out;
      for (auto& i : items) out.push_back(py::cast<int64_t>(i));
      return out;
    }
    std::vector<double> out;
    for (auto& i : items) out.push_back(py::cast<double>(i));
    return out;
  }
  throw py::value_error("parameter '" + key + "' has an unsupported type");
}

// ---- kernels -------------------------------------------------------------------------------
struct PyKernel {
  std::string name;
  std::shared_ptr<Kernel> kernel;
  std::vector<Shape> in_shapes, out_shapes;
  std::vector<DType> in_dtypes, out_dtypes;
  std::vector<bool> in_constant;
};

void check_array(const py::handle& obj, const Shape& shape, DType dtype, bool writeable,
                 const std::string& what) {
  if (!py::isinstance<py::array>(obj)) throw py::value_error(what + " must be a numpy array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (dtype_of(arr.dtype()) != dtype)
    throw py::value_error(what + ": dtype " + std::string(py::str(arr.dtype())) + ", expected " +
                          dtype_name(dtype));
  Shape got(arr.shape(), arr.shape() + arr.ndim());
  if (got != shape)
    throw py::value_error(what + ": shape " + shape_str(got) + ", expected " + shape_str(shape));
  if (!(arr.flags() & py::array::c_style)) throw py::value_error(what + " is not C-contiguous");
  if (writeable && !arr.writeable()) throw py::value_error(what + " is read-only");
}

std::shared_ptr<PyKernel> py_make_kernel(const std::string& name, const py::dict& params,
                                         const py::list& in_shapes, const py::list& in_dtypes,
                                         const py::list& out_shapes, const py::list& out_dtypes,
                                         const py::dict& constants) {
  KernelArgs args;
  for (auto kv : params) {
    std::string key = py::cast<std::string>(kv.first);
    args.params.values[key] = param_from_obj(key, kv.second);
  }
  if (in_shapes.size() != in_dtypes.size() || out_shapes.size() != out_dtypes.size())
    throw py::value_error("shapes and dtypes lists differ in length");
  for (size_t i = 0; i < in_shapes.size(); ++i) {
    args.in_shapes.push_back(shape_from_obj(in_shapes[i]));
    args.in_dtypes.push_back(dtype_from_obj(in_dtypes[i]));
  }
  for (size_t i = 0; i < out_shapes.size(); ++i) {
    args.out_shapes.push_back(shape_from_obj(out_shapes[i]));
    args.out_dtypes.push_back(dtype_from_obj(out_dtypes[i]));
  }
  std::vector<py::array> keep;
  auto k = std::make_shared<PyKernel>();
  k->in_constant.assign(args.in_shapes.size(), false);
  for (auto kv : constants) {
    int pos = py::cast<int>(kv.first);
    if (pos < 0 || pos >= static_cast<int>(args.in_shapes.size()))
      throw py::value_error("constant position out of range");
    auto arr = py::array::ensure(kv.second, py::array::c_style);
    if (!arr) throw py::value_error("constant must be an array");
    check_array(arr, args.in_shapes[pos], args.in_dtypes[pos], false,
                "constant input " + std::to_string(pos));
    keep.push_back(arr);
    args.constants[pos] = ConstTensor{arr.data(), args.in_dtypes[pos], args.in_shapes[pos]};
    k->in_constant[pos] = true;
  }
  try {
    k->kernel = std::shared_ptr<Kernel>(make_kernel(name, args).release());
  } catch (const KernelArgError& e) {
    throw py::value_error(name + ": " + e.what());
  }
  k->name = name;
  k->in_shapes = args.in_shapes;
  k->out_shapes = args.out_shapes;
  k->in_dtypes = args.in_dtypes;
  k->out_dtypes = args.out_dtypes;
  return k;
}

void py_kernel_run(PyKernel& k, const py::list& inputs, const py::list& outputs) {
  if (inputs.size() != k.in_shapes.size() || outputs.size() != k.out_shapes.size())
    throw py::value_error(k.name + ": expected " + std::to_string(k.in_shapes.size()) +
                          " inputs and " + std::to_string(k.out_shapes.size()) + " outputs");
  std::vector<const void*> in(inputs.size(), nullptr);
  std::vector<void*> out(outputs.size(), nullptr);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].is_none()) {
      if (!k.in_constant[i] && k.in_dtypes[i] != DType::unknown)
        throw py::value_error(k.name + ": input " + std::to_string(i) + " is missing");
      continue;
    }
    check_array(inputs[i], k.in_shapes[i], k.in_dtypes[i], false,
                k.name + " input " + std::to_string(i));
    in[i] = py::reinterpret_borrow<py::array>(inputs[i]).data();
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    check_array(outputs[i], k.out_shapes[i], k.out_dtypes[i], true,
                k.name + " output " + std::to_string(i));
    out[i] = py::reinterpret_borrow<py::array>(outputs[i]).mutable_data();
  }
  py::gil_scoped_release nogil;
  k.kernel->run(in.data(), out.data());
}

// ---- the plan ------------------------------------------------------------------------------
enum class ValueKind { input, output, arena, constant, alias };

struct PlanValue {
  ValueKind kind;
  int64_t index = 0;  // input/output position, arena offset, or alias target id
  Shape shape;
  DType dtype;
  py::dtype np_dtype;
  size_t nbytes = 0;
  py::array array;  // constants
};

struct PlanStep {
  std::shared_ptr<PyKernel> kernel;  // or
  py::object callback;
  std::vector<int> ins, outs;
};

void* aligned_alloc64(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, n ? n : 64) != 0) throw std::bad_alloc();
  return p;
}

class Plan {
 public:
  Plan(int64_t arena_bytes, const py::list& values, const py::list& steps)
      : arena_bytes_(static_cast<size_t>(arena_bytes)) {
    for (auto v : values) {
      auto t = py::reinterpret_borrow<py::tuple>(v);
      if (t.size() != 5) throw py::value_error("a plan value is (kind, index, shape, dtype, array)");
      PlanValue pv;
      std::string kind = py::cast<std::string>(t[0]);
      pv.index = py::cast<int64_t>(t[1]);
      pv.shape = shape_from_obj(t[2]);
      pv.np_dtype = py::dtype::from_args(py::reinterpret_borrow<py::object>(t[3]));
      pv.dtype = dtype_of(pv.np_dtype);
      pv.nbytes = static_cast<size_t>(numel(pv.shape)) * pv.np_dtype.itemsize();
      if (kind == "input") {
        pv.kind = ValueKind::input;
        num_inputs_ = std::max<int64_t>(num_inputs_, pv.index + 1);
      } else if (kind == "output") {
        pv.kind = ValueKind::output;
        num_outputs_ = std::max<int64_t>(num_outputs_, pv.index + 1);
      } else if (kind == "arena") {
        pv.kind = ValueKind::arena;
        if (pv.index < 0 || pv.index + pv.nbytes > arena_bytes_ || pv.index % 64)
          throw py::value_error("arena value outside the arena or misaligned");
      } else if (kind == "const") {
        pv.kind = ValueKind::constant;
        pv.array = py::array::ensure(t[4], py::array::c_style);
        if (!pv.array || static_cast<size_t>(pv.array.nbytes()) != pv.nbytes)
          throw py::value_error("constant value does not match its shape and dtype");
      } else if (kind == "alias") {
        pv.kind = ValueKind::alias;
      } else {
        throw py::value_error("unknown plan value kind '" + kind + "'");
      }
      values_.push_back(std::move(pv));
    }
    for (auto& pv : values_) {
      if (pv.kind != ValueKind::alias) continue;
      if (pv.index < 0 || pv.index >= static_cast<int64_t>(values_.size()))
        throw py::value_error("alias target out of range");
      if (values_[pv.index].nbytes != pv.nbytes)
        throw py::value_error("alias and target differ in size");
    }
    for (auto s : steps) {
      auto t = py::reinterpret_borrow<py::tuple>(s);
      if (t.size() != 3) throw py::value_error("a plan step is (kernel, inputs, outputs)");
      PlanStep st;
      if (py::isinstance<PyKernel>(t[0])) {
        st.kernel = py::cast<std::shared_ptr<PyKernel>>(t[0]);
      } else if (PyCallable_Check(t[0].ptr())) {
        st.callback = py::reinterpret_borrow<py::object>(t[0]);
      } else {
        throw py::value_error("a plan step needs a Kernel or a callable");
      }
      for (auto i : t[1]) st.ins.push_back(py::cast<int>(i));
      for (auto o : t[2]) st.outs.push_back(py::cast<int>(o));
      for (int id : st.ins)
        if (id < -1 || id >= static_cast<int>(values_.size())) throw py::value_error("bad value id");
      for (int id : st.outs)
        if (id < -1 || id >= static_cast<int>(values_.size())) throw py::value_error("bad value id");
      if (st.kernel) check_kernel_step(st);
      steps_.push_back(std::move(st));
    }
  }

  ~Plan() {
    for (void* p : free_arenas_) std::free(p);
  }

  void run(const py::list& inputs, const py::list& outputs) {
    if (static_cast<int64_t>(inputs.size()) != num_inputs_ ||
        static_cast<int64_t>(outputs.size()) != num_outputs_)
      throw py::value_error("plan expects " + std::to_string(num_inputs_) + " inputs and " +
                            std::to_string(num_outputs_) + " outputs");
    std::vector<void*> ptr(values_.size(), nullptr);
    for (size_t i = 0; i < values_.size(); ++i) {
      auto& v = values_[i];
      if (v.kind == ValueKind::input) {
        check_array(inputs[v.index], v.shape, v.dtype, false,
                    "plan input " + std::to_string(v.index));
        ptr[i] = const_cast<void*>(py::reinterpret_borrow<py::array>(inputs[v.index]).data());
      } else if (v.kind == ValueKind::output) {
        check_array(outputs[v.index], v.shape, v.dtype, true,
                    "plan output " + std::to_string(v.index));
        ptr[i] = py::reinterpret_borrow<py::array>(outputs[v.index]).mutable_data();
      } else if (v.kind == ValueKind::constant) {
        ptr[i] = const_cast<void*>(v.array.data());
      }
    }
    void* arena = acquire_arena();
    for (size_t i = 0; i < values_.size(); ++i)
      if (values_[i].kind == ValueKind::arena)
        ptr[i] = static_cast<char*>(arena) + values_[i].index;
    for (size_t pass = 0; pass < values_.size(); ++pass) {  // alias chains, any order
      bool pending = false;
      for (size_t i = 0; i < values_.size(); ++i) {
        if (values_[i].kind != ValueKind::alias || ptr[i]) continue;
        ptr[i] = ptr[values_[i].index];
        pending = pending || !ptr[i];
      }
      if (!pending) break;
    }
    try {
      py::gil_scoped_release nogil;
      std::vector<const void*> in;
      std::vector<void*> out;
      for (auto& st : steps_) {
        if (st.kernel) {
          in.assign(st.ins.size(), nullptr);
          out.assign(st.outs.size(), nullptr);
          for (size_t j = 0; j < st.ins.size(); ++j) in[j] = st.ins[j] < 0 ? nullptr : ptr[st.ins[j]];
          for (size_t j = 0; j < st.outs.size(); ++j) out[j] = st.outs[j] < 0 ? nullptr : ptr[st.outs[j]];
          st.kernel->kernel->run(in.data(), out.data());
        } else {
          py::gil_scoped_acquire gil;
          run_callback(st, ptr);
        }
      }
    } catch (...) {
      release_arena(arena);
      throw;
    }
    release_arena(arena);
  }

  size_t num_steps() const { return steps_.size(); }
  size_t arena_bytes() const { return arena_bytes_; }

 private:
  void check_kernel_step(const PlanStep& st) {
    const PyKernel& k = *st.kernel;
    if (st.ins.size() != k.in_shapes.size() || st.outs.size() != k.out_shapes.size())
      throw py::value_error("step for kernel " + k.name + " has the wrong number of values");
    for (size_t j = 0; j < st.ins.size(); ++j) {
      if (st.ins[j] < 0) {
        if (!k.in_constant[j] && k.in_dtypes[j] != DType::unknown)
          throw py::value_error("kernel " + k.name + ": input " + std::to_string(j) + " missing");
        continue;
      }
      auto& v = values_[st.ins[j]];
      if (v.shape != k.in_shapes[j] || v.dtype != k.in_dtypes[j])
        throw py::value_error("kernel " + k.name + ": input " + std::to_string(j) +
                              " does not match its planned value");
    }
    for (size_t j = 0; j < st.outs.size(); ++j) {
      if (st.outs[j] < 0) throw py::value_error("kernel " + k.name + ": every output needs memory");
      auto& v = values_[st.outs[j]];
      if (v.shape != k.out_shapes[j] || v.dtype != k.out_dtypes[j])
        throw py::value_error("kernel " + k.name + ": output " + std::to_string(j) +
                              " does not match its planned value");
    }
  }

  void run_callback(const PlanStep& st, const std::vector<void*>& ptr) {
    py::list args;
    // views over plan memory: the capsule marks them as not owning their data
    static int owner_tag = 0;
    py::capsule no_owner(static_cast<void*>(&owner_tag), [](void*) {});
    for (int id : st.ins) {
      if (id < 0) {
        args.append(py::none());
        continue;
      }
      auto& v = values_[id];
      py::array view(v.np_dtype, std::vector<py::ssize_t>(v.shape.begin(), v.shape.end()),
                     ptr[id], no_owner);
      // inputs are read-only for callbacks: a numpy op writing its input would corrupt the arena
      py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
      args.append(view);
    }
    py::object result = st.callback(*args);
    std::vector<py::object> results;
    if (py::isinstance<py::tuple>(result) || py::isinstance<py::list>(result)) {
      for (auto r : result) results.push_back(py::reinterpret_borrow<py::object>(r));
    } else {
      results.push_back(result);
    }
    if (results.size() != st.outs.size())
      throw std::runtime_error("callback returned " + std::to_string(results.size()) +
                               " values, the plan expects " + std::to_string(st.outs.size()));
    for (size_t j = 0; j < st.outs.size(); ++j) {
      auto& v = values_[st.outs[j]];
      py::array arr = py::array::ensure(results[j]);
      if (!arr) throw std::runtime_error("callback result is not an array");
      Shape got(arr.shape(), arr.shape() + arr.ndim());
      if (got != v.shape || (!arr.dtype().is(v.np_dtype) && !arr.dtype().equal(v.np_dtype)))
        throw std::runtime_error("callback result " + std::to_string(j) + " has shape " +
                                 shape_str(got) + " dtype " + std::string(py::str(arr.dtype())) +
                                 "; the plan expects " + shape_str(v.shape) + " " +
                                 std::string(py::str(v.np_dtype)));
      if (!(arr.flags() & py::array::c_style))
        arr = py::array::ensure(py::module_::import("numpy").attr("ascontiguousarray")(arr));
      if (v.nbytes) std::memcpy(ptr[st.outs[j]], arr.data(), v.nbytes);
    }
  }

  void* acquire_arena() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!free_arenas_.empty()) {
        void* p = free_arenas_.back();
        free_arenas_.pop_back();
        return p;
      }
    }
    return aligned_alloc64(arena_bytes_);
  }
  void release_arena(void* p) {
    std::lock_guard<std::mutex> lk(mu_);
    if (free_arenas_.size() < 8) {
      free_arenas_.push_back(p);
    } else {
      std::free(p);
    }
  }

  size_t arena_bytes_;
  int64_t num_inputs_ = 0, num_outputs_ = 0;
  std::vector<PlanValue> values_;
  std::vector<PlanStep> steps_;
  std::mutex mu_;
  std::vector<void*> free_arenas_;
};

}  // namespace

PYBIND11_MODULE(ferry_kernels, m) {
  m.doc() = "ferry's C++ kernels and plan loop (see kernels_cpp/README.md)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const KernelArgError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  m.def("isa", [] { return std::string(isa_name(active_isa())); },
        "the instruction set the kernels use (after FERRY_MAX_ISA)");
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (Isa i : supported_isas()) out.push_back(isa_name(i));
    return out;
  }, "what this CPU can run, best first, ignoring FERRY_MAX_ISA");
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &num_threads);
  m.def("kernel_names", &kernel_names);

  py::class_<PyKernel, std::shared_ptr<PyKernel>>(m, "Kernel")
      .def_readonly("name", &PyKernel::name)
      .def("run", &py_kernel_run, py::arg("inputs"), py::arg("outputs"));
  m.def("make_kernel", &py_make_kernel, py::arg("name"), py::arg("params"),
        py::arg("in_shapes"), py::arg("in_dtypes"), py::arg("out_shapes"),
        py::arg("out_dtypes"), py::arg("constants") = py::dict());

  py::class_<Plan>(m, "Plan")
      .def(py::init<int64_t, const py::list&, const py::list&>(), py::arg("arena_bytes"),
           py::arg("values"), py::arg("steps"))
      .def("run", &Plan::run, py::arg("inputs"), py::arg("outputs"))
      .def_property_readonly("num_steps", &Plan::num_steps)
      .def_property_readonly("arena_bytes", &Plan::arena_bytes);
}
