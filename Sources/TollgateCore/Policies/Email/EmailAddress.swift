/// An email address a visitor typed, checked and normalized.
///
/// Accepted: `local@domain` in ASCII, as mail systems deliver it in practice — a dot-atom local part
/// (RFC 5322 `atext` and single dots, at most 64 octets), a domain of at least two DNS labels (letters,
/// digits, inner hyphens, 1–63 octets each; IDNs as `xn--` labels), at most 254 octets in all (RFC 5321
/// §4.5.3.1 path limit less the brackets). Refused on purpose: quoted local parts, comments, address
/// literals (`user@[192.0.2.1]`) and non-ASCII (no SMTPUTF8): legal, but in sign-up forms they are
/// almost only seen in abuse, and each one widens what the mail path must get right.
public struct EmailAddress: Sendable, Equatable {
    /// The address to send to: the local part as typed, the domain in lower case.
    public let deliverable: String
    /// The lower-case domain.
    public let domain: String
    /// The address used for counting: lower case, with provider-specific aliases folded
    /// (``Normalization``), so `Jane.Doe+x@gmail.com` and `janedoe@gmail.com` count as one.
    public let normalized: String

    /// Why an address is not accepted; the code reaches the client, the text is for people.
    public enum Invalid: String, Error, Sendable {
        case syntax = "email-syntax"
        case tooLong = "email-too-long"
    }

    /// How aliases of one mailbox are folded for counting.
    public struct Normalization: Sendable, Equatable {
        /// Domains where `local+tag` delivers to `local`.
        public var plusTags: Set<String>
        /// Domains where dots in the local part are ignored.
        public var dots: Set<String>

        public init(plusTags: Set<String>, dots: Set<String>) {
            self.plusTags = plusTags
            self.dots = dots
        }

        public static let standard = Normalization(
            plusTags: ["gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "icloud.com",
                       "fastmail.com", "proton.me", "protonmail.com", "yahoo.com"],
            dots: ["gmail.com", "googlemail.com"])
    }

    public init(parsing text: String, normalization: Normalization = .standard) throws(Invalid) {
        let bytes = Array(text.utf8)
        guard bytes.count <= 254 else { throw .tooLong }
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1 else { throw .syntax }
        let local = bytes[..<at]
        let domain = bytes[(at + 1)...].map(Self.lowercased)
        guard local.count <= 64 else { throw .tooLong }
        guard Self.isDotAtom(local), Self.isHostname(domain) else { throw .syntax }
        let localText = String(decoding: local, as: UTF8.self)
        let domainText = String(decoding: domain, as: UTF8.self)
        self.domain = domainText
        self.deliverable = localText + "@" + domainText
        var folded = localText.lowercased()
        if normalization.plusTags.contains(domainText), let plus = folded.firstIndex(of: "+") {
            folded = String(folded[..<plus])
        }
        if normalization.dots.contains(domainText) { folded.removeAll { $0 == "." } }
        if folded.isEmpty { throw .syntax }
        self.normalized = folded + "@" + domainText
    }

    /// RFC 5322 dot-atom: atext runs separated by single dots, none at either end.
    static func isDotAtom(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let first = bytes.first, let last = bytes.last, first != UInt8(ascii: "."), last != UInt8(ascii: ".") else { return false }
        var previousDot = false
        for b in bytes {
            if b == UInt8(ascii: ".") {
                if previousDot { return false }
                previousDot = true
            } else {
                guard isAtext(b) else { return false }
                previousDot = false
            }
        }
        return true
    }

    static func isAtext(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-/=?^_`{|}~".utf8.contains(b)
        }
    }

    /// At least two labels; each 1–63 of `[a-z0-9-]`, no hyphen at either end; the last not numeric.
    static func isHostname(_ bytes: [UInt8]) -> Bool {
        guard bytes.count <= 253 else { return false }
        let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return false }
        for label in labels {
            guard (1...63).contains(label.count), label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-"),
                  label.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: "-") }) else { return false }
        }
        return !labels.last!.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    static func isLowerAlnum(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
    }

    static func lowercased(_ b: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) ? b + 32 : b
    }
}

/// Whether `domain` is `listed` or a subdomain of it (`mx.mailinator.com` is under `mailinator.com`).
public enum DomainMatch {
    public static func covers(_ listed: Set<String>, _ domain: String) -> Bool {
        if listed.isEmpty { return false }
        var rest = Substring(domain)
        while true {
            if listed.contains(String(rest)) { return true }
            guard let dot = rest.firstIndex(of: ".") else { return false }
            rest = rest[rest.index(after: dot)...]
        }
    }
}
