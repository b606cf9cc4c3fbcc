// Status and Result<T>: errors travel as values across Courier's layers.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace courier {

// What went wrong, in terms a caller can act on. The HTTP layer maps each
// code to a status (kInvalid → 400, kNotFound → 404, kConflict → 409, ...).
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

inline Status invalid(std::string m) { return {Code::kInvalid, std::move(m)}; }
inline Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
inline Status internal_error(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }

// A value or the Status that explains its absence.
template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
    Result(Status status) : status_(std::move(status)) {}  // NOLINT
    Result(Code code, std::string message) : status_(code, std::move(message)) {}

    bool is_ok() const { return value_.has_value(); }
    explicit operator bool() const { return is_ok(); }
    const Status& status() const { return status_; }
    T& value() & { return *value_; }
    const T& value() const& { return *value_; }
    T&& value() && { return std::move(*value_); }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    T& operator*() & { return *value_; }
    const T& operator*() const& { return *value_; }

private:
    std::optional<T> value_;
    Status status_;
};

}  // namespace courier
