// The device side of the protocol: PUT /checkin and PUT /mdm.
//
// One request flows: identity (DeviceAuthenticator) → decode (mdm/checkin.h)
// → binding and retirement checks → one store transaction → a DeviceResult,
// which server/device/device_handlers.h turns into the HTTP answer. Refusals
// answer 400 (never 401) and write nothing; a retired device gets 403 with
// the com.apple.unrecognized.device body.
//
// Binding rule (docs/security.md "Re-binding", docs/security.md): the identity
// certificate's SHA-256 is bound to the device id. Only Authenticate binds,
// a trusted certificate no other device holds; every other message must
// carry the device's active binding (the user channel shares its device's).
// A re-binding supersedes the old certificate and clears the device's
// secrets; with open enrollment it waits for an administrator while the old
// identity was used within BindingPolicy::quiet_period. A superseded
// certificate presented again is counted (courier_superseded_identity_total)
// and alarmed at most once an hour.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "db/binding_store.h"
#include "db/command_queue.h"
#include "db/enrollment_store.h"
#include "db/push_cert_store.h"
#include "db/read_scope.h"
#include "db/webhook_store.h"
#include "server/device/device_auth.h"
#include "server/http/http.h"

namespace courier::apns {
class PushService;
}

namespace courier::mdm {
struct EnrollmentIdentity;
}

namespace courier::server {

class WebhookService;

struct BindingPolicy {
    bool enroll_open = true;  // --enroll-open
    // A re-binding needs approval while the old identity was used this recently.
    std::chrono::seconds quiet_period = std::chrono::hours(24 * 7);
};

// What a device message came to, free of HTTP; device_response()
// (server/device/device_handlers.h) makes the answer of each kind.
struct DeviceResult {
    enum class Kind {
        kEmpty,              // 200, no body
        kDeclined,           // 410, no body: a UserAuthenticate, declined
        kPlist,              // 200, body: an XML plist (a command, the bootstrap token)
        kJson,               // 200, body: JSON (declarative management)
        kNoSuchDeclaration,  // 404: an unknown declarative management endpoint
        kRefused,            // 400 {"error": body}: refused, nothing written
        kRetired,            // 403 com.apple.unrecognized.device
        kFailed,             // status_response(status, context, Audience::kDevice)
    };
    Kind kind = Kind::kEmpty;
    std::string body;          // kPlist, kJson: the answer; kRefused: the reason
    Status status;             // kFailed
    std::string_view context;  // kFailed: "store" or nothing (a literal)
    std::string enrollment;    // the request log's enrollment, when known

    static DeviceResult failed(Status s, std::string_view context = {}) {
        DeviceResult r;
        r.kind = Kind::kFailed;
        r.status = std::move(s);
        r.context = context;
        return r;
    }
};

class DeviceService {
  public:
    // The storage roles it uses (in the server, all one db::Store: server/app/app.cc).
    struct Stores {
        db::EnrollmentStore& enrollments;
        db::BindingStore& bindings;
        db::CommandQueue& queue;
        db::PushCertStore& push_certs;
        db::ReadScopes& read_scopes;
    };
    DeviceService(const Stores& stores, DeviceAuthenticator& auth, apns::PushService* push,
                  const Clock& clock, Metrics& metrics);

    // /checkin (command_channel=false) or /mdm (true). Both accept both kinds
    // of message; the channel only changes what the log says.
    DeviceResult handle(Request& req, bool command_channel);
    // The same result as handle(req, true), for the I/O thread: given only when
    // it needs no store write — an Idle with nothing queued, the most common
    // request of a fleet — else nullopt (nothing done, nothing counted), and
    // the request goes to a worker. Reads only (indexed, WAL: no waiting on
    // the writer) and the signature cache's CPU.
    // Bodies over kInlineBodyMax are never parsed here (nullopt): an Idle is a
    // few hundred bytes, and parsing must not hold an I/O thread for more
    // than about a millisecond (docs/security.md "Input limits").
    std::optional<DeviceResult> handle_idle_without_writes(Request& req);
    // Set once during setup, before requests.
    void set_binding_policy(const BindingPolicy& p) { policy_ = p; }
    // Webhook events (SPEC "Webhooks"): written with the message's store
    // write; set once during setup, before requests. Null: none.
    void set_webhooks(WebhookService* w) { webhooks_ = w; }
    static constexpr size_t kInlineBodyMax = 4096;

  private:
    std::optional<DeviceResult> process(Request& req, bool command_channel, bool writes_allowed);
    // Logs and counts the refusal.
    DeviceResult refuse(const Request& req, const std::string& who, const std::string& why);
    // Every message but Authenticate: the certificate must be the device's
    // active binding. nullopt when it is; else the refusal (or, without
    // writes, nullopt in *defer when a worker must record the alarm).
    std::optional<DeviceResult> require_binding(const Request& req, const std::string& id,
                                                const std::string& device_id,
                                                const DeviceCredential& cred, bool writes_allowed,
                                                bool* defer);
    // Authenticate: may it bind? nullopt: go ahead (apply_authenticate
    // binds); else the refusal.
    std::optional<DeviceResult> admit_authenticate(const Request& req, const std::string& id,
                                                   const std::string& device_id,
                                                   const DeviceCredential& cred, SysTime now);
    // A superseded or revoked certificate was presented: counted, alarmed
    // (warn, timeline) at most once an hour per certificate, and refused.
    DeviceResult superseded_use(const Request& req, const db::Binding& b,
                                const std::string& claimed_id, SysTime now);

    // The events a message makes (only topics a destination takes).
    std::vector<db::OutboxEvent> checkin_events(const Request& req,
                                                const mdm::EnrollmentIdentity& ident,
                                                std::string_view message_type);
    std::vector<db::OutboxEvent> report_events(const Request& req,
                                               const mdm::EnrollmentIdentity& ident,
                                               std::string_view status, const std::string& uuid,
                                               std::optional<db::TargetStatus> finished);

    db::EnrollmentStore& enrollments_;
    db::BindingStore& bindings_;
    db::CommandQueue& queue_;
    db::PushCertStore& push_certs_;
    db::ReadScopes& read_scopes_;
    DeviceAuthenticator& auth_;
    apns::PushService* push_;
    const Clock& clock_;
    Metrics& metrics_;
    BindingPolicy policy_;
    WebhookService* webhooks_ = nullptr;
};

}  // namespace courier::server
