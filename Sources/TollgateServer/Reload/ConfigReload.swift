import Synchronization
import TollgateCore

/// Reloads applied and refused since start (`tollgate_reloads_total`).
final class ReloadCounters: Sendable {
    let applied = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
}

