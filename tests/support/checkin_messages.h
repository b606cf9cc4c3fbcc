// Check-in messages a test sends as a device, and what it reads back.
#pragma once

#include <optional>
#include <string>

#include "sim/device.h"

namespace courier::test {

// PUT /checkin with a check-in message of `type` for the device's UDID (and a
// BootstrapToken when given).
sim::HttpReply checkin(sim::SimDevice& d, const std::string& type,
                       const std::optional<std::string>& bootstrap = std::nullopt);

// The BootstrapToken an answer carries ("" if none).
std::string bootstrap_of(const sim::HttpReply& r);

}  // namespace courier::test
