#include "server/device/enroll_service.h"

#include <spdlog/spdlog.h>

#include "certs/pkcs.h"
#include "common/encoding.h"
#include "mdm/profile.h"

namespace courier::server {

EnrollService::EnrollService(const Stores& stores, const certs::CertificateAuthority& ca,
                             certs::Identity profile_signer, EnrollOptions opts, const Clock& clock)
    : bindings_(stores.bindings),
      push_certs_(stores.push_certs),
      tokens_(stores.tokens),
      ca_(ca),
      signer_(std::move(profile_signer)),
      opts_(std::move(opts)),
      clock_(clock) {}

void EnrollService::set_public_url(std::string url) {
    std::lock_guard lock(mu_);
    opts_.public_url = std::move(url);
}

EnrollResult EnrollService::handle(Request& req) {
    // The topic first: a token must not be used up by a request that fails.
    std::string topic = req.query_or("topic");
    if (topic.empty()) {
        auto certs = push_certs_.active_push_certs();
        if (!certs.is_ok()) return EnrollResult::failed(certs.status());
        const db::PushCert* newest = nullptr;
        for (const auto& c : *certs)
            if (!newest || c.uploaded_at > newest->uploaded_at) newest = &c;
        if (!newest) {
            EnrollResult none;
            none.kind = EnrollResult::Kind::kNoPushCert;
            return none;
        }
        topic = newest->topic;
    } else {
        auto c = push_certs_.active_push_cert(topic);
        if (!c.is_ok()) return EnrollResult::failed(c.status());
        if (!c->has_value())
            return EnrollResult::failed(not_found("no push certificate for topic " + topic));
    }

    // HEAD never touches the token (docs/security.md "Input limits"): mail scanners and
    // link previews probe URLs, and must not use up a single-use token.
    if (req.method == "HEAD") {
        EnrollResult head;
        head.kind = EnrollResult::Kind::kHead;
        return head;
    }

    // The token is claimed (atomically: of two concurrent uses of its last
    // use, one gets 403) before the profile is built, and given back when
    // building fails, so a failure does not burn it (docs/reliability.md "Guarantees").
    std::string token = req.query_or("token");
    std::string token_sha256;
    if (!token.empty()) {
        token_sha256 = certs::sha256_hex(token);
        auto s = tokens_.consume_enrollment_token(token_sha256, clock_.now());
        if (!s.is_ok()) {
            spdlog::warn("/enroll refused from {}: enrollment token {}", req.remote_address,
                         s.message());
            if (s.code() == Code::kForbidden)
                return EnrollResult::failed(
                    {Code::kForbidden, "enrollment token is unknown, expired or used up"});
            return EnrollResult::failed(std::move(s));
        }
    } else if (!opts_.enroll_open) {
        return EnrollResult::failed(
            {Code::kForbidden, "an enrollment token is required: /enroll?token=…"});
    }
    auto built = build_profile(topic, token_sha256);
    if (!built.is_ok()) {
        if (!token_sha256.empty()) {
            if (auto s = tokens_.release_enrollment_token(token_sha256); !s.is_ok())
                spdlog::error("/enroll: could not give back the enrollment token's use: {}",
                              s.to_string());
        }
        return EnrollResult::failed(built.status());
    }
    spdlog::info("/enroll: profile with topic {} issued to {}{}", topic, req.remote_address,
                 token.empty() ? "" : " (token)");
    EnrollResult r;
    r.profile = std::move(*built);
    return r;
}

Result<std::string> EnrollService::build_profile(const std::string& topic,
                                                 const std::string& token_sha256) {
    certs::IssueOptions io;
    io.common_name = "Courier device identity " + random_uuid();
    io.days = opts_.identity_days;
    io.server_auth = false;
    auto identity = ca_.issue(io);
    if (!identity.is_ok()) {
        spdlog::error("/enroll: issuing identity: {}", identity.status().to_string());
        return internal_error("could not issue a device identity");
    }
    if (!token_sha256.empty()) {
        // Provenance (docs/security.md "Re-binding"): with --enroll-open=false only an
        // identity recorded here may bind, to one device id.
        auto s = bindings_.record_issued_identity(certs::cert_sha256_hex(identity->cert.get()),
                                                  token_sha256, clock_.now());
        if (!s.is_ok()) {
            spdlog::error("/enroll: recording the issued identity: {}", s.to_string());
            return s;
        }
    }
    std::string password = random_token(12);
    auto p12 = certs::make_pkcs12(*identity, password, "Courier device identity");
    if (!p12.is_ok()) {
        spdlog::error("/enroll: PKCS#12: {}", p12.status().to_string());
        return internal_error("could not pack the device identity");
    }
    mdm::EnrollmentProfile p;
    p.topic = topic;
    {
        std::lock_guard lock(mu_);
        p.server_url = opts_.public_url + "/mdm";
        p.checkin_url = opts_.public_url + "/checkin";
    }
    p.sign_message = opts_.sign_message;
    p.identity_p12 = std::move(*p12);
    p.identity_password = password;
    p.root_ca_der = opts_.root_ca_der;
    auto signed_profile = certs::cms_sign_attached(mdm::build_enrollment_profile(p), signer_);
    if (!signed_profile.is_ok()) {
        spdlog::error("/enroll: signing: {}", signed_profile.status().to_string());
        return internal_error("could not sign the enrollment profile");
    }
    return std::move(*signed_profile);
}

}  // namespace courier::server
