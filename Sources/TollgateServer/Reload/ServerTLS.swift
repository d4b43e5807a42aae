import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL
import TollgateCore

/// The listener's TLS context: TLS 1.2 and 1.3 only, forward-secret AEAD cipher suites for 1.2.
/// Replaced whole when the certificate or key file changes (checked every 5 s) or a reload names
/// new files; connections already open keep the context they began with. A file that cannot be
/// loaded leaves the current context in place.
final class ServerTLS: Sendable {
    private let state: NIOLockedValueBox<(context: NIOSSLContext, files: TLSFiles, modified: [Date?])>
    /// Certificates picked up while running.
    let reloads = NIOLockedValueBox(0)

    /// ECDHE key exchange, AES-GCM or ChaCha20-Poly1305 (TLS 1.2); TLS 1.3 suites are all AEAD.
    static let tls12Ciphers = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    init(_ files: TLSFiles) throws {
        state = NIOLockedValueBox((try Self.context(files), files, Self.modified(files)))
    }

    var context: NIOSSLContext { state.withLockedValue { $0.context } }

    /// Loads `files` if they differ from the ones in use (a reload); throws if they cannot be loaded.
    func replace(_ files: TLSFiles) throws {
        let modified = Self.modified(files)
        let unchanged = state.withLockedValue { $0.files == files && $0.modified == modified }
        guard !unchanged else { return }
        let context = try Self.context(files)
        state.withLockedValue { $0 = (context, files, modified) }
        reloads.withLockedValue { $0 += 1 }
    }

    /// Picks up a renewed certificate (same paths, new contents).
    func reloadIfChanged(logger: Logger) {
        let (files, seen) = state.withLockedValue { ($0.files, $0.modified) }
        let modified = Self.modified(files)
        guard modified != seen else { return }
        do {
            let context = try Self.context(files)
            state.withLockedValue { $0 = (context, files, modified) }
            reloads.withLockedValue { $0 += 1 }
            logger.notice("TLS certificate reloaded", metadata: ["cert": "\(files.certificate)"])
        } catch {
            state.withLockedValue { $0.modified = modified }  // logged once per change
            logger.error("TLS certificate changed but cannot be loaded; keeping the current one",
                         metadata: ["cert": "\(files.certificate)", "error": "\(error)"])
        }
    }

    static func context(_ files: TLSFiles) throws -> NIOSSLContext {
        let certs = try NIOSSLCertificate.fromPEMFile(files.certificate)
        let key = try NIOSSLPrivateKey(file: files.privateKey, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: certs.map { .certificate($0) },
                                                                     privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.cipherSuites = tls12Ciphers
        // ALPN: h2 first when HTTP/2 is on; a client that names no protocol gets HTTP/1.1.
        configuration.applicationProtocols = files.http2 == nil ? ["http/1.1"] : ["h2", "http/1.1"]
        return try NIOSSLContext(configuration: configuration)
    }

    static func modified(_ files: TLSFiles) -> [Date?] {
        [files.certificate, files.privateKey].map { (try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date }
    }
}
