import Testing
@testable import TollgateServer

/// Generated request ids: the loop's prefix, a dash, the counter in base 36; unique, and inline
/// strings while they fit.
@Suite struct RequestIDTests {
    @Test func idsArePrefixDashCounterInBase36() {
        var ids = RequestIDGenerator()
        var prefix: Substring?
        var seen = Set<String>()
        for n in 1...50_000 {  // 1 to 4 digits
            let id = ids.next()
            let parts = id.split(separator: "-")
            #expect(parts.count == 2 && parts[1] == String(n, radix: 36), "\(id)")
            if prefix == nil { prefix = parts[0] }
            #expect(parts[0] == prefix && (1...8).contains(parts[0].count))
            #expect(RequestIDGenerator.isAcceptable(id))
            seen.insert(id)
        }
        #expect(seen.count == 50_000)
    }
}
