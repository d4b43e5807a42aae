#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers

/// Where log lines go: one JSON object per line on standard output, written whole under a lock
/// so that lines from different threads never interleave. Writes go straight to file descriptor 1
/// (no stdio buffer to flush or to share unsafely between threads).
public final class LogSink: Sendable {
    public static let standardOutput = LogSink()

    private let lock = NIOLock()

    private init() {}

    /// Writes `line` followed by a newline.
    public func write(_ line: String) {
        writeBatch(line + "\n")
    }

    /// Writes `batch` (whole lines, each ending in a newline) at once.
    public func writeBatch(_ batch: String) {
        var batch = batch
        batch.withUTF8 { writeAll($0) }
    }

    /// Writes `batch` (whole lines of UTF-8, each ending in a newline) at once.
    public func writeBatch(_ batch: UnsafeRawBufferPointer) {
        writeAll(batch.bindMemory(to: UInt8.self))
    }

    private func writeAll(_ buf: UnsafeBufferPointer<UInt8>) {
        lock.withLock {
            var offset = 0
            while offset < buf.count {
                #if canImport(Darwin)
                let n = Darwin.write(1, buf.baseAddress! + offset, buf.count - offset)
                #else
                let n = Glibc.write(1, buf.baseAddress! + offset, buf.count - offset)
                #endif
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}
