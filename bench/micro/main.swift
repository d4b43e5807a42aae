// Micro-benchmarks: the cost of a new key in the tables attackers fill, lock contention on the rate
// limiter's stripes, and two per-request steps of the data plane (route lookup, percent-decoding).
// Reports; never fails. Run: swift run -c release tollgate-microbench
import Foundation
import TollgateCore

func measure(_ label: String, iterations: Int, _ body: (Int) -> Void) {
    let start = DispatchTime.now().uptimeNanoseconds
    for i in 0..<iterations { body(i) }
    let nanos = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
    print(String(format: "%-58@ %8.1f ns/op", label as NSString, nanos))
}

let capacity = 1_000_000
let far: Int64 = 1 << 60

var table = BoundedTable<Int, Int64>(capacity: capacity, sweepInterval: 100_000_000)
for k in 0..<capacity { _ = table.insert(k, far, now: 0) { $0 } }
var now: Int64 = 1
measure("BoundedTable insert, new key, 100 % full of live keys", iterations: 2_000_000) { i in
    now += 10  // 10 ns apart: a sweep is due every 10 M inserts at most
    _ = table.insert(capacity + i, far, now: now) { $0 }
}

var half = BoundedTable<Int, Int64>(capacity: capacity, sweepInterval: 100_000_000)
for k in 0..<capacity / 2 { _ = half.insert(k, far, now: 0) { $0 } }
measure("BoundedTable insert, new key, 50 % full", iterations: capacity / 2) { i in
    _ = half.insert(capacity + i, far, now: 1) { $0 }
}

let limiter = RateLimiter(rate: Rate("10/s")!, burst: 10, maxKeys: capacity)
var clock: Int64 = 0
for k in 0..<capacity { _ = limiter.acquire(BucketKey(high: 1, low: UInt64(k)), now: clock) }
measure("RateLimiter acquire, new client, table full of live keys", iterations: 1_000_000) { i in
    clock += 10
    _ = limiter.acquire(BucketKey(high: 2, low: UInt64(i)), now: clock)
}
print("overflowed: \(limiter.overflowed), tracked: \(limiter.count)")

// What the tables did before BoundedTable: scan the whole table for expired keys on every new key
// once full (here 100 000 live keys, so every scan finds nothing).
var naive: [Int: Int64] = [:]
for k in 0..<100_000 { naive[k] = far }
measure("naive full scan per new key, 100 000 live keys (before)", iterations: 200) { i in
    if naive.count >= 100_000 { naive = naive.filter { $0.value > 1 } }
    if naive.count < 100_000 { naive[100_000 + i] = far }
}

// Contention: T threads taking from one limiter at once, as T event loops would. Each thread does
// `perThread` acquires; the figure is wall time per acquire over all threads. "distinct clients"
// spreads keys over the stripes (the per-ip case); "one shared bucket" is a `per: global` limit,
// every thread on one stripe's lock. 1 stripe shows what striping buys. On this 2-core machine more
// than 2 threads also time-slice, so the figures beyond 2 show lock hand-over, not parallel speed.
func contention(_ label: String, threads: Int, stripes: Int, sharedKey: Bool) {
    let limiter = RateLimiter(rate: Rate("1000000000/s")!, burst: 1_000_000_000, maxKeys: 1_000_000, stripes: stripes)
    let perThread = 400_000
    let start = DispatchTime.now().uptimeNanoseconds
    DispatchQueue.concurrentPerform(iterations: threads) { t in
        var now: Int64 = 0
        for i in 0..<perThread {
            now += 1
            let key = sharedKey ? BucketKey.shared : BucketKey(high: UInt64(t + 1), low: UInt64(i & 4095))
            _ = limiter.acquire(key, now: now)
        }
    }
    let nanos = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(threads * perThread)
    print(String(format: "%-58@ %8.1f ns/op", "\(label), \(threads) thread\(threads == 1 ? "" : "s")" as NSString, nanos))
}
for threads in [1, 2, 4, 8, 16] { contention("RateLimiter acquire, distinct clients, 64 stripes", threads: threads, stripes: 64, sharedKey: false) }
for threads in [1, 2, 4, 8, 16] { contention("RateLimiter acquire, distinct clients, 1 stripe", threads: threads, stripes: 1, sharedKey: false) }
for threads in [1, 2, 4, 8, 16] { contention("RateLimiter acquire, one shared bucket", threads: threads, stripes: 64, sharedKey: true) }

