// What both APNs senders (libcurl, nghttp2) put on and read off the wire:
// the request body and expiration, and the parts of an answer they report.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "apns/pusher.h"

namespace courier::apns::wire {

// Lowercase or uppercase hex, not empty: the only tokens a path may carry.
bool is_hex_token(std::string_view s);
// {"mdm":"<PushMagic>"}, JSON-escaped.
std::string push_body(std::string_view push_magic);
// apns-expiration in Unix seconds; an unset expiration (the epoch) means
// now + 7 days (0 would tell APNs to try once and drop the push).
int64_t expiration_seconds(const PushRequest& req);
// Retry-After: delta-seconds or an HTTP date (RFC 9110 §10.2.3); 0 if neither.
std::chrono::milliseconds parse_retry_after(std::string_view value);
// The "reason" member of an APNs error body; empty when there is none.
std::string reason_from_body(std::string_view body);

constexpr size_t kMaxResponseBody = 16 * 1024;  // APNs answers a few dozen bytes

}  // namespace courier::apns::wire
