/// Keeps only the listed fields of an upstream JSON response, so internal data of the paid API
/// (account ids, debug traces, raw provider payloads) never reaches the page.
///
/// A field is a member name or a dotted path into nested objects (`address.postcode`); when the
/// value on the way is an array of objects, the rest of the path applies to each element.
public struct ResponseProjection: Sendable {
    public let fields: [String]
    private let paths: [[String]]

    public init(fields: [String]) {
        self.fields = fields
        self.paths = fields.map { $0.split(separator: ".").map(String.init) }
    }

    /// The projected document, or nil when the body is not JSON (the gateway then answers 502).
    public func project(_ body: some Collection<UInt8>) -> JSONValue? {
        guard let document = try? JSONParser.parse(body, maxDepth: 64) else { return nil }
        return project(document)
    }

    public func project(_ document: JSONValue) -> JSONValue {
        Self.keep(paths, in: document)
    }

    private static func keep(_ paths: [[String]], in value: JSONValue) -> JSONValue {
        switch value {
        case .array(let items):
            return .array(items.map { keep(paths, in: $0) })
        case .object(let members):
            var out: [JSONMember] = []
            for member in members {
                let matching = paths.filter { $0.first == member.key }
                guard !matching.isEmpty else { continue }
                if matching.contains(where: { $0.count == 1 }) {
                    out.append(member)
                } else {
                    out.append(JSONMember(member.key, keep(matching.map { Array($0.dropFirst()) }, in: member.value)))
                }
            }
            return .object(out)
        default:
            return value
        }
    }
}
