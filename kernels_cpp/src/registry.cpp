// The kernel registry, Params accessors and dtype names.
#include <algorithm>
#include <mutex>

#include "ferry/kernel.h"
#include "ferry/tensor.h"

namespace ferry {

// ---- dtypes ------------------------------------------------------------------------------

namespace {
struct DTypeInfo {
  DType type;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::f32, "float32", 4},  {DType::f64, "float64", 8},   {DType::f16, "float16", 2},
    {DType::bf16, "bfloat16", 2}, {DType::i8, "int8", 1},      {DType::i16, "int16", 2},
    {DType::i32, "int32", 4},    {DType::i64, "int64", 8},     {DType::u8, "uint8", 1},
    {DType::u16, "uint16", 2},   {DType::u32, "uint32", 4},    {DType::u64, "uint64", 8},
    {DType::boolean, "bool", 1},
};
}  // namespace

DType dtype_from_name(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.type;
  return DType::unknown;
}

const char* dtype_name(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.name;
  return "unknown";
}

size_t dtype_size(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.size;
  return 0;
}

// ---- Params ------------------------------------------------------------------------------

namespace {
const ParamValue& find(const Params& p, const std::string& k) {
  auto it = p.values.find(k);
  if (it == p.values.end()) throw KernelArgError("missing parameter '" + k + "'");
  return it->second;
}
[[noreturn]] void wrong_type(const std::string& k, const char* want) {
  throw KernelArgError("parameter '" + k + "' is not " + want);
}
}  // namespace

int64_t Params::get_int(const std::string& k) const {
  const ParamValue& v = find(*this, k);
  if (auto p = std::get_if<int64_t>(&v)) return *p;
  wrong_type(k, "an int");
}

int64_t Params::get_int(const std::string& k, int64_t dflt) const {
  return has(k) ? get_int(k) : dflt;
}

double Params::get_float(const std::string& k) const {
  const ParamValue& v = find(*this, k);
  if (auto p = std::get_if<double>(&v)) return *p;
  if (auto p = std::get_if<int64_t>(&v)) return static_cast<double>(*p);
  wrong_type(k, "a float");
}

double Params::get_float(const std::string& k, double dflt) const {
  return has(k) ? get_float(k) : dflt;
}

const std::string& Params::get_str(const std::string& k) const {
  const ParamValue& v = find(*this, k);
  if (auto p = std::get_if<std::string>(&v)) return *p;
  wrong_type(k, "a string");
}

std::vector<int64_t> Params::get_ints(const std::string& k) const {
  const ParamValue& v = find(*this, k);
  if (auto p = std::get_if<std::vector<int64_t>>(&v)) return *p;
  // An empty Python list arrives as a list of doubles or ints, either is fine.
  if (auto p = std::get_if<std::vector<double>>(&v); p && p->empty()) return {};
  wrong_type(k, "a list of ints");
}

std::vector<double> Params::get_floats(const std::string& k) const {
  const ParamValue& v = find(*this, k);
  if (auto p = std::get_if<std::vector<double>>(&v)) return *p;
  if (auto p = std::get_if<std::vector<int64_t>>(&v)) return std::vector<double>(p->begin(), p->end());
  wrong_type(k, "a list of floats");
}

// ---- registry ----------------------------------------------------------------------------

namespace {
// Function-local statics: registrars in other translation units run during static
// initialisation, in an order we do not control.
std::map<std::string, KernelFactory>& registry() {
  static std::map<std::string, KernelFactory> r;
  return r;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

void register_kernel(const std::string& name, KernelFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto& r = registry();
  if (r.count(name)) throw std::logic_error("kernel '" + name + "' registered twice");
  r.emplace(name, std::move(factory));
}

std::unique_ptr<Kernel> make_kernel(const std::string& name, const KernelArgs& args) {
  KernelFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(name);
    if (it == registry().end()) throw KernelArgError("no kernel named '" + name + "'");
    factory = it->second;
  }
  auto k = factory(args);
  if (!k) throw KernelArgError("kernel '" + name + "' does not take these arguments");
  return k;
}

std::vector<std::string> kernel_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

}  // namespace ferry
