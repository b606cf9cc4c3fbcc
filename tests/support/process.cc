#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace courier::test {

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
                 std::string cwd) {
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        if (kv.rfind("COURIER_", 0) == 0) continue;
        auto eq = kv.find('=');
        if (eq != std::string::npos && env.count(kv.substr(0, eq))) continue;
        envs.push_back(kv);
    }
    for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : envs) cenv.push_back(e.data());
    cenv.push_back(nullptr);

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
        // The test runner may block signals; the child starts clean.
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        execve(cargv[0], cargv.data(), cenv.data());
        _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
    reader_ = std::thread([this] { read_loop(); });
}

Process::~Process() {
    if (pid_ > 0 && status_ < 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();  // EOF once the child is gone
    if (fd_ >= 0) close(fd_);
}

void Process::read_loop() {
    char buf[8192];
    while (true) {
        ssize_t n = read(fd_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        std::lock_guard lock(mu_);
        if (n <= 0) {
            eof_ = true;
            cv_.notify_all();
            return;
        }
        out_.append(buf, static_cast<size_t>(n));
        cv_.notify_all();
    }
}

std::string Process::output() const {
    std::lock_guard lock(mu_);
    return out_;
}

bool Process::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
        return out_.find(needle) != std::string::npos || eof_;
    }) && out_.find(needle) != std::string::npos;
}

int Process::stop(int sig, std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return -1;
    if (status_ >= 0) return status_;
    if (sig) kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        int st = 0;
        pid_t r = waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            if (reader_.joinable()) reader_.join();  // the rest of the output
            return status_;
        }
        if (std::chrono::steady_clock::now() >= deadline) return -1;
        // Exit is signalled by the pipe's EOF (the child's last descriptor).
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return eof_; });
    }
}

RunResult run_process(std::vector<std::string> argv, std::map<std::string, std::string> env,
                      std::chrono::milliseconds timeout) {
    Process p(std::move(argv), std::move(env));
    RunResult r;
    r.status = p.wait(timeout);
    r.output = p.output();
    return r;
}

}  // namespace courier::test
