// The kernel interface. Shapes and dtypes are fixed when a kernel is made, so running it takes
// only data pointers: the plan loop's per-node cost is one virtual call.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "ferry/tensor.h"

namespace ferry {

using ParamValue = std::variant<int64_t, double, std::string, std::vector<int64_t>,
                                std::vector<double>>;

// Fully resolved parameters handed over from Python (no ONNX defaults applied in C++).
class Params {
 public:
  std::map<std::string, ParamValue> values;

  bool has(const std::string& k) const { return values.count(k) != 0; }
  int64_t get_int(const std::string& k) const;
  int64_t get_int(const std::string& k, int64_t dflt) const;
  double get_float(const std::string& k) const;
  double get_float(const std::string& k, double dflt) const;
  const std::string& get_str(const std::string& k) const;
  std::vector<int64_t> get_ints(const std::string& k) const;
  std::vector<double> get_floats(const std::string& k) const;
};

struct KernelArgs {
  Params params;
  std::vector<Shape> in_shapes;   // an absent optional input has an empty shape and dtype unknown
  std::vector<DType> in_dtypes;
  std::vector<Shape> out_shapes;
  std::vector<DType> out_dtypes;
  std::map<int, ConstTensor> constants;  // input position -> constant value (pack at make time)
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // in[i] may be nullptr for an absent optional input or one taken from constants at make time.
  // Must be safe to call concurrently from several threads (no mutable state, or guarded).
  virtual void run(const void* const* in, void* const* out) const = 0;
};

// Thrown by factories for arguments they cannot take; surfaces in Python as ValueError.
struct KernelArgError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

using KernelFactory = std::function<std::unique_ptr<Kernel>(const KernelArgs&)>;

void register_kernel(const std::string& name, KernelFactory factory);
std::unique_ptr<Kernel> make_kernel(const std::string& name, const KernelArgs& args);
std::vector<std::string> kernel_names();

struct KernelRegistrar {
  KernelRegistrar(const char* name, KernelFactory factory) { register_kernel(name, std::move(factory)); }
};

}  // namespace ferry

#define FERRY_CONCAT_INNER(a, b) a##b
#define FERRY_CONCAT(a, b) FERRY_CONCAT_INNER(a, b)
// Registers a kernel factory under `name` from any .cpp file (no central table to edit).
#define FERRY_REGISTER_KERNEL(name, factory) \
  static ::ferry::KernelRegistrar FERRY_CONCAT(ferry_kernel_registrar_, __COUNTER__)(name, factory)
