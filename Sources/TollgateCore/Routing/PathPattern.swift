/// A route path such as `/api/places/{id}`: literal segments and named parameters that each match
/// one non-empty segment.
public struct PathPattern: Sendable, Equatable, CustomStringConvertible {
    public enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    public let segments: [Segment]
    public let description: String

    /// Parses a pattern; nil when it does not start with `/` or a segment is malformed.
    public init?(_ text: String) {
        guard text.hasPrefix("/") else { return nil }
        var segments: [Segment] = []
        for part in text.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            if part.hasPrefix("{") && part.hasSuffix("}") {
                let name = part.dropFirst().dropLast()
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
                segments.append(.parameter(String(name)))
            } else {
                guard !part.contains("{"), !part.contains("}") else { return nil }
                segments.append(.literal(String(part)))
            }
        }
        self.segments = segments
        self.description = text
    }

    public var parameterNames: [String] {
        segments.compactMap { if case .parameter(let n) = $0 { n } else { nil } }
    }

    /// The captured parameters when `path` matches, else nil. Literal segments compare exactly,
    /// without decoding, so `/api/%61ddress` does not reach `/api/address`.
    public func match(_ path: Substring) -> [(name: String, value: Substring)]? {
        var captures: [(name: String, value: Substring)] = []
        var rest = path.dropFirst()
        for (i, segment) in segments.enumerated() {
            let end = rest.firstIndex(of: "/") ?? rest.endIndex
            let part = rest[..<end]
            switch segment {
            case .literal(let lit):
                guard part == lit else { return nil }
            case .parameter(let name):
                guard !part.isEmpty else { return nil }
                captures.append((name, part))
            }
            let isLast = i == segments.count - 1
            if isLast {
                guard end == rest.endIndex else { return nil }
            } else {
                guard end != rest.endIndex else { return nil }
                rest = rest[rest.index(after: end)...]
            }
        }
        return captures
    }
}
