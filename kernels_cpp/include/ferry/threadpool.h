// ferry's own thread pool (no OpenMP: numpy's OpenBLAS has its own pool and nested pools
// oversubscribe). Sized by intra_op_num_threads.
#pragma once
#include <cstdint>
#include <functional>

namespace ferry {

void set_num_threads(int n);
int num_threads();

// Idle workers' spin before sleeping, in microseconds (threadpool.cpp says why this long).
constexpr int64_t kDefaultSpinUs = 20000;
// How long idle workers spin for the next job before they sleep (default kDefaultSpinUs; 0:
// sleep at once, for a process that must not burn CPU between runs).
void set_spin_us(int64_t us);
// Wakes sleeping workers so that they spin for the next job (a run is about to start).
void wake_workers();
int64_t spin_us();

// Runs fn(begin, end) over [0, n) split into chunks of at least `grain` items, claimed
// dynamically (up to 8 * threads units of `grain` one by one, more in four chunks per thread),
// on the pool (the calling thread takes a share). Serial when n < 2 * grain or the pool has one
// thread.
// Nested calls from inside a task run serially.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// True on a pool thread running a parallel_for item (nested parallel_for calls run inline).
bool in_parallel_region();

}  // namespace ferry
