import Foundation

/// The time a budget's spend is counted over.
public enum BudgetPeriod: Sendable, Equatable, CustomStringConvertible {
    /// Calendar periods that start at midnight / the hour / the 1st, in the budget's time zone.
    case hour, day, month
    /// A sliding window: spend older than `seconds` no longer counts.
    case rolling(seconds: Int64)

    public init?(_ text: String) {
        switch text {
        case "hour": self = .hour
        case "day": self = .day
        case "month": self = .month
        default:
            guard text.hasPrefix("rolling:"), let d = Units.parseDuration(String(text.dropFirst(8))) else { return nil }
            let seconds = d.components.seconds
            guard seconds >= 60 else { return nil }
            self = .rolling(seconds: seconds)
        }
    }

    public var description: String {
        switch self {
        case .hour: "hour"
        case .day: "day"
        case .month: "month"
        case .rolling(let s): "rolling:\(s)s"
        }
    }

    /// Slices of a rolling window: spend leaves the window up to one slice late (never early).
    public static let rollingSlices: Int64 = 60

    /// The period containing `time` (Unix seconds) as `[start, end)`. For rolling windows, the start
    /// of the oldest slice still counted and the end of the current slice.
    public func bounds(containing time: Int64, in zone: TimeZone) -> (start: Int64, end: Int64) {
        switch self {
        case .rolling(let seconds):
            let slice = max(1, seconds / Self.rollingSlices)
            let sliceStart = time - ((time % slice) + slice) % slice
            return (sliceStart - seconds + slice, sliceStart + slice)
        case .hour, .day, .month:
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            let date = Date(timeIntervalSince1970: TimeInterval(time))
            let component: Calendar.Component = self == .hour ? .hour : self == .day ? .day : .month
            guard let interval = calendar.dateInterval(of: component, for: date) else {
                return (time, time + 3600)
            }
            return (Int64(interval.start.timeIntervalSince1970), Int64(interval.end.timeIntervalSince1970))
        }
    }
}
