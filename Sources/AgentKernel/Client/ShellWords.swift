/// Splits a shell line into words: blanks separate, '…' and "…" quote, \ escapes one character.
/// agentctl's shell runs the words; its Tab completion reads the words before the cursor.
public enum ShellWords {
    public struct UnterminatedQuote: Error, CustomStringConvertible {
        public var description: String { "unterminated quote" }
    }

    public static func split(_ line: String) throws -> [String] {
        let (words, openQuote) = scan(line)
        if openQuote { throw UnterminatedQuote() }
        return words
    }

    /// The words of a line still being typed: an open quote runs to the end.
    public static func splitPartial(_ line: String) -> [String] { scan(line).words }

    private static func scan(_ line: String) -> (words: [String], openQuote: Bool) {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" && quote != "'" {
                escaped = true
                inWord = true
            } else if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                inWord = true
            } else if character.isWhitespace {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return (words, quote != nil)
    }
}
