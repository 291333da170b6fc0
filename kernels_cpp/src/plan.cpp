// The plan loop. Per step it costs one pointer gather and one virtual call.
#include "ferry/plan.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "ferry/memory.h"

namespace ferry {

namespace {
constexpr size_t kAlign = 64;
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// ---- inter-op execution ----------------------------------------------------------------------
// One run of a parallel plan: the first error wins and stops the run.
struct RunShared {
  const Plan* plan;
  const std::vector<PlanStep>* steps;
  void* const* ptr;
  void* run_context;
  const RunControl* control = nullptr;
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::exception_ptr error;

  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lk(mu);
    if (!error) error = std::move(e);
    failed.store(true, std::memory_order_release);
  }
};

// One wave: its tasks are claimed one at a time by the caller and by helpers of the inter-op
// pool. Helpers hold it by shared_ptr, so a helper that arrives after the wave is over only
// finds nothing left to claim (it never touches the run, which may be gone by then).
struct WaveJob {
  const Plan::Wave* wave = nullptr;
  RunShared* run = nullptr;
  int count = 0;
  std::atomic<int> next{0}, done{0};
  std::mutex mu;
  std::condition_variable cv;
  // Runs a step (the plan's own loop body), reporting errors to the run.
  void (*exec)(RunShared&, int step) = nullptr;

  void work() {
    for (;;) {
      const int k = next.fetch_add(1, std::memory_order_acq_rel);
      if (k >= count) return;
      for (int step : (*wave)[k]) {  // a task: its steps in order, until one fails
        if (run->failed.load(std::memory_order_acquire)) break;
        try {
          exec(*run, step);
        } catch (...) {
          run->fail(std::current_exception());
        }
      }
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == count) {
        { std::lock_guard<std::mutex> lk(mu); }  // pairs with the waiter's predicate check
        cv.notify_all();
      }
    }
  }

  bool finished() const { return done.load(std::memory_order_acquire) >= count; }
};

// Workers spin (yielding) this long for the next wave before sleeping, and a caller as long for
// the last steps of its wave: the waves of a plan come back to back, and a condition-variable
// wake-up per wave costs more than a small step. FERRY_INTER_OP_SPIN_US overrides it.
std::chrono::microseconds inter_op_spin() {
  static const std::chrono::microseconds spin = [] {
    const char* env = std::getenv("FERRY_INTER_OP_SPIN_US");
    long us = env ? std::strtol(env, nullptr, 10) : 1000;
    return std::chrono::microseconds(us < 0 ? 0 : us);
  }();
  return spin;
}

// The process-wide inter-op pool: persistent workers that help with waves. Grown on demand to
// the most helpers any plan asked for, never shrunk. The caller of a wave always works on it
// too, so a wave finishes even when every worker is busy with other runs (no deadlock).
class InterOpPool {
 public:
  void ensure(int helpers) {
    std::lock_guard<std::mutex> lk(mu_);
    while (static_cast<int>(workers_.size()) < helpers)
      workers_.emplace_back([this] { worker(); });
  }

  void submit(const std::shared_ptr<WaveJob>& job, int tickets) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (int i = 0; i < tickets; ++i) queue_.push_back(job);
      pending_.fetch_add(tickets, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
  }

 private:
  std::shared_ptr<WaveJob> take(bool block) {
    std::unique_lock<std::mutex> lk(mu_);
    if (block) {
      sleepers_.fetch_add(1, std::memory_order_acq_rel);
      cv_.wait(lk, [&] { return !queue_.empty(); });
      sleepers_.fetch_sub(1, std::memory_order_acq_rel);
    }
    if (queue_.empty()) return nullptr;
    auto job = std::move(queue_.front());
    queue_.pop_front();
    pending_.fetch_sub(1, std::memory_order_acq_rel);
    return job;
  }

