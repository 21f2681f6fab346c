//! The `refusal-guard` command: everything lives in [`refusal_guard::cli`].

fn main() -> std::process::ExitCode {
    refusal_guard::cli::main()
}
