#include "mdm/command.h"

#include <fmt/format.h>
#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <limits>

#include "common/clock.h"
#include "common/encoding.h"
#include "common/log.h"

namespace courier::mdm {

namespace json = boost::json;

namespace {

const std::vector<CommandSpec>& table() {
    static const std::vector<CommandSpec> kTable = {
#include "mdm/command_table.inc"
    };
    return kTable;
}

std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
}

Status bad(const std::string& path, const std::string& what) {
    return invalid(path + ": " + what);
}

// A JSON value with no schema to go by: strings, numbers, booleans, arrays
// and objects map to their plist namesakes.
Result<plist::Value> natural(const json::value& v, const std::string& path) {
    switch (v.kind()) {
        case json::kind::string:
            return plist::Value(std::string(v.get_string()));
        case json::kind::int64:
            return plist::Value(v.get_int64());
        case json::kind::uint64:
            if (v.get_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                return bad(path, "integer beyond the plist range (int64)");
            return plist::Value(static_cast<int64_t>(v.get_uint64()));
        case json::kind::double_:
            return plist::Value(v.get_double());
        case json::kind::bool_:
            return plist::Value(v.get_bool());
        case json::kind::array: {
            plist::Array out;
            size_t i = 0;
            for (const auto& e : v.get_array()) {
                auto c = natural(e, path + "[" + std::to_string(i++) + "]");
                if (!c.is_ok()) return c.status();
                out.push_back(std::move(*c));
            }
            return plist::Value(std::move(out));
        }
        case json::kind::object: {
            plist::Dict out;
            for (const auto& [k, e] : v.get_object()) {
                auto c = natural(e, join(path, std::string(k)));
                if (!c.is_ok()) return c.status();
                out.append_unique(std::string(k), std::move(*c));  // JSON keys are unique
            }
            return plist::Value(std::move(out));
        }
        case json::kind::null:
            break;
    }
    return bad(path, "null is not a plist value (leave the key out)");
}

// Every key and string an XML plist can carry: command_from_json takes any
// JSON object (parse_admin_json refuses these first on the HTTP path, but the
// envelope written here must always parse back whoever called).
Status check_xml_text(const plist::Dict& d, const std::string& path);

Status check_xml_text(const plist::Value& v, const std::string& path) {
    if (const std::string* s = v.as_string(); s && !plist::is_xml_text(*s))
        return bad(path,
                   "holds a character XML 1.0 forbids (NUL, a control character, U+FFFE "
                   "or U+FFFF)");
    if (const plist::Array* a = v.as_array()) {
        size_t i = 0;
        for (const auto& e : *a)
            if (auto s = check_xml_text(e, path + "[" + std::to_string(i++) + "]"); !s.is_ok())
                return s;
    }
    if (const plist::Dict* d = v.as_dict()) return check_xml_text(*d, path);
    return Status::ok();
}

Status check_xml_text(const plist::Dict& d, const std::string& path) {
    for (const auto& [k, e] : d.entries()) {
        if (!plist::is_xml_text(k))
            return bad(join(path, log_escape(std::string_view(k).substr(0, 40))),
                       "key holds a character XML 1.0 forbids (NUL, a control character, "
                       "U+FFFE or U+FFFF)");
        if (auto s = check_xml_text(e, join(path, k)); !s.is_ok()) return s;
    }
    return Status::ok();
}

bool looks_like_profile(std::string_view bytes) {
    auto skip = bytes.find_first_not_of(" \t\r\n\xEF\xBB\xBF");
    if (skip == std::string_view::npos) return false;
    std::string_view s = bytes.substr(skip);
    if (s.starts_with("<?xml") || s.starts_with("<plist") || s.starts_with("<!DOCTYPE"))
        return true;
    if (s.starts_with("bplist00")) return true;
    // A signed profile: DER CMS SignedData (SEQUENCE).
    return static_cast<unsigned char>(bytes[0]) == 0x30 && bytes.size() > 16;
}

Result<plist::Value> convert(const json::value& v, const KeySpec& spec, const std::string& path);

// Top-level command keys are strict: a typo such as "Pin" is refused and
// required keys must be there. Inside nested dictionaries only the types of
// the keys the schema lists are checked: several (Settings items, for one)
// are unions whose members the schema flattens, marking one variant's keys
// required for all.
Result<plist::Dict> convert_dict(const json::object& o, const std::vector<KeySpec>& keys,
                                 const std::string& path, bool strict,
                                 const char* skip_key = nullptr) {
    plist::Dict out;
    for (const auto& [k, v] : o) {
        std::string key(k);
        if (skip_key && key == skip_key) continue;
        auto it =
            std::find_if(keys.begin(), keys.end(), [&](const KeySpec& s) { return s.key == key; });
        if (it == keys.end() && !strict) {
            auto c = natural(v, join(path, key));
            if (!c.is_ok()) return c.status();
            out.append_unique(key, std::move(*c));  // JSON keys are unique
            continue;
        }
        if (it == keys.end()) {
            std::string known;
            for (const auto& s : keys) known += (known.empty() ? "" : ", ") + s.key;
            return bad(join(path, key), known.empty() ? "this command takes no keys"
                                                      : "unknown key (known: " + known + ")");
        }
        auto c = convert(v, *it, join(path, key));
        if (!c.is_ok()) return c.status();
        out.append_unique(key, std::move(*c));  // JSON keys are unique
    }
    for (const auto& s : keys)
        if (strict && s.required && !o.contains(s.key)) return bad(join(path, s.key), "required");
    return out;
}

Result<plist::Value> convert(const json::value& v, const KeySpec& spec, const std::string& path) {
    if (v.is_null()) return bad(path, "null is not a plist value (leave the key out)");
    if (spec.any_type) return natural(v, path);
    switch (spec.type) {
        case plist::Type::kString:
            if (!v.is_string()) return bad(path, "must be a string");
            return plist::Value(std::string(v.get_string()));
        case plist::Type::kInteger:
            if (v.is_int64()) return plist::Value(v.get_int64());
            if (v.is_uint64() &&
                v.get_uint64() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                return plist::Value(static_cast<int64_t>(v.get_uint64()));
            if (v.is_double() && std::trunc(v.get_double()) == v.get_double() &&
                std::fabs(v.get_double()) < 9.2e18)
                return plist::Value(static_cast<int64_t>(v.get_double()));
            return bad(path, "must be an integer");
        case plist::Type::kReal:
            if (v.is_number()) return plist::Value(v.to_number<double>());
            return bad(path, "must be a number");
        case plist::Type::kBoolean:
            if (!v.is_bool()) return bad(path, "must be true or false");
            return plist::Value(v.get_bool());
        case plist::Type::kData: {
            if (!v.is_string()) return bad(path, "must be a base64 string (data)");
            auto bytes = base64_decode(v.get_string());
            if (!bytes) return bad(path, "not valid base64");
            return plist::Value(plist::Data{std::move(*bytes)});
        }
        case plist::Type::kDate: {
            if (!v.is_string()) return bad(path, "must be an RFC 3339 time string");
            auto t = parse_rfc3339(v.get_string());
            if (!t) return bad(path, "not an RFC 3339 time (2026-01-07T04:04:46Z)");
            return plist::Value(plist::Date{*t});
        }
        case plist::Type::kArray: {
            if (!v.is_array()) return bad(path, "must be an array");
            plist::Array out;
            size_t i = 0;
            for (const auto& e : v.get_array()) {
                std::string p = path + "[" + std::to_string(i++) + "]";
                auto c = spec.subkeys.empty() ? natural(e, p) : convert(e, spec.subkeys[0], p);
                if (!c.is_ok()) return c.status();
                out.push_back(std::move(*c));
            }
            return plist::Value(std::move(out));
        }
        case plist::Type::kDict: {
            if (!v.is_object()) return bad(path, "must be an object");
            if (spec.subkeys.empty()) return natural(v, path);  // free-form dictionary
            auto d = convert_dict(v.get_object(), spec.subkeys, path, false);
            if (!d.is_ok()) return d.status();
            return plist::Value(std::move(*d));
        }
    }
    return bad(path, "unsupported type");
}

// Rules the schema's types do not capture.
Status check_semantics(const std::string& type, const plist::Dict& cmd) {
    if (type == "DeviceLock") {
        if (const std::string* pin = cmd.find_string("PIN")) {
            bool digits = pin->size() == 6 && std::all_of(pin->begin(), pin->end(), [](char c) {
                              return c >= '0' && c <= '9';
                          });
            if (!digits) return bad("DeviceLock.PIN", "must be six digits");
        }
    }
    if (type == "InstallProfile") {
        const plist::Data* p = cmd.find_data("Payload");
        if (p && !looks_like_profile(p->bytes))
            return bad("InstallProfile.Payload",
                       "not a configuration profile (expected an XML or binary plist, or a "
                       "signed CMS profile, base64-encoded)");
    }
    return Status::ok();
}

std::string envelope(const std::string& uuid, plist::Dict command) {
    plist::Dict root;
    root.set("Command", plist::Value(std::move(command)));
    root.set("CommandUUID", plist::Value(uuid));
    return plist::write_xml(plist::Value(std::move(root)));
}

// Where the body's XML declaration (`<?xml` then a space or `?>`) starts,
// looked for in the prolog only (comments, processing instructions, DOCTYPE,
// text up to the root element), so a value never counts; npos without one.
// Linear in the body.
size_t xml_declaration_at(std::string_view body) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    size_t pos = 0;
    while ((pos = body.find('<', pos)) != std::string_view::npos) {
        std::string_view rest = body.substr(pos);
        if (rest.starts_with("<!--")) {
            size_t end = body.find("-->", pos + 4);
            if (end == std::string_view::npos) break;
            pos = end + 3;
        } else if (rest.starts_with("<?")) {
            if (rest.size() > 5 && (rest[2] | 0x20) == 'x' && (rest[3] | 0x20) == 'm' &&
                (rest[4] | 0x20) == 'l' && (space(rest[5]) || rest[5] == '?'))
                return pos;
            size_t end = body.find("?>", pos + 2);
            if (end == std::string_view::npos) break;
            pos = end + 2;
        } else if (rest.starts_with("<!")) {
            size_t end = body.find('>', pos + 2);
            if (end == std::string_view::npos) break;
            pos = end + 1;
        } else {
            break;  // the root element
        }
    }
    return std::string_view::npos;
}

}  // namespace

const CommandSpec* find_command_spec(std::string_view request_type) {
    const auto& t = table();
    auto it = std::find_if(t.begin(), t.end(),
                           [&](const CommandSpec& c) { return c.request_type == request_type; });
    return it == t.end() ? nullptr : &*it;
}

size_t command_spec_count() {
    return table().size();
}

bool is_valid_command_uuid(std::string_view uuid) {
    if (uuid.empty() || uuid.size() > 128) return false;
    return std::all_of(uuid.begin(), uuid.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == ':' || c == '-';
    });
}

