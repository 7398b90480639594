// Reads the fields of a serialized protobuf message one at a time without
// parsing the message: for the few fields a hot read needs from a stored
// snapshot, where a full parse would allocate every string and submessage.
//
// Only the framing is checked (tags, varints, lengths, wire types), not what
// a field holds: a string's UTF-8 (IsValidUtf8) or an enum's range is the
// reader's concern.
//
// Thread safety: pure.
#ifndef TASKTRAIL_SERVICE_RULES_WIRE_FIELDS_H_
#define TASKTRAIL_SERVICE_RULES_WIRE_FIELDS_H_

#include <cstddef>
#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"

namespace tasktrail {

// Wire types of the protobuf encoding that proto3 messages use.
enum class WireType {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kFixed32 = 5
};

// One field as it appears on the wire.
struct WireField {
  int number = 0;
  WireType type = WireType::kVarint;
  // kVarint: the varint; kFixed64, kFixed32: the little-endian value.
  uint64_t value = 0;
  // kLengthDelimited: the payload (a string, bytes or a submessage), a view
  // into the message passed to ForEachWireField.
  absl::string_view payload;
};

// Calls `visit` for each field of `message` in wire order. A field repeated
// on the wire is visited at each occurrence; protobuf's own parser keeps the
// last value of a scalar and merges occurrences of a submessage. Groups
// (which proto3 never writes, but protobuf's parser keeps as unknown fields)
// are skipped, not visited.
// Returns false, having visited the fields before it, at the first field
// that is not well formed: a truncated tag, varint or payload, a tag or
// length longer than 5 bytes, field number 0, a group without its end tag
// or nested more than 128 deep, an end tag outside a group, or wire type 6
// or 7 (and for a message of 2 GiB or more). Every message protobuf's
// parser accepts is well formed; payloads are not looked into.
bool ForEachWireField(absl::string_view message,
                      absl::FunctionRef<void(const WireField&)> visit);

// True when `text` is UTF-8 as RFC 3629 defines it (no overlong encodings,
// surrogates or code points past U+10FFFF), which protobuf's parser
// requires of a proto3 string field.
bool IsValidUtf8(absl::string_view text);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_WIRE_FIELDS_H_
