import Testing
import TollgateCore
@testable import TollgateServer

/// What a run of refusals earns on one connection: a delay after `delay_after_refusals` (2 here), a
/// close after `close_after_refusals` (4), nothing for everybody's refusals, nothing behind a trusted proxy.
struct RefusalStreakTests {
    func refusal(_ decider: Decider) -> Response {
        .problem(.notFound, requestID: "r", by: decider)
    }

    @Test func delaysAfterTheThresholdThenCloses() {
        var streak = RefusalStreak()
        var delays: [Bool] = []
        var closes: [Bool] = []
        for _ in 0..<4 {
            streak.record(refusal(.policy(.rateLimit)))
            delays.append(streak.delay(after: 2, by: .milliseconds(300), trustedProxy: false) != nil)
            closes.append(streak.closes(after: 4))
        }
        #expect(delays == [false, false, true, true])
        #expect(closes == [false, false, false, true])
        #expect(streak.delay(after: 2, by: .milliseconds(300), trustedProxy: false) == .milliseconds(300))
    }

    @Test func aSuccessEndsTheRun() {
        var streak = RefusalStreak()
        for _ in 0..<3 { streak.record(refusal(.stage(.ban))) }
        #expect(streak.delay(after: 2, by: .milliseconds(300), trustedProxy: false) != nil)
        streak.record(.served(200, contentType: nil, body: nil))
        #expect(streak.count == 0 && streak.delay(after: 2, by: .milliseconds(300), trustedProxy: false) == nil)
    }

    @Test func aBanIsAlwaysSlowedDown() {
        var streak = RefusalStreak()
        streak.record(refusal(.stage(.ban)))
        #expect(streak.delay(after: 2, by: .milliseconds(300), trustedProxy: false) == .milliseconds(300))
        #expect(streak.delay(after: 2, by: .milliseconds(300), trustedProxy: true) == nil)
    }

    @Test func everybodysRefusalsAndProxiesAreNotSlowed() {
        var streak = RefusalStreak()
        for _ in 0..<5 { streak.record(refusal(.stage(.budget))) }
        #expect(streak.count == 0)
        for _ in 0..<5 { streak.record(refusal(.stage(.paused))) }
        #expect(streak.count == 0)
        for _ in 0..<5 { streak.record(refusal(.stage(.upstream))) }  // the gateway's failure, not the client's
        #expect(streak.count == 0)
        for _ in 0..<5 { streak.record(refusal(.policy(.validation))) }
        #expect(streak.delay(after: 2, by: .milliseconds(300), trustedProxy: true) == nil)
        #expect(streak.delay(after: 2, by: .milliseconds(300), trustedProxy: false) != nil)
    }
}
