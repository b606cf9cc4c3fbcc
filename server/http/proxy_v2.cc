// The PROXY protocol v2 header (HAProxy's send-proxy-v2): its length and the
// client address it carries (listener.h).
#include <boost/asio/ip/address.hpp>
#include <cstring>

#include "server/http/listener.h"

namespace courier::server {

namespace net = boost::asio;

namespace {
constexpr unsigned char kProxyV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
}  // namespace

size_t proxy_v2_length(std::string_view first16, size_t max) {
    if (first16.size() < 16 || std::memcmp(first16.data(), kProxyV2Signature, 12) != 0) return 0;
    if ((static_cast<unsigned char>(first16[12]) >> 4) != 2) return 0;
    size_t len = (static_cast<size_t>(static_cast<unsigned char>(first16[14])) << 8) |
                 static_cast<unsigned char>(first16[15]);
    return 16 + len <= max ? 16 + len : 0;
}

std::optional<ProxyHeader> parse_proxy_v2(std::string_view h) {
    if (h.size() < 16 || proxy_v2_length(h, h.size()) != h.size()) return std::nullopt;
    auto byte = [&](size_t i) { return static_cast<unsigned char>(h[i]); };
    unsigned command = byte(12) & 0x0F;
    unsigned family = byte(13);
    ProxyHeader out;
    if (command == 0x0) {  // LOCAL: the proxy speaking for itself
        out.local = true;
        return out;
    }
    if (command != 0x1) return std::nullopt;
    size_t len = h.size() - 16;
    auto port_at = [&](size_t i) { return static_cast<uint16_t>((byte(i) << 8) | byte(i + 1)); };
    if (family == 0x11) {  // TCP over IPv4: src, dst, src port, dst port
        if (len < 12) return std::nullopt;
        net::ip::address_v4::bytes_type b;
        std::memcpy(b.data(), h.data() + 16, 4);
        out.address = net::ip::address_v4(b).to_string();
        out.port = port_at(24);
        return out;
    }
    if (family == 0x21) {  // TCP over IPv6
        if (len < 36) return std::nullopt;
        net::ip::address_v6::bytes_type b;
        std::memcpy(b.data(), h.data() + 16, 16);
        out.address = net::ip::address_v6(b).to_string();
        out.port = port_at(48);
        return out;
    }
    if (family == 0x00) {  // unspecified: the receiver uses the connection's address
        out.local = true;
        return out;
    }
    return std::nullopt;  // UDP, UNIX sockets: not what sits in front of Courier
}

}  // namespace courier::server