// Route lookup per request: an exact path among a gateway's handful of routes (the path a request
// carries is a Substring of its target, as in the data plane).
let routes = RouteTable<Int>([("GET", PathPattern("/api/address")!, 0), ("POST", PathPattern("/api/signup")!, 1),
                              ("GET", PathPattern("/api/places/{id}")!, 2), ("GET", PathPattern("/api/geocode")!, 3),
                              ("POST", PathPattern("/api/verify")!, 4), ("GET", PathPattern("/")!, 5),
                              ("GET", PathPattern("/api/llm/models")!, 6), ("POST", PathPattern("/api/llm/chat")!, 7)])
let target = "/api/address?q=Main+Street"
let routedPath = target[..<target.firstIndex(of: "?")!]
var found = 0
measure("RouteTable match, exact path among 8 routes", iterations: 5_000_000) { _ in
    if case .found(let r, _) = routes.match(method: "GET", path: routedPath) { found &+= r }
}
precondition(found == 0)
// The same for a path longer than a small string's 15 bytes (most real API paths are).
let longTarget = "/api/llm/chat/completions?stream=false"
let longTable = RouteTable<Int>([("GET", PathPattern("/api/address")!, 0), ("POST", PathPattern("/api/llm/chat/completions")!, 1)])
let longPath = longTarget[..<longTarget.firstIndex(of: "?")!]
measure("RouteTable match, a 25-byte exact path", iterations: 5_000_000) { _ in
    if case .found(let r, _) = longTable.match(method: "POST", path: longPath) { found &+= r }
}
precondition(found == 5_000_000)

// A query value as the validation policy decodes it ('+' for a space: every proxied request of
// the bench route decodes one).
let encodedValue: Substring = "Main+Street"[...]
var decodedBytes = 0
measure("PercentEncoding decode, an 11-byte value with a '+'", iterations: 5_000_000) { _ in
    decodedBytes &+= PercentEncoding.decode(encodedValue, plusIsSpace: true)?.utf8.count ?? 0
}
precondition(decodedBytes == 11 * 5_000_000)

// The upstream request head of the bench route (`q` validated, `format=json` fixed, the key as a
// header), rendered into reused bytes as the data plane does per proxied request.
let benchRoute = try! ConfigLoader.load(yaml: """
    secrets: { API_KEY: "env:API_KEY" }
    routes:
      - name: address
        match: { method: GET, path: /api/address }
        upstream: { url: "http://127.0.0.1:9/v2/validate", auth: { header: X-Api-Key, secret: API_KEY } }
        params: { q: { type: string, min_length: 1, max_length: 100 } }
        fixed: { format: json }
    """, baseDirectory: "/tmp").config.routes[0]
let compiled = try! Route(config: benchRoute, secrets: ["API_KEY": "bench-key-0123456789"], limiters: LimiterRegistry(maxKeys: 100))
var renderView = RequestView(method: "GET", path: "/api/address", query: "q=Main+Street", headers: [], clientAddress: "127.0.0.1")
if case .pass = compiled.evaluate(&renderView) {} else { preconditionFailure("the bench request must pass") }
var headBytes: [UInt8] = []
var rendered = 0
measure("Upstream head render, the bench route", iterations: 2_000_000) { _ in
    headBytes.removeAll(keepingCapacity: true)
    _ = compiled.template!.render(&renderView, requestID: "0123456789abcdef0123", into: &headBytes)
    rendered &+= headBytes.count
}
precondition(rendered > 0)
