/// Checks one raw value against a ``ParamSpec``'s type and rules.
enum ParamCheck {
    /// Longest excerpt of a bad value echoed back to the client.
    static let excerptLimit = 24

    /// A printable, bounded excerpt of `raw`: control and non-ASCII characters become `?`.
    static func excerpt(_ raw: String) -> String {
        var out = ""
        for scalar in raw.unicodeScalars.prefix(excerptLimit) {
            out.unicodeScalars.append(scalar.value >= 0x20 && scalar.value < 0x7F ? scalar : "?")
        }
        if raw.unicodeScalars.count > excerptLimit { out += "…" }
        return out
    }

    /// Validates a textual value (query string or path segment).
    static func check(text raw: String, spec: ParamSpec) -> Result<ParamValue, FieldError> {
        func failure(_ rule: String, _ detail: String) -> Result<ParamValue, FieldError> {
            .failure(FieldError(field: spec.name, location: spec.location.rawValue, rule: rule, detail: detail, excerpt: excerpt(raw)))
        }
        switch spec.kind {
        case .string:
            return checkString(raw, spec: spec).map { .string($0) }
        case .enumeration(let values):
            guard values.contains(raw) else { return failure("enum", "must be one of: \(values.joined(separator: ", "))") }
            return .success(.string(raw))
        case .int:
            guard let i = Int(raw), raw.first != "+" else { return failure("type", "must be a whole number") }
            return checkRange(Double(i), spec: spec, raw: raw).map { _ in .int(i) }
        case .number:
            guard let canonical = canonicalNumber(raw), let d = Double(canonical), d.isFinite else {
                return failure("type", "must be a number")
            }
            return checkRange(d, spec: spec, raw: raw).map { _ in .number(canonical) }
        case .bool:
            switch raw {
            case "true": return .success(.bool(true))
            case "false": return .success(.bool(false))
            default: return failure("type", "must be true or false")
            }
        }
    }

    /// Validates a value from a JSON body: the JSON type must match, no coercion from strings.
    static func check(json: JSONValue, spec: ParamSpec) -> Result<ParamValue, FieldError> {
        func typeFailure(_ expected: String) -> Result<ParamValue, FieldError> {
            .failure(FieldError(field: spec.name, location: spec.location.rawValue, rule: "type",
                                detail: "must be \(expected)", excerpt: excerpt(json.serialized)))
        }
        switch (spec.kind, json) {
        case (.string, .string(let s)), (.enumeration, .string(let s)):
            return check(text: s, spec: spec)
        case (.int, .number(let n)), (.number, .number(let n)):
            return check(text: n, spec: spec)
        case (.bool, .bool(let b)):
            return .success(.bool(b))
        case (.string, _), (.enumeration, _): return typeFailure("a string")
        case (.int, _): return typeFailure("a whole number")
        case (.number, _): return typeFailure("a number")
        case (.bool, _): return typeFailure("true or false")
        }
    }

    private static func checkString(_ s: String, spec: ParamSpec) -> Result<String, FieldError> {
        func failure(_ rule: String, _ detail: String) -> Result<String, FieldError> {
            .failure(FieldError(field: spec.name, location: spec.location.rawValue, rule: rule, detail: detail, excerpt: excerpt(s)))
        }
        var ascii = true
        for b in s.utf8 {
            if b < 0x20 || b == 0x7F { return failure("characters", "must not contain control characters") }
            if b >= 0x80 { ascii = false }
        }
        if !ascii, s.unicodeScalars.contains(where: { (0x80...0x9F).contains($0.value) }) {
            return failure("characters", "must not contain control characters")
        }
        // Length in characters; for ASCII text that is the byte count, without grapheme breaking.
        let length = ascii ? s.utf8.count : s.count
        if let min = spec.minLength, length < min { return failure("min_length", "must be at least \(min) characters") }
        if let max = spec.maxLength, length > max { return failure("max_length", "must be at most \(max) characters") }
        if let regex = spec.compiledPattern, !regex.wholeMatches(s) { return failure("pattern", "must match the pattern \(spec.pattern ?? "")") }
        return .success(s)
    }

    private static func checkRange(_ d: Double, spec: ParamSpec, raw: String) -> Result<Void, FieldError> {
        if let min = spec.minimum, d < min {
            return .failure(FieldError(field: spec.name, location: spec.location.rawValue, rule: "minimum",
                                       detail: "must be ≥ \(format(min))", excerpt: excerpt(raw)))
        }
        if let max = spec.maximum, d > max {
            return .failure(FieldError(field: spec.name, location: spec.location.rawValue, rule: "maximum",
                                       detail: "must be ≤ \(format(max))", excerpt: excerpt(raw)))
        }
        return .success(())
    }

    static func format(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }

    /// `raw` if it is a plain JSON-style number literal (no hex, no `inf`, no leading `+`), else nil.
    static func canonicalNumber(_ raw: String) -> String? {
        guard !raw.isEmpty, raw.utf8.count <= 40 else { return nil }
        guard case .some(.number(let n)) = try? JSONParser.parse(raw) else { return nil }
        return n
    }
}
