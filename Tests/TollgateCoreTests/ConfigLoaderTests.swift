import Foundation
import Testing
@testable import TollgateCore

/// A minimal valid config; tests splice in the part they exercise.
func configYAML(route: String = "", extraRoot: String = "") -> String {
    """
    listen: 127.0.0.1:8080
    secrets:
      API_KEY: env:API_KEY
    \(extraRoot)
    routes:
      - name: lookup
        match: { method: GET, path: /api/address }
        upstream:
          url: https://paid.example/v2/validate
          auth: { header: X-Api-Key, secret: API_KEY }
    \(route)
    """
}

func loadErrors(_ yaml: String) -> [String] {
    do {
        _ = try ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp")
        return []
    } catch {
        return error.issues.filter { $0.severity == .error }.map(\.description)
    }
}

@Suite struct ConfigLoaderTests {
    @Test func http2IsOfferedOverTLSByDefaultAndCanBeLimitedOrSwitchedOff() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in ["cert.pem", "key.pem"] { try "pem".write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        let tls = "tls: { cert: \(dir.path)/cert.pem, key: \(dir.path)/key.pem"
        let on = try ConfigLoader.load(yaml: configYAML(extraRoot: tls + " }"), baseDirectory: "/tmp").config
        #expect(on.tls?.http2 == HTTP2Limits(maxConcurrentStreams: 100, maxHeaderListSize: 16_384))
        let off = try ConfigLoader.load(yaml: configYAML(extraRoot: tls + ", http2: false }"), baseDirectory: "/tmp").config
        #expect(off.tls != nil && off.tls?.http2 == nil)
        let limited = try ConfigLoader.load(yaml: configYAML(extraRoot: tls + ", http2: { max_concurrent_streams: 8, max_header_list_size: 8KiB } }"),
                                            baseDirectory: "/tmp").config
        #expect(limited.tls?.http2 == HTTP2Limits(maxConcurrentStreams: 8, maxHeaderListSize: 8192))
        #expect(loadErrors(configYAML(extraRoot: tls + ", http2: { max_concurrent_streams: 0 } }")).count == 1)
        #expect(loadErrors(configYAML(extraRoot: tls + ", http2: { max_concurrent_streams: 5000 } }")).count == 1)
        #expect(loadErrors(configYAML(extraRoot: tls + ", http2: { max_header_list_size: 100 } }")).count == 1)
        #expect(loadErrors(configYAML(extraRoot: tls + ", http2: { streams: 8 } }")).count == 1)
        #expect(loadErrors(configYAML(extraRoot: tls + ", http2: maybe }")).count == 1)
    }

    @Test func minimalConfigLoads() throws {
        let loaded = try ConfigLoader.load(yaml: configYAML(), baseDirectory: "/tmp")
        let route = try #require(loaded.config.routes.first)
        #expect(route.name == "lookup")
        #expect(route.upstream?.url.host == "paid.example")
        #expect(route.upstream?.url.port == 443)
        #expect(route.upstream?.auth == .header(name: "X-Api-Key", secret: "API_KEY"))
        #expect(route.response.cacheControl == "no-store")
        #expect(loaded.config.secrets["API_KEY"] == .env("API_KEY"))
    }

    /// `store.budget_lease`: a duration from 500ms to 10m, `0s` or `off` for none; 5 s by default.
    @Test func budgetLeaseIsADurationOrOff() throws {
        func lease(_ value: String?) throws -> Duration? {
            let store = "store: { url: 'postgres://tollgate@127.0.0.1:5432/t'" + (value.map { ", budget_lease: \($0)" } ?? "") + " }"
            guard case .postgres(let pg) = try ConfigLoader.load(yaml: configYAML(extraRoot: store), baseDirectory: "/tmp").config.store
            else { return nil }
            return pg.budgetLease
        }
        #expect(try lease(nil) == .seconds(5))
        #expect(try lease("2s") == .seconds(2))
        #expect(try lease("off") == .zero && lease("0s") == .zero)
        for bad in ["100ms", "11m"] {
            let errors = loadErrors(configYAML(extraRoot: "store: { url: 'postgres://tollgate@127.0.0.1:5432/t', budget_lease: \(bad) }"))
            #expect(errors.contains { $0.contains("budget_lease") && $0.contains("500ms to 10m") }, "\(bad): \(errors)")
        }
    }

