// The device side of the protocol: PUT /checkin and PUT /mdm.
//
// One request flows: identity (DeviceAuthenticator) → decode (mdm/checkin.h)
// → binding and retirement checks → one store transaction → answer. Refusals
// answer 400 (never 401) and write nothing; a retired device gets 403 with
// the com.apple.unrecognized.device body.
//
// Binding rule (docs/device-endpoints.md): the identity certificate's
// SHA-256 is bound to the device id. Authenticate may bind a trusted
// certificate no other device holds (first enrollment, re-enrollment,
// renewed identity); a TokenUpdate may bind only while the device has no
// binding at all; every other message must carry a certificate bound to its
// device. The user channel shares its device's bindings.
#pragma once

#include <optional>
#include <string>

#include "common/clock.h"
#include "common/metrics.h"
#include "db/store.h"
#include "server/device_auth.h"
#include "server/http.h"

namespace courier::apns {
class PushService;
}

namespace courier::server {

class DeviceService {
  public:
    DeviceService(db::Store& store, DeviceAuthenticator& auth, apns::PushService* push,
                  const Clock& clock, Metrics& metrics);

    // /checkin (command_channel=false) or /mdm (true). Both accept both kinds
    // of message; the channel only changes what the log says.
    Response handle(Request& req, bool command_channel);
    // The same answer as handle(req, true), for the I/O thread: given only when
    // it needs no store write — an Idle with nothing queued, the most common
    // request of a fleet — else nullopt (nothing done, nothing counted), and
    // the request goes to a worker. Reads only (indexed, WAL: no waiting on
    // the writer) and the signature cache's CPU.
    // Bodies over kInlineBodyMax are never parsed here (nullopt): an Idle is a
    // few hundred bytes, and parsing must not hold an I/O thread for more
    // than about a millisecond (SPEC "input limits").
    std::optional<Response> handle_idle_without_writes(Request& req);
    static constexpr size_t kInlineBodyMax = 4096;

  private:
    std::optional<Response> process(Request& req, bool command_channel, bool writes_allowed);
    Response refuse(const Request& req, const std::string& who, const std::string& why);
    Response retired_answer();
    Status check_binding(const std::string& device_id, const DeviceCredential& cred, bool may_bind,
                         bool* unbound);

    db::Store& store_;
    DeviceAuthenticator& auth_;
    apns::PushService* push_;
    const Clock& clock_;
    Metrics& metrics_;
};

}  // namespace courier::server
