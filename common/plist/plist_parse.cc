#include "common/plist/plist.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <pugixml.hpp>

#include "common/encoding.h"

namespace courier::plist {

// ---- Parsing ---------------------------------------------------------------

namespace {

// Valid UTF-8; with `xml_chars`, also only characters XML 1.0 allows.
bool valid_utf8(std::string_view s, bool xml_chars) {
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            if (xml_chars && c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size()) return false;  // truncated sequence
        for (size_t k = 1; k <= n; ++k) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        // Overlong forms, surrogates and values past U+10FFFF.
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        if (xml_chars && (cp == 0xfffe || cp == 0xffff)) return false;
        i += n + 1;
    }
    return true;
}

// Refuses what pugixml would let through but a plist must never contain: a
// DOCTYPE internal subset (where entities are declared) and entity
// references other than the predefined five and character references.
Status prescan(std::string_view xml) {
    size_t pos = 0;
    while ((pos = xml.find('<', pos)) != std::string_view::npos) {
        if (xml.compare(pos, 4, "<!--") == 0) {
            size_t end = xml.find("-->", pos + 4);
            if (end == std::string_view::npos) return invalid("plist: unterminated comment");
            pos = end + 3;
            continue;
        }
        if (xml.compare(pos, 9, "<![CDATA[") == 0) {
            size_t end = xml.find("]]>", pos + 9);
            if (end == std::string_view::npos) return invalid("plist: unterminated CDATA");
            pos = end + 3;
            continue;
        }
        if (xml.compare(pos, 9, "<!DOCTYPE") == 0) {
            // Both searches stop at this DOCTYPE's end: linear however many there are.
            size_t end = xml.find('>', pos);
            std::string_view decl =
                xml.substr(pos, end == std::string_view::npos ? end : end - pos);
            if (decl.find('[') != std::string_view::npos)
                return invalid(fmt::format(
                    "plist: DOCTYPE at offset {} has an internal subset; entity declarations "
                    "are not accepted",
                    pos));
            if (end == std::string_view::npos) return invalid("plist: unterminated DOCTYPE");
            pos = end + 1;
            continue;
        }
        if (xml.compare(pos, 2, "<!") == 0)
            return invalid(fmt::format("plist: markup declaration at offset {} not allowed", pos));
        ++pos;
    }
    pos = 0;
    while ((pos = xml.find('&', pos)) != std::string_view::npos) {
        size_t semi = xml.find(';', pos);
        if (semi == std::string_view::npos || semi - pos > 12)
            return invalid(fmt::format("plist: bare '&' at offset {}", pos));
        std::string_view name = xml.substr(pos + 1, semi - pos - 1);
        bool ok = name == "lt" || name == "gt" || name == "amp" || name == "quot" || name == "apos";
        if (!ok && name.size() >= 2 && name[0] == '#') {
            std::string_view digits = name.substr(1);
            int base = 10;
            if (!digits.empty() && (digits[0] == 'x' || digits[0] == 'X')) {
                digits.remove_prefix(1);
                base = 16;
            }
            uint32_t cp = 0;
            auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, base);
            if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size())
                return invalid(fmt::format("plist: malformed character reference &{}; at offset {}",
                                           name, pos));
            // XML 1.0 "Char", wherever the reference is (text, attribute value):
            // the device's parser refuses the whole document otherwise.
            bool xml_char = cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
                            (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
            if (!xml_char)
                return invalid(fmt::format(
                    "plist: character reference &{}; at offset {} names a character XML 1.0 "
                    "forbids (NUL, a control character, U+FFFE or U+FFFF, a surrogate)",
                    name, pos));
            ok = true;
        }
        if (!ok)
            return invalid(
                fmt::format("plist: entity reference &{}; at offset {} not allowed", name, pos));
        pos = semi + 1;
    }
    return Status::ok();
}

