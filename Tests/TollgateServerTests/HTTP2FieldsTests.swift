import NIOHPACK
import NIOHTTP1
import Testing
@testable import TollgateServer

/// A stream's request header block is checked by ``HTTP2Fields`` (RFC 9113 §8.2–8.3), not by
/// NIOHTTP2: each rule refuses the block, and no block it accepts breaks one.
@Suite struct HTTP2FieldsTests {
    private let base = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"), (":path", "/a?b=c")]

    private func head(_ fields: [(String, String)]) -> HTTPRequestHead? {
        HTTP2Fields.requestHead(HPACKHeaders(fields))
    }

    @Test func aWellFormedBlockBecomesTheRequestHead() throws {
        let h = try #require(head(base + [("te", "trailers"), ("x-a", " a b \u{e9} ")]))
        #expect(h.method == .GET && h.uri == "/a?b=c" && h.version == HTTPVersion(major: 2, minor: 0))
        #expect(h.headers["host"] == ["example.com"] && h.headers["x-a"] == [" a b \u{e9} "])
        #expect(head(base + [("host", "other.example")])?.headers["host"] == ["other.example"])
    }

    @Test func eachRuleRefusesTheBlock() {
        let malformed: [[(String, String)]] = [
            base + [("connection", "x")], base + [("keep-alive", "5")], base + [("proxy-connection", "x")],
            base + [("transfer-encoding", "chunked")], base + [("upgrade", "h2c")], base + [("te", "gzip")],
            base + [("X-Upper", "1")], base + [("x a", "1")], base + [("x@a", "1")], base + [("", "1")],
            base + [("x-a", "a\rb")], base + [("x-a", "a\nb")], base + [("x-a", "a\u{0}b")],
            Array(base[..<2]) + [("x-a", "1")] + Array(base[2...]),
            base + [(":path", "/")], base + [(":method", "GET")], base + [(":scheme", "http")], base + [(":authority", "a")],
            base + [(":foo", "1")], base + [(":status", "200")], base + [(":protocol", "websocket")],
            base.filter { $0.0 != ":method" }, base.filter { $0.0 != ":scheme" }, base.filter { $0.0 != ":path" },
            [(":method", "CONNECT"), (":authority", "example.com:443")],
            Array(base[..<3]) + [(":path", "")], Array(base[..<3]) + [(":path", "/a b")], Array(base[..<3]) + [(":path", "/a\tb")],
            [(":method", "G T")] + Array(base[1...]), Array(base[..<2]) + [(":authority", "a\u{7f}b"), (":path", "/")],
        ]
        for fields in malformed {
            #expect(head(fields) == nil, "\(fields)")
        }
    }

    @Test func trailersCarryRegularFieldsOnly() {
        #expect(HTTP2Fields.validTrailers(HPACKHeaders([("x-checksum", "abc"), ("x-b", "")])))
        for bad in [[(":path", "/")], [("connection", "x")], [("X-A", "1")], [("x-a", "1\r\n")]] {
            #expect(!HTTP2Fields.validTrailers(HPACKHeaders(bad)), "\(bad)")
        }
    }

    /// Random near-misses: a well-formed block with regular fields added, then fields replaced,
    /// moved, dropped or repeated, from names and values each rule is about. Every block accepted
    /// keeps all the rules (an oracle written apart from the code); about half are accepted.
    @Test func noAcceptedBlockBreaksARule() {
        let names = [":method", ":scheme", ":path", ":authority", ":status", "te", "connection", "x-a", "X-A", "x a", "host", "accept"]
        let values = ["GET", "https", "/p", "", "trailers", "a b", "a\r\nb", "a\u{0}", "\u{7f}", "v", " v "]
        var rng = SplitMix(seed: 0x5EED)
        func pick<T>(_ list: [T]) -> T { list[Int(rng.next() % UInt64(list.count))] }
        var accepted = 0
        for _ in 0..<20_000 {
            var fields = base + (0..<Int(rng.next() % 4)).map { _ in (pick(["accept", "x-a", "te"]), pick(["v", "a b", "trailers"])) }
            for _ in 0..<Int(rng.next() % 3) {
                let i = Int(rng.next() % UInt64(fields.count))
                switch rng.next() % 5 {
                case 0: fields[i].0 = pick(names)
                case 1: fields[i].1 = pick(values)
                case 2: fields.swapAt(i, Int(rng.next() % UInt64(fields.count)))
                case 3: fields.remove(at: i)
                default: fields.append(fields[i])
                }
                if fields.isEmpty { break }
            }
            guard head(fields) != nil else { continue }
            accepted += 1
            let pseudo = fields.prefix { $0.0.hasPrefix(":") }
            let regular = fields.dropFirst(pseudo.count)
            #expect(!regular.contains { $0.0.hasPrefix(":") }, "\(fields)")
            for name in [":method", ":scheme", ":path"] { #expect(pseudo.filter { $0.0 == name }.count == 1, "\(fields)") }
            #expect(pseudo.allSatisfy { [":method", ":scheme", ":path", ":authority"].contains($0.0) && !$0.1.contains(where: { $0.isWhitespace || $0 == "\u{7f}" || $0 == "\u{0}" }) })
            #expect(pseudo.first { $0.0 == ":path" }?.1.isEmpty == false)
            for (name, value) in regular {
                #expect(name == name.lowercased() && !name.contains(" ") && !name.isEmpty, "\(fields)")
                #expect(!["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"].contains(name))
                #expect(!value.contains("\r") && !value.contains("\n") && !value.contains("\u{0}"))
                if name == "te" { #expect(value == "trailers") }
            }
        }
        #expect(accepted > 5_000 && accepted < 15_000, "\(accepted)")
    }
}

/// A small deterministic generator (SplitMix64), so a failure names the same block every run.
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
