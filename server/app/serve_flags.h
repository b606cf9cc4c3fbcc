// `courier serve` flags (README.md; `courier serve --help`), each
// also read from COURIER_<FLAG>; a flag on the command line wins.
#pragma once

#include "server/app/config.h"

namespace CLI {
class App;
}

namespace courier::server {

// Registers every serve flag on `app`, bound to `cfg` (whose current values
// are the defaults shown by --help).
void add_serve_options(CLI::App& app, Config* cfg);

}  // namespace courier::server
