/// Accepts only the parameters a route declares, each within its rules; everything else is a 422
/// listing every failing field. Also fills ``RequestView/params`` with the canonical values.
///
/// Refused: unknown parameters, a parameter given twice (parameter pollution), a body that is not a
/// JSON object when the route declares body parameters, and a body on a route that declares none.
/// A body on a route with body parameters that names another media type than JSON
/// (`application/json` or `+json`) is refused with 415 — notably `text/plain`, which browsers send
/// cross-origin without a preflight; a body without `Content-Type` is parsed as JSON. A refused request still gets ``RequestView/params`` with the values that passed (for shadow mode).
public struct ValidationPolicy: Policy {
    public let kind = RouteConfig.PolicyKind.validation
    public let specs: [ParamSpec]
    /// Indices into `specs` by where the parameter comes from.
    private let queryIndices: [Int]
    private let bodyIndices: [Int]
    private let pathIndices: [Int]

    public init(specs: [ParamSpec]) {
        self.specs = specs
        queryIndices = specs.indices.filter { specs[$0].location == .query }
        bodyIndices = specs.indices.filter { specs[$0].location == .body }
        pathIndices = specs.indices.filter { specs[$0].location == .path }
    }

    public func evaluate(_ request: inout RequestView) -> Decision {
        if !bodyIndices.isEmpty, !request.body.isEmpty, let type = request.header("content-type"), !Self.isJSON(type) {
            return .reject(.unsupportedMediaType)
        }
        // The value found for each spec, on the stack (no allocation per request); only the
        // validated params outlive it.
        return withUnsafeTemporaryAllocation(of: ParamValue?.self, capacity: specs.count) { values in
            values.initialize(repeating: nil)
            defer { _ = values.deinitialize() }
            return validate(&request, values)
        }
    }

    private func validate(_ request: inout RequestView, _ values: UnsafeMutableBufferPointer<ParamValue?>) -> Decision {
        var errors: [FieldError] = []
        validateQuery(request.query, into: values, errors: &errors)
        validateBody(request.body, into: values, errors: &errors)
        for i in pathIndices {
            let spec = specs[i]
            guard let raw = request.pathParams.first(where: { $0.name == spec.name })?.value else { continue }
            guard let decoded = PercentEncoding.decode(raw, plusIsSpace: false) else {
                errors.append(FieldError(field: spec.name, location: "path", rule: "encoding", detail: "is not valid percent-encoding", excerpt: nil))
                continue
            }
            record(ParamCheck.check(text: decoded, spec: spec), at: i, into: values, errors: &errors)
        }
        // When the query or body could not be read at all, "required" would only repeat that error.
        let unreadable = errors.contains { $0.field.isEmpty }
        for (i, spec) in specs.enumerated() where values[i] == nil {
            if let value = spec.defaultValue {
                values[i] = value
            } else if spec.required, !unreadable, !errors.contains(where: { $0.field == spec.name }) {
                errors.append(FieldError(field: spec.name, location: spec.location.rawValue, rule: "required", detail: "is required", excerpt: nil))
            }
        }
        // Only values that passed their rules are ever kept: in shadow mode, where a refusal is only
        // noted, the upstream gets the valid parameters and never an invalid or unknown one.
        var params: [ValidatedParam] = []
        params.reserveCapacity(specs.count)
        for (i, spec) in specs.enumerated() {
            if let value = values[i] { params.append(ValidatedParam(name: spec.name, location: spec.location, value: value)) }
        }
        request.params = params
        return errors.isEmpty ? .pass : .reject(Self.problem(errors))
    }

