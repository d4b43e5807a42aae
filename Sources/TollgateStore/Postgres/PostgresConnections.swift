import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization
import TollgateCore

/// A store error with what PostgreSQL said; the driver's own description hides it on purpose,
/// and a log line without it helps nobody. Never contains bound values.
public struct StoreError: Error, CustomStringConvertible {
    public let description: String
    /// The query timeout passed (the connection was closed).
    let timedOut: Bool

    init(_ description: String, timedOut: Bool = false) {
        self.description = description
        self.timedOut = timedOut
    }

    static func from(_ error: any Error) -> StoreError {
        if let e = error as? StoreError { return e }
        guard let p = error as? PSQLError else { return StoreError("\(error)") }
        if let info = p.serverInfo {
            return StoreError("PostgreSQL \(info[.sqlState] ?? "?"): \(info[.message] ?? "error")")
        }
        return StoreError("PostgreSQL connection: \(p.code)")
    }
}

/// Up to `connections` PostgreSQL connections on an event-loop thread of their own, for blocking
/// callers: the group-commit thread, the change feeds, the admin API, the CLI — never a data-plane
/// event loop. Each operation has a connection to itself for its whole length (a transaction
/// cannot interleave with another caller's queries); a connection that broke is dropped and the
/// next operation opens a new one, so the store recovers by itself when the database comes back.
/// Every wait is bounded by the query timeout.
final class PostgresConnections: Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let configuration: PostgresConnection.Configuration
    private let timeout: DispatchTimeInterval
    let logger: Logger
    private let idle = Mutex<[PostgresConnection]>([])
    private let permits: DispatchSemaphore
    private let nextID = Atomic<Int>(1)
    private let stopped = Atomic<Bool>(false)

    init(config: PostgresStoreConfig, password: String?, logger: Logger) throws {
        let tls: PostgresConnection.Configuration.TLS
        switch config.tls {
        case .disable:
            tls = .disable
        case .require, .verify:
            var c = TLSConfiguration.makeClientConfiguration()
            c.minimumTLSVersion = .tlsv12
            if config.tls == .require { c.certificateVerification = .none }
            if let ca = config.caFile { c.trustRoots = .file(ca) }
            tls = .require(try NIOSSLContext(configuration: c))
        }
        var configuration = PostgresConnection.Configuration(host: config.host, port: config.port, username: config.user,
                                                             password: password, database: config.database, tls: tls)
        // The driver's own connect timeout a second later than ours, so ours answers, with a clear message.
        configuration.options.connectTimeout = .nanoseconds(config.queryTimeout.nanoseconds) + .seconds(1)
        self.configuration = configuration
        self.timeout = .nanoseconds(Int(config.queryTimeout.nanoseconds))
        self.logger = logger
        self.permits = DispatchSemaphore(value: config.connections)
    }

    /// Runs `body` with a connection of its own.
    func with<T>(_ body: (Session) throws -> T) throws -> T {
        guard permits.wait(timeout: .now() + timeout) == .success else {
            throw StoreError("PostgreSQL: every connection stayed busy for the query timeout")
        }
        defer { permits.signal() }
        guard !stopped.load(ordering: .relaxed) else { throw StoreError("the store is closed") }
        // One the server closed while idle (a restart, an idle timeout) is skipped, not tried.
        let reusable = idle.withLock { idle -> PostgresConnection? in
            while let c = idle.popLast() { if !c.isClosed { return c } }
            return nil
        }
        let connection = try reusable ?? connect()
        let session = Session(connection: connection, pool: self)
        do {
            let result = try body(session)
            idle.withLock { $0.append(connection) }
            return result
        } catch {
            if connection.isClosed || session.broken { Self.drop(connection) } else { idle.withLock { $0.append(connection) } }
            throw StoreError.from(error)
        }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    func transaction<T>(_ body: (Session) throws -> T) throws -> T {
        try with { try $0.transaction(body) }
    }

    /// One statement on its own (autocommit).
    @discardableResult
    func run(_ query: PostgresQuery) throws -> PostgresQueryResult {
        try with { try $0.run(query) }
    }

    /// Closes every idle connection and stops the thread; later operations fail. Idempotent.
    func shutdown() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        let open = idle.withLock { c -> [PostgresConnection] in defer { c = [] }; return c }
        for c in open { let closed: EventLoopFuture<Void> = c.close(); try? closed.wait() }
        try? group.syncShutdownGracefully()
    }

    deinit { shutdown() }

    /// Closes `connection` and keeps it alive until it is closed: the driver traps if a connection
    /// is released while still closing.
    static func drop(_ connection: PostgresConnection) {
        let closed: EventLoopFuture<Void> = connection.close()
        closed.whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    /// A connection outside the pool, owned by the caller (who must close it): the listener's.
    func openDedicated() throws -> PostgresConnection {
        guard !stopped.load(ordering: .relaxed) else { throw StoreError("the store is closed") }
        return try connect()
    }

    var isStopped: Bool { stopped.load(ordering: .relaxed) }

    private func connect() throws -> PostgresConnection {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let connecting = PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger)
        do {
            return try wait(connecting, closing: nil)
        } catch {
            connecting.whenSuccess { Self.drop($0) }  // came too late: a connection must be closed before it is let go
            throw error
        }
    }

    /// The future's value, or an error once the query timeout has passed (the connection is then
    /// closed, which fails whatever it was still doing).
    func wait<T: Sendable>(_ future: EventLoopFuture<T>, closing connection: PostgresConnection?) throws -> T {
        let done = DispatchSemaphore(value: 0)
        future.whenComplete { _ in done.signal() }
        guard done.wait(timeout: .now() + timeout) == .success else {
            if let connection { Self.drop(connection) }
            throw StoreError("PostgreSQL did not answer within the query timeout", timedOut: true)
        }
        do { return try future.wait() } catch { throw StoreError.from(error) }
    }

    /// A connection checked out for one operation.
    final class Session {
        let connection: PostgresConnection
        let pool: PostgresConnections
        /// Set when the connection's state is unknown (a rollback failed): it is closed, not reused.
        var broken = false

        init(connection: PostgresConnection, pool: PostgresConnections) {
            self.connection = connection
            self.pool = pool
        }

        @discardableResult
        func run(_ query: PostgresQuery) throws -> PostgresQueryResult {
            do {
                return try pool.wait(connection.query(query, logger: pool.logger), closing: connection)
            } catch {
                if connection.isClosed || (error as? StoreError)?.timedOut == true { broken = true }
                throw error
            }
        }

        /// Rows the statement changed (UPDATE, DELETE, INSERT).
        /// `body` in one transaction on this connection: committed if it returns, rolled back if it throws.
        func transaction<T>(_ body: (Session) throws -> T) throws -> T {
            try run("BEGIN")
            do {
                let result = try body(self)
                try run("COMMIT")
                return result
            } catch {
                do { try run("ROLLBACK") } catch { broken = true }
                throw error
            }
        }

        func changed(_ query: PostgresQuery) throws -> Int {
            try run(query).metadata.rows ?? 0
        }
    }
}
