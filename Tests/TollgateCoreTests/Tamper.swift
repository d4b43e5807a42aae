/// Ways tests damage tokens.
enum Tamper {
    /// `text` (base64url) with its last character's 6-bit value XORed with `bits`. When the text's
    /// length leaves unused low bits in that character, `bits` 1 or 2 only re-spells the same bytes.
    static func flippingLastCharacter(of text: String, by bits: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let value = alphabet.firstIndex(of: text.last!)!
        return String(text.dropLast()) + String(alphabet[value ^ bits])
    }
}
