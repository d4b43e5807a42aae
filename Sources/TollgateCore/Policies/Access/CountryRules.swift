/// `countries: { allow: [...] }` or `{ deny: [...] }` on a route: which countries (ISO 3166-1
/// alpha-2 codes, as the geo database names them) may be served. A client whose country is not
/// known (a private address, an address missing from the database) is refused by an allow list
/// and passes a deny list.
public struct CountryRules: Sendable, Equatable {
    public var allow: Set<String>
    public var deny: Set<String>

    public init(allow: Set<String> = [], deny: Set<String> = []) {
        self.allow = allow
        self.deny = deny
    }

    /// Whether a client from `country` (nil: unknown) may be served.
    public func admits(_ country: String?) -> Bool {
        guard let country else { return allow.isEmpty }
        if deny.contains(country) { return false }
        return allow.isEmpty || allow.contains(country)
    }
}

extension Problem {
    /// The client's country is outside the route's country rules.
    public static let countryDenied = Problem(status: 403, code: "country-denied", title: "Forbidden",
                                              detail: "Requests from this region are not accepted.")
}
