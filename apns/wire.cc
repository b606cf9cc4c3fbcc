#include "apns/wire.h"

#include <curl/curl.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <ctime>

namespace courier::apns::wire {

constexpr auto kDefaultExpiry = std::chrono::days(7);

bool is_hex_token(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}

std::string push_body(std::string_view push_magic) {
    return boost::json::serialize(boost::json::object{{"mdm", push_magic}});
}

int64_t expiration_seconds(const PushRequest& req) {
    int64_t expiration = to_unix(req.expiration);
    if (expiration > 0) return expiration;
    return to_unix(std::chrono::time_point_cast<std::chrono::seconds>(
        std::chrono::system_clock::now() + kDefaultExpiry));
}

std::chrono::milliseconds parse_retry_after(std::string_view v) {
    std::string value(v);
    if (!value.empty() && std::all_of(value.begin(), value.end(), ::isdigit)) {
        return std::chrono::seconds(std::stoll(value.substr(0, 12)));
    }
    time_t when = curl_getdate(value.c_str(), nullptr);
    if (when < 0) return {};
    auto delta = when - std::time(nullptr);
    return delta > 0 ? std::chrono::seconds(delta) : std::chrono::seconds(0);
}

std::string reason_from_body(std::string_view body) {
    if (body.empty()) return {};
    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec);
    if (ec || !v.is_object()) return {};
    auto* reason = v.as_object().if_contains("reason");
    if (reason == nullptr || !reason->is_string()) return {};
    return std::string(reason->as_string());
}

}  // namespace courier::apns::wire
