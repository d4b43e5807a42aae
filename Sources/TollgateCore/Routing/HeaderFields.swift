/// Read access to a request's header fields, whatever stores them: the data plane hands NIO's
/// `HTTPHeaders` through without copying them into another structure.
public protocol HeaderFields: Sendable {
    /// Calls `body` with each field in order until it returns false.
    func forEachField(_ body: (_ name: String, _ value: String) -> Bool)
}

extension HeaderFields {
    /// The first value of the field `name` (ASCII case-insensitive).
    public func first(_ name: String) -> String? {
        var found: String?
        forEachField { n, v in
            if ASCII.equalsIgnoringCase(n, name) { found = v; return false }
            return true
        }
        return found
    }

    /// The value of cookie `name` in the `Cookie` field(s).
    public func cookie(_ name: String) -> String? {
        var found: String?
        forEachField { n, v in
            guard ASCII.equalsIgnoringCase(n, "cookie") else { return true }
            for pair in v.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingWhitespace() == name { found = kv[1].trimmingWhitespace(); return false }
            }
            return true
        }
        return found
    }

    /// Every value of the field `name`, in order.
    public func all(_ name: String) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        forEachField { n, v in
            if ASCII.equalsIgnoringCase(n, name) { out.append((n, v)) }
            return true
        }
        return out
    }
}

/// Header fields held in an array (tests, and anything not coming from the data plane).
public struct HeaderList: HeaderFields {
    public var fields: [(name: String, value: String)]

    public init(_ fields: [(name: String, value: String)]) { self.fields = fields }

    public func forEachField(_ body: (String, String) -> Bool) {
        for (n, v) in fields where !body(n, v) { return }
    }
}

enum ASCII {
    /// Compares two header names without allocating lower-cased copies.
    static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        for (p, q) in zip(x, y) where p != q {
            let fp = p >= 0x41 && p <= 0x5A ? p | 0x20 : p
            let fq = q >= 0x41 && q <= 0x5A ? q | 0x20 : q
            if fp != fq { return false }
        }
        return true
    }
}
