// A fresh temporary directory for a test or a benchmark, removed with its
// contents when it goes away. The one place in tests/ and bench/ that makes
// and removes scratch directories.
//
// Thread safety: a TempDir is immutable after construction (but for Keep,
// which the owner calls); its accessors may be called from any thread.
// Write() is as safe as writing a file.
#ifndef TASKTRAIL_TESTS_SUPPORT_TEMP_DIR_H_
#define TASKTRAIL_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace tasktrail::testing {

class TempDir {
 public:
  // Makes $TMPDIR/PREFIX-XXXXXX (/tmp when TMPDIR is unset or empty).
  // Aborts when the directory cannot be made: no test can run without it.
  explicit TempDir(const std::string& prefix = "tasktrail-test");
  // Removes the directory and everything in it; errors are ignored.
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` inside the directory (which need not exist yet).
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Writes `text` to File(name), replacing it, and returns that path.
  // Aborts when the file cannot be written.
  std::string Write(const std::string& name, const std::string& text) const;

  // Leaves the directory in place when this object goes away (for a
  // directory handed to another process, which removes it with RemoveTree).
  void Keep() { keep_ = true; }
  // Removes `path` and everything in it; errors are ignored.
  static void RemoveTree(const std::string& path);

 private:
  std::string path_;
  bool keep_ = false;
};

}  // namespace tasktrail::testing

#endif  // TASKTRAIL_TESTS_SUPPORT_TEMP_DIR_H_
