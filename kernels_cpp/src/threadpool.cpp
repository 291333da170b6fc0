// A persistent pool: n-1 workers plus the calling thread. Workers spin briefly after each job
// (kernels in a plan come back to back) and then block on a condition variable.
//
// Chunks are claimed with a CAS on one 64-bit word holding (generation << 32 | chunk count << 16
// | next chunk), so a worker that wakes late for an old job can never claim a chunk of a newer
// one. The chunk count is in the word (not only in chunks_) because a worker that has just
// finished the last chunk of job G re-reads the word (G, idx = count) and must see "nothing
// left" even if the next job has already stored a larger chunks_: reading chunks_ separately
// let it claim chunk `count` of job G before next_ was reset, run it with the new job's fn_ and
// count it in the new job's done_ (the dispatcher could then return before a chunk finished).
#include "ferry/threadpool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FERRY_PAUSE() _mm_pause()
#else
#define FERRY_PAUSE() std::this_thread::yield()
#endif

namespace ferry {

namespace {

using Fn = std::function<void(int64_t, int64_t)>;
thread_local bool t_in_task = false;

// Workers spin this long for the next job before sleeping (set_spin_us). Kernels of a plan
// come back to back, and a condition-variable wake-up per kernel (~50-100 us) cost small
// models their whole second thread (MobileNetV2: 20.4 ms on 2 threads at 100 us, 14.3 ms at
// 2 ms). Runs 50-300 ms apart (a service's requests) were 2x slower at 2 ms than back to back
// (MobileNetV2, 2 threads: 14.3-15.6 ms against 7-8): a worker that has slept is slow for the
// next few milliseconds on this VM. At 20 ms they took 8.2-8.9 ms (onnxruntime 9.4-11.4).
std::atomic<int64_t> g_spin_us{kDefaultSpinUs};
constexpr int64_t kMaxChunks = 0xffff;  // the chunk fields of the claim word are 16 bits
constexpr int64_t kChunksPerThread = 4;
constexpr int64_t kItemsAlone = 8;  // per thread: up to this many items, one chunk each

class Pool {
 public:
  Pool() { resize(default_threads()); }

  static int default_threads() {
    unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
  }

  int size() const { return nthreads_.load(std::memory_order_relaxed); }

  void resize(int n) {
    if (n <= 0) n = default_threads();
    std::lock_guard<std::mutex> dispatch(dispatch_mu_);
    if (n == size() && static_cast<int>(workers_.size()) == n - 1) return;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_.store(false);
    nthreads_.store(n, std::memory_order_relaxed);
    for (int i = 0; i < n - 1; ++i) workers_.emplace_back([this] { worker(); });
  }

  // Wakes sleeping workers, which then spin for the next job: called as a run starts, so that
  // the wake-up overlaps the run's set-up and the workers are on their cores (a worker that
  // has slept is slow for its first milliseconds here) by the first kernel.
  void wake() {
    if (size() <= 1) return;
    std::unique_lock<std::mutex> dispatch(dispatch_mu_, std::try_to_lock);
    if (!dispatch.owns_lock()) return;  // a job is running: the workers are awake
    {
      // A new generation with no chunks (next_ still holds the last job's): a worker that
      // sees it finds nothing to claim and spins for the next one.
      std::lock_guard<std::mutex> lk(mu_);
      generation_.store((generation_.load(std::memory_order_relaxed) + 1) & 0xffffffffu,
                        std::memory_order_release);
    }
    cv_.notify_all();
  }

