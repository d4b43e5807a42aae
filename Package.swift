// swift-tools-version:6.0
import PackageDescription

/// Every module of ours builds in Swift 6 language mode with warnings as errors: the compiler checks
/// the threading the data plane relies on, and a warning cannot slip into a release.
let strict: [SwiftSetting] = [.unsafeFlags(["-warnings-as-errors"])]

/// Release builds of the data-plane modules skip dynamic exclusivity checks (measured: ~3 % of CPU
/// per proxied request); debug builds, which the tests use, keep them.
let hotPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Tollgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tollgate", targets: ["tollgate"]),
        .executable(name: "tollgate-standin", targets: ["tollgate-standin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Config model, validation, routing and policies. Must never import NIO.
        .target(
            name: "TollgateCore",
            dependencies: [.product(name: "Yams", package: "Yams"), .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: hotPathSettings
        ),
        // Durable state behind protocols: the usage ledger, identity, bans and operator switches, in
        // SQLite (GRDB, the embedded default) or PostgreSQL (postgres-nio, for several gateways).
        .target(
            name: "TollgateStore",
            dependencies: [
                "TollgateCore", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // RFC 9112 framing of upstream responses: the parser of untrusted bytes, alone so that its
        // fuzz target builds without the rest of the data plane.
        .target(name: "TollgateUpstreamHTTP", dependencies: [.product(name: "NIOCore", package: "swift-nio")],
                swiftSettings: hotPathSettings),
        // RFC 9112 framing of client requests: the decoder in front of every HTTP/1.1 connection,
        // alone (with the byte helpers it shares with the upstream parser) for its fuzz target.
        .target(name: "TollgateRequestHTTP", dependencies: [
            "TollgateUpstreamHTTP", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
        ], swiftSettings: hotPathSettings),
        // SMTP reply framing: the mail client's parser of untrusted bytes, alone for its fuzz target.
        .target(name: "TollgateMailWire", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // libmaxminddb (Debian's libmaxminddb-dev) for country lookups: the reader MaxMind maintains,
        // not one of our own.
        .systemLibrary(name: "CMaxMindDB", path: "Sources/CMaxMindDB", pkgConfig: "libmaxminddb",
                       providers: [.apt(["libmaxminddb-dev"])]),
        // The NIO data plane: listener, upstream pool, TLS, access log.
        .target(
            name: "TollgateServer",
            dependencies: [
                "TollgateCore", "TollgateStore", "TollgateUpstreamHTTP", "TollgateRequestHTTP", "TollgateMailWire", "CMaxMindDB",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: hotPathSettings
        ),
        // The control plane: the admin API on the `admin:` listener (Hummingbird 2), off the hot path.
        .target(
            name: "TollgateAdmin",
            dependencies: [
                "TollgateCore", "TollgateStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A stand-in paid API for the demo and the tests: requires the key, counts calls.
        .target(
            name: "TollgateStandIn",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .executableTarget(
            name: "tollgate",
            dependencies: [
                "TollgateCore", "TollgateServer", "TollgateStandIn", "TollgateStore", "TollgateAdmin",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "tollgate-standin",
            dependencies: [
                "TollgateStandIn",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fuzz targets (Fuzz/, scripts/fuzz): libFuzzer binaries when built with -D FUZZING and the
        // fuzzer sanitizer; otherwise they replay their committed corpus (scripts/test). Not shipped.
        .target(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], path: "Fuzz/Support"),
        .executableTarget(name: "fuzz-json", dependencies: ["FuzzSupport", "TollgateCore"], path: "Fuzz/JSON"),
        .executableTarget(name: "fuzz-paths", dependencies: ["FuzzSupport", "TollgateCore"], path: "Fuzz/Paths"),
        .executableTarget(name: "fuzz-client-identity", dependencies: ["FuzzSupport", "TollgateCore"], path: "Fuzz/ClientIdentity"),
        .executableTarget(name: "fuzz-config", dependencies: ["FuzzSupport", "TollgateCore"], path: "Fuzz/Config"),
        .executableTarget(name: "fuzz-tokens", dependencies: ["FuzzSupport", "TollgateCore", .product(name: "Crypto", package: "swift-crypto")],
                          path: "Fuzz/Tokens"),
        .executableTarget(name: "fuzz-email", dependencies: [
            "FuzzSupport", "TollgateCore", "TollgateMailWire", .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Fuzz/Email"),
        .executableTarget(name: "fuzz-upstream-response", dependencies: [
            "FuzzSupport", "TollgateUpstreamHTTP", .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Fuzz/UpstreamResponse"),
        .executableTarget(name: "fuzz-request", dependencies: [
            "FuzzSupport", "TollgateRequestHTTP", .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
        ], path: "Fuzz/Request"),
        // Micro-benchmarks (bench/micro): table costs when full. Not part of the product.
        .executableTarget(name: "tollgate-microbench", dependencies: ["TollgateCore"], path: "bench/micro"),
        .testTarget(name: "TollgateCoreTests", dependencies: ["TollgateCore", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "TollgateServerTests", dependencies: [
            "TollgateServer", "TollgateCore", "TollgateUpstreamHTTP", "TollgateRequestHTTP", "TollgateMailWire",
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "TollgateStoreTests", dependencies: ["TollgateStore", "TollgateCore"]),
    ]
)

for target in package.targets where target.type != .system && target.name != "CLibFuzzer" {
    target.swiftSettings = (target.swiftSettings ?? []) + strict
}
