#include "service/rules/operator_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tasktrail {
namespace {

// Closes the descriptor it holds.
class FileCloser {
 public:
  explicit FileCloser(int fd) : fd_(fd) {}
  ~FileCloser() { close(fd_); }
  FileCloser(const FileCloser&) = delete;
  FileCloser& operator=(const FileCloser&) = delete;

 private:
  const int fd_;
};

std::string TooLarge(const std::string& path, absl::string_view what,
                     size_t max_bytes) {
  return absl::StrCat(what, " ", path, " is larger than ", max_bytes,
                      " bytes; refusing to read it");
}

}  // namespace

absl::StatusOr<std::string> ReadOperatorFile(const std::string& path,
                                             absl::string_view what,
                                             size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", what, " ", path, ": ", strerror(errno)));
  }
  FileCloser closer(fd);
  struct stat info;
  if (fstat(fd, &info) != 0) {
    return absl::UnavailableError(
        absl::StrCat("error reading ", what, " ", path, ": ", strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path,
                     " is not a regular file (a directory, FIFO, device or "
                     "socket); give the path of a file"));
  }
  if (static_cast<uint64_t>(info.st_size) > max_bytes) {
    return absl::FailedPreconditionError(TooLarge(path, what, max_bytes));
  }
  // The file may grow between fstat and read: read at most one byte more
  // than allowed to notice.
  std::string contents;
  contents.resize(max_bytes + 1);
  size_t filled = 0;
  while (filled < contents.size()) {
    const ssize_t got = read(fd, &contents[filled], contents.size() - filled);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      return absl::UnavailableError(absl::StrCat("error reading ", what, " ",
                                                 path, ": ", strerror(errno)));
    }
    if (got == 0) break;
    filled += static_cast<size_t>(got);
  }
  if (filled > max_bytes) {
    return absl::FailedPreconditionError(TooLarge(path, what, max_bytes));
  }
  contents.resize(filled);
  return contents;
}

}  // namespace tasktrail
