import Testing
@testable import TollgateCore

@Suite struct ValidationPolicyTests {
    let policy = ValidationPolicy(specs: [
        try! ParamSpec(name: "q", location: .query, kind: .string, required: true, minLength: 3, maxLength: 10),
        try! ParamSpec(name: "country", location: .query, kind: .enumeration(["US", "CA"]), defaultValue: .string("US")),
        try! ParamSpec(name: "limit", location: .query, kind: .int, minimum: 1, maximum: 50),
        try! ParamSpec(name: "zip", location: .query, kind: .string, pattern: "[0-9]{5}"),
        try! ParamSpec(name: "exact", location: .query, kind: .bool),
        try! ParamSpec(name: "lat", location: .query, kind: .number, minimum: -90, maximum: 90),
    ])

    func run(_ query: String, body: String = "", policy: ValidationPolicy? = nil) -> (Decision, [ValidatedParam]) {
        var view = RequestView(method: "GET", path: "/x", query: Substring(query), headers: [], body: Array(body.utf8), clientAddress: "1.2.3.4")
        let decision = (policy ?? self.policy).evaluate(&view)
        return (decision, view.params)
    }

    func rules(_ query: String, body: String = "", policy: ValidationPolicy? = nil) -> [String] {
        guard case .reject(let problem) = run(query, body: body, policy: policy).0 else { return [] }
        #expect(problem.status == 422)
        guard case .array(let errors)? = problem.extensions.first(where: { $0.key == "errors" })?.value else { return [] }
        return errors.map { "\($0["field"].map { if case .string(let s) = $0 { s } else { "" } } ?? ""):\($0["rule"].map { if case .string(let s) = $0 { s } else { "" } } ?? "")" }
    }

    @Test func validRequestFillsCanonicalValuesAndDefaults() {
        let (decision, params) = run("q=Main+St&limit=05&exact=true&lat=51.5")
        #expect(decision == .pass)
        #expect(params.map(\.name) == ["q", "country", "limit", "exact", "lat"])
        #expect(params[0].value == .string("Main St"))
        #expect(params[1].value == .string("US"))
        #expect(params[2].value == .int(5))
        #expect(params[3].value == .bool(true))
        #expect(params[4].value == .number("51.5"))
    }

    @Test func eachRuleIsReported() {
        #expect(rules("") == ["q:required"])
        #expect(rules("q=ab") == ["q:min_length"])
        #expect(rules("q=abcdefghijk") == ["q:max_length"])
        #expect(rules("q=abc&country=FR") == ["country:enum"])
        #expect(rules("q=abc&limit=0") == ["limit:minimum"])
        #expect(rules("q=abc&limit=51") == ["limit:maximum"])
        #expect(rules("q=abc&limit=1.5") == ["limit:type"])
        #expect(rules("q=abc&limit=%2B5") == ["limit:type"])
        #expect(rules("q=abc&zip=1234a") == ["zip:pattern"])
        #expect(rules("q=abc&exact=1") == ["exact:type"])
        #expect(rules("q=abc&lat=NaN") == ["lat:type"])
        #expect(rules("q=abc&lat=0x10") == ["lat:type"])
        #expect(rules("q=abc&lat=91") == ["lat:maximum"])
    }

    @Test func unknownAndRepeatedParametersAreRefused() {
        #expect(rules("q=abc&format=xml") == ["format:unknown"])
        #expect(rules("q=abc&q=def") == ["q:repeated"])
        #expect(rules("q=%zz") == [":encoding"])
        #expect(rules("q=a%0Abc") == ["q:characters"])
    }

    @Test func excerptIsShortAndEscaped() {
        guard case .reject(let problem) = run("q=" + String(repeating: "%3Cscript%3E", count: 5)).0 else {
            Issue.record("expected reject")
            return
        }
        let json = problem.json(requestID: "r1")
        #expect(!json.contains("<script>"))
        #expect(json.contains("\\u003cscript\\u003e"))
        #expect(json.contains("…"))
    }

    @Test func jsonBodyParameters() {
        let body = ValidationPolicy(specs: [
            try! ParamSpec(name: "q", location: .body, kind: .string, required: true, minLength: 3),
            try! ParamSpec(name: "n", location: .body, kind: .int),
            try! ParamSpec(name: "b", location: .body, kind: .bool),
        ])
        let (decision, params) = run("", body: #"{"q":"Main","n":3,"b":false}"#, policy: body)
        #expect(decision == .pass)
        #expect(params.map(\.value) == [.string("Main"), .int(3), .bool(false)])
        #expect(rules("", body: #"{"q":"Main","n":"3"}"#, policy: body) == ["n:type"])
        #expect(rules("", body: #"{"q":"Main","b":1}"#, policy: body) == ["b:type"])
        #expect(rules("", body: #"{"q":"Main","extra":1}"#, policy: body) == ["extra:unknown"])
        #expect(rules("", body: #"{"q":"Main","q":"Evil"}"#, policy: body) == [":json"])
        #expect(rules("", body: "[1,2]", policy: body) == [":json"])
        #expect(rules("q=abc", body: #"{"q":"x"}"#) == [":unexpected"])
    }

    @Test func bodyInAnotherMediaTypeIs415() {
        let body = ValidationPolicy(specs: [try! ParamSpec(name: "q", location: .body, kind: .string)])
        func decide(_ type: String?) -> Int? {
            var view = RequestView(method: "POST", path: "/x", query: "", headers: type.map { [("Content-Type", $0)] } ?? [],
                                   body: Array(#"{"q":"Main"}"#.utf8), clientAddress: "1.2.3.4")
            guard case .reject(let problem) = body.evaluate(&view) else { return nil }
            return problem.status
        }
        #expect(decide("text/plain") == 415)  // what a browser sends cross-origin without a preflight
        #expect(decide("application/x-www-form-urlencoded") == 415)
        #expect(decide("application/json; charset=utf-8") == nil)
        #expect(decide("Application/JSON") == nil)
        #expect(decide("application/merge-patch+json") == nil)
        #expect(decide(nil) == nil)
    }

    /// A refused request keeps the parameters that passed, and only those (what shadow mode sends on).
    @Test func refusalKeepsOnlyValidParameters() {
        let (decision, params) = run("q=Main+St&limit=500&debug=1")
        guard case .reject = decision else { Issue.record("must refuse"); return }
        #expect(params.map(\.name) == ["q", "country"])
    }
}
