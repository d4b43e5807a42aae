import Dispatch
import NIOCore
import Synchronization
import TollgateCore

/// One access-log record: what happened to one client request.
struct AccessRecord {
    var requestID: String
    var route: String?
    var method: String
    /// Came over an HTTP/2 stream (the line says `"protocol":"h2"`; HTTP/1.1 lines say nothing).
    var http2 = false
    var path: String
    var status: Int
    var latencyMicros: Int64
    var client: String
    /// The client's country (with `geo`).
    var country: String?
    /// `pass` when the upstream was called or a file served, else `reject`.
    var decision: String
    /// Name of the policy or gateway stage that decided (`validation`, `routing`, `upstream`, …).
    var decidedBy: String?
    var upstreamStatus: Int?
    var upstreamLatencyMicros: Int64?
    /// Operator-facing reason (never sent to the client): e.g. `connect refused`, `redirect`.
    var note: String?
}

/// Writes one JSON line per request, never on the event loop: each loop renders its lines straight
/// into its own buffer (``AccessLogBuffer``: no lock, no string per line), and hands the buffer to
/// one writer queue when it passes 64 KiB or 10 ms after its first line (bytes: each piece of a
/// line is one copy). Lines of one loop keep the order in which its requests were answered; lines
/// of different loops interleave by batch (each carries its time). Bounded: while more than `maxQueuedBytes` wait for the writer (standard
/// output blocked, say), further batches are dropped and their lines counted in ``dropped`` —
/// requests never wait for the log. Lines are built by hand rather than through swift-log metadata
/// dictionaries: this is the one log line on the hot path.
final class AccessLog: Sendable {
    let sink: LogSink?
    static let batchBytes = 64 * 1024
    static let flushDelay = TimeAmount.milliseconds(10)
    let maxQueuedBytes: Int
    private let writer = DispatchQueue(label: "tollgate.access-log")
    private let queuedBytes = Atomic<Int>(0)
    private let droppedLines = Atomic<Int>(0)

    init(sink: LogSink?, maxQueuedBytes: Int = 8 << 20) {
        self.sink = sink
        self.maxQueuedBytes = maxQueuedBytes
    }

    var isEnabled: Bool { sink != nil }
    /// Lines dropped because the writer fell behind.
    var dropped: Int { droppedLines.load(ordering: .relaxed) }

    /// Hands a loop's batch of `lines` whole lines to the writer, or drops it when too much waits.
    func submit(_ text: [UInt8], lines: Int) {
        guard let sink, lines > 0 else { return }
        let size = text.count
        guard queuedBytes.add(size, ordering: .relaxed).newValue <= maxQueuedBytes else {
            queuedBytes.subtract(size, ordering: .relaxed)
            droppedLines.add(lines, ordering: .relaxed)
            return
        }
        writer.async { [self] in
            sink.writeBatch(text)
            queuedBytes.subtract(size, ordering: .relaxed)
        }
    }

    /// Waits until every batch handed over is out (at shutdown and after a reload; the loops'
    /// buffers are flushed first).
    func drain() {
        writer.sync {}
    }

    /// One JSON object and a newline, appended to `line`.
    static func render(_ r: AccessRecord, into line: inout [UInt8], clock: inout LogClock) {
        line.appendStatic("{\"time\":\"")
        clock.append(to: &line)
        line.appendStatic("\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":")
        line.appendJSONString(r.requestID)
        line.appendStatic(",\"route\":")
        if let route = r.route { line.appendJSONString(route) } else { line.appendStatic("null") }
        line.appendStatic(",\"method\":")
        line.appendJSONString(r.method)
        if r.http2 { line.appendStatic(",\"protocol\":\"h2\"") }
        line.appendStatic(",\"path\":")
        line.appendJSONString(r.path.utf8.count > 200 ? String(r.path.prefix(200)) : r.path)
        line.appendStatic(",\"status\":")
        line.appendDigits(r.status)
        line.appendStatic(",\"latency_ms\":")
        appendMillis(r.latencyMicros, to: &line)
        line.appendStatic(",\"client\":")
        line.appendJSONString(r.client)
        if let country = r.country {  // two letters A–Z, checked at lookup
            line.appendStatic(",\"country\":\"")
            line.append(country)
            line.append(UInt8(ascii: "\""))
        }
        line.appendStatic(",\"decision\":\"")
        line.append(r.decision)
        line.append(UInt8(ascii: "\""))
        if let by = r.decidedBy {
            line.appendStatic(",\"policy\":\"")
            line.append(by)
            line.append(UInt8(ascii: "\""))
        }
        if let s = r.upstreamStatus {
            line.appendStatic(",\"upstream_status\":")
            line.appendDigits(s)
        }
        if let l = r.upstreamLatencyMicros {
            line.appendStatic(",\"upstream_latency_ms\":")
            appendMillis(l, to: &line)
        }
        if let note = r.note {
            line.appendStatic(",\"note\":")
            line.appendJSONString(note)
        }
        line.appendStatic("}\n")
    }

    /// Microseconds (≥ 0) as milliseconds with three decimals (`12.045`).
    static func appendMillis(_ micros: Int64, to line: inout [UInt8]) {
        line.appendDigits(Int(micros / 1000))
        line.append(UInt8(ascii: "."))
        line.appendDigits(Int(micros % 1000), width: 3)
    }
}

/// One event loop's access-log lines not yet handed to the writer. Confined to its loop.
final class AccessLogBuffer {
    private let eventLoop: any EventLoop
    private var text: [UInt8] = []
    private var lines = 0
    /// The log the buffered lines belong to (a reload may bring another).
    private var log: AccessLog?
    private var flushPending = false
    private var clock = LogClock()

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Renders `r` at the end of the buffer; hands the buffer over when full, or shortly after.
    func write(_ r: AccessRecord, to log: AccessLog) {
        guard log.isEnabled else { return }
        if self.log !== log { flush() }
        self.log = log
        if lines == 0 { text.reserveCapacity(AccessLog.batchBytes + 1024) }  // one allocation per batch
        AccessLog.render(r, into: &text, clock: &clock)
        lines += 1
        if text.count >= AccessLog.batchBytes {
            flush()
        } else if !flushPending {
            flushPending = true
            eventLoop.assumeIsolated().scheduleTask(in: AccessLog.flushDelay) { [self] in
                flushPending = false
                flush()
            }
        }
    }

    /// Hands what is buffered to the writer.
    func flush() {
        guard lines > 0, let log else { return }
        log.submit(text, lines: lines)
        text = []
        lines = 0
    }
}
