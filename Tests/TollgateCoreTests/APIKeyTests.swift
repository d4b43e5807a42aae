import Foundation
import Testing
@testable import TollgateCore

@Suite struct APIKeyTests {
    let hasher = APIKeyHasher(secret: "test-pepper")

    func record(_ text: APIKeyText, expiresAt: Int64? = nil, maxUses: Int64? = nil, revokedAt: Int64? = nil,
                routes: [String] = [], version: Int64 = 1) -> APIKeyRecord {
        APIKeyRecord(id: text.id, kind: text.kind, name: "t", owner: "alice", scopes: ["a"], routes: routes,
                     hash: hasher.hash(text.text), createdAt: 0, expiresAt: expiresAt, maxUses: maxUses, revokedAt: revokedAt,
                     version: version)
    }

    @Test func generatedKeysParseAndCarryEnoughRandomness() {
        var seen = Set<String>()
        for kind in APIKeyText.Kind.allCases {
            for _ in 0..<200 {
                let key = APIKeyText.generate(kind)
                #expect(key.text.hasPrefix(kind.prefix))
                #expect(APIKeyText(parsing: key.text) == key)
                #expect(seen.insert(key.text).inserted)
            }
        }
        // 22 base62 characters of secret: log2(62^22) > 130 bits.
        #expect(Double(APIKeyText.secretLength) * log2(62) > 128)
    }

    @Test func everySingleCharacterChangeIsCaughtByTheChecksum() {
        let key = APIKeyText.generate(.api)
        let chars = Array(key.text)
        let prefixLength = APIKeyText.Kind.api.prefix.count
        for i in prefixLength..<chars.count where chars[i] != "_" {
            var changed = chars
            changed[i] = chars[i] == "A" ? "B" : "A"
            #expect(APIKeyText(parsing: String(changed)) == nil, "position \(i)")
        }
        #expect(APIKeyText(parsing: String(key.text.dropLast())) == nil)
        #expect(APIKeyText(parsing: key.text + "0") == nil)
        #expect(APIKeyText(parsing: "tg_test_" + key.text.dropFirst(8)) == nil)
    }

    @Test func crcMatchesZlib() {
        #expect(APIKeyText.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func hashesAreKeyedAndCompareExactly() {
        let key = APIKeyText.generate(.api)
        let stored = hasher.hash(key.text)
        #expect(stored.count == 32 && hasher.matches(key.text, stored))
        #expect(!APIKeyHasher(secret: "other").matches(key.text, stored))
        #expect(!hasher.matches(key.text, Array(stored.dropLast())))
        #expect(!hasher.matches(key.text + "x", stored))
    }

    @Test func indexAcceptsRefusesAndFollowsChanges() {
        let key = APIKeyText.generate(.api)
        let index = APIKeyIndex(hasher: hasher, records: [record(key)])
        #expect(index.check(key.text, now: 10) == .accepted(record(key)))
        let wrong = APIKeyText.generate(.api)
        #expect(index.check(wrong.text, now: 10) == .invalid)  // well-formed, unknown id
        #expect(index.check("tg_live_garbage", now: 10) == .invalid)
        index.apply([record(key, revokedAt: 5, version: 2)])
        #expect(index.check(key.text, now: 10) == .invalid)
        #expect(index.appliedVersion == 2)
        index.apply([record(key, version: 3)])  // reactivated
        if case .accepted = index.check(key.text, now: 10) {} else { Issue.record("reactivated key refused") }
    }

    @Test func expiryIsExclusiveAndRotationOverlapEnds() {
        let key = APIKeyText.generate(.api)
        let index = APIKeyIndex(hasher: hasher, records: [record(key, expiresAt: 100)])
        if case .accepted = index.check(key.text, now: 99) {} else { Issue.record("valid before expiry") }
        #expect(index.check(key.text, now: 100) == .lapsed(record(key, expiresAt: 100), .expired))
    }

    @Test func useLimitIsExactUnderConcurrency() async {
        let key = APIKeyText.generate(.install)
        let index = APIKeyIndex(hasher: hasher, records: [record(key, maxUses: 100)])
        let accepted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var n = 0
                    for _ in 0..<50 { if case .accepted = index.check(key.text, now: 1) { n += 1 } }
                    return n
                }
            }
            return await group.reduce(0, +)
        }
        #expect(accepted == 100)
        #expect(index.uses(of: key.id) == 100)
        let drained = index.drainUses()
        #expect(drained.count == 1 && drained[0].count == 100)
        #expect(index.drainUses().isEmpty)
        // The store now holds 100 uses; reloading the record keeps the total, not doubles it.
        var stored = record(key, maxUses: 100, version: 2)
        stored.uses = 100
        index.apply([stored])
        #expect(index.uses(of: key.id) == 100)
    }

    @Test func kindMustMatchTheRecord() {
        let key = APIKeyText.generate(.api)
        var r = record(key)
        r.kind = .install
        #expect(APIKeyIndex(hasher: hasher, records: [r]).check(key.text, now: 1) == .invalid)
    }
}
