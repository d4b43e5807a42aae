import Foundation
import Testing
@testable import TollgateStore

/// Two gateways started at once on one SQLite file (a misconfiguration, but an easy one) must not
/// race to migrate it: one migrates, the other waits and finds the schema done.
@Suite struct SQLiteMigrationTests {
    @Test func openersOfOneFreshFileMigrateItOnce() throws {
        for round in 0..<5 {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("race-\(round)-\(UUID().uuidString).db").path
            let errors = Locked<[String]>([])
            let ledgers = Locked<[SQLiteLedger]>([])
            DispatchQueue.concurrentPerform(iterations: 6) { _ in
                do {
                    let ledger = try SQLiteLedger(path: path)
                    ledgers.update { $0.append(ledger) }
                } catch {
                    errors.update { $0.append("\(error)") }
                }
            }
            #expect(errors.value.isEmpty, "round \(round): \(errors.value)")
            #expect(ledgers.value.count == 6)
            for ledger in ledgers.value { ledger.close() }
        }
    }
}

/// A value behind a lock, for the threads of one test.
final class Locked<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}
