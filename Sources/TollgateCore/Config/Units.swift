/// Parsing of the human-friendly units used in config files.
public enum Units {
    /// `250ms`, `3s`, `1.5s`, `1m`, `2h`, `1d` → Duration. Plain numbers are refused: a unit must be explicit.
    public static func parseDuration(_ text: String) -> Duration? {
        let s = text.trimmingWhitespace()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, seconds) in units where s.hasSuffix(suffix) {
            let number = s.dropLast(suffix.count)
            // "ms" also ends with "s"; the order above tries "ms" first.
            guard let value = Double(number), value >= 0, value.isFinite else { return nil }
            let millis = (value * seconds * 1000).rounded()
            guard millis < Double(Int64.max / 2) else { return nil }
            return .milliseconds(Int64(millis))
        }
        return nil
    }

    /// `4096`, `16KiB`, `16KB`, `1MiB`, `1MB`, `1GiB` → bytes (KB/MB are taken as powers of 1024 too).
    public static func parseByteSize(_ text: String) -> Int? {
        let s = text.trimmingWhitespace()
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
                                      ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("B", 1)]
        for (suffix, factor) in units where s.hasSuffix(suffix) {
            guard let value = Int(s.dropLast(suffix.count).trimmingWhitespace()), value >= 0 else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: factor)
            return overflow ? nil : product
        }
        guard let value = Int(s), value >= 0 else { return nil }
        return value
    }
}

extension StringProtocol {
    public func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}

extension Duration {
    /// Whole nanoseconds (timers, monotonic clocks). The one conversion the modules share.
    public var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }

    /// Whole milliseconds (token ages, the token endpoint's `min_age_ms`).
    public var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
