import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import TollgateCore
@testable import TollgateServer
import TollgateMailWire

/// A scripted SMTP server on loopback: greets, answers each command line with `respond`, takes the
/// message after DATA, and records everything it received.
final class ScriptedSMTPServer: @unchecked Sendable {
    let received = NIOLockedValueBox<[String]>([])
    let message = NIOLockedValueBox<String?>(nil)
    private(set) var port = 0
    private var channel: (any Channel)?
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    init(greeting: String? = "220 scripted ESMTP\r\n", respond: @escaping @Sendable (String) -> String) throws {
        let received = self.received
        let message = self.message
        channel = try ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(greeting: greeting, respond: respond, received: received, message: message))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        port = channel!.localAddress!.port!
    }

    func stop() {
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let greeting: String?
        let respond: @Sendable (String) -> String
        let received: NIOLockedValueBox<[String]>
        let message: NIOLockedValueBox<String?>
        var buffer = ""
        var inData = false

        init(greeting: String?, respond: @escaping @Sendable (String) -> String, received: NIOLockedValueBox<[String]>,
             message: NIOLockedValueBox<String?>) {
            self.greeting = greeting
            self.respond = respond
            self.received = received
            self.message = message
        }

        func channelActive(context: ChannelHandlerContext) {
            if let greeting { context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: greeting)), promise: nil) }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            buffer += bytes.readString(length: bytes.readableBytes) ?? ""
            while true {
                if inData {
                    guard let end = buffer.range(of: "\r\n.\r\n") else { return }
                    let body = String(buffer[..<end.lowerBound])
                    message.withLockedValue { $0 = body }
                    buffer = String(buffer[end.upperBound...])
                    inData = false
                    write(respond("<message>"), context)
                    continue
                }
                guard let end = buffer.range(of: "\r\n") else { return }
                let line = String(buffer[..<end.lowerBound])
                buffer = String(buffer[end.upperBound...])
                received.withLockedValue { $0.append(line) }
                let reply = respond(line)
                if line == "DATA", reply.hasPrefix("354") { inData = true }
                write(reply, context)
            }
        }

        private func write(_ reply: String, _ context: ChannelHandlerContext) {
            guard !reply.isEmpty else { return }
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply)), promise: nil)
        }
    }
}

@Suite(.serialized) struct SMTPClientTests {
    static func session(_ port: Int, security: SMTPSettings.Security = .none, user: String? = nil,
                        timeout: TimeAmount = .seconds(3)) throws -> SMTPClient.Session {
        var settings = SMTPSettings(host: "127.0.0.1", port: port)
        settings.security = security
        settings.username = user
        settings.password = user.map { _ in "PW" }
        return try SMTPClient.Session(settings: settings, password: user.map { _ in "s3cret-pw" }, timeout: timeout)
    }

    static let envelope = SMTPClient.Envelope(from: "from@tollgate.test", to: "to@tollgate.test",
                                              message: Array("Subject: hi\r\n\r\nline one\r\n.hidden dot\r\n".utf8))

    /// A well-behaved server offering `extensions`.
    static func polite(extensions: [String]) -> @Sendable (String) -> String {
        { line in
            switch line.split(separator: " ").first.map(String.init) ?? line {
            case "EHLO": (["250-scripted"] + extensions.dropLast().map { "250-" + $0 } + ["250 " + (extensions.last ?? "OK")])
                .joined(separator: "\r\n") + "\r\n"
            case "AUTH": "334 VXNlcm5hbWU6\r\n"
            case "MAIL", "RCPT": "250 ok\r\n"
            case "DATA": "354 go on\r\n"
            case "<message>": "250 queued\r\n"
            case "QUIT": "221 bye\r\n"
            default: line.hasPrefix("dXNlcg") ? "334 UGFzc3dvcmQ6\r\n" : line == "czNjcmV0LXB3" ? "235 ok\r\n" : "500 what\r\n"
            }
        }
    }

