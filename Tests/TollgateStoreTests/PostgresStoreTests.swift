import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import TollgateCore
@testable import TollgateStore

/// What only a shared PostgreSQL store has to get right: gateways that start together, and
/// gateways that write keys and bans at the same time while others follow the change feed.
@Suite struct PostgresStoreTests {
    @Test func gatewaysStartingTogetherMigrateOnce() async throws {
        guard let config = try TestStores.postgresConfig() else { return }
        let opened = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    let store = try PostgresStore(config: config, secrets: [:], logger: TestStores.logger)
                    defer { store.close() }
                    return try store.connections.run("SELECT COUNT(*) FROM tollgate_migrations").first!.decode(Int64.self) == PostgresSchema.migrations.count ? 1 : 0
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(opened == 6)
    }

    /// Four gateways create keys and bans concurrently (threads of their own, as gateways would)
    /// while a fifth follows `version > last seen`: it must see every one, and no two changes may
    /// share a version.
    @Test func aFollowerNeverSkipsAVersion() throws {
        guard let config = try TestStores.postgresConfig() else { return }
        let writers = try (0..<4).map { _ in try PostgresStore(config: config, secrets: [:], logger: TestStores.logger) }
        let follower = try PostgresStore(config: config, secrets: [:], logger: TestStores.logger)
        defer { (writers + [follower]).forEach { $0.close() } }
        let perWriter = 60
        let done = Finished()
        let group = DispatchGroup()
        for (w, store) in writers.enumerated() {
            group.enter()
            Thread.detachNewThread {
                defer { done.count.add(1, ordering: .relaxed); group.leave() }
                for i in 0..<perWriter {
                    try? store.insertKey(APIKeyRecord(id: "k\(w)-\(i)", kind: .api, name: "n", owner: "o", scopes: [], routes: [],
                                                      hash: [1], createdAt: 1))
                    _ = try? store.addBan(Ban(kind: .address, value: "203.0.113.\(i)", reason: "r", createdAt: 0, expiresAt: nil,
                                              createdBy: "w\(w)"))
                }
            }
        }
        var seen = Set<String>(), version: Int64 = 0
        while true {
            let finished = done.count.load(ordering: .relaxed) == writers.count
            for r in try follower.keyChanges(after: version) {
                seen.insert(r.id)
                version = max(version, r.version)
            }
            if finished { break }
        }
        group.wait()
        let total = writers.count * perWriter
        #expect(seen.count == total)
        #expect(try follower.activeBans(now: 1).count == total)
        #expect(try follower.banVersion() == Int64(total))
        #expect(Set(try follower.keys().map(\.version)).count == total)
    }

    /// A store that cannot reach its server fails fast with a message naming where it looked (and
    /// no password), instead of hanging the gateway's start.
    @Test func anUnreachableServerIsAClearError() throws {
        guard try TestStores.postgresConfig() != nil else { return }
        var config = PostgresStoreConfig(host: "127.0.0.1", port: 1, user: "tollgate", database: "nowhere", passwordSecret: "pw")
        config.queryTimeout = .seconds(2)
        let error = #expect(throws: StoreError.self) {
            try PostgresStore(config: config, secrets: ["pw": "hunter2-secret"], logger: TestStores.logger)
        }
        #expect(error?.description.contains("postgres://tollgate@127.0.0.1:1/nowhere") == true)
        #expect(error?.description.contains("hunter2") == false)
    }

    /// A server that accepts and then says nothing (a hung database): the store gives up at the
    /// query timeout with a message saying so, instead of hanging the gateway's start.
    @Test func aServerThatNeverAnswersTimesOut() throws {
        guard try TestStores.postgresConfig() != nil else { return }
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        listen(listener, 8)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        var config = PostgresStoreConfig(host: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)), user: "tollgate", database: "hung")
        config.queryTimeout = .milliseconds(500)
        let began = ContinuousClock.now
        let error = #expect(throws: StoreError.self) { try PostgresStore(config: config, secrets: [:], logger: TestStores.logger) }
        #expect(error?.description.contains("did not answer within the query timeout") == true)
        #expect(ContinuousClock.now - began < .seconds(5))
    }
}

private final class Finished: Sendable {
    let count = Atomic<Int>(0)
}
