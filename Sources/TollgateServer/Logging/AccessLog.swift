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
    /// `pass` when the upstream was called or a file served, else `reject`.
    var decision: String
    /// Name of the policy or gateway stage that decided (`validation`, `routing`, `upstream`, …).
    var decidedBy: String?
    var upstreamStatus: Int?
    var upstreamLatencyMicros: Int64?
    /// Operator-facing reason (never sent to the client): e.g. `connect refused`, `redirect`.
    var note: String?
}

/// Writes one JSON line per request. Built by hand rather than through swift-log metadata
/// dictionaries: this is the one log line on the hot path.
struct AccessLog {
    let sink: LogSink?

    var isEnabled: Bool { sink != nil }

    func write(_ r: AccessRecord) {
        guard let sink else { return }
        var line = "{\"time\":\""
        line += LogTime.now()
        line += "\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":"
        JSONValue.writeString(r.requestID, into: &line)
        line += ",\"route\":"
        if let route = r.route { JSONValue.writeString(route, into: &line) } else { line += "null" }
        line += ",\"method\":"
        JSONValue.writeString(r.method, into: &line)
        line += ",\"path\":"
        JSONValue.writeString(String(r.path.prefix(200)), into: &line)
        line += ",\"status\":\(r.status),\"latency_ms\":\(Self.millis(r.latencyMicros)),\"client\":"
        JSONValue.writeString(r.client, into: &line)
        line += ",\"decision\":\"\(r.decision)\""
        if let by = r.decidedBy { line += ",\"policy\":\"\(by)\"" }
        if let s = r.upstreamStatus { line += ",\"upstream_status\":\(s)" }
        if let l = r.upstreamLatencyMicros { line += ",\"upstream_latency_ms\":\(Self.millis(l))" }
        if let note = r.note {
            line += ",\"note\":"
            JSONValue.writeString(note, into: &line)
        }
        line += "}"
        sink.write(line)
    }

    static func millis(_ micros: Int64) -> String {
        let whole = micros / 1000
        let frac = micros % 1000
        let f = String(frac)
        return "\(whole).\(String(repeating: "0", count: 3 - f.count))\(f)"
    }
}
