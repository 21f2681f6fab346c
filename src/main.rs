fn main() {
    println!("refusal-guard");
}
