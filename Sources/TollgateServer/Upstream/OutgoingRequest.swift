import NIOCore
import TollgateCore
import TollgateUpstreamHTTP

/// Requests the gateway makes on its own behalf (CAPTCHA siteverify, alert webhooks), encoded by
/// hand into one buffer like proxied requests are (``UpstreamRequestTemplate`` renders those).
enum OutgoingRequest {
    static func encode(method: String, url: UpstreamURL, accept: String? = nil, contentType: String?, body: [UInt8],
                       headers: [(String, String)] = []) -> ByteBuffer {
        var head = "\(method) \(url.pathTemplate)\(url.staticQuery.isEmpty ? "" : "?" + url.staticQuery) HTTP/1.1\r\n"
        head += "Host: \(url.hostHeader)\r\nUser-Agent: tollgate\r\n"
        if let accept { head += "Accept: \(accept)\r\n" }
        if let contentType { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        var buffer = ByteBuffer()
        buffer.reserveCapacity(head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        return buffer
    }
}

/// Waits for an upstream answer: a client's exchange, held by the pool while its call runs (no
/// closure per call).
protocol UpstreamAnswerTaker: AnyObject {
    /// The call's answer; runs once, on the loop.
    func answered(_ result: Result<UpstreamResponse, UpstreamFailure>)
}

/// Makes upstream calls for one event loop. ``UpstreamPool`` is the real one; a test can stand in
/// a scripted one to drive an exchange through its states.
protocol UpstreamCaller: AnyObject {
    /// Runs `call`; `completion` runs once, on the loop.
    func execute(_ call: UpstreamCall, completion: @escaping (Result<UpstreamResponse, UpstreamFailure>) -> Void)
    /// Runs `call`, its timeout counted from `now`; `taker` is answered once, on the loop.
    func execute(_ call: UpstreamCall, answering taker: any UpstreamAnswerTaker, at now: NIODeadline)
}

extension UpstreamCaller {
    func execute(_ call: UpstreamCall, answering taker: any UpstreamAnswerTaker, at now: NIODeadline) {
        execute(call) { taker.answered($0) }
    }
}

extension UpstreamPool: UpstreamCaller {}
