//! Go's verdicts on each pattern (`regexp/syntax.Parse(p, syntax.Perl)`, Go 1.26.8), and the
//! check's own.

use super::check;

/// (pattern, Go's error, "" when it parses).
const GO: &[(&str, &str)] = &[
    ("(", "error parsing regexp: missing closing ): `(`"),
    (")", "error parsing regexp: unexpected ): `)`"),
    ("a)", "error parsing regexp: unexpected ): `a)`"),
    ("(a", "error parsing regexp: missing closing ): `(a`"),
    ("[a", "error parsing regexp: missing closing ]: `[a`"),
    (
        "[z-a]",
        "error parsing regexp: invalid character class range: `z-a`",
    ),
    (
        "*",
        "error parsing regexp: missing argument to repetition operator: `*`",
    ),
    (
        "a**",
        "error parsing regexp: invalid nested repetition operator: `**`",
    ),
    ("a*?", ""),
    (
        "a*??",
        "error parsing regexp: invalid nested repetition operator: `*??`",
    ),
    (
        "+a",
        "error parsing regexp: missing argument to repetition operator: `+`",
    ),
    (
        "a{1001}",
        "error parsing regexp: invalid repeat count: `{1001}`",
    ),
    (
        "a{2,1}",
        "error parsing regexp: invalid repeat count: `{2,1}`",
    ),
    ("a{,5}", ""),
    ("a{1,1000}", ""),
    (
        "\\",
        "error parsing regexp: trailing backslash at end of expression: ``",
    ),
    (
        "\\q",
        "error parsing regexp: invalid escape sequence: `\\q`",
    ),
    (
        "\\1",
        "error parsing regexp: invalid escape sequence: `\\1`",
    ),
    ("\\0", ""),
    (
        "\\8",
        "error parsing regexp: invalid escape sequence: `\\8`",
    ),
    (
        "(?=a)",
        "error parsing regexp: invalid or unsupported Perl syntax: `(?=`",
    ),
    ("(?P<n>a)", ""),
    ("(?<n>a)", ""),
    (
        "(?P<>a)",
        "error parsing regexp: invalid named capture: `(?P<>`",
    ),
    ("(?i)a", ""),
    (
        "(?z)a",
        "error parsing regexp: invalid or unsupported Perl syntax: `(?z`",
    ),
    ("[[:alpha:]]", ""),
    (
        "[[:foo:]]",
        "error parsing regexp: invalid character class range: `[:foo:]`",
    ),
    ("\\pL", ""),
    ("\\p{Greek}", ""),
    (
        "\\p{Foo}",
        "error parsing regexp: invalid character class range: `\\p{Foo}`",
    ),
    (
        "\\x{110000}",
        "error parsing regexp: invalid escape sequence: `\\x{110000`",
    ),
    (
        "\\xZZ",
        "error parsing regexp: invalid escape sequence: `\\xZZ`",
    ),
    ("\\Qa.b\\E", ""),
    (
        "a|*",
        "error parsing regexp: missing argument to repetition operator: `*`",
    ),
    (
        "(*)",
        "error parsing regexp: missing argument to repetition operator: `*`",
    ),
    (
        "x{2}{3}",
        "error parsing regexp: invalid nested repetition operator: `{2}{3}`",
    ),
    (
        "x{2}*",
        "error parsing regexp: invalid nested repetition operator: `{2}*`",
    ),
    ("[]a]", ""),
    ("[^]a]", ""),
    ("[a-]", ""),
    ("\\b\\B\\A\\z", ""),
    (
        "\\C",
        "error parsing regexp: invalid escape sequence: `\\C`",
    ),
    (
        "a++",
        "error parsing regexp: invalid nested repetition operator: `++`",
    ),
    (
        "(?i",
        "error parsing regexp: invalid or unsupported Perl syntax: `(?i`",
    ),
    ("(?:a", "error parsing regexp: missing closing ): `(?:a`"),
    (
        "a\\",
        "error parsing regexp: trailing backslash at end of expression: ``",
    ),
    ("é", ""),
    ("[\\d-z]", ""),
    ("\\_", ""),
    ("\\%", ""),
    ("\\p{Letter}", ""),
    ("\\p{letter}", ""),
    ("\\p{Any}", ""),
    ("\\p{ASCII}", ""),
    ("\\p{greek}", ""),
    ("\\p{^Greek}", ""),
    ("\\pN", ""),
    (
        "\\pX",
        "error parsing regexp: invalid character class range: `\\pX`",
    ),
    (
        "\\p",
        "error parsing regexp: invalid character class range: `\\p`",
    ),
    (
        "\\p{",
        "error parsing regexp: invalid character class range: `\\p{`",
    ),
    (
        "\\p{L",
        "error parsing regexp: invalid character class range: `\\p{L`",
    ),
    ("\\PL", ""),
    ("[\\pL]", ""),
    (
        "[\\p{Foo}]",
        "error parsing regexp: invalid character class range: `\\p{Foo}`",
    ),
    (
        "(?-)",
        "error parsing regexp: invalid or unsupported Perl syntax: `(?-)`",
    ),
    ("(?)", ""),
    (
        "(?i-)",
        "error parsing regexp: invalid or unsupported Perl syntax: `(?i-)`",
    ),
    ("(?i-s:a)", ""),
    (
        "(?P=n)",
        "error parsing regexp: invalid or unsupported Perl syntax: `(?P`",
    ),
    (
        "(?P<n",
        "error parsing regexp: invalid named capture: `(?P<n`",
    ),
    ("(?P<n>a)(?P<n>b)", ""),
    (
        "(?P<a-b>x)",
        "error parsing regexp: invalid named capture: `(?P<a-b>`",
    ),
    (
        "[a-\\d]",
        "error parsing regexp: invalid escape sequence: `\\d`",
    ),
    (
        "\\x{}",
        "error parsing regexp: invalid escape sequence: `\\x{}`",
    ),
    ("\\x{41}", ""),
    (
        "\\xA",
        "error parsing regexp: invalid escape sequence: `\\xA`",
    ),
    (
        "\\x4",
        "error parsing regexp: invalid escape sequence: `\\x4`",
    ),
    ("\\Q", ""),
    ("a{1000}", ""),
    ("a{1000,}", ""),
    (
        "(a{2}){600}",
        "error parsing regexp: invalid repeat count: `{600}`",
    ),
    ("a{01}", ""),
    ("[]", "error parsing regexp: missing closing ]: `[]`"),
    ("[^]", "error parsing regexp: missing closing ]: `[^]`"),
    ("x{2}?", ""),
    (
        "x{2}??",
        "error parsing regexp: invalid nested repetition operator: `{2}??`",
    ),
    ("^*", ""),
    ("$+", ""),
    (
        "(?i)*",
        "error parsing regexp: missing argument to repetition operator: `*`",
    ),
    (
        "|*",
        "error parsing regexp: missing argument to repetition operator: `*`",
    ),
    ("a|", ""),
    ("()", ""),
    ("\\z*", ""),
    ("[[:^alpha:]]", ""),
    (
        "[[:alpha:]",
        "error parsing regexp: missing closing ]: `[[:alpha:]`",
    ),
    ("[[:foo]", ""),
    ("\\12", ""),
    ("\\08", ""),
    ("\\0777", ""),
    (
        "\\é",
        "error parsing regexp: invalid escape sequence: `\\é`",
    ),
    (
        "a{2,1001}",
        "error parsing regexp: invalid repeat count: `{2,1001}`",
    ),
    (
        "a{1001,}",
        "error parsing regexp: invalid repeat count: `{1001,}`",
    ),
    (
        "x{99999999999}",
        "error parsing regexp: invalid repeat count: `{99999999999}`",
    ),
    ("(a{2}){500}", ""),
    (
        "(a{0}){5000}",
        "error parsing regexp: invalid repeat count: `{5000}`",
    ),
    ("((a{10}){10}){10}", ""),
    (
        "((a{10}){10}){11}",
        "error parsing regexp: invalid repeat count: `{11}`",
    ),
    ("(a{10}|b{200}){5}", ""),
    (
        "(a{10}|b{200}){6}",
        "error parsing regexp: invalid repeat count: `{6}`",
    ),
    (
        "a{0,}{5}",
        "error parsing regexp: invalid nested repetition operator: `{0,}{5}`",
    ),
    (
        "a*{5}",
        "error parsing regexp: invalid nested repetition operator: `*{5}`",
    ),
    ("a(?i)*", ""),
    ("a*(?i)*", ""),
    (
        "\\Q\\E*",
        "error parsing regexp: missing argument to repetition operator: `*`",
    ),
    ("\\Qab\\E*", ""),
    (
        "*?",
        "error parsing regexp: missing argument to repetition operator: `*?`",
    ),
    (
        "(?P<",
        "error parsing regexp: invalid or unsupported Perl syntax: `(?P`",
    ),
    (
        "(?<",
        "error parsing regexp: invalid or unsupported Perl syntax: `(?<`",
    ),
    (
        "(?<>a)",
        "error parsing regexp: invalid named capture: `(?<>`",
    ),
    (
        "[\\Q]",
        "error parsing regexp: invalid escape sequence: `\\Q`",
    ),
    ("a{2}{", ""),
    ("\\pL*", ""),
    (
        "[a-z]{2}*",
        "error parsing regexp: invalid nested repetition operator: `{2}*`",
    ),
    (
        "\\p{Old_Italic}",
        "error parsing regexp: invalid character class range: `\\p{Old_Italic}`",
    ),
    ("\\p{L_u}", ""),
    ("\\p{ l }", ""),
    ("kubelet.*(error|fail(ed)?)\\b", ""),
];

#[test]
fn every_verdict_is_gos() {
    let mut wrong = Vec::new();
    for (p, want) in GO {
        let got = check(p).err().map(|e| e.to_string()).unwrap_or_default();
        if got != *want {
            wrong.push(format!("{p:?}: got {got:?}, Go says {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_unicode_names_are_sorted_for_the_binary_search() {
    assert!(super::UNICODE_NAMES.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn hostile_patterns_end_without_recursion() {
    let deep = "(".repeat(200_000);
    assert!(check(&deep).is_err());
    let wide = "a|".repeat(200_000);
    assert!(check(&wide).is_ok());
    let escapes = "\\".repeat(100_001);
    assert!(check(&escapes).is_err());
}
