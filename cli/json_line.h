// JsonLineWriter: proto3 JSON of a message on one line, exactly as
// ToJson(message, /*pretty=*/false) prints it (format.h: protobuf's
// MessageToJsonString with the proto's field names and fields at their
// default values), written by reflection. protobuf 3.21's printer converts
// through its type resolver and takes about a quarter of a millisecond per
// Task; this writer takes a few microseconds, so that `tasktrail export`
// keeps up with an export stream.
//
// It writes the field types a Task holds: integers, bools, enums, strings,
// bytes, nested messages, repeated fields, oneofs, fields with presence,
// google.protobuf.Timestamp and Duration. A message holding any other
// (float, double, map, Any, Struct, wrappers, a group) is printed by
// ToJson instead, as is a string that is not valid UTF-8, so the output is
// always ToJson's.
//
// Thread safety: a writer is used by one thread at a time; writers are
// independent.
#ifndef TASKTRAIL_CLI_JSON_LINE_H_
#define TASKTRAIL_CLI_JSON_LINE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace tasktrail::cli {

class JsonLineWriter {
 public:
  // Appends the JSON of `message` and "\n" to `out`. INVALID_ARGUMENT as
  // ToJson (protobuf's reason) when the message cannot be printed; `out` is
  // then as it was.
  absl::Status AppendLine(const google::protobuf::Message& message,
                          std::string* out);

  // How many of the lines appended were left to ToJson (see above).
  int64_t lines_left_to_protobuf() const { return lines_left_to_protobuf_; }

 private:
  int64_t lines_left_to_protobuf_ = 0;
};

}  // namespace tasktrail::cli

#endif  // TASKTRAIL_CLI_JSON_LINE_H_