  void worker() {
    for (;;) {
      std::shared_ptr<WaveJob> job;
      const auto start = std::chrono::steady_clock::now();
      for (int spins = 0; !job; ++spins) {
        if (pending_.load(std::memory_order_acquire) > 0) {
          job = take(false);
          continue;
        }
        std::this_thread::yield();
        if ((spins & 63) == 63 && std::chrono::steady_clock::now() - start > inter_op_spin()) break;
      }
      if (!job) job = take(true);
      if (job) job->work();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<WaveJob>> queue_;
  std::atomic<int> pending_{0}, sleepers_{0};
  std::vector<std::thread> workers_;
};

// Leaked on purpose: workers may still be parked when static destructors run at exit.
InterOpPool& inter_op_pool() {
  static InterOpPool* p = new InterOpPool();
  return *p;
}

void exec_step(RunShared& run, int step);
}  // namespace

Plan::Plan(size_t arena_bytes, std::vector<PlanValue> values, std::vector<PlanStep> steps,
           std::vector<Wave> waves, int inter_op_threads)
    : arena_bytes_(arena_bytes), values_(std::move(values)), steps_(std::move(steps)),
      waves_(std::move(waves)), inter_op_threads_(std::max(1, inter_op_threads)) {
  const int n = static_cast<int>(values_.size());
  roots_.resize(n);
  root_offsets_.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    int r = i, hops = 0;
    int64_t off = 0;
    while (values_[r].kind == PlanValue::Kind::alias) {
      if (values_[r].offset < 0)
        throw std::invalid_argument("alias value " + std::to_string(r) + " has a negative offset");
      off += values_[r].offset;
      const int64_t t = values_[r].index;
      if (t < 0 || t >= n)
        throw std::invalid_argument("value " + std::to_string(r) + " aliases unknown value " +
                                    std::to_string(t));
      if (++hops > n) throw std::invalid_argument("alias cycle at value " + std::to_string(i));
      r = static_cast<int>(t);
    }
    roots_[i] = r;
    root_offsets_[i] = off;
    if (static_cast<size_t>(off) > values_[r].nbytes ||
        values_[i].nbytes > values_[r].nbytes - static_cast<size_t>(off))
      throw std::invalid_argument("alias value " + std::to_string(i) + " is larger than value " +
                                  std::to_string(r) + " it views (past its end)");
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
  if (!waves_.empty()) check_waves();
}

void Plan::check_waves() {
  const size_t ns = steps_.size();
  // Where each step runs: wave, task (numbered over the whole schedule), position in the task.
  std::vector<int> wave_of(ns, -1), task_of(ns, -1), pos_of(ns, -1);
  int task_id = 0;
  for (size_t w = 0; w < waves_.size(); ++w) {
    if (waves_[w].empty()) throw std::invalid_argument("wave " + std::to_string(w) + " is empty");
    for (const Task& t : waves_[w]) {
      if (t.empty())
        throw std::invalid_argument("wave " + std::to_string(w) + " has an empty task");
      for (size_t p = 0; p < t.size(); ++p) {
        const int s = t[p];
        if (s < 0 || static_cast<size_t>(s) >= ns || wave_of[s] != -1)
          throw std::invalid_argument("schedule: step " + std::to_string(s) +
                                      " is unknown or scheduled twice");
        wave_of[s] = static_cast<int>(w);
        task_of[s] = task_id;
        pos_of[s] = static_cast<int>(p);
      }
      ++task_id;
    }
  }
  for (size_t s = 0; s < ns; ++s)
    if (wave_of[s] == -1)
      throw std::invalid_argument("schedule: step " + std::to_string(s) + " is not scheduled");
  // Each value (by the memory it uses) is written once, and read only in later waves or by
  // later steps of the writer's task.
  std::vector<int> writer(values_.size(), -1);
  for (size_t s = 0; s < ns; ++s)
    for (int id : steps_[s].outputs) {
      if (id < 0) continue;
      const int r = roots_[id];
      if (writer[r] != -1 && writer[r] != static_cast<int>(s))
        throw std::invalid_argument("schedule: value " + std::to_string(id) +
                                    " is written by two steps");
      writer[r] = static_cast<int>(s);
    }
  for (size_t s = 0; s < ns; ++s)
    for (int id : steps_[s].inputs) {
      if (id < 0) continue;
      const int w = writer[roots_[id]];
      if (w < 0 || wave_of[w] < wave_of[s] ||
          (task_of[w] == task_of[s] && pos_of[w] < pos_of[s]))
        continue;
      throw std::invalid_argument("schedule: step " + std::to_string(s) + " reads value " +
                                  std::to_string(id) + " before the step that writes it");
    }
}

size_t Plan::max_wave() const {
  if (!parallel()) return steps_.empty() ? 0 : 1;
  size_t m = 0;
  for (const Wave& w : waves_) m = std::max(m, w.size());
  return m;
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
  try {
    return alloc_large(round_up(arena_bytes_ == 0 ? 1 : arena_bytes_));
  } catch (...) {
    std::lock_guard<std::mutex> lk(pool_mu_);
    --leased_;
    throw;
  }
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

void RunControl::check() const {
  if (cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED))
    throw RunStopped("run cancelled (terminate was set)");
  if (has_deadline && std::chrono::steady_clock::now() > deadline)
    throw RunStopped("run timed out");
}

void Plan::run(const void* const* inputs, size_t n_inputs, void* const* outputs,
               size_t n_outputs, void* run_context, const RunControl* control) const {
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
    if (values_[i].kind == PlanValue::Kind::alias)
      ptr[i] = static_cast<char*>(ptr[roots_[i]]) + root_offsets_[i];

  if (parallel()) {
    run_waves(ptr.data(), run_context, control);
    return;
  }
  if (control && control->step_ns) {  // timed: the per-step profile of the fast path
    for (size_t s = 0; s < steps_.size(); ++s) {
      control->check();
      const auto t0 = std::chrono::steady_clock::now();
      run_step(steps_[s], ptr.data(), run_context);
      control->step_ns[s] += std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now() - t0)
                                 .count();
    }
    return;
  }
  for (const PlanStep& st : steps_) {
    if (control) control->check();
    run_step(st, ptr.data(), run_context);
  }
}

