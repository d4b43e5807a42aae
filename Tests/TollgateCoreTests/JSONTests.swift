import Testing
@testable import TollgateCore

@Suite struct JSONTests {
    @Test func parsesAndSerializesPreservingNumbersAndOrder() throws {
        let text = #"{"b":1.10,"a":[true,false,null,"x\u00e9\n"],"c":{"d":-0.5e3}}"#
        let value = try JSONParser.parse(text)
        #expect(value.serialized == #"{"b":1.10,"a":[true,false,null,"xé\n"],"c":{"d":-0.5e3}}"#)
    }

    @Test func rejectsInvalidDocuments() {
        for bad in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "\"\u{01}\"", "{\"a\" 1}", "tru", "[1] x", "\"\\ud800\"",
                    "{\"a\":1,\"a\":2}", "NaN"] {
            #expect((try? JSONParser.parse(bad)) == nil, "\(bad)")
        }
    }

    @Test func depthIsBounded() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect((try? JSONParser.parse(deep, maxDepth: 32)) == nil)
        #expect((try? JSONParser.parse(deep, maxDepth: 200)) != nil)
    }

    @Test func stringsAreEscapedForHTMLAndLogs() {
        #expect(JSONValue.quoted("<a href=\"x\">&\u{7}") == #""\u003ca href=\"x\"\u003e\u0026\u0007""#)
    }

    @Test func projectionKeepsOnlyListedFields() throws {
        let projection = ResponseProjection(fields: ["formatted", "address.postcode", "items.id"])
        let body = #"{"formatted":"X","secret":"s","address":{"postcode":"1","internal":2},"items":[{"id":1,"cost":3},{"id":2}]}"#
        let out = try #require(projection.project(Array(body.utf8)))
        #expect(out.serialized == #"{"formatted":"X","address":{"postcode":"1"},"items":[{"id":1},{"id":2}]}"#)
        #expect(projection.project(Array("not json".utf8)) == nil)
    }

    @Test func problemDocument() throws {
        let json = Problem.methodNotAllowed(allow: ["GET"]).json(requestID: "abc")
        let value = try JSONParser.parse(json)
        #expect(value["type"] == .string("urn:tollgate:problem:method-not-allowed"))
        #expect(value["status"] == .number("405"))
        #expect(value["request_id"] == .string("abc"))
    }
}
