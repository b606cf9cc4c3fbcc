#include "tests/support/test_apns.h"

#include <fstream>

#include "tests/support/test_certs.h"

namespace courier::test {

Result<std::unique_ptr<apns::FakeApns>> start_test_apns(const std::filesystem::path& ca_file) {
    auto ca = make_test_ca("Fake APNs CA");
    auto leaf = ca.issue(certs::IssueOptions{.common_name = "127.0.0.1",
                                             .dns_names = {"localhost"},
                                             .ip_addresses = {"127.0.0.1"},
                                             .server_auth = true});
    if (!leaf.is_ok()) return leaf.status();
    apns::FakeApnsOptions fo;
    fo.cert_pem = certs::cert_to_pem(leaf->cert.get()) + certs::cert_to_pem(ca.cert());
    fo.key_pem = certs::key_to_pem(leaf->key.get());
    auto fake = apns::FakeApns::start(fo);
    if (!fake.is_ok()) return fake.status();
    std::ofstream(ca_file) << certs::cert_to_pem(ca.cert());
    return std::move(*fake);
}

}  // namespace courier::test
