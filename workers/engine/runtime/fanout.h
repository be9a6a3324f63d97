// Fan-out of one job's work over workers (worker.proto Part).
//
// A stage that has independent pieces of work (EvoPress: one levels-database
// pass per level, one chunk of offspring per selection step) names each
// piece and describes it in a payload that fully determines its result. Run
// hands the pieces to whoever gets them first: this process (through
// `local`) or another worker, which computes it with its PartRunner
// (pipeline/job.h) from the job's recipe, model and datasets. Results come back
// in order. Equal payloads must give equal results wherever computed (same
// code, same thread count), so the job's result does not depend on who
// computed which part.
//
// RunOptions::fanout null means everything runs here, in order (LocalFanout).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

struct WorkPart {
  std::string name;  // unique within the job and attempt; [A-Za-z0-9._/-]
  std::string payload;
};

class Fanout {
 public:
  virtual ~Fanout() = default;
  using LocalFn = std::function<absl::StatusOr<std::string>(const WorkPart&)>;
  // Every part's result, in the order of `parts`. CANCELLED once `cancel`
  // is set; a part that failed everywhere fails the call with its error.
  virtual absl::StatusOr<std::vector<std::string>> Run(const std::vector<WorkPart>& parts,
                                                       const LocalFn& local,
                                                       const CancelToken& cancel) = 0;
  // How many workers may take parts now, this one included (>= 1): a hint
  // for how finely to split work.
  virtual int workers() = 0;
};

// Runs every part here, in order.
class LocalFanout : public Fanout {
 public:
  absl::StatusOr<std::vector<std::string>> Run(const std::vector<WorkPart>& parts,
                                               const LocalFn& local,
                                               const CancelToken& cancel) override {
    std::vector<std::string> out;
    for (const WorkPart& p : parts) {
      if (cancel.cancelled()) return absl::CancelledError("job cancelled");
      absl::StatusOr<std::string> r = local(p);
      if (!r.ok()) return r.status();
      out.push_back(*std::move(r));
    }
    return out;
  }
  int workers() override { return 1; }
};

}  // namespace compressd::engine
