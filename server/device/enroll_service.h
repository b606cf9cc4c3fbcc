// GET /enroll: the signed enrollment profile with a fresh device identity.
// EnrollService decides and returns an EnrollResult; enroll_response()
// (server/device/device_handlers.h) makes the HTTP answer.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "certs/authority.h"
#include "common/clock.h"
#include "db/binding_store.h"
#include "db/enrollment_token_store.h"
#include "db/push_cert_store.h"
#include "server/http/http.h"

namespace courier::server {

struct EnrollOptions {
    std::string public_url;   // https://host:port, no trailing slash
    bool enroll_open = true;  // false: ?token= required
    bool sign_message = false;
    std::optional<std::string> root_ca_der;  // server CA to install (self-issued TLS)
    int identity_days = 730;
};

// What a GET /enroll came to, free of HTTP.
struct EnrollResult {
    enum class Kind {
        kProfile,     // 200, body: the signed profile
        kHead,        // a HEAD: 200 with the profile's Content-Type, no body
        kNoPushCert,  // 503: no push certificate imported yet
        kFailed,      // status_response(status): 403 token refusals, 404 topic, 5xx
    };
    Kind kind = Kind::kProfile;
    std::string profile;  // kProfile
    Status status;        // kFailed

    static EnrollResult failed(Status s) {
        EnrollResult r;
        r.kind = Kind::kFailed;
        r.status = std::move(s);
        return r;
    }
};

class EnrollService {
  public:
    // The storage roles it uses (in the server, all one db::Store: server/app/app.cc).
    struct Stores {
        db::BindingStore& bindings;
        db::PushCertStore& push_certs;
        db::EnrollmentTokenStore& tokens;
    };
    EnrollService(const Stores& stores, const certs::CertificateAuthority& ca,
                  certs::Identity profile_signer, EnrollOptions opts, const Clock& clock);

    // The signed profile; kForbidden for a bad/used/missing token (a browser
    // is fetching); kNoPushCert when no push certificate exists yet;
    // kUnavailable when the store fails; kInternal when the profile cannot be
    // built (the token's use is given back).
    EnrollResult handle(Request& req);
    // The URL written into profiles, when it is known only after binding.
    void set_public_url(std::string url);

  private:
    // A fresh identity, its PKCS#12 and the signed profile; kInternal with
    // a message for the client when a step fails (logged here).
    Result<std::string> build_profile(const std::string& topic, const std::string& token_sha256);

    db::BindingStore& bindings_;
    db::PushCertStore& push_certs_;
    db::EnrollmentTokenStore& tokens_;
    const certs::CertificateAuthority& ca_;
    certs::Identity signer_;
    std::mutex mu_;  // guards opts_.public_url
    EnrollOptions opts_;
    const Clock& clock_;
};

}  // namespace courier::server
