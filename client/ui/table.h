// Plain-text tables for list commands.
#pragma once

#include <string>
#include <vector>

namespace compressd::client {

// Left-aligned columns separated by two spaces; rows[0] is the header. Each
// line ends with '\n' and has no trailing spaces.
std::string RenderTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace compressd::client
