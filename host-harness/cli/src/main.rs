//! `meshward`: the policy author's command line; see the library.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    meshward_cli::run()
}