    @Test func reportsEveryErrorWithItsPath() {
        let yaml = configYAML(route: """
                params:
                  q: { in: query, type: string, min_length: 10, max_length: 3 }
                  n: { type: int, minimum: 5, maximum: 1 }
                  c: { type: enum }
                max_body: lots
            """)
        let errors = loadErrors(yaml)
        #expect(errors.contains { $0.hasPrefix("routes[0].params.q.max_length: must be ≥ min_length") })
        #expect(errors.contains { $0.hasPrefix("routes[0].params.n.maximum: must be ≥ minimum") })
        #expect(errors.contains { $0.hasPrefix("routes[0].params.c") && $0.contains("enum needs values") })
        #expect(errors.contains { $0.hasPrefix("routes[0].max_body: must be a size") })
        #expect(errors.allSatisfy { $0.contains("(line ") })
    }

    @Test func unknownKeysAreErrors() {
        let errors = loadErrors(configYAML(route: "    maxbody: 10", extraRoot: "listne: 1"))
        #expect(errors.contains { $0.hasPrefix("listne: unknown key") })
        #expect(errors.contains { $0.hasPrefix("routes[0].maxbody: unknown key") })
    }

    @Test func literalSecretsAreRefused() {
        let literal = """
        listen: 127.0.0.1:8080
        secrets:
          API_KEY: sk_live_51H8xYzAbCdEf0123456789
        routes:
          - name: lookup
            match: { path: /a }
            upstream:
              url: https://paid.example/v2
              auth: { header: X-Api-Key, secret: AKIAIOSFODNN7EXAMPLE1234 }
        """
        let errors = loadErrors(literal)
        #expect(errors.contains { $0.hasPrefix("secrets.API_KEY: looks like a literal secret") })
        #expect(errors.contains { $0.hasPrefix("routes[0].upstream.auth.secret: looks like a literal key") })
        // The error never repeats the value.
        #expect(!errors.joined().contains("sk_live_51H8"))
    }

    @Test func secretMustBeDeclared() {
        let yaml = configYAML().replacingOccurrences(of: "secret: API_KEY", with: "secret: OTHER")
        #expect(loadErrors(yaml).contains { $0.hasPrefix("routes[0].upstream.auth.secret: names no entry under secrets") })
    }

    @Test func pathParametersMustBeDeclared() {
        let yaml = configYAML().replacingOccurrences(of: "path: /api/address", with: "path: '/api/places/{id}'")
        #expect(loadErrors(yaml).contains { $0.contains("path parameter {id} must be declared") })
        let ok = configYAML(route: "    params:\n      id: { in: path, pattern: '[a-z0-9]+' }")
            .replacingOccurrences(of: "path: /api/address", with: "path: '/api/places/{id}'")
        #expect(loadErrors(ok).isEmpty)
    }

    @Test func fixedParamsCannotAlsoBeClientParams() {
        let yaml = configYAML(route: """
                params:
                  format: { type: string }
                fixed: { format: json }
            """)
        #expect(loadErrors(yaml).contains { $0.hasPrefix("routes[0].fixed.format: is also declared as a client parameter") })
    }

    @Test func upstreamURLRules() {
        for (url, message) in [("ftp://x/y", "must start with http:// or https://"),
                               ("https://user:pw@x/y", "must not hold credentials"),
                               ("https://x:99999/", "invalid port")] {
            let yaml = configYAML().replacingOccurrences(of: "https://paid.example/v2/validate", with: url)
            #expect(loadErrors(yaml).contains { $0.hasPrefix("routes[0].upstream.url:") && $0.contains(message) }, "\(url)")
        }
    }

    @Test func forwardingHopByHopHeadersIsRefusedAndCredentialsWarned() throws {
        let errors = loadErrors(configYAML(route: "    forward_headers: [Connection, Accept-Language]"))
        #expect(errors.contains { $0.contains("connection cannot be forwarded") })
        let loaded = try ConfigLoader.load(yaml: configYAML(route: "    forward_headers: [Cookie]"), baseDirectory: "/tmp")
        #expect(loaded.warnings.contains { $0.message.contains("forwards the client's cookie") })
    }

    @Test func duplicateRoutesAreRefused() {
        let yaml = configYAML() + """

          - name: lookup
            match: { method: GET, path: /api/address }
            upstream: { url: "https://paid.example/v2" }
        """
        let errors = loadErrors(yaml)
        #expect(errors.contains { $0.contains("route name lookup is used twice") })
        #expect(errors.contains { $0.contains("another route already matches GET /api/address") })
    }

