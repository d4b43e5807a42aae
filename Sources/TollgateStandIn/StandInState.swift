import Foundation
import NIOConcurrencyHelpers

/// How the stand-in misbehaves, for fault tests. Set through `POST /_standin/mode`.
public enum StandInMode: String, Sendable, CaseIterable {
    /// Answer correctly.
    case normal
    /// Wait `delay_ms` before answering.
    case slow
    /// 500 with a body that echoes the key (the gateway must not pass it on).
    case fail
    /// Bytes that are not HTTP, then close.
    case garbage
    /// 302 to another host with the key in the Location.
    case redirect
    /// A 200 whose body is `size` bytes.
    case huge
    /// A correct answer sent with an interim 100 and chunked framing.
    case chunked
    /// A correct answer plus hop-by-hop headers and a cookie the gateway must strip.
    case hop
    /// Close the connection without answering.
    case close
    /// Answer a connection's first request; close it without answering any later one — a
    /// keep-alive connection the upstream dropped just as the next request arrived.
    case closeReused = "close_reused"
    /// A correct answer saying `Keep-Alive: timeout=1`: an upstream that closes idle connections
    /// after a second (Node.js says `timeout=5`).
    case shortKeepAlive = "short_keep_alive"
    /// A 200 whose body is not JSON.
    case notJSON = "not_json"
    /// Answer with `status` and an error body that echoes the key.
    case status
    /// A 200 that echoes what authenticated the call (the target and the key or Authorization
    /// header) where `where` says: `body` (an extra member), `field` (inside `formatted`, a field the
    /// demo route projects) or `header` (an `X-Echo` header). Many real APIs do this in a debug field.
    case echo
}

/// Call counts and the last request, shared by all connections of one stand-in.
final class StandInState: Sendable {
    struct Snapshot {
        var calls = 0
        var authorized = 0
        var unauthorized = 0
        /// TCP connections accepted (control requests included), to check upstream keep-alive.
        var connections = 0
        /// TCP connections open now (the control request asking included).
        var open = 0
        var mode = StandInMode.normal
        var delayMillis = 0
        var size = 0
        var status = 500
        var echoIn = "body"
        var last: [String: Any] = [:]
    }

    let apiKey: String
    private let box = NIOLockedValueBox(SnapshotBox(Snapshot()))

    init(apiKey: String) { self.apiKey = apiKey }

    func withSnapshot<T>(_ body: (inout Snapshot) -> T) -> T {
        box.withLockedValue { body(&$0.value) }
    }
}

/// Reference wrapper so the snapshot (which holds `Any`) can live in a Sendable lock box.
final class SnapshotBox: @unchecked Sendable {
    var value: StandInState.Snapshot
    init(_ value: StandInState.Snapshot) { self.value = value }
}
