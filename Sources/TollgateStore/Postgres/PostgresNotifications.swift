import Dispatch
import Foundation
import NIOCore
import PostgresNIO
import Synchronization

/// What changed, announced with `NOTIFY tollgate_changes, TOPIC` by the transaction that changed it
/// (delivered when it commits): other gateways then read their change feeds at once instead of at
/// the next poll. Polling stays: a notification lost while a gateway was disconnected only costs
/// the poll interval.
public enum StoreTopic: String, Sendable, CaseIterable {
    case keys, clients, bans, pauses, verification
    /// Sent by the listener after it (re)connects: anything may have changed meanwhile.
    case all
    /// Another gateway reloaded its config: re-read yours (sent as `reload:STORE-ID`, never heard
    /// by the store that sent it).
    case reload
}

extension PostgresStore {
    static let channel = "tollgate_changes"

    /// `SELECT pg_notify(…)` inside the caller's transaction.
    static func announce(_ topic: StoreTopic, _ s: PostgresConnections.Session) throws {
        try s.run("SELECT pg_notify(\(channel), \(topic.rawValue))")
    }

    /// Asks every other gateway on the database to reload its config file (after a reload here).
    public func announceReload() throws {
        try connections.run("SELECT pg_notify(\(Self.channel), \("reload:" + instanceID))")
    }

    /// Listens on a connection of its own; `onChange` runs on the store's event-loop thread (keep it
    /// short: hand the work to a queue). Reconnects every second while the database is away.
    public func listen(_ onChange: @escaping @Sendable (StoreTopic) -> Void) -> PostgresListener {
        PostgresListener(connections: connections, counter: notificationsReceived, instanceID: instanceID, onChange: onChange)
    }
}

/// The listening connection of ``PostgresStore/listen(_:)``. ``stop()`` closes it.
public final class PostgresListener: Sendable {
    private let connections: PostgresConnections
    private let counter: NotificationCounter
    private let instanceID: String
    private let onChange: @Sendable (StoreTopic) -> Void
    private let current = Mutex<PostgresConnection?>(nil)
    private let stopped = Atomic<Bool>(false)
    private let queue = DispatchQueue(label: "tollgate.postgres.listener")
    init(connections: PostgresConnections, counter: NotificationCounter, instanceID: String,
         onChange: @escaping @Sendable (StoreTopic) -> Void) {
        self.connections = connections
        self.counter = counter
        self.instanceID = instanceID
        self.onChange = onChange
        queue.async { self.connect() }
    }

    public func stop() {
        stopped.store(true, ordering: .relaxed)
        if let c = current.withLock({ c -> PostgresConnection? in defer { c = nil }; return c }) {
            PostgresConnections.drop(c)
        }
    }

    private func connect() {
        guard !stopped.load(ordering: .relaxed), !connections.isStopped else { return }
        do {
            let connection = try connections.openDedicated()
            connection.addListener(channel: PostgresStore.channel) { [weak self] _, message in
                guard let self else { return }
                self.counter.count.add(1, ordering: .relaxed)
                if message.payload.hasPrefix("reload:") {
                    if message.payload != "reload:" + self.instanceID { self.onChange(.reload) }
                } else {
                    self.onChange(StoreTopic(rawValue: message.payload) ?? .all)
                }
            }
            _ = try connections.wait(connection.query("LISTEN \(unescaped: PostgresStore.channel)", logger: connections.logger), closing: connection)
            current.withLock { $0 = connection }
            connection.closeFuture.whenComplete { [weak self] _ in self?.retry() }
            onChange(.all)
            if stopped.load(ordering: .relaxed) { stop() }
        } catch {
            retry()
        }
    }

    private func retry() {
        guard !stopped.load(ordering: .relaxed) else { return }
        queue.asyncAfter(deadline: .now() + 1) { self.connect() }
    }
}

/// Notifications a store's listeners received since start (for metrics).
public final class NotificationCounter: Sendable {
    let count = Atomic<Int>(0)
    public var value: Int { count.load(ordering: .relaxed) }
}
