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
    var path: Substring
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
/// into its own buffer (``AccessLogBuffer``: no lock, no string per line; each piece of a line one
/// copy through a ``LineCursor``), and hands the buffer to one writer queue when it passes 64 KiB
/// or 10 ms after its first line. Lines of one loop keep the order in which its requests were
/// answered; lines of different loops interleave by batch (each carries its time). Bounded: while
/// more than `maxQueuedBytes` wait for the writer (standard output blocked, say), further batches
/// are dropped and their lines counted in ``dropped`` — requests never wait for the log. Lines are
/// built by hand rather than through swift-log metadata dictionaries: this is the one log line on
/// the hot path.
final class AccessLog: Sendable {
    let sink: LogSink?
    static let batchBytes = 64 * 1024
    /// Room a batch has beyond `batchBytes`: more than a line usually reserves (~1 KiB: 512 and six
    /// bytes per byte of its strings), so the batch is not copied into a larger buffer at its end.
    static let batchSlack = 8 * 1024
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
    func submit(_ text: ByteBuffer, lines: Int) {
        guard let sink, lines > 0 else { return }
        let size = text.readableBytes
        guard queuedBytes.add(size, ordering: .relaxed).newValue <= maxQueuedBytes else {
            queuedBytes.subtract(size, ordering: .relaxed)
            droppedLines.add(lines, ordering: .relaxed)
            return
        }
        writer.async { [self] in
            text.withUnsafeReadableBytes { sink.writeBatch($0) }
            queuedBytes.subtract(size, ordering: .relaxed)
        }
    }

    /// Waits until every batch handed over is out (at shutdown and after a reload; the loops'
    /// buffers are flushed first).
    func drain() {
        writer.sync {}
    }

    /// One JSON object and a newline, appended to `batch`: written through one cursor over room
    /// reserved for the longest line `r` can make (a path is cut to 200 characters).
    static func render(_ r: AccessRecord, into batch: inout ByteBuffer, clock: inout LogClock) {
        let path = r.path.utf8.count > 200 ? r.path.prefix(200) : r.path
        var bound = 512 + LineCursor.jsonBound(r.requestID) + LineCursor.jsonBound(r.method) + LineCursor.jsonBound(path)
            + LineCursor.jsonBound(r.client) + r.decision.utf8.count
        if let route = r.route { bound += LineCursor.jsonBound(route) }
        if let country = r.country { bound += country.utf8.count }
        if let by = r.decidedBy { bound += by.utf8.count }
        if let note = r.note { bound += LineCursor.jsonBound(note) }
        batch.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { memory in
            var line = LineCursor(memory)
            line.put("{\"time\":\"")
            clock.put(into: &line)
            line.put("\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":")
            line.putJSONString(r.requestID)
            line.put(",\"route\":")
            if let route = r.route { line.putJSONString(route) } else { line.put("null") }
            line.put(",\"method\":")
            line.putJSONString(r.method)
            if r.http2 { line.put(",\"protocol\":\"h2\"") }
            line.put(",\"path\":")
            line.putJSONString(path)
            line.put(",\"status\":")
            line.putDigits(r.status)
            line.put(",\"latency_ms\":")
            putMillis(r.latencyMicros, to: &line)
            line.put(",\"client\":")
            line.putJSONString(r.client)
            if let country = r.country {  // two letters A–Z, checked at lookup
                line.put(",\"country\":\"")
                line.putUTF8(country)
                line.put(UInt8(ascii: "\""))
            }
            line.put(",\"decision\":\"")
            line.putUTF8(r.decision)
            line.put(UInt8(ascii: "\""))
            if let by = r.decidedBy {
                line.put(",\"policy\":\"")
                line.putUTF8(by)
                line.put(UInt8(ascii: "\""))
            }
            if let s = r.upstreamStatus {
                line.put(",\"upstream_status\":")
                line.putDigits(s)
            }
            if let l = r.upstreamLatencyMicros {
                line.put(",\"upstream_latency_ms\":")
                putMillis(l, to: &line)
            }
            if let note = r.note {
                line.put(",\"note\":")
                line.putJSONString(note)
            }
            line.put("}\n")
            return line.count
        }
    }

    /// Microseconds (≥ 0) as milliseconds with three decimals (`12.045`).
    static func putMillis(_ micros: Int64, to line: inout LineCursor) {
        line.putDigits(Int(micros / 1000))
        line.put(UInt8(ascii: "."))
        line.putDigits(Int(micros % 1000), width: 3)
    }
}

/// One event loop's access-log lines not yet handed to the writer. Confined to its loop.
final class AccessLogBuffer {
    private let eventLoop: any EventLoop
    private var text = ByteBuffer()
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
        if lines == 0 {  // one buffer per batch, with room past the threshold for the line that crosses it
            text = ByteBufferAllocator().buffer(capacity: AccessLog.batchBytes + AccessLog.batchSlack)
        }
        AccessLog.render(r, into: &text, clock: &clock)
        lines += 1
        if text.readableBytes >= AccessLog.batchBytes {
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
        text = ByteBuffer()
        lines = 0
    }
}
