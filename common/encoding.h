// Byte encodings used across the protocol: base64 (plist <data>, JSON data
// values, Mdm-Signature), hex (push tokens, thumbprints), random identifiers.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace courier {

// Standard padded base64 (RFC 4648 §4), no line breaks.
std::string base64_encode(std::string_view bytes);
// Decodes standard base64; ASCII whitespace anywhere is skipped (plist <data>
// wraps lines). Padding is optional. nullopt on any other character.
std::optional<std::string> base64_decode(std::string_view text);

std::string hex_encode(std::string_view bytes);  // lowercase
std::optional<std::string> hex_decode(std::string_view hex);

// Cryptographically random bytes (OpenSSL RAND_bytes).
std::string random_bytes(size_t n);
// Upper-case RFC 4122 version-4 UUID, as Apple writes them.
std::string random_uuid();
// URL-safe random token of n random bytes (hex).
std::string random_token(size_t n = 24);

// A secret for logs: first 4 characters and the length ("47e8…(64)").
std::string redact(std::string_view secret);

// Constant-time equality for secrets.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace courier
