#include "mdm/profile.h"

#include "common/encoding.h"
#include "common/plist/plist.h"

namespace courier::mdm {

namespace {
plist::Dict payload(const std::string& type, const std::string& identifier, const std::string& uuid,
                    const std::string& display_name) {
    plist::Dict d;
    d.set("PayloadType", type);
    d.set("PayloadVersion", 1);
    d.set("PayloadIdentifier", identifier);
    d.set("PayloadUUID", uuid);
    d.set("PayloadDisplayName", display_name);
    return d;
}
}  // namespace

std::string build_enrollment_profile(const EnrollmentProfile& p) {
    plist::Array content;
    if (p.root_ca_der) {
        plist::Dict root = payload("com.apple.security.root", p.identifier + ".root", random_uuid(),
                                   "Courier server CA");
        root.set("PayloadContent", plist::Data{*p.root_ca_der});
        root.set("PayloadCertificateFileName", "courier-ca.cer");
        content.emplace_back(std::move(root));
    }
    const std::string identity_uuid = random_uuid();
    plist::Dict identity = payload("com.apple.security.pkcs12", p.identifier + ".identity",
                                   identity_uuid, "Device identity");
    identity.set("PayloadContent", plist::Data{p.identity_p12});
    identity.set("Password", p.identity_password);
    identity.set("PayloadCertificateFileName", "identity.p12");
    content.emplace_back(std::move(identity));

    plist::Dict mdm =
        payload("com.apple.mdm", p.identifier + ".mdm", random_uuid(), "Device management");
    mdm.set("IdentityCertificateUUID", identity_uuid);
    mdm.set("Topic", p.topic);
    mdm.set("ServerURL", p.server_url);
    mdm.set("CheckInURL", p.checkin_url);
    mdm.set("SignMessage", p.sign_message);
    mdm.set("AccessRights", p.access_rights);
    mdm.set("CheckOutWhenRemoved", true);
    mdm.set("ServerCapabilities", plist::Array{plist::Value("com.apple.mdm.per-user-connections"),
                                               plist::Value("com.apple.mdm.bootstraptoken")});
    content.emplace_back(std::move(mdm));

    plist::Dict top;
    top.set("PayloadType", "Configuration");
    top.set("PayloadVersion", 1);
    top.set("PayloadIdentifier", p.identifier);
    top.set("PayloadUUID", random_uuid());
    top.set("PayloadDisplayName", p.display_name);
    if (!p.organization.empty()) top.set("PayloadOrganization", p.organization);
    top.set("PayloadDescription", "Enrolls this device in Courier device management.");
    top.set("PayloadContent", std::move(content));
    return plist::write_xml(plist::Value(std::move(top)));
}

}  // namespace courier::mdm
