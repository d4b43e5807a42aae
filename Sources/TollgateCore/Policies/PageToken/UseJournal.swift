import Foundation

/// Where page-token use counts and solved challenges are kept beyond the process, so that a restart
/// does not hand out fresh uses or accept a replayed solution. Memory stays authoritative on the hot
/// path; a journal is written behind (the SQLite store batches it, at most a second late) and read
/// back at start.
public protocol UseJournal: Sendable {
    func recordTokenUse(nonce: Data, uses: Int, expiresMillis: Int64)
    func recordSolved(challenge: String, expiresSeconds: Int64)
    /// Token uses that have not expired at `nowMillis`.
    func tokenUses(nowMillis: Int64) throws -> [(nonce: Data, uses: Int, expiresMillis: Int64)]
    /// Solved challenges that have not expired at `nowSeconds`.
    func solvedChallenges(nowSeconds: Int64) throws -> [(challenge: String, expiresSeconds: Int64)]
}
