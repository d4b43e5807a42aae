import Testing
@testable import TollgateCore

@Suite struct UpstreamRequestTests {
    func route(_ extra: String, url: String = "https://paid.example/v2/validate", auth: String = "{ header: X-Api-Key, secret: API_KEY }") throws -> RouteConfig {
        let yaml = """
        secrets: { API_KEY: "env:API_KEY" }
        routes:
          - name: r
            match: { method: GET, path: /r }
            upstream: { url: "\(url)", auth: \(auth) }
        \(extra)
        """
        return try #require(try ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp").config.routes.first)
    }

    func render(_ route: RouteConfig, query: String, headers: [(String, String)] = []) -> (head: String, body: [UInt8]) {
        let r = try! Route(config: route, secrets: ["API_KEY": "k3y&=/"], limiters: LimiterRegistry(maxKeys: 100))
        var view = RequestView(method: "GET", path: "/r", query: Substring(query), headers: headers.map { ($0.0, $0.1) }, clientAddress: "1.1.1.1")
        #expect(r.evaluate(&view).isPass)
        return r.template!.render(view, requestID: "req-1")
    }

    @Test func headerSecretFixedParamsAndOnlyValidatedQuery() throws {
        let r = try route("""
            params: { q: { type: string } }
            fixed: { format: json }
            forward_headers: [Accept-Language]
        """)
        let (head, body) = render(r, query: "q=a+b", headers: [("Accept-Language", "fr"), ("Cookie", "s=1"), ("Authorization", "Bearer client")])
        #expect(head.hasPrefix("GET /v2/validate?q=a%20b&format=json HTTP/1.1\r\nHost: paid.example\r\n"))
        #expect(head.contains("X-Api-Key: k3y&=/\r\n"))
        #expect(head.contains("X-Request-ID: req-1\r\n"))
        #expect(head.contains("Accept-Language: fr\r\n"))
        #expect(!head.contains("Cookie") && !head.contains("Bearer client"))
        #expect(head.hasSuffix("\r\n\r\n"))
        #expect(body.isEmpty)
    }

    @Test func querySecretIsEncoded() throws {
        let r = try route("", auth: "{ query: key, secret: API_KEY }")
        let (head, _) = render(r, query: "")
        #expect(head.hasPrefix("GET /v2/validate?key=k3y%26%3D%2F HTTP/1.1"))
    }

    @Test func bearerAndBasic() throws {
        #expect(render(try route("", auth: "{ scheme: bearer, secret: API_KEY }"), query: "").head.contains("Authorization: Bearer k3y&=/\r\n"))
        #expect(render(try route("", auth: "{ scheme: basic, user: acct, secret: API_KEY }"), query: "").head
            .contains("Authorization: Basic \(Base64.encode(Array("acct:k3y&=/".utf8)))\r\n"))
        #expect(Base64.encode(Array("hello".utf8)) == "aGVsbG8=")
    }

    @Test func pathPlaceholdersAreEncoded() throws {
        let r = try route("    params: { id: { type: string } }", url: "http://h:81/places/{id}?v=2")
        let (head, _) = render(r, query: "id=a/b%20c")
        #expect(head.hasPrefix("GET /places/a%2Fb%20c?v=2 HTTP/1.1\r\nHost: h:81\r\n"))
    }

    @Test func jsonBodyFromValidatedParamsAndFixedBody() throws {
        let yaml = """
        routes:
          - name: r
            match: { method: POST, path: /r }
            upstream: { url: "http://h/v" }
            params: { q: { in: body, type: string }, n: { in: body, type: int } }
            fixed_body: { mode: strict, version: 2 }
        """
        let config = try #require(try ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp").config.routes.first)
        let r = try Route(config: config, secrets: [:], limiters: LimiterRegistry(maxKeys: 100))
        var view = RequestView(method: "POST", path: "/r", query: "", headers: [], body: Array(#"{"n":7,"q":"x"}"#.utf8), clientAddress: "1.1.1.1")
        #expect(r.evaluate(&view).isPass)
        let (head, body) = r.template!.render(view, requestID: "id")
        #expect(String(decoding: body, as: UTF8.self) == #"{"q":"x","n":7,"mode":"strict","version":2}"#)
        #expect(head.contains("Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"))
    }
}

extension Route.ChainOutcome {
    var isPass: Bool { if case .pass = self { true } else { false } }
}
