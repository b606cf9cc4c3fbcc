#include "common/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/encoding.h"

namespace courier {

Status write_file(const std::filesystem::path& path, std::string_view content, mode_t mode) {
    std::filesystem::path tmp = path;
    tmp += ".tmp." + random_token(4);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return internal_error("create " + tmp.string() + ": " + std::strerror(errno));
    // The umask may have narrowed the mode; never widen beyond `mode`.
    ::fchmod(fd, mode);
    const char* p = content.data();
    size_t left = content.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            std::string err = std::strerror(errno);
            ::close(fd);
            ::unlink(tmp.c_str());
            return internal_error("write " + tmp.string() + ": " + err);
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        std::string err = std::strerror(errno);
        ::unlink(tmp.c_str());
        return internal_error("flush " + tmp.string() + ": " + err);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        std::string err = std::strerror(errno);
        ::unlink(tmp.c_str());
        return internal_error("rename to " + path.string() + ": " + err);
    }
    return Status::ok();
}

Result<std::string> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Result<std::string>(Code::kNotFound, "cannot read " + path.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Status write_private_file(const std::filesystem::path& path, std::string_view content) {
    return write_file(path, content, 0600);
}

}  // namespace courier
