import NIOCore
import Testing
@testable import TollgateCore
@testable import TollgateServer

/// The data plane renders upstream request heads into bytes its event loop reuses (and other
/// requests straight into a `ByteBuffer`); the bytes must be exactly those of the string rendering
/// the Core's tests check, however often the reused bytes were written before.
@Suite struct UpstreamRenderTests {
    @Test func bufferRenderingEqualsStringRendering() throws {
        let yaml = """
        secrets: { API_KEY: "env:API_KEY" }
        routes:
          - name: r
            match: { method: POST, path: "/r/{id}" }
            upstream: { url: "https://paid.example/v2/{id}/validate?v=2", auth: { header: X-Api-Key, secret: API_KEY } }
            params:
              id: { in: path, type: string }
              q: { type: string }
              note: { in: body, type: string, required: false }
            fixed: { format: json }
            forward_headers: [Accept-Language]
        """
        let config = try #require(try ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp").config.routes.first)
        let route = try Route(config: config, secrets: ["API_KEY": "k3y"], limiters: LimiterRegistry(maxKeys: 100))
        var reused: [UInt8] = []
        for query in ["q=a+b", "q=%E2%82%AC%20%26x", "q=" + String(repeating: "z", count: 600)] {
            var view = RequestView(method: "POST", path: "/r/ab-1", query: Substring(query),
                                   headers: [("Accept-Language", "fr"), ("Content-Type", "application/json")],
                                   body: Array(#"{"note": "hé"}"#.utf8), clientAddress: "1.1.1.1", pathParams: [("id", "ab-1")])
            guard case .pass = route.evaluate(&view) else { Issue.record("chain refused \(query)"); continue }
            let template = try #require(route.template)
            let (head, body) = template.render(view, requestID: "req-1")
            var buffer = ByteBufferAllocator().buffer(capacity: template.typicalHeadBytes)
            let bufferBody = template.render(view, requestID: "req-1", into: &buffer)
            #expect(buffer.readString(length: buffer.readableBytes) == head)
            #expect(bufferBody == body)
            reused.removeAll(keepingCapacity: true)  // as ProxyExchange does with the loop's bytes
            let bytesBody = template.render(&view, requestID: "req-1", into: &reused)
            #expect(String(decoding: reused, as: UTF8.self) == head)
            #expect(bytesBody == body)
            #expect(head.hasPrefix("POST /v2/") && head.hasSuffix("\r\n\r\n"))
        }
    }
}
