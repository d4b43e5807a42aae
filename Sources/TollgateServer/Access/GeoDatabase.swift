import CMaxMindDB
import Foundation
import Logging
import Synchronization
import TollgateCore

/// A MaxMind-format country database (GeoLite2-Country, DB-IP Country Lite, …) read with
/// libmaxminddb, memory-mapped from a private copy. ``country(of:)`` answers the ISO 3166-1 code of an address
/// (`country.iso_code`, else `registered_country.iso_code`), nil when the address is not in it.
///
/// The file is watched (``reloadIfChanged()``, every few seconds): a changed file is opened and
/// swapped in whole; one that cannot be opened leaves the current database in place and is logged.
/// A lookup holds its own reference to the database it started with, so a swap never closes a
/// database under a lookup.
final class GeoDatabase: Sendable {
    let path: String
    private let logger: Logger
    private let current: Mutex<(handle: Handle, modified: Date?)>
    /// Successful reloads since start.
    let reloads = Atomic<Int>(0)

    /// Opens `path`; throws a ``GeoError`` when the file is missing or not a MaxMind database.
    init(path: String, logger: Logger) throws {
        self.path = path
        self.logger = logger
        current = Mutex((try Handle(path: path), Self.modified(path)))
    }

    /// The country code of `address` (a whole address), or nil.
    func country(of address: ClientKey) -> String? {
        let handle = current.withLock { $0.handle }
        return handle.country(of: address)
    }

    /// Opens the file again if its modification time changed; keeps the old database on failure.
    func reloadIfChanged() {
        let modified = Self.modified(path)
        guard modified != current.withLock({ $0.modified }) else { return }
        do {
            let handle = try Handle(path: path)
            current.withLock { $0 = (handle, modified) }
            reloads.add(1, ordering: .relaxed)
            logger.info("geo database reloaded", metadata: ["path": "\(path)"])
        } catch {
            current.withLock { $0.modified = modified }  // logged once per change, not every check
            logger.error("geo database changed but cannot be opened; keeping the previous one",
                         metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    private static func modified(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }

    /// One open database; closed when the last lookup using it lets go.
    ///
    /// libmaxminddb memory-maps the file. Mapping the operator's file itself would let an update
    /// written in place (not renamed over) change the bytes under a lookup, or truncate them away
    /// (SIGBUS). So the file is copied to a private temporary file, which is mapped and unlinked at
    /// once: the mapping lives until the database is closed, and no one else can write to it.
    final class Handle: @unchecked Sendable {
        // libmaxminddb's lookups only read the mapping and the MMDB_s: safe from many threads.
        private var db = MMDB_s()

        init(path: String) throws {
            let copy = FileManager.default.temporaryDirectory
                .appendingPathComponent("tollgate-geo-\(getpid())-\(UInt64.random(in: 0 ... .max)).mmdb").path
            do {
                try FileManager.default.copyItem(atPath: path, toPath: copy)
            } catch {
                throw GeoError(path: path, reason: "cannot be read")
            }
            defer { unlink(copy) }
            let status = MMDB_open(copy, UInt32(MMDB_MODE_MMAP), &db)
            guard status == MMDB_SUCCESS else {
                throw GeoError(path: path, reason: String(cString: MMDB_strerror(status)))
            }
        }

        deinit { MMDB_close(&db) }

        func country(of address: ClientKey) -> String? {
            var error: Int32 = 0
            var result: MMDB_lookup_result_s
            if address.isIPv4 {
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_addr.s_addr = UInt32(truncatingIfNeeded: address.low).bigEndian
                result = withUnsafePointer(to: &sin) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(&db, $0, &error) }
                }
            } else {
                var sin6 = sockaddr_in6()
                sin6.sin6_family = sa_family_t(AF_INET6)
                withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
                    for i in 0..<8 {
                        raw[i] = UInt8(truncatingIfNeeded: address.high >> (56 - 8 * UInt64(i)))
                        raw[8 + i] = UInt8(truncatingIfNeeded: address.low >> (56 - 8 * UInt64(i)))
                    }
                }
                result = withUnsafePointer(to: &sin6) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(&db, $0, &error) }
                }
            }
            guard error == MMDB_SUCCESS, result.found_entry else { return nil }
            return code(&result.entry, "country") ?? code(&result.entry, "registered_country")
        }

        private func code(_ entry: inout MMDB_entry_s, _ field: String) -> String? {
            var data = MMDB_entry_data_s()
            let status: Int32 = field.withCString { f in
                "iso_code".withCString { iso in
                    let path: [UnsafePointer<CChar>?] = [f, iso, nil]
                    return path.withUnsafeBufferPointer { MMDB_aget_value(&entry, &data, $0.baseAddress) }
                }
            }
            guard status == MMDB_SUCCESS, data.has_data, data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING),
                  data.data_size == 2, let chars = data.utf8_string else { return nil }
            let bytes = UnsafeRawPointer(chars).assumingMemoryBound(to: UInt8.self)
            let code = String(decoding: UnsafeBufferPointer(start: bytes, count: 2), as: UTF8.self)
            return code.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) ? code : nil
        }
    }
}

/// The geo database cannot be used.
struct GeoError: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "cannot open the geo database \(path): \(reason)" }
}
