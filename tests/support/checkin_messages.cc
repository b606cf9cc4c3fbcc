#include "tests/support/checkin_messages.h"

#include "common/plist/plist.h"

namespace courier::test {

sim::HttpReply checkin(sim::SimDevice& d, const std::string& type,
                       const std::optional<std::string>& bootstrap) {
    plist::Dict m;
    m.set("MessageType", type);
    m.set("UDID", d.config().udid);
    if (bootstrap) m.set("BootstrapToken", plist::Data{*bootstrap});
    return d.put("/checkin", plist::write_xml(plist::Value(std::move(m))),
                 "application/x-apple-aspen-mdm-checkin");
}

std::string bootstrap_of(const sim::HttpReply& r) {
    if (r.body.empty()) return "";
    auto d = plist::parse_dict(r.body);
    if (!d.is_ok() || !d->find_data("BootstrapToken")) return "";
    return d->find_data("BootstrapToken")->bytes;
}

}  // namespace courier::test
