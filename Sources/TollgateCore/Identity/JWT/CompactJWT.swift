/// A JWS in compact serialization (`header.payload.signature`), decoded but not yet trusted.
///
/// Parsing refuses what a verifier must never act on: more or fewer than three parts, non-canonical
/// base64url, a header or payload that is not a JSON object, a missing `alg`, `alg: none` in any
/// spelling, a `crit` header (no extension is understood), and headers that name key material
/// elsewhere (`jku`, `x5u`, `jwk`, `x5c`) — a verifier that followed them would let the token pick
/// its own key. The size bound is checked before any decoding.
public struct CompactJWT: Sendable {
    public let algorithm: String
    public let keyID: String?
    public let header: JSONValue
    public let claims: JSONValue
    /// `header.payload` as sent: the bytes the signature covers.
    public let signingInput: ArraySlice<UInt8>
    public let signature: [UInt8]

    public enum Failure: String, Error, Sendable {
        case tooLarge = "token too large"
        case malformed = "not a compact JWS"
        case badHeader = "header is not a JSON object with alg"
        case algNone = "alg none"
        case foreignKey = "header names a key by URL or embeds one (jku, x5u, jwk, x5c)"
        case critical = "crit header"
        case badPayload = "payload is not a JSON object"
    }

    public init(_ token: some Collection<UInt8>, maxBytes: Int) throws(Failure) {
        guard token.count <= maxBytes else { throw .tooLarge }
        let bytes = Array(token)
        var dots: [Int] = []
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: ".") {
            dots.append(i)
            guard dots.count <= 2 else { throw .malformed }
        }
        guard dots.count == 2, dots[0] > 0, dots[1] > dots[0] + 1 else { throw .malformed }
        guard let headerBytes = Base64URL.decode(bytes[..<dots[0]]),
              let payloadBytes = Base64URL.decode(bytes[(dots[0] + 1)..<dots[1]]),
              let signature = Base64URL.decode(bytes[(dots[1] + 1)...]) else { throw .malformed }
        guard let header = try? JSONParser.parse(headerBytes, maxDepth: 4), case .object = header,
              case .string(let alg)? = header["alg"], !alg.isEmpty else { throw .badHeader }
        guard alg.lowercased() != "none" else { throw .algNone }
        for foreign in ["jku", "x5u", "jwk", "x5c"] where header[foreign] != nil { throw .foreignKey }
        guard header["crit"] == nil else { throw .critical }
        var kid: String?
        if let k = header["kid"] {
            guard case .string(let s) = k else { throw .badHeader }
            kid = s
        }
        guard let claims = try? JSONParser.parse(payloadBytes, maxDepth: 16), case .object = claims else { throw .badPayload }
        self.algorithm = alg
        self.keyID = kid
        self.header = header
        self.claims = claims
        self.signingInput = bytes[..<dots[1]]
        self.signature = signature
    }
}

/// A key a JWT may be verified with: one algorithm, one key. A token is checked only against keys
/// whose algorithm equals its `alg` exactly, so an HS256 token can never be checked with an RSA
/// public key used as an HMAC secret (algorithm confusion).
public struct VerifyingKey: Sendable {
    public let keyID: String?
    public let algorithm: String
    public let verify: @Sendable (_ signingInput: ArraySlice<UInt8>, _ signature: [UInt8]) -> Bool
    /// The issuer whose tokens this key signs, when it is not the configured one (Tollgate's own
    /// OAuth key): a token verified by this key must carry this `iss` and `audience` (if set).
    public var issuer: String?
    public var audience: String?
    /// The clock leeway for this key's tokens, when it is not the configured one.
    public var leeway: Duration?

    public init(keyID: String?, algorithm: String, issuer: String? = nil, audience: String? = nil,
                verify: @escaping @Sendable (_ signingInput: ArraySlice<UInt8>, _ signature: [UInt8]) -> Bool) {
        self.keyID = keyID
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.verify = verify
    }
}