void Plan::run_step(const PlanStep& st, void* const* ptr, void* run_context) const {
  if (st.kernel) {
    // Per thread: steps of one wave run on several threads at once.
    thread_local std::vector<const void*> in;
    thread_local std::vector<void*> out;
    if (in.size() < max_args_) in.resize(max_args_);
    if (out.size() < max_args_) out.resize(max_args_);
    for (size_t j = 0; j < st.inputs.size(); ++j)
      in[j] = st.inputs[j] < 0 ? nullptr : ptr[st.inputs[j]];
    for (size_t j = 0; j < st.outputs.size(); ++j) out[j] = ptr[st.outputs[j]];
    st.kernel->run(in.data(), out.data());
  } else {
    st.callback(ptr, run_context);
  }
}

namespace {
void exec_step(RunShared& run, int step) {
  if (run.control) run.control->check();
  run.plan->run_step((*run.steps)[step], run.ptr, run.run_context);
}
}  // namespace

void Plan::run_waves(void* const* ptr, void* run_context, const RunControl* control) const {
  RunShared shared;
  shared.plan = this;
  shared.steps = &steps_;
  shared.ptr = ptr;
  shared.run_context = run_context;
  shared.control = control;
  InterOpPool& pool = inter_op_pool();
  pool.ensure(inter_op_threads_ - 1);
  for (const Wave& wave : waves_) {
    const int n = static_cast<int>(wave.size());
    const int helpers = std::min(n, inter_op_threads_) - 1;
    if (helpers <= 0) {
      for (const Task& t : wave)
        for (int s : t) {  // throws straight out
          if (control) control->check();
          run_step(steps_[s], ptr, run_context);
        }
      continue;
    }
    auto job = std::make_shared<WaveJob>();
    job->wave = &wave;
    job->run = &shared;
    job->count = n;
    job->exec = &exec_step;
    pool.submit(job, helpers);
    job->work();
    // Wait for the helpers' last steps: spin briefly (steps are often short), then sleep.
    const auto start = std::chrono::steady_clock::now();
    for (int spins = 0; !job->finished(); ++spins) {
      std::this_thread::yield();
      if ((spins & 63) == 63 && std::chrono::steady_clock::now() - start > inter_op_spin()) {
        std::unique_lock<std::mutex> lk(job->mu);
        job->cv.wait(lk, [&] { return job->finished(); });
        break;
      }
    }
    if (shared.failed.load(std::memory_order_acquire)) {
      std::exception_ptr e;
      {
        std::lock_guard<std::mutex> lk(shared.mu);
        e = shared.error;
      }
      std::rethrow_exception(e);
    }
  }
}

}  // namespace ferry
