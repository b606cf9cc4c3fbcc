// A small Prometheus registry: counters and histograms with fixed label
// sets, rendered in the text exposition format. Lock-light: each series is
// an atomic; the registry lock is taken only to find or create a series.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace courier {

class Counter {
  public:
    void inc(double v = 1) {
        double cur = value_.load(std::memory_order_relaxed);
        while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
        }
    }
    double value() const { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<double> value_{0};
};

class Histogram {
  public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double v);
    struct Snapshot {
        std::vector<double> bounds;
        std::vector<uint64_t> cumulative;  // one per bound, then +Inf
        double sum = 0;
        uint64_t count = 0;
    };
    Snapshot snapshot() const;

  private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
    std::atomic<double> sum_{0};
};

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
  public:
    // Series are created on first use and live as long as the registry.
    Counter& counter(const std::string& name, const Labels& labels = {});
    Histogram& histogram(const std::string& name, const Labels& labels = {});
    // Gauges are read when rendering: fn is called under no lock of ours.
    void gauge(const std::string& name, std::function<std::vector<std::pair<Labels, double>>()> fn);
    void help(const std::string& name, const std::string& type, const std::string& text);

    std::string render() const;

    static std::vector<double> latency_buckets();  // seconds, 0.5 ms … 10 s

  private:
    static std::string key(const std::string& name, const Labels& labels);
    mutable std::mutex mu_;
    std::map<std::string, std::pair<std::string, std::string>> help_;  // name → (type, text)
    std::map<std::string, std::pair<Labels, std::unique_ptr<Counter>>> counters_;
    std::map<std::string, std::pair<Labels, std::unique_ptr<Histogram>>> histograms_;
    std::map<std::string, std::function<std::vector<std::pair<Labels, double>>()>> gauges_;
};

}  // namespace courier
