// The administrators' and helpdesk's REST API (docs/api.md).
// Handlers translate HTTP ↔ JSON and call the store and the push service;
// they hold no state of their own.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/metrics.h"
#include "db/binding_store.h"
#include "db/command_queue.h"
#include "db/console_store.h"
#include "db/enrollment_store.h"
#include "db/enrollment_token_store.h"
#include "db/push_cert_store.h"
#include "db/webhook_store.h"
#include "server/http/http.h"

namespace courier::apns {
class PushService;
}

namespace courier::server {

class UiSessions;

struct AdminOptions {
    std::string api_key;
    int cert_warn_days = 10;
    bool metrics_public = false;
    std::string public_url;  // for enroll_url in token answers
    std::chrono::milliseconds push_wait{5000};
    // --vendor-cert/--vendor-key (PEM text; both or neither): CSRs also come
    // out vendor-signed (admin_console_api.cc).
    std::string vendor_cert_pem, vendor_key_pem;
    // Webhook events of a push certificate renewal (courier.pushcert.renewed):
    // the attachment lives across put_push_cert (db::WebhookStore::attach_events).
    std::function<std::unique_ptr<db::EventAttachment>(const db::PushCert& cert)> renewal_events;
    // Webhook events of a cancel (courier.command.finished, status canceled)
    // for the command's open targets, attached only_if_effective: the store
    // appends the ones whose target it canceled (db::CommandQueue::cancel_command).
    std::function<std::unique_ptr<db::EventAttachment>(const db::CommandInfo& cmd)> cancel_events;
};

class AdminApi {
  public:
    // The storage roles it uses (in the server, all one db::Store: server/app/app.cc).
    struct Stores {
        db::EnrollmentStore& enrollments;
        db::BindingStore& bindings;
        db::CommandQueue& queue;
        db::PushCertStore& push_certs;
        db::EnrollmentTokenStore& tokens;
        db::ConsoleStore* console = nullptr;  // overview, CSR keys (admin_console_api.cc)
    };
    AdminApi(const Stores& stores, apns::PushService& push, const Clock& clock, Metrics& metrics,
             AdminOptions opts);

    void register_routes(Router& router);
    // The console's sessions: with them set, a session cookie (and its CSRF
    // token where SPEC asks for one) stands in for the key. Before routes run.
    void set_ui_sessions(const UiSessions* ui) { ui_ = ui; }

    // true when the request carries the API key (Basic password or Bearer).
    bool authorized(const Request& req) const;

    // Why a request comes from another site, or nullopt: an Origin other
    // than --public-url's or the listener's own (Host), "Origin: null", or
    // a Sec-Fetch-Site other than same-origin/none (docs/security.md). Clients that send neither
    // header (curl) pass.
    std::optional<std::string> cross_site(const Request& req) const;

  private:
    // A cross-site request (403), then, when need_key, one without the key
    // (401); nullopt when neither. From the header alone: every admin route
    // also runs it before its body is read (Router::check_header).
    std::optional<Response> refusal(const Request& req, bool need_key) const;
    // `h` behind refusal(req, true).
    Handler guarded(Handler h) const;

    // push certificates (admin_pushcert.cc)
    Response put_pushcert(Request& req);
    Response get_pushcert(Request& req);
    Response pushcert_history(Request& req);
    // commands (admin_commands.cc)
    Response enqueue(Request& req);
    Response post_command(Request& req);
    Response get_command(Request& req);
    Response delete_command(Request& req);
    Response list_commands(Request& req);
    // devices (admin_devices.cc)
    Response list_devices(Request& req);
    Response get_device(Request& req);
    Response device_commands(Request& req);
    Response device_timeline(Request& req);
    Response retire(Request& req, bool retired);
    Response list_bindings(Request& req);
    Response approve_binding(Request& req);
    Response revoke_binding(Request& req);
    Response push_now(Request& req);
    Response create_token(Request& req);
    Response list_tokens(Request& req);
    Response delete_token(Request& req);
    Response metrics(Request& req);
    // the console's additions (admin_console_api.cc)
    Response overview(Request& req);
    Response pushcert_csr(Request& req);
    // A PEM certificate uploaded without its key: completed with a key kept
    // from POST /v1/pushcert/csr, or nullopt. *key_id: the key used.
    std::optional<std::string> with_pending_key(const std::string& body, int64_t* key_id);

    db::EnrollmentStore& enrollments_;
    db::BindingStore& bindings_;
    db::CommandQueue& queue_;
    db::PushCertStore& push_certs_;
    db::EnrollmentTokenStore& tokens_;
    db::ConsoleStore* console_;
    const UiSessions* ui_ = nullptr;
    apns::PushService& push_;
    const Clock& clock_;
    Metrics& metrics_;
    AdminOptions opts_;
};

}  // namespace courier::server
