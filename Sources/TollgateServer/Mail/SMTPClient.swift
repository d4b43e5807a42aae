import Foundation
import NIOCore
import TollgateMailWire
import NIOPosix
import NIOSSL
import TollgateCore

/// A small SMTP submission client (RFC 5321, STARTTLS per RFC 3207, AUTH PLAIN/LOGIN per RFC 4954
/// and draft-murchison-sasl-login): one message per connection, then QUIT.
///
/// Written by hand because our package set has no SMTP client; it does only what sending a
/// verification link needs, and is strict where a lax client would be exploitable: replies are
/// framed by ``SMTPReplyParser``; STARTTLS is required unless configured otherwise, and any byte
/// the server sent after its STARTTLS reply (before TLS) aborts the session (the plaintext
/// command-injection attack of CVE-2011-0411); certificates are verified with the system's roots or
/// `ca_file`, TLS 1.2 or later; the password is only sent over TLS (or to a loopback relay that
/// `security: none` allowed); the whole dialogue has one deadline.
enum SMTPClient {
    struct Envelope: Sendable {
        /// Bare addresses (already checked: no CR, LF, `<` or `>`).
        var from: String
        var to: String
        /// The RFC 5322 message, CRLF line endings; dot-stuffed on the wire.
        var message: [UInt8]
    }

    struct Session: Sendable {
        var settings: SMTPSettings
        var password: String?
        var timeout: TimeAmount
        /// For STARTTLS and implicit TLS (nil with `security: none`).
        var tls: NIOSSLContext?

        init(settings: SMTPSettings, password: String?, timeout: TimeAmount) throws {
            self.settings = settings
            self.password = password
            self.timeout = timeout
            guard settings.security != .none else { return }
            var config = TLSConfiguration.makeClientConfiguration()
            config.minimumTLSVersion = .tlsv12
            config.certificateVerification = .fullVerification
            if let ca = settings.caFile { config.trustRoots = .file(ca) }
            tls = try NIOSSLContext(configuration: config)
        }
    }

    /// Sends `envelope`; returns once the server accepted the message (250 after the data).
    static func send(_ envelope: Envelope, session: Session, group: any EventLoopGroup) async throws {
        let loop = group.next()
        let done = loop.makePromise(of: Void.self)
        let hostname = IPAddress.parse(session.settings.host) == nil ? session.settings.host : nil
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(session.timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if session.settings.security == .tls, let tls = session.tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: hostname))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        SMTPDialogue(envelope: envelope, session: session, hostname: hostname, done: done))
                }
            }
        do {
            _ = try await bootstrap.connect(host: session.settings.host, port: session.settings.port).get()
        } catch {
            done.fail(SMTPFailure.connect("\(error)"))
        }
        try await done.futureResult.get()
    }
}

/// Why a message was not sent; `isTransient` says whether trying again may help.
enum SMTPFailure: Error, CustomStringConvertible {
    case connect(String)
    case protocolError(String)
    case tls(String)
    /// The server refused a step with this reply.
    case refused(step: String, code: Int)
    case timeout

    var isTransient: Bool {
        switch self {
        case .connect, .timeout, .protocolError: true
        case .tls: false
        case .refused(_, let code): (400...499).contains(code)
        }
    }

    var description: String {
        switch self {
        case .connect(let why): "cannot connect: \(why)"
        case .protocolError(let why): why
        case .tls(let why): "TLS: \(why)"
        case .refused(let step, let code): "server answered \(code) to \(step)"
        case .timeout: "timed out"
        }
    }
}