    @Test func sendsTheMessageDotStuffedAfterAuthLogin() async throws {
        let server = try ScriptedSMTPServer(respond: Self.polite(extensions: ["AUTH LOGIN", "SIZE 1000000"]))
        defer { server.stop() }
        try await SMTPClient.send(Self.envelope, session: try Self.session(server.port, user: "user"), group: server.group)
        let lines = server.received.withLockedValue { $0 }
        #expect(lines.prefix(6) == ["EHLO tollgate.localhost", "AUTH LOGIN", "dXNlcg==", "czNjcmV0LXB3",
                                    "MAIL FROM:<from@tollgate.test>", "RCPT TO:<to@tollgate.test>"])
        #expect(server.message.withLockedValue { $0 } == "Subject: hi\r\n\r\nline one\r\n..hidden dot")
    }

    @Test func refusesBytesInjectedAfterTheStartTLSReply() async throws {
        let server = try ScriptedSMTPServer { line in
            line == "STARTTLS" ? "220 go ahead\r\n250 injected before TLS\r\n" : Self.polite(extensions: ["STARTTLS"])(line)
        }
        defer { server.stop() }
        await #expect {
            try await SMTPClient.send(Self.envelope, session: try Self.session(server.port, security: .starttls), group: server.group)
        } throws: { error in
            guard case .protocolError(let why) = error as? SMTPFailure else { return false }
            return why.contains("after the STARTTLS reply")
        }
        #expect(!server.received.withLockedValue { $0 }.contains { $0.hasPrefix("MAIL") })
    }

    @Test func requiresStartTLSWhenConfigured() async throws {
        let server = try ScriptedSMTPServer(respond: Self.polite(extensions: ["AUTH PLAIN"]))
        defer { server.stop() }
        await #expect {
            try await SMTPClient.send(Self.envelope, session: try Self.session(server.port, security: .starttls, user: "user"),
                                      group: server.group)
        } throws: { error in
            guard case .tls(let why) = error as? SMTPFailure else { return false }
            return why.contains("does not offer STARTTLS")
        }
        #expect(!server.received.withLockedValue { $0 }.contains { $0.hasPrefix("AUTH") })
    }

    @Test func aPermanentRefusalIsNotRetriedATemporaryOneIs() async throws {
        for (code, transient) in [("550", false), ("451", true)] {
            let server = try ScriptedSMTPServer { line in
                line.hasPrefix("RCPT") ? "\(code) no\r\n" : Self.polite(extensions: ["8BITMIME"])(line)
            }
            defer { server.stop() }
            await #expect {
                try await SMTPClient.send(Self.envelope, session: try Self.session(server.port), group: server.group)
            } throws: { error in
                guard let failure = error as? SMTPFailure, case .refused(let step, let c) = failure else { return false }
                return step == "RCPT TO" && c == Int(code) && failure.isTransient == transient
            }
        }
    }

    @Test func aSilentServerTimesOut() async throws {
        let server = try ScriptedSMTPServer(greeting: nil) { _ in "" }
        defer { server.stop() }
        let started = ContinuousClock.now
        await #expect {
            try await SMTPClient.send(Self.envelope, session: try Self.session(server.port, timeout: .milliseconds(300)), group: server.group)
        } throws: { error in
            if case .timeout = error as? SMTPFailure { return true }
            return false
        }
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    @Test func repliesAreFramedStrictly() throws {
        func parse(_ text: String) throws -> [SMTPReply] {
            var parser = SMTPReplyParser()
            var bytes = ByteBuffer(string: text)
            parser.feed(&bytes)
            var out: [SMTPReply] = []
            while let r = try parser.next() { out.append(r) }
            return out
        }
        #expect(try parse("250-first\r\n250-SIZE 10\r\n250 last\r\n") == [SMTPReply(code: 250, lines: ["first", "SIZE 10", "last"])])
        #expect(try parse("220\r\n354 go\r\n").map(\.code) == [220, 354])
        #expect(try parse("250-partial\r\n250 rest").isEmpty)  // waits for more
        for bad in ["250-a\r\n550 b\r\n", "25 short\r\n", "650 bad class\r\n", "2x0 x\r\n", "250xno space\r\n",
                    "250 bare lf\n", "250 " + String(repeating: "a", count: 600) + "\r\n", "250 ctrl\u{1}\r\n",
                    String(repeating: "b", count: 600)] {
            #expect(throws: SMTPProtocolError.self, "\(bad.prefix(30).debugDescription)") { try parse(bad) }
        }
        let many = String(repeating: "250-x\r\n", count: 70) + "250 end\r\n"
        #expect(throws: SMTPProtocolError.self) { try parse(many) }
    }

    @Test func messagesKeepLinesShortAndHeadersFromTheConfig() {
        let long = String(repeating: "ü", count: 3000)
        let bytes = MailMessage.render(from: "Sign-up <s@tollgate.test>", to: "a@b.test", subject: "Confirm ✓", text: long,
                                       html: "<p>\(long)</p>")
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines.allSatisfy { $0.utf8.count <= 78 })
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))  // no bare LF
        #expect(text.contains("Subject: =?utf-8?B?") && text.contains("To: <a@b.test>") && text.contains("multipart/alternative"))
        var out = ByteBuffer()
        SMTPDialogue.writeDotStuffed(Array(".a\r\nb\r\n..c".utf8), to: &out)
        #expect(out.readString(length: out.readableBytes) == "..a\r\nb\r\n...c\r\n.\r\n")
    }
}
