#include "mdm/json_plist.h"

#include <boost/json.hpp>

#include "common/clock.h"
#include "common/encoding.h"

namespace courier::mdm {

namespace json = boost::json;

json::value plist_to_json(const plist::Value& v) {
    switch (v.type()) {
        case plist::Type::kString:
            return json::value(*v.as_string());
        case plist::Type::kInteger:
            return json::value(*v.as_integer());
        case plist::Type::kReal:
            return json::value(*v.as_real());
        case plist::Type::kBoolean:
            return json::value(*v.as_bool());
        case plist::Type::kData:
            return json::value(base64_encode(v.as_data()->bytes));
        case plist::Type::kDate:
            return json::value(format_rfc3339(v.as_date()->time));
        case plist::Type::kArray: {
            json::array out;
            out.reserve(v.as_array()->size());
            for (const auto& e : *v.as_array()) out.push_back(plist_to_json(e));
            return out;
        }
        case plist::Type::kDict: {
            json::object out;
            for (const auto& [k, e] : v.as_dict()->entries()) out[k] = plist_to_json(e);
            return out;
        }
    }
    return nullptr;
}

}  // namespace courier::mdm
