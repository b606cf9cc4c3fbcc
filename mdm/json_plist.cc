#include "mdm/json_plist.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/encoding.h"
#include "common/log.h"

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

namespace {

constexpr size_t kMaxDepth = 64;
constexpr size_t kMaxObjectKeys = 10'000;

// A basic_parser handler that builds nothing: it only checks what
// boost::json::parse does not (duplicate keys are last-wins there).
class StrictJsonCheck {
  public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    std::string problem;  // set when a check fails

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_object_begin(boost::system::error_code&) {
        keys_.emplace_back();
        return true;
    }
    bool on_object_end(std::size_t, boost::system::error_code& ec) {
        // Duplicates by sorting, not hashing (plist::first_duplicate): no set of
        // keys can make this slower than O(n log n) comparisons.
        const auto& seen = keys_.back();
        std::vector<std::string_view> views(seen.begin(), seen.end());
        size_t dup = plist::first_duplicate(views);
        if (dup < views.size())
            return fail(ec, fmt::format("duplicate key '{}'", printable(views[dup])));
        keys_.pop_back();
        return true;
    }
    bool on_array_begin(boost::system::error_code&) { return true; }
    bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
    bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
        part_.append(s.data(), s.size());
        return true;
    }
    bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code& ec) {
        part_.append(s.data(), s.size());
        std::string key = std::move(part_);
        part_.clear();
        if (!plist::is_xml_text(key))
            return fail(ec, fmt::format("key '{}' holds a character XML 1.0 forbids (NUL, a "
                                        "control character, U+FFFE or U+FFFF)",
                                        printable(key)));
        auto& seen = keys_.back();
        if (seen.size() == kMaxObjectKeys)
            return fail(ec, fmt::format("more than {} keys in one object", kMaxObjectKeys));
        seen.push_back(std::move(key));  // duplicates: on_object_end
        return true;
    }
    bool on_string_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
        part_.append(s.data(), s.size());
        return true;
    }
    bool on_string(boost::json::string_view s, std::size_t, boost::system::error_code& ec) {
        part_.append(s.data(), s.size());
        bool ok = plist::is_xml_text(part_);
        std::string shown = ok ? std::string() : printable(part_);
        part_.clear();
        if (!ok)
            return fail(ec, fmt::format("string '{}' holds a character XML 1.0 forbids (NUL, a "
                                        "control character, U+FFFE or U+FFFF)",
                                        shown));
        return true;
    }
    bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
    bool on_int64(int64_t, boost::json::string_view, boost::system::error_code&) { return true; }
    bool on_uint64(uint64_t, boost::json::string_view, boost::system::error_code&) { return true; }
    bool on_double(double, boost::json::string_view, boost::system::error_code&) { return true; }
    bool on_bool(bool, boost::system::error_code&) { return true; }
    bool on_null(boost::system::error_code&) { return true; }
    bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
    bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }

  private:
    bool fail(boost::system::error_code& ec, std::string what) {
        problem = std::move(what);
        ec = boost::json::error::syntax;  // the message above says what
        return false;
    }
    // The first 40 bytes for an error message, control characters escaped.
    static std::string printable(std::string_view s) { return log_escape(s.substr(0, 40)); }

    std::vector<std::vector<std::string>> keys_;  // per open object, in order
    std::string part_;
};

}  // namespace

Result<json::value> parse_admin_json(std::string_view text) {
    json::parse_options opts;
    opts.max_depth = kMaxDepth;
    {
        json::basic_parser<StrictJsonCheck> check(opts);
        boost::system::error_code ec;
        check.write_some(false, text.data(), text.size(), ec);
        if (!check.handler().problem.empty()) return invalid("JSON: " + check.handler().problem);
        if (ec) {
            if (ec == json::error::too_deep)
                return invalid(fmt::format("JSON: nested deeper than {}", kMaxDepth));
            return invalid("JSON: " + ec.message());
        }
    }
    boost::system::error_code ec;
    json::value v = json::parse(json::string_view(text.data(), text.size()), ec, {}, opts);
    if (ec) return invalid("JSON: " + ec.message());
    return v;
}

}  // namespace courier::mdm
