import Foundation
import NIOCore
import NIOHTTP1

/// Answers one connection of the stand-in paid API.
final class StandInHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    private let state: StandInState
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    /// Calls received on this connection (control requests not counted).
    private var callsHere = 0

    init(state: StandInState) { self.state = state }

    func channelActive(context: ChannelHandlerContext) {
        state.withSnapshot { $0.connections += 1; $0.open += 1 }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.withSnapshot { $0.open -= 1 }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var b):
            body.writeBuffer(&b)
        case .end:
            guard let head else { return }
            self.head = nil
            handle(head, body: Data(body.readableBytesView), context: context)
        }
    }

    private func handle(_ head: HTTPRequestHead, body: Data, context: ChannelHandlerContext) {
        let (path, query) = Self.split(head.uri)
        if path.hasPrefix("/_standin/") {
            control(path: path, method: head.method, body: body, keepAlive: head.isKeepAlive, context: context)
            return
        }
        let authorized = isAuthorized(head, query: query)
        let snapshot = state.withSnapshot { s -> StandInState.Snapshot in
            s.calls += 1
            if authorized { s.authorized += 1 } else { s.unauthorized += 1 }
            s.last = ["method": head.method.rawValue, "target": head.uri,
                      "headers": head.headers.map { [$0.name, $0.value] },
                      "body": String(decoding: body, as: UTF8.self)]
            return s
        }
        guard authorized else {
            send(status: 401, json: ["error": "invalid or missing API key"], keepAlive: head.isKeepAlive, context: context)
            return
        }
        let answer = answer(path: path, query: query, method: head.method, body: body)
        let keepAlive = head.isKeepAlive
        callsHere += 1
        switch snapshot.mode {
        case .closeReused where callsHere > 1:
            context.close(promise: nil)
        case .normal, .closeReused:
            // Like many providers, report the units this call used: one per word of the query.
            let units = max(1, ((answer.json["formatted"] as? String) ?? "").split(separator: ",").first?.split(separator: " ").count ?? 1)
            send(status: answer.status, json: answer.json, extra: "X-Billing-Units: \(units)\r\n", keepAlive: keepAlive, context: context)
        case .slow:
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(snapshot.delayMillis))) {
                self.send(status: answer.status, json: answer.json, keepAlive: keepAlive, context: context)
            }
        case .fail:
            send(status: 500, raw: "internal error: rejected key \(state.apiKey) at node standin-1", type: "text/plain",
                 keepAlive: keepAlive, context: context)
        case .status:
            send(status: snapshot.status, raw: "{\"error\":\"bad key \(state.apiKey)\"}", type: "application/json",
                 keepAlive: keepAlive, context: context)
        case .garbage:
            context.writeAndFlush(NIOAny(ByteBuffer(string: "SURPRISE this is not http\r\n\r\n"))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .redirect:
            send(status: 302, raw: "", type: "text/plain", extra: "Location: http://attacker.invalid/collect?key=\(state.apiKey)\r\n",
                 keepAlive: keepAlive, context: context)
        case .huge:
            send(status: 200, raw: "{\"pad\":\"" + String(repeating: "x", count: max(0, snapshot.size - 10)) + "\"}",
                 type: "application/json", keepAlive: keepAlive, context: context)
        case .chunked:
            let data = (try? JSONSerialization.data(withJSONObject: answer.json, options: [.sortedKeys])) ?? Data()
            var out = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 \(answer.status) OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            let half = data.count / 2
            for part in [data.prefix(half), data.suffix(from: half)] where !part.isEmpty {
                out += String(part.count, radix: 16) + ";ext=1\r\n" + String(decoding: part, as: UTF8.self) + "\r\n"
            }
            out += "0\r\nX-Trailer: t\r\n\r\n"
            write(out, keepAlive: keepAlive, context: context)
        case .shortKeepAlive:
            send(status: answer.status, json: answer.json, extra: "Keep-Alive: timeout=1\r\n", keepAlive: keepAlive, context: context)
        case .hop:
            let extra = "Connection: X-Hop-Secret\r\nX-Hop-Secret: leaked\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n"
                + "Set-Cookie: standin_session=s3cr3t; Path=/\r\nX-Internal-Debug: node=standin-1\r\nX-Billing-Units: 1\r\n"
            send(status: answer.status, json: answer.json, extra: extra, keepAlive: keepAlive, context: context)
        case .close:
            context.close(promise: nil)
        case .notJSON:
            send(status: 200, raw: "this is not json", type: "text/plain", keepAlive: keepAlive, context: context)
        case .echo:
            let credentials = (head.headers["x-api-key"] + head.headers["authorization"]).joined(separator: " ")
            let echoed = "\(head.uri) \(credentials)"
            var json = answer.json
            var extra = ""
            switch snapshot.echoIn {
            case "field": json["formatted"] = echoed
            case "header": extra = "X-Echo: \(echoed)\r\n"
            default: json["request"] = ["target": head.uri, "credentials": credentials]
            }
            send(status: answer.status, json: json, extra: extra, keepAlive: keepAlive, context: context)
        }
    }

    /// The stand-in's "paid" answer: an address check with fields the gateway is expected to strip.
    private func answer(path: String, query: [String: String], method: HTTPMethod, body: Data) -> (status: Int, json: [String: Any]) {
        var params = query
        if method == .POST, let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] {
            for (k, v) in object { params[k] = "\(v)" }
        }
        if path.hasPrefix("/v2/places/") {
            let id = String(path.dropFirst("/v2/places/".count))
            if id == "missing" { return (404, ["error": "no such place", "key_echo": state.apiKey]) }
            return (200, ["id": id, "name": "Place \(id)", "internal_note": "not for clients"])
        }
        let q = params["q"] ?? ""
        let country = params["country"] ?? "US"
        let digits = q.filter(\.isNumber)
        return (200, [
            "formatted": "\(q.uppercased()), \(country)",
            "postcode": digits.isEmpty ? "00000" : String(digits.prefix(5)),
            "valid": q.count >= 5,
            "country": country,
            "provider_account": "acct_standin_42",
            "debug_trace": "node=standin-1 format=\(params["format"] ?? "-")",
            "billing_units": 1,
        ])
    }

    private func isAuthorized(_ head: HTTPRequestHead, query: [String: String]) -> Bool {
        let key = state.apiKey
        if head.headers["x-api-key"].contains(key) { return true }
        if query["key"] == key { return true }
        for auth in head.headers["authorization"] {
            if auth == "Bearer \(key)" { return true }
            if auth.hasPrefix("Basic "), let data = Data(base64Encoded: String(auth.dropFirst(6))),
               let text = String(data: data, encoding: .utf8), text.split(separator: ":", maxSplits: 1).last.map(String.init) == key {
                return true
            }
        }
        return false
    }

    private func control(path: String, method: HTTPMethod, body: Data, keepAlive: Bool, context: ChannelHandlerContext) {
        switch path {
        case "/_standin/stats":
            let s = state.withSnapshot { $0 }
            send(status: 200, json: ["calls": s.calls, "authorized": s.authorized, "unauthorized": s.unauthorized,
                                     "connections": s.connections, "open": s.open, "mode": s.mode.rawValue],
                 keepAlive: keepAlive, context: context)
        case "/_standin/last":
            let last = state.withSnapshot { $0.last }
            send(status: 200, json: last, keepAlive: keepAlive, context: context)
        case "/_standin/reset":
            state.withSnapshot { let open = $0.open; $0 = .init(); $0.open = open }  // connections stay open
            send(status: 200, json: ["ok": true], keepAlive: keepAlive, context: context)
        case "/_standin/mode":
            let object = (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:]
            guard let name = object["mode"] as? String, let mode = StandInMode(rawValue: name) else {
                send(status: 400, json: ["error": "mode must be one of \(StandInMode.allCases.map(\.rawValue))"], keepAlive: keepAlive, context: context)
                return
            }
            state.withSnapshot {
                $0.mode = mode
                $0.delayMillis = object["delay_ms"] as? Int ?? 0
                $0.size = object["size"] as? Int ?? 0
                $0.status = object["status"] as? Int ?? 500
                $0.echoIn = object["where"] as? String ?? "body"
            }
            send(status: 200, json: ["mode": mode.rawValue], keepAlive: keepAlive, context: context)
        default:
            send(status: 404, json: ["error": "unknown control path"], keepAlive: keepAlive, context: context)
        }
    }

    private func send(status: Int, json: [String: Any], extra: String = "", keepAlive: Bool, context: ChannelHandlerContext) {
        let data = (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? Data("{}".utf8)
        send(status: status, raw: String(decoding: data, as: UTF8.self), type: "application/json", extra: extra,
             keepAlive: keepAlive, context: context)
    }

    private func send(status: Int, raw: String, type: String, extra: String = "", keepAlive: Bool, context: ChannelHandlerContext) {
        var out = "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Status")\r\nContent-Type: \(type)\r\nContent-Length: \(raw.utf8.count)\r\n"
        out += extra
        if !keepAlive { out += "Connection: close\r\n" }
        out += "\r\n" + raw
        write(out, keepAlive: keepAlive, context: context)
    }

    private func write(_ text: String, keepAlive: Bool, context: ChannelHandlerContext) {
        let future = context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text)))
        if !keepAlive {
            future.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    static func split(_ uri: String) -> (String, [String: String]) {
        guard let q = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: q)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "") : ""
            query[name] = value
        }
        return (String(uri[..<q]), query)
    }
}
