// XML property lists: the value model and a strict codec.
//
// The parser is built for hostile input: it refuses rather than guesses.
// Anything that is not a well-formed Apple XML plist (unknown elements, a
// DOCTYPE with an internal subset, entity references other than the five
// predefined ones, integers outside int64, duplicate dict keys, depth or size
// over the limits) is an error naming what is wrong and where. No DTD is ever
// read and no entity is ever expanded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace courier::plist {

class Value;

// <data>: raw bytes (base64 in XML).
struct Data {
    std::string bytes;
    bool operator==(const Data&) const = default;
};

// <date>: whole seconds, UTC.
struct Date {
    SysTime time;
    bool operator==(const Date&) const = default;
};

using Array = std::vector<Value>;

// <dict>: keys are unique; insertion order is kept so a written plist reads
// like the one it came from.
class Dict {
  public:
    using Entry = std::pair<std::string, Value>;

    const Value* find(std::string_view key) const;
    Value* find(std::string_view key);
    bool contains(std::string_view key) const { return find(key) != nullptr; }
    // Inserts or replaces. Looks the key up first: O(size()).
    Value& set(std::string key, Value value);
    // Appends without looking the key up, O(1): the caller guarantees `key`
    // is not in the dict yet (the parser checks with first_duplicate(); a
    // boost::json::object's keys are unique by construction).
    Value& append_unique(std::string key, Value value);
    bool erase(std::string_view key);

    // Typed look-ups: nullptr when absent or of another type.
    const std::string* find_string(std::string_view key) const;
    const int64_t* find_integer(std::string_view key) const;
    const bool* find_bool(std::string_view key) const;
    const Data* find_data(std::string_view key) const;
    const Dict* find_dict(std::string_view key) const;
    const Array* find_array(std::string_view key) const;

    const std::vector<Entry>& entries() const { return entries_; }
    size_t size() const;  // defined below Value: clang needs Value complete
    bool empty() const;
    bool operator==(const Dict& other) const;

  private:
    std::vector<Entry> entries_;
};

enum class Type { kString, kInteger, kReal, kBoolean, kData, kDate, kArray, kDict };
const char* type_name(Type t);  // "string", "integer", ... as in Apple's schema

class Value {
  public:
    Value() : v_(std::string()) {}
    Value(std::string s) : v_(std::move(s)) {}    // NOLINT: values convert implicitly
    Value(const char* s) : v_(std::string(s)) {}  // NOLINT
    Value(int64_t i) : v_(i) {}                   // NOLINT
    Value(int i) : v_(int64_t{i}) {}              // NOLINT
    Value(double d) : v_(d) {}                    // NOLINT
    Value(bool b) : v_(b) {}                      // NOLINT
    Value(Data d) : v_(std::move(d)) {}           // NOLINT
    Value(Date d) : v_(d) {}                      // NOLINT
    Value(Array a) : v_(std::move(a)) {}          // NOLINT
    Value(Dict d) : v_(std::move(d)) {}           // NOLINT

    Type type() const { return static_cast<Type>(v_.index()); }
    bool is(Type t) const { return type() == t; }

    // Accessors: nullptr when the value is of another type.
    const std::string* as_string() const { return std::get_if<std::string>(&v_); }
    const int64_t* as_integer() const { return std::get_if<int64_t>(&v_); }
    const double* as_real() const { return std::get_if<double>(&v_); }
    const bool* as_bool() const { return std::get_if<bool>(&v_); }
    const Data* as_data() const { return std::get_if<Data>(&v_); }
    const Date* as_date() const { return std::get_if<Date>(&v_); }
    const Array* as_array() const { return std::get_if<Array>(&v_); }
    const Dict* as_dict() const { return std::get_if<Dict>(&v_); }
    Array* as_array() { return std::get_if<Array>(&v_); }
    Dict* as_dict() { return std::get_if<Dict>(&v_); }

    bool operator==(const Value& other) const { return v_ == other.v_; }

  private:
    // Order matches Type.
    std::variant<std::string, int64_t, double, bool, Data, Date, Array, Dict> v_;
};

inline size_t Dict::size() const {
    return entries_.size();
}
inline bool Dict::empty() const {
    return entries_.empty();
}

struct ParseLimits {
    size_t max_bytes = 16 * 1024 * 1024;
    size_t max_depth = 64;            // nested arrays/dicts
    size_t max_elements = 2'000'000;  // values in the whole document
    size_t max_dict_keys = 10'000;    // keys in one <dict> (docs/security.md "Input limits")
};

// True when `s` is valid UTF-8 holding only characters XML 1.0 allows: no
// NUL, no C0 control other than tab, LF and CR, no U+FFFE/U+FFFF, no
// surrogates. A device cannot parse a plist holding anything else, so such
// strings are refused wherever they enter (plists and JSON alike).
bool is_xml_text(std::string_view s);

// The index of the first key (in the given order) that equals an earlier
// one, or keys.size() when all are distinct. Sorts indices and compares
// neighbours: O(n log n) comparisons whatever the keys are, so no set of
// keys can degrade it the way colliding keys degrade a hash set with a
// known hash (docs/security.md "Input limits": parsing is linear in the input).
size_t first_duplicate(const std::vector<std::string_view>& keys);

// Test hook: key comparisons made on this thread so far by first_duplicate()
// and by Dict look-ups (find/set/erase/contains). Tests count work with it,
// so a quadratic key check coming back fails a test without timing anything.
uint64_t key_comparisons();

// Parses a whole XML plist document (optional XML declaration, optional
// Apple DOCTYPE line, <plist version="1.0"> with exactly one value).
// Errors are kInvalid (kTooLarge for max_bytes) with a message such as
// "plist: <integer> at offset 312: 99999999999999999999 is outside int64".
Result<Value> parse(std::string_view xml, const ParseLimits& limits = {});

// Same, and the root must be a <dict>.
Result<Dict> parse_dict(std::string_view xml, const ParseLimits& limits = {});

// Writes an XML plist with the XML declaration and Apple's DOCTYPE line, the
// way Apple's tools do: tab indentation, <true/>/<false/>, base64 data.
std::string write_xml(const Value& root);

}  // namespace courier::plist
