//! Prints the pattern evidence for the text on stdin (a debugging aid).
use std::io::Read;

fn main() {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).expect("stdin");
    for e in refusal_guard::detect::patterns::Patterns::builtin().scan(&text) {
        println!("{:.2} {} {}", e.score, e.suggests, e.reason);
    }
}
