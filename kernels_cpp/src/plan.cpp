// The plan loop. Per step it costs one pointer gather and one virtual call.
#include "ferry/plan.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace ferry {

namespace {
constexpr size_t kAlign = 64;
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

Plan::Plan(size_t arena_bytes, std::vector<PlanValue> values, std::vector<PlanStep> steps)
    : arena_bytes_(arena_bytes), values_(std::move(values)), steps_(std::move(steps)) {
  const int n = static_cast<int>(values_.size());
  roots_.resize(n);
  for (int i = 0; i < n; ++i) {
    int r = i, hops = 0;
    while (values_[r].kind == PlanValue::Kind::alias) {
      const int64_t t = values_[r].index;
      if (t < 0 || t >= n)
        throw std::invalid_argument("value " + std::to_string(r) + " aliases unknown value " +
                                    std::to_string(t));
      if (++hops > n) throw std::invalid_argument("alias cycle at value " + std::to_string(i));
      r = static_cast<int>(t);
    }
    roots_[i] = r;
    if (values_[i].nbytes > values_[r].nbytes)
      throw std::invalid_argument("alias value " + std::to_string(i) + " is larger than value " +
                                  std::to_string(r) + " it views");
    const PlanValue& v = values_[i];
    if (v.kind == PlanValue::Kind::arena && (v.index < 0 || v.index + v.nbytes > arena_bytes_))
      throw std::invalid_argument("arena value " + std::to_string(i) + " does not fit the arena");
    if ((v.kind == PlanValue::Kind::input || v.kind == PlanValue::Kind::output) && v.index < 0)
      throw std::invalid_argument("value " + std::to_string(i) + " has a negative position");
  }
  for (size_t s = 0; s < steps_.size(); ++s) {
    const PlanStep& st = steps_[s];
    if (!st.kernel && !st.callback)
      throw std::invalid_argument("step " + std::to_string(s) + " has no kernel or callback");
    for (int id : st.inputs)
      if (id < -1 || id >= n)
        throw std::invalid_argument("step " + std::to_string(s) + " reads unknown value " +
                                    std::to_string(id));
    for (int id : st.outputs)
      if (id < -1 || id >= n || (id == -1 && st.kernel))
        throw std::invalid_argument("step " + std::to_string(s) + " writes unknown value " +
                                    std::to_string(id));
    max_args_ = std::max(max_args_, std::max(st.inputs.size(), st.outputs.size()));
  }
}

Plan::~Plan() {
  for (void* p : pool_) std::free(p);
}

void* Plan::acquire_arena() const {
  {
    std::lock_guard<std::mutex> lk(pool_mu_);
    peak_ = std::max(peak_, ++leased_);
    if (!pool_.empty()) {
      void* p = pool_.back();
      pool_.pop_back();
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlign, round_up(arena_bytes_ == 0 ? 1 : arena_bytes_));
  if (!p) {
    std::lock_guard<std::mutex> lk(pool_mu_);
    --leased_;
    throw std::bad_alloc();
  }
  return p;
}

void Plan::release_arena(void* p) const {
  std::lock_guard<std::mutex> lk(pool_mu_);
  --leased_;
  pool_.push_back(p);
}

size_t Plan::pooled_arenas() const {
  std::lock_guard<std::mutex> lk(pool_mu_);
  return pool_.size();
}

size_t Plan::leased_arenas() const {
  std::lock_guard<std::mutex> lk(pool_mu_);
  return leased_;
}

size_t Plan::peak_arenas() const {
  std::lock_guard<std::mutex> lk(pool_mu_);
  return peak_;
}

size_t Plan::trim() const {
  std::vector<void*> idle;
  {
    std::lock_guard<std::mutex> lk(pool_mu_);
    idle.swap(pool_);
  }
  for (void* p : idle) std::free(p);
  return idle.size() * round_up(arena_bytes_ == 0 ? 1 : arena_bytes_);
}

void Plan::run(const void* const* inputs, size_t n_inputs, void* const* outputs,
               size_t n_outputs, void* run_context) const {
  struct Lease {
    const Plan* plan;
    void* mem;
    ~Lease() { plan->release_arena(mem); }
  } lease{this, acquire_arena()};
  char* arena = static_cast<char*>(lease.mem);

  const size_t n = values_.size();
  std::vector<void*> ptr(n, nullptr);
  for (size_t i = 0; i < n; ++i) {
    const PlanValue& v = values_[i];
    switch (v.kind) {
      case PlanValue::Kind::input:
        if (static_cast<size_t>(v.index) >= n_inputs) throw std::invalid_argument("missing input");
        ptr[i] = const_cast<void*>(inputs[v.index]);
        break;
      case PlanValue::Kind::output:
        if (static_cast<size_t>(v.index) >= n_outputs)
          throw std::invalid_argument("missing output");
        ptr[i] = outputs[v.index];
        break;
      case PlanValue::Kind::arena: ptr[i] = arena + v.index; break;
      case PlanValue::Kind::constant: ptr[i] = const_cast<void*>(v.data); break;
      case PlanValue::Kind::alias: break;
    }
  }
  for (size_t i = 0; i < n; ++i)
    if (values_[i].kind == PlanValue::Kind::alias) ptr[i] = ptr[roots_[i]];

  std::vector<const void*> in(max_args_);
  std::vector<void*> out(max_args_);
  for (const PlanStep& st : steps_) {
    if (st.kernel) {
      for (size_t j = 0; j < st.inputs.size(); ++j)
        in[j] = st.inputs[j] < 0 ? nullptr : ptr[st.inputs[j]];
      for (size_t j = 0; j < st.outputs.size(); ++j) out[j] = ptr[st.outputs[j]];
      st.kernel->run(in.data(), out.data());
    } else {
      st.callback(ptr.data(), run_context);
    }
  }
}

}  // namespace ferry
