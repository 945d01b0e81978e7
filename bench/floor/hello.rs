// The floor: the cheapest process a static Rust binary can be.
// bench/run.sh builds it with rustc for the same target and static linking as the hook.
fn main() {
    println!("hello");
}
