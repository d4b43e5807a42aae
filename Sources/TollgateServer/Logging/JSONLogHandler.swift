import Foundation
import Logging
import TollgateCore

/// A swift-log handler that writes each message as one JSON line to a ``LogSink``.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let sink: LogSink

    public init(label: String, sink: LogSink = .standardOutput) {
        self.label = label
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var members: [JSONMember] = [
            JSONMember("time", .string(LogTime.now())),
            JSONMember("level", .string(event.level.rawValue)),
            JSONMember("logger", .string(label)),
            JSONMember("msg", .string(event.message.description)),
        ]
        let merged = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new })
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            members.append(JSONMember(key, Self.json(value)))
        }
        sink.write(JSONValue.object(members).serialized)
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): .string(s)
        case .stringConvertible(let c): .string(c.description)
        case .array(let items): .array(items.map(json))
        case .dictionary(let d): .object(d.sorted(by: { $0.key < $1.key }).map { JSONMember($0.key, json($0.value)) })
        }
    }
}

/// RFC 3339 UTC timestamps with milliseconds, for log lines.
enum LogTime {
    /// Now, as `2026-12-02T02:20:33.123Z`.
    static func now() -> String {
        var clock = LogClock()
        return String(decoding: [UInt8](atMost: LogClock.maxBytes) { clock.put(into: &$0) }, as: UTF8.self)
    }
}

/// Writes the current UTC time as `2026-12-02T02:20:33.123Z`, formatting the date and time only
/// when the second changes (the access log writes one per line).
struct LogClock {
    /// The most bytes ``put(into:)`` writes (a year of up to 20 digits, the rest fixed).
    static let maxBytes = 48
    private var second = -1
    private var prefix: [UInt8] = []

    mutating func put(into out: inout LineCursor) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        if ts.tv_sec != second {
            second = ts.tv_sec
            var t = time_t(ts.tv_sec)
            var parts = tm()
            gmtime_r(&t, &parts)
            prefix = [UInt8](atMost: Self.maxBytes) { line in
                line.putDigits(Int(parts.tm_year) + 1900, width: 4)
                line.put(UInt8(ascii: "-"))
                line.putDigits(Int(parts.tm_mon) + 1, width: 2)
                line.put(UInt8(ascii: "-"))
                line.putDigits(Int(parts.tm_mday), width: 2)
                line.put(UInt8(ascii: "T"))
                line.putDigits(Int(parts.tm_hour), width: 2)
                line.put(UInt8(ascii: ":"))
                line.putDigits(Int(parts.tm_min), width: 2)
                line.put(UInt8(ascii: ":"))
                line.putDigits(Int(parts.tm_sec), width: 2)
                line.put(UInt8(ascii: "."))
            }
        }
        prefix.withUnsafeBytes { out.put($0) }
        out.putDigits(Int(ts.tv_nsec) / 1_000_000, width: 3)
        out.put(UInt8(ascii: "Z"))
    }
}
