import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import TollgateCore
@testable import TollgateServer
@testable import TollgateUpstreamHTTP

/// Stands in for the upstream pool: records each call and answers only when the test says so, so a
/// test can hold an exchange in any state.
final class ScriptedUpstream: UpstreamCaller {
    var calls: [(call: UpstreamCall, completion: (Result<UpstreamResponse, UpstreamFailure>) -> Void)] = []

    func execute(_ call: UpstreamCall, completion: @escaping (Result<UpstreamResponse, UpstreamFailure>) -> Void) {
        calls.append((call, completion))
    }

    /// Answers the oldest pending call with a JSON body.
    func answer(_ json: String, status: Int = 200) {
        let (_, completion) = calls.removeFirst()
        let head = ByteBuffer(string: "HTTP/1.1 \(status) OK\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n")
        completion(.success(UpstreamResponse(status: status, headers: UpstreamHeaders(block: head), body: ByteBuffer(string: json),
                                             keepAlive: true)))
    }
}

/// One client connection on an `EmbeddedChannel`: the real handler (which decodes the bytes
/// itself), a gateway state from a real config, and a scripted upstream.
final class Connection {
    let channel = EmbeddedChannel()
    let upstream = ScriptedUpstream()
    let loop: LoopContext
    let handler: ClientConnectionHandler
    /// `read()` calls that reached the socket end of the pipeline.
    let reads = ReadCounter()

    init(routes: String = "", idle: String = "60s") throws {
        let page = FileManager.default.temporaryDirectory.appendingPathComponent("page-\(UUID().uuidString).html")
        try "<p>hi</p>".write(to: page, atomically: true, encoding: .utf8)
        let yaml = """
        listen: 127.0.0.1:8080
        store: memory
        access_log: off
        idle_timeout: \(idle)
        routes:
          - name: page
            match: { path: /page }
            file: \(page.path)
          - name: lookup
            match: { path: /api/address }
            upstream: { url: "http://127.0.0.1:9/v2/validate" }
            params: { q: { in: query, type: string, min_length: 3 } }
        \(routes)
        """
        let config = try ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp").config
        let state = try GatewayState(config: config, secrets: [:], logger: Logger(label: "test"))
        loop = LoopContext(eventLoop: channel.embeddedEventLoop, state: state)
        loop.upstream = upstream
        handler = ClientConnectionHandler(loop: loop, secureListener: false)
        try channel.pipeline.syncOperations.addHandler(reads)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 40000)).wait()
    }

    func send(_ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    /// Everything written to the client so far.
    func output() throws -> String {
        var out = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { out += String(buffer: buffer) }
        return out
    }

    static func statuses(_ text: String) -> [Int] {
        text.components(separatedBy: "HTTP/1.1 ").dropFirst().compactMap { Int($0.prefix(3)) }
    }
}

final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var count = 0
    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}

