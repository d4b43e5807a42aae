/// An error the gateway answers with, rendered as RFC 9457 `application/problem+json`.
///
/// A problem says what went wrong in generic words. It never carries upstream bodies, upstream error
/// text, file paths or secrets: details that help an operator go to the log, under the same request id.
public struct Problem: Sendable, Equatable {
    /// HTTP status code.
    public var status: Int
    /// Short, stable identifier; becomes the `type` URI (`urn:tollgate:problem:<code>`).
    public var code: String
    /// Human-readable summary, the same for every occurrence of this code.
    public var title: String
    /// Optional human-readable explanation of this occurrence. Never includes client or upstream data.
    public var detail: String?
    /// Extra members (e.g. `errors` for validation), already safe to show.
    public var extensions: [JSONMember]
    /// Response headers that belong with this problem (`Allow`, `Retry-After`, …).
    public var headers: [(String, String)]

    public init(status: Int, code: String, title: String, detail: String? = nil,
                extensions: [JSONMember] = [], headers: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.extensions = extensions
        self.headers = headers
    }

    public static func == (lhs: Problem, rhs: Problem) -> Bool {
        lhs.status == rhs.status && lhs.code == rhs.code && lhs.title == rhs.title && lhs.detail == rhs.detail
            && lhs.extensions == rhs.extensions && lhs.headers.elementsEqual(rhs.headers, by: { $0 == $1 })
    }

    /// The problem document, with the request id it answers.
    public func json(requestID: String) -> String {
        var out = ""
        out.reserveCapacity(160 + title.utf8.count + (detail?.utf8.count ?? 0))
        write(requestID: requestID, into: &out)
        return out
    }

    /// Appends the problem document to `out` (the gateway renders it into a reused buffer).
    public func write(requestID: String, into out: inout String) {
        out += "{\"type\":\"urn:tollgate:problem:"
        out += code
        out += "\",\"title\":"
        JSONValue.writeString(title, into: &out)
        out += ",\"status\":"
        out += String(status)
        if let detail {
            out += ",\"detail\":"
            JSONValue.writeString(detail, into: &out)
        }
        out += ",\"request_id\":"
        JSONValue.writeString(requestID, into: &out)
        for member in extensions {
            out += ","
            JSONValue.writeString(member.key, into: &out)
            out += ":"
            member.value.write(into: &out)
        }
        out += "}"
    }
}

extension Problem {
    public static let notFound = Problem(status: 404, code: "not-found", title: "Not Found",
                                         detail: "No route matches this path.")
    public static func methodNotAllowed(allow: [String]) -> Problem {
        Problem(status: 405, code: "method-not-allowed", title: "Method Not Allowed",
                detail: "This path does not accept that method.", headers: [("Allow", allow.joined(separator: ", "))])
    }
    public static let bodyTooLarge = Problem(status: 413, code: "body-too-large", title: "Content Too Large",
                                             detail: "The request body exceeds the limit of this route.")
    public static let badRequest = Problem(status: 400, code: "bad-request", title: "Bad Request",
                                           detail: "The request could not be parsed.")
    public static let requestTimeout = Problem(status: 408, code: "request-timeout", title: "Request Timeout",
                                               detail: "The request was not received in time.")
    public static let headersTooLarge = Problem(status: 431, code: "headers-too-large", title: "Request Header Fields Too Large")
    public static let unsupportedMediaType = Problem(status: 415, code: "unsupported-media-type", title: "Unsupported Media Type",
                                                     detail: "This route accepts application/json bodies only.")
    public static let upstreamUnavailable = Problem(status: 502, code: "upstream-unavailable", title: "Bad Gateway",
                                                    detail: "The upstream service could not be reached.")
    public static let upstreamFailed = Problem(status: 502, code: "upstream-error", title: "Bad Gateway",
                                               detail: "The upstream service did not give a usable answer.")
    /// Every connection to the upstream is busy and the wait queue is full (`upstream_pool`).
    public static let upstreamBusy = Problem(status: 503, code: "upstream-busy", title: "Service Unavailable",
                                             detail: "The upstream service is busy; try again shortly.", headers: [("Retry-After", "1")])
    public static let upstreamTimeout = Problem(status: 504, code: "upstream-timeout", title: "Gateway Timeout",
                                                detail: "The upstream service did not answer in time.")
    public static let shuttingDown = Problem(status: 503, code: "shutting-down", title: "Service Unavailable",
                                             detail: "The gateway is restarting; try again shortly.", headers: [("Retry-After", "1")])
    public static let internalError = Problem(status: 500, code: "internal", title: "Internal Server Error")
}
