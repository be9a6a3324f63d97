// Shared by the CUDA tests: tests that need a GPU skip visibly (and pass)
// where there is none, so the CUDA build can be tested on any machine; on a
// machine with a GPU they run.
#pragma once

#include <cuda_runtime.h>

#include "gtest/gtest.h"

// Put at the top of every TEST that needs a CUDA device.
#define COMPRESSD_REQUIRE_CUDA_DEVICE()                               \
  do {                                                                \
    int n_ = 0;                                                       \
    if (cudaGetDeviceCount(&n_) != cudaSuccess || n_ == 0) {          \
      GTEST_SKIP() << "no CUDA device: this parity test needs a GPU"; \
    }                                                                 \
  } while (0)
