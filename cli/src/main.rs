fn main() {
    println!("npukit: not yet implemented");
}
