// The web console's files (web/), compiled into the binary by
// cmake/embed_web.cmake: the generated console_assets.cc defines them.
#pragma once

#include <cstddef>
#include <string_view>

namespace courier::server {

struct ConsoleAsset {
    std::string_view name;  // path under web/, e.g. "app.js"
    std::string_view body;
};

// Every file of web/, sorted by name.
const ConsoleAsset* console_assets(size_t* count);

}  // namespace courier::server
