#include "common/plist/plist.h"

#include <algorithm>
#include <numeric>

namespace courier::plist {

// ---- Dict ------------------------------------------------------------------

namespace {
thread_local uint64_t t_key_comparisons = 0;  // key_comparisons(): a test hook
}  // namespace

uint64_t key_comparisons() {
    return t_key_comparisons;
}

size_t first_duplicate(const std::vector<std::string_view>& keys) {
    std::vector<size_t> order(keys.size());
    std::iota(order.begin(), order.end(), size_t{0});
    uint64_t compared = 0;
    // By key, then by position: a strict total order, so std::sort's
    // O(n log n) bound holds and equal keys end up in document order.
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        ++compared;
        int c = keys[a].compare(keys[b]);
        return c < 0 || (c == 0 && a < b);
    });
    size_t first = keys.size();
    for (size_t i = 1; i < order.size(); ++i) {
        ++compared;
        if (keys[order[i]] == keys[order[i - 1]]) first = std::min(first, order[i]);
    }
    t_key_comparisons += compared;
    return first;
}

const Value* Dict::find(std::string_view key) const {
    for (const auto& e : entries_) {
        ++t_key_comparisons;
        if (e.first == key) return &e.second;
    }
    return nullptr;
}

Value* Dict::find(std::string_view key) {
    for (auto& e : entries_) {
        ++t_key_comparisons;
        if (e.first == key) return &e.second;
    }
    return nullptr;
}

Value& Dict::set(std::string key, Value value) {
    if (Value* v = find(key)) {
        *v = std::move(value);
        return *v;
    }
    entries_.emplace_back(std::move(key), std::move(value));
    return entries_.back().second;
}

Value& Dict::append_unique(std::string key, Value value) {
    entries_.emplace_back(std::move(key), std::move(value));
    return entries_.back().second;
}

bool Dict::erase(std::string_view key) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        ++t_key_comparisons;
        if (it->first == key) {
            entries_.erase(it);
            return true;
        }
    }
    return false;
}

const std::string* Dict::find_string(std::string_view key) const {
    const Value* v = find(key);
    return v ? v->as_string() : nullptr;
}
const int64_t* Dict::find_integer(std::string_view key) const {
    const Value* v = find(key);
    return v ? v->as_integer() : nullptr;
}
const bool* Dict::find_bool(std::string_view key) const {
    const Value* v = find(key);
    return v ? v->as_bool() : nullptr;
}
const Data* Dict::find_data(std::string_view key) const {
    const Value* v = find(key);
    return v ? v->as_data() : nullptr;
}
const Dict* Dict::find_dict(std::string_view key) const {
    const Value* v = find(key);
    return v ? v->as_dict() : nullptr;
}
const Array* Dict::find_array(std::string_view key) const {
    const Value* v = find(key);
    return v ? v->as_array() : nullptr;
}

bool Dict::operator==(const Dict& other) const {
    if (entries_.size() != other.entries_.size()) return false;
    for (const auto& [k, v] : entries_) {
        const Value* o = other.find(k);
        if (!o || !(*o == v)) return false;
    }
    return true;
}

const char* type_name(Type t) {
    switch (t) {
        case Type::kString:
            return "string";
        case Type::kInteger:
            return "integer";
        case Type::kReal:
            return "real";
        case Type::kBoolean:
            return "boolean";
        case Type::kData:
            return "data";
        case Type::kDate:
            return "date";
        case Type::kArray:
            return "array";
        case Type::kDict:
            return "dictionary";
    }
    return "unknown";
}

}  // namespace courier::plist