    /// Walks the raw query once, without splitting it into arrays; only values are decoded.
    private func validateQuery(_ query: Substring, into values: UnsafeMutableBufferPointer<ParamValue?>, errors: inout [FieldError]) {
        guard !query.isEmpty else { return }
        var seen = SeenSet(count: specs.count)
        var rest = query[...]
        // Split on the UTF-8 bytes of `&` and `=` (ASCII, so always on a character boundary):
        // searching by `Character` was 0.7 % of a proxied request's CPU.
        while !rest.isEmpty {
            let pairEnd = rest.utf8.firstIndex(of: UInt8(ascii: "&")) ?? rest.endIndex
            let pair = rest[..<pairEnd]
            rest = pairEnd == rest.endIndex ? rest[pairEnd...] : rest[rest.utf8.index(after: pairEnd)...]
            if pair.isEmpty { continue }
            let eq = pair.utf8.firstIndex(of: UInt8(ascii: "="))
            let rawName = pair[..<(eq ?? pair.endIndex)]
            let rawValue = eq.map { pair[pair.utf8.index(after: $0)...] } ?? ""
            guard let name = PercentEncoding.decode(rawName, plusIsSpace: true),
                  let value = PercentEncoding.decode(rawValue, plusIsSpace: true) else {
                errors.append(FieldError(field: "", location: "query", rule: "encoding", detail: "the query string is not valid percent-encoding", excerpt: nil))
                return
            }
            guard let index = queryIndices.first(where: { specs[$0].name == name }) else {
                errors.append(FieldError(field: ParamCheck.excerpt(name), location: "query", rule: "unknown", detail: "is not a parameter of this route", excerpt: nil))
                continue
            }
            if seen.contains(index) {
                errors.append(FieldError(field: name, location: "query", rule: "repeated", detail: "must be given at most once", excerpt: nil))
                values[index] = nil
                continue
            }
            seen.insert(index)
            record(ParamCheck.check(text: value, spec: specs[index]), at: index, into: values, errors: &errors)
        }
    }

    private func validateBody(_ body: [UInt8], into values: UnsafeMutableBufferPointer<ParamValue?>, errors: inout [FieldError]) {
        guard !body.isEmpty else { return }
        guard !bodyIndices.isEmpty else {
            errors.append(FieldError(field: "", location: "body", rule: "unexpected", detail: "this route takes no request body", excerpt: nil))
            return
        }
        guard case .some(.object(let members)) = try? JSONParser.parse(body) else {
            errors.append(FieldError(field: "", location: "body", rule: "json", detail: "must be a JSON object", excerpt: nil))
            return
        }
        for member in members {
            guard let index = bodyIndices.first(where: { specs[$0].name == member.key }) else {
                errors.append(FieldError(field: ParamCheck.excerpt(member.key), location: "body", rule: "unknown", detail: "is not a parameter of this route", excerpt: nil))
                continue
            }
            if case .null = member.value { continue }
            record(ParamCheck.check(json: member.value, spec: specs[index]), at: index, into: values, errors: &errors)
        }
    }

    private func record(_ result: Result<ParamValue, FieldError>, at index: Int, into values: UnsafeMutableBufferPointer<ParamValue?>, errors: inout [FieldError]) {
        switch result {
        case .success(let v): values[index] = v
        case .failure(let e): errors.append(e)
        }
    }

    /// `application/json` or a `+json` type, parameters ignored.
    static func isJSON(_ contentType: String) -> Bool {
        let type = contentType.prefix { $0 != ";" }.trimmingWhitespace().lowercased()
        return type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json"))
    }

    static func problem(_ errors: [FieldError]) -> Problem {
        Problem(status: 422, code: "invalid-parameters", title: "Unprocessable Content",
                detail: "One or more parameters are invalid.",
                extensions: [JSONMember("errors", .array(errors.prefix(20).map(\.json)))])
    }
}

/// Which parameters a query named already: a bit set for the usual few (no allocation), an array
/// beyond 64.
private struct SeenSet {
    private var bits: UInt64 = 0
    private var more: [Bool]

    init(count: Int) {
        more = count > 64 ? [Bool](repeating: false, count: count) : []
    }

    func contains(_ i: Int) -> Bool {
        more.isEmpty ? bits & (1 << UInt64(i)) != 0 : more[i]
    }

    mutating func insert(_ i: Int) {
        if more.isEmpty { bits |= 1 << UInt64(i) } else { more[i] = true }
    }
}