Result<Command> command_from_raw_plist(std::string_view body) {
    auto root = plist::parse(body);
    if (!root.is_ok()) return invalid("command plist: " + root.status().message());
    // The body may be sent verbatim (below), and a device's strict parser
    // refuses the whole command for one bad byte anywhere: so the whole body,
    // comments, attribute values, DOCTYPE and processing instructions
    // included, must be UTF-8 text XML 1.0 allows (character references were
    // checked by plist::parse wherever they are). Linear in the body.
    if (!plist::is_xml_text(body))
        return invalid(
            "command plist: the body holds invalid UTF-8 or a character XML 1.0 forbids (NUL, a "
            "control character, U+FFFE or U+FFFF) outside the values too (in a comment, "
            "attribute, DOCTYPE or processing instruction); a device would refuse the command");
    // A device reads the body as the bytes it is: a byte order mark, or an
    // XML declaration anywhere but at the very start (not well-formed), would
    // let another encoding name through unchecked.
    if (body.starts_with("\xEF\xBB\xBF"))
        return invalid(
            "command plist: the body starts with a byte order mark (EF BB BF); send UTF-8 "
            "without one");
    if (size_t at = xml_declaration_at(body); at != std::string_view::npos && at != 0)
        return invalid(fmt::format(
            "command plist: the XML declaration is at offset {}; it must be at the very start of "
            "the body (nothing before it, not even whitespace)",
            at));
    if (body.starts_with("<?xml")) {
        std::string_view decl = body.substr(0, body.find("?>"));
        if (size_t e = decl.find("encoding"); e != std::string_view::npos) {
            std::string_view rest = decl.substr(e + 8);
            size_t q = rest.find_first_of("\"'");
            std::string_view name = q == std::string_view::npos ? rest : rest.substr(q + 1);
            name = name.substr(0, name.find_first_of("\"'"));
            if (!(name.size() == 5 && (name[0] | 0x20) == 'u' && (name[1] | 0x20) == 't' &&
                  (name[2] | 0x20) == 'f' && name[3] == '-' && name[4] == '8'))
                return invalid("command plist: the XML declaration names encoding '" +
                               std::string(name.substr(0, 40)) +
                               "'; the body is read and sent as UTF-8, so only UTF-8 is accepted");
        }
    }
    plist::Dict* dict = root->as_dict();
    if (!dict) return invalid("command plist: the root must be a <dict>");
    const plist::Value* cmd = dict->find("Command");
    if (!cmd) return invalid("Command: required (a dict with RequestType)");
    if (!cmd->as_dict()) return invalid("Command: must be a <dict>");
    const plist::Value* rt = cmd->as_dict()->find("RequestType");
    if (!rt) return invalid("Command.RequestType: required");
    if (!rt->as_string() || rt->as_string()->empty())
        return invalid("Command.RequestType: must be a non-empty <string>");

    Command out;
    out.request_type = *rt->as_string();
    const plist::Value* uuid = dict->find("CommandUUID");
    if (uuid) {
        if (!uuid->as_string() || uuid->as_string()->empty())
            return invalid("CommandUUID: must be a non-empty <string>");
        if (!is_valid_command_uuid(*uuid->as_string()))
            return invalid("CommandUUID: must be 1 to 128 characters of A-Z a-z 0-9 . _ : - only");
        out.uuid = *uuid->as_string();
        out.plist = std::string(body);  // verbatim: what the administrator sent
        return out;
    }
    out.uuid = random_uuid();
    dict->set("CommandUUID", plist::Value(out.uuid));
    out.plist = plist::write_xml(*root);
    return out;
}

