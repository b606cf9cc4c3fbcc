// The fake APNs the in-process and child-process servers push to.
#pragma once

#include <filesystem>
#include <memory>

#include "apns/fake/fake_apns.h"
#include "common/status.h"

namespace courier::test {

// A FakeApns on 127.0.0.1 with TLS from a throwaway CA, whose certificate is
// written to `ca_file` (the server's --apns-ca).
Result<std::unique_ptr<apns::FakeApns>> start_test_apns(const std::filesystem::path& ca_file);

}  // namespace courier::test
