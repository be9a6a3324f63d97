// "Work is available": how whoever queues work (JobService submitting a job,
// a lease that puts its job or part back in the queue) tells whoever hands
// work out (the Scheduler, which answers waiting LeaseTask long-polls).
// JobService depends on this interface rather than on the Scheduler, so
// jobs/ and scheduler/ never include each other. Part of server/core/
// (includes nothing else from server/).
#pragma once

namespace compressd {

class WorkNotifier {
 public:
  virtual ~WorkNotifier() = default;

  // A job or part became QUEUED. Implementations are thread-safe and may
  // hand the work out on the calling thread (a Store transaction or two), so
  // call it with no lock held.
  virtual void NotifyWorkAvailable() = 0;
};

}  // namespace compressd
