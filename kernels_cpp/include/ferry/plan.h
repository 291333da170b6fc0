// The plan loop: runs a whole CPU partition (kernels and callbacks) in one call over values
// placed in a per-run arena. Python-free: callbacks are plain functions supplied by bindings.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "ferry/kernel.h"

namespace ferry {

struct PlanValue {
  enum class Kind { input, output, arena, constant, alias };
  Kind kind = Kind::arena;
  int64_t index = 0;            // input/output: position; arena: byte offset; alias: value id
  size_t nbytes = 0;
  const void* data = nullptr;   // constant: its memory (kept alive by the owner of the plan)
};

// A step is a kernel or a callback. `inputs`/`outputs` are value ids, -1 for an absent input.
// A callback receives every value's address for this run plus the run's opaque context.
struct PlanStep {
  const Kernel* kernel = nullptr;  // not owned
  std::function<void(void* const* value_ptrs, void* run_context)> callback;
  std::vector<int> inputs, outputs;
};

class Plan {
 public:
  // Throws std::invalid_argument for inconsistent values or steps.
  Plan(size_t arena_bytes, std::vector<PlanValue> values, std::vector<PlanStep> steps);
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  // Thread-safe: each run borrows its own arena from a pool. `run_context` goes to callbacks.
  void run(const void* const* inputs, size_t n_inputs, void* const* outputs, size_t n_outputs,
           void* run_context = nullptr) const;

  size_t arena_bytes() const { return arena_bytes_; }
  // Arenas kept for reuse, leased now, and the most leased at once (concurrent runs).
  size_t pooled_arenas() const;
  size_t leased_arenas() const;
  size_t peak_arenas() const;
  // Frees the pooled (idle) arenas; returns the bytes given back. Safe during runs.
  size_t trim() const;
  size_t num_steps() const { return steps_.size(); }
  const std::vector<PlanValue>& values() const { return values_; }
  // The value whose memory `id` uses (itself unless it is an alias).
  int root(int id) const { return roots_[id]; }

 private:
  void* acquire_arena() const;
  void release_arena(void* p) const;

  size_t arena_bytes_;
  std::vector<PlanValue> values_;
  std::vector<int> roots_;
  std::vector<PlanStep> steps_;
  size_t max_args_ = 0;
  mutable std::mutex pool_mu_;
  mutable std::vector<void*> pool_;
  mutable size_t leased_ = 0, peak_ = 0;
};

}  // namespace ferry
