// Turns job events into the lines `jobs watch` prints on stdout. Consecutive
// metric events with the same labels share one line, e.g.
//   layer model.layers.0.mlp.up_proj sparsity=0.500 seconds=0.01
// Progress events print nothing here (they drive the progress bar).
// Not thread-safe.
#pragma once

#include <string>
#include <vector>

#include "compressd/v1/compressd.pb.h"

namespace compressd::client {

class EventLines {
 public:
  // The lines completed by `event` (possibly none, possibly a held metric
  // line followed by this event's line).
  std::vector<std::string> Add(const v1::JobEvent& event);
  // The held metric line, if any.
  std::vector<std::string> Flush();

 private:
  std::string metric_labels_;  // labels of the held metric line
  std::string metric_line_;    // "" when nothing is held
};

// "state QUEUED -> RUNNING: lease acquired", "[warning] ...", ...; metric
// events alone: "layer model.layers.0.mlp.up_proj sparsity=0.500".
std::string FormatEvent(const v1::JobEvent& event);
// "0.500", "0.01" for names ending in "seconds", integers without decimals.
std::string FormatMetricValue(const std::string& name, double value);

}  // namespace compressd::client
