// Keys that all share one std::hash<std::string> value in libstdc++, whatever
// the seed: the hash-flooding input of review finding 10 (issue #11). Used to
// show that the duplicate-key checks (plist::first_duplicate) do the same
// bounded work for them as for any keys.
//
// libstdc++ hashes 8-byte blocks as h = (h ^ f(block)) * m with
// f(x) = shift_mix(x * m) * m, a bijection. Flipping the top bit of a word
// before a multiplication by an odd m flips exactly the top bit after it, so
// the block pairs "aa" and "bb" with f(b) = f(a) ^ 2^63 leave the same state
// for every incoming state: 14 such positions give 2^14 colliding keys.
#pragma once

#include <string>
#include <vector>

namespace courier::test {

// The pair below was found by a seeded random search over 8-byte blocks of
// complete UTF-8 characters (no control, '<', '>', '&', '"' or '\\'), so the
// keys are valid plist <key> text and JSON keys alike: a = "Yg.Woh\u02F6",
// b = "Ygq=\u0502#(", and f(b) == f(a) ^ 2^63.
inline std::vector<std::string> hash_colliding_keys(size_t count) {
    const std::string a = "Yg.Woh\xcb\xb6", b = "Ygq=\xd4\x82#(";
    std::vector<std::string> keys;
    keys.reserve(count);
    for (size_t i = 0; i < count; ++i) {  // count <= 2^14
        std::string key;
        for (int bit = 0; bit < 14; ++bit) {
            const std::string& block = (i >> bit) & 1 ? b : a;
            key.append(block).append(block);
        }
        keys.push_back(std::move(key));
    }
    return keys;
}

}  // namespace courier::test
