/// A declared client parameter of a route: where it comes from and what values it accepts.
public struct ParamSpec: Sendable {
    public enum Location: String, Sendable, CaseIterable { case query, body, path }

    public enum Kind: Sendable, Equatable {
        case string
        case int
        case number
        case bool
        case enumeration([String])

        var name: String {
            switch self {
            case .string: "string"
            case .int: "int"
            case .number: "number"
            case .bool: "bool"
            case .enumeration: "enum"
            }
        }
    }

    public var name: String
    public var location: Location
    public var kind: Kind
    public var required: Bool
    /// Value used when the client omits the parameter (already validated against the rules at load time).
    public var defaultValue: ParamValue?
    public var minLength: Int?
    public var maxLength: Int?
    /// Pattern the whole string value must match (ICU/Swift regex syntax).
    public var pattern: String?
    public var minimum: Double?
    public var maximum: Double?

    let compiledPattern: SendableRegex?

    public init(name: String, location: Location, kind: Kind, required: Bool = false, defaultValue: ParamValue? = nil,
                minLength: Int? = nil, maxLength: Int? = nil, pattern: String? = nil,
                minimum: Double? = nil, maximum: Double? = nil) throws {
        self.name = name
        self.location = location
        self.kind = kind
        self.required = required
        self.defaultValue = defaultValue
        self.minLength = minLength
        self.maxLength = maxLength
        self.pattern = pattern
        self.minimum = minimum
        self.maximum = maximum
        self.compiledPattern = try pattern.map { try SendableRegex($0) }
    }
}

/// A compiled pattern that can be shared across event loops (the regex is immutable once built).
struct SendableRegex: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>
    init(_ pattern: String) throws { regex = try Regex(pattern) }
    func wholeMatches(_ s: String) -> Bool { (try? regex.wholeMatch(in: s)) != nil }
}

/// A parameter value that passed validation, in its canonical form.
public enum ParamValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    /// A number as canonical JSON number text.
    case number(String)
    case bool(Bool)

    /// The value as it goes into a query string or URL path (before percent-encoding).
    public var text: String {
        switch self {
        case .string(let s): s
        case .int(let i): String(i)
        case .number(let n): n
        case .bool(let b): b ? "true" : "false"
        }
    }

    /// The value as it goes into a JSON body.
    public var json: JSONValue {
        switch self {
        case .string(let s): .string(s)
        case .int(let i): .number(String(i))
        case .number(let n): .number(n)
        case .bool(let b): .bool(b)
        }
    }
}

/// A validated parameter, ready to be placed in the upstream request.
public struct ValidatedParam: Sendable, Equatable {
    public var name: String
    public var location: ParamSpec.Location
    public var value: ParamValue
}

/// Why one parameter was refused. `excerpt` is a short, escaped piece of the offending value.
public struct FieldError: Error, Sendable, Equatable {
    public var field: String
    public var location: String
    public var rule: String
    public var detail: String
    public var excerpt: String?

    var json: JSONValue {
        var members = [JSONMember("field", .string(field)), JSONMember("in", .string(location)),
                       JSONMember("rule", .string(rule)), JSONMember("detail", .string(detail))]
        if let excerpt { members.append(JSONMember("value", .string(excerpt))) }
        return .object(members)
    }
}
