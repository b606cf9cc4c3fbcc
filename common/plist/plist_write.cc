#include <fmt/format.h>

#include <cmath>

#include "common/encoding.h"
#include "common/plist/plist.h"

namespace courier::plist {

// ---- Writing ---------------------------------------------------------------

namespace {

void escape_into(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            default:
                out += c;
        }
    }
}

void write_value(std::string& out, const Value& v, int indent) {
    auto pad = [&](int n) { out.append(static_cast<size_t>(n), '\t'); };
    switch (v.type()) {
        case Type::kString:
            pad(indent);
            out += "<string>";
            escape_into(out, *v.as_string());
            out += "</string>\n";
            break;
        case Type::kInteger:
            pad(indent);
            out += fmt::format("<integer>{}</integer>\n", *v.as_integer());
            break;
        case Type::kReal: {
            double d = *v.as_real();
            pad(indent);
            if (std::isnan(d))
                out += "<real>nan</real>\n";
            else if (std::isinf(d))
                out += d > 0 ? "<real>+infinity</real>\n" : "<real>-infinity</real>\n";
            else
                out += fmt::format("<real>{}</real>\n", d);
            break;
        }
        case Type::kBoolean:
            pad(indent);
            out += *v.as_bool() ? "<true/>\n" : "<false/>\n";
            break;
        case Type::kData:
            pad(indent);
            out += "<data>" + base64_encode(v.as_data()->bytes) + "</data>\n";
            break;
        case Type::kDate:
            pad(indent);
            out += "<date>" + format_rfc3339(v.as_date()->time) + "</date>\n";
            break;
        case Type::kArray:
            pad(indent);
            if (v.as_array()->empty()) {
                out += "<array/>\n";
                break;
            }
            out += "<array>\n";
            for (const auto& e : *v.as_array()) write_value(out, e, indent + 1);
            pad(indent);
            out += "</array>\n";
            break;
        case Type::kDict:
            pad(indent);
            if (v.as_dict()->empty()) {
                out += "<dict/>\n";
                break;
            }
            out += "<dict>\n";
            for (const auto& [k, e] : v.as_dict()->entries()) {
                pad(indent + 1);
                out += "<key>";
                escape_into(out, k);
                out += "</key>\n";
                write_value(out, e, indent + 1);
            }
            pad(indent);
            out += "</dict>\n";
            break;
    }
}

}  // namespace

std::string write_xml(const Value& root) {
    std::string out =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
        "<plist version=\"1.0\">\n";
    write_value(out, root, 0);
    out += "</plist>\n";
    return out;
}

}  // namespace courier::plist
