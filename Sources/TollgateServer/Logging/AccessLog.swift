import Dispatch
import NIOCore
import Synchronization
import TollgateCore

/// One access-log record: what happened to one client request.
struct AccessRecord {
    var requestID: String
    var route: String?
    var method: String
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

/// Writes one JSON line per request, never on the event loop: a loop renders its line, appends
/// it to the pending batch (one short lock, no system call) and the batch goes, in order, to one
/// writer queue when it passes 16 KiB or 10 ms after its first line. Lines keep the order in which
/// requests were answered, across loops. Bounded: while more than `maxQueuedBytes` wait for the
/// writer (standard output blocked, say), further batches are dropped and their lines counted in
/// ``dropped`` — requests never wait for the log. Lines are built by hand rather than through
/// swift-log metadata dictionaries: this is the one log line on the hot path.
final class AccessLog: Sendable {
    let sink: LogSink?
    static let batchBytes = 16 * 1024
    static let flushDelay = TimeAmount.milliseconds(10)
    let maxQueuedBytes: Int
    private let writer = DispatchQueue(label: "tollgate.access-log")
    private let pending = Mutex(Batch())
    private let queuedBytes = Atomic<Int>(0)
    private let droppedLines = Atomic<Int>(0)

    private struct Batch {
        var text = ""
        var lines = 0
    }

    init(sink: LogSink?, maxQueuedBytes: Int = 8 << 20) {
        self.sink = sink
        self.maxQueuedBytes = maxQueuedBytes
    }

    var isEnabled: Bool { sink != nil }
    /// Lines dropped because the writer fell behind.
    var dropped: Int { droppedLines.load(ordering: .relaxed) }

    /// Adds `r` to the pending batch; the batch goes to the writer when full, or from `loop` shortly after.
    func write(_ r: AccessRecord, on loop: any EventLoop) {
        guard sink != nil else { return }
        var line = ""
        line.reserveCapacity(320)
        Self.render(r, into: &line)
        let (first, full) = pending.withLock { batch -> (Bool, Bool) in
            let first = batch.lines == 0
            batch.text += line
            batch.lines += 1
            return (first, batch.text.utf8.count >= Self.batchBytes)
        }
        if full {
            flush()
        } else if first {
            loop.scheduleTask(in: Self.flushDelay) { [self] in flush() }
        }
    }

    /// Hands the pending lines to the writer.
    func flush() {
        guard let sink else { return }
        let batch = pending.withLock { batch -> Batch in
            defer { batch = Batch() }
            return batch
        }
        guard batch.lines > 0 else { return }
        let size = batch.text.utf8.count
        guard queuedBytes.add(size, ordering: .relaxed).newValue <= maxQueuedBytes else {
            queuedBytes.subtract(size, ordering: .relaxed)
            droppedLines.add(batch.lines, ordering: .relaxed)
            return
        }
        writer.async { [self] in
            sink.writeBatch(batch.text)
            queuedBytes.subtract(size, ordering: .relaxed)
        }
    }

    /// Writes everything pending and waits until it is out (at shutdown).
    func drain() {
        flush()
        writer.sync {}
    }

    /// One JSON object and a newline.
    static func render(_ r: AccessRecord, into line: inout String) {
        line += "{\"time\":\""
        line += LogTime.now()
        line += "\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":"
        JSONValue.writeString(r.requestID, into: &line)
        line += ",\"route\":"
        if let route = r.route { JSONValue.writeString(route, into: &line) } else { line += "null" }
        line += ",\"method\":"
        JSONValue.writeString(r.method, into: &line)
        line += ",\"path\":"
        JSONValue.writeString(String(r.path.prefix(200)), into: &line)
        line += ",\"status\":\(r.status),\"latency_ms\":\(millis(r.latencyMicros)),\"client\":"
        JSONValue.writeString(r.client, into: &line)
        if let country = r.country { line += ",\"country\":\"\(country)\"" }  // two letters A–Z, checked at lookup
        line += ",\"decision\":\"\(r.decision)\""
        if let by = r.decidedBy { line += ",\"policy\":\"\(by)\"" }
        if let s = r.upstreamStatus { line += ",\"upstream_status\":\(s)" }
        if let l = r.upstreamLatencyMicros { line += ",\"upstream_latency_ms\":\(millis(l))" }
        if let note = r.note {
            line += ",\"note\":"
            JSONValue.writeString(note, into: &line)
        }
        line += "}\n"
    }

    static func millis(_ micros: Int64) -> String {
        let whole = micros / 1000
        let frac = micros % 1000
        let f = String(frac)
        return "\(whole).\(String(repeating: "0", count: 3 - f.count))\(f)"
    }
}