std::string_view trim(std::string_view s) {
    while (!s.empty() &&
           (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

class Converter {
  public:
    Converter(std::string_view xml, const ParseLimits& limits) : xml_(xml), limits_(limits) {}

    Result<Value> convert(const pugi::xml_node& node, size_t depth) {
        if (++elements_ > limits_.max_elements)
            return error(node, fmt::format("more than {} values", limits_.max_elements));
        if (depth > limits_.max_depth)
            return error(node, fmt::format("nested deeper than {}", limits_.max_depth));
        std::string_view name = node.name();
        if (name == "dict") return convert_dict(node, depth);
        if (name == "array") return convert_array(node, depth);
        if (node.attributes_begin() != node.attributes_end())
            return error(node, "attributes are not allowed here");
        std::string text;
        auto st = leaf_text(node, &text);
        if (!st.is_ok()) return st;
        if (name == "string") {
            if (!valid_utf8(text, false)) return error(node, "string is not valid UTF-8");
            if (!valid_utf8(text, true))
                return error(node,
                             "string holds a character XML 1.0 forbids (NUL, a control "
                             "character, U+FFFE or U+FFFF)");
            return Value(std::move(text));
        }
        if (name == "integer") {
            std::string_view t = trim(text);
            if (!t.empty() && t.front() == '+') t.remove_prefix(1);
            int64_t v = 0;
            auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
            if (ec == std::errc::result_out_of_range)
                return error(node, fmt::format("{} is outside int64", t));
            if (t.empty() || ec != std::errc() || p != t.data() + t.size())
                return error(node, fmt::format("'{}' is not an integer", t.substr(0, 40)));
            return Value(v);
        }
        if (name == "real") {
            std::string t(trim(text));
            char* end = nullptr;
            double d = t.empty() ? 0 : std::strtod(t.c_str(), &end);
            if (t.empty() || end != t.c_str() + t.size())
                return error(node, fmt::format("'{}' is not a real number", t.substr(0, 40)));
            return Value(d);
        }
        if (name == "true" || name == "false") {
            if (!trim(text).empty()) return error(node, "<true/> and <false/> take no content");
            return Value(name == "true");
        }
        if (name == "data") {
            auto bytes = base64_decode(text);
            if (!bytes) return error(node, "data is not valid base64");
            return Value(Data{std::move(*bytes)});
        }
        if (name == "date") {
            std::string_view t = trim(text);
            auto tp = parse_rfc3339(t);
            if (!tp) return error(node, fmt::format("'{}' is not a date", t.substr(0, 40)));
            return Value(Date{*tp});
        }
        if (name == "key") return error(node, "<key> outside a <dict>");
        return error(node, fmt::format("unknown element <{}>", std::string(name).substr(0, 40)));
    }

    Status error(const pugi::xml_node& node, const std::string& what) const {
        return invalid(fmt::format("plist: <{}> at offset {}: {}",
                                   std::string(node.name()).substr(0, 40), node.offset_debug(),
                                   what));
    }

  private:
    // Text of a leaf element: only character data and CDATA children.
    Status leaf_text(const pugi::xml_node& node, std::string* out) {
        for (auto c = node.first_child(); c; c = c.next_sibling()) {
            if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata)
                *out += c.value();
            else if (c.type() == pugi::node_element)
                return error(node, fmt::format("unexpected element <{}> inside",
                                               std::string(c.name()).substr(0, 40)));
        }
        return Status::ok();
    }

    Status no_text(const pugi::xml_node& c, const pugi::xml_node& parent) {
        if ((c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) &&
            !trim(c.value()).empty())
            return error(parent, "text outside of a value");
        return Status::ok();
    }

    Result<Value> convert_array(const pugi::xml_node& node, size_t depth) {
        Array arr;
        for (auto c = node.first_child(); c; c = c.next_sibling()) {
            if (c.type() != pugi::node_element) {
                if (auto s = no_text(c, node); !s.is_ok()) return s;
                continue;
            }
            auto v = convert(c, depth + 1);
            if (!v.is_ok()) return v.status();
            arr.push_back(std::move(*v));
        }
        return Value(std::move(arr));
    }

    Result<Value> convert_dict(const pugi::xml_node& node, size_t depth) {
        Dict dict;
        std::vector<pugi::xml_node> key_nodes;  // for the error naming a duplicate
        std::optional<std::string> key;
        for (auto c = node.first_child(); c; c = c.next_sibling()) {
            if (c.type() != pugi::node_element) {
                if (auto s = no_text(c, node); !s.is_ok()) return s;
                continue;
            }
            if (std::string_view(c.name()) == "key") {
                if (key) return error(c, "two <key>s in a row");
                std::string k;
                if (auto s = leaf_text(c, &k); !s.is_ok()) return s;
                if (!valid_utf8(k, false)) return error(c, "key is not valid UTF-8");
                if (!valid_utf8(k, true))
                    return error(c,
                                 "key holds a character XML 1.0 forbids (NUL, a control "
                                 "character, U+FFFE or U+FFFF)");
                if (key_nodes.size() == limits_.max_dict_keys)
                    return error(
                        node, fmt::format("more than {} keys in one dict", limits_.max_dict_keys));
                key_nodes.push_back(c);
                key = std::move(k);
                continue;
            }
            if (!key) return error(c, "value without a <key>");
            auto v = convert(c, depth + 1);
            if (!v.is_ok()) return v.status();
            dict.append_unique(std::move(*key), std::move(*v));  // checked below
            key.reset();
        }
        if (key) return error(node, fmt::format("key '{}' has no value", key->substr(0, 60)));
        // Duplicates, once the dict is whole: sorting, not hashing (first_duplicate).
        std::vector<std::string_view> keys;
        keys.reserve(dict.size());
        for (const auto& e : dict.entries()) keys.push_back(e.first);
        if (size_t dup = first_duplicate(keys); dup < keys.size())
            return error(key_nodes[dup],
                         fmt::format("duplicate key '{}'", std::string(keys[dup].substr(0, 60))));
        return Value(std::move(dict));
    }

    std::string_view xml_;
    const ParseLimits& limits_;
    size_t elements_ = 0;
};

}  // namespace

Result<Value> parse(std::string_view xml, const ParseLimits& limits) {
    if (xml.size() > limits.max_bytes)
        return Status(Code::kTooLarge, fmt::format("plist: {} bytes is over the limit of {}",
                                                   xml.size(), limits.max_bytes));
    if (xml.empty()) return invalid("plist: empty body");
    if (auto s = prescan(xml); !s.is_ok()) return s;
    // Cheap nesting bound before pugixml builds a tree: count '<' of element
    // starts minus ends would be exact; an upper bound on depth is enough to
    // keep a hostile 10^6-deep document from being walked at all.
    {
        size_t depth = 0, max_depth = 0;
        size_t close = 0;  // the first '>' after i: found once, reused (linear)
        for (size_t i = 0; i + 1 < xml.size(); ++i) {
            if (xml[i] != '<') continue;
            char n = xml[i + 1];
            if (n == '/') {
                if (depth) --depth;
            } else if (n != '?' && n != '!') {
                if (close <= i) close = xml.find('>', i);
                if (close == std::string_view::npos)
                    return invalid(fmt::format("plist: unterminated tag at offset {}", i));
                if (xml[close - 1] == '/') continue;
                max_depth = std::max(max_depth, ++depth);
            }
        }
        if (max_depth > limits.max_depth + 1)
            return invalid(fmt::format("plist: nested deeper than {}", limits.max_depth));
    }
    pugi::xml_document doc;
    unsigned opts =
        pugi::parse_cdata | pugi::parse_escapes | pugi::parse_eol | pugi::parse_ws_pcdata_single;
    pugi::xml_parse_result r = doc.load_buffer(xml.data(), xml.size(), opts, pugi::encoding_utf8);
    if (!r)
        return invalid(
            fmt::format("plist: malformed XML at offset {}: {}", r.offset, r.description()));
    pugi::xml_node root;
    for (auto c = doc.first_child(); c; c = c.next_sibling()) {
        if (c.type() == pugi::node_element) {
            if (root) return invalid("plist: more than one root element");
            root = c;
        } else if (c.type() == pugi::node_pcdata && !trim(c.value()).empty()) {
            return invalid("plist: text outside the root element");
        }
    }
    if (!root || std::string_view(root.name()) != "plist")
        return invalid("plist: the root element must be <plist>");
    pugi::xml_node value;
    for (auto c = root.first_child(); c; c = c.next_sibling()) {
        if (c.type() == pugi::node_element) {
            if (value) return invalid("plist: <plist> holds more than one value");
            value = c;
        } else if ((c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) &&
                   !trim(c.value()).empty()) {
            return invalid("plist: text directly inside <plist>");
        }
    }
    if (!value) return invalid("plist: <plist> is empty");
    Converter conv(xml, limits);
    return conv.convert(value, 1);
}

bool is_xml_text(std::string_view s) {
    return valid_utf8(s, true);
}

Result<Dict> parse_dict(std::string_view xml, const ParseLimits& limits) {
    auto v = parse(xml, limits);
    if (!v.is_ok()) return v.status();
    Dict* d = v->as_dict();
    if (!d)
        return invalid(
            fmt::format("plist: the root is a <{}>, not a <dict>", type_name(v->type())));
    return std::move(*d);
}

}  // namespace courier::plist
