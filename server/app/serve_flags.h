// `courier serve` flags (SPEC.md, "Command line and configuration"), each
// also read from COURIER_<FLAG>; a flag on the command line wins.
#pragma once

#include "server/config.h"

namespace CLI {
class App;
}

namespace courier::server {

// Registers every serve flag on `app`, bound to `cfg` (whose current values
// are the defaults shown by --help).
void add_serve_options(CLI::App& app, Config* cfg);

}  // namespace courier::server
