import Testing
@testable import TollgateCore

@Suite struct SecretEchoTests {
    func finds(_ echo: SecretEcho, _ text: String) -> Bool { echo.occurs(in: text) }

    @Test func rawAndJSONEscapedForms() {
        let echo = SecretEcho(secret: "sk_live_abc123", auth: .header(name: "X-Api-Key", secret: "K"))
        #expect(finds(echo, #"{"debug":{"x-api-key":"sk_live_abc123"}}"#))
        #expect(finds(echo, "sk_live_abc123"))  // the whole text
        #expect(!finds(echo, #"{"formatted":"10 DOWNING ST"}"#))
        #expect(!finds(echo, "sk_live_abc12"))  // one byte short is not a hit
        #expect(!finds(echo, ""))
    }

    @Test func percentEncodedInBothHexCases() {
        let echo = SecretEcho(secret: "a/b+c d", auth: .query(name: "key", secret: "K"))
        #expect(finds(echo, "GET /v2?key=a%2Fb%2Bc%20d"))
        #expect(finds(echo, "target=/v2?key=a%2fb%2bc%20d"))
        #expect(finds(echo, #"{"k":"a\/b+c d"}"#))  // a JSON encoder that escapes '/'
    }

    @Test func basicCredentialInBase64() {
        let echo = SecretEcho(secret: "s3cr3t-value", auth: .basic(user: "tollgate", secret: "K"))
        let encoded = Base64.encode(Array("tollgate:s3cr3t-value".utf8))
        #expect(finds(echo, "Authorization: Basic \(encoded)"))
        #expect(!finds(echo, "Authorization: Basic " + Base64.encode(Array("tollgate:other".utf8))))
    }

    @Test func repeatedFirstBytesDoNotHideAMatch() {
        let echo = SecretEcho(secret: "aab", auth: .bearer(secret: "K"))
        #expect(finds(echo, "aaaaaab"))
        #expect(!finds(echo, "aaaaaa"))
    }
}
