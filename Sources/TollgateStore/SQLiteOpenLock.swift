#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Serialises the opening and migrating of one SQLite file between processes: an exclusive
/// `flock` on `PATH.lock`, beside the database, held only while the file is opened (WAL switched
/// on) and migrated. Two gateways started at once on one file — a misconfiguration, SQLite being
/// the one-gateway store, but an easy one — then migrate it once: the second waits and finds the
/// schema done, instead of failing half-way with "table already exists" or "database is locked".
/// A separate file, not the database itself: SQLite's own locks are `fcntl` locks on the database,
/// and `flock` must not be able to interfere with them on any file system.
enum SQLiteOpenLock {
    static func holding<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let fd = open(path + ".lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("cannot open \(path).lock: \(String(cString: strerror(errno)))") }
        defer { close(fd) }  // releases the lock
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw StoreError("cannot lock \(path).lock: \(String(cString: strerror(errno)))") }
        }
        return try body()
    }
}
