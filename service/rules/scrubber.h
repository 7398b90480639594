// Removal of secrets from free text before tasktrail stores or prints it
// (upstream failure messages, upstream status text, support notes,
// cancel/refund reasons, download client names), and a safe form of
// api_key_id. Nothing tasktrail stores or prints may reveal a secret.
//
// A secret-looking span is replaced by kRedacted. Labels that are not part of
// the secret are kept so that a reader still sees what was there ("Bearer
// [REDACTED]", "key=[REDACTED]", "Authorization: Basic [REDACTED]"); no
// character of the secret itself is ever kept (a vendor prefix such as "sk-"
// or "ghp_" is part of the secret and goes too). The shapes found:
//   - vendor keys, by their exact (case-sensitive) prefix: "sk-" + >= 20 of
//     [A-Za-z0-9_-] (sk-proj-, sk-ant-, sk-svcacct-, ...); "rk-", "sk_live_",
//     "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_", "whsec_" +
//     >= 16; Google "AIza" + >= 35 and "ya29." OAuth tokens; AWS "AKIA"/"ASIA"
//     + exactly 16 of [A-Z0-9]; GitHub "ghp_", "gho_", "ghs_", "ghu_", "ghr_",
//     "github_pat_" + >= 20; GitLab "glpat-" + >= 20; Slack "xoxa-", "xoxb-",
//     "xoxp-", "xoxr-" + >= 10; Hugging Face "hf_" and Replicate "r8_" + >= 30;
//     npm "npm_" + >= 36. A prefix only counts at the start of a word, so
//     "task-..." never matches "sk-"; the whole word of [A-Za-z0-9_-] that
//     holds the key is redacted;
//   - "Bearer <token>" (any case), when the token (up to whitespace, a quote,
//     ',', ';', '\', '<' or '>') has >= 8 characters and looks like a
//     credential: it has a digit, or a lower-case letter followed by an upper
//     case one, or >= 20 characters ("Bearer authentication failed" stays);
//   - headers "Authorization:", "Proxy-Authorization:", "Cookie:" and
//     "Set-Cookie:" (any case): the value up to the end of the line, ", ", '"',
//     '\' or the quote that opened the header (curl -H 'Authorization: ...')
//     is redacted, keeping a leading scheme word (Bearer, Basic, Digest,
//     Token, ...); headers "X-Api-Key:", "Api-Key:", "X-Goog-Api-Key:",
//     "X-Auth-Token:", "X-Amz-Security-Token:", "Ocp-Apim-Subscription-Key:":
//     the one token after the colon;
//   - NAME=VALUE (query strings, form bodies, env-style text) and JSON-ish
//     "NAME": "VALUE" / 'NAME': 'VALUE' (also with \" escaped quotes) when
//     NAME, ignoring case, '-' and '_', is a secret name: key, api_key, token,
//     access_token, refresh_token, id_token, auth_token, session_token,
//     security_token, secret, client_secret, secret_key, private_key,
//     password, passwd, pwd, signature, sig, x-goog-signature,
//     x-amz-signature, x-amz-security-token, authorization, ... or ends with
//     api_key, api_token, secret, password, access_token, auth_token,
//     secret_key, private_key or signature ("OPENAI_API_KEY=...",
//     "accessToken"). Names are matched whole: "keyboard=1", "monkey=banana",
//     "sort_key=x" and "page_token=x" stay. An unquoted VALUE ends at '&',
//     whitespace, a quote, '#', '\', a ',' before whitespace, or the end; a
//     quoted one at its closing quote (an unterminated one, as in a truncated
//     message, at the end of the line);
//   - JWTs: "eyJ" + >= 10, '.', >= 10, '.', any, of [A-Za-z0-9_-];
//   - opaque tokens: a word of letters and digits that holds a run of >= 32
//     hex digits (the whole word goes); a run of >= 40 characters of
//     [A-Za-z0-9+/_-] (plus '=' padding) that holds a digit, an upper-case and
//     a lower-case letter and looks random: at least 15 % of its neighbouring
//     letter/digit pairs change class (upper->lower, the start of a
//     capitalized word, does not count). File paths, slugs and file names
//     ("Summer_Campaign_2024_Final_Cut.mp4") score far below that; random
//     base64 scores ~45 %. A '/'-separated segment is also judged alone.
// Left alone: prose, model names ("sk-2", "kling-v2-1", "gpt-image-1"), ULIDs,
// UUIDs (dashed; an undashed UUID is 32 hex digits and is redacted), URLs
// without secret parameters, status text, short hex ("0x7f", git hashes of
// 7-12 digits), numbers, file paths. Full 40-digit git hashes and SHA-256
// digests are redacted: they cannot be told from hex secrets.
//
// Thread safety: pure functions; safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_RULES_SCRUBBER_H_
#define TASKTRAIL_SERVICE_RULES_SCRUBBER_H_

#include <string>

#include "absl/strings/string_view.h"

namespace tasktrail {

// What every secret-looking span is replaced with.
inline constexpr absl::string_view kRedacted = "[REDACTED]";

// Returns `text` with every secret-looking span (see above) replaced by
// kRedacted; overlapping or touching spans become one kRedacted. Text without
// secrets is returned unchanged, byte for byte, and so is text that is already
// scrubbed: ScrubSecrets(ScrubSecrets(t)) == ScrubSecrets(t) (the text is
// scrubbed again until it stops changing, because a redaction can expose a
// shape, as in "<hex key>-token=hunter2"). Each round takes time linear in
// the size of `text`, and text with secrets takes two: tens of microseconds
// for 4 KiB.
std::string ScrubSecrets(absl::string_view text);

// True when ScrubSecrets(text) != text.
bool ContainsSecret(absl::string_view text);

// For api_key_id: returns `id` unchanged when it looks like an identifier,
// else a fingerprint that lets support match ids without revealing them.
//
// An identifier is empty, or at most 64 characters of [A-Za-z0-9._:-] with no
// secret in it (ContainsSecret is false) and either a UUID or a ULID, or made
// of segments (split at '.', '_', ':', '-') of at most 32 characters none of
// which is a random-looking token of 16 or more characters: "key_9f2c",
// "prod-backend-3", "550e8400-e29b-41d4-a716-446655440000".
//
// The fingerprint is "fp:" + the first 12 lower-case hex digits of
// SHA-256(id) + U+2026 HORIZONTAL ELLIPSIS (3 bytes of UTF-8, "\xE2\x80\xA6")
// + the last 4 bytes of `id`, e.g. "fp:3b1f0c9d2a11…x9Qz". The last 4 bytes
// are left out ("fp:3b1f0c9d2a11") when `id` is shorter than 16 bytes (they
// would reveal too much of it) or when they are not all printable ASCII.
// A fingerprint passed in again is returned unchanged, so SafeKeyId is
// idempotent. The result never contains a secret (ContainsSecret is false).
std::string SafeKeyId(absl::string_view id);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_SCRUBBER_H_
