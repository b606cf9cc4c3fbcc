// Whole-file reads and atomic writes: the one copy for every folder.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace courier {

// The file's bytes; kNotFound "cannot read <path>" when it cannot be opened.
Result<std::string> read_file(const std::filesystem::path& path);

// Writes `content` to a temp file beside `path` created with `mode` (never
// wider, whatever the umask), fsyncs it and renames it over `path`.
Status write_file(const std::filesystem::path& path, std::string_view content, mode_t mode);

// write_file with mode 0600: keys, the API key.
Status write_private_file(const std::filesystem::path& path, std::string_view content);

}  // namespace courier
