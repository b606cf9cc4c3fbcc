// OpenSSL's thread-local error queue, drained into text: the one copy for
// certs/, apns/ and the tests.
#pragma once

#include <string>

namespace courier {

// "error:...; error:..." for every queued error, oldest first; "" when the
// queue is empty. The queue is empty afterwards.
std::string openssl_error_text();

}  // namespace courier
