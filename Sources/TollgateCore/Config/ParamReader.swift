/// Reads one declared parameter (`routes[i].params.NAME`).
enum ParamReader {
    static let keys: Set<String> = ["in", "type", "min_length", "max_length", "pattern", "minimum", "maximum",
                                    "required", "default", "values"]

    static func read(name: String, _ node: ConfigNode) -> ParamSpec? {
        guard let keys = node.object(allowed: Self.keys) else { return nil }
        var ok = true
        func fail(_ n: ConfigNode?, _ message: String) { (n ?? node).error(message); ok = false }

        var location = ParamSpec.Location.query
        if let n = keys["in"] {
            if let l = n.oneOf(ParamSpec.Location.self) { location = l } else { ok = false }
        }

        var kind = ParamSpec.Kind.string
        let values = keys["values"].flatMap { $0.stringList() }
        let typeName = keys["type"]?.string() ?? (values != nil ? "enum" : "string")
        switch typeName {
        case "string": kind = .string
        case "int", "integer": kind = .int
        case "number": kind = .number
        case "bool", "boolean": kind = .bool
        case "enum":
            if let values, !values.isEmpty { kind = .enumeration(values) } else { fail(keys["values"], "an enum needs values: a non-empty list") }
        default: fail(keys["type"], "must be string, int, number, bool or enum")
        }
        if values != nil, typeName != "enum" { fail(keys["values"], "values is only for type: enum") }

        let minLength = keys["min_length"].flatMap { $0.int(min: 0) }
        let maxLength = keys["max_length"].flatMap { $0.int(min: 0) }
        if let minLength, let maxLength, maxLength < minLength { fail(keys["max_length"], "must be ≥ min_length") }
        if (minLength != nil || maxLength != nil || keys["pattern"] != nil), kind != .string {
            fail(keys["min_length"] ?? keys["max_length"] ?? keys["pattern"], "length and pattern rules apply to type: string only")
        }
        let minimum = keys["minimum"].flatMap { number($0) }
        let maximum = keys["maximum"].flatMap { number($0) }
        if let minimum, let maximum, maximum < minimum { fail(keys["maximum"], "must be ≥ minimum") }
        if (keys["minimum"] != nil || keys["maximum"] != nil), kind != .int, kind != .number {
            fail(keys["minimum"] ?? keys["maximum"], "minimum and maximum apply to type: int or number only")
        }
        let pattern = keys["pattern"]?.nonEmptyString()
        if let pattern, (try? Regex(pattern)) == nil { fail(keys["pattern"], "is not a valid regular expression") }
        let required = keys["required"].flatMap { $0.bool() } ?? (location == .path)
        if location == .path, !required { fail(keys["required"], "path parameters are always required") }

        guard ok, let spec = try? ParamSpec(name: name, location: location, kind: kind, required: required, minLength: minLength,
                                           maxLength: maxLength, pattern: pattern, minimum: minimum, maximum: maximum) else { return nil }
        guard let defaultNode = keys["default"] else { return spec }
        guard let text = defaultNode.string() else { return nil }
        switch ParamCheck.check(text: text, spec: spec) {
        case .success(let value):
            var withDefault = spec
            withDefault.defaultValue = value
            if required { defaultNode.warning("has a default, so required has no effect") }
            return withDefault
        case .failure(let e):
            defaultNode.error("does not satisfy its own rules: \(e.detail)")
            return nil
        }
    }

    private static func number(_ node: ConfigNode) -> Double? {
        guard let s = node.string() else { return nil }
        guard let d = Double(s), d.isFinite else { node.error("must be a number"); return nil }
        return d
    }
}
