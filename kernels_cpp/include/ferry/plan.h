// The plan loop: runs a whole CPU partition (kernels and callbacks) in one call over values
// placed in a per-run arena. Python-free: callbacks are plain functions supplied by bindings.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "ferry/kernel.h"

namespace ferry {

struct PlanValue {
  enum class Kind { input, output, arena, constant, alias };
  Kind kind = Kind::arena;
  int64_t index = 0;            // input/output: position; arena: byte offset; alias: value id
  size_t nbytes = 0;
  const void* data = nullptr;   // constant: its memory (kept alive by the owner of the plan)
  int64_t offset = 0;           // alias: byte offset into the value it views (a Concat slice)
};

// A step is a kernel or a callback. `inputs`/`outputs` are value ids, -1 for an absent input.
// A callback receives every value's address for this run plus the run's opaque context.
struct PlanStep {
  const Kernel* kernel = nullptr;  // not owned
  std::function<void(void* const* value_ptrs, void* run_context)> callback;
  std::vector<int> inputs, outputs;
};

// Stops a run between steps: a flag another thread may set (RunOptions.terminate) and a
// deadline (the run's timeout). Checked before every step; a stop throws RunStopped.
struct RunControl {
  const uint8_t* cancel = nullptr;  // nonzero: stop (read atomically)
  bool has_deadline = false;
  std::chrono::steady_clock::time_point deadline;
  int64_t* step_ns = nullptr;  // one per step: each step's run time is added (nanoseconds)
  void check() const;
};

struct RunStopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Plan {
 public:
  // Throws std::invalid_argument for inconsistent values or steps.
  //
  // `waves` (optional) is a parallel schedule: waves of tasks, a task being step indices run in
  // that order; every step appears exactly once. The tasks of one wave run at the same time on
  // up to `inter_op_threads` threads (the caller plus workers of a process-wide inter-op pool,
  // created once and reused); a wave starts only when the previous one has finished, so the
  // memory planner may reuse arena bytes across waves. A step may read only values written in
  // earlier waves or by earlier steps of its own task (checked). Empty `waves` or
  // inter_op_threads <= 1: steps run one after another, in order, on the caller.
  using Task = std::vector<int>;
  using Wave = std::vector<Task>;
  Plan(size_t arena_bytes, std::vector<PlanValue> values, std::vector<PlanStep> steps,
       std::vector<Wave> waves = {}, int inter_op_threads = 1);
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  // Thread-safe: each run borrows its own arena from a pool. `run_context` goes to callbacks.
  // The first exception thrown by a step stops the run (steps of the same wave already started
  // finish; no later step starts) and is rethrown here, once.
  // `control` (optional) is checked before every step.
  void run(const void* const* inputs, size_t n_inputs, void* const* outputs, size_t n_outputs,
           void* run_context = nullptr, const RunControl* control = nullptr) const;

  size_t arena_bytes() const { return arena_bytes_; }
  // Arenas kept for reuse, leased now, and the most leased at once (concurrent runs).
  size_t pooled_arenas() const;
  size_t leased_arenas() const;
  size_t peak_arenas() const;
  // Frees the pooled (idle) arenas; returns the bytes given back. Safe during runs.
  size_t trim() const;
  size_t num_steps() const { return steps_.size(); }
  // The schedule: number of waves (== num_steps when sequential), the most tasks in a wave, and
  // the inter-op threads a wave may use (1 when sequential).
  size_t num_waves() const { return parallel() ? waves_.size() : steps_.size(); }
  size_t max_wave() const;
  int inter_op_threads() const { return parallel() ? inter_op_threads_ : 1; }
  const std::vector<PlanValue>& values() const { return values_; }
  // The value whose memory `id` uses (itself unless it is an alias).
  int root(int id) const { return roots_[id]; }
  // Runs one step over this run's value addresses (the loop body; inter-op workers call it).
  void run_step(const PlanStep& st, void* const* ptr, void* run_context) const;

 private:
  void* acquire_arena() const;
  void release_arena(void* p) const;
  bool parallel() const { return !waves_.empty() && inter_op_threads_ > 1; }
  void check_waves();
  void run_waves(void* const* ptr, void* run_context, const RunControl* control) const;

  size_t arena_bytes_;
  std::vector<PlanValue> values_;
  std::vector<int> roots_;
  std::vector<int64_t> root_offsets_;  // byte offset of each value in its root's memory
  std::vector<PlanStep> steps_;
  size_t max_args_ = 0;
  std::vector<Wave> waves_;
  int inter_op_threads_ = 1;
  mutable std::mutex pool_mu_;
  mutable std::vector<void*> pool_;
  mutable size_t leased_ = 0, peak_ = 0;
};

}  // namespace ferry
