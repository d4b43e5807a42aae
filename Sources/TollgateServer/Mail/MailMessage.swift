import Foundation
import TollgateCore

/// Renders a verification message as RFC 5322 + MIME: `text/plain`, or `multipart/alternative`
/// with an HTML part, each part base64 in 76-character lines (so no body line can start with a
/// dot) and the headers the gateway builds folded within 78 (RFC 5322 §2.1.1; a long configured
/// subject may run to the 998 limit). Headers hold only the configured sender and subject, the
/// checked recipient, a date and a Message-ID.
enum MailMessage {
    static func render(from: String, to: String, subject: String, text: String, html: String?,
                       date: Date = Date()) -> [UInt8] {
        let domain = MailConfig.bareAddress(from)?.split(separator: "@").last.map(String.init) ?? "tollgate.localhost"
        var out = ""
        out += "From: \(from)\r\n"
        out += "To: <\(to)>\r\n"
        out += "Subject: \(encodedHeader(subject))\r\n"
        out += "Date: \(rfc5322Date(date))\r\n"
        out += "Message-ID: <\(UUID().uuidString.lowercased())@\(domain)>\r\n"
        out += "MIME-Version: 1.0\r\n"
        out += "Auto-Submitted: auto-generated\r\n"
        if let html {
            let boundary = "tg-" + UUID().uuidString.lowercased()
            out += "Content-Type: multipart/alternative;\r\n boundary=\"\(boundary)\"\r\n\r\n"
            out += "--\(boundary)\r\n" + part("text/plain", text)
            out += "--\(boundary)\r\n" + part("text/html", html)
            out += "--\(boundary)--\r\n"
        } else {
            out += part("text/plain", text)
        }
        return Array(out.utf8)
    }

    private static func part(_ type: String, _ body: String) -> String {
        "Content-Type: \(type); charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64Lines(Data(body.utf8))
    }

    static func base64Lines(_ data: Data) -> String {
        let encoded = data.base64EncodedString()
        var out = ""
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            out += encoded[index..<end]
            out += "\r\n"
            index = end
        }
        return out
    }

    /// ASCII as is; anything else as one RFC 2047 encoded word.
    static func encodedHeader(_ value: String) -> String {
        value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) ? value : "=?utf-8?B?" + Data(value.utf8).base64EncodedString() + "?="
    }

    static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: date)
    }
}