/// The client's side of one SMTP session, driven by the server's replies.
final class SMTPDialogue: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Step: String {
        case greeting, ehlo, startTLS = "STARTTLS", ehloSecure = "EHLO after STARTTLS", authPlain = "AUTH PLAIN"
        case authLoginUser = "AUTH LOGIN", authLoginPassword = "AUTH LOGIN username", authLoginDone = "AUTH LOGIN password"
        case mailFrom = "MAIL FROM", rcptTo = "RCPT TO", data = "DATA", message = "the message", quit = "QUIT", done
    }

    private let envelope: SMTPClient.Envelope
    private let session: SMTPClient.Session
    private let hostname: String?
    private let done: EventLoopPromise<Void>
    private var parser = SMTPReplyParser()
    private var step = Step.greeting
    private var secure: Bool
    private var authMechanisms: Set<String> = []
    private var offersStartTLS = false
    private var deadline: Scheduled<Void>?
    private var finished = false

    init(envelope: SMTPClient.Envelope, session: SMTPClient.Session, hostname: String?, done: EventLoopPromise<Void>) {
        self.envelope = envelope
        self.session = session
        self.hostname = hostname
        self.done = done
        self.secure = session.settings.security == .tls
    }

    func channelActive(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: session.timeout) {
            bound.value.0.finish(.failure(SMTPFailure.timeout), bound.value.1)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        parser.feed(&bytes)
        do {
            while !finished, let reply = try parser.next() { try handle(reply, context) }
        } catch let error as SMTPProtocolError {
            finish(.failure(SMTPFailure.protocolError(error.description)), context)
        } catch {
            finish(.failure(error), context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(SMTPFailure.connect("the server closed the connection during \(step.rawValue)")), context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure: SMTPFailure = error is NIOSSLError || error is BoringSSLError ? .tls("\(error)") : .connect("\(error)")
        finish(.failure(failure), context)
    }

    private func handle(_ reply: SMTPReply, _ context: ChannelHandlerContext) throws {
        func expect(_ codes: ClosedRange<Int>) throws {
            guard codes.contains(reply.code) else { throw SMTPFailure.refused(step: step.rawValue, code: reply.code) }
        }
        switch step {
        case .greeting:
            try expect(220...220)
            send("EHLO \(session.settings.heloName)", context, next: .ehlo)
        case .ehlo, .ehloSecure:
            try expect(250...250)
            readExtensions(reply)
            if !secure, session.settings.security == .starttls {
                guard offersStartTLS else { throw SMTPFailure.tls("the server does not offer STARTTLS") }
                send("STARTTLS", context, next: .startTLS)
            } else {
                try authenticateOrSend(context)
            }
        case .startTLS:
            try expect(220...220)
            guard parser.bufferedBytes == 0 else { throw SMTPFailure.protocolError("bytes after the STARTTLS reply, before TLS") }
            guard let tls = session.tls else { throw SMTPFailure.tls("no TLS context") }
            try context.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: hostname),
                                                           position: .first)
            secure = true
            send("EHLO \(session.settings.heloName)", context, next: .ehloSecure)
        case .authPlain, .authLoginDone:
            try expect(235...235)
            mailFrom(context)
        case .authLoginUser:
            try expect(334...334)
            send(Data((session.settings.username ?? "").utf8).base64EncodedString(), context, next: .authLoginPassword)
        case .authLoginPassword:
            try expect(334...334)
            send(Data((session.password ?? "").utf8).base64EncodedString(), context, next: .authLoginDone)
        case .mailFrom:
            try expect(250...250)
            send("RCPT TO:<\(envelope.to)>", context, next: .rcptTo)
        case .rcptTo:
            try expect(250...251)
            send("DATA", context, next: .data)
        case .data:
            try expect(354...354)
            step = .message
            var out = context.channel.allocator.buffer(capacity: envelope.message.count + 64)
            Self.writeDotStuffed(envelope.message, to: &out)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        case .message:
            try expect(250...250)
            send("QUIT", context, next: .quit)
            finish(.success(()), context, close: false)
        case .quit, .done:
            context.close(promise: nil)
        }
    }

    private func readExtensions(_ reply: SMTPReply) {
        offersStartTLS = false
        authMechanisms = []
        for line in reply.lines.dropFirst() {
            let words = line.uppercased().split(separator: " ")
            guard let keyword = words.first else { continue }
            if keyword == "STARTTLS" { offersStartTLS = true }
            if keyword == "AUTH" { authMechanisms = Set(words.dropFirst().map(String.init)) }
        }
    }

    private func authenticateOrSend(_ context: ChannelHandlerContext) throws {
        guard let user = session.settings.username else { return mailFrom(context) }
        guard secure || session.settings.security == .none else { throw SMTPFailure.tls("refusing to send the password without TLS") }
        if authMechanisms.contains("PLAIN") {
            let token = Data(("\u{0}" + user + "\u{0}" + (session.password ?? "")).utf8).base64EncodedString()
            send("AUTH PLAIN \(token)", context, next: .authPlain)
        } else if authMechanisms.contains("LOGIN") {
            send("AUTH LOGIN", context, next: .authLoginUser)
        } else {
            throw SMTPFailure.protocolError("the server offers neither AUTH PLAIN nor AUTH LOGIN")
        }
    }

    private func mailFrom(_ context: ChannelHandlerContext) {
        send("MAIL FROM:<\(envelope.from)>", context, next: .mailFrom)
    }

    private func send(_ line: String, _ context: ChannelHandlerContext, next: Step) {
        step = next
        var out = context.channel.allocator.buffer(capacity: line.utf8.count + 2)
        out.writeString(line)
        out.writeString("\r\n")
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    private func finish(_ result: Result<Void, any Error>, _ context: ChannelHandlerContext, close: Bool = true) {
        guard !finished else { return }
        finished = true
        deadline?.cancel()
        if close { context.close(promise: nil) } else { step = .quit }
        done.completeWith(result)
        if !close {
            // The message is accepted; give QUIT a moment, then close regardless.
            let channel = context.channel
            context.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        }
    }

    /// The message with every line that starts with `.` given one more (RFC 5321 §4.5.2), then the
    /// terminating `.` line. Lines must already end in CRLF.
    static func writeDotStuffed(_ message: [UInt8], to out: inout ByteBuffer) {
        var lineStart = true
        for byte in message {
            if lineStart, byte == UInt8(ascii: ".") { out.writeInteger(UInt8(ascii: ".")) }
            out.writeInteger(byte)
            lineStart = byte == UInt8(ascii: "\n")
        }
        if !lineStart { out.writeString("\r\n") }
        out.writeString(".\r\n")
    }
}
