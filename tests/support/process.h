// A child process for tests that run the real `courier` binary: its
// standard output and error are captured together.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace courier::test {

class Process {
  public:
    // argv[0] is the program path. `env` is added to (and overrides) the
    // parent's environment, minus every COURIER_* variable of the parent.
    Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
            std::string cwd = {});
    ~Process();  // SIGKILLs a child still running
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    bool started() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }
    // Reads output until it contains `needle` (true) or the child exits or
    // `timeout` passes (false).
    bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout);
    std::string output() const;
    // Sends `sig` and waits up to `timeout` for the exit; the exit status
    // (128+signal when killed by one), or -1 on timeout.
    int stop(int sig, std::chrono::milliseconds timeout);
    int wait(std::chrono::milliseconds timeout) { return stop(0, timeout); }

  private:
    void read_loop();
    pid_t pid_ = -1;
    int fd_ = -1;
    int status_ = -1;
    // A reader thread empties the pipe all the time, so a chatty child
    // never blocks on a full pipe.
    std::thread reader_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string out_;
    bool eof_ = false;
};

// Runs to completion (≤ timeout): exit status and combined output.
struct RunResult {
    int status = -1;
    std::string output;
};
RunResult run_process(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace courier::test
