import Foundation

/// Lower-case hexadecimal: challenge hashes and signatures, webhook signatures, generated keys.
/// The one encoder and decoder of the project.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Nil unless `text` is an even number of hex digits (either case).
    public static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count / 2)
        var it = text.utf8.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let h = PercentEncoding.hexValue(a), let l = PercentEncoding.hexValue(b) else { return nil }
            bytes.append(h << 4 | l)
        }
        return bytes
    }
}

extension Data {
    var hex: String { Hex.encode(self) }

    init?(hex: String) {
        guard let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes)
    }
}