Result<Command> command_from_json(const json::object& command, bool allow_unknown,
                                  std::optional<std::string> uuid) {
    const json::value* rt = command.if_contains("RequestType");
    if (!rt) return invalid("RequestType: required");
    if (!rt->is_string() || rt->get_string().empty())
        return invalid("RequestType: must be a non-empty string");
    std::string type(rt->get_string());
    if (uuid && !uuid->empty() && !is_valid_command_uuid(*uuid))
        return invalid("command_uuid: must be 1 to 128 characters of A-Z a-z 0-9 . _ : - only");

    plist::Dict cmd;
    cmd.set("RequestType", plist::Value(type));
    if (const CommandSpec* spec = find_command_spec(type)) {
        auto keys = convert_dict(command, spec->keys, type, true, "RequestType");
        if (!keys.is_ok()) return keys.status();
        for (auto& [k, v] : keys->entries()) cmd.set(k, v);
        if (auto s = check_semantics(type, cmd); !s.is_ok()) return s;
    } else if (allow_unknown) {
        for (const auto& [k, v] : command) {
            if (k == "RequestType") continue;
            auto c = natural(v, join(type, std::string(k)));
            if (!c.is_ok()) return c.status();
            cmd.append_unique(std::string(k), std::move(*c));  // unique, and not RequestType
        }
    } else {
        return invalid("RequestType: unknown request type '" + type +
                       "' (not in Apple's MDM schema; PUT /v1/enqueue takes any raw command)");
    }
    if (auto s = check_xml_text(cmd, type); !s.is_ok()) return s;

    Command out;
    out.uuid = uuid && !uuid->empty() ? *uuid : random_uuid();
    out.request_type = type;
    out.plist = envelope(out.uuid, std::move(cmd));
    return out;
}

}  // namespace courier::mdm
