//! Phone numbers as sent, and the digits-only form used for matching.

/// The digits of a phone number, whatever its formatting: `+91 98111-22233` → `919811122233`.
pub fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// True when the number carries anything but digits (spaces, dashes, a leading `+`).
pub fn is_formatted(number: &str) -> bool {
    !number.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_and_plain_numbers_have_the_same_digits() {
        assert_eq!(digits("+91 98111-22233"), "919811122233");
        assert_eq!(digits("919811122233"), "919811122233");
        assert!(is_formatted("+91 98111-22233"));
        assert!(!is_formatted("919811122233"));
    }
}
