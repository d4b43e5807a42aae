/// Finds the route for a method and path. Built once from config; a lookup of a literal path does
/// not allocate (exact paths are keyed by `Substring`, the type of the request's path, whatever its
/// length). `match` is inlinable so the data plane gets it specialized for its route type
/// (unspecialized, each lookup instantiated generic metadata).
public struct RouteTable<Route: Sendable>: Sendable {
    public enum Match {
        case found(Route, pathParams: [(name: String, value: Substring)])
        /// The path exists, but not for this method; `allow` lists the methods that do.
        case methodNotAllowed(allow: [String])
        case notFound
    }

    @usableFromInline
    struct Entry: Sendable {
        @usableFromInline let method: String
        @usableFromInline let pattern: PathPattern
        @usableFromInline let route: Route
    }

    @usableFromInline let entries: [Entry]
    @usableFromInline let exact: [Substring: [Int]]

    /// `routes` in priority order: the first route whose method and pattern match wins.
    public init(_ routes: [(method: String, pattern: PathPattern, route: Route)]) {
        entries = routes.map { Entry(method: $0.method, pattern: $0.pattern, route: $0.route) }
        var exact: [Substring: [Int]] = [:]
        for (i, e) in entries.enumerated() where e.pattern.parameterNames.isEmpty {
            exact[Substring(e.pattern.description), default: []].append(i)
        }
        self.exact = exact
    }

    @inlinable
    public func match(method: String, path: Substring) -> Match {
        var allow: [String] = []
        if let indices = exact[path] {
            for i in indices {
                if methodMatches(entries[i].method, method) { return .found(entries[i].route, pathParams: []) }
                allow.append(entries[i].method)
            }
        }
        for entry in entries where !entry.pattern.parameterNames.isEmpty {
            guard let captures = entry.pattern.match(path) else { continue }
            if methodMatches(entry.method, method) { return .found(entry.route, pathParams: captures) }
            allow.append(entry.method)
        }
        if allow.isEmpty { return .notFound }
        return .methodNotAllowed(allow: Array(Set(allow)).sorted())
    }

    /// Methods match exactly: a HEAD is not silently turned into a (possibly paid) GET.
    @inlinable
    func methodMatches(_ routeMethod: String, _ method: String) -> Bool {
        routeMethod == method
    }
}
