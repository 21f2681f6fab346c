fn main() {
    std::process::exit(refusal_guard::cli::main());
}
