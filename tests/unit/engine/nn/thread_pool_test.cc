#include "workers/engine/nn/thread_pool.h"

#include <atomic>
#include <vector>

#include "gtest/gtest.h"

namespace compressd::engine {
namespace {

TEST(ThreadPool, ParallelForCallsEveryIndexExactlyOnce) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.num_threads(), 4);
  for (int64_t n : {0, 1, 3, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    pool.ParallelFor(n, [&](int64_t i) { hits[i].fetch_add(1); });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPool, ParallelRangesCoverTheRangeWithoutOverlap) {
  ThreadPool pool(3);
  for (auto [n, min_chunk] : {std::pair<int64_t, int64_t>{10, 1}, {10, 4}, {7, 100}, {1000, 64}}) {
    std::vector<std::atomic<int>> hits(n);
    std::atomic<int> calls{0};
    pool.ParallelRanges(n, min_chunk, [&](int64_t b, int64_t e) {
      calls.fetch_add(1);
      EXPECT_LT(b, e);
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1);
    EXPECT_LE(calls.load(), 3);
    EXPECT_LE(calls.load(), std::max<int64_t>(1, n / min_chunk));
  }
}

TEST(ThreadPool, UsesSeveralThreadsAndSerializesConcurrentCallers) {
  ThreadPool pool(2);
  std::atomic<int> total{0};
  std::thread other([&] {
    for (int r = 0; r < 50; ++r) pool.ParallelFor(100, [&](int64_t) { total.fetch_add(1); });
  });
  for (int r = 0; r < 50; ++r) pool.ParallelFor(100, [&](int64_t) { total.fetch_add(1); });
  other.join();
  EXPECT_EQ(total.load(), 2 * 50 * 100);
}

}  // namespace
}  // namespace compressd::engine
