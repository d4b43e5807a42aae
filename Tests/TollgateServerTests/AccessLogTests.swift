import Foundation
import Testing
@testable import TollgateServer
import TollgateCore

/// The access-log line as rendered into a loop's buffer: valid JSON, times and latencies written
/// without intermediate strings.
struct AccessLogTests {
    @Test func millisecondsKeepThreeDecimals() {
        for (micros, text) in [(12_045, "12.045"), (5, "0.005"), (1_000, "1.000"), (999_999, "999.999"), (70, "0.070")] as [(Int64, String)] {
            var out: [UInt8] = []
            AccessLog.appendMillis(micros, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == text)
        }
    }

    @Test func aLineIsOneJSONObjectWithTheCurrentTime() throws {
        let record = AccessRecord(requestID: "ab12-1", route: "address", method: "GET", path: "/api/address\"x",
                                  status: 200, latencyMicros: 1_234, client: "127.0.0.1", country: "GB", decision: "pass",
                                  decidedBy: nil, upstreamStatus: 200, upstreamLatencyMicros: 987, note: "a \"note\"")
        var clock = LogClock()
        var bytes: [UInt8] = []
        AccessLog.render(record, into: &bytes, clock: &clock)
        AccessLog.render(record, into: &bytes, clock: &clock)  // the cached second, again
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["latency_ms"] as? Double == 1.234)
            #expect(object["upstream_latency_ms"] as? Double == 0.987)
            #expect(object["path"] as? String == "/api/address\"x")
            #expect(object["country"] as? String == "GB")
            let time = try #require(object["time"] as? String)
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let parsed = try #require(formatter.date(from: time))
            #expect(abs(parsed.timeIntervalSinceNow) < 5)
            #expect(time.count == 24)
        }
    }

    @Test func piecesAreWrittenAsTheStringRenderingWouldBe() {
        for text in ["plain", "café", "a\"b", "back\\slash", "<script>&", "tab\there", "\u{1}", "", String(repeating: "x", count: 300)] {
            var bytes: [UInt8] = []
            bytes.appendJSONString(text)
            var expected = ""
            JSONValue.writeString(text, into: &expected)
            #expect(String(decoding: bytes, as: UTF8.self) == expected, "\(text)")
        }
        for (value, width, text) in [(0, 1, "0"), (7, 3, "007"), (1234, 2, "1234"), (2026, 4, "2026"), (Int(Int64.max), 1, "\(Int64.max)")] {
            var bytes: [UInt8] = []
            bytes.appendDigits(value, width: width)
            #expect(String(decoding: bytes, as: UTF8.self) == text)
        }
    }
}
