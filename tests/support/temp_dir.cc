#include "tests/support/temp_dir.h"

#include <stdio.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <system_error>

namespace tasktrail::testing {

TempDir::TempDir(const std::string& prefix) {
  const char* base = getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" +
      prefix + "-XXXXXX";
  const char* made = mkdtemp(pattern.data());
  if (made == nullptr) {
    perror(("mkdtemp " + pattern).c_str());
    abort();
  }
  path_ = made;
}

TempDir::~TempDir() {
  if (!keep_) RemoveTree(path_);
}

void TempDir::RemoveTree(const std::string& path) {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

std::string TempDir::Write(const std::string& name,
                           const std::string& text) const {
  const std::string path = File(name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    perror(("writing " + path).c_str());
    abort();
  }
  return path;
}

}  // namespace tasktrail::testing
