#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers

/// Where log lines go: one JSON object per line on standard output, written whole under a lock
/// so that lines from different event loops never interleave.
public final class LogSink: Sendable {
    public static let standardOutput = LogSink()

    private let lock = NIOLock()

    private init() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }

    /// Writes `batch` (whole lines, each ending in a newline) at once.
    public func writeBatch(_ batch: String) {
        lock.withLock {
            var batch = batch
            batch.withUTF8 { buf in
                _ = fwrite(buf.baseAddress, 1, buf.count, stdout)
            }
            fflush(stdout)
        }
    }

    /// Writes `line` followed by a newline.
    public func write(_ line: String) {
        lock.withLock {
            var line = line
            line.append("\n")
            line.withUTF8 { buf in
                _ = fwrite(buf.baseAddress, 1, buf.count, stdout)
            }
        }
    }
}