  void run(int64_t n, int64_t grain, const Fn& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    // Chunks claimed dynamically: when one thread is slow (a shared machine's other tenants,
    // uneven items) the others take its remaining chunks instead of waiting for a fixed half.
    // A few coarse items (attention heads, conv ranges: grain 1) are claimed one by one, as 12
    // heads cut into 8 chunks of 1 or 2 could end 7 against 5; many fine ones in
    // kChunksPerThread chunks per thread.
    const int64_t items = n / grain;
    int64_t chunks = std::min<int64_t>(
        items <= size() * kItemsAlone ? items : size() * kChunksPerThread, kMaxChunks);
    if (t_in_task || chunks <= 1) {
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> dispatch(dispatch_mu_, std::try_to_lock);
    if (!dispatch.owns_lock()) {  // another thread is using the pool: run on this one
      fn(0, n);
      return;
    }
    const uint64_t gen = (generation_.load(std::memory_order_relaxed) + 1) & 0xffffffffu;
    fn_.store(&fn, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    chunks_.store(chunks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    next_.store(gen << 32 | static_cast<uint64_t>(chunks) << 16, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mu_);
      generation_.store(gen, std::memory_order_release);
    }
    cv_.notify_all();

    t_in_task = true;
    work(gen);
    t_in_task = false;
    auto start = std::chrono::steady_clock::now();
    const auto spin = std::chrono::microseconds(g_spin_us.load(std::memory_order_relaxed));
    for (int spins = 0; done_.load(std::memory_order_acquire) < chunks; ++spins) {
      FERRY_PAUSE();
      if ((spins & 255) == 255 && std::chrono::steady_clock::now() - start > spin)
        std::this_thread::yield();
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Claims and runs chunks of job `gen` until none is left.
  void work(uint64_t gen) {
    for (;;) {
      uint64_t v = next_.load(std::memory_order_acquire);
      if ((v >> 32) != gen) return;
      const int64_t chunks = static_cast<int64_t>((v >> 16) & 0xffffu);
      const int64_t idx = static_cast<int64_t>(v & 0xffffu);
      if (idx >= chunks) return;
      // Job `gen` still has chunk idx unclaimed, so it is still the current job: these are its.
      const int64_t n = n_.load(std::memory_order_relaxed);
      const Fn* fn = fn_.load(std::memory_order_relaxed);
      if (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
      try {
        (*fn)(n * idx / chunks, n * (idx + 1) / chunks);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mu_);
        if (!error_) error_ = std::current_exception();
      }
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void worker() {
    t_in_task = true;
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      auto start = std::chrono::steady_clock::now();
      const auto spin = std::chrono::microseconds(g_spin_us.load(std::memory_order_relaxed));
      bool woke = false;
      for (int spins = 0;; ++spins) {
        if (generation_.load(std::memory_order_acquire) != seen || stop_flag()) {
          woke = true;
          break;
        }
        FERRY_PAUSE();
        if ((spins & 255) == 255 && std::chrono::steady_clock::now() - start > spin) break;
      }
      if (!woke) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] {
          return stop_ || generation_.load(std::memory_order_acquire) != seen;
        });
      }
      if (stop_flag()) return;
      seen = generation_.load(std::memory_order_acquire);
      work(seen);
    }
  }

  bool stop_flag() const { return stop_.load(std::memory_order_acquire); }

  std::mutex dispatch_mu_;  // one job on the pool at a time
  std::mutex mu_;           // guards stop_ and the sleep/wake handshake
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
  std::atomic<int> nthreads_{1};
  std::atomic<uint64_t> generation_{0};
  std::atomic<const Fn*> fn_{nullptr};
  std::atomic<int64_t> n_{0}, chunks_{0}, done_{0};
  std::atomic<uint64_t> next_{0};
  std::mutex error_mu_;
  std::exception_ptr error_;
};

// Leaked on purpose: workers may still be parked when static destructors run at exit.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

void set_num_threads(int n) { pool().resize(n); }

void wake_workers() { pool().wake(); }

void set_spin_us(int64_t us) { g_spin_us.store(us < 0 ? 0 : us, std::memory_order_relaxed); }

int64_t spin_us() { return g_spin_us.load(std::memory_order_relaxed); }

int num_threads() { return pool().size(); }

bool in_parallel_region() { return t_in_task; }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(n, grain, fn);
}

}  // namespace ferry
