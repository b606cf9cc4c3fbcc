// A simulated Apple device: speaks the MDM check-in and command protocol to a
// Courier server over HTTPS (TLS client identity) or plain HTTP with an
// Mdm-Signature header. Used by the end-to-end tests and the fleet simulator.
//
// Not thread-safe: one SimDevice per thread (it keeps one keep-alive
// connection of its own).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/plist/plist.h"
#include "common/status.h"

namespace courier::sim {

enum class AuthMode {
    kTlsClientCert,  // identity presented in the TLS handshake
    kMdmSignature,   // Mdm-Signature header over the body
};

// A keep-alive connection several devices may take turns on, one at a time.
// Only for Mdm-Signature devices: a TLS client identity belongs to the
// connection it was presented on.
class Connection {
  public:
    Connection();
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    void* handle() const { return handle_; }  // CURL*

  private:
    void* handle_;
};

struct DeviceConfig {
    std::string server_url;  // e.g. https://127.0.0.1:8443 (no trailing slash)
    std::string ca_file;     // trust for the server's TLS certificate
    std::string identity_cert_pem, identity_key_pem;
    AuthMode auth = AuthMode::kTlsClientCert;
    std::string udid;
    std::string topic;
    std::string serial_number = "C02SIM000000";
    std::string token;       // raw push token bytes (32 random bytes when empty)
    std::string push_magic;  // random when empty
    long timeout_ms = 10000;
    // Borrowed connection (kMdmSignature only); the device's own when null.
    std::shared_ptr<Connection> connection;
};

struct HttpReply {
    long status = 0;
    std::string body;
    std::string content_type;
    std::string error;  // transport failure
};

// A command as the device received it.
struct ReceivedCommand {
    std::string uuid;
    std::string request_type;
    plist::Dict command;  // the "Command" dict
    std::string raw;
};

class SimDevice {
  public:
    explicit SimDevice(DeviceConfig cfg);
    ~SimDevice();
    SimDevice(const SimDevice&) = delete;
    SimDevice& operator=(const SimDevice&) = delete;

    const DeviceConfig& config() const { return cfg_; }
    std::string token_hex() const;

    // Check-ins (PUT /checkin). Status of the HTTP answer, or error.
    HttpReply authenticate();
    HttpReply token_update();
    HttpReply checkout();
    // Command channel (PUT /mdm). `next` receives the command in the answer.
    HttpReply idle(std::optional<ReceivedCommand>* next);
    HttpReply report(const std::string& status, const std::string& uuid,
                     std::optional<ReceivedCommand>* next, plist::Dict extra = {});

    // Low level: PUT a body to a path with this device's identity.
    HttpReply put(const std::string& path, const std::string& body,
                  const std::string& content_type);

    // Parses a command plist answer.
    static Result<ReceivedCommand> parse_command(const std::string& body);

  private:
    HttpReply send_report(plist::Dict msg, std::optional<ReceivedCommand>* next);
    DeviceConfig cfg_;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A GET with no identity (e.g. /enroll, /healthz). `ca_file` may be empty
// only for plain http.
HttpReply http_get(const std::string& url, const std::string& ca_file, long timeout_ms = 10000);

}  // namespace courier::sim
