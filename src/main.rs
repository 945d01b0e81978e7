fn main() {
    let code = startup_hygiene::run::main();
    std::process::exit(code.into())
}
