import Foundation
import Testing
@testable import TollgateServer
import TollgateCore
import NIOCore

/// The access-log line as rendered into a loop's buffer: valid JSON, times and latencies written
/// without intermediate strings.
struct AccessLogTests {
    @Test func millisecondsKeepThreeDecimals() {
        for (micros, text) in [(12_045, "12.045"), (5, "0.005"), (1_000, "1.000"), (999_999, "999.999"), (70, "0.070")] as [(Int64, String)] {
            let out = [UInt8](atMost: 24) { AccessLog.putMillis(micros, to: &$0) }
            #expect(String(decoding: out, as: UTF8.self) == text)
        }
    }

    @Test func aLineIsOneJSONObjectWithTheCurrentTime() throws {
        let record = AccessRecord(requestID: "ab12-1", route: "address", method: "GET", path: "/api/address\"x",
                                  status: 200, latencyMicros: 1_234, client: "127.0.0.1", country: "GB", decision: "pass",
                                  decidedBy: nil, upstreamStatus: 200, upstreamLatencyMicros: 987, note: "a \"note\"")
        var clock = LogClock()
        var bytes = ByteBuffer()
        AccessLog.render(record, into: &bytes, clock: &clock)
        AccessLog.render(record, into: &bytes, clock: &clock)  // the cached second, again
        let lines = String(buffer: bytes).split(separator: "\n")
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
            let bytes = [UInt8](atMost: LineCursor.jsonBound(text)) { $0.putJSONString(text) }
            let cut = [UInt8](atMost: LineCursor.jsonBound(text.prefix(2))) { $0.putJSONString(text.prefix(2)) }
            var expectedCut = ""
            JSONValue.writeString(String(text.prefix(2)), into: &expectedCut)
            #expect(String(decoding: cut, as: UTF8.self) == expectedCut, "\(text)")
            var expected = ""
            JSONValue.writeString(text, into: &expected)
            #expect(String(decoding: bytes, as: UTF8.self) == expected, "\(text)")
        }
        for (value, width, text) in [(0, 1, "0"), (7, 3, "007"), (1234, 2, "1234"), (2026, 4, "2026"), (Int(Int64.max), 1, "\(Int64.max)")] {
            let bytes = [UInt8](atMost: 20) { $0.putDigits(value, width: width) }
            #expect(String(decoding: bytes, as: UTF8.self) == text)
        }
    }

    /// The room reserved for a line is its longest rendering: strings of nothing but control
    /// characters (six bytes each, escaped) and a path over the cut still fit, and the line is valid.
    @Test func aLineOfEscapesFitsTheRoomReservedForIt() throws {
        let worst = String(repeating: "\u{1}", count: 300)
        let record = AccessRecord(requestID: worst, route: worst, method: worst, http2: true, path: Substring(String(repeating: "\r\n", count: 300)),
                                  status: Int.max, latencyMicros: Int64.max, client: worst, country: "GB", decision: "reject",
                                  decidedBy: "validation", upstreamStatus: Int.max, upstreamLatencyMicros: Int64.max, note: worst)
        var clock = LogClock()
        var bytes = ByteBuffer()
        AccessLog.render(record, into: &bytes, clock: &clock)
        let line = String(buffer: bytes)
        #expect(line.hasSuffix("}\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["note"] as? String == worst)
        #expect((object["path"] as? String)?.count == 200)
    }

    /// A piece that would pass the room reserved stops the process instead of writing past it.
    @Test func aPiecePastTheRoomTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = [UInt8](atMost: 4) { $0.put("12345") }
        }
    }
}
