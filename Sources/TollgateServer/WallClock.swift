#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

extension NIODeadline {
    /// Wall-clock Unix seconds (budgets count calendar periods).
    static var wallClockSeconds: Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts.tv_sec
    }

    /// Wall-clock Unix milliseconds (token ages).
    static var wallClockMillis: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

extension TimeAmount {
    /// A config duration as NIO's time amount (timers, deadlines).
    init(_ duration: Duration) {
        self = .nanoseconds(duration.nanoseconds)
    }
}
