/// A route's `auth`: which credentials it accepts and what the caller must be allowed.
public struct AuthConfig: Sendable, Equatable {
    /// Where a key is read from.
    public enum KeySource: Sendable, Equatable {
        /// A header holding the key alone (`X-API-Key` by default).
        case header(String)
        /// `Authorization: Bearer <key>`.
        case bearer
    }

    /// Accepted credentials; the first one presented decides (a bad one is not retried as another).
    public var anyOf: [Caller.Method]
    public var keySources: [KeySource] = [.header("x-api-key"), .bearer]
    /// Every one of these scopes is required.
    public var scopes: [String] = []
    /// One of these roles is required (none listed: no role is).
    public var roles: [String] = []
    /// Send the caller's identity upstream as `X-Tollgate-*` headers.
    public var identityHeaders = true
    /// The "signed up" event: a client key that gets a 2xx answer from this route is revoked
    /// (it has done what it was handed out for).
    public var revokeClientKeyOnSuccess = false

    public init(anyOf: [Caller.Method]) {
        self.anyOf = anyOf
    }

    public var acceptsKeys: Bool { anyOf.contains(.apiKey) || anyOf.contains(.clientKey) }
    public var acceptsBearer: Bool { anyOf.contains(.jwt) || (acceptsKeys && keySources.contains(.bearer)) }
}

/// A route's `owner`: an object-level check (OWASP API1, BOLA). The validated parameter `param`
/// must equal the caller's subject or one of its claims, unless the caller has one of `unlessRoles`.
public struct OwnerRule: Sendable, Equatable {
    public enum Source: Sendable, Equatable, CustomStringConvertible {
        case subject
        /// A JWT claim by dotted path (`claim.sub`, `claim.tenant.id`).
        case claim(String)

        public var description: String {
            switch self {
            case .subject: "subject"
            case .claim(let c): "claim.\(c)"
            }
        }
    }

    public var param: String
    public var equals: Source
    public var unlessRoles: [String]

    public init(param: String, equals: Source, unlessRoles: [String] = []) {
        self.param = param
        self.equals = equals
        self.unlessRoles = unlessRoles
    }
}