    @Test func defaultsMustSatisfyTheirOwnRules() {
        let yaml = configYAML(route: "    params:\n      country: { type: enum, values: [US, CA], default: FR }")
        #expect(loadErrors(yaml).contains { $0.hasPrefix("routes[0].params.country.default: does not satisfy its own rules") })
    }

    @Test func timeoutsAndSizes() throws {
        let yaml = configYAML(route: "    max_body: 2KiB").replacingOccurrences(
            of: "auth: { header: X-Api-Key, secret: API_KEY }",
            with: "auth: { header: X-Api-Key, secret: API_KEY }\n      timeout: 1500ms\n      connect_timeout: 2s")
        #expect(loadErrors(yaml).contains { $0.hasPrefix("routes[0].upstream.connect_timeout: must be ≤ timeout") })
        #expect(Units.parseDuration("1500ms") == .milliseconds(1500))
        #expect(Units.parseDuration("2m") == .seconds(120))
        #expect(Units.parseDuration("10") == nil)
        #expect(Units.parseByteSize("2KiB") == 2048)
        #expect(Units.parseByteSize("1MiB") == 1 << 20)
        #expect(Units.parseByteSize("-1") == nil)
    }

    @Test func upstreamPoolBoundsAndIdleTimeout() throws {
        let config = try ConfigLoader.load(yaml: configYAML(extraRoot: "upstream_pool: { max_connections: 8, idle_timeout: 4s }"),
                                           baseDirectory: "/tmp").config
        #expect(config.upstreamMaxConnections == 8 && config.upstreamMaxWaiting == 1024)
        #expect(config.upstreamIdleTimeout == .seconds(4))
        #expect(try ConfigLoader.load(yaml: configYAML(), baseDirectory: "/tmp").config.upstreamIdleTimeout == .seconds(10))
        #expect(loadErrors(configYAML(extraRoot: "upstream_pool: { idle_timeout: 50ms }")) == ["upstream_pool.idle_timeout: must be at least 100ms (line 4)"])
        #expect(loadErrors(configYAML(extraRoot: "upstream_pool: { idle: 4s }")).count == 1)
    }

    @Test func warnsWhenNoTrustedProxiesOffLoopback() throws {
        let yaml = configYAML().replacingOccurrences(of: "listen: 127.0.0.1:8080", with: "listen: 0.0.0.0:8080")
        let loaded = try ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp")
        #expect(loaded.warnings.contains { $0.message.contains("trusted_proxies is empty") })
    }

    @Test func invalidYAMLIsOneClearError() {
        let errors = loadErrors("routes: [\n  - {")
        #expect(errors.count == 1)
        #expect(errors[0].contains("not valid YAML"))
    }

    @Test func exampleConfigIsValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("examples/address-validation/tollgate.yaml").path
        let loaded = try ConfigLoader.load(path: path)
        #expect(loaded.config.routes.map(\.name) == ["signup-page", "signup-script", "signup-style", "address-lookup"])
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
        let lookup = try #require(loaded.config.routes.last)
        #expect(lookup.requiresPageToken && lookup.challenge != nil && lookup.cost != nil && lookup.cache != nil)
        #expect(lookup.upstream?.auth == .header(name: "X-Api-Key", secret: "ADDRESS_API_KEY"))
        #expect(loaded.config.pageTokens != nil && loaded.config.challenge != nil)
        #expect(loaded.config.budgets.map(\.name) == ["daily", "per-visitor"])
        #expect(Set(loaded.config.secrets.keys) == ["ADDRESS_API_KEY", "PAGE_TOKEN_KEY", "CHALLENGE_KEY"])
    }

    /// An error in one route is reported at that route, not at a neighbour, even after a route
    /// before it failed to read.
    @Test func errorsNameTheirOwnRouteAfterAnUnreadableOne() {
        let yaml = configYAML(route: """
          - name: broken
            match: { method: GET }
          - name: twin
            match: { method: GET, path: /b }
            upstream: { url: "https://paid.example/" }
          - name: twin
            match: { method: GET, path: /c }
            upstream: { url: "https://paid.example/" }
        """)
        let errors = loadErrors(yaml)
        #expect(errors.contains { $0.hasPrefix("routes[3]") && $0.contains("route name twin is used twice") }, "\(errors)")
    }
}
