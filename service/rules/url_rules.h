// Checks on URLs that the upstream AI vendor will fetch (reference images) or
// call (callback_url), made before a job is submitted so that tasktrail never
// asks the vendor to reach a private address (SSRF) or obviously broken input.
// The check reads the text only; it never resolves names.
//
// A URL is accepted when all of these hold:
//   - it is at most `max_length` bytes long;
//   - it starts with "https://" (any case) and is not a data: URI;
//   - it has no ASCII whitespace or control characters anywhere;
//   - its authority (up to the first '/', '?' or '#') has no userinfo ('@'),
//     no backslash, and an optional port of digits only, from 1 to 65535;
//   - its host is an ASCII domain name: at least two labels, each 1 to 63
//     characters of [A-Za-z0-9-] that neither starts nor ends with '-', at
//     most 253 characters in all, with one optional trailing dot;
//   - its host is not an IP literal in any notation (dotted, decimal, hex,
//     octal, shortened, bracketed IPv6), which includes any host whose last
//     label is numeric, and is not "localhost" or a name under "localhost";
//   - its host has no percent-encoding and no non-ASCII characters (callers
//     pass the punycode form, e.g. "xn--bcher-kva.example").
// Path, query and fragment are otherwise not checked.
//
// Thread safety: pure functions; safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_RULES_URL_RULES_H_
#define TASKTRAIL_SERVICE_RULES_URL_RULES_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace tasktrail {

// What kind of URL is being checked, for the wording of problems.
enum class UrlUse { kCallback, kReferenceImage };

// Returns nullopt when `url` is acceptable (see the rules above), else one
// plain English sentence, naming the field ("callback_url" or "reference image
// URI"), that says what is wrong and what is accepted, e.g. "callback_url must
// be an https URL whose host is a domain name; 2130706433 is an IP address".
absl::optional<std::string> CheckPublicHttpsUrl(absl::string_view url,
                                                UrlUse use,
                                                size_t max_length = 2048);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_URL_RULES_H_