@Suite struct ConnectionTests {
    let get = "GET /page HTTP/1.1\r\nHost: x\r\n\r\n"
    let lookup = "GET /api/address?q=Main HTTP/1.1\r\nHost: x\r\n\r\n"

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let c = try Connection()
        try c.send(get + "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" + get)
        let out = try c.output()
        #expect(Connection.statuses(out) == [200, 404, 200])
        #expect(c.channel.isActive)
    }

    /// Responses are rendered into the loop's reused buffers: one still waiting to be written (an
    /// embedded channel keeps every write until it is read) is never written over by the next.
    @Test func pipelinedResponsesEachKeepTheirOwnBytes() throws {
        let c = try Connection()
        try c.send(get + "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" + get)
        var bodies: [String] = []
        while let buffer = try c.channel.readOutbound(as: ByteBuffer.self) { bodies.append(String(buffer: buffer)) }
        #expect(bodies.count == 3)
        #expect(bodies[0].hasPrefix("HTTP/1.1 200 ") && bodies[0].hasSuffix("<p>hi</p>"))
        #expect(bodies[1].hasPrefix("HTTP/1.1 404 ") && bodies[1].contains("not-found"))
        #expect(bodies[2].hasPrefix("HTTP/1.1 200 ") && bodies[2].hasSuffix("<p>hi</p>"))
    }

    @Test func requestsBehindAnUpstreamCallWaitForItsAnswer() throws {
        let c = try Connection()
        try c.send(lookup + get)
        #expect(try c.output().isEmpty)  // the file request waits behind the upstream call
        #expect(c.upstream.calls.count == 1)
        c.upstream.answer(#"{"formatted":"MAIN"}"#)
        let out = try c.output()
        #expect(Connection.statuses(out) == [200, 200])
        #expect(out.range(of: "MAIN")!.lowerBound < out.range(of: "<p>hi</p>")!.lowerBound)
    }

    /// A parse error behind a request still being answered is answered in its turn: the earlier
    /// request first gets its own response, then the 400, then the connection closes.
    @Test func parseErrorAfterAPipelinedRequestStillLetsItBeAnswered() throws {
        let c = try Connection()
        try c.send(lookup + "GET /page HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        #expect(c.channel.isActive)
        c.upstream.answer(#"{"formatted":"MAIN"}"#)
        let out = try c.output()
        #expect(Connection.statuses(out) == [200, 400])
        #expect(out.contains("bad-request") && out.contains("Connection: close"))
        c.channel.embeddedEventLoop.run()
        #expect(!c.channel.isActive)
    }

    @Test func readsAreHeldOnlyWhileInputWaits() throws {
        let c = try Connection()
        try c.send(lookup)
        let before = c.reads.count
        c.channel.read()
        #expect(c.reads.count == before + 1)  // nothing queued: reading on costs nothing to hold
        try c.send(get)                        // now something waits behind the upstream call...
        c.channel.read()
        #expect(c.reads.count == before + 1)  // ...so reads are held
        c.upstream.answer(#"{"formatted":"MAIN"}"#)
        #expect(c.reads.count == before + 2)  // and resumed once the answer is written
        #expect(Connection.statuses(try c.output()) == [200, 200])
    }

    @Test func drainClosesIdleConnectionsAtOnceAndBusyOnesAfterTheirAnswer() throws {
        let idle = try Connection()
        idle.loop.beginDrain()
        idle.channel.embeddedEventLoop.run()
        #expect(!idle.channel.isActive)

        let busy = try Connection()
        try busy.send(lookup)
        busy.loop.beginDrain()
        #expect(busy.channel.isActive)
        busy.upstream.answer(#"{"formatted":"MAIN"}"#)
        let out = try busy.output()
        #expect(Connection.statuses(out) == [200] && out.contains("Connection: close"))
        busy.channel.embeddedEventLoop.run()
        #expect(!busy.channel.isActive)
    }

    @Test func aRequestPipelinedBehindOneInFlightAtShutdownGets503() throws {
        let c = try Connection()
        try c.send(lookup + get)
        c.loop.beginDrain()
        c.upstream.answer(#"{"formatted":"MAIN"}"#)
        let out = try c.output()
        #expect(Connection.statuses(out) == [200, 503])
        #expect(out.contains("shutting-down") && out.contains("Retry-After: 1"))
    }

    @Test func idleConnectionsCloseAfterTheTimeout() throws {
        let c = try Connection(idle: "2s")
        try c.send(get)
        _ = try c.output()
        c.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(c.channel.isActive)
        c.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!c.channel.isActive)
    }

    @Test func bodyOverTheLimitIs413AndTheRestIsNotRead() throws {
        let c = try Connection(routes: """
          - name: post
            match: { method: POST, path: /api/post }
            upstream: { url: "http://127.0.0.1:9/v2/validate" }
            params: { q: { in: body, type: string } }
            max_body: 16
        """)
        try c.send("POST /api/post HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n")
        let out = try c.output()
        #expect(Connection.statuses(out) == [413] && out.contains("Connection: close"))
        try c.send(String(repeating: "a", count: 40) + get)
        #expect(try c.output().isEmpty)
        #expect(c.upstream.calls.isEmpty)
    }
}

/// The states of one exchange, driven by the scripted upstream.
@Suite struct ExchangeTests {
    @Test func policiesThenUpstreamThenDone() throws {
        let c = try Connection()
        try c.send("GET /api/address?q=Main HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(c.handler.stateName == "answering")
        let exchange = try #require(currentExchange(c))
        guard case .upstream = exchange.state else { Issue.record("waits for the upstream, is \(exchange.state)"); return }
        #expect(String(buffer: c.upstream.calls[0].call.request).hasPrefix("GET /v2/validate?q=Main HTTP/1.1\r\n"))
        c.upstream.answer(#"{"formatted":"MAIN"}"#)
        #expect(exchange.isDone)
        #expect(Connection.statuses(try c.output()) == [200])
    }

    @Test func aRefusalEndsTheExchangeBeforeTheUpstream() throws {
        let c = try Connection()
        try c.send("GET /api/address?q=ab HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(Connection.statuses(try c.output()) == [422])
        #expect(c.upstream.calls.isEmpty)
    }

    /// The client leaves while the upstream call is in flight: the answer still arrives and ends the
    /// exchange, and nothing is written to the closed connection.
    @Test func theClientLeavingMidCallEndsTheExchangeQuietly() throws {
        let c = try Connection()
        try c.send("GET /api/address?q=Main HTTP/1.1\r\nHost: x\r\n\r\n")
        let exchange = try #require(currentExchange(c))
        _ = try c.channel.close().wait()
        #expect(exchange.owner == nil)
        c.upstream.answer(#"{"formatted":"MAIN"}"#)
        #expect(exchange.isDone)
        #expect(c.loop.inFlight == 0)
    }

    func currentExchange(_ c: Connection) -> ProxyExchange? { c.handler.currentExchange }
}

/// The TLS handshake deadline (`request_head_timeout` before a protocol is chosen).
struct HandshakeDeadlineTests {
    @Test func itClosesAConnectionStillWithoutAProtocolAndIsCancelledByAnEarlierClose() throws {
        let open = EmbeddedChannel()
        try open.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 40000)).wait()
        let fired = ClientPipeline.handshakeDeadline(open, in: .seconds(10))
        open.embeddedEventLoop.advanceTime(by: .seconds(11))
        #expect(throws: Never.self) { try fired.futureResult.wait() }
        #expect(!open.isActive)

        // A client that leaves first: the deadline is cancelled, not left holding the channel.
        let gone = EmbeddedChannel()
        try gone.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 40001)).wait()
        let cancelled = ClientPipeline.handshakeDeadline(gone, in: .seconds(10))
        _ = try gone.close().wait()
        gone.embeddedEventLoop.advanceTime(by: .seconds(11))
        #expect(throws: EventLoopError.self) { try cancelled.futureResult.wait() }
    }
}
