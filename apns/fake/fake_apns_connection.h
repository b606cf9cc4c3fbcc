// One HTTP/2 connection of the fake APNs: nghttp2's server session fed from
// an Asio TLS stream, on the io thread. Owned by the handlers in flight
// (shared_from_this); registered in FakeApns::Impl::connections once its
// handshake is done.
#pragma once

#include <nghttp2/nghttp2.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "apns/fake/fake_apns_impl.h"

namespace courier::apns {

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    Connection(FakeApns::Impl& impl, tcp::socket socket);
    ~Connection();

    // TLS handshake, then HTTP/2 (h2 by ALPN only).
    void start();
    // Stops reading and writing; the socket stays open (freeze_connections).
    void freeze();
    void goaway();
    void close();

  private:
    struct Stream {
        FakeApnsRequest req;
        bool duplicate_headers = false;
        bool too_large = false;
        std::string response_body;
        size_t sent = 0;
    };

    void on_handshake();
    void read();
    void flush();
    void on_request(int32_t stream_id);
    void respond(int32_t stream_id, const FakeApnsResponse& r, const std::string& apns_id);

    // nghttp2 callbacks; `user` is the Connection.
    static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                             uint32_t* flags, nghttp2_data_source* source, void*);
    static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
    static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                         size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                         void* user);
    static int on_data(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                       size_t len, void* user);
    static int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user);
    static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t, void* user);

    FakeApns::Impl& impl_;
    ssl::stream<tcp::socket> stream_;
    nghttp2_session* session_ = nullptr;
    uint64_t id_ = 0;
    std::string thumbprint_, uid_;
    std::array<uint8_t, 16 * 1024> rbuf_{};
    std::string wbuf_;
    bool writing_ = false;
    bool closed_ = false;
    bool frozen_ = false;
    std::map<int32_t, std::unique_ptr<Stream>> streams_;
};

}  // namespace courier::apns
