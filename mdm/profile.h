// The enrollment profile (.mobileconfig) a device installs from /enroll:
// docs/device-endpoints.md "The enrollment profile". Plain data in, plist bytes out (unsigned; the
// caller signs it with certs::cms_sign_attached).
#pragma once

#include <optional>
#include <string>

namespace courier::mdm {

struct EnrollmentProfile {
    std::string identifier = "com.courier.enrollment";  // top-level PayloadIdentifier
    std::string display_name = "Courier MDM";
    std::string organization;
    std::string topic;        // push certificate's UID
    std::string server_url;   // <public-url>/mdm
    std::string checkin_url;  // <public-url>/checkin
    bool sign_message = false;
    int64_t access_rights = 8191;  // all thirteen rights
    std::string identity_p12;      // PKCS#12 DER
    std::string identity_password;
    std::optional<std::string> root_ca_der;  // com.apple.security.root, when TLS is self-issued
};

std::string build_enrollment_profile(const EnrollmentProfile& p);

}  // namespace courier::mdm
