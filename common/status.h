// Status and Result<T>: errors travel as values across Courier's layers.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace courier {

// What went wrong, in terms a caller can act on. The HTTP layer maps each
// code to a status in one place: server::http_status (server/http/http.h).
enum class Code {
    kOk = 0,
    kInvalid,       // malformed or unacceptable input
    kNotFound,      // the thing named does not exist
    kConflict,      // it exists, or the state forbids the change
    kTooLarge,      // over a size limit
    kUnauthorized,  // identity missing or not trusted
    kForbidden,     // identity known, action refused
    kUnavailable,   // a dependency (store, APNs) cannot answer now; retry later
    kInternal,      // a bug or an environment failure
};

const char* code_name(Code c);

// The one spelling of the check is is_ok(); `operator bool` is kept for the
// code that still uses it and means the same.
class [[nodiscard]] Status {
  public:
    Status() = default;
    Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

    static Status ok() { return {}; }
    bool is_ok() const { return code_ == Code::kOk; }
    explicit operator bool() const { return is_ok(); }
    Code code() const { return code_; }
    const std::string& message() const { return message_; }
    std::string to_string() const;

  private:
    Code code_ = Code::kOk;
    std::string message_;
};

inline Status invalid(std::string m) {
    return {Code::kInvalid, std::move(m)};
}
inline Status not_found(std::string m) {
    return {Code::kNotFound, std::move(m)};
}
inline Status conflict(std::string m) {
    return {Code::kConflict, std::move(m)};
}
inline Status internal_error(std::string m) {
    return {Code::kInternal, std::move(m)};
}
inline Status unavailable(std::string m) {
    return {Code::kUnavailable, std::move(m)};
}

namespace detail {
// Programming errors in the use of Result: a message naming the misuse on
// stderr, then abort (in every build type, not only with assertions on).
[[noreturn]] inline void result_misuse(const char* what, const Status& s) {
    std::fprintf(stderr, "courier: Result misuse: %s (%s)\n", what, s.to_string().c_str());
    std::abort();
}
}  // namespace detail

// A value or the Status that explains its absence.
//
// Two misuses are programming errors and abort the process with a message
// instead of leaving a Result whose is_ok() and status() disagree, or
// reading an empty optional (undefined behaviour): constructing a Result
// from an ok Status (there is no value to hold), and reaching the value
// (value(), ->, *) of a Result that holds an error. Check is_ok() first.
template <class T>
class [[nodiscard]] Result {
  public:
    Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
    Result(Status status) : status_(std::move(status)) {  // NOLINT
        if (status_.is_ok()) detail::result_misuse("constructed from an ok Status", status_);
    }
    Result(Code code, std::string message) : Result(Status(code, std::move(message))) {}

    bool is_ok() const { return value_.has_value(); }
    explicit operator bool() const { return is_ok(); }
    const Status& status() const { return status_; }
    T& value() & { return checked(); }
    const T& value() const& { return checked(); }
    T&& value() && { return std::move(checked()); }
    T* operator->() { return &checked(); }
    const T* operator->() const { return &checked(); }
    T& operator*() & { return checked(); }
    const T& operator*() const& { return checked(); }

  private:
    T& checked() {
        if (!value_) detail::result_misuse("value of an error", status_);
        return *value_;
    }
    const T& checked() const {
        if (!value_) detail::result_misuse("value of an error", status_);
        return *value_;
    }

    std::optional<T> value_;
    Status status_;
};

}  // namespace courier
