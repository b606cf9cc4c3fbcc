#include "common/metrics.h"

#include <fmt/format.h>

#include <cmath>

namespace courier {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
    for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::observe(double v) {
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    double cur = sum_.load(std::memory_order_relaxed);
    while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
    }
}

Histogram::Snapshot Histogram::snapshot() const {
    Snapshot s;
    s.bounds = bounds_;
    uint64_t acc = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
        acc += buckets_[i].load(std::memory_order_relaxed);
        s.cumulative.push_back(acc);
    }
    s.count = acc;
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
}

std::vector<double> Metrics::latency_buckets() {
    return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::string Metrics::key(const std::string& name, const Labels& labels) {
    std::string k = name;
    for (const auto& [n, v] : labels) k += "\x1f" + n + "=" + v;
    return k;
}

Counter& Metrics::counter(const std::string& name, const Labels& labels) {
    std::lock_guard lock(mu_);
    auto& slot = counters_[key(name, labels)];
    if (!slot.second) slot = {labels, std::make_unique<Counter>()};
    return *slot.second;
}

Histogram& Metrics::histogram(const std::string& name, const Labels& labels) {
    std::lock_guard lock(mu_);
    auto& slot = histograms_[key(name, labels)];
    if (!slot.second) slot = {labels, std::make_unique<Histogram>(latency_buckets())};
    return *slot.second;
}

void Metrics::gauge(const std::string& name,
                    std::function<std::vector<std::pair<Labels, double>>()> fn) {
    std::lock_guard lock(mu_);
    gauges_[name] = std::move(fn);
}

void Metrics::help(const std::string& name, const std::string& type, const std::string& text) {
    std::lock_guard lock(mu_);
    help_[name] = {type, text};
}

namespace {
std::string label_text(const Labels& labels, const std::string& extra = {}) {
    if (labels.empty() && extra.empty()) return {};
    std::string out = "{";
    bool first = true;
    for (const auto& [n, v] : labels) {
        if (!first) out += ',';
        first = false;
        out += n + "=\"";
        for (char c : v) {
            if (c == '\\' || c == '"') out += '\\';
            if (c == '\n') {
                out += "\\n";
                continue;
            }
            out += c;
        }
        out += '"';
    }
    if (!extra.empty()) {
        if (!first) out += ',';
        out += extra;
    }
    return out + "}";
}

std::string num(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15)
        return fmt::format("{}", static_cast<int64_t>(v));
    return fmt::format("{}", v);
}
}  // namespace

std::string Metrics::render() const {
    std::map<std::string, std::function<std::vector<std::pair<Labels, double>>()>> gauges;
    std::string out;
    std::map<std::string, std::string> body;  // family → samples
    {
        std::lock_guard lock(mu_);
        gauges = gauges_;
        for (const auto& [k, slot] : counters_) {
            std::string name = k.substr(0, k.find('\x1f'));
            body[name] += name + label_text(slot.first) + " " + num(slot.second->value()) + "\n";
        }
        for (const auto& [k, slot] : histograms_) {
            std::string name = k.substr(0, k.find('\x1f'));
            auto s = slot.second->snapshot();
            std::string& b = body[name];
            for (size_t i = 0; i < s.bounds.size(); ++i)
                b += name + "_bucket" + label_text(slot.first, "le=\"" + num(s.bounds[i]) + "\"") +
                     " " + std::to_string(s.cumulative[i]) + "\n";
            b += name + "_bucket" + label_text(slot.first, "le=\"+Inf\"") + " " +
                 std::to_string(s.count) + "\n";
            b += name + "_sum" + label_text(slot.first) + " " + num(s.sum) + "\n";
            b += name + "_count" + label_text(slot.first) + " " + std::to_string(s.count) + "\n";
        }
    }
    for (const auto& [name, fn] : gauges) {
        std::string& b = body[name];
        for (const auto& [labels, v] : fn()) b += name + label_text(labels) + " " + num(v) + "\n";
    }
    std::map<std::string, std::pair<std::string, std::string>> help;
    {
        std::lock_guard lock(mu_);
        help = help_;
    }
    for (const auto& [name, samples] : body) {
        if (auto it = help.find(name); it != help.end()) {
            out += "# HELP " + name + " " + it->second.second + "\n";
            out += "# TYPE " + name + " " + it->second.first + "\n";
        }
        out += samples;
    }
    return out;
}

}  // namespace courier
