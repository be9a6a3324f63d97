// compressctl: the command-line client of compressd. See client/cli/args.cc
// for the commands, or run `compressctl --help`.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "client/cli/app.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  compressd::client::Io io{std::cout, std::cerr, isatty(STDERR_FILENO) == 1};
  return compressd::client::RunCompressctl(args, io, std::getenv("COMPRESSD_SERVER"));
}
